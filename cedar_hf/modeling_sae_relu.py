"""ReLU SAE with a decoder-norm-weighted L1 penalty (Bricken et al. 2023, "Towards Monosemanticity")."""

from __future__ import annotations

from typing import Optional

import torch

from .configuration_sae import ReLUSAEConfig
from .modeling_sae import SparseAutoencoder, per_sample_topk


class ReLUSAE(SparseAutoencoder):
    """`z = ReLU(pre)`; loss `NMSE + λ·mean_i ‖z_i‖₁ / ‖x_c,i‖` (MSAE `loss.py` `normalized_L1_loss`: both terms
    scale-free). An explicit `k` keeps only the k largest codes."""

    config_class = ReLUSAEConfig

    def _activate(self, pre: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        z = torch.relu(pre)
        return z if k is None else per_sample_topk(z, k)

    def _sparsity_loss(self, x_c: torch.Tensor, pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        norm = x_c.norm(dim=-1)  # (B,)
        floor = norm.mean().detach().clamp_min(1e-30) * 1e-6  # a sample at the mean has no defined ratio
        return self.config.l1_coefficient * (z.abs().sum(-1) / norm.clamp_min(floor)).mean()


__all__ = ["ReLUSAE"]
