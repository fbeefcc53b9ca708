"""Training recipes: the named presets of `TrainingArgs.recipe`, and what happens around the gradient step for each
family (chosen by capability, not type).

Named presets (`resolve_recipe` fills every `TrainingArgs` field left unset):

- **`msae`** — the paper's baselines exactly: MSAE's defaults (github.com/WolodjaZ/MSAE, `config.py`
  `TrainConfig` and `get_config`; `train.py`): AdamW (weight decay 0) with lr 5e-5 ReLU / 5e-4 TopK, BatchTopK /
  1e-4 Matryoshka (1e-3, `TrainConfig`'s default, for anything else), ε 6.25e-10, β (0.9, 0.999), batch 4096,
  30 epochs, constant LR then linear decay to 0 over the last 20 % (`LinearDecayLR`, decay_time 0.8), gradient
  norm clipped to 1.0, no auxiliary loss (it forces `aux_k_coefficient = 0` and `residual_aux_coefficient = 0`
  on the model), no early stopping.
- **`cedar-hf`** — ours, for datasets of 10⁴–10⁶ rows: MSAE's optimiser (ε, β, clipping, schedule) with batch 1024
  (4× the steps per epoch), lr 5e-4 for every SAE (MSAE's 5e-5 for ReLU is tuned for millions of rows and does not
  move a ReLU SAE in the few hundred steps 30 epochs of 10⁵ rows give), 3e-3 for CEDAR, up to 30 epochs, stopped
  when the held-out FVU (CEDAR) or the held-out loss (SAEs, whose L1 / L0 penalty is part of the objective) has
  not improved by 0.2 % for 3 evaluations (one per epoch when an evaluation set is given).
  It leaves the model's own loss settings (aux-k, ...) as configured.

- **CEDAR** (paper App. A; any model with `set_mean`): b = the training mean over all tokens, computed before
  training; k follows the curriculum `k(t) = round(D + (t/τ)(k_target − D))` for t ≤ τ, then
  `k ~ Uniform{1..2·k_target − 1}` (capped at D).
- **SAEs** (paper App. B, MSAE; any model with `set_normalization`): μ and s from the data; decoder-parallel
  gradient removed before and unit-norm decoder rows restored after every step; dead latents logged; the plateau
  counts evaluations only once the inference rule has settled (`settling_steps()`: BatchTopK's running θ). Aux-k,
  BatchTopK's threshold and Matryoshka's nested loss live in the models' own train-mode forward.
"""

from __future__ import annotations

from dataclasses import replace
import logging
import math
from typing import Optional

from accelerate.utils import broadcast
import numpy as np
import torch

from ..data import EmbeddingStream, compute_mean, compute_mean_norm
from ..optim import OrthogonalAdam
from .args import RECIPES, TrainingArgs

logger = logging.getLogger(__name__)

# MSAE `config.py`: per-architecture learning rates; `TrainConfig.lr` (1e-3) for the rest.
MSAE_LEARNING_RATES = {"relu_sae": 5e-5, "topk_sae": 5e-4, "batchtopk_sae": 5e-4, "matryoshka_sae": 1e-4}
CEDAR_HF_LEARNING_RATES = {"relu_sae": 5e-4, "topk_sae": 5e-4, "batchtopk_sae": 5e-4, "matryoshka_sae": 5e-4,
                           "jumprelu_sae": 5e-4, "cedar": 3e-3}
RECIPE_DEFAULTS = {
    "msae": dict(batch_size=4096, num_epochs=30.0, adam_epsilon=6.25e-10, max_grad_norm=1.0, plateau_patience=0),
    "cedar-hf": dict(batch_size=1024, num_epochs=30.0, adam_epsilon=6.25e-10, max_grad_norm=1.0, plateau_patience=3),
}
RECIPE_LEARNING_RATES = {"msae": (MSAE_LEARNING_RATES, 1e-3), "cedar-hf": (CEDAR_HF_LEARNING_RATES, 1e-3)}


