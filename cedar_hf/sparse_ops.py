"""Top-k codes without dense `(B, n)` matmuls behind them: a gathered linear map with a sparse backward, and a
sparse decode.

A top-k dictionary keeps k of n pre-activations per sample. Written densely, the decode `z @ W` and the backward
of the encoder (`∂L/∂W_enc = ∂L/∂preᵀ x`) are `(B, n) × (n, d)` matmuls on a matrix that is zero but for k
entries per row. Here:

- `gathered_linear(h, W, bias, index, pre)` returns `pre[b, index[b, j]]` where `pre = h Wᵀ + bias` was computed
  once without gradient (the top-k needs all of it); its backward touches only the k selected rows of W per
  sample: `∂h[b] = Σ_j g[b, j] W[index[b, j]]` and `∂W[index[b, j]] += g[b, j] h[b]` (one `embedding_bag`
  forward and backward), `∂bias` by `index_add`.
- `sparse_decode(values, index, W)` is `Σ_j values[b, j] W[index[b, j]]` (`embedding_bag` with per-sample
  weights, whose own backward is sparse in the same way).

Both give the same values and gradients as the dense formulas (tests/test_fast_kernels.py checks them in float64).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


# Above this share of active latents the dense matmuls win: the gathers cost far more per multiply-add than BLAS
# (measured at d = 768, B = 1024: CEDAR's sparse step is faster up to k ≈ 100 of 768, slower beyond).
SPARSE_MAX_FRACTION = 1 / 8


def sparse_pays(k, n: int) -> bool:
    """Whether the sparse kernels are worth it for k active latents out of n."""
    return k is not None and 0 < k and k <= n * SPARSE_MAX_FRACTION


def sparse_decode(values: torch.Tensor, index: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """`Σ_j values[b, j] · W[index[b, j]]`: codes given by their k values and indices. (B, k), (B, k), (n, d) -> (B, d)"""
    if values.shape[-1] == 0:
        return values.new_zeros(values.shape[0], W.shape[-1])
    # embedding_bag is fast only on a row-major weight (linalg.solve, hence the Cayley U, returns column-major)
    return F.embedding_bag(index, W.contiguous(), per_sample_weights=values.to(W.dtype), mode="sum")


class _GatheredLinear(torch.autograd.Function):
    """`pre.gather(1, index)` for `pre = h Wᵀ + bias` (given, no grad), with the sparse backward above."""

    @staticmethod
    def forward(ctx, h, W, bias, index, pre):
        ctx.save_for_backward(h, W.contiguous(), index)
        ctx.has_bias = bias is not None
        ctx.n = W.shape[0]
        return pre.gather(1, index)

    @staticmethod
    def backward(ctx, grad):
        h, W, index = ctx.saved_tensors
        grad_h = grad_W = grad_bias = None
        need_h, need_W, need_bias = ctx.needs_input_grad[:3]
        if need_h or need_W:
            with torch.enable_grad():
                W_ = W.detach().requires_grad_(need_W)
                rows = F.embedding_bag(index, W_, per_sample_weights=grad, mode="sum")  # Σ_j g[b, j] W[index]
                if need_W:
                    (grad_W,) = torch.autograd.grad(rows, W_, grad_outputs=h)  # Σ g[b, j] h[b] into index rows
            grad_h = rows.detach() if need_h else None
        if ctx.has_bias and need_bias:
            grad_bias = grad.new_zeros(ctx.n).index_add_(0, index.reshape(-1), grad.reshape(-1))
        return grad_h, grad_W, grad_bias, None, None


def gathered_linear(h: torch.Tensor, W: torch.Tensor, bias: Optional[torch.Tensor], index: torch.Tensor,
                    pre: torch.Tensor) -> torch.Tensor:
    """The selected pre-activations `pre[b, index[b, j]]` with a backward that is sparse in W.

    `pre` must equal `h @ W.T + bias` (computed under `torch.no_grad()` by the caller, who needs it whole to
    choose `index`). (B, d), (n, d), (n,) or None, (B, k), (B, n) -> (B, k)"""
    return _GatheredLinear.apply(h, W, bias, index, pre.detach())


def scatter_codes(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Dense `(B, n)` codes from k values and indices per row (differentiable in `values`)."""
    return values.new_zeros(values.shape[0], n).scatter(1, index, values)


__all__ = ["SPARSE_MAX_FRACTION", "gathered_linear", "scatter_codes", "sparse_decode", "sparse_pays"]
