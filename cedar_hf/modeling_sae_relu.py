"""ReLU SAE with a decoder-norm-weighted L1 penalty (Bricken et al. 2023, "Towards Monosemanticity")."""

from __future__ import annotations

from typing import Optional

import torch

from .configuration_sae import ReLUSAEConfig
from .modeling_sae import SparseAutoencoder, per_sample_topk


class ReLUSAE(SparseAutoencoder):
    """`z = ReLU(pre)`; loss `MSE + λ Σ_i z_i ‖W_dec[i]‖`. An explicit `k` keeps only the k largest codes."""

    config_class = ReLUSAEConfig

    def _activate(self, pre: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        z = torch.relu(pre)
        return z if k is None else per_sample_topk(z, k)

    def _sparsity_loss(self, pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.config.l1_coefficient * (z * self.W_dec.norm(dim=-1)).sum(-1).mean()


__all__ = ["ReLUSAE"]
