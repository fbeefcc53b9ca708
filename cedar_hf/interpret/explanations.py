"""Explanations: which named concepts make up an embedding (paper §3, Figure 3), and which examples make up a concept.

    explanation = cedar_hf.explain(dictionary, "a dog on the beach", backbone=backbone, k=10)
    print(explanation)                  # a terminal table: concept, coefficient, bar
    explanation.plot("dog.png")         # a bar chart like the paper's Figure 3 (with the sparse caption for BLIP)

    top = top_activating(dictionary, embeddings, latents=[3, 17], n=9)
    plot_top_examples(top, embeddings, "latent3.png")   # an image grid, or a text list for text rows
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from PIL import Image

from .captions import sparse_captions
from .vocabulary import save_figure
from .naming import concept_sign, name_info, resolve_backbone

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Explanation:
    """The active latents of one input, strongest first.

    Attributes:
        source: what was explained (the text, the image path, or "embedding").
        latents / names / coefficients: the active latents, their names and their coefficients oriented by the
            name (`sign · code`, see `name_concepts`: positive means "more of the named concept"), sorted by
            |coefficient|. A negative coefficient of a signed (CEDAR) axis is shown under the name of the axis's
            other end (its `opposite`), never under the positive end's name.
        name_scores / weak: each shown name's match score (cosine with its direction; None when the dictionary is
            unnamed) and whether it is weak (score below the dictionary's `weak_below`, default 0.3): weak names
            are printed with a `?` and their score, and drawn in grey.
        k: active latents requested. reconstruction_cosine: cos(x, x̂) of the sparse reconstruction.
        caption: the caption generated from sparse visual tokens (BLIP-style backbones), when there is one.
    """

    source: str
    latents: list[int]
    names: list[str]
    coefficients: list[float]
    k: Optional[int]
    reconstruction_cosine: float
    caption: Optional[str] = None
    extras: dict = field(default_factory=dict)
    name_scores: list = field(default_factory=list)
    weak: list = field(default_factory=list)

    def _score(self, i: int) -> Optional[float]:
        return self.name_scores[i] if i < len(self.name_scores) else None

    def _weak(self, i: int) -> bool:
        return bool(self.weak[i]) if i < len(self.weak) else False

    def shown_name(self, i: int) -> str:
        """Name i as displayed: `name?` when weak."""
        return self.names[i] + ("?" if self._weak(i) else "")

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self, width: int = 24) -> str:
        """A plain-text table: rank, concept, coefficient and a bar scaled to the largest |coefficient|."""
        head = f"{self.source!r}  (k={self.k}, cos(x, x̂)={self.reconstruction_cosine:.3f})"
        lines = [head] + ([f"  sparse caption: {self.caption}"] if self.caption else [])
        top = max((abs(c) for c in self.coefficients), default=1.0) or 1.0
        scored = any(score is not None for score in self.name_scores)
        for i, (latent, coef) in enumerate(zip(self.latents, self.coefficients)):
            bar = ("█" if coef >= 0 else "▒") * max(1, round(width * abs(coef) / top))
            score = self._score(i)
            match = (f"  match {score:.2f}" + (" weak" if self._weak(i) else "     ")) if score is not None else (
                " " * 17 if scored else "")
            lines.append(f"  {i + 1:>2}. {self.shown_name(i)[:28]:<28} {coef:+8.3f}  {bar:<{width}}{match}"
                         f"  (latent {latent})")
        if any(self._weak(i) for i in range(len(self.latents))):
            lines.append("  ? weak name: its match score (cosine with the concept direction) is below the threshold, "
                         "so the word may not describe the concept")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: Union[None, str, os.PathLike] = None, ax=None, title: Optional[str] = None):
        """A horizontal bar chart of the coefficients (the paper's Figure 3); saved as PNG when `path` is given.
        Returns the path when saved, else the matplotlib figure."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        n = len(self.latents)
        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(9 if self.caption else 6, 0.42 * n + 1.6))
        colors = [("#9ab8d4" if c >= 0 else "#e6a9a7") if self._weak(i) else ("#2b7bba" if c >= 0 else "#d9534f")
                  for i, c in enumerate(self.coefficients)]
        ax.barh(range(n), self.coefficients, color=colors)
        labels = [self.shown_name(i) + (f"  ({self._score(i):.2f})" if self._score(i) is not None else "")
                  for i in range(n)]
        ax.set_yticks(range(n), labels)
        for i, tick in enumerate(ax.get_yticklabels()):
            if self._weak(i):
                tick.set_color("#888888")
                tick.set_fontstyle("italic")
        if any(self._weak(i) for i in range(n)):
            ax.text(0.0, -0.6 / max(n, 1) - 0.08, "grey, ?: weak name (match score below threshold)",
                    transform=ax.transAxes, fontsize=8, color="#666666", va="top")
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("coefficient (negative: the axis's other end, named on its own)")
        text = title or self.source
        ax.set_title(text if len(text) <= 70 else text[:67] + "...", fontsize=10)
        if self.caption:
            wrapped = textwrap.fill(f"\"{self.caption}\"", width=32)
            ax.text(1.03, 0.5, f"sparse caption (k={self.k}):\n{wrapped}", transform=ax.transAxes,
                    va="center", ha="left", fontsize=9)
        fig = fig or ax.figure
        fig.tight_layout()
        if path is None:
            return fig
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path


def _is_image_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value).lower().endswith(IMAGE_SUFFIXES) and Path(value).is_file()


