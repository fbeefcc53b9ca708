"""Read Princeton WordNet 3.0 data files (Debian's `wordnet-base`, /usr/share/wordnet) without nltk.

Used by `build_demo_texts.py` and `build_vocabulary.py`. Debian lacks the `lexnames` file nltk's reader wants, so
the 45 standard lexicographer file names are listed here (their numbers are WordNet's `lex_filenum`).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Iterator

WORDNET_DIR = Path(os.environ.get("WORDNET_DIR", "/usr/share/wordnet"))

LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive "
    "noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity "
    "noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition "
    "verb.communication verb.competition verb.consumption verb.contact verb.creation verb.emotion "
    "verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
POS_FILES = {"noun": "data.noun", "verb": "data.verb", "adj": "data.adj", "adv": "data.adv"}


@dataclass
class Synset:
    offset: str
    pos: str  # n, v, a, s, r
    lexname: str
    lemmas: list[str]  # spaces for underscores, adjective markers such as "(a)" removed
    definition: str
    examples: list[str]


def _split_gloss(gloss: str) -> tuple[str, list[str]]:
    parts = [part.strip() for part in gloss.split(";")]
    definition = [p for p in parts if not p.startswith('"')]
    examples = [p.strip('"') for p in parts if p.startswith('"')]
    return "; ".join(definition), examples


def read_synsets(pos: str, wordnet_dir: Path = WORDNET_DIR) -> Iterator[Synset]:
    """Every synset of one part of speech ("noun", "verb", "adj", "adv")."""
    path = Path(wordnet_dir) / POS_FILES[pos]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install Debian's wordnet-base or set WORDNET_DIR")
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # license header
                continue
            data, _, gloss = line.partition(" | ")
            fields = data.split()
            offset, lex_filenum, ss_type, w_cnt = fields[0], int(fields[1]), fields[2], int(fields[3], 16)
            words = fields[4 : 4 + 2 * w_cnt : 2]
            lemmas = [w.split("(")[0].replace("_", " ") for w in words]
            definition, examples = _split_gloss(gloss.strip())
            yield Synset(offset, ss_type, LEXNAMES[lex_filenum], lemmas, definition, examples)


def read_index(pos: str, wordnet_dir: Path = WORDNET_DIR) -> dict[str, list[str]]:
    """Lemma (spaces for underscores) -> its synset offsets, most frequent sense first, from `index.<pos>`."""
    lemmas = {}
    with open(Path(wordnet_dir) / f"index.{pos}", encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            synset_cnt = int(fields[2])
            lemmas[fields[0].replace("_", " ")] = fields[len(fields) - synset_cnt :]
    return lemmas


def tagged_counts(wordnet_dir: Path = WORDNET_DIR) -> dict[str, int]:
    """Lemma (spaces for underscores) -> how often its senses were tagged in the SemCor corpus (`cntlist.rev`);
    a collocation with a count was seen used as one unit in running text."""
    counts: dict[str, int] = {}
    with open(Path(wordnet_dir) / "cntlist.rev", encoding="latin-1") as f:
        for line in f:
            sense_key, _, count = line.split()
            lemma = sense_key.split("%")[0].replace("_", " ")
            counts[lemma] = counts.get(lemma, 0) + int(count)
    return counts


def license_text(wordnet_dir: Path = WORDNET_DIR) -> str:
    """WordNet 3.0's license notice, as printed at the top of every data file."""
    lines = []
    with open(Path(wordnet_dir) / "data.noun", encoding="latin-1") as f:
        for line in f:
            if not line.startswith("  "):
                break
            lines.append(line.split(" ", 3)[-1].rstrip() if line[2:].split(" ", 1)[0].isdigit() else line.strip())
    return "\n".join(lines) + "\n"
