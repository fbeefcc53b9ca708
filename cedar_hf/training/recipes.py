"""Training recipes: what happens around the gradient step for each family, chosen by capability, not type.

- **CEDAR** (paper App. A; any model with `set_mean`): b = the training mean over all tokens, computed before
  training; k follows the curriculum `k(t) = round(D + (t/τ)(k_target − D))` for t ≤ τ, then
  `k ~ Uniform{1..2·k_target − 1}` (capped at D).
- **SAEs** (paper App. B, MSAE; any model with `set_normalization`): μ and s from the data; decoder-parallel
  gradient removed before and unit-norm decoder rows restored after every step; dead latents logged. Aux-k,
  BatchTopK's threshold and Matryoshka's nested loss live in the models' own train-mode forward.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..data import EmbeddingStream, compute_mean, compute_mean_norm
from .args import TrainingArgs


def curriculum_k(step: int, d_in: int, k_target: int, tau: int, seed: int) -> int:
    """CEDAR's training k at `step` (0-based). Draws after τ are a pure function of (seed, step), so every
    process and every resumed run uses the same k."""
    k_target = min(int(k_target), d_in)
    if tau > 0 and step <= tau:
        return int(math.floor(d_in + (step / tau) * (k_target - d_in) + 0.5))
    k_max = min(2 * k_target - 1, d_in)
    return int(np.random.default_rng([int(seed), int(step), 104729]).integers(1, k_max + 1))


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, schedule: str, decay_fraction: float) -> float:
    """Factor of the peak LR at `step`: linear warm-up, then the schedule ('msae': constant, then linear decay
    to 0 over the last `decay_fraction` of the steps)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "msae":
        decay_start = int(total_steps * (1.0 - decay_fraction))
        if step < max(decay_start, warmup_steps):
            return 1.0
        span = max(1, total_steps - max(decay_start, warmup_steps))
        return max(0.0, (total_steps - step) / span)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


class Recipe:
    """The generic recipe: no statistics, the model's default k, nothing around the step."""

    name = "generic"

    def __init__(self, model, args: TrainingArgs):
        self.args = args

    def prepare(self, model, stream: EmbeddingStream) -> dict:
        """Set data statistics on the model before training; returns them for logging / provenance."""
        return {}

    def k_for_step(self, model, step: int) -> Optional[int]:
        return None

    def before_optimizer_step(self, model) -> None:
        pass

    def after_optimizer_step(self, model) -> None:
        pass

    def dead_fraction(self, model) -> Optional[float]:
        dead = getattr(model, "dead_latents", None)
        if isinstance(dead, torch.Tensor) and dead.numel():
            return float(dead.float().mean())
        return None


class CedarRecipe(Recipe):
    """Mean centring before training and the k curriculum (paper App. A)."""

    name = "cedar"

    def prepare(self, model, stream: EmbeddingStream) -> dict:
        mean = compute_mean(stream, self.args.statistics_rows)
        model.set_mean(mean)
        return {"mean_norm": float(mean.norm())}

    def tau(self, model) -> int:
        if self.args.curriculum_steps is not None:
            return self.args.curriculum_steps
        return int(getattr(model.config, "curriculum_steps", 0) or 0)

    def k_for_step(self, model, step: int) -> Optional[int]:
        k_target = model.config.k
        if k_target is None:
            return None
        return curriculum_k(step, model.config.d_in, k_target, self.tau(model), self.args.seed)


class SAERecipe(Recipe):
    """Standardisation from the data and unit-norm decoder rows (paper App. B; MSAE)."""

    name = "sae"

    def prepare(self, model, stream: EmbeddingStream) -> dict:
        mean = compute_mean(stream, self.args.statistics_rows)
        mean_norm = compute_mean_norm(stream, mean, self.args.statistics_rows)
        if not mean_norm > 0:
            raise ValueError("all training embeddings are identical: the SAE scale √d / E‖x − μ‖ is undefined")
        scale = stream.dim**0.5 / mean_norm
        model.set_normalization(mean, scale)
        if callable(getattr(model, "normalize_decoder", None)):
            model.normalize_decoder()
        return {"mean_norm": float(mean.norm()), "scale": float(scale)}

    def before_optimizer_step(self, model) -> None:
        if callable(getattr(model, "remove_parallel_decoder_grad", None)):
            model.remove_parallel_decoder_grad()

    def after_optimizer_step(self, model) -> None:
        if callable(getattr(model, "normalize_decoder", None)):
            model.normalize_decoder()


def select_recipe(model, args: TrainingArgs) -> Recipe:
    """The recipe for a model, by what it can do (never by its type name)."""
    if callable(getattr(model, "set_normalization", None)):
        return SAERecipe(model, args)
    if callable(getattr(model, "set_mean", None)):
        return CedarRecipe(model, args)
    return Recipe(model, args)


__all__ = ["CedarRecipe", "Recipe", "SAERecipe", "curriculum_k", "lr_multiplier", "select_recipe"]
