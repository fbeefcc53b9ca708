"""Bridge matrix (paper §3.3, Eq. 6): which concept pairs tie aligned images and texts together.

    B = E_{(img, txt) pairs}[ z_img z_txtᵀ ] ⊙ cos(atoms_i, atoms_j)            (n_latents, n_latents)

B_ij is large when concept i fires on an image while concept j fires on its caption AND their directions point
the same way. Since Σ_ij z_i z_j ⟨a_i, a_j⟩ = ⟨x̂_img, x̂_txt⟩ for unit atoms, B splits the image–text alignment
into concept pairs. Codes keep their sign (flipping an atom flips its code and its cosines, so B is unchanged).
Everything is computed in row blocks, so a 6144-latent dictionary never needs more than block × n_latents floats.

Orthogonal dictionaries (CEDAR: the rows of a rotation). There `cos(atoms_i, atoms_j) = 0` for i ≠ j, so B is
diagonal by construction and its off-diagonal "partners" are float noise (~1e-11). What is left to say is on the
diagonal: **the same axis co-active across aligned pairs**,

    S_i = B_ii = E_{(img, txt) pairs}[ z_img,i · z_txt,i ]                                  (n_latents,)

(positive when the axis fires with the same sign on an image and on its caption: the concept bridges the
modalities by itself). For related concepts the explorer then shows **co-activation partners**,
`max(E[z_img,i z_txt,j], E[z_img,j z_txt,i])` without the cosine factor (it would zero them), and says so.
`bridge_definition(atoms)` tells which applies.
"""

from __future__ import annotations

import heapq

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from .codes import directions_of, unit_rows


def _check(codes_image, codes_text, atoms) -> tuple[sp.csc_matrix, sp.csr_matrix, np.ndarray]:
    codes_image = sp.csc_matrix(codes_image, dtype=np.float64)
    codes_text = sp.csr_matrix(codes_text, dtype=np.float64)
    units = unit_rows(directions_of(atoms))
    if codes_image.shape != codes_text.shape:
        raise ValueError(f"paired codes must have the same shape, got {codes_image.shape} and {codes_text.shape}")
    if codes_image.shape[0] == 0:
        raise ValueError("no pairs: the bridge matrix needs at least one aligned (image, text) pair")
    if codes_image.shape[1] != units.shape[0]:
        raise ValueError(f"codes have {codes_image.shape[1]} latents, the dictionary {units.shape[0]}")
    return codes_image, codes_text, units


def _bridge_blocks(codes_image, codes_text, atoms, block_size: int, progress: bool, desc: str = "bridge"):
    """Yield `(start, B[start:start + block])` row blocks of the bridge matrix."""
    codes_image, codes_text, units = _check(codes_image, codes_text, atoms)
    n_pairs, n = codes_image.shape
    for start in tqdm(range(0, n, block_size), desc=desc, disable=not progress):
        stop = min(start + block_size, n)
        coactivation = (codes_image[:, start:stop].T @ codes_text).toarray() / n_pairs  # (block, n)
        yield start, coactivation * (units[start:stop] @ units.T)


def bridge_matrix(codes_image, codes_text, atoms, block_size: int = 1024, progress: bool = False) -> np.ndarray:
    """The full bridge matrix `(n_latents, n_latents)`: rows index image-side concepts, columns text-side ones.

    Args:
        codes_image, codes_text: codes `(P, n_latents)` of the image and the text of each of P aligned pairs
            (row p of both is one pair); dense or scipy sparse.
        atoms: the dictionary (its `concept_directions`) or an atom matrix `(n_latents, d)`.
    For large dictionaries prefer `top_bridge_pairs` / `bridge_partners`, which never hold the whole matrix.
    """
    n = np.shape(codes_image)[1]
    result = np.empty((n, n))
    for start, block in _bridge_blocks(codes_image, codes_text, atoms, block_size, progress):
        result[start : start + block.shape[0]] = block
    return result


