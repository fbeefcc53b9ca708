"""`cedar-hf explore`: the interactive concept explorer (a local Gradio app)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from . import MODEL_HELP, command_class, load_dictionary_option

DEMO_DATA = "wordnet-demo"
HELP = (
    "Serve a UMAP of the concept directions (colour = modality score, size = energy); click or search a concept to "
    "see its name, alternatives, top-activating examples and strongest bridge partners. Served on 127.0.0.1 only; "
    "nothing is shared publicly and no analytics are sent. --no-serve builds (and caches) every view, then exits.\n\n"
    "Examples:\n\n"
    "  cedar-hf explore -m runs/cedar -d emb --no-serve\n\n"
    f"  cedar-hf explore -m cedar-demo/model -d {DEMO_DATA}\n\n"
    "  cedar-hf explore -m runs/clip-cedar -d coco_emb --images coco/val2017 --port 7861"
)


def explore(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    data: str = typer.Option(
        ..., "--data", "-d", help="Embedding dataset folder (needs `embedding`; `text`/`id` and `image`/`image_path` "
        f"are shown as examples, `modality` colours the map, `pair_id` gives bridges), or '{DEMO_DATA}' to embed "
        "the shipped WordNet lemma names and glosses with the offline MiniLM as two aligned modalities."
    ),
    pairs: Optional[Path] = typer.Option(
        None, help="File of aligned (image id, text id) pairs for bridge partners (.csv/.tsv/.json/.jsonl)."
    ),
    modalities: Optional[str] = typer.Option(None, help="The two `modality` values to compare, e.g. image,text."),
    images: Optional[Path] = typer.Option(
        None, help="Folder the ids of image rows are relative to, to show the images (default: the image folder "
        "recorded by `cedar-hf extract`, when it still exists)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to serve on (127.0.0.1 keeps it local)."),
    port: Optional[int] = typer.Option(None, help="Port (default: Gradio's, 7860 or the next free one)."),
    examples: int = typer.Option(8, help="Top-activating examples kept per concept."),
    partners: int = typer.Option(6, help="Bridge partners / nearest directions kept per concept."),
    max_rows: int = typer.Option(1000, "--max-rows", help=f"Synsets embedded for --data {DEMO_DATA}."),
    batch_size: int = typer.Option(1024, help="Embeddings encoded at once."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the app (--no-serve: build the views, "
                               "report and exit, e.g. to warm the cache or check the data)."),
) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from cedar_hf.analysis.explorer import build_explorer, launch_explorer

    names = tuple(part.strip() for part in modalities.split(",")) if modalities else None
    if names is not None and len(names) != 2:
        raise typer.BadParameter(f"--modalities {modalities!r} must name exactly two values, e.g. image,text")
    dictionary = load_dictionary_option(model)
    if data == DEMO_DATA:
        from cedar_hf.pipelines.wordnet_pairs import wordnet_pairs_dataset

        dataset = wordnet_pairs_dataset(limit=max_rows)
    elif not Path(data).exists():
        raise typer.BadParameter(f"--data {data!r} is neither a dataset folder nor '{DEMO_DATA}'")
    else:
        dataset = data
    typer.echo("precomputing codes, energies, modality scores, bridges and the UMAP layout ...")
    if images is not None and not images.is_dir():
        raise typer.BadParameter(f"--images {images} is not a folder")
    from cedar_hf.interpret.attribution import match_explainer

    app = build_explorer(dictionary, dataset, pairs=pairs, modalities=names, examples=examples, partners=partners,
                         batch_size=batch_size, image_root=str(images) if images else None,
                         explain_match=match_explainer(dictionary, dataset))
    if not serve:
        typer.echo(f"explorer built for {dictionary.config.n_latents} concepts; not served (--no-serve)")
        return
    launch_explorer(app, host=host, port=port)


def register(app: typer.Typer) -> None:
    app.command("explore", help=HELP, cls=command_class({"--demo-size": "--max-rows"}),
                short_help="Serve an interactive concept explorer (local Gradio app).")(explore)
