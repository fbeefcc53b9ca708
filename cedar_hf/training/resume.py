"""What a run starts from: a resumed run's model and settings from its checkpoint, a fresh run's output folder.

Resume. The checkpoint records the dictionary's config (`dictionary_config.json`) and the run's settings
(`training_args.json`). A setting left at its default takes the checkpoint's value, so
`cedar-hf train -d emb -o run --resume latest` continues exactly the run that was interrupted
(architecture, config and run length included). A setting given with another value than the checkpoint's is
refused with a message naming it, unless `resume_with_changes=True` (then a warning: the run is no longer the
uninterrupted one). Settings that never change the trajectory (`_FREE_FIELDS`) may always differ.

A larger `plateau_patience` than the checkpoint's (from a positive one) is not a change of the run either: every
evaluation up to the checkpoint had fewer bad evaluations in a row than the old patience, so a run with the larger
patience from the start took exactly the same steps up to there. It continues a run that stopped on its plateau
(its last checkpoint is the stopping step) as that run would have gone on: `cedar-hf train ... --resume latest
--plateau-patience 10` after a patience-3 run that stopped. A smaller patience would have stopped earlier: refused.

A fresh run refuses an `output_dir` that already holds a run (its `training_args.json`, `metrics.json`,
weights or checkpoints) unless `overwrite_output_dir=True`, which deletes that run's files first
(transformers' convention) so the two runs never mix.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from dataclasses import fields, replace
from typing import Any, Optional

import torch
from transformers import PretrainedConfig

from ..atomic import remove_directory
from ..registry import DICTIONARY_CLASSES
from .args import TrainingArgs
from .checkpoint import (
    CHECKPOINTS_DIR,
    check_checkpoint_matches,
    clean_checkpoint_temporaries,
    read_checkpoint_args,
    read_checkpoint_config,
)
from .recipes import curriculum_k

logger = logging.getLogger(__name__)

# Fields that may change between the interrupted and the resumed invocation without changing the trajectory.
_FREE_FIELDS = {"output_dir", "resume_from_checkpoint", "stop_after_steps", "save_steps", "save_total_limit",
                "eval_steps", "eval_batch_size", "eval_max_rows", "logging_steps", "report_to", "disable_tqdm",
                "overwrite_output_dir", "resume_with_changes"}
# Config fields that record where a dictionary came from, not what it computes.
_PROVENANCE = {"backbone", "embedding_site", "training_data"}
# What makes a folder hold a training run.
# (A lone training_args.json is a run killed before its first checkpoint: nothing to protect, so not counted.)
RUN_FILES = ("metrics.json", "model.safetensors", "config.json", "concept_names.json")


def _json_value(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _changes(given: dict, saved: dict, defaults: dict) -> tuple[dict, dict]:
    """`(taken, conflicts)`: fields left at their default that take the saved value, and fields given with a
    value other than both the default and the saved one, each as `{name: (saved, given)}`."""
    taken, conflicts = {}, {}
    for name, value in given.items():
        if name not in saved or _json_value(value) == saved[name]:
            continue
        if name in defaults and _json_value(value) == _json_value(defaults[name]):
            taken[name] = (saved[name], value)
        else:
            conflicts[name] = (saved[name], value)
    return taken, conflicts


def _refuse_or_warn(conflicts: dict, what: str, checkpoint: str, allowed: bool) -> None:
    if not conflicts:
        return
    listed = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in sorted(conflicts.items()))
    if not allowed:
        raise ValueError(f"resuming {checkpoint!r} with other {what} than it was saved with ({listed}); drop those "
                         "options to continue the run as it was, or pass resume_with_changes=True "
                         "(--resume-with-changes) to continue with them")
    logger.warning("resuming %s with changed %s (%s): the run will differ from an uninterrupted one", checkpoint,
                   what, listed)


def resume_args(args: TrainingArgs, checkpoint: str) -> TrainingArgs:
    """`args` completed from the checkpoint's `training_args.json` (see the module docstring)."""
    saved = read_checkpoint_args(checkpoint)
    known = {f.name: f for f in fields(TrainingArgs)}
    defaults = {name: (f.default_factory() if callable(f.default_factory) else f.default)  # type: ignore[misc]
                for name, f in known.items()}
    given = {name: value for name, value in args.to_dict().items() if name not in _FREE_FIELDS}
    taken, conflicts = _changes(given, {k: v for k, v in saved.items() if k in known}, defaults)
    if _raised_patience(*conflicts.get("plateau_patience", (None, None))):
        old, new = conflicts.pop("plateau_patience")
        logger.info("resuming %s with plateau_patience %s (was %s): the same run up to the checkpoint, continued as "
                    "a patience-%s run", checkpoint, new, old, new)
    _refuse_or_warn(conflicts, "training settings", checkpoint, args.resume_with_changes)
    if taken:
        logger.info("resuming %s with its saved settings %s", checkpoint, {k: old for k, (old, _) in taken.items()})
    return replace(args, **{name: old for name, (old, _) in taken.items()})


