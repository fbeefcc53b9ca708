"""Subcommands of `cedar-hf`, one module each with `register(app)`; they parse options and call the library."""

from __future__ import annotations

import typer


def load_dictionary_option(path: str):
    """`cedar_hf.auto.load_dictionary(path)`, its `ValueError` turned into a usage error naming the option."""
    from cedar_hf.auto import load_dictionary

    try:
        return load_dictionary(path)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
