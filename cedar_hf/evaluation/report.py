"""Reports of an FVU-matched comparison: the paper's Table 1 as markdown, the JSON, and PNGs (K and IC vs FVU
as Pareto curves; CKNNA and LP vs FVU, like the paper's Figure 8). Each names the evaluation protocol (markdown
header line, JSON "protocol" object, PNG title and PNG text metadata "Description"). Every file is written
atomically (`cedar_hf.atomic`: a temporary file in the same folder, then `os.replace`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from .. import atomic

COLUMNS = (("K", "K ↓", 3), ("IC", "IC ↓", 2), ("CS", "CS ↑", 3), ("LP", "LP ↓", 3), ("LP_accuracy", "LP acc ↑", 3),
           ("CKNNA", "CKNNA ↑", 3), ("dead_latents", "dead", 0))


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if digits else str(int(value))


def _protocol_name(report: dict) -> str:
    return (report.get("protocol") or {}).get("name", "cedar-hf")


def protocol_line(report: dict) -> str:
    """One markdown line naming the protocol and its definitions."""
    protocol = report.get("protocol")
    if not protocol:
        return "Protocol: unrecorded (a report from before protocols were named)."
    d = protocol["definitions"]
    return (f"Protocol `{protocol['name']}` ({protocol['summary']}). FVU: {d['FVU']}. CS: {d['CS']}. "
            f"CKNNA: {d['CKNNA']}. LP: {d['LP']}.")


def markdown_table(report: dict) -> str:
    """Table 1: one block per target FVU, one row per model; a model that cannot reach a target says so (with
    the FVU range it covers). The first line names the protocol."""
    has_lp = any("LP" in row for m in report["models"].values() for row in m["matched"])
    columns = [c for c in COLUMNS if has_lp or not c[0].startswith("LP")]
    header = "| FVU | Model | " + " | ".join(c[1] for c in columns) + " | FVU reached | τ |"
    lines = [protocol_line(report), "", header, "|" + "---|" * (len(columns) + 4)]
    for target in report["targets"]:
        for name, model in report["models"].items():
            row = next(r for r in model["matched"] if r["target"] == target)
            if not row["reached"]:
                note = (f"cannot reach FVU {target:.2f} (FVU {row['min_fvu']:.3f} at best, "
                        f"{row.get('fvu_at_zero', row['min_fvu']):.3f} at τ = 0)")
                lines.append(f"| {target:.2f} | {name} | {note} |" + " |" * (len(columns) - 1) + " – | – |")
                continue
            cells = " | ".join(_cell(row.get(key), digits) for key, _, digits in columns)
            lines.append(f"| {target:.2f} | {name} | {cells} | {row['fvu']:.4f} | {row['tau']:.4g} |")
    if "probe_on_original" in report:
        original = report["probe_on_original"]
        lines += ["", f"LP of the same probe on the original embeddings: cross-entropy {original['cross_entropy']:.3f}, "
                      f"accuracy {original['accuracy']:.3f} (probe trained on {report.get('probe_trained_on', '?')})."]
    return "\n".join(lines)


def native_table(report: dict) -> str:
    """Each model at its own default sparsity (`model.reconstruct(x)`), before any thresholding."""
    variants = ("dataset", "msae-score", "msae-loss")
    lines = [f"Protocol `{_protocol_name(report)}` (FVU column: its variant; every variant by name beside it).", "",
             "| Model | n_latents | default k | FVU | " + " | ".join(f"FVU {v}" for v in variants)
             + " | K | IC | CS | CKNNA | dead |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, model in report["models"].items():
        n = model["native"]
        others = " | ".join(_cell(n.get("fvu_variants", {}).get(v), 4) for v in variants)
        lines.append(
            f"| {name} | {model['n_latents']} | {model['default_k']} | {n['fvu']:.4f} | {others}"
            f" | {n['K']:.2f} | {n['IC']:.2f} | {n['CS']:.3f} | {_cell(n['CKNNA'], 3)} | {n['dead_latents']} |"
        )
    return "\n".join(lines)


def write_text(text: str, path: str | Path) -> Path:
    """Write `text` to `path` atomically (`cedar_hf.atomic`)."""
    atomic.write_text(path, text)
    return Path(path)


def write_json(report: dict, path: str | Path) -> Path:
    return write_text(json.dumps(report, indent=1, default=float), path)


def _save_figure(fig, path: Path, report: dict) -> Path:
    protocol = report.get("protocol") or {}
    metadata = {"Title": path.stem, "Description": f"cedar-hf evaluation, protocol {_protocol_name(report)}: "
                + json.dumps(protocol.get("definitions", {}), ensure_ascii=False)}
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png", metadata=metadata)
    return path


def _pareto(points: list[dict], key: str) -> tuple[list[float], list[float]]:
    """Pareto front of `key` vs FVU: at each FVU f, the fewest codes (or least IC) any visited τ needed to reach
    an FVU ≤ f."""
    xs, ys, best = [], [], math.inf
    for p in sorted(points, key=lambda p: p["fvu"]):
        best = min(best, p[key])
        xs.append(p["fvu"])
        ys.append(best)
    return xs, ys


def _split_at_best_fvu(sweep: list) -> tuple[list, list]:
    """The threshold sweep in threshold order (fewest active codes first), cut where the FVU is lowest:
    `(line, past)`. Lowering the threshold past that point keeps more codes yet reconstructs worse (a TopK SAE's
    codes beyond its training k add error), so those points lie on a second branch at the same FVUs with a far
    higher IC; drawn as one line sorted by FVU, the two branches interleaved into spikes. `past` is drawn as
    markers."""
    ordered = sorted(sweep, key=lambda p: -p["tau"])
    best = min(range(len(ordered)), key=lambda i: ordered[i]["fvu"]) if ordered else -1
    return ordered[:best + 1], ordered[best + 1:]


def plot_report(report: dict, output_dir: str | Path, fvu_range: tuple[float, float] = (0.0, 0.8)) -> list[Path]:
    """Write `pareto_k_ic.png` (K and IC vs FVU) and `semantic_vs_fvu.png` (CKNNA and LP vs FVU). The IC panel
    draws each model's sweep as a line down to its lowest FVU and the thresholds below that as × markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    any_past = False
    for index, (name, model) in enumerate(report["models"].items()):
        color = _model_color(index, len(report["models"]), plt)
        sweep = sorted((p for p in model["sweep"] if fvu_range[0] <= p["fvu"] <= fvu_range[1]), key=lambda p: p["fvu"])
        reached = [r for r in model["matched"] if r["reached"]]
        if sweep:  # K: the Pareto front; IC is not monotone in k (C(n, k) peaks at n/2), so its raw sweep
            axes[0].plot(*_pareto(sweep, "K"), color=color, label=name)
            line, past = _split_at_best_fvu(sweep)
            axes[1].plot([p["fvu"] for p in line], [p["IC"] for p in line], color=color, label=name)
            axes[1].scatter([p["fvu"] for p in past], [p["IC"] for p in past], s=10, marker="x", color=color,
                            alpha=0.6, zorder=2)
            any_past = any_past or bool(past)
        for ax, key in zip(axes, ("K", "IC")):
            ax.scatter([r["fvu"] for r in reached], [r[key] for r in reached], s=22, color=color, zorder=3)
    fvu_label = f"FVU ({(report.get('protocol') or {}).get('fvu_variant', 'dataset')})"
    for ax, key, label in zip(axes, ("K", "IC"), ("K (mean non-zero codes)", "IC = mean ln C(n, k)")):
        ax.set_xlabel(fvu_label)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for target in report["targets"]:
            ax.axvline(target, color="grey", lw=0.6, ls=":")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    if any_past:
        marker = axes[1].scatter([], [], s=10, marker="x", color="grey", label="lower thresholds, higher FVU")
        axes[1].legend(handles=[marker], fontsize=8, loc="upper right")
    fig.suptitle(f"Sparsity vs reconstruction (lower-left is better) — protocol {_protocol_name(report)}")
    fig.tight_layout()
    paths.append(_save_figure(fig, output_dir / "pareto_k_ic.png", report))
    plt.close(fig)
    paths.append(_plot_semantic(report, output_dir / "semantic_vs_fvu.png", plt))
    return paths


