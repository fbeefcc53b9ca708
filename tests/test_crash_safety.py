"""Crash safety, tested by a crash injected at every write: a training run's checkpoints and a model folder's
files are left whole at any moment, `--resume latest` always works and finishes with the weights of an
uninterrupted run.

The injection (no sleeps): every file-system write the package makes — `open(..., "w")`, safetensors'
`save_file`, `torch.save`, `os.replace`/`rename`, deletions — is an *event*. `crash_at(n)` raises `Crash` (a
BaseException, which nothing catches) at the n-th event; a crash at a file write first leaves the file empty,
as a process killed while writing it would. Each test runs the operation once counting events, then crashes it
at each one in turn. `scripts/kill_test.py` does the same with real SIGKILLs at random times.
"""

from __future__ import annotations

import builtins
import io
import os
import shutil
from contextlib import contextmanager

import datasets
import pytest
import safetensors.torch
import torch

import cedar_hf
from builders import build_model, planted_sparse
from cedar_hf.auto import load_dictionary
from cedar_hf.training import TrainingArgs, train
from cedar_hf.training.checkpoint import list_checkpoints


class Crash(BaseException):
    """The injected crash: a BaseException so no `except Exception` in any library swallows it."""


@contextmanager
def crash_at(n: int | None):
    """Count write events; raise `Crash` at the n-th (None: only count). Yields a one-item list: the count."""
    count = [0]
    real = {"open": builtins.open, "io_open": io.open, "replace": os.replace, "rename": os.rename,
            "unlink": os.unlink, "remove": os.remove, "rmtree": shutil.rmtree,
            "save_file": safetensors.torch.save_file, "torch_save": torch.save}

    def event(truncate=None):
        count[0] += 1
        if n is not None and count[0] == n:
            if truncate is not None and isinstance(truncate, (str, os.PathLike)):
                real["open"](truncate, "wb").close()  # killed mid-write: the file exists, empty
            raise Crash(f"injected crash at write event {n}")

    def opener(name):
        def patched(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+"):
                event(file)
            return real[name](file, mode, *args, **kwargs)
        return patched

    def wrap(name, truncate_arg=None):
        def patched(*args, **kwargs):
            event(args[truncate_arg] if truncate_arg is not None and len(args) > truncate_arg else None)
            return real[name](*args, **kwargs)
        return patched

    patches = [(builtins, "open", opener("open")), (io, "open", opener("io_open")),
               (os, "replace", wrap("replace")), (os, "rename", wrap("rename")), (os, "unlink", wrap("unlink")),
               (os, "remove", wrap("remove")), (shutil, "rmtree", wrap("rmtree")),
               (safetensors.torch, "save_file", wrap("save_file", 1)), (torch, "save", wrap("torch_save", 1))]
    originals = [(module, attr, getattr(module, attr)) for module, attr, _ in patches]
    for module, attr, value in patches:
        setattr(module, attr, value)
    try:
        yield count
    finally:
        for module, attr, value in originals:
            setattr(module, attr, value)


def _dataset(n=512, d=16):
    z, _, _ = planted_sparse(n, d, 3, seed=5)
    return datasets.Dataset.from_dict({"embedding": z.double().numpy()})


def _args(folder, **overrides):
    values = dict(output_dir=str(folder), batch_size=128, max_steps=6, save_steps=3, curriculum_steps=2,
                  learning_rate=3e-3, report_to="none", disable_tqdm=True, seed=1)
    return TrainingArgs(**{**values, **overrides})


def _fresh(model_type):
    torch.manual_seed(0)
    return build_model(model_type, 16, k=3).double()  # float64: resumed == straight up to rounding (see below)


@pytest.mark.parametrize("model_type", ["cedar", "topk_sae"])
def test_a_crash_at_any_write_of_training_leaves_a_resumable_run_with_the_same_result(tmp_path, model_type):
    data = _dataset()
    straight = train(_fresh(model_type), data, _args(tmp_path / "straight"))
    with crash_at(None) as events:
        train(_fresh(model_type), data, _args(tmp_path / "counted"))
    assert events[0] > 20  # the injection sees the checkpoint and model writes
    for n in range(1, events[0] + 1):
        folder = tmp_path / f"crash-{n}"
        with pytest.raises(Crash), crash_at(n):
            train(_fresh(model_type), data, _args(folder))
        for checkpoint in list_checkpoints(str(folder)):  # every visible checkpoint is complete and loads
            assert isinstance(load_dictionary(checkpoint), type(straight)), (n, checkpoint)
        resume = "latest" if list_checkpoints(str(folder)) else None
        args = _args(folder, resume_from_checkpoint=resume, overwrite_output_dir=resume is None)
        resumed = train(_fresh(model_type), data, args)
        final = load_dictionary(folder)
        for key, value in straight.state_dict().items():
            # Same steps, batches and optimiser state in float64: equal up to the rounding of a reordered sum
            # (~1e-16 relative); a lost or repeated step moves a weight by ~lr = 3e-3.
            torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=1e-10, msg=(n, key))
            torch.testing.assert_close(final.state_dict()[key], value, rtol=0, atol=1e-10, msg=(n, key))
        shutil.rmtree(folder)


def test_a_crash_at_any_write_of_save_pretrained_leaves_the_folder_loadable(tmp_path):
    folder = tmp_path / "model"
    old = build_model("cedar", 16, k=3)
    old.concept_names = {"names": [{"latent": 0, "name": "old"}]}
    old.save_pretrained(folder)
    new = build_model("cedar", 16, k=3)
    new.concept_names = {"names": [{"latent": 0, "name": "new"}]}
    shutil.copytree(folder, tmp_path / "counted")
    with crash_at(None) as events:  # a save into an existing folder: files moved in one by one
        new.save_pretrained(tmp_path / "counted")
    assert events[0] >= 6
    for n in range(1, events[0] + 1):
        target = tmp_path / f"m{n}"
        shutil.copytree(folder, target)
        with pytest.raises(Crash), crash_at(n):
            new.save_pretrained(target)
        loaded = load_dictionary(target)  # never a broken folder
        assert loaded.concept_labels[0] in ("old", "new")
        new.save_pretrained(target)  # and the next save repairs nothing by hand
        assert load_dictionary(target).concept_labels[0] == "new"
        # A killed save's temporaries are removed by the next save; one of this (live) process is left alone,
        # as it could be another thread's save in progress.
        assert all(p.endswith(f"-{os.getpid()}-" + p.rsplit("-", 1)[1]) for p in os.listdir(target)
                   if p.startswith(".tmp-")), os.listdir(target)

    fresh = tmp_path / "fresh"
    with crash_at(None) as events:
        new.save_pretrained(tmp_path / "counted-fresh")
    for n in range(1, events[0] + 1):  # into a new folder: it appears whole or not at all
        with pytest.raises(Crash), crash_at(n):
            new.save_pretrained(fresh)
        assert not fresh.exists() or isinstance(load_dictionary(fresh), cedar_hf.CedarModel)
