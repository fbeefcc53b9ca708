"""Energy of each concept (paper §3.3): its mean activation strength over a dataset, `E_x[|z_i(x)|]`.

The absolute value makes the definition hold for CEDAR's signed codes and the SAEs' non-negative codes alike.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import scipy.sparse as sp


def concept_energy(codes) -> np.ndarray:
    """Mean |code| per concept over the rows of `codes` `(N, n_latents)` (dense or sparse). -> `(n_latents,)`"""
    if sp.issparse(codes):
        if codes.shape[0] == 0:
            raise ValueError("codes have no rows: energy needs at least one embedding")
        return np.asarray(abs(codes).mean(axis=0), dtype=np.float64).ravel()
    codes = np.asarray(codes.detach().cpu() if hasattr(codes, "detach") else codes, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must be a non-empty (N, n_latents) matrix, got shape {codes.shape}")
    return np.abs(codes).mean(axis=0)


def top_concepts(energy: np.ndarray, n: Optional[int] = None) -> np.ndarray:
    """Indices of the `n` most energetic concepts, most energetic first (all of them when n is None)."""
    energy = np.asarray(energy, dtype=np.float64)
    if n is not None and not 1 <= n <= energy.size:
        raise ValueError(f"n={n} must be in [1, n_latents={energy.size}]")
    order = np.argsort(-energy, kind="stable")
    return order if n is None else order[:n]


def energy_share(energy: np.ndarray, n: int) -> float:
    """Share of the total energy held by the top-`n` concepts."""
    energy = np.asarray(energy, dtype=np.float64)
    total = energy.sum()
    if total <= 0:
        raise ValueError("total energy is zero: every code is zero on this dataset")
    return float(energy[top_concepts(energy, n)].sum() / total)


def energy_share_curve(energy: np.ndarray, ns: Optional[Sequence[int]] = None) -> dict[int, float]:
    """`{n: energy_share(energy, n)}` for each n (default: powers of two up to n_latents, and n_latents)."""
    energy = np.asarray(energy, dtype=np.float64)
    if ns is None:
        ns = default_ns(energy.size)
    cumulative = np.cumsum(np.sort(energy)[::-1]) / max(energy.sum(), np.finfo(float).tiny)
    return {int(n): float(cumulative[int(n) - 1]) for n in ns if 1 <= int(n) <= energy.size}


def concepts_for_share(energy: np.ndarray, share: float = 0.9) -> int:
    """Fewest top concepts holding at least `share` of the total energy."""
    if not 0 < share <= 1:
        raise ValueError(f"share={share} must be in (0, 1]")
    energy = np.asarray(energy, dtype=np.float64)
    cumulative = np.cumsum(np.sort(energy)[::-1]) / max(energy.sum(), np.finfo(float).tiny)
    return int(min(np.searchsorted(cumulative, share - 1e-12) + 1, energy.size))


def default_ns(n_latents: int) -> list[int]:
    """Powers of two from 1 up to n_latents, plus n_latents itself: the x axis of energy and stability curves."""
    ns = [2**p for p in range(int(np.log2(max(n_latents, 1))) + 1)]
    return sorted(set(ns + [n_latents]))
