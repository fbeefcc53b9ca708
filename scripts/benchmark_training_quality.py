"""Time-to-quality for `scripts/benchmark_training.py`: wall-clock for each model to reach 99% of its final
held-out quality on real embeddings (MiniLM sentence embeddings of WordNet glosses).

Every model trains round-robin, `eval_every` steps at a time, so all of them see the same machine load; only the
training steps are timed (held-out evaluations are not). Held-out quality is the FVU `Σ‖x − x̂‖² / Σ‖x − μ‖²`
at the model's k (μ the training mean) — one metric for every model, ours and overcomplete's. A model "reaches
99%" at the first evaluation with `fvu ≤ final_fvu / 0.99` (final = the last evaluation of its run).

Also the overcomplete worker (`PeerWorker`, a subprocess in the overcomplete venv) used by the speed table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import tempfile
import time

import torch

import cedar_hf
from cedar_hf.training import TrainingArgs
from cedar_hf.training.recipes import build_optimizer, select_recipe

HERE = Path(__file__).resolve().parent


class PeerWorker:
    """overcomplete's TopKSAE in its own venv, driven line by line (see benchmark_training_overcomplete.py)."""

    def __init__(self, python: str, threads: int):
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["OMP_NUM_THREADS"] = str(threads)
        self.process = subprocess.Popen([python, str(HERE / "benchmark_training_overcomplete.py"), str(threads)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.folder = tempfile.TemporaryDirectory()

    def call(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the overcomplete worker exited (command {command})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"overcomplete worker: {answer['error']} (command {command['cmd']})")
        return answer

    def setup(self, name: str, train: torch.Tensor, val, n_latents: int, k: int, lr: float, batch: int) -> dict:
        path = os.path.join(self.folder.name, f"{name}.pt")
        torch.save({"train": train.contiguous(), "val": None if val is None else val.contiguous()}, path)
        return self.call(cmd="setup", name=name, inputs=path, n_latents=n_latents, k=k, lr=lr, batch=batch)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.folder.cleanup()


class OurTrainer:
    """One of our models trained as `cedar_hf.train` steps it (recipe k, decoder projections, AdamW), constant lr."""

    def __init__(self, model_type: str, overrides: dict, train: torch.Tensor, val: torch.Tensor, lr: float,
                 batch: int, curriculum_steps: int, seed: int = 0):
        torch.manual_seed(seed)
        config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
        self.model = model_class(config_class(d_in=train.shape[1], **overrides))
        self.recipe = select_recipe(self.model, TrainingArgs(report_to="none", curriculum_steps=curriculum_steps))
        if callable(getattr(self.model, "set_normalization", None)):
            self.model.set_normalization(*self.model.compute_normalization(train))
            self.model.normalize_decoder()
        else:
            self.model.set_mean(train.mean(0))
        self.train, self.val, self.batch, self.step_index = train, val, batch, 0
        self.mean = train.double().mean(0)
        # as cedar_hf.train builds it: AdamW, or OrthogonalAdam for CEDAR's parametrization="orthogonal"
        self.optimizer = build_optimizer(self.model.parameters(), TrainingArgs(report_to="none", learning_rate=lr,
                                                                               weight_decay=0.0), self.model)
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.position = torch.empty(0, dtype=torch.long), 0

    def steps(self, n: int) -> list[float]:
        times = []
        self.model.train()
        for _ in range(n):
            if self.position + self.batch > len(self.order):
                self.order, self.position = torch.randperm(len(self.train), generator=self.generator), 0
            x = self.train[self.order[self.position:self.position + self.batch]]
            self.position += self.batch
            started = time.perf_counter()
            k = self.recipe.k_for_step(self.model, self.step_index)
            out = self.model(x, k=k) if k is not None else self.model(x)
            out.loss.backward()
            self.recipe.before_optimizer_step(self.model)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.recipe.after_optimizer_step(self.model)
            times.append(time.perf_counter() - started)
            self.step_index += 1
        return times

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        codes = self.model.encode(self.val)
        x_hat = self.model.decode(codes)
        error = float((self.val.double() - x_hat.double()).pow(2).sum())
        return {"fvu": error / float((self.val.double() - self.mean).pow(2).sum()),
                "l0": float((codes != 0).sum(-1).double().mean())}


class PeerTrainer:
    def __init__(self, worker: PeerWorker, train: torch.Tensor, val: torch.Tensor, n_latents: int, k: int,
                 lr: float, batch: int):
        # overcomplete has no standardisation of its own: give it cedar-hf's SAE standardisation x_c = (x − μ)·s
        mean, scale = cedar_hf.TopKSAE.compute_normalization(train)
        self.worker = worker
        worker.setup("quality", (train - mean) * scale, (val - mean) * scale, n_latents, k, lr, batch)

    def steps(self, n: int) -> list[float]:
        return self.worker.call(cmd="steps", name="quality", n=n)["times"]

    def evaluate(self) -> dict:
        return self.worker.call(cmd="eval", name="quality")


def load_embeddings(path: str, n_val: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) float32 tensors from an embedding dataset folder (column `embedding`), seeded split."""
    import datasets

    dataset = datasets.load_from_disk(path)
    if "embedding" not in dataset.column_names:
        raise ValueError(f"{path} has no 'embedding' column (columns: {dataset.column_names})")
    x = torch.as_tensor(dataset.with_format("numpy")["embedding"], dtype=torch.float32)
    if x.ndim != 2 or len(x) <= n_val:
        raise ValueError(f"{path}: need (N, d) embeddings with N > n_val={n_val}, got shape {tuple(x.shape)}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[order[n_val:]], x[order[:n_val]]


def time_to_quality(trainers: dict, steps: int, eval_every: int) -> list[dict]:
    """Round-robin training of every trainer; per model the curve (training seconds, step, held-out FVU) and the
    time to 99% of the final quality."""
    curves = {name: [] for name in trainers}
    seconds = {name: 0.0 for name in trainers}
    for step in range(eval_every, steps + 1, eval_every):
        for name, trainer in trainers.items():
            seconds[name] += sum(trainer.steps(eval_every))
            curves[name].append({"seconds": seconds[name], "step": step, **trainer.evaluate()})
        print(f"step {step}: " + ", ".join(f"{n} fvu {c[-1]['fvu']:.4f}" for n, c in curves.items()), flush=True)
    rows = []
    for name, curve in curves.items():
        final = curve[-1]["fvu"]
        reached = next(point for point in curve if point["fvu"] <= final / 0.99)
        rows.append({"model": name, "final_fvu": final, "final_l0": curve[-1]["l0"], "steps": steps,
                     "seconds_to_99": reached["seconds"], "steps_to_99": reached["step"],
                     "train_seconds": curve[-1]["seconds"], "ms_per_step": 1000 * curve[-1]["seconds"] / steps,
                     "curve": curve})
    return rows


def build_trainers(train, val, peer: PeerWorker | None, batch: int, steps: int) -> dict:
    """CEDAR (every parametrization, k = 10, τ = steps / 3, lr 1e-3), our TopK SAE 8× k = 64 and overcomplete's
    (lr 5e-4, the peer's rate in benchmark_quality.py and MSAE's TopK rate), all at batch `batch`."""
    tau = steps // 3
    trainers = {
        "CEDAR (matrix_exp)": OurTrainer("cedar", dict(k=10, parametrization="matrix_exp"), train, val, 1e-3,
                                         batch, tau),
        "CEDAR (cayley)": OurTrainer("cedar", dict(k=10, parametrization="cayley"), train, val, 1e-3, batch, tau),
        "CEDAR (orthogonal, exp retraction)": OurTrainer(
            "cedar", dict(k=10, parametrization="orthogonal", retraction="exp"), train, val, 1e-3, batch, tau),
        "CEDAR (orthogonal, cayley retraction)": OurTrainer(
            "cedar", dict(k=10, parametrization="orthogonal", retraction="cayley"), train, val, 1e-3, batch, tau),
        "TopK SAE 8x, k=64 (ours)": OurTrainer("topk_sae", dict(expansion_factor=8, k=64), train, val, 5e-4, batch,
                                               0),
    }
    if peer is not None:
        trainers["overcomplete TopKSAE 8x, k=64"] = PeerTrainer(peer, train, val, 8 * train.shape[1], 64, 5e-4,
                                                                batch)
    return trainers


__all__ = ["OurTrainer", "PeerTrainer", "PeerWorker", "build_trainers", "load_embeddings", "time_to_quality"]
