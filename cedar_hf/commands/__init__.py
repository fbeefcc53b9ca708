"""Subcommands of `cedar-hf`, one module each with `register(app)`; they parse options and call the library.

The one convention every command follows (typer all the way):

- `--data/-d` an embedding dataset (a `cedar-hf extract` folder), `--model/-m` a dictionary (folder or Hub id),
  `--architecture/-a` a kind of dictionary, `--output-dir/-o` where outputs go, `--backbone/-b` a frozen encoder;
- `--label-column` the label column, `--max-rows` a row limit, `--top/-n` how many results are printed or returned,
  `--examples` how many top-activating examples per concept;
- hyphenated long options (`--max_steps` is still read as `--max-steps`), `-h` and `--help`, defaults shown, and
  an `Example:` in every help text, run by `tests/test_cli.py`.

Options that take several values (`evaluate -m A B C`, `train --config k=10 parametrization=cayley`) are written
once with the values after them, or repeated. `command_class` gives a command those multi-value options and hidden
aliases of renamed options (an alias names the new option in its error messages; none changes meaning silently).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import typer
from typer.core import TyperCommand

MODEL_HELP = "Dictionary: a folder written by save_pretrained (cedar-hf train) or a Hub id."
DATA_HELP = "Embedding dataset: a folder written by `cedar-hf extract` (needs an `embedding` column)."
BACKBONE_HELP = "Frozen encoder (default: the dictionary's config.backbone; 'minilm' is the offline MiniLM)."


def load_dictionary_option(path: str, option: str = "--model"):
    """`cedar_hf.auto.load_dictionary(path)`, its `ValueError` turned into a usage error naming the option."""
    from cedar_hf.auto import load_dictionary

    try:
        return load_dictionary(path)
    except (ValueError, OSError) as err:
        raise typer.BadParameter(f"{option} {path!r}: {err}") from err


def _is_value(token: str) -> bool:
    """A token that is a value, not an option: anything not starting with '-', and negative numbers."""
    if not token.startswith("-") or token == "-":
        return True
    try:
        float(token)
        return True
    except ValueError:
        return False


def normalize_args(args: Iterable[str], known: set[str], aliases: Mapping[str, str],
                   multi: Iterable[str]) -> list[str]:
    """Rewrite a command line into plain click form: `--max_steps` -> `--max-steps` (when that is an option),
    `--old` -> `--new` for each alias, and `--config a b` -> `--config a --config b` for multi-value options."""
    multi = set(multi)
    out: list[str] = []
    tokens = list(args)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            out.extend(tokens[i:])
            break
        name, sep, value = token.partition("=")
        if name.startswith("--"):
            if name not in known and name.replace("_", "-") in known | set(aliases):
                name = name.replace("_", "-")
            name = aliases.get(name, name)
        if name in multi and not sep:
            out.append(name)
            i += 1
            if i < len(tokens):  # the first value, whatever it looks like (click's own behaviour)
                out.append(tokens[i])
                i += 1
            while i < len(tokens) and _is_value(tokens[i]):
                out.extend([name, tokens[i]])
                i += 1
            continue
        out.append(name + sep + value if name.startswith("-") else token)
        i += 1
    return out


def keep_examples_unwrapped(text: Optional[str]) -> Optional[str]:
    """Mark every paragraph that is a command line (`cedar-hf ...`, `accelerate launch ...`) with click's `\\b`, so
    help shows it on one line, exactly as it can be copied (and as `tests/test_cli.py` runs it)."""
    if not text:
        return text
    paragraphs = text.split("\n\n")
    marked = ["\b\n" + p if p.strip().startswith(("cedar-hf ", "accelerate launch ")) else p for p in paragraphs]
    return "\n\n".join(marked)


def command_class(aliases: Optional[Mapping[str, str]] = None, multi: Iterable[str] = ()) -> type[TyperCommand]:
    """A `TyperCommand` subclass whose parser first applies `normalize_args` (see there).

    Args:
        aliases: hidden old option names -> the option they stand for, e.g. {"--models": "--model"}.
        multi: options (long or short names) that read every value after them, e.g. ("--model", "-m").
    """
    alias_map, multi_names = dict(aliases or {}), tuple(multi)

    class CedarCommand(TyperCommand):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.help = keep_examples_unwrapped(self.help)
            self.epilog = keep_examples_unwrapped(self.epilog)

        def parse_args(self, ctx, args):
            known = {opt for param in self.params for opt in (*param.opts, *param.secondary_opts)}
            return super().parse_args(ctx, normalize_args(args, known, alias_map, multi_names))

    return CedarCommand


__all__ = ["BACKBONE_HELP", "DATA_HELP", "MODEL_HELP", "command_class", "load_dictionary_option", "normalize_args"]
