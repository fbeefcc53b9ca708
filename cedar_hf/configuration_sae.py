"""Configurations of the sparse-autoencoder family CEDAR is measured against (paper App. B; MSAE repo)."""

from __future__ import annotations

from typing import Optional, Sequence

from .configuration_base import DictionaryConfig


class SAEConfig(DictionaryConfig):
    r"""
    Fields shared by every SAE: `pre = W_enc((x − μ)·s − b_dec) + b_enc`, `x̂ = (W_dec z + b_dec)/s + μ`.

    Args:
        d_in (`int`, defaults to 768):
            Embedding dimension.
        expansion_factor (`int`, defaults to 8):
            `n_latents = expansion_factor * d_in` when `n_latents` is not given (the paper: 8×, 6144 for 768).
        n_latents (`int`, *optional*):
            Number of latents; overrides `expansion_factor`.
        k (`int`, *optional*):
            Number of active latents (TopK-style models) at inference.
        aux_k (`int`, *optional*):
            Number of dead latents the aux-k loss uses (Gao et al. 2024); defaults to `min(512, d_in // 2)`.
        aux_k_coefficient (`float`, defaults to 1/32):
            Weight of the aux-k loss; 0 disables it.
        dead_tokens_threshold (`int`, defaults to 1_000_000):
            A latent that has not fired for this many training tokens counts as dead.
    """

    def __init__(
        self,
        d_in: int = 768,
        expansion_factor: int = 8,
        n_latents: Optional[int] = None,
        k: Optional[int] = None,
        aux_k: Optional[int] = None,
        aux_k_coefficient: float = 1 / 32,
        dead_tokens_threshold: int = 1_000_000,
        **kwargs,
    ):
        if isinstance(expansion_factor, bool) or not isinstance(expansion_factor, int) or expansion_factor < 1:
            raise ValueError(f"expansion_factor={expansion_factor!r} must be a positive integer")
        if n_latents is None and isinstance(d_in, int):
            n_latents = expansion_factor * d_in
        self.expansion_factor = expansion_factor
        self.aux_k = aux_k if aux_k is not None else max(1, min(512, (d_in if isinstance(d_in, int) else 2) // 2))
        self.aux_k_coefficient = aux_k_coefficient
        self.dead_tokens_threshold = dead_tokens_threshold
        super().__init__(d_in=d_in, n_latents=n_latents, k=k, **kwargs)

    def validate_dictionary(self) -> None:
        super().validate_dictionary()
        if self.aux_k_coefficient < 0:
            raise ValueError(f"aux_k_coefficient={self.aux_k_coefficient} must be >= 0")
        if self.aux_k < 1 or self.aux_k > self.n_latents:
            raise ValueError(f"aux_k={self.aux_k} must be in [1, n_latents={self.n_latents}]")
        if self.dead_tokens_threshold < 1:
            raise ValueError(f"dead_tokens_threshold={self.dead_tokens_threshold} must be >= 1")


class ReLUSAEConfig(SAEConfig):
    r"""
    ReLU SAE with an L1 penalty weighted by decoder norms (Bricken et al. 2023).

    Args:
        l1_coefficient (`float`, defaults to 0.01):
            λ in `MSE + λ Σ_i z_i ‖W_dec[i]‖` (the paper's value).
    """

    model_type = "relu_sae"
    aliases = ("relu",)  # short names for `cedar-hf train --architecture`
    card_title = "ReLU sparse autoencoder"
    card_description = (
        "A ReLU sparse autoencoder (Bricken et al. 2023) with an L1 penalty "
        "weighted by decoder norms; codes are non-negative."
    )

    def __init__(self, l1_coefficient: float = 0.01, **kwargs):
        if l1_coefficient < 0:
            raise ValueError(f"l1_coefficient={l1_coefficient} must be >= 0")
        self.l1_coefficient = l1_coefficient
        kwargs.setdefault("aux_k_coefficient", 0.0)
        super().__init__(**kwargs)


class TopKSAEConfig(SAEConfig):
    r"""
    TopK SAE (Gao et al. 2024): `z = TopK(ReLU(pre))` per sample, with the aux-k loss against dead latents.

    Args:
        k (`int`, defaults to 64):
            Active latents per sample (the paper's baseline: 64).
    """

    model_type = "topk_sae"
    aliases = ("topk",)  # short names for `cedar-hf train --architecture`
    card_title = "TopK sparse autoencoder"
    card_description = (
        "A TopK sparse autoencoder (Gao et al. 2024): the k largest "
        "pre-activations per sample are kept; codes are non-negative."
    )

    def __init__(self, k: Optional[int] = 64, **kwargs):
        super().__init__(k=k, **kwargs)


class BatchTopKSAEConfig(SAEConfig):
    r"""
    BatchTopK SAE (Bussmann et al. 2024): training keeps the top `k·B` activations of the whole batch; a global
    threshold θ, estimated during training and saved as a buffer, replaces it at inference.

    Args:
        k (`int`, defaults to 32):
            Mean active latents per sample (the paper's baseline: 32).
        threshold_momentum (`float`, defaults to 0.99):
            Momentum of the running estimate of θ (the smallest activation kept in each training batch).
    """

    model_type = "batchtopk_sae"
    aliases = ("batchtopk",)  # short names for `cedar-hf train --architecture`
    card_title = "BatchTopK sparse autoencoder"
    card_description = (
        "A BatchTopK sparse autoencoder (Bussmann et al. 2024): "
        "top k·B activations per training batch, a global threshold at inference."
    )

    def __init__(self, k: Optional[int] = 32, threshold_momentum: float = 0.99, **kwargs):
        if not 0.0 <= threshold_momentum < 1.0:
            raise ValueError(f"threshold_momentum={threshold_momentum} must be in [0, 1)")
        self.threshold_momentum = threshold_momentum
        super().__init__(k=k, **kwargs)


class JumpReLUSAEConfig(SAEConfig):
    r"""
    JumpReLU SAE (Rajamanoharan et al. 2024): `z = pre·H(pre − θ_i)` with per-latent thresholds θ_i learnt
    through straight-through (rectangle-kernel) pseudo-derivatives and an L0 penalty.

    Args:
        initial_threshold (`float`, defaults to 0.001):
            θ_i at initialisation.
        bandwidth (`float`, defaults to 0.001):
            ε, the width of the rectangle kernel of the pseudo-derivative.
        l0_coefficient (`float`, defaults to 0.001):
            Weight of the L0 penalty.
    """

    model_type = "jumprelu_sae"
    aliases = ("jumprelu",)  # short names for `cedar-hf train --architecture`
    card_title = "JumpReLU sparse autoencoder"
    card_description = (
        "A JumpReLU sparse autoencoder (Rajamanoharan et al. 2024) "
        "with per-latent thresholds trained through a straight-through estimator."
    )

    def __init__(
        self, initial_threshold: float = 0.001, bandwidth: float = 0.001, l0_coefficient: float = 0.001, **kwargs
    ):
        if initial_threshold <= 0:
            raise ValueError(f"initial_threshold={initial_threshold} must be > 0")
        if bandwidth <= 0:
            raise ValueError(f"bandwidth={bandwidth} must be > 0")
        if l0_coefficient < 0:
            raise ValueError(f"l0_coefficient={l0_coefficient} must be >= 0")
        self.initial_threshold = initial_threshold
        self.bandwidth = bandwidth
        self.l0_coefficient = l0_coefficient
        kwargs.setdefault("aux_k_coefficient", 0.0)
        super().__init__(**kwargs)


WEIGHTINGS = ("UW", "RW")


class MatryoshkaSAEConfig(SAEConfig):
    r"""
    Matryoshka SAE / MSAE (Zaigrajew et al. 2025): one encoder, nested TopK levels `k₁ < k₂ < …`, loss
    `Σ_j w_j · MSE(x, x̂^{(k_j)})`.

    Args:
        levels (`Sequence[int]`, defaults to `(64, 128, 256, 512)`):
            Strictly increasing k of the nested levels. The default inference k is the largest level.
        weighting (`str`, defaults to `"RW"`):
            `"UW"`: equal weights; `"RW"` (reverse weighting, the paper's baseline): weights `m, m−1, …, 1`
            normalised, so smaller k weigh more.
    """

    model_type = "matryoshka_sae"
    aliases = ("matryoshka", "msae")  # short names for `cedar-hf train --architecture`
    card_title = "Matryoshka sparse autoencoder"
    card_description = (
        "A Matryoshka sparse autoencoder (Zaigrajew et al. "
        "2025): nested TopK levels trained jointly, so small k uses the most general concepts."
    )

    def __init__(self, levels: Sequence[int] = (64, 128, 256, 512), weighting: str = "RW", k=None, **kwargs):
        levels = [int(level) for level in levels]
        if not levels:
            raise ValueError("levels=[] must name at least one k")
        if any(b <= a for a, b in zip(levels, levels[1:])):
            raise ValueError(f"levels={levels} must be strictly increasing")
        if levels[0] < 1:
            raise ValueError(f"levels={levels} must be positive")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting={weighting!r} must be one of {WEIGHTINGS}")
        self.levels = levels
        self.weighting = weighting
        super().__init__(k=k if k is not None else levels[-1], **kwargs)

    def validate_dictionary(self) -> None:
        if isinstance(self.n_latents, int) and self.levels[-1] > self.n_latents:
            raise ValueError(f"levels={self.levels}: largest level {self.levels[-1]} > n_latents={self.n_latents}")
        super().validate_dictionary()
