"""Why does our TopK SAE flatten where overcomplete's keeps improving? One change at a time toward overcomplete (#14).

In the quality benchmark (`scripts/benchmark_quality.py`, seed 0, 270-epoch budget, patience 10) our
`TopK + residual aux` learns faster early (held-out FVU 0.519 vs 0.680 after epoch 1) but stops on its plateau at
epoch 143 (FVU 0.169), while overcomplete 0.3.0's TopKSAE, trained on the same standardised tensors with the same
loss, keeps improving until epoch 228 (FVU 0.155). The loss is not the cause (`TopK + residual aux (MSE)`, plain MSE
as overcomplete, follows the normalised-MSE run within the seed spread). What else differs:

- initialisation: ours is MSAE's (`sae.py` `_init_weights`): unit decoder rows, the encoder tied to them with
  rows of norm 0.01; overcomplete's is torch's `nn.Linear` default for the encoder (weights and bias uniform in
  ±1/√d, independent of the dictionary) and a Xavier-uniform dictionary normalised to unit rows;
- optimiser: ours AdamW (weight decay 0, i.e. Adam) with ε 6.25e-10 (MSAE's); overcomplete's `train_sae` uses the
  caller's `torch.optim.Adam` (here ε 1e-8, torch's default); both clip the gradient norm to 1.0 (overcomplete's
  `clip_grad` default);
- the pre-encoder bias `b_dec` (ours learns one; overcomplete has none: `decoder_bias=False`);
- how unit decoder rows are kept (ours removes the gradient's component along each row, and after the step rescales
  rows to unit norm with the encoder scaled to match; overcomplete steps along the full gradient and divides the rows
  by their norm before the next forward, the encoder untouched: `decoder_norm="project"`);
- the loss (ours the per-sample normalised MSE, overcomplete the plain MSE): varied only in "all of overcomplete's",
  which takes every one of overcomplete's choices at once, so its curve should be overcomplete's own up to the data
  order (and says what is left if it is not).

Each variant is our `TopK + residual aux` (k = 64, 8×, `residual_aux_coefficient=0.1`) trained with
`cedar_hf.train`, recipe `cedar-hf` (lr 5e-4, batch 1024), on the quality benchmark's MiniLM / WordNet split
(50k train / 10k held out, its embeddings cache), for a fixed number of epochs at a **constant** learning rate and
with no early stop, so every curve covers the same epochs under overcomplete's schedule (its loop has no decay; at
the 270-epoch budget ours never reached its decay either). "overcomplete init" is `init_scheme="independent"`, which
draws overcomplete's exact initial weights from the same seed (tests/test_models.py). The held-out FVU (first 4096
held-out rows, as both benchmarks evaluate) is recorded after every epoch; at the end, how the latents are used on
the 50k training rows, and the issue's own measure: K (mean active latents) at the FVU targets 0.25 / 0.30 / 0.35 on
the 10k held-out rows, thresholds searched on the dense codes exactly as the quality benchmark's `cedar-hf`
protocol (`cedar_hf.evaluation.search_threshold`, dataset FVU, training mean, ± 0.005). Both are stored beside the
run (`usage.json`), so a report rebuild does not measure them again. overcomplete's own curve is read from the committed benchmark result (`--reference`), not retrained, and so is ours
("ours (stored)") when the `ours` variant is not run; when it is, the report checks it against the stored run.

Results: benchmarks/results/topk_ablation.{md,json} and topk_ablation_curves.png, rebuilt from every cached run after
each one, so two processes can train two variants side by side (`--variants`) and the last to finish writes all.
A run of other `--epochs` or another `--seed` writes its own report (`--results-name`, say topk_ablation_270ep_seed1).

    OMP_NUM_THREADS=1 python scripts/benchmark_topk_ablation.py --variants ours "overcomplete init"
    OMP_NUM_THREADS=1 python scripts/benchmark_topk_ablation.py --train-overcomplete --variants "all of overcomplete's"
    python scripts/benchmark_topk_ablation.py --epochs 5 --variants ours          # a short look
    python scripts/benchmark_topk_ablation.py --report-only                       # rewrite the report
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import torch

from cedar_hf.atomic import read_json, write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_quality import (BACKBONE, CACHE, RESULTS, TARGETS, ExportedSAE, _run_record,  # noqa: E402
                               embed_glosses, overcomplete_inputs, overcomplete_training_row,
                               run_overcomplete_trainer, slug, split_embeddings, train_resumable, training_row)
from benchmark_quality_report import _atomic_write  # noqa: E402

REFERENCE = RESULTS / "quality_topk-270ep.json"
OURS_NAME = "TopK + residual aux"
STORED_OURS = "ours (stored)"
REFERENCE_NAME = "overcomplete TopK"
# name -> (what it changes, model-config overrides, TrainingArgs overrides)
VARIANTS = {
    "ours": ("nothing: MSAE's init (tied, encoder rows 0.01), AdamW ε 6.25e-10, clip 1.0", {}, {}),
    "Gao init": ("encoder tied to the decoder with unit rows (`encoder_init_norm=1`, Gao et al.)",
                 {"encoder_init_norm": 1.0}, {}),
    "overcomplete init": ("overcomplete's init (`init_scheme=\"independent\"`): nn.Linear encoder (±1/√d, with "
                          "bias), independent Xavier unit-row dictionary", {"init_scheme": "independent"}, {}),
    "Adam eps 1e-8, no clipping": ("overcomplete's Adam ε 1e-8, and no gradient clipping (both clip at 1.0)", {},
                                 {"adam_epsilon": 1e-8, "max_grad_norm": 0.0}),
    "overcomplete init + eps": ("overcomplete's init and Adam ε 1e-8: its optimiser exactly",
                              {"init_scheme": "independent"}, {"adam_epsilon": 1e-8}),
    "no b_dec": ("no pre-encoder / decoder bias (`decoder_bias=False`), as overcomplete's SAE",
                 {"decoder_bias": False}, {}),
    "projected decoder": ("overcomplete's unit-norm rule (`decoder_norm=\"project\"`): full gradient, rows divided by "
                          "their norm after the step, encoder untouched", {"decoder_norm": "project"}, {}),
    "all of overcomplete's": ("every choice above at once and its plain-MSE loss: init, Adam ε 1e-8, no b_dec, "
                              "projected decoder, `reconstruction_loss=\"mse\"`",
                              {"init_scheme": "independent", "decoder_bias": False, "decoder_norm": "project",
                               "reconstruction_loss": "mse"}, {"adam_epsilon": 1e-8}),
}
USAGE_VERSION = 1  # bump when `usage` measures something new: the stored usage.json files are then measured again


def run_folder(name: str, seed: int, epochs: int) -> Path:
    return CACHE / "topk-ablation" / f"{slug(name)}-seed{seed}-{epochs}ep"


def train_variant(name: str, seed: int, epochs: int, paths: dict, n_train: int):
    """Train one variant (resumed from its last checkpoint when a run was cut short); returns the folder."""
    import cedar_hf

    folder = run_folder(name, seed, epochs)
    if (folder / "metrics.json").exists():
        return folder
    _, config, overrides = VARIANTS[name]
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES["topk_sae"]
    torch.manual_seed(seed)
    model = model_class(config_class(d_in=384, backbone=BACKBONE, embedding_site="text_embeds", expansion_factor=8,
                                     k=64, residual_aux_coefficient=0.1, **config))
    epoch_steps = n_train // 1024
    train_resumable(model, folder, paths, f"{name!r} seed {seed}, {epochs} epochs", recipe="cedar-hf",
                    num_epochs=epochs, seed=seed, lr_schedule="constant", plateau_patience=0, eval_steps=epoch_steps,
                    save_steps=2 * epoch_steps, **overrides)
    return folder


@torch.no_grad()
def firing(model, train_path: Path) -> dict:
    """How a trained dictionary uses its latents on the training rows: the share that never fire, that fire on
    fewer than 1 row in 10⁴, that fire on more than 10 % of rows (dense), the effective number of latents
    `exp(entropy)` of the firing counts as a share of all, and the mean cosine of each encoder row with its
    decoder row (1 at the tied start). `model`: ours, or overcomplete's re-expressed (`ExportedSAE`)."""
    import datasets

    rows = datasets.load_from_disk(str(train_path)).with_format("torch")["embedding"]
    counts = torch.zeros(model.config.n_latents, dtype=torch.long)
    for start in range(0, len(rows), 4096):
        counts += (model.encode(rows[start:start + 4096].float()) != 0).sum(0)
    shares = counts.double() / counts.sum()
    entropy = -(shares[shares > 0] * shares[shares > 0].log()).sum()
    encoder, decoder = (model.W_enc, model.W_dec) if hasattr(model, "W_enc") else (model.W, model.D)
    cosine = torch.nn.functional.cosine_similarity(encoder, decoder, dim=-1).mean()
    return {"dead_share": float((counts == 0).float().mean()),
            "rare_share": float((counts < len(rows) / 1e4).float().mean()),
            "dense_share": float((counts > len(rows) / 10).float().mean()),
            "effective_latents_share": float(entropy.exp() / len(counts)),
            "encoder_decoder_cosine": float(cosine), "rows": len(rows)}


