"""`cedar-hf score`: concept-quality scores that need no LLM and no person (cedar_hf.interpret.quality)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import BACKBONE_HELP, DATA_HELP, MODEL_HELP, command_class, load_dictionary_option

HELP = (
    "Score how good a dictionary's concepts and their names are, with no LLM and no person, from each concept's "
    "top-activating examples in an embedding dataset:\n\n"
    "  purity     share of the most common --label-column value among a concept's top --examples rows;\n"
    "  fidelity   precision at n of retrieving those examples among --n-random random rows by the cosine with the "
    "name's text embedding (needs a named dictionary: cedar-hf name);\n"
    "  caption_agreement   (--captions, BLIP/CoCa) share of the examples' sparse captions containing the name.\n\n"
    "Each is reported per concept and as mean/std over the dictionary, beside its chance level. Writes "
    "quality.json and quality.md to --output-dir.\n\n"
    "Examples:\n\n"
    "  cedar-hf score -m runs/cedar -d emb -b minilm -o scores\n\n"
    "  cedar-hf score -m runs/clip-cedar -d emb/clip --label-column label --captions -o scores"
)


def score(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", "-d", help=DATA_HELP),
    output_dir: Path = typer.Option(Path("quality"), "--output-dir", "-o", help="Where quality.json/.md go."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Encoder for the names. " + BACKBONE_HELP),
    label_column: str = typer.Option("label", help="Dataset column for purity (skipped when absent)."),
    examples: int = typer.Option(10, help="Top-activating examples per concept."),
    n_random: int = typer.Option(40, help="Random distractor rows for name fidelity (chance = examples / (examples "
                                 "+ n_random))."),
    k: Optional[int] = typer.Option(None, help="Active latents when encoding (default: the dictionary's k)."),
    captions: bool = typer.Option(False, help="Also score caption agreement (a BLIP-style captioning backbone and "
                                  "a dataset with images: an image column or image-path ids)."),
    image_root: Optional[Path] = typer.Option(None, help="Folder the dataset's image ids are relative to."),
    seed: int = typer.Option(0, help="Seed of the random rows."),
    top: int = typer.Option(10, "--top", "-n", help="Print the best and worst this many concepts."),
) -> None:
    from cedar_hf.interpret.quality import concept_quality, sparse_caption_fn

    if not data.exists():
        raise typer.BadParameter(f"--data {str(data)!r} does not exist")
    if examples < 1 or n_random < 1:
        raise typer.BadParameter(f"--examples {examples} and --n-random {n_random} must be at least 1")
    dictionary = load_dictionary_option(model)
    caption_fn = sparse_caption_fn(dictionary, backbone, str(data), k=k, image_root=image_root) if captions else None
    try:
        report = concept_quality(dictionary, str(data), backbone, label_column=label_column, n=examples,
                                 n_random=n_random, k=k, captions=caption_fn, seed=seed)
    except ValueError as err:
        raise typer.BadParameter(f"{err} (model {model}, data {data})") from err
    report.settings["model"] = model
    json_path, md_path = report.save(output_dir)
    if not report.summary:
        typer.echo("nothing scored: name the dictionary (cedar-hf name) and/or give a --label-column")
    for key, row in report.summary.items():
        chance = "—" if row["chance"] is None else f"{row['chance']:.3f}"
        typer.echo(f"{key:<18} mean {row['mean']:.3f} ± {row['std']:.3f} over {row['scored']} concepts "
                   f"(chance {chance}; {row['unscored']} unscored)")
    _print_extremes(report, top)
    typer.echo(f"-> {json_path}\n-> {md_path}")


def _print_extremes(report, top: int) -> None:
    """The best and the worst `top` concepts by the first score that was computed."""
    key = next((k for k in ("fidelity", "purity", "caption_agreement") if k in report.summary), None)
    ranked = sorted((c for c in report.per_concept if key and c.get(key) is not None), key=lambda c: -c[key])
    if not ranked or top < 1:
        return
    for title, rows in (("best", ranked[:top]), ("worst", ranked[::-1][:top])):
        shown = ", ".join(f"#{c['latent']} {c.get('name') or '-'} {c[key]:.2f}" for c in rows)
        typer.echo(f"{title} {len(rows)} by {key}: {shown}")


def register(app: typer.Typer) -> None:
    app.command(name="score", help=HELP, cls=command_class({"--n": "--examples", "--show": "--top"}),
                short_help="Concept-quality scores with no LLM: purity, name fidelity, caption agreement.")(score)
