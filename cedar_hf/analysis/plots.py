"""Matplotlib figures of the analyses (written by `cedar-hf analyze`). Each function saves one PNG and returns
its path; none opens a window (the Agg backend is used)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402

IMAGE_COLOR, TEXT_COLOR, NEUTRAL = "#d62728", "#1f77b4", "#7f7f7f"


def _save(fig, path) -> Path:
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a killed run never leaves a truncated figure
        fig.savefig(tmp, dpi=130, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def plot_energy(energy: np.ndarray, path, title: str = "Concept energy") -> Path:
    """Sorted energies (log scale) and the cumulative share held by the top-N concepts."""
    energy = np.sort(np.asarray(energy, dtype=np.float64))[::-1]
    share = np.cumsum(energy) / max(energy.sum(), np.finfo(float).tiny)
    ranks = np.arange(1, energy.size + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(ranks, np.where(energy > 0, energy, np.nan), color="#333333")
    left.set(xscale="log", yscale="log", xlabel="concept rank by energy", ylabel="energy  E|z_i|", title=title)
    left.grid(alpha=0.3, which="both")
    right.plot(ranks, share, color="#2ca02c")
    for target in (0.5, 0.9):
        n = int(np.searchsorted(share, target - 1e-12) + 1)
        right.axhline(target, color=NEUTRAL, lw=0.8, ls="--")
        right.annotate(f"{target:.0%} in top {n}", (n, target), textcoords="offset points", xytext=(-6, 6), ha="right")
    right.set(xscale="log", ylim=(0, 1.02), xlabel="top-N concepts", ylabel="share of total energy",
              title="Energy held by the top-N concepts")
    right.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_modality_histograms(hist: dict, path, names: Sequence[str] = ("image", "text")) -> Path:
    """The paper's Figure 4: modality-score histograms, plain counts (left) and energy-weighted (right)."""
    edges = np.asarray(hist["edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    colors = [plt.get_cmap("coolwarm")(c) for c in centers]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in zip(axes, ("counts", "energy_weighted"), ("number of concepts", "share of energy")):
        ax.bar(centers, hist[key], width=width * 0.95, color=colors, edgecolor="#333333", lw=0.4)
        ax.set(xlim=(0, 1), xlabel=f"modality score  (0 = {names[1]} only, 1 = {names[0]} only)", ylabel=label)
        ax.grid(alpha=0.3, axis="y")
    dead = hist.get("dead", 0)
    axes[0].set_title("Concepts by modality score" + (f" ({dead} never active, not shown)" if dead else ""))
    axes[1].set_title("Weighted by energy")
    return _save(fig, path)


def plot_accuracy_histograms(hist: dict, path) -> Path:
    """The paper's Figure 6: how well each concept direction classifies modality (0.5 = chance)."""
    edges = np.asarray(hist["edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    keys = [key for key in ("counts", "energy_weighted") if key in hist]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        ax.bar(centers, hist[key], width=width * 0.95, color="#9467bd", edgecolor="#333333", lw=0.4)
        ax.set(xlim=(0.5, 1), xlabel="balanced accuracy of the direction as modality classifier",
               ylabel="number of concepts" if key == "counts" else "share of energy",
               title="Concepts" if key == "counts" else "Weighted by energy")
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_stability_curves(curves: dict[str, dict[int, float]], path, chance: Optional[dict[int, float]] = None) -> Path:
    """The paper's Figure 2 (right): stability restricted to the top-N concepts by energy, one line per pair."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, curve in curves.items():
        ns = sorted(curve)
        ax.plot(ns, [curve[n] for n in ns], marker="o", ms=3, label=label)
    if chance:
        ns = sorted(chance)
        ax.plot(ns, [chance[n] for n in ns], color=NEUTRAL, ls="--", lw=0.9, label="random dictionaries (chance)")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="top-N concepts by energy", ylabel="stability (mean matched |cos|)",
           title="Stability vs N")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_bridge_pairs(bridge: dict, labels: Sequence[str], path, names=("image", "text"), top: int = 15) -> Path:
    """Bars of the strongest bridges: between two different concepts (left) and a concept with itself (right,
    concepts shared by both modalities), labelled `#i name → #j name`."""
    panels = [("top", f"Between concepts ({names[0]} side → {names[1]} side)"),
              ("top_shared", "Shared concepts (same on both sides)")]
    panels = [(key, title) for key, title in panels if bridge.get(key)]
    rows = max(len(bridge[key][:top]) for key, _ in panels) if panels else 1
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(7 * max(len(panels), 1), 0.3 * max(rows, 3) + 1.3),
                             squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        pairs = bridge[key][:top]
        def name(i: int) -> str:
            return f"#{i} {labels[i]}"

        text = [name(p["image_concept"]) + ("" if key == "top_shared" else f"  →  {name(p['text_concept'])}")
                for p in pairs]
        ax.barh(range(len(pairs)), [p["score"] for p in pairs], color="#ff7f0e" if key == "top" else "#8c564b",
                edgecolor="#333333", lw=0.4)
        ax.set_yticks(range(len(pairs)), text, fontsize=8)
        ax.invert_yaxis()
        ax.set(xlabel="bridge score  E[z_i z_j] · cos(a_i, a_j)", title=title)
        ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)
