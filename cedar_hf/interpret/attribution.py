"""Exact similarity attribution: why two embeddings are similar, term by term over a dictionary's concepts.

    attribution = cedar_hf.attribute_similarity(dictionary, "photo.jpg", "a dog on the beach", backbone=clip, k=10)
    print(attribution)                 # the terms, strongest first, and what they add up to
    attribution.plot("why.png")        # a bar chart of the terms

The math. Let `m = decode(0)` (CEDAR: the mean b) and `w_i = concept_directions[i]`.

- **Orthogonal dictionaries** (CEDAR: `z̃ = U(z − b)`, U orthogonal; also the no-rotation baseline, U = I). The
  centred dot product splits exactly over the D axes: `(a − b)·(c − b) = Σ_d z̃_a,d z̃_c,d`. The axes in the top-k code
  of a *or* of c are the explained part; the other axes are the residual, itself known axis by axis. Nothing is
  left unexplained (`reconstruction_error` is only the float64 rounding of U's orthogonality, ~1e-7).
- **Other dictionaries** (the SAEs: atoms neither orthogonal nor complete). With codes α, γ of a, c:
  `â − m = Σ_i α_i w_i`, and `(â − m)·(ĉ − m) = Σ_i ½[α_i w_i·(ĉ − m) + γ_i w_i·(â − m)]` (each latent's term; of their
  sum, `Σ_i α_i γ_i ‖w_i‖²` is the diagonal part and the rest the `interference` between non-orthogonal atoms). What the
  codes do not reconstruct is the `reconstruction_error` term `(a − m)·(c − m) − (â − m)·(ĉ − m)`, which no latent
  explains. The symmetric ½-split of the cross terms is this package's choice (no paper defines one); for
  orthogonal atoms it reduces to `α_i γ_i`, the CEDAR formula.
- **Mean terms**, both cases: `a·c = (a − m)·(c − m) + m·(a − m) + m·(c − m) + ‖m‖²`, and the cosine is `a·c / (‖a‖‖c‖)`,
  so every term has a cosine share (`term / (‖a‖‖c‖)`). For L2-normalised CLIP embeddings the two coincide.

Everything is computed in float64 from the dictionary's float32 weights, so the terms add up to the similarity to
rounding (tests: to 1e-5 at k = D for CEDAR).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from cedar_hf.data import load_dataset

from .explanations import _embed
from .naming import concept_sign, name_info, resolve_backbone
from .vocabulary import save_figure

ORTHOGONALITY_TOLERANCE = 1e-4  # max |UUᵀ − I| for the exact orthogonal route (CEDAR's U is orthogonal to ~1e-6)


@dataclass
class SimilarityAttribution:
    """The similarity of two embeddings a, c split into terms (see the module docstring).

    Attributes:
        sources: what a and c were (texts, image paths, "embedding").
        orthogonal: True when the exact axis-by-axis route applied (an orthogonal, complete dictionary).
        latents / names / contributions: each latent's term of the centred dot product `(a − m)·(c − m)`, strongest
            |term| first (zero terms left out); `names` name the end both inputs lie on, or `a-end ↔ c-end` for a
            negative term (a and c on opposite ends); a weak name (see `name_concepts`) ends in `?`. `code_a` / `code_c`: their coordinates (or codes).
        in_top_k: whether the latent is among the top-k active latents of a or of c.
        dot, cosine, norm_a, norm_c: the raw similarity, computed directly from a and c.
        centred_dot: `(a − m)·(c − m)`. explained: the top-k latents' terms. residual: the other axes' terms
            (orthogonal dictionaries; 0 for the others). interference: the off-diagonal part of the latents' terms
            (0 for orthogonal atoms). reconstruction_error: what no latent explains (SAEs; ~0 for CEDAR).
        mean_terms: `{"m·(a − m)", "m·(c − m)", "‖m‖²"}`, the offset's share of the raw dot product.
    """

    sources: tuple
    k: Optional[int]
    orthogonal: bool
    latents: list
    names: list
    contributions: list
    code_a: list
    code_c: list
    in_top_k: list
    dot: float
    cosine: float
    norm_a: float
    norm_c: float
    centred_dot: float
    explained: float
    residual: float
    interference: float
    reconstruction_error: float
    mean_terms: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        """The sum of every term: equals `dot` (to rounding)."""
        return float(sum(self.contributions) + self.reconstruction_error + sum(self.mean_terms.values()))

    def to_cosine(self, value: float) -> float:
        """A dot-product term as its share of the cosine."""
        return float(value) / max(self.norm_a * self.norm_c, 1e-300)

    def to_dict(self) -> dict:
        return asdict(self)

    def terms(self, n: int = 10, measure: str = "dot") -> list[tuple[str, float]]:
        """(label, value) of the n strongest latents, then the grouped terms (other latents, residual axes,
        reconstruction error, mean) — their values add up to `dot` (or `cosine` with `measure="cosine"`)."""
        if measure not in ("dot", "cosine"):
            raise ValueError(f"measure={measure!r} must be 'dot' or 'cosine'")
        scale = (lambda v: self.to_cosine(v)) if measure == "cosine" else float
        rows = [(name + ("" if name == f"latent {latent}" else f" ({latent})") + ("" if top else " *"), scale(value))
                for latent, name, value, top in
                zip(self.latents[:n], self.names[:n], self.contributions[:n], self.in_top_k[:n])]
        rest_top = [v for v, top in zip(self.contributions[n:], self.in_top_k[n:]) if top]
        rest_axes = [v for v, top in zip(self.contributions[n:], self.in_top_k[n:]) if not top]
        if rest_top:
            rows.append((f"{len(rest_top)} other top-k latents", scale(sum(rest_top))))
        if rest_axes:
            rows.append((f"{len(rest_axes)} other axes (residual)", scale(sum(rest_axes))))
        if not self.orthogonal or abs(self.reconstruction_error) > 1e-6:
            rows.append(("reconstruction error", scale(self.reconstruction_error)))
        rows.append(("mean terms", scale(sum(self.mean_terms.values()))))
        return rows

    def table(self, n: int = 10) -> str:
        """A plain-text table of `terms(n)` in both units and the totals they add up to."""
        a, c = (str(s)[:40] for s in self.sources)
        route = "orthogonal: exact over axes" if self.orthogonal else "non-orthogonal atoms"
        lines = [f"{a!r} · {c!r}  (k={self.k}, {route})",
                 f"  dot {self.dot:+.4f}   cosine {self.cosine:+.4f}   (‖a‖={self.norm_a:.3f}, ‖c‖={self.norm_c:.3f})",
                 f"  centred dot {self.centred_dot:+.4f} = top-k latents {self.explained:+.4f}"
                 f" + other axes {self.residual:+.4f} + reconstruction error {self.reconstruction_error:+.2e}"]
        if not self.orthogonal:
            lines.append(f"  (of the latents' terms, interference between non-orthogonal atoms: {self.interference:+.4f})")
        for label, value in self.terms(n):
            lines.append(f"  {label[:40]:<40} dot {value:+9.4f}   cosine {self.to_cosine(value):+8.4f}")
        lines.append(f"  {'sum of the terms':<40} dot {self.total:+9.4f}   cosine {self.to_cosine(self.total):+8.4f}")
        if not all(self.in_top_k[:n]):
            lines.append("  * not among the top-k latents of either input (an exact residual axis)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: Union[None, str, os.PathLike] = None, n: int = 12, measure: str = "cosine"):
        """A horizontal bar chart of `terms(n, measure)` with their sum; saved as PNG when `path` is given."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        rows = self.terms(n, measure)
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.8))
        latent_rows = min(n, len(self.latents))
        colors = [("#2b7bba" if v >= 0 else "#d9534f") if i < latent_rows else "#999999" for i, (_, v) in enumerate(rows)]
        ax.barh(range(len(rows)), [v for _, v in rows], color=colors)
        ax.set_yticks(range(len(rows)), [label[:45] for label, _ in rows])
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        total = self.cosine if measure == "cosine" else self.dot
        note = "" if all(self.in_top_k[:n]) else "\n* outside the top-k of both inputs (an exact residual axis)"
        ax.set_xlabel(f"contribution to the {measure} (blue/red: concepts, grey: grouped terms; sum = {total:+.4f})"
                      + note)
        a, c = (str(s) if len(str(s)) <= 32 else str(s)[:29] + "..." for s in self.sources)
        ax.set_title(f"{measure}({a!r}, {c!r}) = {total:+.4f}  (k={self.k})", fontsize=10)
        fig.tight_layout()
        if path is None:
            return fig
        path = save_figure(fig, Path(path), dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path


def _as_vector(value: Any, dictionary, backbone, site: Optional[str]) -> tuple[torch.Tensor, str]:
    """One embedding `(d,)` in float64 (texts/images go through the backbone) and its description."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        x = torch.as_tensor(value).double().reshape(-1)
        if x.numel() != dictionary.config.d_in:
            raise ValueError(f"embedding of shape {tuple(np.shape(value))}: expected {dictionary.config.d_in} values "
                             f"(the dictionary's d_in)")
        return x, "embedding"
    x, sources, _ = _embed([value], backbone, site, "attribute")
    if x.dim() == 3:
        raise ValueError(f"{sources[0]!r}: similarity attribution needs pooled embeddings (image_embeds, text_embeds), "
                         "not vision_tokens")
    return x.reshape(-1).double(), sources[0]


def _name(dictionary, latent: int, value_a: float, value_c: float) -> str:
    """The end both lie on, or `a-end ↔ c-end` when they lie on opposite ends (a negative term)."""
    sign = concept_sign(dictionary, latent)
    ends = [name_info(dictionary, latent, sign * (value or other)) for value, other in ((value_a, value_c),
                                                                                     (value_c, value_a))]
    end_a, end_c = (info.name + ("?" if info.weak else "") for info in ends)  # ?: a weak name, as everywhere
    return end_a if end_a == end_c else f"{end_a} ↔ {end_c}"


def _orthogonal_terms(U: torch.Tensor, a_c: torch.Tensor, c_c: torch.Tensor):
    """Per-axis terms of the centred dot product (exact): z̃_a,d z̃_c,d, with the coordinates."""
    za, zc = U @ a_c, U @ c_c  # (D,), (D,)
    return za * zc, za, zc, 0.0


def _dictionary_terms(W: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor):
    """Per-latent symmetric terms of (â − m)·(ĉ − m) for atoms W, and their off-diagonal (interference) part."""
    a_hat, c_hat = alpha @ W, gamma @ W  # (d,), (d,): â − m, ĉ − m
    terms = 0.5 * (alpha * (W @ c_hat) + gamma * (W @ a_hat))  # (n,)
    diagonal = float((alpha * gamma * (W * W).sum(1)).sum())
    return terms, alpha, gamma, float(terms.sum()) - diagonal


def is_orthogonal(dictionary, tolerance: float = ORTHOGONALITY_TOLERANCE) -> bool:
    """Whether the concept directions form an orthogonal basis (square, `|UUᵀ − I| <= tolerance`)."""
    W = dictionary.concept_directions.detach().double()
    if W.shape[0] != W.shape[1]:
        return False
    return bool((W @ W.T - torch.eye(W.shape[0], dtype=W.dtype)).abs().max() <= tolerance)


def attribute_similarity(dictionary, a: Any, c: Any, k: Optional[int] = None, backbone: Any = None,
                         site: Optional[str] = None) -> SimilarityAttribution:
    """Split the similarity of a and c exactly into per-concept terms, the residual and the mean terms.

    Args:
        dictionary: any cedar-hf dictionary (named with `name_concepts` for readable names).
        a, c: embeddings `(d,)`, texts, image paths or PIL images — e.g. an image and a text for an image–text match.
        k: active latents defining the explained part (the dictionary's default when None; `d_in` for CEDAR makes
            every axis explained).
        backbone: encoder for texts and images (a `Backbone`, a name/path, or None for `config.backbone`).
        site: image embedding site (default `image_embeds`).
    """
    for value in (a, c):
        if isinstance(value, str) and not value.strip():
            raise ValueError("cannot attribute a similarity to an empty text")
    needs_backbone = not all(isinstance(v, (torch.Tensor, np.ndarray)) for v in (a, c))
    backbone = resolve_backbone(backbone, dictionary) if needs_backbone else None
    site = site or "image_embeds"
    (x_a, source_a), (x_c, source_c) = (_as_vector(v, dictionary, backbone, site) for v in (a, c))
    with torch.no_grad():
        W = dictionary.concept_directions.detach().double()  # (n, d)
        m = dictionary.decode(torch.zeros(1, dictionary.config.n_latents)).double().reshape(-1)  # (d,)
        codes = dictionary.encode(torch.stack([x_a, x_c]).float(), k=k).double()  # (2, n)
    a_c, c_c = x_a - m, x_c - m
    orthogonal = is_orthogonal(dictionary)
    terms, va, vc, interference = (_orthogonal_terms(W, a_c, c_c) if orthogonal
                                   else _dictionary_terms(W, codes[0], codes[1]))
    top = (codes != 0).any(0)  # (n,): in the top-k of a or of c
    centred = float(a_c @ c_c)
    order = [int(i) for i in torch.argsort(terms.abs(), descending=True, stable=True) if terms[i] != 0]
    explained, other = float(terms[top].sum()), float(terms[~top].sum())
    norm_a, norm_c = float(x_a.norm()), float(x_c.norm())
    dot = float(x_a @ x_c)
    return SimilarityAttribution(
        sources=(source_a, source_c), k=dictionary.resolve_k(k) if hasattr(dictionary, "resolve_k") else k,
        orthogonal=orthogonal, latents=order,
        names=[_name(dictionary, i, float(va[i]), float(vc[i])) for i in order],
        contributions=[float(terms[i]) for i in order], code_a=[float(va[i]) for i in order],
        code_c=[float(vc[i]) for i in order], in_top_k=[bool(top[i]) for i in order],
        dot=dot, cosine=dot / max(norm_a * norm_c, 1e-300), norm_a=norm_a, norm_c=norm_c, centred_dot=centred,
        explained=explained, residual=other if orthogonal else 0.0, interference=float(interference),
        reconstruction_error=centred - float(terms.sum()),
        mean_terms={"m·(a − m)": float(m @ a_c), "m·(c − m)": float(m @ c_c), "‖m‖²": float(m @ m)},
    )


def match_explainer(dictionary, data: Any, k: Optional[int] = None, n: int = 8):
    """`explain(row_a, row_b) -> str`: the attribution table of two rows of an embedding dataset (a folder, a
    `datasets.Dataset` or a tensor `(N, d)`), for views such as the explorer's "explain this match"."""
    dataset = None if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
    size = len(data) if dataset is None else dataset.num_rows

    def row(i: int) -> tuple[torch.Tensor, str]:
        if not 0 <= int(i) < size:
            raise ValueError(f"row={i} is out of range [0, {size})")
        if dataset is None:
            return torch.as_tensor(data[int(i)]), f"row {i}"
        record = dataset[int(i)]
        return torch.as_tensor(record["embedding"]), str(record.get("text") or record.get("id") or f"row {i}")

    def explain(row_a: int, row_b: int) -> str:
        (x_a, name_a), (x_b, name_b) = row(row_a), row(row_b)
        attribution = attribute_similarity(dictionary, x_a, x_b, k=k)
        attribution.sources = (f"{row_a}: {name_a}", f"{row_b}: {name_b}")
        return attribution.table(n)

    return explain


__all__ = ["SimilarityAttribution", "attribute_similarity", "is_orthogonal", "match_explainer"]
