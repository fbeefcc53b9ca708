"""Training speed on this CPU: samples/s of CEDAR (every parametrization: matrix_exp, Cayley, and U itself on the
rotation group by OrthogonalAdam with either retraction), each SAE and overcomplete's TopKSAE, same batch, the
achieved share of the machine's dense matmul FLOP/s, and time-to-quality on real embeddings.

One training step is exactly what `cedar_hf.train` does per batch (forward at the step's k, backward, the
recipe's decoder-gradient projection, Adam, the unit-norm projection), on in-memory data; overcomplete 0.3.0's
TopKSAE runs the body of its own `train_sae` in a worker process in a separate venv (made like
`benchmark_quality.py` makes it; `--overcomplete-python` points at an existing one). All models are timed
round-robin (a few steps of each per round; the worker's steps while this process waits), so every model sees the
same machine load. One extra row runs `cedar_hf.train` end to end on a memory-mapped dataset. Time-to-quality
(`benchmark_training_quality.py`): wall-clock to reach 99% of the final held-out FVU on MiniLM embeddings of
WordNet glosses. Writes `benchmarks/results/training_speed.json` and `.md` and prints the table.

    OMP_NUM_THREADS=2 python scripts/benchmark_training.py                 # d = 384 and 768, batch 1024
    OMP_NUM_THREADS=2 python scripts/benchmark_training.py --dims 768 --quality-data benchmarks/cache/wordnet_minilm_60000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import cedar_hf
from cedar_hf.atomic import write_json, write_text
from cedar_hf.training import TrainingArgs, train
from cedar_hf.training.recipes import build_optimizer, select_recipe

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_training_quality import PeerWorker, build_trainers, load_embeddings, time_to_quality  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results")
PEER = "overcomplete TopKSAE 8x, k=64"
# (label, model_type, config overrides): the paper's baselines at 8× expansion (App. B).
MODELS = [
    ("CEDAR (matrix_exp)", "cedar", dict(k=10, parametrization="matrix_exp", init_std=0.01)),
    ("CEDAR (cayley)", "cedar", dict(k=10, parametrization="cayley", init_std=0.01)),
    # U trained on the rotation group by OrthogonalAdam (no backward through exp / Cayley), issue 18
    ("CEDAR (orthogonal, exp retraction)", "cedar", dict(k=10, parametrization="orthogonal", retraction="exp",
                                                         init_std=0.01)),
    ("CEDAR (orthogonal, cayley retraction)", "cedar", dict(k=10, parametrization="orthogonal",
                                                            retraction="cayley", init_std=0.01)),
    ("ReLU SAE 8x", "relu_sae", dict(expansion_factor=8)),
    ("TopK SAE 8x, k=64", "topk_sae", dict(expansion_factor=8, k=64)),
    ("BatchTopK SAE 8x, k=32", "batchtopk_sae", dict(expansion_factor=8, k=32)),
    ("JumpReLU SAE 8x", "jumprelu_sae", dict(expansion_factor=8)),
    ("Matryoshka SAE 8x (default levels)", "matryoshka_sae", dict(expansion_factor=8)),
]


# The same models as before issue 18, for the speed-up in the same run: `torch.linalg.matrix_exp` (backward by a
# 2D × 2D exponential) and the dense `(B, n) × (n, d)` top-k decode / backward.
REFERENCES = [
    ("CEDAR (matrix_exp) before issue 18: torch.linalg.matrix_exp, dense decode", "cedar",
     dict(k=10, parametrization="matrix_exp", init_std=0.01)),
    ("TopK SAE 8x, k=64 before issue 18: dense decode", "topk_sae", dict(expansion_factor=8, k=64)),
]


class ReferenceCedar(cedar_hf.CedarModel):
    """CEDAR as it was: U from `torch.linalg.matrix_exp`, dense encode/decode."""

    @property
    def rotation(self) -> torch.Tensor:
        return torch.linalg.matrix_exp(self.A - self.A.T)


def build(model_type: str, d: int, overrides: dict, x: torch.Tensor, reference: bool = False):
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    if reference and model_type == "cedar":
        model_class = ReferenceCedar
    model = model_class(config_class(d_in=d, **overrides))
    if reference:
        model.use_sparse_kernels = False
    args = TrainingArgs(report_to="none")
    recipe = select_recipe(model, args)
    if callable(getattr(model, "set_normalization", None)):
        model.set_normalization(*model.compute_normalization(x))
    elif callable(getattr(model, "set_mean", None)):
        model.set_mean(x.mean(0))
    return model, recipe


class Stepper:
    """One model's training step exactly as the loop runs it (forward at k, backward, recipe, Adam)."""

    def __init__(self, model, recipe, k, x):
        self.model, self.recipe, self.k, self.x = model, recipe, k, x
        # as cedar_hf.train builds it: AdamW, or OrthogonalAdam for CEDAR's parametrization="orthogonal"
        self.optimizer = build_optimizer(model.parameters(), TrainingArgs(report_to="none", learning_rate=1e-4,
                                                                          weight_decay=0.0), model)
        model.train()

    def step(self) -> float:
        started = time.perf_counter()
        out = self.model(self.x, k=self.k) if self.k is not None else self.model(self.x)
        out.loss.backward()
        self.recipe.before_optimizer_step(self.model)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.recipe.after_optimizer_step(self.model)
        return time.perf_counter() - started

    def steps(self, n: int) -> list[float]:
        return [self.step() for _ in range(n)]


