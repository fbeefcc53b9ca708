"""Build the offline demo's texts: a few thousand WordNet 3.0 glosses with lemma names and lexicographer labels.

Writes `cedar_hf/resources/demo_texts.jsonl.gz` (one JSON object a line: `id` "wn:<offset>-<pos>", `lemmas`,
`lexname` such as "noun.animal", `gloss`) and `cedar_hf/resources/WORDNET_LICENSE.txt` (WordNet's license
permits redistribution with its notice). Needs Debian's `wordnet-base` (/usr/share/wordnet) and `wordfreq`.

Selection: synsets whose best lemma is a common English word (wordfreq Zipf >= --min-zipf) and which are among
that lemma's first two senses, taken round-robin across the 45 lexicographer files (most frequent first) so every
label is represented; the output order is fixed, so the file is reproducible.

    python scripts/build_demo_texts.py --count 5000
"""

from __future__ import annotations

import argparse
from collections import defaultdict
import gzip
import json
from pathlib import Path

from wordfreq import zipf_frequency

from wordnet_files import LEXNAMES, read_index, read_synsets, license_text

RESOURCES = Path(__file__).resolve().parents[1] / "cedar_hf" / "resources"
POS_LETTER = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}


def candidate_synsets(min_zipf: float, max_sense: int) -> dict[str, list[tuple[float, dict]]]:
    """lexname -> [(score, record)] for synsets that are a common sense of a common word."""
    by_lexname: dict[str, list[tuple[float, dict]]] = defaultdict(list)
    for pos, letter in POS_LETTER.items():
        sense_rank = {}
        for lemma, offsets in read_index(pos).items():
            for rank, offset in enumerate(offsets):
                sense_rank[(lemma, offset)] = rank
        for synset in read_synsets(pos):
            scored = [
                zipf_frequency(lemma, "en")
                for lemma in synset.lemmas
                if sense_rank.get((lemma.lower(), synset.offset), 99) < max_sense
            ]
            score = max(scored, default=0.0)
            if score < min_zipf or not synset.definition:
                continue
            record = {
                "id": f"wn:{synset.offset}-{letter}",
                "lemmas": synset.lemmas,
                "lexname": synset.lexname,
                "gloss": synset.definition,
            }
            by_lexname[synset.lexname].append((score, record))
    return by_lexname


def round_robin(by_lexname: dict[str, list[tuple[float, dict]]], count: int) -> list[dict]:
    queues = {name: sorted(items, key=lambda item: (-item[0], item[1]["id"])) for name, items in by_lexname.items()}
    chosen, depth = [], 0
    while len(chosen) < count and any(depth < len(q) for q in queues.values()):
        for name in LEXNAMES:
            queue = queues.get(name, [])
            if depth < len(queue) and len(chosen) < count:
                chosen.append(queue[depth][1])
        depth += 1
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000, help="number of glosses to keep")
    parser.add_argument("--min-zipf", type=float, default=3.0, help="wordfreq Zipf frequency of the best lemma")
    parser.add_argument("--max-sense", type=int, default=2, help="keep a synset only among a lemma's first senses")
    parser.add_argument("--out", type=Path, default=RESOURCES / "demo_texts.jsonl.gz")
    args = parser.parse_args()
    records = round_robin(candidate_synsets(args.min_zipf, args.max_sense), args.count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the gzip bytes reproducible.
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        for record in records:
            f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    notice = (
        "The demo texts in demo_texts.jsonl.gz are glosses, lemma names and lexicographer file names taken from\n"
        "WordNet 3.0 (Princeton University), redistributed under WordNet's license, reproduced below.\n\n"
    )
    (args.out.parent / "WORDNET_LICENSE.txt").write_text(notice + license_text())
    labels = defaultdict(int)
    for record in records:
        labels[record["lexname"]] += 1
    print(f"wrote {len(records)} glosses ({len(labels)} lexicographer labels) to {args.out}")


if __name__ == "__main__":
    main()
