"""Configurations of the two baselines named by the source papers: Semi-NMF and sparsification without rotation."""

from __future__ import annotations

from typing import Optional

from .configuration_base import DictionaryConfig


class SemiNMFConfig(DictionaryConfig):
    r"""
    Semi-NMF (Ding, Li & Jordan 2010; the dictionary-learning baseline of Papadimitriou et al. 2025 §3.2):
    `x − μ ≈ codes @ D` with **non-negative** codes and an unconstrained dictionary D, fitted by alternating
    updates (projected gradient for the codes, exact ridge least squares for D) with an L1 sparsity penalty on the
    codes: `mean_n [½‖x_n − μ − g_n D‖² + λ‖g_n‖₁] + (ρ/2)‖D‖²`, g ≥ 0.

    Args:
        d_in (`int`, defaults to 768):
            Embedding dimension.
        n_latents (`int`, *optional*):
            Number of atoms; defaults to `expansion_factor * d_in`.
        expansion_factor (`int`, defaults to 1):
            Used when `n_latents` is not given.
        k (`int`, *optional*):
            Keep only each sample's k largest codes at inference (a hard sparsity constraint); None keeps all.
        l1_coefficient (`float`, defaults to 0.01):
            λ in the objective.
        encode_iterations (`int`, defaults to 200):
            Accelerated projected-gradient (FISTA) iterations of the non-negative code solve per `encode` call (the
            dictionary is fixed then); codes start at 0, so the L1 term leaves most of them exactly 0.
        fit_epochs (`int`, defaults to 20):
            Alternating passes over the data in `fit_embeddings` (`cedar-hf train --model semi-nmf`).
        dictionary_ridge (`float`, defaults to 1e-3):
            ρ in the objective's `(ρ/2)‖D‖²` term, which keeps the least-squares dictionary update well posed when
            some atoms are rarely used.
        center (`bool`, defaults to `True`):
            Subtract the training mean μ (a buffer) before factorising.
    """

    model_type = "semi_nmf"
    aliases = ("seminmf", "nmf")  # short names for `cedar-hf train --architecture`
    card_title = "Semi-NMF dictionary"
    card_description = (
        "Semi-NMF (Ding, Li & Jordan 2010), the dictionary-learning "
        "baseline of the linear-structure paper: non-negative codes over an unconstrained dictionary, fitted by "
        "alternating projected-gradient code updates and exact ridge least-squares dictionary updates."
    )

    def __init__(
        self,
        d_in: int = 768,
        n_latents: Optional[int] = None,
        expansion_factor: int = 1,
        k: Optional[int] = None,
        l1_coefficient: float = 0.01,
        encode_iterations: int = 200,
        fit_epochs: int = 20,
        dictionary_ridge: float = 1e-3,
        center: bool = True,
        **kwargs,
    ):
        if isinstance(expansion_factor, bool) or not isinstance(expansion_factor, int) or expansion_factor < 1:
            raise ValueError(f"expansion_factor={expansion_factor!r} must be a positive integer")
        if l1_coefficient < 0:
            raise ValueError(f"l1_coefficient={l1_coefficient} must be >= 0")
        if isinstance(encode_iterations, bool) or not isinstance(encode_iterations, int) or encode_iterations < 1:
            raise ValueError(f"encode_iterations={encode_iterations!r} must be a positive integer")
        if isinstance(fit_epochs, bool) or not isinstance(fit_epochs, int) or fit_epochs < 1:
            raise ValueError(f"fit_epochs={fit_epochs!r} must be a positive integer")
        if dictionary_ridge <= 0:
            raise ValueError(f"dictionary_ridge={dictionary_ridge} must be > 0")
        if n_latents is None and isinstance(d_in, int):
            n_latents = expansion_factor * d_in
        self.fit_epochs = fit_epochs
        self.dictionary_ridge = dictionary_ridge
        self.expansion_factor = expansion_factor
        self.l1_coefficient = l1_coefficient
        self.encode_iterations = encode_iterations
        self.center = center
        super().__init__(d_in=d_in, n_latents=n_latents, k=k, **kwargs)


class NoRotationConfig(DictionaryConfig):
    r"""
    Sparsification without rotation (CEDAR paper §4, Study 3): signed top-k applied directly to the centred
    embedding `z − b` in its original basis. The ablation that shows the learned rotation is what preserves
    meaning. Only the mean b is fitted.

    Args:
        d_in (`int`, defaults to 768):
            Embedding dimension; `n_latents == d_in`.
        k (`int`, *optional*, defaults to `min(10, d_in)`):
            Default number of kept coordinates.
    """

    model_type = "no_rotation"
    aliases = ("norotation",)  # short names for `cedar-hf train --architecture`
    card_title = "No-rotation baseline"
    card_description = (
        "CEDAR without its rotation (the CEDAR paper's "
        "ablation): the signed top-k coordinates of `z − b` in the original basis; only the mean b is fitted."
    )

    def __init__(self, d_in: int = 768, k: Optional[int] = None, n_latents: Optional[int] = None, **kwargs):
        if n_latents is not None and n_latents != d_in:
            raise ValueError(f"no-rotation has one latent per dimension: n_latents={n_latents} must equal d_in={d_in}")
        if k is None and isinstance(d_in, int):
            k = min(10, d_in)
        super().__init__(d_in=d_in, n_latents=d_in, k=k, **kwargs)
