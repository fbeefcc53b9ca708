"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders")."""

from __future__ import annotations

from typing import Optional

import torch

from .configuration_sae import TopKSAEConfig
from .modeling_sae import SparseAutoencoder, per_sample_topk


class TopKSAE(SparseAutoencoder):
    """`z = TopK(ReLU(pre))` per sample; aux-k loss against dead latents (in the shared base)."""

    config_class = TopKSAEConfig

    def _activate(self, pre: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        return per_sample_topk(torch.relu(pre), k if k is not None else self.config.n_latents)


__all__ = ["TopKSAE"]
