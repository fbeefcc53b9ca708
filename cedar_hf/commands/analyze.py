"""`cedar-hf analyze`: energy, modality, bridges and stability of a dictionary, as JSON and PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import DATA_HELP, MODEL_HELP, command_class, load_dictionary_option

HELP = (
    "Energy distribution, modality histograms (paper Fig. 4), modality-classifier accuracies (Fig. 6), strongest "
    "bridge pairs with concept names and stability vs top-N (Fig. 2) of a dictionary over an embedding dataset; "
    "writes analysis.json and PNGs to --output-dir. An analysis whose data is missing is skipped and the command "
    "says why (analysis.json keeps the reason under `skipped`): modality needs a `modality` column with two "
    "values, bridges also need aligned pairs (a `pair_id` column or --pairs), stability needs --reference.\n\n"
    "Examples:\n\n"
    "  cedar-hf analyze -m runs/cedar -d emb -o analysis\n\n"
    "  cedar-hf analyze -m runs/cedar -d coco_emb -o runs/cedar/analysis -r runs/cedar_seed1 --pairs pairs.csv"
)


def analyze(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    data: Path = typer.Option(
        ..., "--data", "-d", help=DATA_HELP + " A `modality` column enables modality scores, a `pair_id` column or "
        "--pairs enables bridges."
    ),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Where analysis.json and the PNGs are written."),
    pairs: Optional[Path] = typer.Option(
        None, help="File of aligned (image id, text id) pairs: .csv/.tsv with two columns, .json list, or .jsonl."
    ),
    reference: List[str] = typer.Option(
        [], "--reference", "-r", help="Another dictionary (other seed or data mixture) to measure stability against; "
        "repeat the option for several."
    ),
    modalities: Optional[str] = typer.Option(
        None, help="The two `modality` values to compare, comma-separated (default: image,text)."
    ),
    batch_size: int = typer.Option(1024, help="Embeddings encoded at once."),
    bins: int = typer.Option(20, help="Bins of the modality and classifier histograms."),
    top: int = typer.Option(20, "--top", "-n", help="How many of the strongest bridge pairs to report."),
) -> None:
    from cedar_hf.analysis import analyze_dictionary

    names = tuple(part.strip() for part in modalities.split(",")) if modalities else None
    if names is not None and len(names) != 2:
        raise typer.BadParameter(f"--modalities {modalities!r} must name exactly two values, e.g. image,text")
    dictionary = load_dictionary_option(model)
    references = {f"vs {Path(path).name}": load_dictionary_option(path) for path in reference}
    result = analyze_dictionary(
        dictionary, data, pairs=pairs, references=references or None, modalities=names, output_dir=output_dir,
        batch_size=batch_size, bins=bins, top_pairs=top,
    )
    typer.echo(f"{result['rows']} embeddings, {result['n_latents']} concepts ({result['dead']} never active); "
               f"90% of the energy in the top {result['concepts_for_share']['0.9']}")
    if result.get("modality"):
        accuracy = result["modality"]["energy_weighted_mean_accuracy"]
        typer.echo(f"energy-weighted modality-classifier accuracy: {accuracy:.3f}")
    bridge = result.get("bridge") or {}
    for entry in bridge.get("top", [])[:5]:
        typer.echo(f"bridge {entry['score']:.4f}: #{entry['image_concept']} {entry['image_label']} -> "
                   f"#{entry['text_concept']} {entry['text_label']}")
    for entry in bridge.get("top_shared", [])[:3]:
        typer.echo(f"shared {entry['score']:.4f}: #{entry['image_concept']} {entry['image_label']}")
    for name, entry in (result.get("stability") or {}).get("pairs", {}).items():
        typer.echo(f"stability {name}: {entry['overall']:.3f} overall")
    for name, reason in (result.get("skipped") or {}).items():
        typer.echo(f"skipped {name}: {reason}")
    typer.echo(f"wrote analysis.json and {', '.join(result['figures'])} to {output_dir}")


def register(app: typer.Typer) -> None:
    app.command("analyze", help=HELP, cls=command_class({"--top-pairs": "--top"}),
                short_help="Energy, modality, bridges and stability of a dictionary (JSON + PNGs).")(analyze)
