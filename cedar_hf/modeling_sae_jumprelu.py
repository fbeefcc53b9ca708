"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU SAEs")."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .configuration_sae import JumpReLUSAEConfig
from .modeling_sae import SparseAutoencoder, per_sample_topk


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """`x·H(x − θ)`; ∂/∂θ by the rectangle-kernel pseudo-derivative `−(θ/ε) K((x − θ)/ε)`."""

    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return x * (x > threshold)

    @staticmethod
    def backward(ctx, grad_out):
        x, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_x = (x > threshold) * grad_out
        grad_threshold = -(threshold / eps) * _rectangle((x - threshold) / eps) * grad_out
        return grad_x, grad_threshold.sum(0), None


class _Step(torch.autograd.Function):
    """`H(x − θ)`; ∂/∂θ by `−(1/ε) K((x − θ)/ε)` (for the L0 penalty)."""

    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_threshold = -(1.0 / eps) * _rectangle((x - threshold) / eps) * grad_out
        return torch.zeros_like(x), grad_threshold.sum(0), None


class JumpReLUSAE(SparseAutoencoder):
    """
    `z = pre·H(pre − θ_i)` with learnt per-latent thresholds `θ_i = exp(log_threshold_i)` (a parameter, saved),
    straight-through gradients, and an L0 penalty `λ Σ_i H(pre_i − θ_i)`. ε and θ₀ are used relative to the
    input scale √d (`config.effective_bandwidth`, `config.effective_initial_threshold`): the paper's values are
    for unit-scale inputs.
    """

    config_class = JumpReLUSAEConfig

    def _build_variant_state(self, config: JumpReLUSAEConfig) -> None:
        self.log_threshold = nn.Parameter(torch.full((config.n_latents,), math.log(config.effective_initial_threshold)))

    def _init_variant_state(self) -> None:
        self.log_threshold.fill_(math.log(self.config.effective_initial_threshold))

    def _rescale_variant_state(self, norm: torch.Tensor) -> None:
        self.log_threshold.add_(norm.log())  # θ scales with the encoder row (MSAE `scale_to_unit_norm`)

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def _activate(self, pre: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        z = _JumpReLU.apply(pre, self.threshold, self.config.effective_bandwidth)
        return z if k is None else per_sample_topk(z, k)

    def _sparsity_loss(self, x_c: torch.Tensor, pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        l0 = _Step.apply(pre, self.threshold, self.config.effective_bandwidth).sum(-1).mean()
        return self.config.l0_coefficient * l0


__all__ = ["JumpReLUSAE"]
