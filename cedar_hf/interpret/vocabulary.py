"""Concept vocabularies and the demo texts shipped in `cedar_hf/resources/`.

- `load_vocabulary(source=None, blocklist=True)`: the default English vocabulary (nouns, adjectives and a few
  bigrams built by `scripts/build_vocabulary.py` from wordfreq and WordNet), a list of words, or a file (one concept
  a line; `.gz` is fine; lines starting with `#` are comments). Entries on the blocklist are dropped, from user
  vocabularies too (opt out with `blocklist=False`).
- `load_blocklist(source=None)`: the shipped `resources/blocklist_en.txt` (slurs, profanity, junk tokens; the file
  documents its sources, categories and what is deliberately kept), or your own file / list, as a `Blocklist`.
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
import logging
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

from ..atomic import atomic_path

DEFAULT_VOCABULARY = "vocabulary_en.txt.gz"
DEMO_TEXTS = "demo_texts.jsonl.gz"
WORDNET_LICENSE = "WORDNET_LICENSE.txt"
DEFAULT_BLOCKLIST = "blocklist_en.txt"
ALLOW = "allow"
_SPLIT = re.compile(r"[\s\-]+")

logger = logging.getLogger(__name__)


def resource_path(name: str) -> Path:
    """Path of a file shipped in `cedar_hf/resources/` (works from a source checkout and an installed wheel)."""
    path = Path(str(resources.files("cedar_hf").joinpath("resources", name)))
    if not path.exists():
        raise FileNotFoundError(f"package resource {name!r} not found at {path}: is cedar-hf installed completely?")
    return path


def save_figure(fig, path: Union[str, os.PathLike], **kwargs) -> Path:
    """`fig.savefig` written atomically (`cedar_hf.atomic.atomic_path`); the format follows `path`'s suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    return path


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _read_vocabulary_file(path: Path) -> list[str]:
    with _open_text(path) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


@dataclass
class Blocklist:
    """Words and phrases never used as concept names: `category` of each blocked entry, and `allow`ed entries kept
    although one of their words is blocked ("homo sapiens"). Matching is case-insensitive on whole words."""

    categories: dict[str, str] = field(default_factory=dict)  # entry -> category
    allow: set[str] = field(default_factory=set)
    source: str = "custom list"

    def reason(self, entry: str) -> Optional[str]:
        """The category that blocks `entry` (the entry itself or one of its words is listed), or None."""
        key = " ".join(entry.lower().split())
        if key in self.allow:
            return None
        if key in self.categories:
            return self.categories[key]
        return next((self.categories[w] for w in _SPLIT.split(key) if w in self.categories), None)

    def __contains__(self, entry: str) -> bool:
        return self.reason(entry) is not None

    def __len__(self) -> int:
        return len(self.categories)


def _parse_blocklist(lines: Iterable[str], source: str) -> Blocklist:
    blocklist, category = Blocklist(source=source), "blocked"
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ValueError(f"{source}, line {number}: section header {line!r} must look like [category]")
            category = line[1:-1].strip().lower()
            continue
        entry = " ".join(line.lower().split())
        (blocklist.allow.add(entry) if category == ALLOW else blocklist.categories.setdefault(entry, category))
    return blocklist


def load_blocklist(source: Union[None, str, os.PathLike, Iterable[str], Blocklist] = None) -> Blocklist:
    """The blocklist: None / "default" for the shipped `resources/blocklist_en.txt`, a file in the same format
    (`[category]` sections, one entry a line, `[allow]` for exceptions), an iterable of words, or a `Blocklist`."""
    if isinstance(source, Blocklist):
        return source
    if source is None or (isinstance(source, str) and source == "default"):
        path = resource_path(DEFAULT_BLOCKLIST)
        with open(path, encoding="utf-8") as f:
            return _parse_blocklist(f, str(path))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"blocklist file {str(path)!r} does not exist (give a file, a list of words, True/False)")
        with _open_text(path) as f:
            return _parse_blocklist(f, str(path))
    return _parse_blocklist([str(word) for word in source], "custom list")


def apply_blocklist(words: list[str], blocklist: Blocklist) -> tuple[list[str], dict[str, str]]:
    """`(kept words, {dropped word: category})`, order kept."""
    kept, dropped = [], {}
    for word in words:
        reason = blocklist.reason(word)
        if reason is None:
            kept.append(word)
        else:
            dropped[word] = reason
    return kept, dropped


def load_vocabulary(
    source: Union[None, str, os.PathLike, Iterable[str]] = None,
    max_size: Optional[int] = None,
    blocklist: Union[bool, str, os.PathLike, Iterable[str], Blocklist] = True,
) -> list[str]:
    """A concept vocabulary as a list of unique strings, in their original order, blocked entries dropped.

    Args:
        source: `None` or `"default"` for the shipped English vocabulary (most frequent first); a path to a text
            file (one concept a line, optionally gzipped); or an iterable of strings.
        max_size: keep only the first `max_size` entries (the most frequent ones for the default vocabulary),
            counted after the blocklist.
        blocklist: True (default) drops the entries of the shipped blocklist (slurs, profanity, junk tokens; see
            `resources/blocklist_en.txt`), also from your own vocabulary; False keeps everything; or your own
            blocklist (a file, a list of words or a `Blocklist`). Dropped entries are logged (INFO) by category.
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
    if blocklist is not False:
        words, dropped = apply_blocklist(words, load_blocklist(None if blocklist is True else blocklist))
        if dropped:
            counts: dict[str, int] = {}
            for category in dropped.values():
                counts[category] = counts.get(category, 0) + 1
            logger.info("vocabulary %s: blocklist dropped %d entries %s", _label(source), len(dropped), counts)
    if max_size is not None:
        if max_size < 1:
            raise ValueError(f"max_size={max_size} must be at least 1")
        words = words[:max_size]
    if not words:
        raise ValueError(f"the vocabulary from {_label(source)} is empty (after the blocklist, if any)")
    return words


def _label(source) -> str:
    if source is None or isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source)) if source is not None else "'default'"
    return "a custom list"


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


__all__ = ["save_figure", "Blocklist", "apply_blocklist", "load_blocklist", "load_vocabulary", "load_demo_texts", "resource_path",
           "DEFAULT_BLOCKLIST", "DEFAULT_VOCABULARY", "DEMO_TEXTS"]
