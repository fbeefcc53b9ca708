"""`cedar-hf demo`: the README's main job, offline — WordNet glosses → MiniLM → CEDAR → named concepts →
explanations."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import command_class

HELP = (
    "Run the whole pipeline on this machine, with no Hub: embed 5,000 WordNet glosses shipped with cedar-hf with "
    "the offline MiniLM (all-MiniLM-L6-v2 from its PyPI package), train a CEDAR rotation on them, name its 384 "
    "concepts with the shipped 20k-word vocabulary, and explain a handful of sentences (terminal tables + "
    "bar-chart PNGs), plus the highest-energy concepts with their top-activating glosses. A few minutes on 2 "
    "cores. Embeddings and vocabulary embeddings are cached in OUTPUT_DIR/cache and the model is reused when the "
    "settings match, so a second run takes seconds.\n\n"
    "It ends by printing the next commands to run on its own outputs.\n\n"
    "Examples:\n\n"
    "  cedar-hf demo --max-rows 300 --steps 40 --vocabulary-size 2000 -o demo-small\n\n"
    "  cedar-hf demo\n\n"
    "With --backbone and --source pointing at the Hub the same command does the real job:\n\n"
    "  cedar-hf demo -b openai/clip-vit-base-patch32 --source uoft-cs/cifar10 --prompt 'a photo of {}'"
)


def demo(
    output_dir: Path = typer.Option(Path("cedar-demo"), "--output-dir", "-o", help="Where the cache, the named "
                                    "model, the PNGs, top_concepts.txt and summary.json go."),
    backbone: str = typer.Option("minilm", "--backbone", "-b", help="'minilm' (offline) or a load_backbone id/path, e.g. a CLIP."),
    dataset: Optional[str] = typer.Option(None, "--source", help="Source to embed instead of the shipped glosses: a Hub "
                                          "dataset id, an image folder, a saved dataset or a .txt file."),
    site: Optional[str] = typer.Option(None, help="Embedding site (default: text_embeds for text encoders, "
                                       "else image_embeds)."),
    max_texts: Optional[int] = typer.Option(None, "--max-rows", help="Embed only the first N rows."),
    steps: int = typer.Option(1000, help="Training steps (k goes from d down to --k over the first half)."),
    k: int = typer.Option(8, help="Active concepts per embedding."),
    batch_size: int = typer.Option(512, help="Training batch size."),
    learning_rate: float = typer.Option(2e-3, help="Peak learning rate."),
    vocabulary: Optional[Path] = typer.Option(None, help="Concept vocabulary file (default: the shipped one)."),
    vocabulary_size: Optional[int] = typer.Option(None, help="Use only the N most frequent vocabulary entries."),
    prompt: Optional[str] = typer.Option(None, help="Naming template, e.g. 'a photo of {}' for CLIP."),
    input: List[str] = typer.Option([], "--input", "-i", help="A sentence or image path to explain (repeatable; "
                                    "default: six example sentences)."),
    seed: int = typer.Option(0, help="Seed of the split, the initialisation and the batches."),
    retrain: bool = typer.Option(False, help="Train again even if OUTPUT_DIR/model was trained with the same "
                                 "settings (otherwise a second run reuses it and finishes in seconds)."),
    quiet: bool = typer.Option(False, help="Print only the final summary line."),
) -> None:
    from cedar_hf.pipelines.demo import run_demo

    summary = run_demo(output_dir, backbone=backbone, dataset=dataset, site=site, max_texts=max_texts, steps=steps,
                       k=k, batch_size=batch_size, learning_rate=learning_rate,
                       vocabulary=str(vocabulary) if vocabulary else None, vocabulary_size=vocabulary_size,
                       prompt=prompt, inputs=list(input) or None, seed=seed, retrain=retrain, quiet=quiet)
    if quiet:
        typer.echo(f"done in {summary['seconds']} s; held-out FVU {summary['held_out_fvu']} at k={k}; "
                   f"outputs in {output_dir}")


def register(app: typer.Typer) -> None:
    app.command(name="demo", help=HELP, cls=command_class({"--max-texts": "--max-rows", "--dataset": "--source"}),
                short_help="The whole pipeline offline: glosses -> MiniLM -> CEDAR -> names -> explanations.")(demo)
