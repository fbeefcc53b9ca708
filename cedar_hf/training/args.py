"""`TrainingArgs`: every setting of a training run, saved as `training_args.json` beside every checkpoint.

Devices, number of processes and mixed precision are not here: `accelerate config` / `accelerate launch`
decide them, so one command runs unchanged on a laptop, on a CPU pair over gloo or on several GPUs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from ..atomic import read_json, write_json
from ..data import parse_mixture

LR_SCHEDULES = ("msae", "constant", "linear", "cosine")
RECIPES = ("cedar-hf", "msae")  # named presets of the fields left unset (see `cedar_hf.training.recipes`)
TRACKERS = ("tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "trackio", "all", "none")


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass
class TrainingArgs:
    """Settings of one training run (CEDAR or any SAE). Every field is also a `cedar-hf train` option."""

    output_dir: str = field(
        default="cedar-run",
        metadata=_help("Folder for the final model (save_pretrained), training_args.json, metrics.json, "
                       "checkpoints/ and tracker logs/."),
    )
    recipe: str = field(
        default="cedar-hf",
        metadata=_help("Named preset for every setting left unset here: 'msae' = the paper's baselines exactly "
                       "(MSAE's code: lr 5e-5 ReLU / 5e-4 TopK, BatchTopK / 1e-4 Matryoshka, batch 4096, 30 epochs, "
                       "Adam eps 6.25e-10, gradient clipping 1.0, no auxiliary loss); 'cedar-hf' = ours for 1e4-1e6 "
                       "rows (batch 1024, 30 epochs, stop on a held-out FVU plateau, see the README).",
                       choices=list(RECIPES)),
    )
    batch_size: Optional[int] = field(
        default=None,
        metadata=_help("GLOBAL batch: rows per optimiser step summed over all processes (each process reads "
                       "batch_size / num_processes rows). Token datasets: rows, each holding all its tokens. "
                       "Unset: the recipe's (cedar-hf 1024, msae 4096)."),
    )
    learning_rate: Optional[float] = field(
        default=None, metadata=_help("Peak learning rate (Adam). Unset: the recipe's value for the architecture.")
    )
    adam_epsilon: Optional[float] = field(
        default=None, metadata=_help("Adam ε. Unset: the recipe's (both: 6.25e-10, as MSAE and openai).")
    )
    adam_beta1: float = field(default=0.9, metadata=_help("Adam β1."))
    adam_beta2: float = field(default=0.999, metadata=_help("Adam β2."))
    weight_decay: float = field(default=0.0, metadata=_help("Decoupled weight decay (AdamW); 0 is plain Adam."))
    max_steps: Optional[int] = field(
        default=None,
        metadata=_help("Total optimiser steps; overrides num_epochs. The LR schedule is laid out over it. Unset, "
                       "CEDAR runs at least 2·curriculum_steps (so its k curriculum ends mid-run); a run that ends "
                       "before the curriculum reaches k warns."),
    )
    num_epochs: Optional[float] = field(
        default=None,
        metadata=_help("Passes over the training rows when max_steps is not given (may be fractional). Unset: the "
                       "recipe's (30)."),
    )
    warmup_steps: int = field(default=0, metadata=_help("Linear learning-rate warm-up from 0 over this many steps."))
    lr_schedule: str = field(
        default="msae",
        metadata=_help("After warm-up: 'msae' = constant, then linear decay to 0 over the last decay_fraction of "
                       "the steps (as MSAE does); 'constant'; 'linear' = linear decay to 0; 'cosine'.",
                       choices=list(LR_SCHEDULES)),
    )
    decay_fraction: float = field(
        default=0.2, metadata=_help("Share of the steps at the end over which the 'msae' schedule decays to 0.")
    )
    max_grad_norm: Optional[float] = field(
        default=None,
        metadata=_help("Clip the global gradient norm to this value; 0: no clipping; unset: the recipe's (1.0)."),
    )
    plateau_patience: Optional[int] = field(
        default=None,
        metadata=_help("Stop when the held-out FVU (CEDAR) or held-out loss (SAEs: their penalised objective) has not "
                       "improved by plateau_min_delta (relative) for this many evaluations; needs an evaluation set; "
                       "0: never. Unset: the recipe's (cedar-hf 3, msae 0). Raised on --resume, a run that "
                       "stopped on its plateau goes on as a run with the larger patience would have."),
    )
    plateau_min_delta: float = field(
        default=0.002, metadata=_help("Relative improvement of the watched held-out metric that resets the plateau count.")
    )
    seed: int = field(default=0, metadata=_help("Seed of the initialisation, the per-epoch shuffles and CEDAR's k draws."))
    curriculum_steps: Optional[int] = field(
        default=None,
        metadata=_help("CEDAR only: τ, steps over which k goes linearly from d_in to config.k; unset: the model "
                       "config's curriculum_steps."),
    )
    statistics_rows: Optional[int] = field(
        default=None,
        metadata=_help("Rows used for the normalisation statistics (CEDAR's mean b, the SAE mean and scale), an "
                       "evenly spaced subset; unset: an exact streamed pass over every row (and every token)."),
    )
    save_steps: Optional[int] = field(
        default=None,
        metadata=_help("Save a resumable checkpoint (Accelerate save_state) every this many steps; one is always "
                       "saved at the end."),
    )
    save_total_limit: Optional[int] = field(
        default=2, metadata=_help("Keep only the newest this-many checkpoints (default 2); 0 keeps all.")
    )
    resume_from_checkpoint: Optional[str] = field(
        default=None,
        metadata=_help("Continue a run exactly from a checkpoint folder, or 'latest' for the newest complete one "
                       "in output_dir/checkpoints. The architecture, model config and every setting left at its "
                       "default come from the checkpoint; a setting given with another value is refused unless "
                       "--resume-with-changes.", aliases=["--resume"]),
    )
    resume_with_changes: bool = field(
        default=False,
        metadata=_help("With --resume: accept model config or training settings that differ from the "
                       "checkpoint's (the run then differs from an uninterrupted one; a warning names them)."),
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata=_help("Start a fresh run in an output_dir that already holds a run, deleting that run's model, "
                       "metrics, training_args.json, checkpoints/ and logs/ first. Without it such a folder is "
                       "refused."),
    )
    stop_after_steps: Optional[int] = field(
        default=None,
        metadata=_help("End this invocation after this global step, with a checkpoint, without changing the "
                       "schedule (for time-limited jobs); continue with --resume latest."),
    )
    eval_steps: Optional[int] = field(
        default=None,
        metadata=_help("Measure held-out FVU, L0 and the dead-latent fraction every this many steps (and at the "
                       "end) when an evaluation set is given."),
    )
    eval_batch_size: int = field(default=4096, metadata=_help("Rows per batch during evaluation."))
    eval_max_rows: Optional[int] = field(
        default=None, metadata=_help("Evaluate on at most this many held-out rows (the first ones).")
    )
    logging_steps: int = field(default=10, metadata=_help("Send training loss, FVU, L0 and LR to trackers every this many steps."))
    report_to: str = field(
        default="tensorboard",
        metadata=_help("Accelerate tracker(s), comma-separated (tensorboard, wandb, ...), or 'none'. Logs go to "
                       "output_dir/logs."),
    )
    mixture: Optional[str] = field(
        default=None,
        metadata=_help("Train on a modality mixture drawn from the dataset's 'modality' column, e.g. "
                       "'image=1,text=3' (image:text = 1:3): the scarcest modality is used whole, the others "
                       "subsampled with the seed. Unset: every row."),
    )
    embedding_column: str = field(default="embedding", metadata=_help("Dataset column holding the embeddings."))
    disable_tqdm: bool = field(default=False, metadata=_help("Hide the progress bar."))

    def __post_init__(self) -> None:
        for name in ("eval_batch_size", "logging_steps"):
            _check_positive(name, getattr(self, name))
        for name in ("batch_size", "max_steps", "save_steps", "eval_steps", "stop_after_steps", "statistics_rows",
                     "eval_max_rows"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        if self.save_total_limit is not None and (isinstance(self.save_total_limit, bool) or not isinstance(
                self.save_total_limit, int) or self.save_total_limit < 0):
            raise ValueError(f"save_total_limit={self.save_total_limit!r} must be a non-negative integer (0 keeps all)")
        if self.curriculum_steps is not None and self.curriculum_steps < 0:
            raise ValueError(f"curriculum_steps={self.curriculum_steps} must be >= 0")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be >= 0")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe={self.recipe!r} must be one of {RECIPES}")
        for name in ("learning_rate", "adam_epsilon"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if self.max_steps is None and self.num_epochs is not None and not self.num_epochs > 0:
            raise ValueError(f"num_epochs={self.num_epochs} must be > 0 when max_steps is not given")
        if self.plateau_patience is not None and (isinstance(self.plateau_patience, bool) or self.plateau_patience < 0):
            raise ValueError(f"plateau_patience={self.plateau_patience!r} must be an integer >= 0")
        if not 0.0 <= self.plateau_min_delta < 1.0:
            raise ValueError(f"plateau_min_delta={self.plateau_min_delta} must be in [0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r} must be one of {LR_SCHEDULES}")
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction={self.decay_fraction} must be in [0, 1]")
        if self.max_grad_norm is not None and self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm={self.max_grad_norm} must be >= 0 (0: no clipping)")
        if self.mixture is not None:
            parse_mixture(self.mixture)
        unknown = [t for t in self.trackers if t not in TRACKERS]
        if unknown:
            raise ValueError(f"report_to={self.report_to!r}: unknown tracker(s) {unknown}; choose from {TRACKERS}")

    @property
    def trackers(self) -> list[str]:
        """`report_to` as a list; empty for 'none'."""
        names = [t.strip() for t in str(self.report_to).split(",") if t.strip()]
        return [] if names in ([], ["none"]) else names

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json_file(self, path: str | os.PathLike) -> None:
        """Write the settings as JSON, atomically (a kill leaves the previous file or the new one)."""
        write_json(path, self.to_dict())

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "TrainingArgs":
        values = read_json(path, "training args")
        if not isinstance(values, dict):
            raise ValueError(f"training args {str(path)!r} must hold a JSON object, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")


__all__ = ["LR_SCHEDULES", "RECIPES", "TrainingArgs"]