class PeerStepper:
    """overcomplete's TopKSAE stepping in its worker on the same batch."""

    def __init__(self, worker: PeerWorker, x: torch.Tensor, n_latents: int, k: int):
        self.worker = worker
        worker.setup("speed", x, None, n_latents, k, 1e-4, x.shape[0])

    def steps(self, n: int) -> list[float]:
        return self.worker.call(cmd="steps", name="speed", n=n)["times"]


def counted_flops(stepper: "Stepper") -> int:
    """Matmul FLOPs of one whole training step, forward + backward + optimiser (FlopCounterMode; the optimiser
    matters for OrthogonalAdam, whose step has matmuls). It counts the matmuls of `expm_skew` but not inside
    `linalg.solve` (Cayley) nor the sparse kernels' `embedding_bag`, so it is a lower bound for those."""
    counter = FlopCounterMode(display=False)
    with counter:
        stepper.step()
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


def time_interleaved(steppers: dict, steps: int, rounds: int, batch: int, d: int) -> dict:
    """Step times per model, measured round-robin (a few steps of each model per round) so that every model
    sees the same mix of machine load; the dense matmul reference is timed in every round too."""
    times = {label: [] for label in steppers}
    times["dense"] = []
    for stepper in steppers.values():  # warm-up
        stepper.steps(2)
    per_round = max(1, steps // rounds)
    for _ in range(rounds):
        times["dense"].append(dense_matmul_flops_per_s(batch, d, repeats=5))
        for label, stepper in steppers.items():
            times[label] += stepper.steps(per_round)
    return times


def speed_rows(d: int, batch: int, steps: int, rounds: int, worker) -> list[dict]:
    x = torch.randn(batch, d) * 0.5 + torch.randn(d)
    steppers = {}
    for label, model_type, overrides in MODELS + REFERENCES:
        torch.manual_seed(0)
        model, recipe = build(model_type, d, overrides, x, reference=(label, model_type, overrides) in REFERENCES)
        steppers[label] = Stepper(model, recipe, overrides.get("k") if model_type == "cedar" else None, x)
    if worker is not None:
        steppers[PEER] = PeerStepper(worker, x, 8 * d, 64)
    times = time_interleaved(steppers, steps, rounds, batch, d)
    dense = statistics.median(times.pop("dense"))
    rows = []
    for label, stepper in steppers.items():
        step_s = statistics.median(times[label])
        row = {"model": label, "d": d, "batch": batch, "step_ms": 1000 * step_s, "samples_per_s": batch / step_s,
               "step_ms_min": 1000 * min(times[label]), "step_ms_max": 1000 * max(times[label]),
               "samples_per_s_best": batch / min(times[label]), "dense_matmul_gflop_s": dense / 1e9}
        if isinstance(stepper, Stepper):
            model = stepper.model
            flops = counted_flops(stepper)
            row.update(model_type=model.config.model_type, n_latents=model.config.n_latents,
                       counted_gflop_per_step=flops / 1e9, achieved_gflop_s=flops / step_s / 1e9,
                       fraction_of_dense=flops / step_s / dense)
        else:
            row.update(model_type="overcomplete_topk", n_latents=8 * d)
        rows.append(row)
        print(f"d={d:4d} {label:34s} {1000 * step_s:8.1f} ms/step {batch / step_s:10.0f} samples/s", flush=True)
    return rows


def overcomplete_python(path):
    """The overcomplete venv's python: the given one, else the one `benchmark_quality.py` creates."""
    if path:
        return path
    from benchmark_quality import overcomplete_python as create

    return str(create())


def run(options) -> dict:
    load_before, threads = os.getloadavg(), torch.get_num_threads()
    worker = None if options.no_overcomplete else PeerWorker(overcomplete_python(options.overcomplete_python), threads)
    try:
        rows = []
        for d in options.dims:
            rows += speed_rows(d, options.batch_size, options.steps, options.rounds, worker)
            rows.append({"model": "cedar_hf.train end to end (CEDAR cayley, memory-mapped)", "model_type": "cedar",
                         "d": d, "n_latents": d, "batch": options.batch_size,
                         "samples_per_s": end_to_end(d, options.batch_size, options.steps)})
        quality = None
        if options.quality_data:
            train_x, val_x = load_embeddings(options.quality_data, options.quality_val)
            trainers = build_trainers(train_x, val_x, worker, options.batch_size, options.quality_steps)
            quality = {"data": os.path.abspath(options.quality_data), "n_train": len(train_x), "n_val": len(val_x),
                       "d": train_x.shape[1], "eval_every": options.quality_eval_every, "batch": options.batch_size,
                       "rows": time_to_quality(trainers, options.quality_steps, options.quality_eval_every)}
    finally:
        if worker is not None:
            worker.close()
    return {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": threads,
                        "torch": torch.__version__, "load_average_before": load_before,
                        "load_average_after": os.getloadavg(), "uptime_after": _uptime()},
            "batch": options.batch_size, "timed_steps": options.steps, "rounds": options.rounds, "rows": rows,
            "goal": _goal(rows), "time_to_quality": quality}


