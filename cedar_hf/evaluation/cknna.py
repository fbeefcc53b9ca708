"""CKNNA (Huh, Cheung, Wang & Isola 2024, "The Platonic Representation Hypothesis"), computed in blocks.

Linear kernels `K = XXᵀ`, `L = YYᵀ`. Per row keep the top-k neighbours (diagonal excluded): masks `M_K`, `M_L`;
the mutual mask `M = M_K ∘ M_L`. Then

    CKNNA = HSIC_u(M∘K, M∘L) / √(HSIC_u(M_K∘K, M_K∘K) · HSIC_u(M_L∘L, M_L∘L))

with the unbiased HSIC estimator (Song et al. 2012) on diagonal-free matrices,

    HSIC_u(A, B) = [Σ(A ∘ Bᵀ) + ΣA·ΣB / ((m−1)(m−2)) − 2·Σ(AB) / (m−2)] / (m(m−3)),

as in the authors' reference code (minyoungg/platonic-rep `metrics.py`, `AlignmentMetrics.cknna`; copied into
WolodjaZ/MSAE `metrics.py`). That code adds 1e-6 to the denominator — a scale-dependent bias: `epsilon=0` (our
default) omits it, `epsilon=1e-6` reproduces it (protocol `msae`). `cknna_batched` is MSAE's per-batch variant.
Every masked matrix has at most k non-zeros per row, so after one pass of row blocks (`X_blk Xᵀ` → `topk`) all
three HSIC terms are sums over N·k stored entries: memory O(block·N + N·k), never a dense N×N float64.
"""

from __future__ import annotations

from typing import Optional
import warnings

import torch
from tqdm.auto import tqdm

SPARSE_DENSITY = 0.05  # below this fraction of non-zeros, kernels of wide matrices use a sparse product


def topk_neighbours(x: torch.Tensor, k: int, block_size: Optional[int] = None, progress: bool = False,
                    desc: str = "kNN") -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest off-diagonal entries of each row of `x xᵀ`: `(values (N, k), indices (N, k))`, computed
    over row blocks of `block_size` rows (default: about 64 M kernel entries per block); sparse × dense products
    when `x` is wide and mostly zeros (the same numbers up to the order of float additions)."""
    n = x.shape[0]
    block_size = block_size or max(1, (1 << 26) // max(n, 1))
    values = torch.empty(n, k, dtype=x.dtype)
    indices = torch.empty(n, k, dtype=torch.long)
    starts = range(0, n, block_size)
    # sparse codes (a few % non-zero, e.g. an SAE at matched FVU): a sparse × dense product costs nnz·N, not N·d·N
    sparse = x.shape[1] >= 256 and float((x != 0).double().mean()) < SPARSE_DENSITY
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        stop = min(start + block_size, n)
        if sparse:  # CSR × dense: ~30× faster than a COO `torch.sparse.mm` on CPU (10k × 3072 codes, 40 active)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                block = x[start:stop].to_sparse_csr() @ x.T  # (b, N)
        else:
            block = x[start:stop] @ x.T  # (b, N)
        rows = torch.arange(stop - start)
        block[rows, rows + start] = float("-inf")  # exclude the diagonal
        top = block.topk(k, dim=1)
        values[start:stop], indices[start:stop] = top.values, top.indices
    return values, indices


def _hsic_unbiased_sparse(n: int, rows: torch.Tensor, cols: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased HSIC of two diagonal-free N×N matrices A, B that share the support `(rows, cols)` (COO, no
    duplicates) with values `a`, `b` there (float64)."""
    keys = rows * n + cols
    order = keys.argsort()
    sorted_keys, sorted_b = keys[order], b[order]
    # Σ(A ∘ Bᵀ) = Σ_{(i,j)} A_ij B_ji: look B up at the transposed positions.
    transposed = cols * n + rows
    position = torch.searchsorted(sorted_keys, transposed).clamp_max(max(keys.numel() - 1, 0))
    found = sorted_keys[position] == transposed if keys.numel() else torch.zeros(0, dtype=torch.bool)
    trace_term = (a[found] * sorted_b[position[found]]).sum()
    # Σ(AB) = Σ_l (column sums of A)_l · (row sums of B)_l
    col_sum_a = torch.zeros(n, dtype=torch.float64).index_add_(0, cols, a)
    row_sum_b = torch.zeros(n, dtype=torch.float64).index_add_(0, rows, b)
    value = trace_term + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2 * (col_sum_a * row_sum_b).sum() / (n - 2)
    return float(value / (n * (n - 3)))


def _self_hsic(n: int, values: torch.Tensor, indices: torch.Tensor) -> float:
    """HSIC_u(M_K∘K, M_K∘K) from a top-k table."""
    k = indices.shape[1]
    rows = torch.arange(n).repeat_interleave(k)
    a = values.reshape(-1).double()
    return _hsic_unbiased_sparse(n, rows, indices.reshape(-1), a, a)


