"""Naming benchmark: concept-quality scores (no LLM, no person) of CEDAR, the SAE family, Semi-NMF, no-rotation
and SpLiCE at matched K on MiniLM embeddings of WordNet glosses, with the spread over seeds.

Data: the 5,000 WordNet 3.0 glosses shipped with cedar-hf (label = lexicographer file, 45 classes), embedded with
the offline MiniLM (384-d), split into `--train` rows (dictionary fitting) and the rest (scoring). Vocabulary:
the first `--vocabulary-size` entries of the shipped (blocklisted) English vocabulary, embedded with MiniLM; every
dictionary is named with it (`name_concepts`, centre = vocabulary mean) and SpLiCE uses it as its atoms.
Every dictionary encodes the scoring rows with exactly K = `--k` active latents (matched K); then
`cedar_hf.interpret.concept_quality` scores purity (w.r.t. the lexicographer file), name fidelity (precision at
n among `--n-random` random rows) and the share of weak names. Seeds: initialisation/training seed of the trained
dictionaries, and the seed of the random distractor rows for all (SpLiCE and no-rotation are otherwise
deterministic). Writes benchmarks/results/naming.json and naming.md.

    OMP_NUM_THREADS=2 python scripts/benchmark_naming.py                # ~15 min on 2 shared cores
    python scripts/benchmark_naming.py --seeds 0 --steps 200            # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cedar_hf  # noqa: E402
from cedar_hf.analysis.codes import compute_codes  # noqa: E402
from cedar_hf.interpret import concept_quality, load_demo_texts, load_vocabulary, name_concepts  # noqa: E402
from cedar_hf.atomic import atomic_path  # noqa: E402

CACHE = ROOT / "benchmarks" / "cache" / "naming"
RESULTS = ROOT / "benchmarks" / "results"
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def cached_embeddings(name: str, texts: list[str], backbone) -> torch.Tensor:
    """MiniLM embeddings of `texts`, cached as a .pt file keyed by name and count (written atomically)."""
    path = CACHE / f"{name}-{len(texts)}.pt"
    if path.exists():
        return torch.load(path)
    x = backbone.embed_texts(texts, batch_size=128).float().cpu()
    with atomic_path(path) as tmp:
        torch.save(x, tmp)
    return x


def models(k: int, steps: int, expansion: int) -> dict:
    """name -> (model_type, config, training overrides). K = k for every dictionary at scoring time."""
    sae = dict(learning_rate=5e-4)
    return {
        "CEDAR": ("cedar", dict(k=k, curriculum_steps=steps // 3, parametrization="cayley"),
                  dict(learning_rate=3e-3)),
        "ReLU": ("relu_sae", dict(expansion_factor=expansion, l1_coefficient=0.01), sae),
        "TopK": ("topk_sae", dict(expansion_factor=expansion, k=k), sae),
        "BatchTopK": ("batchtopk_sae", dict(expansion_factor=expansion, k=k), sae),
        "JumpReLU": ("jumprelu_sae", dict(expansion_factor=expansion), sae),
        "MSAE (RW)": ("matryoshka_sae", dict(expansion_factor=expansion, levels=[k, 2 * k, 4 * k], weighting="RW"),
                      sae),
        "Semi-NMF": ("semi_nmf", dict(expansion_factor=1, l1_coefficient=0.01, fit_epochs=10), {}),
        "No rotation": ("no_rotation", dict(k=k), {}),
    }


def train_one(model_type: str, config: dict, overrides: dict, train_ds, seed: int, steps: int, folder: Path):
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    if (folder / "metrics.json").exists():
        return model_class.from_pretrained(str(folder)).eval()
    torch.manual_seed(seed)
    model = model_class(config_class(d_in=384, backbone=BACKBONE, embedding_site="text_embeds", **config))
    args = cedar_hf.TrainingArgs(output_dir=str(folder), batch_size=512, max_steps=steps, seed=seed,
                                 report_to="none", save_total_limit=1, **overrides)
    return cedar_hf.train(model, train_ds, args).eval()


def fvu(model, x: torch.Tensor, mean: torch.Tensor, k: int) -> float:
    with torch.no_grad():
        x_hat = model.decode(model.encode(x, k=k))
    return float((x - x_hat).pow(2).sum() / (x - mean).pow(2).sum())


def score(name, model, words, vocab_emb, eval_ds, x_eval, train_mean, args, seed, backbone, codes=None) -> dict:
    start = time.time()
    if name != "SpLiCE":
        name_concepts(model, vocabulary=words, vocabulary_embeddings=vocab_emb, blocklist=False)
    report = concept_quality(model, eval_ds, backbone, n=args.n, n_random=args.n_random, k=args.k, seed=seed,
                             progress=False, codes=codes)
    weak = [c["weak"] for c in report.per_concept if c["examples"] is not None]
    row = {"model": name, "seed": seed, "n_latents": model.config.n_latents,
           "purity": report.summary["purity"]["mean"], "fidelity": report.summary["fidelity"]["mean"],
           "purity_chance": report.summary["purity"]["chance"], "fidelity_chance": report.summary["fidelity"]["chance"],
           "scored": report.summary["fidelity"]["scored"], "weak_share": float(np.mean(weak)) if weak else None,
           "fvu": fvu(model, x_eval, train_mean, args.k) if name != "SpLiCE" else None,
           "seconds": round(time.time() - start, 1)}
    print(json.dumps(row), flush=True)
    return row


def aggregate(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        entry = {"model": name, "seeds": len(group), "n_latents": group[0]["n_latents"]}
        for key in ("purity", "fidelity", "weak_share", "fvu", "scored"):
            values = [r[key] for r in group if r[key] is not None]
            entry[key] = (float(np.mean(values)), float(np.std(values))) if values else None
        out.append(entry)
    return out


def markdown(table: list[dict], meta: dict) -> str:
    fmt = lambda v, d=3: "—" if v is None else f"{v[0]:.{d}f} ± {v[1]:.{d}f}"  # noqa: E731
    lines = [
        "# Naming benchmark: concept quality without an LLM, at matched K", "",
        f"{meta['rows_train']} WordNet glosses (MiniLM, 384-d) to fit, {meta['rows_eval']} to score; K = {meta['k']} "
        f"active latents for every dictionary; vocabulary = first {meta['vocabulary_size']} entries of the shipped "
        f"blocklisted vocabulary; top n = {meta['n']} examples per concept, {meta['n_random']} random rows for "
        f"name fidelity; mean ± std over seeds {meta['seeds']} (trained models: training seed and distractor "
        f"seed; SpLiCE / no-rotation: distractor seed only). {meta['steps']} training steps (batch 512), SAEs "
        f"{meta['expansion']}×. Run {meta['date']} on {meta['machine']}, load average {meta['load']}, "
        f"{meta['seconds']:.0f} s in all.", "",
        f"Chance: purity {meta['purity_chance']:.3f} (n random rows), fidelity {meta['fidelity_chance']:.3f} "
        "(n / (n + n_random)). Weak names: match score < 0.3 (see `cedar_hf.interpret.naming`).", "",
        "| dictionary | latents | purity ↑ | name fidelity (P@n) ↑ | weak names ↓ | concepts scored | FVU at K |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(f"| {row['model']} | {row['n_latents']} | {fmt(row['purity'])} | {fmt(row['fidelity'])} | "
                     f"{fmt(row['weak_share'])} | {fmt(row['scored'], 0)} | {fmt(row['fvu'])} |")
    lines += ["", "Definitions: `cedar_hf.interpret.quality` (purity = share of the most common lexicographer file "
              "among a concept's top-n examples; name fidelity = precision at n of retrieving them among random rows "
              "by cosine with the name's MiniLM embedding). SpLiCE's FVU is not comparable (it reconstructs the unit "
              "embedding) and is left out."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=3500, help="rows to fit on (the rest of the 5,000 is scored)")
    parser.add_argument("--vocabulary-size", type=int, default=5000)
    parser.add_argument("--k", type=int, default=10, help="matched K: active latents of every dictionary")
    parser.add_argument("--n", type=int, default=10, help="top examples per concept")
    parser.add_argument("--n-random", type=int, default=40)
    parser.add_argument("--steps", type=int, default=800, help="training steps of CEDAR and the SAEs")
    parser.add_argument("--expansion", type=int, default=4, help="SAE expansion factor")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", default=None, help="run only these dictionaries (names as in the table)")
    args = parser.parse_args()
    import datasets

    started = time.time()
    backbone = cedar_hf.load_backbone("minilm")
    records = load_demo_texts()
    texts = [r["gloss"] for r in records]
    x = cached_embeddings("glosses", texts, backbone)
    order = np.random.default_rng(0).permutation(len(records))
    train_rows, eval_rows = order[: args.train], order[args.train :]
    train_ds = datasets.Dataset.from_dict({"embedding": x[train_rows].numpy()})
    eval_ds = datasets.Dataset.from_dict({"embedding": x[eval_rows].numpy(),
                                          "text": [texts[i] for i in eval_rows],
                                          "label": [records[i]["lexname"] for i in eval_rows]})
    x_eval, train_mean = x[eval_rows], x[train_rows].mean(0)
    words = load_vocabulary(max_size=args.vocabulary_size)
    vocab_emb = cached_embeddings("vocabulary", words, backbone)
    rows = []
    for name, (model_type, config, overrides) in models(args.k, args.steps, args.expansion).items():
        if args.only and name not in args.only:
            continue
        for seed in args.seeds:
            folder = CACHE / "models" / f"{model_type}-s{seed}-{args.steps}-{args.train}-x{args.expansion}"
            model = train_one(model_type, config, overrides, train_ds, seed, args.steps, folder)
            rows.append(score(name, model, words, vocab_emb, eval_ds, x_eval, train_mean, args, seed, backbone))
    if not args.only or "SpLiCE" in args.only:
        splice = cedar_hf.SpliceModel.from_vocabulary(vocab_emb, words, x[train_rows], k=args.k)
        splice.config.backbone = BACKBONE
        codes = compute_codes(splice, eval_ds, k=args.k)  # deterministic: solved once, scored with every seed
        for seed in args.seeds:
            rows.append(score("SpLiCE", splice, words, vocab_emb, eval_ds, x_eval, train_mean, args, seed, backbone,
                              codes))
    table = aggregate(rows)
    meta = {"rows_train": int(len(train_rows)), "rows_eval": int(len(eval_rows)), "k": args.k, "n": args.n,
            "n_random": args.n_random, "vocabulary_size": len(words), "steps": args.steps, "expansion": args.expansion,
            "seeds": args.seeds, "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} "
            f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
            "load": " ".join(f"{v:.2f}" for v in os.getloadavg()), "seconds": time.time() - started,
            "purity_chance": rows[0]["purity_chance"], "fidelity_chance": rows[0]["fidelity_chance"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with atomic_path(RESULTS / "naming.json") as tmp:
        tmp.write_text(json.dumps({"meta": meta, "table": table, "runs": rows}, indent=1))
    with atomic_path(RESULTS / "naming.md") as tmp:
        tmp.write_text(markdown(table, meta))
    print(markdown(table, meta))


if __name__ == "__main__":
    main()
