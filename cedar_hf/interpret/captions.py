"""Sparse captions and steering (paper §3 "Free-form explanations").

Every visual token of a captioning backbone (BLIP, a vision encoder-decoder) passes through
`dictionary.reconstruct(tokens, k)` before the text decoder sees it (`cedar_hf.sparse_tokens`), and the model's own
`generate` runs unchanged. Several low-temperature samples of the same sparse embedding show which words recur: those
are what the k active concepts say. Steering raises or lowers one (named) coordinate of every token's code and shows
the caption that results.

    reports = caption_report(backbone, dictionary, images, k=10, samples=5, temperature=0.3)
    print(reports[0])
    steer(backbone, dictionary, images, "dog", delta=+3.0)   # captions with the "dog" coordinate raised
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from cedar_hf.backbones.hooks import sparse_tokens

from .naming import find_latents


def _generate_defaults(kwargs: dict) -> dict:
    return {"max_new_tokens": 30, **kwargs}


def _group(captions: list[str], size: int) -> list[list[str]]:
    return [captions[i : i + size] for i in range(0, len(captions), size)]


def sparse_captions(
    backbone, dictionary, images: Sequence, k: Optional[int] = None, samples: int = 1,
    temperature: Optional[float] = None, **generate_kwargs,
) -> Union[list[str], list[list[str]]]:
    """Captions generated from sparse visual tokens (`k` active latents per token).

    With `samples == 1` and no temperature: one deterministic caption per image (greedy or the given beams).
    Otherwise `samples` sampled captions per image at `temperature` (a list of lists).
    """
    if not callable(getattr(backbone, "caption", None)):
        raise ValueError(f"{type(backbone).__name__} cannot caption: use a BLIP or vision encoder-decoder backbone")
    if samples < 1:
        raise ValueError(f"samples={samples} must be at least 1")
    kwargs = _generate_defaults(generate_kwargs)
    sampled = samples > 1 or temperature is not None
    if sampled:
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        kwargs.update(do_sample=True, num_return_sequences=samples, temperature=temperature or 1.0)
    with sparse_tokens(backbone, dictionary, k=k):
        captions = backbone.caption(list(images), **kwargs)
    return _group(captions, samples) if sampled else captions


def recurring_words(captions: Sequence[str], min_fraction: float = 0.5) -> list[tuple[str, int]]:
    """Content words that occur in at least `min_fraction` of the captions, most frequent first, as (word, count)."""
    counts: Counter = Counter()
    for caption in captions:
        words = re.findall(r"[\w'\-]+", caption.lower())
        counts.update({w for w in words if w not in ENGLISH_STOP_WORDS and not w.isdigit()})
    needed = max(1, int(-(-min_fraction * len(captions) // 1)))  # ceil
    return [(w, c) for w, c in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if c >= needed]


@dataclass
class CaptionReport:
    """Dense caption, sparse caption and low-temperature samples of one image, with the recurring words."""

    source: str
    dense: str
    sparse: str
    samples: list[str] = field(default_factory=list)
    recurring: list[tuple[str, int]] = field(default_factory=list)
    k: Optional[int] = None
    temperature: Optional[float] = None

    def __str__(self) -> str:
        lines = [f"{self.source}", f"  dense caption:       {self.dense}", f"  sparse caption (k={self.k}): {self.sparse}"]
        for i, sample in enumerate(self.samples, 1):
            lines.append(f"  sample {i} (T={self.temperature}): {sample}")
        if self.samples:
            words = ", ".join(f"{w} ×{c}" for w, c in self.recurring) or "(none)"
            lines.append(f"  recurring words:     {words}")
        return "\n".join(lines)


def caption_report(
    backbone, dictionary, images: Sequence, k: Optional[int] = 10, samples: int = 5, temperature: float = 0.3,
    sources: Optional[Sequence[str]] = None, min_fraction: float = 0.5, seed: Optional[int] = 0, **generate_kwargs,
) -> list[CaptionReport]:
    """Dense caption, deterministic sparse caption, `samples` sparse samples at `temperature` and their recurring
    words, per image. `generate_kwargs` (e.g. `num_beams=3`) apply to the dense and the deterministic sparse
    caption; `seed` makes the samples reproducible."""
    images = list(images)
    kwargs = _generate_defaults(generate_kwargs)
    dense = backbone.caption(images, **kwargs)
    sparse = sparse_captions(backbone, dictionary, images, k=k, **kwargs)
    sampled = [[] for _ in images]
    if samples > 0:
        if seed is not None:
            torch.manual_seed(seed)
        sample_kwargs = {key: value for key, value in kwargs.items() if key != "num_beams"}
        sampled = sparse_captions(backbone, dictionary, images, k=k, samples=samples, temperature=temperature,
                                  **sample_kwargs)
    sources = list(sources) if sources is not None else [f"image {i}" for i in range(len(images))]
    return [
        CaptionReport(sources[i], dense[i], sparse[i], sampled[i], recurring_words(sampled[i], min_fraction)
                      if sampled[i] else [], k, temperature if samples > 0 else None)
        for i in range(len(images))
    ]


def compare_captions(
    backbone, dictionaries: dict, images: Sequence, k: Optional[int] = 10, **generate_kwargs
) -> list[dict[str, str]]:
    """Dense captions beside the sparse captions of several dictionaries at the same k, per image — e.g. dense
    vs CEDAR vs the no-rotation baseline (the CEDAR paper's Study 3). Returns one `{"dense": …, name: …}` per image.

        compare_captions(blip, {"CEDAR": cedar, "no rotation": no_rotation}, images, k=10)
    """
    images = list(images)
    kwargs = _generate_defaults(generate_kwargs)
    rows = [{"dense": caption} for caption in backbone.caption(images, **kwargs)]
    for name, dictionary in dictionaries.items():
        if name == "dense":
            raise ValueError("'dense' is reserved for the dense captions; name the dictionary otherwise")
        for row, caption in zip(rows, sparse_captions(backbone, dictionary, images, k=k, **kwargs)):
            row[name] = caption
    return rows


def format_comparison(rows: Sequence[dict[str, str]], sources: Sequence[str], k: Optional[int]) -> str:
    """The side-by-side table `compare_captions` returns, as text (one block per image)."""
    lines = []
    for source, row in zip(sources, rows):
        width = max(len(name) for name in row)
        lines.append(source)
        for name, caption in row.items():
            label = name if name == "dense" else f"{name} (k={k})"
            lines.append(f"  {label.ljust(width + 6)}  {caption}")
    return "\n".join(lines)


class SteeredDictionary(torch.nn.Module):
    """A dictionary whose codes are changed on one latent before decoding: `codes[..., latent] = value` or
    `+= delta`. It keeps the dictionary contract that `sparse_tokens` uses (`config`, `reconstruct`, `check_k`)."""

    def __init__(self, dictionary, latent: int, delta: Optional[float] = None, value: Optional[float] = None):
        super().__init__()
        if (delta is None) == (value is None):
            raise ValueError("give exactly one of delta (add to the coordinate) or value (set the coordinate)")
        if not 0 <= int(latent) < dictionary.config.n_latents:
            raise ValueError(f"latent={latent} must be in [0, n_latents={dictionary.config.n_latents})")
        self.dictionary, self.latent, self.delta, self.value = dictionary, int(latent), delta, value
        self.config = dictionary.config

    def check_k(self, k):
        return self.dictionary.check_k(k)

    def encode(self, x: torch.Tensor, k: Optional[int] = None) -> torch.Tensor:
        codes = self.dictionary.encode(x, k=k).clone()
        if self.value is not None:
            codes[..., self.latent] = self.value
        else:
            codes[..., self.latent] += self.delta
        return codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.dictionary.decode(codes)

    def reconstruct(self, x: torch.Tensor, k: Optional[int] = None) -> torch.Tensor:
        return self.decode(self.encode(x, k))


def steer(
    backbone, dictionary, images: Sequence, concept: Union[int, str], delta: Optional[float] = None,
    value: Optional[float] = None, k: Optional[int] = None, **generate_kwargs,
) -> list[str]:
    """Captions with one coordinate raised or lowered in every visual token's code.

    Args:
        concept: a latent index or a concept name (see `dictionary.concept_labels`).
        delta: added to the coordinate (positive raises the concept, negative lowers it); or
        value: the coordinate is set to this (0 removes the concept).
        k: active latents per token before steering.
    """
    latent = concept if isinstance(concept, int) else find_latents(dictionary, concept)[0]
    return sparse_captions(backbone, SteeredDictionary(dictionary, latent, delta, value), images, k=k,
                           **generate_kwargs)


__all__ = ["CaptionReport", "SteeredDictionary", "caption_report", "recurring_words", "sparse_captions", "steer"]
