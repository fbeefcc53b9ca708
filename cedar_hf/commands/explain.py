"""`cedar-hf explain`: the active named concepts of texts, images or dataset rows; top-activating examples."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import BACKBONE_HELP, MODEL_HELP, command_class, load_dictionary_option

HELP = (
    "Explain inputs as the few named concepts a dictionary uses for them (the CEDAR paper's Figure 3): a table "
    "in the terminal and one bar-chart PNG per input in --output-dir. Inputs are texts, or image files (paths "
    "ending in .png/.jpg/...). For a BLIP-style backbone and a vision_tokens dictionary the sparse caption is "
    "shown beside the bars.\n\n"
    "With --data DATASET it lists, for each concept in --concept (default: the 8 with the highest "
    "energy), the dataset rows where it is most active: an image grid PNG for image rows, a text list otherwise "
    "(the paper's Figures 4, 10-12).\n\n"
    "Examples:\n\n"
    "  cedar-hf explain -m runs/cedar -b minilm 'a dog chasing a ball' 'fresh bread' -o explanations\n\n"
    "  cedar-hf explain -m runs/cedar -d emb --concept 0 --examples 5\n\n"
    "  cedar-hf explain -m runs/clip-cedar photo.jpg --k 10\n\n"
    "  cedar-hf explain -m runs/clip-cedar -d emb/clip --concept dog --concept beach"
)


def explain(
    inputs: List[str] = typer.Argument(None, help="Texts or image paths to explain."),
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Encoder of the inputs. " + BACKBONE_HELP),
    k: Optional[int] = typer.Option(None, help="Active latents (default: the dictionary's k)."),
    site: Optional[str] = typer.Option(None, help="Image embedding site: image_embeds or vision_tokens "
                                       "(default: the dictionary's own)."),
    output_dir: Path = typer.Option(Path("explanations"), "--output-dir", "-o", help="Where the PNGs go."),
    top_examples: Optional[Path] = typer.Option(None, "--data", "-d", help="Embedding dataset folder: list each "
                                                "concept's top-activating rows."),
    concept: List[str] = typer.Option([], help="Concept name or latent index for --data (repeatable; default: "
                                      "the 8 with the highest energy)."),
    examples: int = typer.Option(9, help="Top-activating rows per concept."),
    image_root: Optional[Path] = typer.Option(None, help="Folder the dataset's image ids are relative to."),
) -> None:
    if not inputs and top_examples is None:
        raise typer.BadParameter("give inputs to explain and/or --data DATASET")
    if top_examples is not None and not top_examples.exists():
        raise typer.BadParameter(f"--data {str(top_examples)!r} does not exist")
    dictionary = load_dictionary_option(model)
    if inputs:
        from cedar_hf.interpret.explanations import explain as explain_inputs

        for i, explanation in enumerate(explain_inputs(dictionary, list(inputs), backbone=backbone, k=k, site=site)):
            path = explanation.plot(output_dir / f"explanation-{i:02d}.png")
            typer.echo(f"{explanation.table()}\n  -> {path}\n")
    if top_examples is not None:
        from cedar_hf.analysis.codes import compute_codes
        from cedar_hf.interpret.examples import (
            format_top_examples,
            plot_top_examples,
            top_activating,
        )
        from cedar_hf.interpret.naming import concept_sign
        from cedar_hf.interpret.search import resolve_concepts

        codes = compute_codes(dictionary, str(top_examples), k=k)
        top = {}
        try:
            chosen = resolve_concepts(dictionary, concept) if concept else [(None, 1.0)]
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        for latent, direction in chosen:
            opposite = latent is not None and direction != concept_sign(dictionary, latent)
            top.update(top_activating(dictionary, str(top_examples), latents=None if latent is None else [latent],
                                      n=examples, opposite=opposite, codes=codes, progress=False))
        typer.echo(format_top_examples(top, dictionary))
        path = plot_top_examples(top, str(top_examples), output_dir / "top_examples.png", dictionary, image_root)
        typer.echo(f"  -> {path}")


def register(app: typer.Typer) -> None:
    app.command(name="explain", help=HELP, cls=command_class({"--top-examples": "--data", "--n": "--examples"}),
                short_help="Explain inputs as a few named concepts; top-activating examples.")(explain)
