"""Stability of two dictionaries (paper §3.3, §4): Hungarian matching of their atoms on cosine similarity.

`stability(A, B) = max_P (1/n) Σ_i cos(A_i, B_P(i))` over one-to-one matchings P (scipy's
`linear_sum_assignment`). By default the absolute cosine is used, so an atom and its negation count as the same
concept (CEDAR's codes are signed: flipping an atom flips its code). Restricting both dictionaries to their top-N
concepts by energy shows the paper's finding: high-energy concepts are stable, the low-energy tail is not.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .codes import directions_of, unit_rows
from .energy import default_ns, top_concepts


def atom_cosine(atoms_a, atoms_b, absolute: bool = False) -> np.ndarray:
    """Cosine similarity `(n_a, n_b)` between the atoms of two dictionaries (models or atom matrices)."""
    a, b = unit_rows(directions_of(atoms_a)), unit_rows(directions_of(atoms_b))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"atoms live in different spaces: d={a.shape[1]} vs d={b.shape[1]}")
    cosine = a @ b.T
    return np.abs(cosine) if absolute else cosine


def match_concepts(atoms_a, atoms_b, absolute: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one matching of the atoms of A to those of B. -> `(rows_a, cols_b, cosine of each match)`"""
    cosine = atom_cosine(atoms_a, atoms_b, absolute=absolute)
    rows, cols = linear_sum_assignment(cosine, maximize=True)
    return rows, cols, cosine[rows, cols]


def stability(
    atoms_a,
    atoms_b,
    energy_a: Optional[np.ndarray] = None,
    energy_b: Optional[np.ndarray] = None,
    top_n: Optional[int] = None,
    absolute: bool = True,
) -> float:
    """Mean matched cosine of two dictionaries; with `top_n`, of their `top_n` most energetic concepts each.

    Args:
        atoms_a, atoms_b: dictionaries (anything with `concept_directions`) or atom matrices `(n, d)`.
        energy_a, energy_b: per-concept energies (see `concept_energy`), needed with `top_n`.
        top_n: restrict each dictionary to its `top_n` concepts by energy before matching.
        absolute: match on |cos| (sign-free concepts, the default) or on signed cosine.
    """
    a, b = directions_of(atoms_a), directions_of(atoms_b)
    if top_n is not None:
        if energy_a is None or energy_b is None:
            raise ValueError("top_n needs energy_a and energy_b (see cedar_hf.analysis.concept_energy)")
        if len(energy_a) != a.shape[0] or len(energy_b) != b.shape[0]:
            raise ValueError(
                f"energies have lengths {len(energy_a)}, {len(energy_b)}; expected {a.shape[0]}, {b.shape[0]}"
            )
        a, b = a[top_concepts(energy_a, top_n)], b[top_concepts(energy_b, top_n)]
    _, _, matched = match_concepts(a, b, absolute=absolute)
    return float(matched.mean())


def stability_curve(
    atoms_a,
    atoms_b,
    energy_a: np.ndarray,
    energy_b: np.ndarray,
    ns: Optional[Sequence[int]] = None,
    absolute: bool = True,
) -> dict[int, float]:
    """`{N: stability restricted to the top-N concepts by energy}` (the paper's Figure 2, right)."""
    n_max = min(len(energy_a), len(energy_b))
    ns = default_ns(n_max) if ns is None else [int(n) for n in ns]
    bad = [n for n in ns if not 1 <= n <= n_max]
    if bad:
        raise ValueError(f"ns={bad} must be in [1, {n_max}]")
    return {n: stability(atoms_a, atoms_b, energy_a, energy_b, top_n=n, absolute=absolute) for n in ns}


def random_baseline(n_atoms: int, d: int, samples: int = 4, seed: int = 0, absolute: bool = True) -> float:
    """Stability of two independent random dictionaries of `n_atoms` Gaussian atoms in `d` dims: chance level."""
    rng = np.random.default_rng(seed)
    values = [
        stability(rng.standard_normal((n_atoms, d)), rng.standard_normal((n_atoms, d)), absolute=absolute)
        for _ in range(samples)
    ]
    return float(np.mean(values))
