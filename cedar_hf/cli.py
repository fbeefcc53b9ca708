"""`cedar-hf`: the command line. Each subcommand lives in `cedar_hf/commands/<name>.py` and exposes
`register(app)`; its heavy imports happen inside the command, so `--help` loads no backbone, dataset or training
code (see `cedar_hf/commands/__init__.py` for the option convention every command follows)."""

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
    "study",
)

app = typer.Typer(
    name="cedar-hf",
    help=(
        "Readable embeddings for vision-language models. Extract embeddings from a frozen CLIP/BLIP/CoCa/text "
        "encoder, train a CEDAR rotation or a sparse autoencoder on them, evaluate, name concepts, caption from "
        "sparse embeddings, analyse, explore and push to the Hub.\n\n"
        "Every command takes -h/--help. The same option means the same thing everywhere: --data/-d an embedding "
        "dataset, --model/-m a dictionary (folder or Hub id), --architecture/-a a kind of dictionary, "
        "--output-dir/-o where outputs go, --backbone/-b a frozen encoder.\n\n"
        "Example: cedar-hf demo --max-rows 300 --steps 40 -o demo-small"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def _register_commands() -> None:
    for name in COMMANDS:
        module_name = f"cedar_hf.commands.{name}"
        importlib.import_module(module_name).register(app)


def _print_version(value: bool) -> None:
    if value:
        from .version import __version__

        typer.echo(f"cedar-hf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """The root of `cedar-hf`: only --version lives here; everything else is a subcommand."""


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