@torch.no_grad()
def matched_k(model, paths: dict) -> dict:
    """K (mean active latents per held-out row) at each FVU target, as the quality benchmark's `cedar-hf`
    protocol finds it: τ searched on the model's dense codes (`search_threshold`, dataset FVU with the training
    mean, tolerance 0.005) on every held-out row. {target: K, or None when the target is out of reach}."""
    from cedar_hf.data import embedding_matrix, load_dataset
    from cedar_hf.evaluation.threshold import DenseCodes, scan_thresholds, search_threshold

    x = embedding_matrix(load_dataset(paths["val"]), flatten_tokens=True)
    mean = embedding_matrix(load_dataset(paths["train"]), flatten_tokens=True).double().mean(0)
    codes = DenseCodes(model, x)
    scan = scan_thresholds(model, x, mean, codes)
    found = {}
    for target in TARGETS:
        search = search_threshold(model, x, target, mean, codes=codes, scan=scan)
        found[f"{target:.2f}"] = next(p["K"] for p in search.history if p["tau"] == search.tau) if search.reached \
            else None
    return found


def usage(path: Path, load_model, paths: dict) -> dict:
    """`firing` and `matched_k` of a finished run's model (`load_model()`), measured once and stored at `path`
    (`usage.json` beside the run)."""
    if path.exists():
        stored = read_json(path, "latent usage")
        if stored.get("version") == USAGE_VERSION:
            return stored["usage"]
    model = load_model()
    measured = {**firing(model, paths["train"]), "matched_k": matched_k(model, paths)}
    write_json(path, {"version": USAGE_VERSION, "usage": measured})
    return measured


