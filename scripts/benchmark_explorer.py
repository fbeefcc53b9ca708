"""Explorer start-up time: first start (everything computed) vs second start (views read from the disk cache).

Builds the explorer the way `cedar-hf explore` does (`build_explorer`: codes, energies, modality scores, bridges,
UMAP, then the Gradio app) for a CEDAR dictionary (384-d MiniLM, trained here for a few hundred steps if no
folder is given) over the WordNet lemma/gloss pairs saved as a dataset folder, twice in fresh processes with one
cache folder. The dataset is embedded once beforehand (not part of either start). Writes
benchmarks/results/explorer_start.json and .md.

    python scripts/benchmark_explorer.py [--model runs/cedar] [--synsets 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / "cache" / "explorer"

CHILD = """
import sys, time
start = time.perf_counter()
import cedar_hf
from cedar_hf.analysis.explorer import build_explorer
from cedar_hf.auto import load_dictionary
model = load_dictionary(sys.argv[1])
app = build_explorer(model, sys.argv[2], progress=False, cache_dir=sys.argv[3])
print(f"{time.perf_counter() - start:.3f} {int(app.explorer.data.cached)}")
"""


def prepare(args) -> tuple[Path, Path]:
    import cedar_hf
    from cedar_hf.interpret import load_vocabulary, name_concepts
    from cedar_hf.pipelines.wordnet_pairs import wordnet_pairs_dataset

    data = CACHE / f"wordnet-pairs-{args.synsets}"
    if not (data / "dataset_info.json").exists():
        wordnet_pairs_dataset(limit=args.synsets).save_to_disk(str(data))
    if args.model:
        return Path(args.model), data
    model_dir = CACHE / f"cedar-{args.synsets}"
    if not (model_dir / "config.json").exists():
        model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=384, k=10, curriculum_steps=100, parametrization="cayley",
                                                         backbone="sentence-transformers/all-MiniLM-L6-v2",
                                                         embedding_site="text_embeds"))
        targs = cedar_hf.TrainingArgs(output_dir=str(model_dir), batch_size=512, max_steps=300, report_to="none",
                                      learning_rate=3e-3, save_total_limit=1)
        model = cedar_hf.train(model, str(data), targs)
        name_concepts(model, "minilm", load_vocabulary(max_size=5000))
        model.save_pretrained(model_dir)
    return model_dir, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a named dictionary folder (default: train a small CEDAR)")
    parser.add_argument("--synsets", type=int, default=1000, help="WordNet synsets (2 rows each)")
    args = parser.parse_args()
    model_dir, data = prepare(args)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    runs = []
    with tempfile.TemporaryDirectory() as cache:
        for label in ("first start", "second start"):
            out = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), str(data), cache], env=env,
                                 check=True, capture_output=True, text=True).stdout.split()
            runs.append({"run": label, "seconds": float(out[-2]), "cached": bool(int(out[-1]))})
            print(runs[-1], flush=True)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    meta = {"model": str(model_dir), "rows": 2 * args.synsets, "date": time.strftime("%Y-%m-%d"), "load": load,
            "cores": os.cpu_count()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    from cedar_hf.atomic import atomic_path

    with atomic_path(RESULTS / "explorer_start.json") as tmp:
        tmp.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    ratio = runs[0]["seconds"] / max(runs[1]["seconds"], 1e-9)
    lines = ["# Explorer start-up: computed vs cached views", "",
             f"`build_explorer` (imports, model load, views, Gradio app) of a 384-latent CEDAR over {2 * args.synsets} "
             f"WordNet lemma/gloss rows, each in a fresh process; {meta['date']}, {meta['cores']} cores, load average "
             f"{load}.", "", "| run | seconds | views from cache |", "|---|---|---|"]
    lines += [f"| {r['run']} | {r['seconds']:.1f} | {'yes' if r['cached'] else 'no'} |" for r in runs]
    lines += ["", f"Second start {ratio:.1f}× faster."]
    with atomic_path(RESULTS / "explorer_start.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
