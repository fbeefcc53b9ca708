"""Configurations of the sparse-autoencoder family CEDAR is measured against (paper App. B; MSAE repo).

Defaults follow the reference code the paper's baselines come from — MSAE (github.com/WolodjaZ/MSAE, `config.py`,
`loss.py`, `train.py`) — and, for what MSAE lacks, the architecture's own reference: aux-k as in EleutherAI's
sparsify (`sparsify/sparse_coder.py`) and openai/sparse_autoencoder (`train.py`), JumpReLU as in Rajamanoharan
et al. 2024. Every default builds for any `d_in` / `n_latents`.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .configuration_base import DictionaryConfig

RECONSTRUCTION_LOSSES = ("nmse", "mse")
INIT_SCHEMES = ("tied", "independent")
DECODER_NORMS = ("tangent", "project")


def matryoshka_levels(n_latents: int, base: int = 64) -> list[int]:
    """MSAE's nesting list (`train.py`: `nesting_list=64`): k doubles from `base` and the full dictionary is the
    last level — `[64, 128, …, 4096, 6144]` (8 levels) for 6144 latents. When `n_latents < 2·base` the base is
    halved until two levels fit (a deviation MSAE never needs: its dictionaries are ≥ 8·768)."""
    if isinstance(n_latents, bool) or not isinstance(n_latents, int) or n_latents < 1:
        raise ValueError(f"n_latents={n_latents!r} must be a positive integer")
    while base > 1 and 2 * base > n_latents:
        base //= 2
    levels = [base]
    while 2 * levels[-1] <= n_latents:
        levels.append(2 * levels[-1])
    if levels[-1] != n_latents:
        levels.append(n_latents)
    return levels


def _resolved_n_latents(d_in, expansion_factor, n_latents):
    if n_latents is None and isinstance(d_in, int):
        return expansion_factor * d_in
    return n_latents


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
        reconstruction_loss (`str`, defaults to `"nmse"`):
            `"nmse"`: MSAE's per-sample normalised MSE `mean_i ‖x_c,i − x̂_c,i‖² / ‖x_c,i‖²` (MSAE `loss.py`
            `normalized_mean_squared_error`, openai/sparse_autoencoder `loss.py`), scale-free; `"mse"`: the
            plain mean squared error in the standardised space.
        aux_k (`int`, *optional*):
            Dead latents the aux-k loss uses; defaults to `d_in // 2` (Gao et al. 2024 App. B.1, sparsify's
            `k_aux = d // 2`), capped at `n_latents`.
        aux_k_coefficient (`float`, defaults to 0):
            Weight α of the aux-k loss (Gao et al. use 1/32); 0, MSAE's setting, disables it.
        dead_tokens_threshold (`int`, defaults to 10_000_000):
            A latent that has not fired for this many training tokens counts as dead (Gao et al., sparsify,
            openai: 10M).
        residual_aux_coefficient (`float`, defaults to 0):
            Weight c of overcomplete's auxiliary loss (`overcomplete.sae.losses.top_k_auxiliary_loss`, where it is
            `penalty=0.1`, the loss overcomplete's TopKSAE / BatchTopKSAE train with): every training step the top
            half (`n_latents // 2`) of the *unselected* positive pre-activations `ReLU(pre)·1[z = 0]` fit the
            residual, `c · L(x_c, x̂_c + top_half·W_dec)` with the configured reconstruction loss L (overcomplete:
            `mean((r − r̂)²)` with `r = x − x̂` not detached, i.e. `L = "mse"`). Unlike aux-k it acts on every
            latent every step, not only on dead ones; overcomplete names it after Gao et al.'s AuxK, but it is
            neither Gao's nor MSAE's loss (deviation from the MSAE baselines when > 0). With `"nmse"` it is
            scale-free like the main loss. For a ReLU SAE every positive pre-activation is selected, so the term
            is c times the reconstruction loss. 0 disables it.
        encoder_init_norm (`float`, defaults to 0.01):
            Norm of the encoder rows at initialisation, along the (unit) decoder rows. MSAE (`sae.py`
            `_init_weights(norm=0.1)` with tied start, then `scale_to_unit_norm`) starts from 0.1 · 0.1 = 0.01;
            1 is Gao et al.'s transposed decoder. On MiniLM/WordNet a TopK SAE (k = 64, 30 epochs) ends at
            held-out FVU 0.189 from the MSAE start, 0.225 from the unit one (`benchmarks/results/quality.md`).
            Used by `init_scheme="tied"` only.
        init_scheme (`str`, defaults to `"tied"`):
            `"tied"`: MSAE's and Gao et al.'s start — unit kaiming-uniform decoder rows, the encoder rows along
            them with norm `encoder_init_norm`, `b_enc = 0`. `"independent"`: overcomplete 0.3.0's start
            (`SAE.__init__`) — the encoder weight and bias as torch's `nn.Linear(d_in, n_latents)` default
            (uniform in ±1/√d_in), then an independent Xavier-uniform dictionary scaled to unit rows, drawn in that
            order (from the same seed, overcomplete's exact initial weights). On MiniLM/WordNet a TopK SAE
            (k = 64, 8×, overcomplete's residual aux) learns slower from the independent start at first and keeps
            improving longer: held-out FVU 0.680 vs 0.519 after epoch 1, 0.161 vs 0.170 after 120 epochs at a
            constant LR (`benchmarks/results/topk_ablation.md`, seed 0).
        decoder_bias (`bool`, defaults to `True`):
            Learn `b_dec` (subtracted before the encoder, added after the decoder: MSAE, Gao et al., sparsify).
            `False` keeps it at zero, a buffer the optimiser never sees: overcomplete 0.3.0's SAEs have no such
            bias (its encoder's `nn.Linear` bias is our `b_enc`).
        decoder_norm (`str`, defaults to `"tangent"`):
            How the trainer keeps decoder rows at unit norm. `"tangent"`: the gradient component parallel to each
            row is removed before the step (Gao et al., openai/sparse_autoencoder) and after it rows are rescaled
            to unit norm with the matching encoder rows and `b_enc` scaled by the same factor, so the model's
            function is unchanged (MSAE `scale_to_unit_norm`). `"project"`: overcomplete 0.3.0's
            `DictionaryLayer` — the full gradient is used and the rows are divided by their norm before the next
            forward; the encoder is left as it is.
    """

    def __init__(
        self,
        d_in: int = 768,
        expansion_factor: int = 8,
        n_latents: Optional[int] = None,
        k: Optional[int] = None,
        reconstruction_loss: str = "nmse",
        aux_k: Optional[int] = None,
        aux_k_coefficient: float = 0.0,
        dead_tokens_threshold: int = 10_000_000,
        encoder_init_norm: float = 0.01,
        residual_aux_coefficient: float = 0.0,
        init_scheme: str = "tied",
        decoder_bias: bool = True,
        decoder_norm: str = "tangent",
        **kwargs,
    ):
        if isinstance(expansion_factor, bool) or not isinstance(expansion_factor, int) or expansion_factor < 1:
            raise ValueError(f"expansion_factor={expansion_factor!r} must be a positive integer")
        if reconstruction_loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"reconstruction_loss={reconstruction_loss!r} must be one of {RECONSTRUCTION_LOSSES}")
        n_latents = _resolved_n_latents(d_in, expansion_factor, n_latents)
        if aux_k is None:
            half = (d_in if isinstance(d_in, int) else 2) // 2
            aux_k = max(1, min(half, n_latents if isinstance(n_latents, int) else half))
        self.expansion_factor = expansion_factor
        self.reconstruction_loss = reconstruction_loss
        self.aux_k = aux_k
        self.aux_k_coefficient = aux_k_coefficient
        self.dead_tokens_threshold = dead_tokens_threshold
        self.residual_aux_coefficient = float(residual_aux_coefficient)
        if not encoder_init_norm > 0:
            raise ValueError(f"encoder_init_norm={encoder_init_norm!r} must be > 0")
        self.encoder_init_norm = float(encoder_init_norm)
        if init_scheme not in INIT_SCHEMES:
            raise ValueError(f"init_scheme={init_scheme!r} must be one of {INIT_SCHEMES}")
        self.init_scheme = init_scheme
        if not isinstance(decoder_bias, bool):
            raise ValueError(f"decoder_bias={decoder_bias!r} must be True or False")
        self.decoder_bias = decoder_bias
        if decoder_norm not in DECODER_NORMS:
            raise ValueError(f"decoder_norm={decoder_norm!r} must be one of {DECODER_NORMS}")
        self.decoder_norm = decoder_norm
        super().__init__(d_in=d_in, n_latents=n_latents, k=k, **kwargs)

    def validate_dictionary(self) -> None:
        super().validate_dictionary()
        if self.aux_k_coefficient < 0:
            raise ValueError(f"aux_k_coefficient={self.aux_k_coefficient} must be >= 0")
        if not self.residual_aux_coefficient >= 0:
            raise ValueError(f"residual_aux_coefficient={self.residual_aux_coefficient} must be >= 0")
        if self.aux_k < 1 or self.aux_k > self.n_latents:
            raise ValueError(f"aux_k={self.aux_k} must be in [1, n_latents={self.n_latents}]")
        if self.dead_tokens_threshold < 1:
            raise ValueError(f"dead_tokens_threshold={self.dead_tokens_threshold} must be >= 1")


