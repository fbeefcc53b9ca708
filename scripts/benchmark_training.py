"""Training speed on this CPU: samples/s of CEDAR (both parametrizations) and each SAE, same batch, and CEDAR's
achieved FLOP/s against a dense matmul measured in the same run.

One training step is exactly what `cedar_hf.train` does per batch (forward at the step's k, backward, the
recipe's decoder-gradient projection, Adam, the unit-norm projection), on in-memory data; one extra row runs
`cedar_hf.train` end to end on a memory-mapped dataset to show the loop's own overhead. Writes
`benchmarks/results/training_speed.json` and `.md` and prints the table.

    OMP_NUM_THREADS=2 python scripts/benchmark_training.py            # d = 384 and 768, batch 1024
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import cedar_hf
from cedar_hf.training import TrainingArgs, train
from cedar_hf.training.recipes import select_recipe

RESULTS = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results")
# (label, model_type, config overrides): the paper's baselines at 8× expansion (App. B).
MODELS = [
    ("CEDAR (matrix_exp)", "cedar", dict(k=10, parametrization="matrix_exp", init_std=0.01)),
    ("CEDAR (cayley)", "cedar", dict(k=10, parametrization="cayley", init_std=0.01)),
    ("ReLU SAE 8x", "relu_sae", dict(expansion_factor=8)),
    ("TopK SAE 8x, k=64", "topk_sae", dict(expansion_factor=8, k=64)),
    ("BatchTopK SAE 8x, k=32", "batchtopk_sae", dict(expansion_factor=8, k=32)),
    ("JumpReLU SAE 8x", "jumprelu_sae", dict(expansion_factor=8)),
    ("Matryoshka SAE 8x (64..512, RW)", "matryoshka_sae", dict(expansion_factor=8)),
]


def build(model_type: str, d: int, overrides: dict, x: torch.Tensor):
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    model = model_class(config_class(d_in=d, **overrides))
    args = TrainingArgs(report_to="none")
    recipe = select_recipe(model, args)
    if callable(getattr(model, "set_normalization", None)):
        model.set_normalization(*model.compute_normalization(x))
    elif callable(getattr(model, "set_mean", None)):
        model.set_mean(x.mean(0))
    return model, recipe


class Stepper:
    """One model's training step exactly as the loop runs it (forward at k, backward, recipe, Adam)."""

    def __init__(self, model, recipe, k):
        self.model, self.recipe, self.k = model, recipe, k
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
        model.train()

    def step(self, x: torch.Tensor) -> float:
        started = time.perf_counter()
        out = self.model(x, k=self.k) if self.k is not None else self.model(x)
        out.loss.backward()
        self.recipe.before_optimizer_step(self.model)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.recipe.after_optimizer_step(self.model)
        return time.perf_counter() - started


def counted_flops(model, x: torch.Tensor, k) -> int:
    """Matmul FLOPs of one forward + backward (FlopCounterMode). It does not see inside `matrix_exp` or
    `linalg.solve`, so for CEDAR this is a lower bound (the batch matmuls, 10·B·D², dominate at B = 1024)."""
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x, k=k) if k is not None else model(x)
        out.loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def dense_matmul_flops_per_s(batch: int, d: int, repeats: int = 10) -> float:
    """FLOP/s of the dense `(B, D) @ (D, D)` matmul, CEDAR's main kernel, on this machine now."""
    a, b = torch.randn(batch, d), torch.randn(d, d)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * batch * d * d / statistics.median(times)


def end_to_end(d: int, batch: int, steps: int) -> float:
    """`cedar_hf.train` samples/s (CEDAR cayley) on a memory-mapped dataset: reading, loop, logging included."""
    import datasets

    with tempfile.TemporaryDirectory() as tmp:
        rows = torch.randn(batch * 8, d).numpy()
        datasets.Dataset.from_dict({"embedding": rows}).save_to_disk(os.path.join(tmp, "data"))
        model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=d, k=10, parametrization="cayley", init_std=0.01))
        args = TrainingArgs(output_dir=os.path.join(tmp, "out"), batch_size=batch, max_steps=steps,
                            report_to="none", disable_tqdm=True, curriculum_steps=0)
        train(model, os.path.join(tmp, "data"), args)
        with open(os.path.join(tmp, "out", "metrics.json")) as f:
            return json.load(f)["train/samples_per_second"]


def time_interleaved(steppers: dict, x: torch.Tensor, steps: int, rounds: int, batch: int) -> dict:
    """Step times per model, measured round-robin (a few steps of each model per round) so that every model
    sees the same mix of machine load; the dense matmul reference is timed in every round too."""
    times = {label: [] for label in steppers}
    times["dense"] = []
    for stepper in steppers.values():  # warm-up
        stepper.step(x), stepper.step(x)
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        for label, stepper in steppers.items():
            if stepper.model.config.model_type == "cedar":
                times["dense"].append(dense_matmul_flops_per_s(batch, x.shape[-1], repeats=5))
            times[label] += [stepper.step(x) for _ in range(per_round)]
    return times


