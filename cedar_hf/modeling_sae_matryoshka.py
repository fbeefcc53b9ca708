"""Matryoshka SAE / MSAE (Zaigrajew, Baniecki & Biecek 2025, "Interpreting CLIP with Hierarchical SAEs")."""

from __future__ import annotations

import torch

from .configuration_sae import MatryoshkaSAEConfig
from .modeling_sae_topk import TopKSAE


class MatryoshkaSAE(TopKSAE):
    """
    One encoder, nested TopK levels `k₁ < k₂ < …`: the loss is `Σ_j w_j·NMSE(x, x̂^{(k_j)})` with normalised
    weights (MSAE `train.py`), so the first k₁ codes must already reconstruct well and later ones refine.
    Inference is TopK with the largest level (or any k). Only the training loss differs from TopK.
    """

    config_class = MatryoshkaSAEConfig

    def level_weights(self) -> list[float]:
        m = len(self.config.levels)
        raw = [1.0] * m if self.config.weighting == "UW" else [float(m - j) for j in range(m)]
        return [w / sum(raw) for w in raw]

    def _reconstruction_loss(self, x_c, pre, z, x_hat_c) -> torch.Tensor:
        if not self.training:
            return self.reconstruction_error(x_c, x_hat_c)
        acts = torch.relu(pre)
        top = acts.topk(self.config.levels[-1], dim=-1, sorted=True)  # (B, k_max), largest first
        loss = x_c.new_zeros(())
        for level, weight in zip(self.config.levels, self.level_weights()):
            z_level = torch.zeros_like(acts).scatter(-1, top.indices[:, :level], top.values[:, :level])
            loss = loss + weight * self.reconstruction_error(x_c, z_level @ self.W_dec + self.b_dec)
        return loss


__all__ = ["MatryoshkaSAE"]
