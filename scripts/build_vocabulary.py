"""Build the default concept vocabulary: ~20k English nouns and adjectives plus a few frequent bigrams.

Writes `cedar_hf/resources/vocabulary_en.txt.gz`, one concept a line, most frequent first. A word is kept when it
is among wordfreq's most frequent English words, is a WordNet 3.0 noun or adjective lemma (so inflected forms,
function words and pure verbs/adverbs drop out), is alphabetic (hyphens allowed), at least 3 letters, and not a
stop word. Bigrams are WordNet's two-word noun/adjective collocations ("ice cream", "living room") that were
tagged at least once in SemCor (WordNet's `cntlist.rev`, so compositional pairs such as "good time" drop out),
ranked by wordfreq. Entries on the blocklist (`cedar_hf/resources/blocklist_en.txt`: slurs, profanity, junk tokens,
with its sources documented in the file) are skipped while counting, so the vocabulary keeps its size. Needs Debian's `wordnet-base` (/usr/share/wordnet), `wordfreq` and scikit-learn (its stop-word list).

    python scripts/build_vocabulary.py --words 19000 --bigrams 1000
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import sys
import tempfile
from pathlib import Path

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from wordfreq import top_n_list, zipf_frequency

from wordnet_files import read_index, tagged_counts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the worktree's cedar_hf, for its blocklist reader
from cedar_hf.interpret.vocabulary import Blocklist, load_blocklist  # noqa: E402

RESOURCES = ROOT / "cedar_hf" / "resources"
WORD = re.compile(r"^(?=[a-z\-]*[aeiouy])[a-z][a-z\-]*[a-z]$")  # with a vowel: no "kkk", "nsfw"


def unigrams(lemmas: set[str], count: int, pool: int, blocklist: Blocklist) -> list[str]:
    kept = []
    for word in top_n_list("en", pool):
        if (len(word) >= 3 and WORD.match(word) and word not in ENGLISH_STOP_WORDS and word in lemmas
                and word not in blocklist):
            kept.append(word)
            if len(kept) == count:
                break
    return kept


def bigrams(lemmas: set[str], count: int, min_zipf: float, blocklist: Blocklist) -> list[str]:
    counts = tagged_counts()
    pairs = [
        lemma
        for lemma in lemmas
        if lemma.count(" ") == 1 and counts.get(lemma, 0) > 0 and lemma not in blocklist and all(WORD.match(part) and part not in ENGLISH_STOP_WORDS for part in lemma.split(" "))
    ]
    scored = sorted(((zipf_frequency(p, "en"), p) for p in pairs), key=lambda item: (-item[0], item[1]))
    return [pair for score, pair in scored[:count] if score >= min_zipf]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=19000, help="number of single-word concepts")
    parser.add_argument("--bigrams", type=int, default=1000, help="number of two-word concepts")
    parser.add_argument("--pool", type=int, default=200_000, help="how many wordfreq words to scan")
    parser.add_argument("--min-bigram-zipf", type=float, default=2.5)
    parser.add_argument("--blocklist", type=Path, default=None,
                        help="blocklist file (default: cedar_hf/resources/blocklist_en.txt)")
    parser.add_argument("--out", type=Path, default=RESOURCES / "vocabulary_en.txt.gz")
    args = parser.parse_args()
    blocklist = load_blocklist(args.blocklist)
    lemmas = set(read_index("noun")) | set(read_index("adj"))
    words = unigrams(lemmas, args.words, args.pool, blocklist)
    pairs = bigrams(lemmas, args.bigrams, args.min_bigram_zipf, blocklist)
    # Interleave by frequency so a truncated vocabulary (first N lines) stays a sensible one.
    vocabulary = sorted(set(words) | set(pairs), key=lambda w: (-zipf_frequency(w, "en"), w))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=".vocabulary-", suffix=".tmp")  # atomic: no half file
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(("\n".join(vocabulary) + "\n").encode("utf-8"))
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {len(vocabulary)} concepts ({len(words)} words, {len(pairs)} bigrams) to {args.out}")


if __name__ == "__main__":
    main()
