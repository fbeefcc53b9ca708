"""Riemannian Adam on the rotation group: train an orthogonal U itself, with no backward through any matrix function.

CEDAR's paper trains `U = exp(A − Aᵀ)` by Adam on A, so every step differentiates through the exponential (the
bulk of a step at D = 768, issue 18). `OrthogonalAdam` moves U along the group instead, by the exponential of a
step in its Lie algebra (skew-symmetric matrices), which is what the paper's parametrization does to first order,
at the cost of a few matmuls and no backward through exp:

1. Riemannian gradient (left trivialisation). For skew X, `d/dt f(exp(tX) U)|₀ = ⟨G Uᵀ, X⟩` with `G = ∂f/∂U`, so
   the gradient in the algebra is the skew part `Ω = (G Uᵀ − U Gᵀ) / 2` (one `D × D` matmul).
2. Adam on Ω, elementwise, exactly as `torch.optim.Adam` (β₁, β₂, ε, bias correction): Ω is exactly skew in
   floating point (`X − Xᵀ` is), the first moment stays skew and the second symmetric, so the step
   `W = −2·lr·m̂ / (√v̂ + ε)` is exactly skew. The factor 2 makes `lr` mean what it means for Adam on A: A step of
   A changes `S = A − Aᵀ` by the step minus its transpose, i.e. about twice an entry's step.
3. Retraction `U ← R(W) U`, exactly orthogonal for skew W: `"exp"` (the paper's exponential, by
   `cedar_hf.expm.expm_skew`; a step is small, so it takes the Taylor degree 4 or 6 without squaring: 2–3
   matmuls) or `"cayley"` (`(I − W/2)⁻¹(I + W/2)`, one LU solve). Then one matmul for the product.
4. Rounding drift: products of orthogonal float32 matrices drift from the group by ~ε·√D per step. Every
   `reorthogonalize_every` steps one Newton–Schulz step of the polar decomposition, `U ← U(3I − UᵀU)/2`
   (quadratic: an error e becomes ~1.5e²), brings U back to the group to rounding (tests: ‖UᵀU − I‖ ≤ 1e-5
   after thousands of steps in float32).

Deviation from the paper, named: the optimiser. The model family (U ∈ SO(n), reached from the same init) and the
loss are the paper's; the steps are Riemannian Adam steps instead of Adam steps on A, so the trajectory differs
(tests: the same planted rotations are recovered). Weight decay has no meaning on the group and is refused.
"""

from __future__ import annotations

import torch

from .configuration_cedar import RETRACTIONS
from .expm import expm_skew

# A float32 orthogonal matrix is orthogonal to ~√D·ε ≈ 1e-6; a matrix further off than this is not a rotation.
ORTHOGONALITY_TOLERANCE = 1e-4


def skew_part(X: torch.Tensor) -> torch.Tensor:
    """`(X − Xᵀ) / 2`: exactly skew-symmetric in floating point."""
    return (X - X.T) / 2


def riemannian_gradient(U: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """The gradient of f at U on the rotation group, in its Lie algebra: `skew(G Uᵀ)` for `G = ∂f/∂U`."""
    return skew_part(G @ U.T)


def retract(U: torch.Tensor, W: torch.Tensor, retraction: str = "exp") -> torch.Tensor:
    """`R(W) U` for skew W: `exp(W) U` or the Cayley `(I − W/2)⁻¹(I + W/2) U`. Orthogonal U stays orthogonal."""
    if retraction == "exp":
        return expm_skew(W) @ U
    if retraction == "cayley":
        eye = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
        return torch.linalg.solve(eye - W / 2, U + (W / 2) @ U)
    raise ValueError(f"retraction={retraction!r} must be one of {RETRACTIONS}")


def reorthogonalize(U: torch.Tensor) -> torch.Tensor:
    """One Newton–Schulz step of the polar decomposition, `U(3I − UᵀU)/2`: the nearest orthogonal matrix to
    second order (for U already within rounding of the group)."""
    return 1.5 * U - 0.5 * U @ (U.T @ U)


def orthogonality_error(U: torch.Tensor) -> float:
    """`max |UᵀU − I|` computed in float64."""
    U = U.detach().double()
    return float((U.T @ U - torch.eye(U.shape[0], dtype=torch.float64, device=U.device)).abs().max())


class OrthogonalAdam(torch.optim.Optimizer):
    """Adam on the rotation group for square orthogonal parameters (see the module docstring).

    Args:
        params: square parameters, each orthogonal at the start (checked, to `ORTHOGONALITY_TOLERANCE`).
        lr, betas, eps: as `torch.optim.Adam`; `lr` is the step of the generator A of `U = exp(A − Aᵀ)`.
        weight_decay: must be 0 (accepted so that `TrainingArgs` can be passed through unchanged).
        retraction: `"exp"` (default) or `"cayley"`.
        reorthogonalize_every: steps between two Newton–Schulz corrections (0: never).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 retraction: str = "exp", reorthogonalize_every: int = 16):
        if not lr >= 0:
            raise ValueError(f"lr={lr} must be >= 0")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas={betas} must be in [0, 1)")
        if weight_decay:
            raise ValueError(f"weight_decay={weight_decay}: weight decay has no meaning on the rotation group; use 0")
        if retraction not in RETRACTIONS:
            raise ValueError(f"retraction={retraction!r} must be one of {RETRACTIONS}")
        if int(reorthogonalize_every) < 0:
            raise ValueError(f"reorthogonalize_every={reorthogonalize_every} must be >= 0")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=0.0, retraction=retraction,
                        reorthogonalize_every=int(reorthogonalize_every))
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2 or p.shape[0] != p.shape[1]:
                    raise ValueError(f"OrthogonalAdam needs square matrices, got a parameter of shape {tuple(p.shape)}")
                error = orthogonality_error(p)
                if not error <= ORTHOGONALITY_TOLERANCE:
                    raise ValueError(f"OrthogonalAdam needs orthogonal parameters: max |UᵀU − I| = {error:.2e}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for U in group["params"]:
                if U.grad is None:
                    continue
                state = self.state[U]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(U)
                    state["exp_avg_sq"] = torch.zeros_like(U)
                state["step"] += 1
                t = int(state["step"])
                omega = riemannian_gradient(U, U.grad)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(omega, 1 - beta1)
                v.mul_(beta2).addcmul_(omega, omega, value=1 - beta2)
                denominator = (v / (1 - beta2 ** t)).sqrt_().add_(group["eps"])
                W = m.div(denominator).mul_(-2.0 * group["lr"] / (1 - beta1 ** t))
                new = retract(U, W, group["retraction"])
                every = group["reorthogonalize_every"]
                if every and t % every == 0:
                    new = reorthogonalize(new)
                U.copy_(new)
        return loss


__all__ = ["ORTHOGONALITY_TOLERANCE", "OrthogonalAdam", "RETRACTIONS", "orthogonality_error", "reorthogonalize",
           "retract", "riemannian_gradient", "skew_part"]