def _uptime() -> str:
    try:
        return os.popen("uptime").read().strip()
    except OSError:
        return ""


GOALS = [  # (label, numerator, denominator, required ratio of samples/s at d = 768), from issue 18
    ("CEDAR (matrix_exp) vs our TopK SAE 8x", "CEDAR (matrix_exp)", "TopK SAE 8x, k=64", 4.0),
    ("CEDAR (cayley) vs our TopK SAE 8x", "CEDAR (cayley)", "TopK SAE 8x, k=64", 5.0),
    ("CEDAR (orthogonal, exp retraction) vs our TopK SAE 8x", "CEDAR (orthogonal, exp retraction)",
     "TopK SAE 8x, k=64", 4.0),
    ("CEDAR (orthogonal, cayley retraction) vs our TopK SAE 8x", "CEDAR (orthogonal, cayley retraction)",
     "TopK SAE 8x, k=64", 5.0),
    ("our TopK SAE 8x vs overcomplete's TopKSAE", "TopK SAE 8x, k=64", PEER, 1.5),
    ("CEDAR (matrix_exp) vs overcomplete's TopKSAE", "CEDAR (matrix_exp)", PEER, None),
    ("CEDAR (cayley) vs overcomplete's TopKSAE", "CEDAR (cayley)", PEER, None),
    ("CEDAR (matrix_exp) speed-up over before issue 18", "CEDAR (matrix_exp)", REFERENCES[0][0], None),
    ("TopK SAE speed-up over before issue 18", "TopK SAE 8x, k=64", REFERENCES[1][0], None),
]


def _goal(rows: list[dict]) -> dict:
    at = {r["model"]: r for r in rows if r["d"] == 768 and "step_ms" in r}
    goal = {}
    for label, top, bottom, required in GOALS:
        if top in at and bottom in at:
            median = at[top]["samples_per_s"] / at[bottom]["samples_per_s"]
            best = at[top]["samples_per_s_best"] / at[bottom]["samples_per_s_best"]
            goal[label] = {"ratio_median": median, "ratio_best": best, "required": required,
                           "met": None if required is None else median >= required}
    return goal


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Training speed (CPU)", "",
        f"{m['platform']}, {m['cpu_count']} cores, torch {m['torch']} with {m['torch_threads']} threads, fp32, "
        f"batch {result['batch']}, median of {result['timed_steps']} steps per model after 2 warm-up steps, "
        f"measured round-robin over {result['rounds']} rounds so every model sees the same machine load.",
        f"Load average before / after: {', '.join(f'{v:.2f}' for v in m['load_average_before'])} / "
        f"{', '.join(f'{v:.2f}' for v in m['load_average_after'])} (`{m['uptime_after']}`). Other jobs shared "
        "the machine when the load exceeds the core count: numbers are then pessimistic and noisier.", "",
        "| d | model | latents | ms / step (median) | ms / step (best) | samples / s (median) | counted GFLOP/s "
        "| dense matmul GFLOP/s | share of dense |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        step = f"{r['step_ms']:.1f} | {r['step_ms_min']:.1f}" if "step_ms" in r else "– | –"
        flops = (f"{r['achieved_gflop_s']:.1f} | {r['dense_matmul_gflop_s']:.1f} | {r['fraction_of_dense']:.0%}"
                 if "achieved_gflop_s" in r else "– | – | –")
        lines.append(f"| {r['d']} | {r['model']} | {r['n_latents']} | {step} | {r['samples_per_s']:.0f} | {flops} |")
    lines += ["", "Counted FLOPs are FlopCounterMode's matmul FLOPs of forward + backward + optimiser step: they include "
              "`expm_skew`'s matmuls but not `linalg.solve` (Cayley) nor the sparse kernels' `embedding_bag` "
              "(TopK SAE, CEDAR), so those shares are lower bounds; they are the useful work of the step, not a "
              "dense-equivalent. The dense reference is a `(B, D) @ (D, D)` matmul timed in every round.", ""]
    for label, g in result["goal"].items():
        verdict = "" if g["required"] is None else (f" (target ≥ {g['required']:g}×: "
                                                     + ("met" if g["met"] else "NOT met") + ")")
        lines.append(f"- {label} at d=768: {g['ratio_median']:.2f}× on median steps "
                     f"({g['ratio_best']:.2f}× on best steps){verdict}")
    if result.get("time_to_quality"):
        lines += [""] + quality_markdown(result["time_to_quality"])
    return "\n".join(lines) + "\n"


