"""`cedar-hf study build | serve | analyze`: the CEDAR paper's user studies (App. D) as a kit."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import command_class, keep_examples_unwrapped

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CONTEXT = {"help_option_names": ["-h", "--help"]}

study_app = typer.Typer(
    name="study", no_args_is_help=True, context_settings=CONTEXT, rich_markup_mode=None,
    help=keep_examples_unwrapped(
        "The paper's three user studies (App. D) as a kit. build: tasks from images and dictionaries (seeded "
        "randomisation; the key is kept apart from what participants see). serve: a local web form that stores "
        "every answer as it is given. analyze: de-randomises and reports Figures 5-7 with statistics.\n\n"
        "Examples:\n\n"
        "cedar-hf study build photo.png --study 3 --caption-model cedar=runs/blip-cedar --caption-backbone blip-base "
        "-o study\n\n"
        "cedar-hf study build photos/ -m cedar=runs/coca-cedar -m msae=runs/coca-msae --n-tasks 8 -o study\n\n"
        "cedar-hf study serve study/public\n\n"
        "cedar-hf study analyze study"),
)


def _named(values: List[str], option: str) -> dict:
    from cedar_hf.auto import load_dictionary

    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"{option} {value!r} must be NAME=DICTIONARY (e.g. cedar=runs/cedar)")
        if name in out:
            raise typer.BadParameter(f"{option}: the name {name!r} is given twice")
        out[name] = load_dictionary(path)
    return out


def _image_paths(inputs: List[Path]) -> list[Path]:
    paths = []
    for item in inputs:
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            raise typer.BadParameter(f"image {str(item)!r} does not exist")
    if not paths:
        raise typer.BadParameter(f"no images found in {[str(i) for i in inputs]}")
    return paths


@study_app.command("build", cls=command_class(), short_help="Make the tasks and the key.", help=(
    "Make the tasks of studies 1 (preference between two 5-concept lists), 2 (select the relevant concepts of 3 + 3) "
    "and 3 (rate the dense and sparse captions 1-3) and write OUTPUT_DIR/public (what participants see) and "
    "OUTPUT_DIR/key.json (which method made which option).\n\n"
    "Examples:\n\n"
    "cedar-hf study build photos/ -m cedar=runs/coca-cedar -m msae=runs/coca-msae --n-tasks 8 -o study\n\n"
    "cedar-hf study build photos/ --study 3 --caption-model cedar=runs/blip-cedar "
    "--caption-model no-rotation=runs/blip-norot -o study3"))
def build(
    images: List[Path] = typer.Argument(..., help="Image files or folders of images."),
    model: List[str] = typer.Option([], "--model", "-m", help="NAME=DICTIONARY for studies 1 and 2 (two or more)."),
    caption_model: List[str] = typer.Option([], "--caption-model", help="NAME=vision_tokens DICTIONARY for study 3."),
    study: List[int] = typer.Option([1, 2], "--study", "-s", help="Studies to build (repeatable: 1, 2, 3)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Encoder for studies 1-2 (default: the "
                                           "dictionaries' config.backbone)."),
    caption_backbone: Optional[str] = typer.Option(None, "--caption-backbone", help="Captioner for study 3 "
                                                   "(default: the caption dictionaries' config.backbone)."),
    n_tasks: int = typer.Option(8, "--n-tasks", help="Images per study (a seeded sample)."),
    n_concepts: int = typer.Option(5, "--n-concepts", help="Concepts per list in study 1."),
    k: Optional[int] = typer.Option(None, "--k", "-k", help="Active latents (default: n-concepts for the lists, the "
                                    "dictionary's k for captions)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice (image sample, A/B, option order)."),
    output_dir: Path = typer.Option(Path("study"), "--output-dir", "-o", help="Where the study folder goes."),
) -> None:
    from cedar_hf.study.build import build_study

    try:
        out = build_study(output_dir, _image_paths(images), dictionaries=_named(model, "--model"),
                          caption_dictionaries=_named(caption_model, "--caption-model"), backbone=backbone,
                          caption_backbone=caption_backbone, studies=study, n_tasks=n_tasks, seed=seed,
                          n_concepts=n_concepts, k=k)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    typer.echo(f"study written to {out}: serve {out / 'public'} (participants), keep {out / 'key.json'} apart")


@study_app.command("serve", cls=command_class(), short_help="Serve the tasks as a local web form.", help=(
    "Serve the tasks of a study's public folder as a local web form; every answer is written to the answers folder "
    "when the participant presses Next (a returning participant id resumes where it stopped).\n\n"
    "Example:\n\ncedar-hf study serve study/public --port 7861"))
def serve(
    public_dir: Path = typer.Argument(..., help="The public folder written by `study build`."),
    answers: Optional[Path] = typer.Option(None, "--answers", help="Answers folder (default: next to public/)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for a local network)."),
    port: int = typer.Option(7861, "--port", "-p", help="Port."),
) -> None:
    from cedar_hf.study.serve import serve_study

    try:
        serve_study(public_dir, answers, host=host, port=port)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err


@study_app.command("analyze", cls=command_class(), short_help="Figures 5-7 with statistics.", help=(
    "Join the answers with the key and write analysis.json, report.md and the Figures 5-7 PNGs (sign and Wilcoxon "
    "tests, Clopper-Pearson intervals); prints the report.\n\nExample:\n\ncedar-hf study analyze study"))
def analyze(
    study_dir: Path = typer.Argument(..., help="The study folder (with key.json)."),
    answers: Optional[Path] = typer.Option(None, "--answers", help="Answers folder (default: STUDY_DIR/answers)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Default: STUDY_DIR/analysis."),
) -> None:
    from cedar_hf.study.analyze import analyze_study

    try:
        analyze_study(study_dir, answers, output_dir)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    out = Path(output_dir or study_dir / "analysis")
    typer.echo((out / "report.md").read_text())
    typer.echo(f"-> {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study", short_help="The paper's user studies: build, serve, analyze.")
