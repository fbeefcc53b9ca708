"""The exponential of a skew-symmetric matrix, `U = exp(S)`, at the cost of a few matmuls, forward and backward.

CEDAR's paper parametrization is `U = exp(A − Aᵀ)`. `torch.linalg.matrix_exp` computes it well, but its backward
is the exponential of a `2D × 2D` block matrix (the Fréchet derivative by Mathias' trick), which made the CEDAR
step ~6× slower than the Cayley map at D = 768. Here the same function is computed by scaling and squaring a
truncated Taylor series evaluated with the Paterson–Stockmeyer scheme, in plain differentiable torch ops, so
autograd's backward is the exact derivative of the computed exponential at two matmuls per forward matmul.

Why it is as exact as `matrix_exp`: S is skew, hence normal with eigenvalues `iλ`, and for any polynomial p
`‖exp(S) − p(S)‖₂ = max |e^{iλ} − p(iλ)|`. For the Taylor polynomial T_m this is at most `θ^{m+1}/(m+1)!` when
`‖S‖₂ ≤ θ` (the series of cos and sin alternate), so each degree m gets the largest θ_m with that bound below
the dtype's unit roundoff, and S is scaled by `2^-s` into it (then squared s times). ‖S‖₂ is estimated by power
iteration on `SᵀS` (a lower bound that converges fast), multiplied by a safety factor `NORM_SAFETY`; the degree
and s minimising the matmul count are chosen. Both are discrete choices made without gradient, as in every
scaling-and-squaring method.
"""

from __future__ import annotations

import math

import torch

# (degree m, p): Paterson–Stockmeyer with powers S..S^p and m/p Horner steps costs (p − 1) + (m/p − 1) matmuls.
_SCHEMES = ((1, 1), (2, 2), (4, 2), (6, 3), (9, 3), (12, 4), (16, 4), (20, 5), (25, 5))
NORM_SAFETY = 1.25  # power iteration under-estimates ‖S‖₂; a 25% margin costs at most one extra squaring
POWER_ITERATIONS = 10


def _cost(m: int, p: int) -> int:
    return 0 if m == 1 else (p - 1) + (m // p - 1)


def _theta(m: int, dtype: torch.dtype) -> float:
    """Largest ‖S‖₂ for which the degree-m Taylor remainder bound θ^{m+1}/(m+1)! is below the unit roundoff."""
    unit = torch.finfo(dtype).eps / 2
    return math.exp((math.log(unit) + math.lgamma(m + 2)) / (m + 1))


@torch.no_grad()
def skew_spectral_norm_estimate(S: torch.Tensor, S2: torch.Tensor | None = None,
                                iterations: int = POWER_ITERATIONS) -> float:
    """A lower estimate of ‖S‖₂ by power iteration on the PSD `SᵀS = −S²` (S2 = S @ S if given) with 4 fixed
    pseudo-random start vectors."""
    if S.numel() == 0:
        return 0.0
    M = -(S @ S if S2 is None else S2)
    generator = torch.Generator().manual_seed(0)
    V = torch.randn(S.shape[0], 4, generator=generator, dtype=torch.float64).to(device=S.device, dtype=S.dtype)
    estimate = 0.0
    for _ in range(iterations):
        V = V / V.norm(dim=0, keepdim=True).clamp_min(torch.finfo(S.dtype).tiny)
        W = M @ V
        estimate = float((V * W).sum(0).max())  # Rayleigh quotients vᵀ SᵀS v = ‖Sv‖²
        if estimate <= 0.0:
            return 0.0
        V = W
    return math.sqrt(estimate)


def choose_scheme(norm: float, dtype: torch.dtype) -> tuple[int, int, int]:
    """(degree m, p, squarings s) with the fewest matmuls for `‖S‖₂ ≤ norm` (ties: fewer squarings)."""
    best = None
    for m, p in _SCHEMES:
        theta = _theta(m, dtype)
        s = 0 if norm <= theta else math.ceil(math.log2(norm / theta))
        key = (_cost(m, p) + s, s)
        if best is None or key < best[0]:
            best = (key, (m, p, s))
    return best[1]


def _taylor(S: torch.Tensor, S2: torch.Tensor, m: int, p: int) -> torch.Tensor:
    """T_m(S) = Σ_{i ≤ m} S^i / i! by Paterson–Stockmeyer (m divisible by p; S2 = S @ S): blocks
    B_j = Σ_{i<p} c_{jp+i} S^i (B_{q−1} also takes c_m S^p) in one tensordot, then Horner in S^p (`addmm`)."""
    eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
    if m == 1:
        return eye + S
    powers = [eye, S, S2]
    for _ in range(p - 2):
        powers.append(powers[-1] @ S)
    q = m // p
    coefficients = torch.zeros(q, p + 1, dtype=torch.float64)
    for i in range(m + 1):
        j, r = (q - 1, p) if i == m else divmod(i, p)
        coefficients[j, r] = 1.0 / math.factorial(i)
    blocks = torch.tensordot(coefficients.to(device=S.device, dtype=S.dtype), torch.stack(powers), dims=1)
    result = blocks[q - 1]
    for j in range(q - 2, -1, -1):
        result = torch.addmm(blocks[j], powers[p], result)
    return result


def expm_skew(S: torch.Tensor) -> torch.Tensor:
    """exp(S) for a skew-symmetric `(D, D)` S, differentiable (exact derivative of the computed value).

    S is not checked for skew-symmetry (callers build it as `A − Aᵀ`); for other matrices the error bound above
    does not hold, use `torch.linalg.matrix_exp`.
    """
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"expm_skew needs a square matrix, got shape {tuple(S.shape)}")
    S2 = S @ S  # needed by every scheme but the trivial one; also gives the norm estimate
    m, p, s = choose_scheme(NORM_SAFETY * skew_spectral_norm_estimate(S.detach(), S2.detach()), S.dtype)
    U = _taylor(S / 2 ** s, S2 / 4 ** s, m, p) if s else _taylor(S, S2, m, p)
    for _ in range(s):
        U = U @ U
    return U


__all__ = ["NORM_SAFETY", "choose_scheme", "expm_skew", "skew_spectral_norm_estimate"]
