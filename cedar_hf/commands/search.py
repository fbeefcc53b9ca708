"""`cedar-hf search`: find dataset rows by concept names or by an example."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import BACKBONE_HELP, DATA_HELP, MODEL_HELP, command_class, load_dictionary_option

HELP = (
    "Search an embedding dataset through a dictionary's concepts. Every row is encoded once (k-sparse codes); "
    "--concept NAME (repeatable) ranks rows by how many of the named concepts are active and by their summed "
    "coefficients; --example TEXT_OR_IMAGE ranks rows by the cosine of their codes to the example's code (or of "
    "their reconstructions, --space reconstruction, served by faiss when installed).\n\n"
    "Examples:\n\n"
    "  cedar-hf search -m runs/cedar -d emb --example 'a piece of music' -b minilm -n 5\n\n"
    "  cedar-hf search -m runs/cedar -d emb --concept 0 --concept 3\n\n"
    "  cedar-hf search -m runs/clip-cedar -d emb/clip --example query.jpg -n 20"
)


def search(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", "-d", help=DATA_HELP),
    concept: List[str] = typer.Option([], help="Concept name or latent index (repeatable)."),
    example: Optional[str] = typer.Option(None, help="A text or an image path to find neighbours of."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Encoder of --example. " + BACKBONE_HELP),
    k: Optional[int] = typer.Option(None, help="Active latents per row (default: the dictionary's k)."),
    space: str = typer.Option("codes", help="Example search in 'codes' (sparse cosine) or 'reconstruction'."),
    top: int = typer.Option(10, "--top", "-n", help="How many rows to return."),
) -> None:
    from cedar_hf.interpret.search import ConceptIndex

    if bool(concept) == (example is not None):
        raise typer.BadParameter("give --concept NAME (repeatable) or --example TEXT_OR_IMAGE, not both")
    if not data.exists():
        raise typer.BadParameter(f"--data {str(data)!r} does not exist")
    dictionary = load_dictionary_option(model)
    index = ConceptIndex(dictionary, str(data), k=k, space=space)
    try:
        results = index.search(concepts=concept or None, example=example, n=top, backbone=backbone)
    except (KeyError, ValueError) as err:  # an unknown concept name, a bad example
        raise typer.BadParameter(f"{err.args[0] if err.args else err}") from None
    for rank, row in enumerate(results, 1):
        text = row["text"] or row["id"] or f"row {row['row']}"
        label = f" [{row['label']}]" if row["label"] is not None else ""
        typer.echo(f"{rank:>3}. {row['score']:+8.3f}  {text[:100]}{label}")
    if not results:
        typer.echo("no row has any of these concepts active")


def register(app: typer.Typer) -> None:
    app.command(name="search", help=HELP, cls=command_class({"--n": "--top"}),
                short_help="Find dataset rows by concept names or by an example.")(search)
