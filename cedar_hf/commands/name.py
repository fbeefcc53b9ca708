"""`cedar-hf name`: name every latent of a dictionary by its nearest vocabulary entry."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import MODEL_HELP, command_class, load_dictionary_option

HELP = (
    "Name every latent of a dictionary by the vocabulary entry nearest to its concept direction (cosine, with "
    "the vocabulary embeddings centred by their own mean; see cedar_hf.name_concepts). The names, their top-5 "
    "alternatives with scores and, for signed codes (CEDAR), the orientation of each axis and the name of its "
    "other end are saved as concept_names.json in the "
    "model folder (or --output-dir), travel with save_pretrained / push_to_hub, and label every explanation.\n\n"
    "Examples:\n\n"
    "  cedar-hf name -m runs/cedar -b minilm --vocabulary-size 2000\n\n"
    "  cedar-hf name -m runs/clip-cedar --prompt 'a photo of {}'"
)


def name(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Text encoder used to embed the vocabulary (default: the "
                                           "dictionary's config.backbone; 'minilm' is the offline MiniLM)."),
    vocabulary: Optional[Path] = typer.Option(None, help="Vocabulary file, one concept a line (.gz fine). Default: "
                                              "the shipped 20k English nouns, adjectives and bigrams."),
    vocabulary_size: Optional[int] = typer.Option(None, help="Use only the first N (most frequent) entries."),
    prompt: Optional[str] = typer.Option(None, help="Template for each concept, e.g. 'a photo of {}' for CLIP."),
    center: str = typer.Option("vocabulary", help="Centre the vocabulary embeddings by their own mean "
                               "('vocabulary', right across modalities) or not at all ('none')."),
    top_k: int = typer.Option(5, help="Alternatives kept per latent."),
    output: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Save the named dictionary here (default: "
                                          "back into MODEL when it is a local folder)."),
    top: int = typer.Option(20, "--top", "-n", help="Print this many names."),
) -> None:
    from cedar_hf.interpret.naming import name_concepts
    from cedar_hf.interpret.vocabulary import load_vocabulary

    dictionary = load_dictionary_option(model)
    words = load_vocabulary(vocabulary, max_size=vocabulary_size)
    names = name_concepts(dictionary, backbone, words if vocabulary_size else vocabulary, prompt, center=center,
                          top_k=top_k)
    if vocabulary_size:
        names["vocabulary"] = f"{vocabulary or 'cedar-hf default'} (first {len(words)} entries)"
    target = output or (Path(model) if Path(model).is_dir() else None)
    if target is None:
        raise typer.BadParameter(f"{model} is not a local folder: pass --output-dir to save the named dictionary")
    dictionary.save_pretrained(target)
    for entry in names["names"][:top]:
        alternatives = ", ".join(f"{w} {s:.2f}" for w, s in entry["alternatives"][1:])
        typer.echo(f"{entry['latent']:>6}  {entry['name']:<24} {entry['score']:.3f}   (also: {alternatives})")
    typer.echo(f"named {len(names['names'])} latents; saved to {target / 'concept_names.json'}")


def register(app: typer.Typer) -> None:
    app.command(name="name", help=HELP, cls=command_class({"--output": "--output-dir", "--show": "--top"}),
                short_help="Name every latent by its nearest vocabulary entry.")(name)