def _embed(inputs: list, backbone, site: Optional[str], progress_kind: str) -> tuple[torch.Tensor, list[str], list]:
    """Embeddings `(B, d)` or `(B, T, d)` of texts / images / tensors, their descriptions, and the PIL images."""
    if all(isinstance(x, torch.Tensor) or isinstance(x, np.ndarray) for x in inputs):
        x = torch.stack([torch.as_tensor(t, dtype=torch.float32) for t in inputs])
        return x, ["embedding"] * len(inputs), []
    if backbone is None:
        raise ValueError("explaining texts or images needs a backbone (backbone=... or the dictionary's config.backbone)")

    images = [x for x in inputs if _is_image_path(x) or isinstance(x, Image.Image)]
    if images and len(images) != len(inputs):
        raise ValueError("explain one kind of input at a time: all texts, all images or all embeddings")
    if images:
        pil = [Image.open(x).convert("RGB") if not isinstance(x, Image.Image) else x for x in inputs]
        site = site if site in ("image_embeds", "vision_tokens") else "image_embeds"
        x = backbone.embed_images(pil, sites=(site,))[site]
        return x, [str(x) if not isinstance(x, Image.Image) else "image" for x in inputs], pil
    if not all(isinstance(x, str) for x in inputs):
        raise ValueError(f"cannot explain inputs of types {sorted({type(x).__name__ for x in inputs})}")
    return backbone.embed_texts(list(inputs)), list(inputs), []


def explain(
    dictionary,
    inputs: Any,
    backbone: Any = None,
    k: Optional[int] = None,
    site: Optional[str] = None,
    caption: bool = True,
    caption_kwargs: Optional[dict] = None,
) -> Union[Explanation, list[Explanation]]:
    """Explain a text, an image (PIL or path), an embedding, or a list of them, as the active named latents.

    Args:
        dictionary: any cedar-hf dictionary (named with `name_concepts` for readable names).
        inputs: a string (text; an existing image path counts as an image), a PIL image, a tensor `(d,)` /
            `(B, d)`, or a list of one kind. A list (or a 2-d tensor) gives a list of explanations.
        backbone: a `Backbone`, a name/path for `load_backbone`, or None for `config.backbone` (not needed for
            embeddings).
        k: active latents (the dictionary's default when None).
        site: embedding site for images ("image_embeds" or "vision_tokens"); default the dictionary's own site.
            For token sites the explanation shows the codes averaged over the tokens.
        caption: for captioning backbones (BLIP, encoder-decoders) with a `vision_tokens` dictionary, also
            generate the sparse caption (`caption_kwargs` go to `generate`, e.g. `num_beams=3`).
    """
    site = site or getattr(dictionary.config, "embedding_site", None)
    items, single = _as_items(inputs, 2 if site == "vision_tokens" else 1)
    needs_backbone = not all(isinstance(x, (torch.Tensor, np.ndarray)) for x in items)
    if needs_backbone:
        backbone = resolve_backbone(backbone, dictionary)
    x, sources, images = _embed(items, backbone, site, "explain")
    with torch.no_grad():
        codes = dictionary.encode(x, k=k)
        x_hat = dictionary.decode(codes)
        if codes.dim() == 3:  # tokens: (B, T, n) -> (B, n)
            codes, x, x_hat = codes.mean(1), x.mean(1), x_hat.mean(1)
        cosine = torch.nn.functional.cosine_similarity(x.float(), x_hat.float(), dim=-1)
    captions = [None] * len(items)
    if caption and images and callable(getattr(backbone, "caption", None)) and site == "vision_tokens":
        captions = sparse_captions(backbone, dictionary, images, k=k, **(caption_kwargs or {}))
    k_used = dictionary.resolve_k(k) if hasattr(dictionary, "resolve_k") else k
    explanations = [_one(dictionary, codes[i], sources[i], k_used, float(cosine[i]), captions[i])
                    for i in range(len(items))]
    return explanations[0] if single else explanations


def _check_not_empty(items: list) -> None:
    """Refuse empty or blank texts (an empty string would embed as the tokenizer's special tokens only)."""
    blank = [i for i, x in enumerate(items) if isinstance(x, str) and not x.strip()]
    if blank:
        raise ValueError(f"nothing to explain: input(s) at position {blank[:10]} are empty or blank strings; "
                         "give a text, an image path, a PIL image or an embedding")
    if any(x is None for x in items):
        raise ValueError("nothing to explain: an input is None")


def _as_items(inputs: Any, item_dims: int) -> tuple[list, bool]:
    """The inputs as a list, and whether a single input was given (a tensor of `item_dims` dims is one input)."""
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError("nothing to explain: the list of inputs is empty")
        _check_not_empty(list(inputs))
        return list(inputs), False
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        inputs = torch.as_tensor(inputs, dtype=torch.float32)
        if inputs.numel() == 0:
            raise ValueError(f"nothing to explain: the embedding tensor of shape {tuple(inputs.shape)} is empty")
        if inputs.dim() == item_dims:
            return [inputs], True
        if inputs.dim() == item_dims + 1:
            return list(inputs), False
        raise ValueError(f"embedding of shape {tuple(inputs.shape)}: expected {item_dims} or {item_dims + 1} dims")
    _check_not_empty([inputs])
    return [inputs], True


def _one(dictionary, code: torch.Tensor, source: str, k, cosine: float, caption) -> Explanation:
    active = code.nonzero().flatten()
    order = active[code[active].abs().argsort(descending=True)]
    if k is not None:
        order = order[:k]  # token codes averaged over tokens can have more than k non-zeros
    coefs = [concept_sign(dictionary, int(i)) * float(code[i]) for i in order]  # oriented: > 0 = more of the name
    infos = [name_info(dictionary, int(i), coef) for i, coef in zip(order, coefs)]  # < 0: the other end's name
    return Explanation(source, [int(i) for i in order], [info.name for info in infos], coefs, k, cosine, caption,
                       name_scores=[info.score for info in infos], weak=[info.weak for info in infos])


__all__ = ["Explanation", "explain"]