def recipe_learning_rate(recipe: str, model_type: str) -> float:
    """The peak learning rate a named recipe gives an architecture (`model_type` of its config)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe={recipe!r} must be one of {RECIPES}")
    rates, fallback = RECIPE_LEARNING_RATES[recipe]
    return rates.get(model_type, fallback)


def resolve_recipe(model, args: TrainingArgs, rows: Optional[int] = None, has_eval: bool = False) -> TrainingArgs:
    """A copy of `args` with every unset field filled from `args.recipe` for this model (see the module doc).
    `rows` (training rows) sets one evaluation per epoch when the recipe stops on a plateau and `eval_steps` is
    unset. The `msae` recipe also switches the model's auxiliary losses (aux-k, residual aux) off, as MSAE has
    none."""
    values = {name: value for name, value in RECIPE_DEFAULTS[args.recipe].items() if getattr(args, name) is None}
    if args.learning_rate is None:
        values["learning_rate"] = recipe_learning_rate(args.recipe, getattr(model.config, "model_type", ""))
    patience = values.get("plateau_patience", args.plateau_patience)
    batch = values.get("batch_size", args.batch_size)
    if patience and has_eval and args.eval_steps is None and rows:
        values["eval_steps"] = max(1, rows // batch)
    for loss_field in ("aux_k_coefficient", "residual_aux_coefficient"):
        if args.recipe == "msae" and getattr(model.config, loss_field, 0):
            logger.warning("recipe='msae': %s=%s set to 0 (MSAE has no auxiliary loss)", loss_field,
                           getattr(model.config, loss_field))
            setattr(model.config, loss_field, 0.0)
    return replace(args, **values)


def build_optimizer(params, args: TrainingArgs, model=None) -> torch.optim.Optimizer:
    """AdamW with the resolved recipe's settings (MSAE `train.py`: AdamW, ε 6.25e-10, weight decay 0); for a
    model whose parameters live on the rotation group (`model.orthogonal_parameters()`, CEDAR with
    `parametrization="orthogonal"`), `cedar_hf.optim.OrthogonalAdam` with the same lr, β and ε."""
    params = list(params)
    eps = args.adam_epsilon if args.adam_epsilon is not None else 1e-8
    betas = (args.adam_beta1, args.adam_beta2)
    on_group = list(model.orthogonal_parameters()) if callable(getattr(model, "orthogonal_parameters", None)) else []
    if on_group:
        others = [p for p in params if all(p is not q for q in on_group)]
        if others:
            raise ValueError(f"{type(model).__name__} has {len(others)} trainable parameter(s) off the rotation group "
                             "beside its orthogonal ones; OrthogonalAdam trains orthogonal matrices only")
        return OrthogonalAdam(on_group, lr=args.learning_rate, betas=betas, eps=eps, weight_decay=args.weight_decay,
                              retraction=getattr(model.config, "retraction", "exp"))  # it refuses weight decay
    return torch.optim.AdamW(params, lr=args.learning_rate, betas=betas, eps=eps, weight_decay=args.weight_decay)


class PlateauStopper:
    """Stop when a held-out metric (the recipe's `plateau_metric`) has not improved by `min_delta` (relative) for
    `patience` evaluations."""

    def __init__(self, patience: Optional[int], min_delta: float):
        self.patience, self.min_delta = int(patience or 0), float(min_delta)
        self.best, self.bad, self.stopped = math.inf, 0, False

    def update(self, fvu: Optional[float]) -> bool:
        """Record one evaluation; True when training should stop."""
        if not self.patience or fvu is None or not math.isfinite(fvu):
            return False
        if fvu < self.best * (1.0 - self.min_delta):
            self.best, self.bad = fvu, 0
        else:
            self.bad += 1
        self.stopped = self.bad >= self.patience
        return self.stopped

    def state(self) -> dict:
        """What a checkpoint keeps of the stopper (`restore` takes it back)."""
        return {"best": self.best, "bad": self.bad, "stopped": self.stopped}

    def restore(self, saved: dict) -> None:
        """Take back a checkpoint's `state()`. `stopped` is re-derived from the bad evaluations under this run's
        patience, so a run resumed with a raised patience (allowed, `resume.py`) goes on where the saved one had
        stopped; a checkpoint without a `bad` count keeps its saved flag."""
        self.best = saved.get("best", self.best)
        self.bad = saved.get("bad", self.bad)
        self.stopped = (bool(self.patience) and self.bad >= self.patience) if "bad" in saved \
            else bool(saved.get("stopped", self.stopped))


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
    """The generic recipe: no statistics, the model's default k, nothing around the step. The plateau watches
    `plateau_metric` of the held-out evaluation (the FVU here and for CEDAR)."""

    name = "generic"
    plateau_metric = "eval/fvu"

    def __init__(self, model, args: TrainingArgs):
        self.args = args
        self.plateau = PlateauStopper(args.plateau_patience, args.plateau_min_delta)

    def plateau_start(self, model) -> int:
        """Evaluations up to this step do not count towards the plateau (CEDAR: its k curriculum)."""
        return 0

    def should_stop(self, accelerator, metrics: dict, model=None, step: int = 0) -> bool:
        """After an evaluation: has the held-out FVU plateaued? Decided on the main process (the only one that
        evaluates) and broadcast, so every process leaves the loop at the same step."""
        counted = model is None or step > self.plateau_start(model)
        stop = self.plateau.update(metrics.get(self.plateau_metric)) if counted else False
        flag = torch.tensor([float(stop)], device=accelerator.device)
        if accelerator.num_processes > 1:
            flag = broadcast(flag)
        self.plateau.stopped = bool(flag.item())
        return self.plateau.stopped

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

    def plateau_start(self, model) -> int:
        return self.tau(model)  # the held-out FVU at k_target only settles once k has reached it

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
    """Standardisation from the data and unit-norm decoder rows (paper App. B; MSAE). The plateau watches the
    held-out objective (`eval/loss`: NMSE, + λ·L1 for ReLU, + λ·L0 for JumpReLU, the weighted nested NMSE for
    Matryoshka): a penalised SAE's FVU rises while its L1 term still falls, so a plateau of its FVU would stop it
    mid-way."""

    name = "sae"
    plateau_metric = "eval/loss"

    def plateau_start(self, model) -> int:
        """Evaluations before the model's inference rule has settled (`model.settling_steps()`: BatchTopK's
        running threshold θ) do not count towards the plateau: their held-out loss measures θ's start, not the
        dictionary (with overcomplete's residual aux loss a BatchTopK SAE's held-out FVU rose for 3 epochs while
        θ climbed from L0 ≈ 500 to ≈ 64, and the plateau stopped it at epoch 4)."""
        settling = getattr(model, "settling_steps", None)
        return int(settling()) if callable(settling) else 0

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


__all__ = ["CedarRecipe", "PlateauStopper", "RECIPE_DEFAULTS", "Recipe", "SAERecipe", "build_optimizer",
           "curriculum_k", "lr_multiplier", "recipe_learning_rate", "resolve_recipe", "select_recipe"]