def _default_k(k: Optional[int], default: int, d_in, expansion_factor, n_latents) -> Optional[int]:
    """An unset k is the paper's value, capped at the dictionary size so any `d_in` builds."""
    if k is not None:
        return k
    n = _resolved_n_latents(d_in, expansion_factor, n_latents)
    return min(default, n) if isinstance(n, int) else default


class ReLUSAEConfig(SAEConfig):
    r"""
    ReLU SAE (Bricken et al. 2023) with MSAE's scale-free L1 penalty (MSAE `loss.py` `normalized_L1_loss`):
    loss `NMSE + λ·mean_i ‖z_i‖₁ / ‖x_c,i‖`. Decoder rows are unit norm, so this equals Bricken's decoder-norm
    weighted L1 divided by the input norm.

    Args:
        l1_coefficient (`float`, defaults to 0.01):
            λ (the CEDAR paper's ReLU baseline, run with MSAE's code as `ReLU_01`; MSAE's own config default is
            0.003).
    """

    model_type = "relu_sae"
    aliases = ("relu",)  # short names for `cedar-hf train --architecture`
    card_title = "ReLU sparse autoencoder"
    card_description = (
        "A ReLU sparse autoencoder (Bricken et al. 2023) with an L1 penalty "
        "normalised by the input norm (MSAE); codes are non-negative."
    )

    def __init__(self, l1_coefficient: float = 0.01, **kwargs):
        if l1_coefficient < 0:
            raise ValueError(f"l1_coefficient={l1_coefficient} must be >= 0")
        self.l1_coefficient = l1_coefficient
        super().__init__(**kwargs)


