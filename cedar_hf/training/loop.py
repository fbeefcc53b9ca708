"""`cedar_hf.train`: the Accelerate training loop shared by CEDAR and every SAE.

The batch of global step t is a pure function of (seed, t): rows `order[epoch][i·B:(i+1)·B]`, split into one
contiguous chunk per process. With the optimiser, scheduler and RNG states restored by `load_state` and the
step in the trainer state, `--resume` reproduces an uninterrupted run exactly, and N processes see the same
global batches as one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from tqdm.auto import tqdm

from ..atomic import write_json
from ..hub.ids import public_name

from ..data import (
    EmbeddingStream,
    compute_mean,
    dataset_folder,
    load_dataset,
    mixture_rows,
    read_metadata,
)
from .args import TrainingArgs
from .checkpoint import TrainerState, resolve_checkpoint, save_checkpoint
from .evaluate import evaluate_stream
from .recipes import Recipe, build_optimizer, lr_multiplier, resolve_recipe, select_recipe
from .resume import (
    check_same_data,
    resume_args,
    resume_model,
    run_length,
    start_output_dir,
    warn_if_fewer_processes,
)

logger = logging.getLogger(__name__)


def iter_train_batches(stream: EmbeddingStream, batch_size: int, seed: int, start: int, end: int,
                       rank: int = 0, world: int = 1) -> Iterator[tuple[int, torch.Tensor]]:
    """`(step, this process's tokens (b, d))` for steps `start..end-1`; the next batch is read in a thread."""
    steps_per_epoch = len(stream) // batch_size
    local = batch_size // world
    order_cache: dict[int, np.ndarray] = {}

    def read(step: int) -> torch.Tensor:
        epoch, within = divmod(step, steps_per_epoch)
        if epoch not in order_cache:
            order_cache.clear()
            order_cache[epoch] = stream.epoch_order(seed, epoch)
        rows = order_cache[epoch][within * batch_size : (within + 1) * batch_size]
        mine = np.sort(rows[rank * local : (rank + 1) * local])  # sorted: sequential reads of the memory map
        return torch.from_numpy(stream.read(mine)).reshape(-1, stream.dim)

    if start >= end:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, start)
        for step in range(start, end):
            batch = pending.result()
            if step + 1 < end:
                pending = pool.submit(read, step + 1)
            yield step, batch


def _check_streams(model, stream: EmbeddingStream, eval_stream: Optional[EmbeddingStream], args: TrainingArgs,
                   world: int) -> int:
    """Validate sizes; returns the total number of optimiser steps."""
    d_in = model.config.d_in
    for name, s in (("training", stream), ("evaluation", eval_stream)):
        if s is not None and s.dim != d_in:
            raise ValueError(
                f"the {name} embeddings are {s.dim}-d (rows of shape {s.row_shape}) but the model has d_in={d_in}"
            )
    if args.batch_size % world:
        raise ValueError(f"batch_size={args.batch_size} (global) must be divisible by the {world} processes")
    steps_per_epoch = len(stream) // args.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {len(stream)} rows, fewer than batch_size={args.batch_size}")
    return args.max_steps or max(1, math.ceil(args.num_epochs * steps_per_epoch))


def _record_provenance(model, dataset, stream: EmbeddingStream, args: TrainingArgs, total_steps: int) -> None:
    metadata = read_metadata(dataset, required=False)
    config = model.config
    config.backbone = config.backbone or metadata.get("backbone")
    config.embedding_site = config.embedding_site or metadata.get("site") or metadata.get("embedding_site")
    folder = dataset_folder(dataset)
    config.training_data = {
        # a Hub id or the folder's name, never this machine's absolute path (the config travels with the model)
        "dataset": public_name(folder) if folder else "in-memory datasets.Dataset",
        "source": metadata.get("source"),
        "column": args.embedding_column,
        "rows": len(stream),
        "tokens": len(stream) * stream.tokens_per_row,
        "mixture": args.mixture,
        "seed": args.seed,
        "steps": total_steps,
        "batch_size": args.batch_size,
    }


def _make_accelerator(args: TrainingArgs):
    trackers = args.trackers
    project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs"))
    # Accelerate only forms a gloo process group on a machine without an accelerator when told `cpu=True`;
    # without it, `accelerate launch --num_processes 2` there runs two independent single-process trainings.
    accelerator_available = getattr(torch, "accelerator", None) is not None and torch.accelerator.is_available()
    accelerator = Accelerator(log_with=trackers or None, project_config=project, cpu=not accelerator_available)
    warn_if_fewer_processes(accelerator.num_processes)
    return accelerator


def _tracker_config(args: TrainingArgs, model) -> dict:
    values = {**args.to_dict(), "model_type": model.config.model_type, "d_in": model.config.d_in,
              "n_latents": model.config.n_latents, "k": model.config.k}
    return {key: (value if isinstance(value, (int, float, str, bool)) else str(value)) for key, value in values.items()}


def train(model, train_dataset, args: Optional[TrainingArgs] = None, eval_dataset=None):
    """
    Train a dictionary (CEDAR or any SAE) on embeddings and save it to `args.output_dir`.

    Args:
        model: a cedar-hf dictionary (`DictionaryPreTrainedModel`), freshly built or pretrained.
        train_dataset: a `datasets.Dataset` with an `embedding` column (vectors `(d,)` or token matrices
            `(N, d)`), or the path of one saved with `save_to_disk` (read memory-mapped, never loaded whole).
        args: a [`TrainingArgs`]; defaults to `TrainingArgs()`.
        eval_dataset: held-out embeddings (same forms) for FVU / L0 / dead-latent evaluation.

    Returns:
        The trained, unwrapped model (also saved with `save_pretrained`, beside `training_args.json` and
        `metrics.json`). A model with a callable `fit_embeddings(dataset, args)` is fitted by it instead.

    Example:

    ```python
    >>> import cedar_hf
    >>> model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=384, k=10, parametrization="cayley"))
    >>> args = cedar_hf.TrainingArgs(output_dir="cedar-minilm", batch_size=1024, max_steps=3000, save_steps=500)
    >>> model = cedar_hf.train(model, "embeddings/wordnet-minilm", args, eval_dataset="embeddings/val")
    ```
    """
    args = args or TrainingArgs()
    dataset = load_dataset(train_dataset)
    rows = mixture_rows(dataset, args.mixture, args.seed) if args.mixture else None
    stream = EmbeddingStream(dataset, args.embedding_column, rows)
    eval_stream = EmbeddingStream(eval_dataset, args.embedding_column) if eval_dataset is not None else None
    checkpoint = resolve_checkpoint(args.resume_from_checkpoint, args.output_dir)
    if checkpoint is not None:  # the run as it was saved: settings left at their defaults come from it
        model = resume_model(model, checkpoint, args, stream.dim)
        args = resume_args(args, checkpoint)
    elif model is None:
        raise ValueError("train(model=None, ...) needs resume_from_checkpoint (the model then comes from it)")
    args = resolve_recipe(model, args, rows=len(stream), has_eval=eval_stream is not None)  # fill unset fields
    if callable(getattr(model, "fit_embeddings", None)):
        return _fit_without_gradients(model, dataset, stream, eval_stream, args)
    accelerator = _make_accelerator(args)
    total_steps = _check_streams(model, stream, eval_stream, args, accelerator.num_processes)
    recipe = select_recipe(model, args)
    total_steps = run_length(recipe, model, args, total_steps)
    start_output_dir(args, checkpoint is not None, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    _record_provenance(model, dataset, stream, args, total_steps)

    state = TrainerState()
    if checkpoint is None:  # a resumed run gets its statistics (buffers) back from the checkpoint
        state.statistics = {"recipe": recipe.name, **recipe.prepare(model, stream)}
        state.statistics["train_mean"] = _train_mean(model, stream, args)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:  # e.g. a fixed basis: statistics are all there is to fit
        accelerator.end_training()
        if not accelerator.is_main_process:
            return model
        return _finish(model, args, eval_stream, state, {"note": "no trainable parameters"})

    optimizer = build_optimizer(params, args, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(
        step, total_steps, args.warmup_steps, args.lr_schedule, args.decay_fraction))
    # The scheduler is stepped by hand (not prepared) so it advances once per global step on any process count.
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler, state)
    if checkpoint is not None:
        accelerator.load_state(checkpoint)
        check_same_data(checkpoint, len(stream), total_steps, state.total_steps, args)
        recipe.plateau.restore(state.plateau)  # a resumed run stops where the uninterrupted one would
    state.total_steps = total_steps
    if accelerator.is_main_process:
        args.to_json_file(os.path.join(args.output_dir, "training_args.json"))
    accelerator.init_trackers("cedar-hf", config=_tracker_config(args, model))

    end = state.step if recipe.plateau.stopped else min(total_steps, args.stop_after_steps or total_steps)
    summary = _run_steps(accelerator, wrapped, model, optimizer, scheduler, recipe, state, stream, eval_stream,
                         args, end, total_steps)
    save_checkpoint(accelerator, model, args, args.output_dir, state.step)  # kept as is when it exists
    accelerator.end_training()
    if state.step < total_steps and not recipe.plateau.stopped:  # stopped early on purpose: only the checkpoint
        return model
    if not accelerator.is_main_process:
        return model
    return _finish(model, args, eval_stream, state, summary)


def _train_mean(model, stream: EmbeddingStream, args: TrainingArgs) -> list[float]:
    """The training mean used as μ of the held-out FVU (the model's own b / mean when it has one)."""
    for name in ("b", "mean"):
        value = getattr(model, name, None)
        if isinstance(value, torch.Tensor) and value.shape == (model.config.d_in,):
            return value.detach().float().cpu().tolist()
    return compute_mean(stream, args.statistics_rows).tolist()


def _run_steps(accelerator, wrapped, model, optimizer, scheduler, recipe: Recipe, state: TrainerState,
               stream: EmbeddingStream, eval_stream, args: TrainingArgs, end: int, total_steps: int) -> dict:
    """The gradient steps from `state.step` to `end`; returns the last logged training metrics."""
    bar = tqdm(total=total_steps, initial=state.step, desc="training", dynamic_ncols=True,
               disable=args.disable_tqdm or not accelerator.is_local_main_process)
    model.train()
    started, start_step, logged = time.perf_counter(), state.step, {}
    batches = iter_train_batches(stream, args.batch_size, args.seed, state.step, end,
                                 accelerator.process_index, accelerator.num_processes)
    tick = time.perf_counter()
    for step, x in batches:
        k = recipe.k_for_step(model, step)
        with accelerator.autocast():
            out = wrapped(x.to(accelerator.device), k=k) if k is not None else wrapped(x.to(accelerator.device))
        accelerator.backward(out.loss)
        recipe.before_optimizer_step(model)
        if args.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        recipe.after_optimizer_step(model)
        state.step = step + 1
        state.runtime_s += time.perf_counter() - tick
        bar.update(1)
        if state.step % args.logging_steps == 0 or state.step == end:
            logged = state.last_logged = _log_training(accelerator, model, recipe, out, k, scheduler, state.step)
            bar.set_postfix(loss=f"{logged['train/loss']:.4g}", fvu=f"{logged['train/fvu']:.4f}",
                            K=f"{logged['train/l0']:.1f}", lr=f"{logged['train/lr']:.2e}")
        if eval_stream is not None and args.eval_steps and state.step % args.eval_steps == 0:
            metrics = _evaluate_and_log(accelerator, model, recipe, eval_stream, state, args)
            stop = recipe.should_stop(accelerator, metrics, model, state.step)
            state.plateau = recipe.plateau.state()
            if stop:
                break  # held-out plateau (recipe)
        if args.save_steps and state.step % args.save_steps == 0:
            save_checkpoint(accelerator, model, args, args.output_dir, state.step)
        tick = time.perf_counter()
    bar.close()
    elapsed = time.perf_counter() - started
    rows = (state.step - start_step) * args.batch_size
    return {**state.last_logged, "train/runtime_s": state.runtime_s,
            "train/samples_per_second": rows / elapsed if elapsed and rows else 0.0,
            "train/stopped_on_plateau": recipe.plateau.stopped}


def _log_training(accelerator, model, recipe: Recipe, out, k, scheduler, step: int) -> dict:
    values = torch.stack([out.loss.detach().float(), out.fvu.float(), out.l0.float()])
    values = accelerator.reduce(values, reduction="mean")  # every process takes part in the collective
    logged = {"train/loss": float(values[0]), "train/fvu": float(values[1]), "train/l0": float(values[2]),
              "train/lr": float(scheduler.get_last_lr()[0])}
    if k is not None:
        logged["train/k"] = float(k)
    dead = recipe.dead_fraction(model)
    if dead is not None:
        logged["train/dead_fraction"] = dead
    accelerator.log(logged, step=step)
    return logged


def _evaluate_and_log(accelerator, model, recipe: Recipe, eval_stream, state: TrainerState, args) -> dict:
    metrics = {}
    if accelerator.is_main_process:
        mean = torch.tensor(state.statistics["train_mean"])
        result = evaluate_stream(model, eval_stream, mean, args.eval_batch_size, args.eval_max_rows,
                                 with_loss=recipe.plateau_metric == "eval/loss")
        metrics = {f"eval/{key}": value for key, value in result.items()}
        dead = recipe.dead_fraction(model)
        if dead is not None:
            metrics["eval/dead_fraction"] = dead
        state.history.append({"step": state.step, **metrics})
        accelerator.log(metrics, step=state.step)
    return metrics


def _finish(model, args: TrainingArgs, eval_stream, state: TrainerState, summary: dict) -> "torch.nn.Module":
    """Final evaluation and `save_pretrained` + `training_args.json` + `metrics.json` in `output_dir`."""
    metrics = {"step": state.step, **{k: v for k, v in summary.items()}}
    if eval_stream is not None and state.statistics.get("train_mean") is not None:
        mean = torch.tensor(state.statistics["train_mean"])
        result = evaluate_stream(model, eval_stream, mean, args.eval_batch_size, args.eval_max_rows)
        metrics.update({f"eval/{key}": value for key, value in result.items()})
    dead = getattr(model, "dead_latents", None)
    if isinstance(dead, torch.Tensor):
        metrics["eval/dead_fraction"] = float(dead.float().mean())
    metrics["statistics"] = {k: v for k, v in state.statistics.items() if k != "train_mean"}
    metrics["history"] = state.history
    os.makedirs(args.output_dir, exist_ok=True)
    model.save_pretrained(args.output_dir)  # crash-safe; metrics.json (written last) marks a finished run
    args.to_json_file(os.path.join(args.output_dir, "training_args.json"))
    write_json(os.path.join(args.output_dir, "metrics.json"), metrics)
    return model


def _fit_without_gradients(model, dataset, stream, eval_stream, args: TrainingArgs):
    """Models fitted by their own algorithm (Semi-NMF): `model.fit_embeddings(dataset, args)`, then saved."""
    for name, s in (("training", stream), ("evaluation", eval_stream)):
        if s is not None and s.dim != model.config.d_in:
            raise ValueError(f"the {name} embeddings are {s.dim}-d but the model has d_in={model.config.d_in}")
    start_output_dir(args, resuming=False)
    _record_provenance(model, dataset, stream, args, total_steps=0)
    subset = dataset if args.mixture is None else dataset.select(stream.rows.tolist(), keep_in_memory=True)
    started = time.perf_counter()
    objective_history = model.fit_embeddings(subset, args) or []
    state = TrainerState()
    state.statistics["train_mean"] = _train_mean(model, stream, args)
    metrics = {"train/runtime_s": time.perf_counter() - started}
    if objective_history:
        metrics["train/objective"] = objective_history[-1]
        metrics["train/objective_per_epoch"] = list(objective_history)
    return _finish(model, args, eval_stream, state, metrics)


__all__ = ["iter_train_batches", "train"]
