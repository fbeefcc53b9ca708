"""Random SIGKILLs during training and during `cedar-hf name`: no broken folder, resume always works, and the
result equals an uninterrupted run's.

    python scripts/kill_test.py                       # 10 kills of each kind; JSON + markdown under benchmarks/results/
    python scripts/kill_test.py --trials 3 --keep /tmp/kills

How. Each worker is a subprocess whose file-system writes (open for writing, os.replace/rename, safetensors'
save_file, torch.save) are logged with a timestamp; after each write the worker pauses `--pause-ms` so a kill
can land between a file's creation and its data, or between two renames of one save. An uninterrupted
reference run gives the window from the first to the last write; each trial starts a fresh worker and sends
SIGKILL at a uniformly random moment of that window (the parent waits, the worker never sleeps to be killed).
After the kill every visible folder is checked (each `checkpoints/step-*` complete and loadable with
`load_dictionary`, the model folder loadable), then the same command is run again to the end and compared:

- training (a float64 CEDAR through `cedar_hf.train`, resumed with `resume_from_checkpoint="latest"` when a
  checkpoint exists): the final weights against the reference run's, max |difference| (float64: a missed or
  repeated step moves weights by ~lr = 3e-3, a reordered sum by ~1e-16);
- naming (`cedar-hf name -m MODEL -b minilm`, the offline MiniLM): the model folder loads after the kill, with
  the old (no) names or the new ones, never a mix that fails; the rerun's names equal the reference's and the
  weights are unchanged bit for bit.
"""

from __future__ import annotations

import argparse
import builtins
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


# ---- worker side --------------------------------------------------------------------------------------------
def install_write_log(path: str, pause_s: float) -> None:
    """Log every write event (`<monotonic time> <kind> <name>`) to `path`, pausing after each."""
    import safetensors.torch
    import torch

    log = open(path, "a", buffering=1)
    real_open, real_io_open = builtins.open, io.open

    def note(kind, name):
        log.write(f"{time.monotonic():.6f} {kind} {os.path.basename(str(name))}\n")

    def opener(real):
        def patched(file, mode="r", *args, **kwargs):
            handle = real(file, mode, *args, **kwargs)
            if any(c in mode for c in "wax+") and not isinstance(file, int):
                note("open", file)
                time.sleep(pause_s)  # the file exists, its data is not written yet
            return handle
        return patched

    def after(real, kind, index=0):
        def patched(*args, **kwargs):
            result = real(*args, **kwargs)
            note(kind, args[index] if len(args) > index else "?")
            time.sleep(pause_s)
            return result
        return patched

    builtins.open, io.open = opener(real_open), opener(real_io_open)
    os.replace, os.rename = after(os.replace, "replace", 1), after(os.rename, "rename", 1)
    safetensors.torch.save_file = after(safetensors.torch.save_file, "save_file", 1)
    torch.save = after(torch.save, "torch_save", 1)


def fresh_cedar(d: int, k: int):
    import torch

    import cedar_hf

    torch.manual_seed(0)
    return cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=d, k=k, init_std=0.1, parametrization="cayley")).double()


def worker_train(folder: str, data: str) -> None:
    from cedar_hf.training import TrainingArgs, train
    from cedar_hf.training.checkpoint import list_checkpoints

    resume = "latest" if list_checkpoints(folder, complete_only=True) else None
    args = TrainingArgs(output_dir=folder, batch_size=256, max_steps=240, save_steps=20, save_total_limit=3,
                        curriculum_steps=60, learning_rate=3e-3, seed=7, report_to="none", disable_tqdm=True,
                        resume_from_checkpoint=resume)
    train(fresh_cedar(32, 4), data, args)  # a matching model is kept (float64); its weights come from the checkpoint


def worker_name(model: str, vocabulary_size: int) -> None:
    from cedar_hf.cli import app

    app(["name", "-m", model, "-b", "minilm", "--vocabulary-size", str(vocabulary_size), "-n", "0"],
        standalone_mode=False)


# ---- parent side --------------------------------------------------------------------------------------------
def run_worker(kind: str, argv: list[str], events: Path, pause_ms: float, kill_at: float | None = None):
    """Run a worker; SIGKILL it `kill_at` seconds after its first write when given. Returns (returncode, log)."""
    events.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "--worker", kind, "--events", str(events), "--pause-ms", str(pause_ms), *argv]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_at is not None:
        while process.poll() is None and not (events.exists() and events.stat().st_size):
            time.sleep(0.005)  # the window is measured from the first write: import time varies between runs
        first = float(events.read_text().split()[0]) if events.exists() and events.stat().st_size else None
        while process.poll() is None and first is not None and time.monotonic() < first + kill_at:
            time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
    _, err = process.communicate()
    lines = events.read_text().splitlines() if events.exists() else []
    if kill_at is None and process.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{err.decode()[-3000:]}")
    return process.returncode, lines