def load_ours(folder: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(folder)).eval()


def overcomplete_file(seed: int, epochs: int) -> Path:
    return CACHE / "topk-ablation" / f"overcomplete-topk-seed{seed}-{epochs}ep.pt"


def train_overcomplete_reference(seed: int, epochs: int, paths: dict) -> Path:
    """overcomplete's TopKSAE itself for the variants' epochs, no early stop, through the quality benchmark's runner
    (`benchmark_quality_overcomplete.py`, same inputs, its own `train_sae`; resumable): a reference whose K can be
    measured at the same epochs, and a check that it repeats the stored run's curve."""
    out = overcomplete_file(seed, epochs)
    if out.exists():
        return out
    inputs = overcomplete_inputs(paths)
    if not inputs.exists():
        raise SystemExit(f"{inputs} is missing: run the quality benchmark's overcomplete TopK once "
                         "(scripts/benchmark_quality.py --stage train --models 'overcomplete TopK'), which writes it")
    out.parent.mkdir(parents=True, exist_ok=True)
    run_overcomplete_trainer(inputs, out, seed, epochs, patience=epochs + 1, kinds=["topk"])
    return out


def overcomplete_row(out: Path, paths: dict, epochs: int) -> dict:
    """The overcomplete run of `train_overcomplete_reference` as a table row (its K and usage measured on the
    re-expressed model, `ExportedSAE`)."""
    result = torch.load(out, weights_only=False)["topk"]
    inputs = torch.load(overcomplete_inputs(paths))
    load = lambda: ExportedSAE(result, inputs["mean"], inputs["scale"])  # noqa: E731
    return {**overcomplete_training_row(result, epochs), "changes": "overcomplete 0.3.0 itself (its own loop: Adam "
            "ε 1e-8, clipping 1.0, constant LR), trained here for these epochs",
            **usage(out.with_suffix(".usage.json"), load, paths)}


