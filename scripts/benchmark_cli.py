"""How long `cedar-hf --help` takes, and where the time goes: `import cedar_hf` (the Auto-class registration, which
needs torch and transformers) vs what the CLI adds (building every command's options and printing the help).

Each measurement is a fresh interpreter (`python -c`), repeated; the table gives the median and the load average
(`os.getloadavg`) at the start, since the machine is shared. Writes benchmarks/results/cli_startup.{json,md}.

    python scripts/benchmark_cli.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import sys, time\n"
    "t0 = time.perf_counter()\n"
    "import cedar_hf\n"
    "t1 = time.perf_counter()\n"
    "base = set(sys.modules)\n"
    "from cedar_hf.cli import app\n"
    "for args in ({args}):\n"
    "    try:\n"
    "        app(list(args), prog_name='cedar-hf', standalone_mode=True)\n"
    "    except SystemExit:\n"
    "        pass\n"
    "t2 = time.perf_counter()\n"
    "print('RESULT', t1 - t0, t2 - t1, 'torch' in base, len(set(sys.modules) - base), file=sys.stderr)\n"
)
CASES = {"cedar-hf --help": "(['--help'],)", "cedar-hf train --help": "(['train', '--help'],)",
         "cedar-hf --version": "(['--version'],)"}


def measure(args: str) -> tuple[float, float, float, bool, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", PROBE.format(args=args)]
    import time

    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    fields = next(line for line in out.stderr.splitlines() if line.startswith("RESULT")).split()
    return wall, float(fields[1]), float(fields[2]), fields[3] == "True", int(fields[4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="Fresh interpreters per case (median reported).")
    parser.add_argument("--output-dir", "-o", type=Path, default=ROOT / "benchmarks" / "results")
    options = parser.parse_args()
    load = os.getloadavg()[0]
    rows = {}
    for name, args in CASES.items():
        runs = [measure(args) for _ in range(options.repeats)]
        rows[name] = {"wall_s": statistics.median(r[0] for r in runs),
                      "import_cedar_hf_s": statistics.median(r[1] for r in runs),
                      "cli_s": statistics.median(r[2] for r in runs),
                      "torch_loaded_by_import_cedar_hf": runs[0][3], "modules_added_by_cli": runs[0][4]}
    result = {"load_average_1min": load, "repeats": options.repeats, "python": sys.version.split()[0], "rows": rows}
    lines = [f"# `cedar-hf` start-up (median of {options.repeats} fresh interpreters; load average {load:.2f})", "",
             "| command | wall (s) | `import cedar_hf` (s) | CLI: build + print (s) | modules the CLI adds |",
             "|---|---|---|---|---|"]
    lines += [f"| `{name}` | {r['wall_s']:.2f} | {r['import_cedar_hf_s']:.2f} | {r['cli_s']:.2f} | "
              f"{r['modules_added_by_cli']} |" for name, r in rows.items()]
    lines += ["", "`import cedar_hf` registers the dictionaries with transformers' Auto classes, which imports torch "
              "and transformers (transformers 5's PretrainedConfig imports torch); the CLI itself loads no backbone, "
              "dataset, evaluation or interpretation code at help time (tests/test_cli.py asserts it)."]
    sys.path.insert(0, str(ROOT))
    from cedar_hf.atomic import write_json, write_text

    options.output_dir.mkdir(parents=True, exist_ok=True)
    write_json(options.output_dir / "cli_startup.json", result)
    write_text(options.output_dir / "cli_startup.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
