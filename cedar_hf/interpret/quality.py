"""Concept-quality scores that need no LLM and no person: is a concept coherent, and does its name say what it is?

All three scores look at a concept's **top-activating examples**: the `n` rows of an embedding dataset with the
largest oriented coefficient `sign · code > 0` (the end of the axis that the name names; see `name_concepts`).
A concept with fewer than `n` such rows is not scored (NaN, counted as `unscored`).

1. **Label purity** (needs a label column, e.g. WordNet's lexicographer file). For concept i with top rows R_i,

       purity_i = max_c |{r ∈ R_i : label_r = c}| / n

   the share of the most common label among its top examples. Chance level: the same statistic for n rows drawn
   uniformly from the dataset (mean over 200 seeded draws), reported as `chance`.

2. **Name fidelity** (precision at n; needs a named dictionary and the backbone to embed the names). The name
   (formatted with the naming prompt, e.g. "a photo of {}") is embedded with the dictionary's backbone as `t_i`;
   the candidates are the n top rows R_i plus `n_random` rows drawn uniformly (seeded) from the other rows. The
   candidates are ranked by `cos(t_i, x_r)` (plain retrieval cosine, as CLIP retrieval does) and

       fidelity_i = |top-n candidates by cosine ∩ R_i| / n

   1 means the name alone retrieves exactly the concept's examples; chance is `n / (n + n_random)`. Not defined
   for token datasets (BLIP's visual tokens have no text embedding in their space): skipped there.

3. **Caption agreement** (BLIP/CoCa: captions generated from the sparse visual tokens, `sparse_captions`). With
   `C_i` the sparse captions of R_i and `C_rand` those of `n` random rows,

       agreement_i = |{c ∈ C_i : c contains a word of name_i}| / |C_i|

   where words are lower-case alphanumeric tokens, stop words dropped, a final "s"/"es" stripped on both sides
   ("dogs" matches "dog"). The chance level is the mean over concepts of the same share among C_rand (generic
   words such as "man" match often by chance).

Per dictionary: the mean, standard deviation and count over the scored concepts (`QualityReport.summary`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from tqdm.auto import tqdm

from cedar_hf.analysis.codes import compute_codes
from cedar_hf.data import embedding_matrix, load_dataset

from .captions import sparse_captions
from .examples import load_row_image
from .naming import concept_sign, name_info, resolve_backbone
from ..atomic import atomic_path

SCORES = ("purity", "fidelity", "caption_agreement")
QUALITY_FORMAT = "cedar-hf-concept-quality/1"
_TOKEN = re.compile(r"[a-z0-9]+")


# ---- top examples -----------------------------------------------------------------------------------------------
def oriented_top_rows(codes: sp.spmatrix, signs: Sequence[int], n: int) -> list[Optional[np.ndarray]]:
    """Per latent: the `n` rows with the largest `sign · code > 0`, strongest first; None when fewer than n."""
    if n < 1:
        raise ValueError(f"n={n} must be at least 1")
    csc = sp.csc_matrix(codes)
    result: list[Optional[np.ndarray]] = []
    for i in range(csc.shape[1]):
        start, stop = csc.indptr[i], csc.indptr[i + 1]
        values = csc.data[start:stop] * float(signs[i])
        rows = csc.indices[start:stop][values > 0]
        values = values[values > 0]
        if rows.size < n:
            result.append(None)
            continue
        order = np.lexsort((rows, -values))[:n]  # ties broken by row: deterministic
        result.append(rows[order])
    return result


def _signs(dictionary, n_latents: int) -> list[int]:
    return [concept_sign(dictionary, i) for i in range(n_latents)]


# ---- 1. purity --------------------------------------------------------------------------------------------------
def label_purity(top_rows: Sequence[Optional[np.ndarray]], labels: Sequence) -> np.ndarray:
    """`(n_latents,)` share of the most common label among each concept's top rows (NaN when unscored)."""
    labels = np.asarray([str(label) for label in labels])
    scores = np.full(len(top_rows), np.nan)
    for i, rows in enumerate(top_rows):
        if rows is not None:
            _, counts = np.unique(labels[rows], return_counts=True)
            scores[i] = counts.max() / rows.size
    return scores


def purity_chance(labels: Sequence, n: int, draws: int = 200, seed: int = 0) -> float:
    """Mean purity of `n` rows drawn uniformly without replacement (the chance level of `label_purity`)."""
    labels = np.asarray([str(label) for label in labels])
    if labels.size < n:
        raise ValueError(f"n={n} is larger than the {labels.size} labelled rows")
    rng = np.random.default_rng(seed)
    return float(np.mean([np.unique(labels[rng.choice(labels.size, n, replace=False)], return_counts=True)[1].max()
                          / n for _ in range(draws)]))


