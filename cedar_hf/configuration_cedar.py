"""Configuration of CEDAR, the learned orthogonal rotation (paper §3, App. A)."""

from __future__ import annotations

from typing import Optional

from .configuration_base import DictionaryConfig

PARAMETRIZATIONS = ("matrix_exp", "cayley", "orthogonal")
RETRACTIONS = ("exp", "cayley")


class CedarConfig(DictionaryConfig):
    r"""
    Configuration of a [`CedarModel`]: `U = exp(A − Aᵀ)`, codes `topk(U(z − b))`, reconstruction `Uᵀ codes + b`.

    Args:
        d_in (`int`, defaults to 768):
            Embedding dimension D. CEDAR has exactly D latents (`n_latents == d_in`).
        k (`int`, *optional*, defaults to `min(10, d_in)`):
            Target sparsity `k_target` of the curriculum and the default k at inference (the paper: 10).
        parametrization (`str`, defaults to `"matrix_exp"`):
            How U is built from the free matrix A: `"matrix_exp"` (the paper, `U = exp(A − Aᵀ)`, computed by
            `cedar_hf.expm.expm_skew`: equal to `torch.linalg.matrix_exp` to float precision, values and
            gradients, at a fraction of its backward cost) or `"cayley"` (`U = (I − S/2)⁻¹(I + S/2)` with
            `S = A − Aᵀ`; also exactly orthogonal, a little cheaper per step, seen to reach the same optimum on
            planted data; a different map, so a different A for the same U), or `"orthogonal"`: U itself is the
            parameter (`U`, no A), initialised to `exp(A₀ − A₀ᵀ)` from the same `init_std` draw as
            `"matrix_exp"`, and trained on the rotation group by `cedar_hf.optim.OrthogonalAdam` (Riemannian Adam,
            retraction by `retraction`; no backward through any matrix function: ~4 `D × D` matmuls a step).
            `cedar_hf.train` picks that optimiser itself.
        retraction (`str`, defaults to `"exp"`):
            For `parametrization="orthogonal"`: how a step W in the Lie algebra moves U, `"exp"` (`U ← exp(W) U`,
            the paper's exponential) or `"cayley"` (`U ← (I − W/2)⁻¹(I + W/2) U`). Ignored otherwise.
        init_std (`float`, defaults to 0.0):
            Standard deviation of A at initialisation; 0 starts at U = I (the paper's identity start).
        curriculum_steps (`int`, defaults to 1000):
            τ, the number of steps over which the training k goes linearly from `d_in` to `k`.
        n_latents (`int`, *optional*):
            Must equal `d_in` if given.
    """

    model_type = "cedar"
    aliases = ()  # short names for `cedar-hf train --architecture`
    card_title = "CEDAR rotation"
    card_description = (
        "CEDAR (Conceptual Embedding Disentanglement via Adaptive Rotation, "
        "[arXiv:2605.22679](https://arxiv.org/abs/2605.22679)) learns an orthogonal rotation `U` of the "
        "centred embedding space and keeps the k coordinates of largest magnitude with their sign: "
        "`codes = topk(U(z − b))`, `ẑ = Uᵀ codes + b`. It keeps the embedding's dimension (one concept per "
        "dimension, row d of `U` is concept d), is lossless at k = d_in, and its codes are signed."
    )

    def __init__(
        self,
        d_in: int = 768,
        k: Optional[int] = None,
        parametrization: str = "matrix_exp",
        retraction: str = "exp",
        init_std: float = 0.0,
        curriculum_steps: int = 1000,
        n_latents: Optional[int] = None,
        **kwargs,
    ):
        if n_latents is not None and n_latents != d_in:
            raise ValueError(f"CEDAR has one latent per dimension: n_latents={n_latents} must equal d_in={d_in}")
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization={parametrization!r} must be one of {PARAMETRIZATIONS}")
        if retraction not in RETRACTIONS:
            raise ValueError(f"retraction={retraction!r} must be one of {RETRACTIONS}")
        if init_std < 0:
            raise ValueError(f"init_std={init_std} must be >= 0")
        if isinstance(curriculum_steps, bool) or not isinstance(curriculum_steps, int) or curriculum_steps < 0:
            raise ValueError(f"curriculum_steps={curriculum_steps!r} must be a non-negative integer")
        self.parametrization = parametrization
        self.retraction = retraction
        self.init_std = init_std
        self.curriculum_steps = curriculum_steps
        if k is None and isinstance(d_in, int):
            k = min(10, d_in)
        super().__init__(d_in=d_in, n_latents=d_in, k=k, **kwargs)