def top_bridge_pairs(
    codes_image, codes_text, atoms, top: int = 20, block_size: int = 512, include_self: bool = False, progress=True
) -> list[dict]:
    """The `top` largest entries of the bridge matrix, strongest first: `[{"image_concept", "text_concept",
    "score"}, ...]`. `include_self=False` leaves out the diagonal (a concept bridging with itself)."""
    if top < 1:
        raise ValueError(f"top={top} must be >= 1")
    heap: list[tuple[float, int, int]] = []
    for start, block in _bridge_blocks(codes_image, codes_text, atoms, block_size, progress):
        if not include_self:
            rows = np.arange(block.shape[0])
            block[rows, start + rows] = -np.inf
        flat = block.ravel()
        take = min(top, flat.size)
        for index in np.argpartition(-flat, take - 1)[:take]:
            if np.isfinite(flat[index]):
                item = (float(flat[index]), start + index // block.shape[1], int(index % block.shape[1]))
                heapq.heappush(heap, item) if len(heap) < top else heapq.heappushpop(heap, item)
    return [
        {"image_concept": int(i), "text_concept": int(j), "score": score}
        for score, i, j in sorted(heap, key=lambda item: -item[0])
    ]


def bridge_partners(
    codes_image, codes_text, atoms, per_concept: int = 5, block_size: int = 512, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Each concept's strongest bridge partners, on either side: `max(B_ij, B_ji)` for every other concept j.

    -> `(partners (n, per_concept) int, scores (n, per_concept) float)`, strongest first.
    """
    n = np.shape(codes_image)[1]
    per_concept = min(per_concept, n - 1)
    if per_concept < 1:
        raise ValueError("bridge partners need a dictionary of at least two concepts")
    partners, scores = np.zeros((n, per_concept), dtype=int), np.zeros((n, per_concept))
    blocks_ij = _bridge_blocks(codes_image, codes_text, atoms, block_size, progress, desc="bridge partners")
    blocks_ji = _bridge_blocks(codes_text, codes_image, atoms, block_size, False)  # rows of Bᵀ
    for (start, b_ij), (_, b_ji) in zip(blocks_ij, blocks_ji):
        both = np.maximum(b_ij, b_ji)
        rows = np.arange(both.shape[0])
        both[rows, start + rows] = -np.inf
        best = np.argpartition(-both, per_concept - 1, axis=1)[:, :per_concept]
        best_scores = np.take_along_axis(both, best, axis=1)
        order = np.argsort(-best_scores, axis=1)
        partners[start : start + both.shape[0]] = np.take_along_axis(best, order, axis=1)
        scores[start : start + both.shape[0]] = np.take_along_axis(best_scores, order, axis=1)
    return partners, scores


ORTHOGONAL = "co-activation"  # orthogonal atoms: same-axis bridge S_i, partners by co-activation without the cosine
GENERAL = "bridge"  # Eq. 6 with the cosine


def is_orthogonal(atoms, tolerance: float = 1e-4) -> bool:
    """True when the (unit) atoms are mutually orthogonal to `tolerance` (|cos| off the diagonal), e.g. CEDAR."""
    units = unit_rows(directions_of(atoms))
    if units.shape[0] < 2 or units.shape[0] > units.shape[1]:
        return False  # more atoms than dimensions cannot all be orthogonal
    gram = units @ units.T
    np.fill_diagonal(gram, 0.0)
    return bool(np.abs(gram).max() <= tolerance)


def bridge_definition(atoms) -> str:
    """`"co-activation"` for orthogonal atoms (see the module docstring), else `"bridge"` (Eq. 6)."""
    return ORTHOGONAL if is_orthogonal(atoms) else GENERAL


def same_axis_bridge(codes_image, codes_text) -> np.ndarray:
    """`S_i = E_pairs[z_img,i · z_txt,i]`: each concept co-active with itself across aligned pairs. (n,)"""
    a, b = sp.csr_matrix(codes_image, dtype=np.float64), sp.csr_matrix(codes_text, dtype=np.float64)
    if a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"paired codes must have the same, non-empty shape, got {a.shape} and {b.shape}")
    return np.asarray(a.multiply(b).sum(0)).ravel() / a.shape[0]


def coactivation_partners(codes_image, codes_text, per_concept: int = 5, block_size: int = 512,
                          progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Each concept's strongest co-activation partners across pairs: `max(C_ij, C_ji)` with `C = E[z_img z_txtᵀ]`
    (no cosine factor), the diagonal excluded. -> `(partners (n, m) int, scores (n, m))`, strongest first."""
    a, b = sp.csc_matrix(codes_image, dtype=np.float64), sp.csc_matrix(codes_text, dtype=np.float64)
    if a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"paired codes must have the same, non-empty shape, got {a.shape} and {b.shape}")
    n_pairs, n = a.shape
    per_concept = min(per_concept, n - 1)
    if per_concept < 1:
        raise ValueError("co-activation partners need a dictionary of at least two concepts")
    partners, scores = np.zeros((n, per_concept), dtype=int), np.zeros((n, per_concept))
    for start in tqdm(range(0, n, block_size), desc="co-activation partners", disable=not progress):
        stop = min(start + block_size, n)
        c_ij = (a[:, start:stop].T @ b).toarray() / n_pairs  # (block, n)
        c_ji = (b[:, start:stop].T @ a).toarray() / n_pairs
        both = np.maximum(c_ij, c_ji)
        rows = np.arange(both.shape[0])
        both[rows, start + rows] = -np.inf
        best = np.argsort(-both, axis=1, kind="stable")[:, :per_concept]
        partners[start:stop], scores[start:stop] = best, np.take_along_axis(both, best, axis=1)
    return partners, scores