class TopKSAEConfig(SAEConfig):
    r"""
    TopK SAE (Gao et al. 2024): `z = TopK(ReLU(pre))` per sample. MSAE's baseline (`TopKReLU_64`) has no aux-k
    loss, hence `aux_k_coefficient=0`; Gao et al.'s aux-k is `aux_k_coefficient=1/32`; overcomplete's TopKSAE
    trains with `residual_aux_coefficient=0.1` (and `reconstruction_loss="mse"`).

    Args:
        k (`int`, *optional*):
            Active latents per sample; defaults to 64 (the paper's baseline), capped at `n_latents`.
    """

    model_type = "topk_sae"
    aliases = ("topk",)  # short names for `cedar-hf train --architecture`
    card_title = "TopK sparse autoencoder"
    card_description = (
        "A TopK sparse autoencoder (Gao et al. 2024): the k largest "
        "pre-activations per sample are kept; codes are non-negative."
    )

    def __init__(self, k: Optional[int] = None, **kwargs):
        k = _default_k(k, 64, kwargs.get("d_in", 768), kwargs.get("expansion_factor", 8), kwargs.get("n_latents"))
        super().__init__(k=k, **kwargs)


class BatchTopKSAEConfig(SAEConfig):
    r"""
    BatchTopK SAE (Bussmann et al. 2024): training keeps the top `k·B` activations of the whole batch; a global
    threshold θ, estimated during training and saved as a buffer, replaces it at inference.

    Args:
        k (`int`, *optional*):
            Mean active latents per sample; defaults to 32 (the paper's baseline), capped at `n_latents`.
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

    def __init__(self, k: Optional[int] = None, threshold_momentum: float = 0.99, **kwargs):
        if not 0.0 <= threshold_momentum < 1.0:
            raise ValueError(f"threshold_momentum={threshold_momentum} must be in [0, 1)")
        self.threshold_momentum = threshold_momentum
        k = _default_k(k, 32, kwargs.get("d_in", 768), kwargs.get("expansion_factor", 8), kwargs.get("n_latents"))
        super().__init__(k=k, **kwargs)


class JumpReLUSAEConfig(SAEConfig):
    r"""
    JumpReLU SAE (Rajamanoharan et al. 2024): `z = pre·H(pre − θ_i)` with per-latent thresholds θ_i learnt
    through straight-through (rectangle-kernel) pseudo-derivatives and an L0 penalty; loss `MSE + λ·L0`.

    The paper's ε and θ₀ (0.001) are for inputs of unit scale; here inputs are standardised to `E‖x_c‖ = √d`, so
    both are multiplied by √d in use (`effective_bandwidth`, `effective_initial_threshold`). The paper's
    `‖x − x̂‖²` on unit-scale inputs equals the mean-over-dimensions MSE on √d-scaled ones, hence
    `reconstruction_loss="mse"` and the paper's λ unchanged. Its encoder starts as the transposed decoder
    (`encoder_init_norm=1`, the paper's and Gao et al.'s start), so pre-activations start at the scale θ₀ and ε
    are set for; MSAE's 0.01 would start nearly every latent below θ₀.

    Args:
        initial_threshold (`float`, defaults to 0.001):
            θ_i at initialisation, relative to the unit input scale.
        bandwidth (`float`, defaults to 0.001):
            ε, the width of the rectangle kernel of the pseudo-derivative, relative to the unit input scale.
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
        kwargs.setdefault("reconstruction_loss", "mse")
        kwargs.setdefault("encoder_init_norm", 1.0)
        super().__init__(**kwargs)

    @property
    def input_scale(self) -> float:
        """E‖x_c‖ of standardised inputs, √d."""
        return float(self.d_in) ** 0.5

    @property
    def effective_bandwidth(self) -> float:
        return self.bandwidth * self.input_scale

    @property
    def effective_initial_threshold(self) -> float:
        return self.initial_threshold * self.input_scale


WEIGHTINGS = ("UW", "RW")


class MatryoshkaSAEConfig(SAEConfig):
    r"""
    Matryoshka SAE / MSAE (Zaigrajew et al. 2025): one encoder, nested TopK levels `k₁ < k₂ < …`, loss
    `Σ_j w_j · NMSE(x, x̂^{(k_j)}) / Σ_j w_j` (MSAE `train.py`).

    Args:
        levels (`Sequence[int]`, *optional*):
            Strictly increasing k of the nested levels; defaults to MSAE's: doubling from 64 up to the full
            dictionary (`matryoshka_levels`). The default inference k is the largest level (with the default
            levels: every positive code, as MSAE's inference).
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

    def __init__(self, levels: Optional[Sequence[int]] = None, weighting: str = "RW", k=None, **kwargs):
        if levels is None:
            n = _resolved_n_latents(kwargs.get("d_in", 768), kwargs.get("expansion_factor", 8), kwargs.get("n_latents"))
            levels = matryoshka_levels(n if isinstance(n, int) else 6144)
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
