"""`cedar-hf search`: find dataset rows by concept names or by an example."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

HELP = (
    "Search an embedding dataset through a dictionary's concepts. Every row is encoded once (k-sparse codes); "
    "--concept NAME (repeatable) ranks rows by how many of the named concepts are active and by their summed "
    "coefficients; --example TEXT_OR_IMAGE ranks rows by the cosine of their codes to the example's code (or of "
    "their reconstructions, --space reconstruction, served by faiss when installed).\n\n"
    "Examples:\n"
    "  cedar-hf search --model cedar-demo/model --data cedar-demo/cache/embeddings-... --concept music\n"
    "  cedar-hf search --model runs/clip-cedar --data emb/ --example query.jpg --n 20"
)


def search(
    model: str = typer.Option(..., "--model", "-m", help="Dictionary folder or Hub id."),
    data: Path = typer.Option(..., "--data", "-d", help="Embedding dataset folder (from cedar-hf extract)."),
    concept: List[str] = typer.Option([], help="Concept name or latent index (repeatable)."),
    example: Optional[str] = typer.Option(None, help="A text or an image path to find neighbours of."),
    backbone: Optional[str] = typer.Option(None, help="Encoder of --example (default: config.backbone)."),
    k: Optional[int] = typer.Option(None, help="Active latents per row (default: the dictionary's k)."),
    space: str = typer.Option("codes", help="Example search in 'codes' (sparse cosine) or 'reconstruction'."),
    n: int = typer.Option(10, help="How many rows to return."),
) -> None:
    from cedar_hf.auto import load_dictionary
    from cedar_hf.interpret.search import ConceptIndex

    if bool(concept) == (example is not None):
        raise typer.BadParameter("give --concept NAME (repeatable) or --example TEXT_OR_IMAGE, not both")
    dictionary = load_dictionary(model)
    index = ConceptIndex(dictionary, str(data), k=k, space=space)
    results = index.search(concepts=concept or None, example=example, n=n, backbone=backbone)
    for rank, row in enumerate(results, 1):
        text = row["text"] or row["id"] or f"row {row['row']}"
        label = f" [{row['label']}]" if row["label"] is not None else ""
        typer.echo(f"{rank:>3}. {row['score']:+8.3f}  {text[:100]}{label}")
    if not results:
        typer.echo("no row has any of these concepts active")


def register(app: typer.Typer) -> None:
    app.command(name="search", help=HELP)(search)
