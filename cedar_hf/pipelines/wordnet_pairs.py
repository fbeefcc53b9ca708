"""The offline explorer demo's data: WordNet lemma names and glosses as two aligned "modalities".

Each of the shipped demo synsets (`cedar_hf.interpret.load_demo_texts`) gives a pair: its lemma names ("dog,
domestic dog, Canis familiaris") as modality `lemma` and its gloss as modality `gloss`, both embedded by the same
text encoder (MiniLM by default, offline). Modality scores then tell name-like concepts from definition-like
ones, and bridges link the two.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from datasets import Dataset

import cedar_hf
from cedar_hf.interpret.vocabulary import load_demo_texts

LEMMA, GLOSS = "lemma", "gloss"


def wordnet_pairs_dataset(limit: Optional[int] = 1000, backbone="minilm", batch_size: int = 64):
    """A `datasets.Dataset` of `2 × limit` rows: columns `embedding`, `id` ("<synset>:lemma" / "<synset>:gloss"),
    `modality` ("lemma" | "gloss"), `text`, `label` (WordNet lexicographer file) and `pair_id` (the synset).

    Args:
        limit: how many synsets (of the 5,000 shipped); None for all.
        backbone: a loaded `Backbone` or a name for `cedar_hf.load_backbone` (default the offline MiniLM).
    """

    records = load_demo_texts(limit=limit)
    if not records:
        raise ValueError(f"limit={limit} selects no demo synsets")
    encoder = cedar_hf.load_backbone(backbone) if isinstance(backbone, str) else backbone
    lemmas = [", ".join(record["lemmas"]) for record in records]
    glosses = [record["gloss"] for record in records]
    embeddings = encoder.embed_texts(lemmas + glosses, batch_size=batch_size).float().cpu().numpy()
    n = len(records)
    return Dataset.from_dict(
        {
            "embedding": embeddings.astype(np.float32).tolist(),
            "id": [f"{r['id']}:{LEMMA}" for r in records] + [f"{r['id']}:{GLOSS}" for r in records],
            "modality": [LEMMA] * n + [GLOSS] * n,
            "text": lemmas + glosses,
            "label": [r["lexname"] for r in records] * 2,
            "pair_id": [r["id"] for r in records] * 2,
        }
    )
