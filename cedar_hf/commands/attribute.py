"""`cedar-hf attribute`: why two inputs are similar, split exactly over a dictionary's concepts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import command_class

HELP = (
    "Split the similarity of two inputs A and C into per-concept terms. Each input is a text or an image file "
    "(a path ending in .png/.jpg/...), so image-text, text-text and image-image pairs all work through the "
    "backbone. For CEDAR (orthogonal U) the split is exact over the axes: (a - b)·(c - b) = sum_d z_a,d z_c,d; the "
    "top-k axes of A or C are the explained part, the other axes the residual, and the mean terms make up the "
    "rest of the raw dot product and the cosine. For an SAE the same command reports the reconstruction-error term "
    "no latent explains. Prints a table and writes a bar-chart PNG.\n\n"
    "Examples:\n\n"
    "  cedar-hf attribute 'a dog chasing a ball' 'a puppy playing' -m runs/cedar -b minilm -o why.png\n\n"
    "  cedar-hf attribute photo.jpg 'a dog on the beach' -m runs/clip-cedar --k 10"
)


def attribute(
    a: str = typer.Argument(..., help="First input: a text or an image path."),
    c: str = typer.Argument(..., help="Second input: a text or an image path."),
    model: str = typer.Option(..., "--model", "-m", help="Dictionary folder or Hub id."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Encoder of the inputs (default: the "
                                           "dictionary's config.backbone)."),
    k: Optional[int] = typer.Option(None, "--k", "-k", help="Active latents per input defining the explained part "
                                    "(default: the dictionary's k)."),
    top: int = typer.Option(12, "--top", "-n", help="Concept terms shown before the grouped rest."),
    measure: str = typer.Option("cosine", "--measure", help="Units of the bar chart: cosine or dot."),
    output: Path = typer.Option(Path("attribution.png"), "--output", "-o", help="The bar-chart PNG."),
    json_output: Optional[Path] = typer.Option(None, "--json", help="Also write every term as JSON here."),
) -> None:
    import json

    from cedar_hf.auto import load_dictionary
    from cedar_hf.interpret.attribution import attribute_similarity
    from cedar_hf.interpret.explanations import IMAGE_SUFFIXES
    from cedar_hf.atomic import atomic_path

    if measure not in ("cosine", "dot"):
        raise typer.BadParameter(f"--measure {measure!r} must be cosine or dot")
    if top < 1:
        raise typer.BadParameter(f"--top {top} must be at least 1")
    for value in (a, c):  # a missing image would otherwise be embedded as the text "photo.jpg"
        if value.lower().endswith(IMAGE_SUFFIXES) and not Path(value).is_file():
            raise typer.BadParameter(f"image {value!r} does not exist (inputs ending in an image suffix are files)")
    dictionary = load_dictionary(model)
    try:
        attribution = attribute_similarity(dictionary, a, c, k=k, backbone=backbone)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    typer.echo(attribution.table(top))
    path = attribution.plot(output, n=top, measure=measure)
    typer.echo(f"  -> {path}")
    if json_output is not None:
        with atomic_path(json_output) as tmp:
            tmp.write_text(json.dumps(attribution.to_dict(), indent=2, ensure_ascii=False))
        typer.echo(f"  -> {json_output}")


def register(app: typer.Typer) -> None:
    app.command(name="attribute", help=HELP, cls=command_class(),
                short_help="Why two inputs are similar, split over a dictionary's concepts.")(attribute)