# ---- 2. name fidelity -------------------------------------------------------------------------------------------
def name_fidelity(
    top_rows: Sequence[Optional[np.ndarray]], embeddings: torch.Tensor, name_embeddings: torch.Tensor,
    n_random: int = 40, seed: int = 0,
) -> np.ndarray:
    """`(n_latents,)` precision at n of retrieving each concept's top rows among `n_random` random rows by
    `cos(name embedding, example embedding)` (NaN when unscored or the name embedding is missing/zero)."""
    if n_random < 1:
        raise ValueError(f"n_random={n_random} must be at least 1")
    x = torch.nn.functional.normalize(embeddings.double(), dim=-1)  # (N, d); float64: ties are not rounding noise
    names = torch.nn.functional.normalize(name_embeddings.double(), dim=-1)  # (n_latents, d)
    if names.shape[1] != x.shape[1]:
        raise ValueError(f"name embeddings are {names.shape[1]}-d but the examples are {x.shape[1]}-d: embed the "
                         "names with the backbone the dataset was extracted with")
    scores = np.full(len(top_rows), np.nan)
    for i, rows in enumerate(top_rows):
        if rows is None or not bool(torch.isfinite(names[i]).all()) or float(names[i].norm()) == 0:
            continue
        others = np.setdiff1d(np.arange(x.shape[0]), rows)
        if others.size < n_random:
            raise ValueError(f"n_random={n_random} needs at least that many rows outside a concept's top "
                             f"{rows.size}; the dataset has {x.shape[0]} rows")
        rng = np.random.default_rng([seed, i])  # one stream per concept: scores do not depend on which are scored
        candidates = np.concatenate([rows, rng.choice(others, n_random, replace=False)])
        similarity = (x[torch.as_tensor(candidates)] @ names[i]).numpy()
        best = candidates[np.lexsort((candidates, -similarity))[: rows.size]]
        scores[i] = np.isin(best, rows).sum() / rows.size
    return scores


# ---- 3. caption agreement ---------------------------------------------------------------------------------------
def _stem(word: str) -> str:
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """Lower-case alphanumeric tokens, stop words dropped, a plural "s"/"es" stripped."""
    return {_stem(w) for w in _TOKEN.findall(text.lower()) if w not in ENGLISH_STOP_WORDS}


def caption_agreement(names: Sequence[Optional[str]], captions: Sequence[Optional[Sequence[str]]]) -> np.ndarray:
    """`(n_latents,)` share of each concept's captions that contain a content word of its name (NaN when the
    concept has no name or no captions)."""
    if len(names) != len(captions):
        raise ValueError(f"{len(names)} names but {len(captions)} caption lists")
    scores = np.full(len(names), np.nan)
    for i, (name, texts) in enumerate(zip(names, captions)):
        words = content_words(name) if name else set()
        if words and texts:
            scores[i] = float(np.mean([bool(words & content_words(text)) for text in texts]))
    return scores


def caption_chance(names: Sequence[Optional[str]], random_captions: Sequence[str]) -> float:
    """Mean over named concepts of the share of random rows' captions that contain a word of the name."""
    scores = caption_agreement(names, [random_captions] * len(names))
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else math.nan


# ---- the report -------------------------------------------------------------------------------------------------
def _summary(values: np.ndarray, chance: Optional[float]) -> dict:
    finite = values[np.isfinite(values)]
    return {"mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std()) if finite.size else None,
            "scored": int(finite.size), "unscored": int(values.size - finite.size),
            "chance": None if chance is None or not math.isfinite(chance) else float(chance)}