def run(dims: list[int], batch: int, steps: int, rounds: int) -> dict:
    load_before = os.getloadavg()
    rows = []
    for d in dims:
        x = torch.randn(batch, d) * 0.5 + torch.randn(d)
        steppers = {}
        for label, model_type, overrides in MODELS:
            torch.manual_seed(0)
            model, recipe = build(model_type, d, overrides, x)
            steppers[label] = Stepper(model, recipe, overrides.get("k") if model_type == "cedar" else None)
        times = time_interleaved(steppers, x, steps, rounds, batch)
        dense = statistics.median(times.pop("dense"))
        for label, stepper in steppers.items():
            model, step_s = stepper.model, statistics.median(times[label])
            row = {"model": label, "model_type": model.config.model_type, "d": d, "n_latents": model.config.n_latents,
                   "batch": batch, "step_ms": 1000 * step_s, "samples_per_s": batch / step_s,
                   "step_ms_min": 1000 * min(times[label]), "step_ms_max": 1000 * max(times[label]),
                   "samples_per_s_best": batch / min(times[label])}
            if model.config.model_type == "cedar":
                flops = counted_flops(model, x, stepper.k)
                row.update(counted_gflop_per_step=flops / 1e9, achieved_gflop_s=flops / step_s / 1e9,
                           dense_matmul_gflop_s=dense / 1e9, fraction_of_dense=flops / step_s / dense)
            rows.append(row)
            print(f"d={d:4d} {label:34s} {1000 * step_s:8.1f} ms/step {batch / step_s:10.0f} samples/s", flush=True)
        del steppers
        rows.append({"model": "cedar_hf.train end to end (CEDAR cayley, memory-mapped)", "model_type": "cedar",
                     "d": d, "n_latents": d, "batch": batch, "samples_per_s": end_to_end(d, batch, steps)})
    goal = _goal(rows)
    return {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                        "load_average_before": load_before, "load_average_after": os.getloadavg()},
            "batch": batch, "timed_steps": steps, "rounds": rounds, "rows": rows, "goal": goal}


def _goal(rows: list[dict]) -> dict:
    """CEDAR at d = 768 should train ≥ 2× the samples/s of a TopK SAE with 8× expansion."""
    at = {r["model"]: r for r in rows if r["d"] == 768 and "step_ms" in r}
    topk = at.get("TopK SAE 8x, k=64")
    if topk is None:
        return {}
    goal = {}
    for label in ("CEDAR (matrix_exp)", "CEDAR (cayley)"):
        if label in at:
            median = at[label]["samples_per_s"] / topk["samples_per_s"]
            best = at[label]["samples_per_s_best"] / topk["samples_per_s_best"]
            goal[label] = {"ratio_vs_topk_median": median, "ratio_vs_topk_best": best, "met": median >= 2.0}
    return goal


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Training speed (CPU)", "",
        f"{m['platform']}, {m['cpu_count']} cores, torch {m['torch']} with {m['torch_threads']} threads, fp32, "
        f"batch {result['batch']}, median of {result['timed_steps']} steps per model after 2 warm-up steps, "
        f"measured round-robin over {result['rounds']} rounds so every model sees the same machine load.",
        f"Load average before / after: {', '.join(f'{v:.2f}' for v in m['load_average_before'])} / "
        f"{', '.join(f'{v:.2f}' for v in m['load_average_after'])} (other jobs shared the machine when the load "
        "exceeds the core count; numbers are then pessimistic and noisier).", "",
        "| d | model | latents | ms / step (median) | ms / step (best) | samples / s (median) | counted GFLOP/s "
        "| dense matmul GFLOP/s | share of dense |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        step = f"{r['step_ms']:.1f} | {r['step_ms_min']:.1f}" if "step_ms" in r else "– | –"
        flops = (f"{r['achieved_gflop_s']:.1f} | {r['dense_matmul_gflop_s']:.1f} | {r['fraction_of_dense']:.0%}"
                 if "achieved_gflop_s" in r else "– | – | –")
        lines.append(f"| {r['d']} | {r['model']} | {r['n_latents']} | {step} | {r['samples_per_s']:.0f} | {flops} |")
    lines += ["", "Counted FLOPs are FlopCounterMode's matmul FLOPs of forward + backward (median step); it does "
              "not see inside `matrix_exp` / `linalg.solve`, so CEDAR's achieved FLOP/s is a lower bound. The dense "
              "reference is a `(B, D) @ (D, D)` matmul timed in every round beside the models.", ""]
    for label, g in result["goal"].items():
        lines.append(f"- Goal (CEDAR at d=768 ≥ 2× the samples/s of a TopK SAE 8×): {label}: "
                     f"{g['ratio_vs_topk_median']:.2f}× on median steps ({g['ratio_vs_topk_best']:.2f}× on best "
                     "steps) — " + ("met" if g["met"] else "NOT met"))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768], help="Embedding dimensions to time.")
    parser.add_argument("--batch-size", type=int, default=1024, help="Rows per training step (all models).")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per model (after 2 warm-up steps).")
    parser.add_argument("--rounds", type=int, default=5, help="Round-robin rounds the timed steps are spread over.")
    parser.add_argument("--output", default=RESULTS, help="Folder for training_speed.json and training_speed.md.")
    options = parser.parse_args()
    result = run(options.dims, options.batch_size, options.steps, options.rounds)
    os.makedirs(options.output, exist_ok=True)
    with open(os.path.join(options.output, "training_speed.json"), "w") as f:
        json.dump(result, f, indent=2)
    table = markdown(result)
    with open(os.path.join(options.output, "training_speed.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
