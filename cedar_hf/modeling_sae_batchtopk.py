"""BatchTopK SAE (Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders")."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .configuration_sae import BatchTopKSAEConfig
from .modeling_sae import SparseAutoencoder, per_sample_topk


class BatchTopKSAE(SparseAutoencoder):
    """
    Training keeps the top `k·B` activations of the whole batch, so samples share a budget of k on average.
    At inference a global threshold θ replaces the batch rule: `z = ReLU(pre)·1[pre > θ]`. θ is a buffer: the
    running mean of the smallest activation kept in each training batch, saved with the model.
    An explicit `k` at inference keeps each sample's k largest codes instead.
    """

    config_class = BatchTopKSAEConfig

    def _build_variant_state(self, config: BatchTopKSAEConfig) -> None:
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_updates", torch.zeros((), dtype=torch.long))

    def _init_variant_state(self) -> None:
        self.threshold.zero_()
        self.threshold_updates.zero_()

    def settling_steps(self) -> int:
        """Training steps after which θ's running mean has forgotten its start (`momentum^t ≤ 1 %`: 459 steps at
        0.99). Before that, held-out evaluations use a θ still rising from the first batches' small minima —
        hundreds of active codes instead of ≈ k — so the recipes' plateau rule does not count them."""
        m = self.config.threshold_momentum
        return 0 if m == 0 else math.ceil(math.log(0.01) / math.log(m))

    def resolve_k(self, k: Optional[int]) -> Optional[int]:
        return None if k is None else self.check_k(k)  # None: batch rule (training) or θ (inference)

    def _activate(self, pre: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        acts = torch.relu(pre)
        if k is not None:
            return per_sample_topk(acts, k)
        if not self.training:
            return acts * (pre > self.threshold)
        flat = acts.flatten()
        budget = min(self.config.k * acts.shape[0], flat.numel())
        top = flat.topk(budget, sorted=False)
        z = torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(acts)
        self._update_threshold(top.values)
        return z

    @torch.no_grad()
    def _update_threshold(self, kept: torch.Tensor) -> None:
        positive = kept[kept > 0]
        if positive.numel() == 0:
            return
        batch_min = positive.min()
        if int(self.threshold_updates) == 0:
            self.threshold.copy_(batch_min)
        else:
            m = self.config.threshold_momentum
            self.threshold.mul_(m).add_((1 - m) * batch_min)
        self.threshold_updates += 1


__all__ = ["BatchTopKSAE"]