def run_row(name: str, folder: Path, epochs: int, n_train: int, paths: dict) -> dict:
    settings = read_json(folder / "training_args.json", "training arguments")
    return {**training_row(_run_record(folder), n_train, epochs), "changes": VARIANTS[name][0],
            **{key: settings[key] for key in ("adam_epsilon", "max_grad_norm", "lr_schedule")},
            **usage(folder / "usage.json", lambda: load_ours(folder), paths)}


def first_epochs(row: dict, epochs: int, n_train: int, changes: str) -> dict:
    """A reference run cut to its first `epochs` epochs (the variants' length), for the table and the figure."""
    per_epoch = n_train // row.get("batch_size", 1024)
    curve = [(step, fvu) for step, fvu in row["eval_curve"] if step <= epochs * per_epoch]
    return {**row, "eval_curve": curve, "steps": curve[-1][0], "epochs": curve[-1][0] / per_epoch,
            "eval_fvu": curve[-1][1], "stopped_on_plateau": False, "max_epochs": epochs, "train_seconds":
            row["train_seconds"] * curve[-1][0] / row["steps"], "changes": changes,
            "full_run": {"epochs": row["epochs"], "eval_fvu": row["eval_fvu"], "stopped_on_plateau":
                         row["stopped_on_plateau"], "max_epochs": row.get("max_epochs")}}


def reproduction_check(ours: dict | None, run: dict | None) -> dict | None:
    """The `ours` variant against the benchmark's own run of the same model and seed (its 270-epoch budget keeps the
    LR constant until epoch 216, so the two are the same run through the variant's epochs): the largest absolute
    difference of the held-out FVU over the common epochs."""
    if not ours or not run or not run.get("eval_curve"):
        return None
    theirs = dict(map(tuple, run["eval_curve"]))
    common = [(fvu, theirs[step]) for step, fvu in ours["eval_curve"] if step in theirs]
    return {"epochs": len(common),
            "max_abs_fvu_difference": max(abs(a - b) for a, b in common) if common else None}


def fvu_at(row: dict, epoch: int):
    per_epoch = row["steps"] / row["epochs"]
    curve = {round(step / per_epoch): fvu for step, fvu in row["eval_curve"]}
    return curve.get(epoch)


def markdown(results: dict, marks: list) -> str:
    seed = results["seed"]
    lines = ["# TopK ablation: one change at a time toward overcomplete's TopKSAE", "",
             f"Protocol: {results['protocol']}", "",
             "| variant | changes | " + " | ".join(f"FVU @{e}" for e in marks)
             + " | " + " | ".join(f"K @{t:.2f}" for t in TARGETS)
             + " | dead | rare | dense | effective | cos(enc, dec) | s |",
             "|---" * (len(marks) + len(TARGETS) + 8) + "|"]
    for name, seeds in results["runs"].items():
        row = seeds[str(seed)]
        cells = [f"{fvu:.4f}" if fvu is not None else "—" for fvu in (fvu_at(row, e) for e in marks)]
        matched = row.get("matched_k", {})
        cells += [f"{matched[f'{t:.2f}']:.2f}" if matched.get(f"{t:.2f}") is not None else "—" for t in TARGETS]
        usage = [f"{100 * row[key]:.1f} %" if key in row else "—"
                 for key in ("dead_share", "rare_share", "dense_share", "effective_latents_share")]
        usage.append(f"{row['encoder_decoder_cosine']:.3f}" if "encoder_decoder_cosine" in row else "—")
        lines.append(f"| {name} | {row.get('changes', '')} | " + " | ".join(cells + usage) +
                     f" | {row['train_seconds']:.0f} |")
    lines += ["", "FVU @E: held-out FVU (first 4096 held-out rows) after epoch E. K @F: mean active latents at "
              "held-out FVU F (all 10k held-out rows, τ searched on the dense codes: the quality benchmark's cedar-hf "
              "protocol) after the last epoch. On the 50k training rows at the "
              "end: dead, latents that never fire; rare, fire on fewer than 5 rows (1 in 10⁴); dense, on more than "
              "10 %; effective, exp(entropy) of the firing counts as a share of all latents; cos(enc, dec), the mean "
              "cosine of each encoder row with its decoder row. s: one-thread seconds of the run, beside another "
              "training. overcomplete's row is its run trained here for these epochs when there is one "
              "(`--train-overcomplete`), else its committed run (`" + results["reference"] + "`); a row from a "
              "committed run (overcomplete's then, and one marked stored) is cut to these epochs (seconds pro rata), "
              "its K and latent usage not measured."]
    check = results.get("reproduction_check")
    if check:
        lines += ["", f"Reproduction: `ours` against the quality benchmark's run of the same model and seed "
                  f"(`{check['against']}`) over {check['epochs']} epochs: largest held-out FVU difference "
                  f"{check['max_abs_fvu_difference']:.2e}."]
    check = results.get("overcomplete_reproduction_check")
    if check:
        lines += ["", f"Reproduction: overcomplete's run here against its stored run (`{check['against']}`) over "
                  f"{check['epochs']} epochs: largest held-out FVU difference {check['max_abs_fvu_difference']:.2e}."]
    if results.get("reading"):
        lines += ["", "## Reading", "", results["reading"]]
    return "\n".join(lines) + "\n"