def quality_markdown(quality: dict) -> list[str]:
    lines = [
        f"## Time to quality (d = {quality['d']}, {quality['n_train']} training / {quality['n_val']} held-out rows)",
        "",
        f"`{os.path.basename(quality['data'])}`: MiniLM embeddings of WordNet glosses. All models trained "
        f"round-robin, {quality['eval_every']} steps at a time, batch {quality['batch']}, constant learning rate "
        "(CEDAR 1e-3 with the k curriculum over the first third of the steps, both TopK SAEs 5e-4); only training "
        "steps are timed. Held-out quality is the FVU at the model's k; \"time to 99%\" is the training time to "
        "the first evaluation with FVU ≤ final FVU / 0.99.", "",
        "| model | steps | final held-out FVU | final L0 | ms / step | time to 99% (s) | steps to 99% | "
        "training time (s) | at a plateau? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in quality["rows"]:
        lines.append(f"| {r['model']} | {r['steps']} | {r['final_fvu']:.4f} | {r['final_l0']:.1f} | "
                     f"{r['ms_per_step']:.1f} | {r['seconds_to_99']:.1f} | {r['steps_to_99']} | "
                     f"{r['train_seconds']:.1f} | {'yes' if _at_plateau(r['curve']) else 'no'} |")
    lines += ["", "\"At a plateau\": the FVU improved by < 1% over the last fifth of the run. Where it did not, "
              "the run was too short to converge and \"time to 99%\" is the time to 99% of a still-falling curve "
              "(a lower bound on the time to converge)."]
    return lines


def _at_plateau(curve: list[dict]) -> bool:
    earlier = curve[max(0, len(curve) - 1 - max(1, len(curve) // 5))]["fvu"]
    return earlier <= curve[-1]["fvu"] / 0.99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768], help="Embedding dimensions to time.")
    parser.add_argument("--batch-size", type=int, default=1024, help="Rows per training step (all models).")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per model (after 2 warm-up steps).")
    parser.add_argument("--rounds", type=int, default=5, help="Round-robin rounds the timed steps are spread over.")
    parser.add_argument("--overcomplete-python", default=None,
                        help="Python of a venv with overcomplete 0.3.0 (default: create benchmarks/cache/"
                             "overcomplete-venv as benchmark_quality.py does).")
    parser.add_argument("--no-overcomplete", action="store_true", help="Leave overcomplete's TopKSAE out.")
    parser.add_argument("--quality-data", default=None,
                        help="Embedding dataset folder for time-to-quality (e.g. benchmark_quality.py's "
                             "benchmarks/cache/wordnet_minilm_60000); unset: no time-to-quality section.")
    parser.add_argument("--quality-steps", type=int, default=1500, help="Training steps of each model there.")
    parser.add_argument("--quality-eval-every", type=int, default=50, help="Steps between held-out evaluations.")
    parser.add_argument("--quality-val", type=int, default=10000, help="Held-out rows.")
    parser.add_argument("--output", default=RESULTS, help="Folder for training_speed.json and training_speed.md.")
    parser.add_argument("--rewrite-markdown", action="store_true",
                        help="Only rewrite training_speed.md from the training_speed.json in --output.")
    options = parser.parse_args()
    if options.rewrite_markdown:
        with open(os.path.join(options.output, "training_speed.json")) as f:
            write_text(os.path.join(options.output, "training_speed.md"), markdown(json.load(f)))
        return
    result = run(options)
    os.makedirs(options.output, exist_ok=True)
    write_json(os.path.join(options.output, "training_speed.json"), result)
    table = markdown(result)
    write_text(os.path.join(options.output, "training_speed.md"), table)
    print(table)


if __name__ == "__main__":
    main()