def window(lines: list[str]) -> float:
    times = [float(line.split()[0]) for line in lines]
    return times[-1] - times[0]


def broken_folders(folder: Path) -> list[str]:
    """Folders a reader would see that are not loadable: an incomplete step-*, a model folder that fails."""
    from cedar_hf.auto import load_dictionary
    from cedar_hf.training.checkpoint import list_checkpoints, missing_files

    broken = []
    for checkpoint in list_checkpoints(str(folder)):
        try:
            assert not missing_files(checkpoint), missing_files(checkpoint)
            load_dictionary(checkpoint)
        except Exception as err:  # noqa: BLE001 - every failure is a finding
            broken.append(f"{checkpoint}: {type(err).__name__}: {err}")
    if (folder / "config.json").exists() or (folder / "model.safetensors").exists():
        try:
            load_dictionary(folder)
        except Exception as err:  # noqa: BLE001
            broken.append(f"{folder}: {type(err).__name__}: {err}")
    return broken


def state_of(folder: Path) -> str:
    """What a reader finds after the kill: the complete checkpoints, and the model folder named or not."""
    from cedar_hf.auto import load_dictionary
    from cedar_hf.training.checkpoint import list_checkpoints

    steps = [Path(c).name.split("-")[1].lstrip("0") for c in list_checkpoints(str(folder), complete_only=True)]
    parts = [f"checkpoints {','.join(steps)}"] if steps else []
    if (folder / "config.json").exists():
        try:
            named = load_dictionary(folder).concept_names is not None
            parts.append("model named" if named else "model unnamed")
        except Exception as err:  # noqa: BLE001 - reported as broken by broken_folders
            parts.append(f"model unloadable ({type(err).__name__})")
    if (folder / "metrics.json").exists():
        parts.append("finished")
    return "; ".join(parts) or "empty"


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def make_training_data(root: Path) -> str:
    import datasets
    import torch

    g = torch.Generator().manual_seed(3)
    atoms = torch.linalg.qr(torch.randn(32, 32, generator=g))[0]
    codes = torch.zeros(4096, 32).scatter(-1, torch.rand(4096, 32, generator=g).argsort(-1)[:, :4],
                                          1 + 2 * torch.rand(4096, 4, generator=g))
    z = codes @ atoms + torch.randn(32, generator=g)
    path = root / "train-data"
    datasets.Dataset.from_dict({"embedding": z.numpy(), "id": [f"r{i}" for i in range(len(z))]}).save_to_disk(str(path))
    return str(path)


