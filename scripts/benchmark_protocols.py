"""The two evaluation protocols on the same models: `cedar-hf` (every metric centred by the training mean) vs
`msae` (MSAE's scoring, as the CEDAR paper's Table 1 used it).

Offline, on the WordNet glosses shipped with cedar-hf (MiniLM, 384-d; label = lexicographer file): train CEDAR
(k = 10, Cayley rotation) and a TopK SAE (8×, k = 32) with `cedar_hf.train` (reused from benchmarks/cache when
trained with the same settings), then run the FVU-matched comparison (targets 0.25 / 0.30 / 0.35, and 0.45,
which the small TopK reaches) under both protocols and write benchmarks/results/protocols.{json,md}. Every
matched point also carries every FVU variant by name, so one sees how far the definitions move K.

    OMP_NUM_THREADS=1 python scripts/benchmark_protocols.py             # ~13 min on 2 shared cores (load ~8)
    python scripts/benchmark_protocols.py --steps 300 --max-texts 2000  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from cedar_hf import CedarConfig, CedarModel, TopKSAE, TopKSAEConfig
from cedar_hf.atomic import write_json, write_text
from cedar_hf.backbones import load_backbone
from cedar_hf.data import embedding_matrix
from cedar_hf.evaluation import compare_models, markdown_table, native_table
from cedar_hf.pipelines.demo import MINILM_HUB_ID, embed_source
from cedar_hf.training import TrainingArgs, train

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache" / "protocols"
RESULTS = ROOT / "benchmarks" / "results"


def split(embeddings, seed: int = 0):
    order = np.random.default_rng(seed).permutation(len(embeddings))
    n_test = len(order) // 5
    return (embeddings.select(np.sort(order[n_test:]), keep_in_memory=True),
            embeddings.select(np.sort(order[:n_test]), keep_in_memory=True))


def train_models(train_ds, steps: int, seed: int = 0) -> dict:
    d = len(train_ds[0]["embedding"])
    models = {}
    for name, config in (
        ("CEDAR", CedarConfig(d_in=d, k=10, parametrization="cayley", curriculum_steps=max(1, steps // 2))),
        ("TopK", TopKSAEConfig(d_in=d, expansion_factor=8, k=32)),
    ):
        model_class = CedarModel if name == "CEDAR" else TopKSAE
        stamp = CACHE / name / "benchmark_run.json"
        run = {"steps": steps, "rows": len(train_ds), "seed": seed}
        if stamp.exists() and json.loads(stamp.read_text()) == run:
            models[name] = model_class.from_pretrained(CACHE / name).eval()
            print(f"reusing {name} trained with the same settings in {CACHE / name}", flush=True)
            continue
        torch.manual_seed(seed)
        model = model_class(config)
        args = TrainingArgs(output_dir=str(CACHE / name), max_steps=steps, batch_size=512, learning_rate=2e-3,
                            seed=seed, report_to="none", eval_steps=None, logging_steps=max(1, steps // 5),
                            overwrite_output_dir=True)
        start = time.time()
        models[name] = train(model, train_ds, args).eval()
        write_json(stamp, run)
        print(f"trained {name} in {time.time() - start:.0f} s", flush=True)
    return models


def summary_table(reports: dict) -> str:
    """One line per (model, target): K, CS, CKNNA and LP under each protocol, side by side."""
    lines = ["| FVU | Model | K cedar-hf | K msae | CS cedar-hf | CS msae | CKNNA cedar-hf | CKNNA msae | "
             "LP cedar-hf | LP msae |", "|---|---|---|---|---|---|---|---|---|---|"]
    ours, theirs = reports["cedar-hf"], reports["msae"]
    for target in ours["targets"]:
        for name in ours["models"]:
            a = next(r for r in ours["models"][name]["matched"] if r["target"] == target)
            b = next(r for r in theirs["models"][name]["matched"] if r["target"] == target)
            cells = []
            for key, digits in (("K", 1), ("CS", 3), ("CKNNA", 3), ("LP", 3)):
                cells += [f"{r[key]:.{digits}f}" if r.get("reached") and key in r else "–" for r in (a, b)]
            lines.append(f"| {target:.2f} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500, help="training steps per model (default 1500)")
    parser.add_argument("--max-texts", type=int, default=None, help="embed only the first N shipped glosses")
    parser.add_argument("--cknna-batch-size", type=int, default=1024,
                        help="rows per CKNNA batch under msae (MSAE: 10000; the data here is smaller)")
    args = parser.parse_args()
    start, load = time.time(), os.getloadavg()
    embeddings = embed_source(load_backbone("minilm"), MINILM_HUB_ID, CACHE, None, "text_embeds", args.max_texts,
                              quiet=False)
    train_ds, test_ds = split(embeddings)
    models = train_models(train_ds, args.steps)
    x_train, x_test = (embedding_matrix(d, flatten_tokens=True) for d in (train_ds, test_ds))
    common = dict(targets=(0.25, 0.30, 0.35, 0.45), train_data=x_train, eval_labels=list(test_ds["label"]),
                  train_labels=list(train_ds["label"]))
    reports = {"cedar-hf": compare_models(models, x_test, protocol="cedar-hf", **common),
               "msae": compare_models(models, x_test, protocol="msae", cknna_batch_size=args.cknna_batch_size,
                                      **common)}
    share = float(x_train.double().mean(0).pow(2).sum() / x_train.double().pow(2).sum(-1).mean())
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
               f"{load[0]:.2f} at start, {time.time() - start:.0f} s in all")
    text = (f"# Evaluation protocols on the same models\n\n{len(train_ds)} training / {len(test_ds)} held-out "
            f"WordNet glosses (MiniLM, 384-d), {args.steps} training steps per model. Mean share ‖μ‖²/E‖x‖² = "
            f"{share:.3f} (CLIP image embeddings: far larger — there raw and centred CS part ways). {machine}.\n\n"
            f"## Side by side\n\n{summary_table(reports)}\n")
    for name, report in reports.items():
        text += f"\n## Protocol {name}\n\n{markdown_table(report)}\n\n{native_table(report)}\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "protocols.md", text)
    write_json(RESULTS / "protocols.json", {"machine": machine, "steps": args.steps, "reports": reports})
    print(text)


if __name__ == "__main__":
    main()