@dataclass
class QualityReport:
    """Per-concept and per-dictionary quality scores (see the module docstring for their definitions)."""

    per_concept: list[dict]
    summary: dict
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": QUALITY_FORMAT, "settings": self.settings, "summary": self.summary,
                "per_concept": self.per_concept}

    def to_markdown(self, top: int = 20) -> str:
        s = self.settings
        lines = [f"# Concept quality of {s.get('model', 'a dictionary')}", "",
                 f"Top-{s.get('n')} examples per concept over {s.get('rows')} rows; "
                 f"{s.get('n_random')} random rows for name fidelity. Definitions: `cedar_hf.interpret.quality`.", "",
                 "| score | mean | std | concepts scored | unscored | chance |", "|---|---|---|---|---|---|"]
        for score, row in self.summary.items():
            fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(f"| {score} | {fmt(row['mean'])} | {fmt(row['std'])} | {row['scored']} | {row['unscored']}"
                         f" | {fmt(row['chance'])} |")
        scored = [c for c in self.per_concept if any(c.get(k) is not None for k in SCORES)]
        key = next((k for k in ("fidelity", "purity", "caption_agreement") if k in self.summary), None)
        if key and scored:
            ranked = sorted((c for c in scored if c.get(key) is not None), key=lambda c: -c[key])
            lines += ["", f"## Concepts by {key} (best {min(top, len(ranked))} and worst {min(top, len(ranked))})",
                      "", "| latent | name | match | " + " | ".join(k for k in SCORES if k in self.summary) + " |",
                      "|---|---|---|" + "---|" * sum(k in self.summary for k in SCORES)]
            shown = ranked[:top] + [c for c in ranked[-top:] if c not in ranked[:top]]
            for c in shown:
                values = " | ".join("—" if c.get(k) is None else f"{c[k]:.2f}" for k in SCORES if k in self.summary)
                match = "—" if c.get("match") is None else f"{c['match']:.2f}" + (" weak" if c.get("weak") else "")
                lines.append(f"| {c['latent']} | {c.get('name') or '—'} | {match} | {values} |")
        return "\n".join(lines) + "\n"

    def save(self, output_dir: Union[str, os.PathLike], stem: str = "quality") -> tuple[Path, Path]:
        """Write `<stem>.json` and `<stem>.md` into `output_dir`, each atomically."""
        output_dir = Path(output_dir)
        paths = output_dir / f"{stem}.json", output_dir / f"{stem}.md"
        with atomic_path(paths[0]) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        with atomic_path(paths[1]) as tmp:
            tmp.write_text(self.to_markdown(), encoding="utf-8")
        return paths


def _names(dictionary, n_latents: int) -> list[Optional[str]]:
    if not (getattr(dictionary, "concept_names", None) or {}).get("names"):
        return [None] * n_latents
    return [name_info(dictionary, i).name if not name_info(dictionary, i).name.startswith("latent ") else None
            for i in range(n_latents)]


def embed_names(backbone, dictionary, names: Sequence[Optional[str]], batch_size: int = 256) -> torch.Tensor:
    """`(n_latents, d)` embeddings of the names with the naming prompt (zero rows for unnamed latents)."""
    prompt = (getattr(dictionary, "concept_names", None) or {}).get("prompt")
    present = [i for i, name in enumerate(names) if name]
    unique = list(dict.fromkeys(names[i] for i in present))
    table = {}
    if unique:
        vectors = torch.as_tensor(backbone.embed_texts(unique, batch_size=batch_size, prompt=prompt)).float().cpu()
        table = dict(zip(unique, vectors))
    dim = next(iter(table.values())).numel() if table else 1
    out = torch.zeros(len(names), dim)
    for i in present:
        out[i] = table[names[i]]
    return out


def sparse_caption_fn(dictionary, backbone, data: Any, k: Optional[int] = None, image_root=None,
                      batch_size: int = 16, **generate_kwargs) -> Callable[[Sequence[int]], list[str]]:
    """`rows -> captions`: the images of dataset rows (an `image` column, or `id` paths relative to `image_root`)
    captioned from their sparse visual tokens (`sparse_captions`, k active latents) — the `captions` argument of
    `concept_quality` for BLIP-style backbones. Raises a ValueError naming the row whose image is missing."""
    dataset = load_dataset(data)
    backbone = resolve_backbone(backbone, dictionary)
    root = Path(image_root) if image_root else None

    def captions(rows: Sequence[int]) -> list[str]:
        images = []
        for row in rows:
            image = load_row_image(int(row), dataset, root)
            if image is None:
                raise ValueError(f"row {row} of the dataset has no image (an `image` column, or an `id` path "
                                 f"relative to image_root={image_root!r}): caption agreement needs the images")
            images.append(image)
        out: list[str] = []
        for start in range(0, len(images), batch_size):
            out += list(sparse_captions(backbone, dictionary, images[start : start + batch_size], k=k,
                                        **generate_kwargs))
        return out

    return captions


