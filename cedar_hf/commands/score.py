"""`cedar-hf score`: concept-quality scores that need no LLM and no person (cedar_hf.interpret.quality)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import load_dictionary_option

HELP = (
    "Score how good a dictionary's concepts and their names are, with no LLM and no person, from each concept's "
    "top-activating examples in an embedding dataset:\n\n"
    "  purity     share of the most common --label-column value among a concept's top-n examples;\n"
    "  fidelity   precision at n of retrieving those examples among --n-random random rows by the cosine with the "
    "name's text embedding (needs a named dictionary: cedar-hf name);\n"
    "  caption_agreement   (--captions, BLIP/CoCa) share of the examples' sparse captions containing the name.\n\n"
    "Each is reported per concept and as mean/std over the dictionary, beside its chance level. Writes "
    "quality.json and quality.md to --output-dir.\n\n"
    "Example: cedar-hf score -m runs/cedar -d emb/ --label-column label -o scores/"
)


def score(
    model: str = typer.Option(..., "--model", "-m", help="Dictionary folder (save_pretrained output) or Hub id."),
    data: Path = typer.Option(..., "--data", "-d", help="Embedding dataset folder (cedar-hf extract output)."),
    output_dir: Path = typer.Option(Path("quality"), "--output-dir", "-o", help="Where quality.json/.md go."),
    backbone: Optional[str] = typer.Option(None, help="Encoder for the names (default: the dictionary's "
                                           "config.backbone; 'minilm' is the offline MiniLM)."),
    label_column: str = typer.Option("label", help="Dataset column for purity (skipped when absent)."),
    n: int = typer.Option(10, help="Top-activating examples per concept."),
    n_random: int = typer.Option(40, help="Random distractor rows for name fidelity (chance = n / (n + n_random))."),
    k: Optional[int] = typer.Option(None, help="Active latents when encoding (default: the dictionary's k)."),
    captions: bool = typer.Option(False, help="Also score caption agreement (a BLIP-style captioning backbone and "
                                  "a dataset with images: an image column or image-path ids)."),
    image_root: Optional[Path] = typer.Option(None, help="Folder the dataset's image ids are relative to."),
    seed: int = typer.Option(0, help="Seed of the random rows."),
    show: int = typer.Option(10, help="Print the best and worst this many concepts."),
) -> None:
    from cedar_hf.interpret.quality import concept_quality, sparse_caption_fn

    if not data.exists():
        raise typer.BadParameter(f"--data {str(data)!r} does not exist")
    if n < 1 or n_random < 1:
        raise typer.BadParameter(f"--n {n} and --n-random {n_random} must be at least 1")
    dictionary = load_dictionary_option(model)
    caption_fn = sparse_caption_fn(dictionary, backbone, str(data), k=k, image_root=image_root) if captions else None
    try:
        report = concept_quality(dictionary, str(data), backbone, label_column=label_column, n=n,
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
    typer.echo(f"-> {json_path}\n-> {md_path}")


def register(app: typer.Typer) -> None:
    app.command(name="score", help=HELP, context_settings={"help_option_names": ["-h", "--help"]})(score)