def plot_curves(results: dict) -> bytes:
    """Held-out FVU by epoch, every run: the whole run (log scale) and its second half (linear), where the curves
    part. overcomplete's own run is the thick dashed line."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    epochs_total = results["epochs"]
    late = []  # the second half's FVUs of every run: the right panel's y range
    for name, seeds in results["runs"].items():
        row = seeds[str(results["seed"])]
        per_epoch = row["steps"] / row["epochs"]
        epochs, fvus = zip(*[(step / per_epoch, fvu) for step, fvu in row["eval_curve"] if fvu])
        style = dict(ls="--", lw=2.4, color="black") if name == REFERENCE_NAME else dict(lw=1.5)
        for ax in axes:
            ax.plot(epochs, fvus, label=name, **style)
        late += [f for e, f in zip(epochs, fvus) if e >= epochs_total / 2]
    axes[1].set_xlim(epochs_total / 2, epochs_total)
    if late:
        axes[1].set_ylim(min(late) * 0.995, max(late) * 1.005)
    axes[0].set_yscale("log")
    axes[0].set_title("held-out FVU (log), whole run")
    axes[1].set_title("second half (linear): where the curves part")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("held-out FVU at k = 64")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"TopK ablation, seed {results['seed']}, constant LR, {epochs_total} epochs, no early stop")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_report(results: dict, marks: list, name: str = "topk_ablation") -> None:
    write_json(RESULTS / f"{name}.json", results)
    _atomic_write(RESULTS / f"{name}.md", markdown(results, marks))
    _atomic_write(RESULTS / f"{name}_curves.png", plot_curves(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="Variants to train (default: all).")
    parser.add_argument("--epochs", type=int, default=120,
                        help="Epochs each variant trains, at a constant LR (the committed report: 120).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the initialisation and the shuffles.")
    parser.add_argument("--n-train", type=int, default=50000, help="Training rows (as the quality benchmark).")
    parser.add_argument("--n-val", type=int, default=10000, help="Held-out rows (as the quality benchmark).")
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help="A quality-benchmark result JSON whose training rows hold overcomplete's TopK curve and ours "
                             "for the seed (default: the 270-epoch TopK pair).")
    parser.add_argument("--train-overcomplete", action="store_true",
                        help="Also train overcomplete's TopKSAE itself for --epochs (no early stop), so its K is measured "
                             "at the same epochs; without it (or its cached run) its row is the stored run cut to them.")
    parser.add_argument("--report-only", action="store_true", help="Rewrite the report from the cached runs.")
    parser.add_argument("--results-name", default="topk_ablation",
                        help="Stem of the report under benchmarks/results/ (default: topk_ablation, the committed "
                             "120-epoch report; give another for a run of other --epochs or --seed, e.g. "
                             "topk_ablation_270ep).")
    opts = parser.parse_args()
    paths = dict(zip(("train", "val"), split_embeddings(embed_glosses(opts.n_train + opts.n_val), opts.n_val)))
    if not opts.report_only:
        if opts.train_overcomplete:
            train_overcomplete_reference(opts.seed, opts.epochs, paths)
        for name in opts.variants:
            train_variant(name, opts.seed, opts.epochs, paths, opts.n_train)
    stored = RESULTS / f"{opts.results_name}.json"
    previous = read_json(stored) if stored.exists() else {}
    runs = {} if previous.get("epochs") != opts.epochs else previous.get("runs", {})
    runs = {name: row for name, row in runs.items() if name in VARIANTS}  # the stored rows are re-read below
    for name in VARIANTS:  # every finished run in the cache, so side-by-side processes all land
        folder = run_folder(name, opts.seed, opts.epochs)
        if (folder / "metrics.json").exists():
            runs[name] = {str(opts.seed): run_row(name, folder, opts.epochs, opts.n_train, paths)}
    if not runs:
        raise SystemExit(f"no finished variant runs for seed {opts.seed} at {opts.epochs} epochs under "
                         f"{CACHE / 'topk-ablation'}; train some first (--variants)")
    training = read_json(opts.reference, "quality-benchmark result")["settings"]["training"]
    reference = training.get(REFERENCE_NAME, {})
    if str(opts.seed) not in reference:
        raise SystemExit(f"{opts.reference} has no {REFERENCE_NAME!r} run for seed {opts.seed}")
    overcomplete_check = None
    if overcomplete_file(opts.seed, opts.epochs).exists():  # trained here: measured, and checked against the stored run
        runs[REFERENCE_NAME] = {str(opts.seed): overcomplete_row(overcomplete_file(opts.seed, opts.epochs), paths,
                                                                 opts.epochs)}
        overcomplete_check = reproduction_check(runs[REFERENCE_NAME][str(opts.seed)], reference[str(opts.seed)])
        if overcomplete_check:
            overcomplete_check["against"] = f"{opts.reference.name}, {REFERENCE_NAME!r}"
    else:
        runs[REFERENCE_NAME] = {str(opts.seed): first_epochs(
            reference[str(opts.seed)], opts.epochs, opts.n_train,
            "overcomplete 0.3.0 itself (its own loop: Adam ε 1e-8, clipping 1.0, constant LR)")}
    stored_ours = training.get(OURS_NAME, {}).get(str(opts.seed))
    check = reproduction_check(runs.get("ours", {}).get(str(opts.seed)), stored_ours)
    if "ours" not in runs and stored_ours:  # not run here: the benchmark's own run of it, cut to the same epochs
        runs[STORED_OURS] = {str(opts.seed): first_epochs(stored_ours, opts.epochs, opts.n_train,
                                                          "nothing (the quality benchmark's run of it, not rerun)")}
    if check:
        check["against"] = f"{opts.reference.name}, {OURS_NAME!r}"
    order = [STORED_OURS, *VARIANTS, REFERENCE_NAME]
    runs = {name: runs[name] for name in order if name in runs}
    marks = [e for e in (1, 10, 30, 60, 90, 120, 150, 180, 210, 240, 270) if e <= opts.epochs]
    protocol = (f"our TopK + residual aux (k = 64, 8×, c = 0.1), `cedar_hf.train` recipe cedar-hf (lr 5e-4, batch "
                f"1024), constant LR, {opts.epochs} epochs, no early stop, seed {opts.seed}; MiniLM / WordNet "
                f"embeddings, {opts.n_train} train / {opts.n_val} held out (the quality benchmark's split)")
    results = {"protocol": protocol, "seed": opts.seed, "epochs": opts.epochs, "reference": str(opts.reference.name),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs,
               "reproduction_check": check, "overcomplete_reproduction_check": overcomplete_check,
               "reading": previous.get("reading", "") if previous.get("epochs") == opts.epochs else ""}
    write_report(results, marks, opts.results_name)
    print(markdown(results, marks))


if __name__ == "__main__":
    main()