def concept_quality(
    dictionary,
    data: Any,
    backbone: Any = None,
    *,
    label_column: Optional[str] = "label",
    n: int = 10,
    n_random: int = 40,
    k: Optional[int] = None,
    captions: Optional[Callable[[Sequence[int]], Sequence[str]]] = None,
    seed: int = 0,
    codes: Optional[sp.spmatrix] = None,
    name_embeddings: Optional[torch.Tensor] = None,
    progress: bool = True,
) -> QualityReport:
    """Score every concept of `dictionary` over an embedding dataset (see the module docstring).

    Args:
        data: an embedding dataset (folder, `datasets.Dataset` with `embedding`, optionally the label column) or
            a tensor `(N, d)` (then only name fidelity).
        backbone: encoder for the names (a `Backbone`, a name for `load_backbone`, or None for the dictionary's
            `config.backbone`). Name fidelity is skipped when the dictionary is unnamed or no backbone is found
            and `name_embeddings` is not given.
        label_column: the column purity is computed against (skipped when None or absent from the dataset).
        n / n_random: top examples per concept, random distractors for name fidelity.
        k: active latents when encoding (the dictionary's default when None).
        captions: a function mapping dataset rows to one caption each, e.g. `lambda rows: sparse_captions(
            backbone, dictionary, images_of(rows), k=k)`, for caption agreement (BLIP/CoCa); None skips it.
        codes / name_embeddings: precomputed sparse codes `(N, n_latents)` and name embeddings `(n_latents, d)`.
    """
    x = embedding_matrix(data, flatten_tokens=False)
    tokens = x.dim() == 3  # visual tokens (BLIP): no text embedding lives in their space, so no name fidelity
    x = x.mean(1) if tokens else x  # token rows: the mean token, like their codes
    if x.shape[0] < n + n_random:
        raise ValueError(f"the dataset has {x.shape[0]} rows; n={n} plus n_random={n_random} are needed")
    codes = compute_codes(dictionary, data, k=k, progress=progress) if codes is None else sp.csr_matrix(codes)
    n_latents = codes.shape[1]
    signs = _signs(dictionary, n_latents)
    top = oriented_top_rows(codes, signs, n)
    names = _names(dictionary, n_latents)
    scores: dict[str, np.ndarray] = {}
    chances: dict[str, Optional[float]] = {}
    dataset = None if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
    if label_column and dataset is not None and label_column in dataset.column_names:
        labels = list(dataset[label_column])
        if len(labels) != x.shape[0]:
            raise ValueError(f"label column {label_column!r} has {len(labels)} values for {x.shape[0]} rows")
        scores["purity"], chances["purity"] = label_purity(top, labels), purity_chance(labels, n, seed=seed)
    if any(names) and not tokens and (name_embeddings is not None or backbone is not None
                                      or getattr(dictionary.config, "backbone", None)):
        if name_embeddings is None:
            name_embeddings = embed_names(resolve_backbone(backbone, dictionary), dictionary, names)
        scores["fidelity"] = name_fidelity(top, x, name_embeddings, n_random=n_random, seed=seed)
        chances["fidelity"] = n / (n + n_random)
    if captions is not None and any(names):
        scored = [i for i, rows in enumerate(top) if rows is not None and names[i]]
        per_concept: list[Optional[list[str]]] = [None] * n_latents
        for i in tqdm(scored, desc="sparse captions", disable=not progress, unit="concept"):
            per_concept[i] = list(captions(top[i].tolist()))
        random_rows = np.random.default_rng(seed).choice(x.shape[0], n, replace=False).tolist()
        scores["caption_agreement"] = caption_agreement(names, per_concept)
        chances["caption_agreement"] = caption_chance([names[i] for i in scored], list(captions(random_rows)))
    per = []
    for i in range(n_latents):
        info = name_info(dictionary, i)
        entry = {"latent": i, "name": names[i], "match": info.score, "weak": info.weak,
                 "examples": None if top[i] is None else top[i].tolist()}
        entry.update({key: (None if not np.isfinite(v[i]) else float(v[i])) for key, v in scores.items()})
        per.append(entry)
    settings = {"model": getattr(dictionary, "name_or_path", None) or type(dictionary).__name__,
                "architecture": getattr(dictionary.config, "model_type", None), "n": n, "n_random": n_random,
                "k": k, "seed": seed, "rows": int(x.shape[0]), "label_column": label_column if "purity" in scores
                else None, "n_latents": n_latents}
    return QualityReport(per, {key: _summary(v, chances.get(key)) for key, v in scores.items()}, settings)


__all__ = ["sparse_caption_fn", "QualityReport", "caption_agreement", "caption_chance", "concept_quality", "content_words", "embed_names",
           "label_purity", "name_fidelity", "oriented_top_rows", "purity_chance", "SCORES"]
