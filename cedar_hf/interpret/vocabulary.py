"""Concept vocabularies and the demo texts shipped in `cedar_hf/resources/`.

- `load_vocabulary(source=None)`: the default English vocabulary (20,000 nouns, adjectives and a few bigrams built
  by `scripts/build_vocabulary.py` from wordfreq and WordNet), a list of words, or a file (one concept a line;
  `.gz` is fine; lines starting with `#` are comments).
- `load_demo_texts()`: 5,000 WordNet 3.0 glosses with their lemma names and lexicographer labels (built by
  `scripts/build_demo_texts.py`; WordNet's license notice is `resources/WORDNET_LICENSE.txt`). The lemma names
  and the glosses are two aligned "modalities" of the same 5,000 concepts.
"""

from __future__ import annotations

import gzip
import json
import os
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional, Union

DEFAULT_VOCABULARY = "vocabulary_en.txt.gz"
DEMO_TEXTS = "demo_texts.jsonl.gz"
WORDNET_LICENSE = "WORDNET_LICENSE.txt"


def resource_path(name: str) -> Path:
    """Path of a file shipped in `cedar_hf/resources/` (works from a source checkout and an installed wheel)."""
    path = Path(str(resources.files("cedar_hf").joinpath("resources", name)))
    if not path.exists():
        raise FileNotFoundError(f"package resource {name!r} not found at {path}: is cedar-hf installed completely?")
    return path


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _read_vocabulary_file(path: Path) -> list[str]:
    with _open_text(path) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def load_vocabulary(
    source: Union[None, str, os.PathLike, Iterable[str]] = None, max_size: Optional[int] = None
) -> list[str]:
    """A concept vocabulary as a list of unique strings, in their original order.

    Args:
        source: `None` or `"default"` for the shipped English vocabulary (most frequent first); a path to a text
            file (one concept a line, optionally gzipped); or an iterable of strings.
        max_size: keep only the first `max_size` entries (the most frequent ones for the default vocabulary).
    """
    if source is None or (isinstance(source, str) and source == "default"):
        words = _read_vocabulary_file(resource_path(DEFAULT_VOCABULARY))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"vocabulary file {str(path)!r} does not exist (give a file, a list of words or None)")
        words = _read_vocabulary_file(path)
    else:
        words = [str(word).strip() for word in source]
        if any(not word for word in words):
            raise ValueError("the vocabulary contains an empty entry")
    words = list(dict.fromkeys(words))  # unique, order kept
    if max_size is not None:
        if max_size < 1:
            raise ValueError(f"max_size={max_size} must be at least 1")
        words = words[:max_size]
    if not words:
        raise ValueError(f"the vocabulary from {source!r} is empty")
    return words


def load_demo_texts(limit: Optional[int] = None) -> list[dict]:
    """The demo's WordNet glosses: dicts with `id` ("wn:<offset>-<pos>"), `lemmas` (list of str), `lexname`
    (e.g. "noun.animal", one of WordNet's 45 lexicographer files) and `gloss` (the definition)."""
    records = []
    with gzip.open(resource_path(DEMO_TEXTS), "rt", encoding="utf-8") as f:
        for line in f:
            records.append(json.loads(line))
            if limit is not None and len(records) >= limit:
                break
    return records


__all__ = ["load_vocabulary", "load_demo_texts", "resource_path", "DEFAULT_VOCABULARY", "DEMO_TEXTS"]