def trial_loop(kind, trials, rng, root: Path, argv_for, folder_for, setup, check, pause_ms) -> list[dict]:
    reference_folder = folder_for("reference")
    setup(reference_folder)
    _, lines = run_worker(kind, argv_for(reference_folder), root / "events-ref", pause_ms)
    span = window(lines)
    results = []
    for trial in range(trials):
        folder = folder_for(f"trial-{trial}")
        setup(folder)
        at = rng.uniform(0.0, span)
        code, seen = run_worker(kind, argv_for(folder), root / f"events-{trial}", pause_ms, kill_at=at)
        killed = code == -signal.SIGKILL
        broken = broken_folders(folder)
        after_kill = state_of(folder)
        rerun_code, _ = run_worker(kind, argv_for(folder), root / f"events-{trial}-rerun", pause_ms)
        leftovers = [str(p.relative_to(folder)) for p in folder.rglob(".tmp-*")]
        result = {"trial": trial, "kill_after_first_write_s": round(at, 3), "killed": killed,
                  "writes_before_kill": len(seen), "last_write_before_kill": seen[-1].split(" ", 1)[1] if seen else None,
                  "broken_folders": broken, "state_after_kill": after_kill, "rerun_exit_code": rerun_code,
                  "temporaries_left_after_rerun": leftovers, **check(folder, reference_folder)}
        results.append(result)
        print(json.dumps(result), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="SIGKILLs of each kind (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--pause-ms", type=float, default=20.0, help="pause after each write (default 20)")
    parser.add_argument("--vocabulary-size", type=int, default=1000, help="words named by the MiniLM (default 1000)")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the folders (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS / "kill_test.json", help="JSON result (and .md)")
    parser.add_argument("--worker", choices=["train", "name"], help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        install_write_log(args.events, args.pause_ms / 1000)
        worker_train(*args.rest) if args.worker == "train" else worker_name(args.rest[0], args.vocabulary_size)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="cedar-kill-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    started = time.time()
    report = {"command": " ".join(sys.argv), "load_average_before": os.getloadavg(), "trials": args.trials,
              "pause_ms": args.pause_ms}
    report["training"] = run_training_trials(args, rng, root)
    report["naming"] = run_naming_trials(args, rng, root)
    report["load_average_after"] = os.getloadavg()
    report["wall_time_s"] = round(time.time() - started, 1)
    report["summary"] = {kind: summarize(report[kind]) for kind in ("training", "naming")}
    write_report(report, args.output)
    print(json.dumps(report["summary"], indent=1))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


def run_training_trials(args, rng, root: Path) -> list[dict]:
    data = make_training_data(root)

    def check(folder: Path, reference: Path) -> dict:
        mine, ref = weights(folder), weights(reference)
        diff = max(float((mine[key] - ref[key]).abs().max()) for key in ref)
        metrics = json.loads((folder / "metrics.json").read_text())
        return {"max_abs_weight_diff": diff, "equal_to_reference": diff <= 1e-10 and mine.keys() == ref.keys(),
                "final_step": metrics["step"]}

    return trial_loop("train", args.trials, rng, root, lambda folder: [str(folder), data],
                      lambda name: root / "train" / name, lambda folder: None, check, args.pause_ms)


def run_naming_trials(args, rng, root: Path) -> list[dict]:
    import torch

    original = root / "name-original"
    model = fresh_cedar(384, 10).float()  # the MiniLM's 384-d space; a random rotation names fine
    model.save_pretrained(original)
    original_weights = weights(original)

    def setup(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(original, folder)

    def check(folder: Path, reference: Path) -> dict:
        from cedar_hf.auto import load_dictionary

        names = json.loads((folder / "concept_names.json").read_text())["names"]
        ref = json.loads((reference / "concept_names.json").read_text())["names"]
        same_weights = all(torch.equal(weights(folder)[k], v) for k, v in original_weights.items())
        loaded = load_dictionary(folder)
        return {"names_equal_to_reference": [e["name"] for e in names] == [e["name"] for e in ref],
                "weights_unchanged": same_weights, "equal_to_reference": same_weights and names == ref,
                "labels_loaded": loaded.concept_labels[:3]}

    return trial_loop("name", args.trials, rng, root,
                      lambda folder: [str(folder), "--vocabulary-size", str(args.vocabulary_size)],
                      lambda name: root / "name" / name, setup, check, args.pause_ms)


def summarize(results: list[dict]) -> dict:
    return {"trials": len(results), "killed": sum(r["killed"] for r in results),
            "broken_folders": sum(len(r["broken_folders"]) for r in results),
            "resume_failed": sum(r["rerun_exit_code"] != 0 for r in results),
            "equal_to_uninterrupted": sum(bool(r["equal_to_reference"]) for r in results),
            "temporaries_left": sum(len(r["temporaries_left_after_rerun"]) for r in results),
            "max_abs_weight_diff": max((r.get("max_abs_weight_diff", 0.0) for r in results), default=0.0)}


def write_report(report: dict, output: Path) -> None:
    from cedar_hf.atomic import write_json, write_text

    write_json(output, report)
    lines = [f"# Kill test ({report['trials']} random SIGKILLs of each kind)", "",
             f"`{report['command']}` — load average {report['load_average_before'][0]:.2f} before, "
             f"{report['load_average_after'][0]:.2f} after; {report['wall_time_s']} s.", "",
             "| | killed | broken folders | resume failed | equal to uninterrupted | max abs weight diff | "
             "temporaries left |", "|---|---|---|---|---|---|---|"]
    for kind, s in report["summary"].items():
        lines.append(f"| {kind} | {s['killed']}/{s['trials']} | {s['broken_folders']} | {s['resume_failed']} | "
                     f"{s['equal_to_uninterrupted']}/{s['trials']} | {s['max_abs_weight_diff']:.3g} | "
                     f"{s['temporaries_left']} |")
    lines += ["", "| kind | trial | kill after first write (s) | writes before | last write before the kill | "
              "found after the kill |", "|---|---|---|---|---|---|"]
    for kind in ("training", "naming"):
        for r in report[kind]:
            lines.append(f"| {kind} | {r['trial']} | {r['kill_after_first_write_s']} | {r['writes_before_kill']} | "
                         f"{r['last_write_before_kill']} | {r['state_after_kill']} |")
    write_text(output.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
