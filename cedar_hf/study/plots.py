"""The paper's Figures 5–7 from the analysed answers (bar charts with Clopper–Pearson 95% intervals)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cedar_hf.interpret.vocabulary import save_figure

from .stats import binomial_ci, share_errors


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _figure5(r: dict, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    shares = np.array(r["shares"])
    colors = ["#1f5fa0", "#7fb1e0", "#bbbbbb", "#f0a8a0", "#c0392b"]
    ax.bar(range(5), shares, color=colors, yerr=share_errors(r["shares"], r["ci95"]), capsize=3)
    ax.set_xticks(range(5), [label.replace(" ", "\n", 1) for label in r["labels"]], fontsize=8)
    ax.set_ylabel("share of answers")
    ax.set_ylim(0, 1)
    p = r["sign_test"]["p"]
    ax.set_title(f"Study 1: method preference, {r['answers']} answers (sign test p = "
                 f"{'n/a' if p is None else f'{p:.3g}'})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def _grouped(distribution: dict, xlabels: list, title: str, xlabel: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    methods = list(distribution)
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        counts = np.array(distribution[m], dtype=float)
        n = counts.sum()
        shares = counts / n if n else counts
        ci = [binomial_ci(int(c), int(n)) for c in counts]
        ax.bar(np.arange(len(xlabels)) + (j - (len(methods) - 1) / 2) * width, shares, width, label=m,
               yerr=share_errors(shares, ci), capsize=2)
    ax.set_xticks(range(len(xlabels)), xlabels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of answers")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def plot_distribution(results: dict, output_dir: Path) -> list[str]:
    """Write one PNG per figure; returns their file names."""
    output_dir = Path(output_dir)
    written = []
    for r in results.get("study1", {}).values():
        written.append(_figure5(r, output_dir / f"figure5_{'-vs-'.join(r['methods'])}.png"))
    for r in results.get("study2", {}).values():
        per = r["per_method"]
        written.append(_grouped(r["distribution"], [str(v) for v in range(per + 1)],
                                f"Study 2: concepts selected per task, of {per} per method ({r['answers']} answers)",
                                f"number of the method's {per} concepts selected",
                                output_dir / f"figure6_{'-vs-'.join(r['methods'])}.png"))
    if "study3" in results:
        r = results["study3"]
        written.append(_grouped(r["distribution"], ["1 does not describe", "2 partially", "3 describes"],
                                f"Study 3: description quality ({r['answers']} answers)", "rating",
                                output_dir / "figure7.png"))
    return [p.name for p in written]


__all__ = ["plot_distribution"]
