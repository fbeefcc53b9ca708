"""Resumable checkpoints: Accelerate's `save_state` plus the loop's own state and the model's architecture.

A checkpoint folder `output_dir/checkpoints/step-0000100/` holds the model, optimiser, scheduler and RNG
states (Accelerate), `trainer_state` (step, statistics, the last logged metrics), `dictionary_config.json`
(the architecture, so a checkpoint of another model is refused with a clear message), `config.json` (so
`from_pretrained(checkpoint)` loads its weights) and `training_args.json`.

Crash safety: a checkpoint is written into `checkpoints/.tmp-step-…` and renamed to `step-…` only when every
process has saved its part, so a `step-…` folder is always complete; an existing one is never rewritten. Old
checkpoints are renamed away before they are deleted (`save_total_limit`). `--resume latest` skips, with a
warning, a folder that lacks its files (written by an older version, or damaged by hand).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from typing import Any, Optional

from ..atomic import clean_temporaries, read_json, remove_directory

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "dictionary_config.json"
ARGS_FILE = "training_args.json"
# Files every complete checkpoint holds (besides Accelerate's optimiser/scheduler/RNG/custom states).
REQUIRED_FILES = (CONFIG_FILE, ARGS_FILE, "model.safetensors")
_STEP_DIR = re.compile(r"^step-(\d+)$")


class TrainerState:
    """What the loop needs to continue exactly: the global step and the data statistics it computed."""

    def __init__(self) -> None:
        self.step = 0
        self.total_steps: Optional[int] = None
        self.statistics: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self.last_logged: dict[str, float] = {}  # so a resumed run's metrics.json is as complete as a straight one's
        self.runtime_s = 0.0  # training time summed over the invocations of this run
        self.plateau: dict[str, Any] = {}  # the recipe's plateau stopper (best FVU, bad evaluations, stopped)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "total_steps": self.total_steps, "statistics": self.statistics,
                "history": self.history, "last_logged": self.last_logged, "runtime_s": self.runtime_s,
                "plateau": self.plateau}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.total_steps = state.get("total_steps")
        self.statistics = dict(state.get("statistics", {}))
        self.history = list(state.get("history", []))
        self.last_logged = dict(state.get("last_logged", {}))
        self.runtime_s = float(state.get("runtime_s", 0.0))
        self.plateau = dict(state.get("plateau", {}))


def checkpoint_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, CHECKPOINTS_DIR, f"step-{step:07d}")


def list_checkpoints(output_dir: str, complete_only: bool = False) -> list[str]:
    """Checkpoint folders of a run, oldest first (with `complete_only`, those holding every required file)."""
    root = os.path.join(output_dir, CHECKPOINTS_DIR)
    if not os.path.isdir(root):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(root) if (m := _STEP_DIR.match(name))]
    paths = [os.path.join(root, name) for _, name in sorted(found)]
    return [p for p in paths if missing_files(p) == []] if complete_only else paths


def missing_files(path: str) -> list[str]:
    """The required files a checkpoint folder lacks (empty for a complete checkpoint)."""
    return [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(path, name))]


def resolve_checkpoint(resume: Optional[str], output_dir: str) -> Optional[str]:
    """The folder `--resume` points at ('latest' = the newest complete one under output_dir/checkpoints)."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        for path in reversed(found):
            missing = missing_files(path)
            if not missing:
                return path
            logger.warning("skipping incomplete checkpoint %s (no %s)", path, ", ".join(missing))
        raise ValueError(f"resume_from_checkpoint='latest' but {os.path.join(output_dir, CHECKPOINTS_DIR)} has no "
                         f"complete checkpoint ({len(found)} incomplete)" if found else
                         f"resume_from_checkpoint='latest' but {os.path.join(output_dir, CHECKPOINTS_DIR)} has no "
                         "checkpoint (start the run without --resume)")
    if not os.path.isdir(resume):
        raise ValueError(f"resume_from_checkpoint={resume!r} is not a folder")
    missing = missing_files(resume)
    if missing:
        raise ValueError(f"resume_from_checkpoint={resume!r} is not a complete cedar-hf training checkpoint "
                         f"(no {', '.join(missing)})")
    return resume


def read_checkpoint_config(path: str) -> dict:
    """The `dictionary_config.json` of a checkpoint (clear errors for a missing or damaged file)."""
    config_file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_file):
        raise ValueError(f"{path!r} is not a cedar-hf training checkpoint (no {CONFIG_FILE})")
    saved = read_json(config_file, "checkpoint config")
    if not isinstance(saved, dict) or "model_type" not in saved:
        raise ValueError(f"checkpoint config {config_file!r} has no model_type: not a dictionary config")
    return saved


def read_checkpoint_args(path: str) -> dict:
    """The `training_args.json` a checkpoint was saved with ({} when there is none)."""
    args_file = os.path.join(path, ARGS_FILE)
    return read_json(args_file, "checkpoint training args") if os.path.isfile(args_file) else {}


def check_checkpoint_matches(path: str, model) -> None:
    """Refuse a checkpoint saved from another architecture (or size) before loading any tensor."""
    saved = read_checkpoint_config(path)
    config = model.config
    mine = {"model_type": config.model_type, "d_in": config.d_in, "n_latents": config.n_latents}
    theirs = {key: saved.get(key, mine[key] if key == "n_latents" else None) for key in mine}
    if mine != theirs:
        raise ValueError(
            f"checkpoint {path!r} was saved from a {theirs['model_type']!r} dictionary (d_in={theirs['d_in']}, "
            f"n_latents={theirs['n_latents']}) but the model being trained is {mine['model_type']!r} "
            f"(d_in={mine['d_in']}, n_latents={mine['n_latents']}); resume with the same architecture"
        )


def save_checkpoint(accelerator, model, args, output_dir: str, step: int) -> str:
    """`save_state` on every process (each saves its RNG state) into a temporary folder, the config files on
    the main process, then one rename: `step-…` appears complete or not at all. An existing one is kept."""
    path = checkpoint_dir(output_dir, step)
    if os.path.isdir(path):  # never rewrite a checkpoint (a resumed run reaching a saved step)
        return path
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # a killed save's leftovers
        os.makedirs(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model.config.to_json_file(os.path.join(tmp, CONFIG_FILE))
        model.config.to_json_file(os.path.join(tmp, "config.json"))  # from_pretrained(checkpoint) loads it
        args.to_json_file(os.path.join(tmp, ARGS_FILE))
        os.replace(tmp, path)
        if args.save_total_limit:
            for old in list_checkpoints(output_dir)[: -args.save_total_limit]:
                remove_directory(old)
    accelerator.wait_for_everyone()
    return path


def clean_checkpoint_temporaries(output_dir: str) -> None:
    """Remove what killed saves left behind (temporary checkpoint and file names); main process only."""
    clean_temporaries(output_dir)
    clean_temporaries(os.path.join(output_dir, CHECKPOINTS_DIR))  # .tmp-step-… folders included


__all__ = ["ARGS_FILE", "CONFIG_FILE", "TrainerState", "check_checkpoint_matches", "clean_checkpoint_temporaries",
           "list_checkpoints", "missing_files", "read_checkpoint_args", "read_checkpoint_config",
           "resolve_checkpoint", "save_checkpoint"]
