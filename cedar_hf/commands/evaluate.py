"""`cedar-hf evaluate`: the FVU-matched comparison of dictionaries (paper Table 1 and Figure 8)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import DATA_HELP, command_class, load_dictionary_option

HELP = (
    "Compare dictionaries at matched reconstruction error (the CEDAR paper's Table 1).\n\n"
    "For every model, its dense codes (all ReLU pre-activations of an SAE, all rotated coordinates of CEDAR) "
    "with |value| < τ are zeroed and τ is searched until the protocol's FVU hits each target. Reported there: K "
    "(mean non-zero codes), IC (mean ln C(n, k)), CS (mean cosine), LP (cross-entropy and accuracy of a linear "
    "probe trained on original embeddings, scored on reconstructions of held-out data), CKNNA (k = 10) and dead "
    "latents. A model that cannot reach a target is marked so in the table.\n\n"
    "--protocol cedar-hf (default): every metric in the space centred by the training mean μ — FVU dataset-level "
    "Σ‖x − x̂‖² / Σ‖x − μ‖², CS of x − μ and x̂ − μ, CKNNA of x − μ vs x̂ − μ over all rows. "
    "--protocol msae: MSAE's scoring, as the CEDAR paper's Table 1 used it (use it to compare with the paper) — "
    "per-sample raw var(x − x̂)/var(x) averaged, raw CS, CKNNA of each batch of --cknna-batch-size rows against "
    "its codes, LP of MSAE's probe on L2-normalised inputs. The protocol is recorded in every file written.\n\n"
    "Prints the markdown table and writes evaluation.json, table.md, pareto_k_ic.png (K and IC vs FVU) and "
    "semantic_vs_fvu.png (CKNNA and LP vs FVU) into --output-dir.\n\n"
    "Examples:\n\n"
    "  cedar-hf evaluate -m runs/cedar -d emb --targets 0.3 0.5 -o eval\n\n"
    "  cedar-hf evaluate -m runs/cedar runs/topk -d val_emb --train-data train_emb --targets 0.25 0.30 0.35 "
    "--protocol msae -o eval"
)
ALIASES = {"--models": "--model", "--output": "--output-dir", "--labels-column": "--label-column"}
MULTI = ("--model", "-m", "--targets", "-t")


def _labels(dataset, column: Optional[str], n_rows: int):
    if column is None or dataset is None or column not in dataset.column_names:
        return None
    from cedar_hf.data import dataset_labels

    return dataset_labels(dataset, column, n_rows)


def evaluate(
    models: List[str] = typer.Option(
        ..., "--model", "-m", help="Dictionaries (folders or Hub ids) to compare: `-m A B C` or `-m A -m B`."
    ),
    data: Path = typer.Option(..., "--data", "-d", help="Held-out " + DATA_HELP),
    targets: List[float] = typer.Option(
        [], "--targets", "-t", help="Target FVUs to match, e.g. `--targets 0.25 0.30 0.35` (the default)."
    ),
    train_data: Optional[Path] = typer.Option(
        None, "--train-data", help="Training embedding dataset: its mean is μ in the FVU and the linear probe is "
        "trained on it. Without it μ is the evaluation mean and the probe uses half of the evaluation rows."
    ),
    label_column: str = typer.Option("label", help="Column holding class labels for LP (skipped if absent)."),
    output_dir: Path = typer.Option(Path("evaluation"), "--output-dir", "-o", help="Folder for the JSON, markdown "
                                    "and PNGs."),
    names: Optional[str] = typer.Option(None, help="Comma-separated display names (default: folder names)."),
    curve: Optional[str] = typer.Option(
        "0.15,0.20,0.40,0.50", help="Extra comma-separated FVUs for the CKNNA/LP-vs-FVU curves ('' for none)."
    ),
    protocol: str = typer.Option("cedar-hf", "--protocol", help="Metric definitions: 'cedar-hf' (all centred by "
                                 "the training mean) or 'msae' (MSAE's scoring, the paper's Table 1)."),
    cknna_batch_size: Optional[int] = typer.Option(
        None, "--cknna-batch-size", help="Rows per CKNNA batch (msae default: MSAE's 10000, one batch of all rows "
        "when there are fewer; cedar-hf default: all rows at once). Setting it changes the protocol, and its "
        "recorded name says so (e.g. msae+cknna_batch_size=2048)."
    ),
    cknna_k: int = typer.Option(10, help="Mutual nearest neighbours in CKNNA (the paper uses 10)."),
    tolerance: float = typer.Option(0.005, help="A target counts as reached within ± this FVU."),
    max_rows: Optional[int] = typer.Option(None, help="Evaluate only the first N rows (quick looks)."),
    save_in_models: bool = typer.Option(
        False, help="Also write each model's own results as evaluation.json into its (local) folder, where the "
        "model card picks them up."
    ),
) -> None:
    from cedar_hf.data import embedding_matrix, load_embeddings
    from cedar_hf.evaluation import compare_models, get_protocol, markdown_table, write_report

    try:
        chosen = get_protocol(protocol, cknna_batch_size=cknna_batch_size)
    except ValueError as error:
        raise typer.BadParameter(f"--protocol {protocol!r} / --cknna-batch-size {cknna_batch_size}: {error}")
    targets = sorted(targets) or [0.25, 0.30, 0.35]
    if any(not 0 < t < 1 for t in targets):
        raise typer.BadParameter(f"--targets {targets}: every target FVU must be in (0, 1)")
    display = [n.strip() for n in names.split(",")] if names else [Path(m).name or m for m in models]
    if len(display) != len(models) or len(set(display)) != len(display):
        raise typer.BadParameter(f"--names {names!r} must give {len(models)} distinct names")
    eval_ds = load_embeddings(data)
    if max_rows is not None:
        eval_ds = eval_ds.select(range(min(max_rows, len(eval_ds))))
    train_ds = load_embeddings(train_data) if train_data is not None else None
    x_eval = embedding_matrix(eval_ds, flatten_tokens=True)
    x_train = embedding_matrix(train_ds, flatten_tokens=True) if train_ds is not None else None
    eval_labels = _labels(eval_ds, label_column, x_eval.shape[0])
    train_labels = _labels(train_ds, label_column, x_train.shape[0]) if x_train is not None else None
    if eval_labels is None:
        typer.echo(f"no {label_column!r} column in {data}: LP is skipped", err=True)
    dictionaries = {name: load_dictionary_option(path) for name, path in zip(display, models)}
    curve_targets = [float(v) for v in curve.split(",") if v.strip()] if curve else []
    report = compare_models(dictionaries, x_eval, targets, train_data=x_train, eval_labels=eval_labels,
                            train_labels=train_labels, curve_targets=curve_targets, cknna_k=cknna_k,
                            tolerance=tolerance, protocol=chosen)
    report["models_paths"] = dict(zip(display, models))
    report["data"] = str(data)
    paths = write_report(report, output_dir)
    if save_in_models:
        _save_in_models(report, dict(zip(display, models)))
    typer.echo(markdown_table(report))
    typer.echo(f"\nwrote {paths['json']}, {paths['markdown']} and {', '.join(str(p) for p in paths['plots'])}")


def _save_in_models(report: dict, paths: dict) -> None:
    """One `evaluation.json` per local model folder: its rows plus the shared context of the comparison."""
    from cedar_hf.evaluation import write_json

    shared = {key: value for key, value in report.items() if key != "models"}
    for name, path in paths.items():
        folder = Path(path)
        if not folder.is_dir():
            typer.echo(f"{path} is not a local folder: its evaluation.json is only in the report", err=True)
            continue
        entry = {**shared, "name": name, **report["models"][name]}
        entry.pop("sweep", None)  # the raw τ sweep stays in the comparison report
        write_json(entry, folder / "evaluation.json")


def register(app: typer.Typer) -> None:
    app.command("evaluate", help=HELP, cls=command_class(ALIASES, MULTI),
                short_help="Compare dictionaries at matched FVU (the CEDAR paper's Table 1).")(evaluate)