def _raised_patience(saved: Any, given: Any) -> bool:
    """A plateau patience raised from a positive one (see the module docstring): the same run so far."""
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (saved, given))
    return whole and 0 < saved < given


def _config_defaults(config_class) -> dict:
    """The keyword defaults of a config class's `__init__` along its MRO (below `PretrainedConfig`)."""
    defaults = {}
    for klass in reversed(config_class.__mro__):
        if not issubclass(klass, PretrainedConfig) or klass is PretrainedConfig:
            continue
        for name, parameter in inspect.signature(klass.__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = parameter.default
    return defaults


def resume_model(model, checkpoint: str, args: TrainingArgs, d_in: int):
    """The model to load the checkpoint into: `model` with every config field left at its default taken from
    the checkpoint (rebuilt when that changes anything), or, for `model=None`, one built from the checkpoint."""
    saved = read_checkpoint_config(checkpoint)
    if saved["model_type"] not in DICTIONARY_CLASSES:
        raise ValueError(f"checkpoint {checkpoint!r} holds a {saved['model_type']!r} model, not a dictionary")
    config_class, model_class = DICTIONARY_CLASSES[saved["model_type"]]
    full = config_class.from_dict(saved).to_dict()
    if model is None:
        if full["d_in"] != d_in:
            raise ValueError(f"checkpoint {checkpoint!r} is a d_in={full['d_in']} dictionary but the training "
                             f"embeddings are {d_in}-d")
        torch.manual_seed(args.seed)
        return model_class(config_class.from_dict(saved))
    check_checkpoint_matches(checkpoint, model)
    defaults = _config_defaults(type(model.config))
    mine = model.config.to_dict()
    given = {name: mine[name] for name in defaults if name in mine and name not in _PROVENANCE}
    taken, conflicts = _changes(given, full, defaults)
    _refuse_or_warn(conflicts, "model config", checkpoint, args.resume_with_changes)
    if not taken:
        return model
    logger.info("resuming %s with its saved model config %s", checkpoint, {k: old for k, (old, _) in taken.items()})
    values = {**mine, **{name: old for name, (old, _) in taken.items()}}
    dtype = next((p.dtype for p in model.parameters()), None)
    rebuilt = type(model)(type(model.config).from_dict(values))
    return rebuilt.to(dtype) if dtype is not None else rebuilt


def run_files(output_dir: str) -> list[str]:
    """The files and folders of a training run found in `output_dir`."""
    found = [name for name in RUN_FILES if os.path.isfile(os.path.join(output_dir, name))]
    checkpoints = os.path.join(output_dir, CHECKPOINTS_DIR)
    if os.path.isdir(checkpoints) and any(not n.startswith(".") for n in os.listdir(checkpoints)):
        found.append(CHECKPOINTS_DIR + "/")
    return found


def prepare_output_dir(args: TrainingArgs, resuming: bool, main_process: bool = True) -> None:
    """Refuse (every process, so none waits for a failed one) or, with `overwrite_output_dir`, clear (the main
    process) an output_dir holding another run."""
    found = run_files(args.output_dir)
    if resuming or not found:
        return
    if not args.overwrite_output_dir:
        raise ValueError(f"output_dir={args.output_dir!r} already holds a training run ({', '.join(found)}); "
                         "continue it with --resume latest, replace it with --overwrite-output-dir, or choose "
                         "another --output-dir")
    if not main_process:
        return
    logger.warning("overwrite_output_dir: deleting the previous run in %s (%s)", args.output_dir, ", ".join(found))
    for name in found:
        path = os.path.join(args.output_dir, name.rstrip("/"))
        remove_directory(path) if os.path.isdir(path) else os.unlink(path)
    logs = os.path.join(args.output_dir, "logs")
    if os.path.isdir(logs):
        remove_directory(logs)


def start_output_dir(args: TrainingArgs, resuming: bool, main_process: bool = True) -> None:
    """Refuse/clear a folder holding another run; the main process creates it and drops a killed save's
    leftovers."""
    prepare_output_dir(args, resuming, main_process)
    if main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        clean_checkpoint_temporaries(args.output_dir)


def run_length(recipe, model, args: TrainingArgs, total_steps: int) -> int:
    """CEDAR: without max_steps the run lasts at least 2τ steps (the curriculum, then as many at the target k);
    a warning when the run ends before the curriculum reaches k."""
    tau_of = getattr(recipe, "tau", None)
    tau = tau_of(model) if callable(tau_of) and getattr(model.config, "k", None) is not None else 0
    if not tau:
        return total_steps
    if args.max_steps is None and total_steps < 2 * tau:
        logger.info("num_epochs=%s gives %d steps; running 2·curriculum_steps = %d so the curriculum (τ=%d) reaches "
                    "k=%d and trains there as long", args.num_epochs, total_steps, 2 * tau, tau, model.config.k)
        total_steps = 2 * tau
    if total_steps <= tau:
        logger.warning("the run ends at step %d, before the CEDAR curriculum reaches k=%d at step τ=%d: the saved "
                       "rotation was trained at k ≥ %d only; raise max_steps or lower curriculum_steps",
                       total_steps, model.config.k, tau, curriculum_k(total_steps - 1, model.config.d_in,
                                                                      model.config.k, tau, args.seed))
    return total_steps


def warn_if_fewer_processes(num_processes: int) -> bool:
    """Warn when `accelerate launch` was asked for several processes but started one: `--cpu --num_processes 2`
    silently runs a single process (accelerate's simple launcher, which still sets MASTER_PORT)."""
    launched = "ACCELERATE_USE_CPU" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ
    asked_for_more = "MASTER_PORT" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) == 1
    if num_processes == 1 and launched and asked_for_more:
        logger.warning("accelerate launch was asked for several processes but this run has ONE (accelerate's --cpu "
                       "flag runs a single process). For several CPU processes use: accelerate launch --multi_gpu "
                       "--num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no -m cedar_hf.cli "
                       "train ... (with OMP_NUM_THREADS=1)")
        return True
    return False


def check_same_data(checkpoint: str, rows: int, total_steps: int, saved_total: Optional[int], args) -> None:
    """Refuse a resume on other training data (another row count means other batches and run length)."""
    saved_rows = read_checkpoint_config(checkpoint).get("training_data", {}).get("rows")
    if saved_rows is not None and saved_rows != rows and not args.resume_with_changes:
        raise ValueError(f"checkpoint {checkpoint!r} was trained on {saved_rows} rows but the training data has "
                         f"{rows}: resume on the same data (or pass --resume-with-changes)")
    if saved_total is not None and saved_total != total_steps and not args.resume_with_changes:
        raise ValueError(f"checkpoint {checkpoint!r} belongs to a run of {saved_total} steps but these settings "
                         f"make {total_steps}; resume with the same max_steps / num_epochs / batch_size")


__all__ = ["RUN_FILES", "check_same_data", "prepare_output_dir", "resume_args", "resume_model", "run_files",
           "run_length", "start_output_dir", "warn_if_fewer_processes"]
