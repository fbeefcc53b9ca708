"""`cedar-hf`: the command line. Each subcommand lives in `cedar_hf/commands/<name>.py` and exposes
`register(app)`; heavy imports happen inside the command, so `cedar-hf --help` stays fast."""

from __future__ import annotations

import importlib

import typer

COMMANDS = (
    "demo",
    "extract",
    "train",
    "evaluate",
    "name",
    "explain",
    "caption",
    "search",
    "push",
    "analyze",
    "explore",
    "score",
    "attribute",
)

app = typer.Typer(
    name="cedar-hf",
    help=(
        "Readable embeddings for vision-language models. Extract embeddings from a frozen CLIP/BLIP/CoCa/text "
        "encoder, train a CEDAR rotation or a sparse autoencoder on them, evaluate, name concepts, caption from "
        "sparse embeddings, analyse, explore and push to the Hub."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for name in COMMANDS:
        module_name = f"cedar_hf.commands.{name}"
        importlib.import_module(module_name).register(app)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        from .version import __version__

        typer.echo(__version__)
        raise typer.Exit()


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