def _model_color(index: int, count: int, plt):
    """One distinct colour a model: matplotlib's 10-colour cycle, or tab20 for more than 10 models (with the
    10-colour cycle the 11th model took the 1st one's colour)."""
    return f"C{index}" if count <= 10 else plt.get_cmap("tab20")(index % 20)


def _plot_semantic(report: dict, path: Path, plt) -> Path:
    keys = [("CKNNA", "CKNNA (k = %d) ↑" % report.get("cknna_k", 10))]
    if any("LP" in r for m in report["models"].values() for r in m["matched"]):
        keys.append(("LP", "LP cross-entropy ↓"))
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    for index, (name, model) in enumerate(report["models"].items()):
        rows = sorted((r for r in model["matched"] + model["curve"] if r["reached"]), key=lambda r: r["fvu"])
        for ax, (key, _) in zip(axes[0], keys):
            ax.plot([r["fvu"] for r in rows], [r.get(key) for r in rows], marker="o", ms=4, label=name,
                    color=_model_color(index, len(report["models"]), plt))
    for ax, (_, label) in zip(axes[0], keys):
        ax.set_xlabel(f"FVU ({(report.get('protocol') or {}).get('fvu_variant', 'dataset')})")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if "probe_on_original" in report and len(keys) > 1:
        axes[0][1].axhline(report["probe_on_original"]["cross_entropy"], color="black", lw=0.8, ls="--",
                           label="original embeddings")
        axes[0][1].legend(fontsize=8)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Semantic preservation vs reconstruction error (paper Fig. 8) — protocol {_protocol_name(report)}")
    fig.tight_layout()
    _save_figure(fig, path, report)
    plt.close(fig)
    return path


def write_report(report: dict, output_dir: str | Path, title: Optional[str] = None) -> dict:
    """Write `evaluation.json`, `table.md` and the PNGs into `output_dir`; returns their paths."""
    output_dir = Path(output_dir)
    json_path = write_json(report, output_dir / "evaluation.json")
    text = (f"# {title}\n\n" if title else "") + markdown_table(report) + "\n\nAt each model's default sparsity:\n\n"
    text += native_table(report) + "\n"
    md_path = write_text(text, output_dir / "table.md")
    pngs = plot_report(report, output_dir)
    return {"json": json_path, "markdown": md_path, "plots": pngs}


__all__ = ["markdown_table", "native_table", "plot_report", "protocol_line", "write_json", "write_report",
           "write_text"]
