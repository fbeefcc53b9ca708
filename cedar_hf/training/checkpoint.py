"""Resumable checkpoints: Accelerate's `save_state` plus the loop's own state and the model's architecture.

A checkpoint folder `output_dir/checkpoints/step-0000100/` holds the model, optimiser, scheduler and RNG
states (Accelerate), `trainer_state` (step, statistics), `dictionary_config.json` (the architecture, so a
checkpoint of another model is refused with a clear message) and `training_args.json`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from typing import Any, Optional

logger = logging.getLogger(__name__)
# Fields that may change between the interrupted and the resumed invocation without changing the trajectory.
_FREE_FIELDS = {"output_dir", "resume_from_checkpoint", "stop_after_steps", "save_steps", "save_total_limit",
                "eval_steps", "eval_batch_size", "eval_max_rows", "logging_steps", "report_to", "disable_tqdm"}

CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "dictionary_config.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


class TrainerState:
    """What the loop needs to continue exactly: the global step and the data statistics it computed."""

    def __init__(self) -> None:
        self.step = 0
        self.statistics: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "statistics": self.statistics, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.statistics = dict(state.get("statistics", {}))
        self.history = list(state.get("history", []))


def checkpoint_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, CHECKPOINTS_DIR, f"step-{step:07d}")


def list_checkpoints(output_dir: str) -> list[str]:
    """Checkpoint folders of a run, oldest first."""
    root = os.path.join(output_dir, CHECKPOINTS_DIR)
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(root) if (m := _STEP_DIR.match(name))]
    return [os.path.join(root, name) for _, name in sorted(found)]


def resolve_checkpoint(resume: Optional[str], output_dir: str) -> Optional[str]:
    """The folder `--resume` points at ('latest' = newest under output_dir/checkpoints)."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise ValueError(f"resume_from_checkpoint='latest' but {output_dir}/{CHECKPOINTS_DIR} has no checkpoint")
        return found[-1]
    if not os.path.isdir(resume):
        raise ValueError(f"resume_from_checkpoint={resume!r} is not a folder")
    return resume


def check_checkpoint_matches(path: str, model) -> None:
    """Refuse a checkpoint saved from another architecture (or size) before loading any tensor."""
    config_file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_file):
        raise ValueError(f"{path!r} is not a cedar-hf training checkpoint (no {CONFIG_FILE})")
    with open(config_file) as f:
        saved = json.load(f)
    config = model.config
    mine = {"model_type": config.model_type, "d_in": config.d_in, "n_latents": config.n_latents}
    theirs = {key: saved.get(key) for key in mine}
    if mine != theirs:
        raise ValueError(
            f"checkpoint {path!r} was saved from a {theirs['model_type']!r} dictionary (d_in={theirs['d_in']}, "
            f"n_latents={theirs['n_latents']}) but the model being trained is {mine['model_type']!r} "
            f"(d_in={mine['d_in']}, n_latents={mine['n_latents']}); resume with the same architecture"
        )


def warn_on_changed_args(path: str, args) -> list[str]:
    """Warn (and return the names) when settings that shape the trajectory differ from the checkpoint's: the
    resumed run then continues, but it is no longer the uninterrupted run."""
    saved_file = os.path.join(path, "training_args.json")
    if not os.path.isfile(saved_file):
        return []
    with open(saved_file) as f:
        saved = json.load(f)
    changed = sorted(key for key, value in args.to_dict().items()
                     if key not in _FREE_FIELDS and key in saved and saved[key] != value)
    if changed:
        logger.warning("resuming %s with changed settings %s: the run will differ from an uninterrupted one",
                       path, {key: (saved[key], getattr(args, key)) for key in changed})
    return changed


def save_checkpoint(accelerator, model, args, output_dir: str, step: int) -> str:
    """`save_state` on every process (each saves its RNG state), then the config files and rotation on the main."""
    path = checkpoint_dir(output_dir, step)
    accelerator.save_state(path)
    if accelerator.is_main_process:
        model.config.to_json_file(os.path.join(path, CONFIG_FILE))
        args.to_json_file(os.path.join(path, "training_args.json"))
        if args.save_total_limit is not None:
            for old in list_checkpoints(output_dir)[: -args.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


__all__ = ["TrainerState", "check_checkpoint_matches", "warn_on_changed_args", "list_checkpoints", "resolve_checkpoint", "save_checkpoint"]
