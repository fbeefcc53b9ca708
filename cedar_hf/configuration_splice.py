"""Configuration of the SpLiCE baseline (Bhalla et al. 2024): a training-free decomposition over the vocabulary."""

from __future__ import annotations

from typing import Optional

from .configuration_base import DictionaryConfig


class SpliceConfig(DictionaryConfig):
    r"""
    SpLiCE, "Interpreting CLIP with Sparse Linear Concept Embeddings" (Bhalla et al., NeurIPS 2024): each embedding
    is written as a sparse **non-negative** combination of the vocabulary's text embeddings, after centring both
    modalities; nothing is trained. The atoms are `normalize(normalize(t_j) − mean_j normalize(t_j))` (the
    vocabulary's unit embeddings, centred by their own mean, renormalised) and an input z becomes
    `v = normalize(normalize(z) − μ)` with μ the mean of the unit input embeddings. The codes solve, per sample,

        w* = argmin_{w ≥ 0} ‖v − w C‖² + λ‖w‖₁

    (the reference's ADMM objective; its sklearn route uses `Lasso(alpha=λ / (2d), positive=True)`, the same
    minimiser).

    Args:
        d_in (`int`, defaults to 768):
            Embedding dimension.
        n_latents (`int`, *optional*):
            Vocabulary size (one atom per concept word); defaults to `d_in` for an empty model (build real ones
            with `SpliceModel.from_vocabulary`).
        k (`int`, *optional*):
            Keep each sample's k largest weights (for comparisons at matched K); None keeps the lasso's support.
        l1_penalty (`float`, defaults to 0.25):
            λ above. 0.25 is what the reference's experiments run with (its README: `-l1_penalty 0.25`, 10k-word
            LAION vocabulary); its `SPLICE` class defaults to 0.01.
        max_iterations (`int`, defaults to 500):
            FISTA iterations per working-set solve.
        tolerance (`float`, defaults to 1e-6):
            Stop when no weight moves by more than this, and accept the solution when no atom outside the working
            set violates the optimality (KKT) condition by more than this (relative to λ).
        working_set (`int`, defaults to 256):
            Atoms solved for at once per sample (the most correlated ones, grown until the KKT check passes), so
            a 10k-word vocabulary never needs a 10k × 10k Gram matrix.
    """

    model_type = "splice"
    aliases = ("spl",)  # short names for `cedar-hf train --architecture`
    card_title = "SpLiCE decomposition (training-free baseline)"
    card_description = (
        "SpLiCE (Bhalla et al. 2024): a sparse non-negative decomposition of each embedding over the concept "
        "vocabulary's centred text embeddings (a per-sample non-negative lasso), with no training; every latent "
        "is a vocabulary word, so its name is the word itself."
    )

    def __init__(
        self,
        d_in: int = 768,
        n_latents: Optional[int] = None,
        k: Optional[int] = None,
        l1_penalty: float = 0.25,
        max_iterations: int = 500,
        tolerance: float = 1e-6,
        working_set: int = 256,
        **kwargs,
    ):
        if l1_penalty < 0:
            raise ValueError(f"l1_penalty={l1_penalty} must be >= 0")
        for name, value in (("max_iterations", max_iterations), ("working_set", working_set)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if not tolerance > 0:
            raise ValueError(f"tolerance={tolerance} must be > 0")
        self.l1_penalty = l1_penalty
        self.max_iterations = max_iterations
        self.tolerance = tolerance
        self.working_set = working_set
        super().__init__(d_in=d_in, n_latents=n_latents, k=k, **kwargs)
