"""Modality of concepts (paper §3.3, §5): which modality a concept fires for, and whether its direction
separates the modalities.

modality score  m_i = E_img[|z_i|] / (E_img[|z_i|] + E_txt[|z_i|])  — 1: image only, 0: text only (NaN when the
concept never fires). The absolute value matches `concept_energy`, so CEDAR's signed codes are handled.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .codes import directions_of, unit_rows
from .energy import concept_energy


def modality_scores(codes_image, codes_text) -> np.ndarray:
    """Per-concept modality score from the codes of image rows and of text rows. -> `(n_latents,)`, NaN if dead."""
    e_image, e_text = concept_energy(codes_image), concept_energy(codes_text)
    if e_image.shape != e_text.shape:
        raise ValueError(f"image and text codes have {e_image.size} and {e_text.size} latents")
    total = e_image + e_text
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, e_image / np.where(total > 0, total, 1.0), np.nan)


def modality_histograms(scores: np.ndarray, energy: np.ndarray, bins: int = 20) -> dict:
    """Histogram of modality scores over [0, 1]: plain counts and energy-weighted shares (the paper's Figure 4).

    Returns `{"edges", "counts", "energy_weighted", "dead"}`; concepts with NaN score (never active) are counted
    in `dead` and left out.
    """
    if bins < 1:
        raise ValueError(f"bins={bins} must be >= 1")
    scores, energy = np.asarray(scores, dtype=np.float64), np.asarray(energy, dtype=np.float64)
    if scores.shape != energy.shape:
        raise ValueError(f"scores {scores.shape} and energy {energy.shape} must have the same shape")
    alive = np.isfinite(scores)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(scores[alive], bins=edges)
    weighted, _ = np.histogram(scores[alive], bins=edges, weights=energy[alive])
    weighted = weighted / max(weighted.sum(), np.finfo(float).tiny)
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(int).tolist(),
        "energy_weighted": weighted.tolist(),
        "dead": int((~alive).sum()),
    }


def _best_split_accuracy(projections: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Best balanced accuracy of a threshold on each column of `projections` `(N, m)`, either polarity. -> `(m,)`"""
    values, order = projections.sort(dim=0)
    sorted_labels = labels[order].double()  # (N, m), 1 = first modality
    n_pos, n_neg = labels.sum().double(), (~labels).sum().double()
    below_pos = torch.cat([torch.zeros_like(sorted_labels[:1]), sorted_labels.cumsum(0)])  # (N + 1, m)
    below = torch.arange(values.shape[0] + 1, dtype=torch.float64).unsqueeze(1)
    # predict "first modality" above the threshold: true positives above, true negatives below
    balanced = 0.5 * ((n_pos - below_pos) / n_pos + (below - below_pos) / n_neg)
    # a threshold can only fall between distinct values (and below/above all of them)
    valid = torch.ones_like(balanced, dtype=torch.bool)
    valid[1:-1] = values[1:] > values[:-1]
    balanced = torch.where(valid, balanced, torch.full_like(balanced, 0.5))
    return torch.maximum(balanced, 1 - balanced).max(dim=0).values


@torch.no_grad()
def modality_classifier_accuracy(
    embeddings, is_image, directions, block_size: int = 256, progress: bool = True
) -> np.ndarray:
    """How well each concept direction alone separates the modalities (paper Figure 6).

    Each embedding is projected on the unit concept direction and the best threshold (either polarity) is chosen;
    the score is its balanced accuracy (mean of per-modality accuracies), so chance is 0.5 whatever the mix.

    Args:
        embeddings: `(N, d)` embeddings (tensor or array).
        is_image: `(N,)` booleans, True for rows of the first modality.
        directions: a dictionary (its `concept_directions`) or an atom matrix `(n_latents, d)`.
        block_size: concepts scored at once (memory is N × block_size).
    -> `(n_latents,)` accuracies in [0.5, 1].
    """
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    labels = torch.as_tensor(np.asarray(is_image, dtype=bool))
    if x.dim() != 2 or labels.shape != (x.shape[0],):
        raise ValueError(f"embeddings {tuple(x.shape)} must be (N, d) with one label each, got {tuple(labels.shape)}")
    if labels.all() or not labels.any():
        raise ValueError("modality classification needs rows of both modalities")
    atoms = torch.as_tensor(unit_rows(directions_of(directions)), dtype=torch.float32)
    if atoms.shape[1] != x.shape[1]:
        raise ValueError(f"directions have d={atoms.shape[1]}, embeddings d={x.shape[1]}")
    scores = []
    for start in tqdm(range(0, atoms.shape[0], block_size), desc="modality classifiers", disable=not progress):
        scores.append(_best_split_accuracy(x @ atoms[start : start + block_size].T, labels))
    return torch.cat(scores).numpy()


def accuracy_histograms(accuracy: np.ndarray, energy: Optional[np.ndarray] = None, bins: int = 20) -> dict:
    """Histogram of classifier accuracies over [0.5, 1], plain and (with `energy`) energy-weighted."""
    edges = np.linspace(0.5, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(accuracy, 0.5, 1.0), bins=edges)
    result = {"edges": edges.tolist(), "counts": counts.astype(int).tolist()}
    if energy is not None:
        weighted, _ = np.histogram(np.clip(accuracy, 0.5, 1.0), bins=edges, weights=energy)
        result["energy_weighted"] = (weighted / max(weighted.sum(), np.finfo(float).tiny)).tolist()
    return result