def cknna_from_neighbours(x_values: torch.Tensor, x_indices: torch.Tensor, y_values: torch.Tensor,
                          y_indices: torch.Tensor, epsilon: float = 0.0) -> float:
    """CKNNA from the two top-k tables of `topk_neighbours` (same N and k)."""
    n, k = x_indices.shape
    # mutual neighbours: entry (i, j) of X's table whose j also sits in row i of Y's table
    match = x_indices.unsqueeze(2) == y_indices.unsqueeze(1)  # (N, k, k)
    in_both = match.any(2)  # (N, k) over X's entries
    y_position = match.float().argmax(2)  # where in Y's row that neighbour sits
    rows = torch.arange(n).unsqueeze(1).expand(n, k)[in_both]
    cols = x_indices[in_both]
    a = x_values[in_both].double()
    b = y_values.gather(1, y_position)[in_both].double()
    cross = _hsic_unbiased_sparse(n, rows, cols, a, b)
    denominator = (_self_hsic(n, x_values, x_indices) * _self_hsic(n, y_values, y_indices)) ** 0.5
    if not denominator + epsilon > 0:
        return float("nan")  # a kernel with no neighbourhood structure (e.g. all-equal rows)
    return cross / (denominator + epsilon)


def cknna(x: torch.Tensor, y: torch.Tensor, k: int = 10, block_size: Optional[int] = None,
          normalize: bool = False, progress: bool = False, epsilon: float = 0.0,
          cache: Optional[dict] = None, cache_key=None) -> float:
    """
    CKNNA between representations `x` `(N, d)` and `y` `(N, d')` of the same N samples (e.g. embeddings and their
    reconstructions), k mutual nearest neighbours (paper: k = 10). Kernels are computed in `x.dtype` (float32 is
    the usual choice), one row block at a time; HSIC sums are float64. `normalize=True` L2-normalises the rows
    first (cosine kernels). `epsilon` is added to the denominator (reference code: 1e-6). Returns a number in
    about [-1, 1]; 1 for identical neighbourhood structure. With a `cache` dict and a `cache_key`, x's top-k
    table is computed once per key and reused (the same originals against many reconstructions).
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must be 2-D with the same number of rows")
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"CKNNA's unbiased HSIC needs at least 4 samples, got N={n}")
    if not 2 <= k <= n - 1:
        raise ValueError(f"k={k} must be in [2, N-1={n - 1}]")
    if not x.is_floating_point():
        x = x.float()
    y = y.to(x.dtype)
    if normalize:
        x = torch.nn.functional.normalize(x, dim=-1)
        y = torch.nn.functional.normalize(y, dim=-1)
    key = None if cache is None or cache_key is None else (cache_key, k, normalize, n)
    x_table = cache.get(key) if key is not None else None
    if x_table is None:
        x_table = topk_neighbours(x, k, block_size, progress, desc="CKNNA kNN (x)")
        if key is not None:
            cache[key] = x_table
    y_table = topk_neighbours(y, k, block_size, progress, desc="CKNNA kNN (x̂)")
    return cknna_from_neighbours(*x_table, *y_table, epsilon=epsilon)


def batch_rows(n: int, batch_size: int, seed: int = 42) -> list[torch.Tensor]:
    """Row indices of the full batches of a seeded shuffle of `range(n)` (the incomplete last batch dropped, as
    MSAE's scoring does); a single batch of all rows when `n < batch_size`."""
    if batch_size < 4:
        raise ValueError(f"batch_size={batch_size} must be >= 4 (CKNNA's unbiased HSIC)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if n < batch_size:
        return [order]
    return list(order[: (n // batch_size) * batch_size].split(batch_size))


def cknna_batched(x: torch.Tensor, y_of_rows, batch_size: int = 10000, k: int = 10, seed: int = 42,
                  epsilon: float = 1e-6, progress: bool = False, cache: Optional[dict] = None) -> dict:
    """
    MSAE's CKNNA (WolodjaZ/MSAE `score_topk_sae_embeddings.py`): shuffle the rows, cut them into batches of
    `batch_size` (MSAE's default 10000), keep only full batches, compute `cknna(x[batch], y[batch], k)` per batch
    with the reference code's `epsilon`, and average. `y_of_rows(rows)` returns the second representation of
    those rows (MSAE: the SAE's codes), so the codes never need to sit in memory at once. `cache` keeps each
    batch's top-k table of `x` for the next call on the same `x`.
    Returns `{"mean", "std", "n_batches", "batch_size"}` (`batch_size` = the size actually used).
    """
    batches = batch_rows(x.shape[0], batch_size, seed)
    values = [cknna(x[rows], y_of_rows(rows), k=k, epsilon=epsilon, cache=cache,
                    cache_key=("batch", batch_size, seed, index))
              for index, rows in enumerate(tqdm(batches, desc="CKNNA batches", disable=not progress, leave=False))]
    tensor = torch.tensor(values, dtype=torch.float64)
    return {"mean": float(tensor.mean()), "std": float(tensor.std(unbiased=False)), "n_batches": len(values),
            "batch_size": int(batches[0].numel())}


__all__ = ["batch_rows", "cknna", "cknna_batched", "cknna_from_neighbours", "topk_neighbours"]
