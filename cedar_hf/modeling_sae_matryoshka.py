"""Matryoshka SAE / MSAE (Zaigrajew, Baniecki & Biecek 2025, "Interpreting CLIP with Hierarchical SAEs")."""

from __future__ import annotations

import torch

from .configuration_sae import MatryoshkaSAEConfig
from .modeling_sae_topk import TopKSAE


class MatryoshkaSAE(TopKSAE):
    """
    One encoder, nested TopK levels `k₁ < k₂ < …`: the loss is `Σ_j w_j·NMSE(x, x̂^{(k_j)})` with normalised
    weights (MSAE `train.py`), so the first k₁ codes must already reconstruct well and later ones refine.
    Inference is TopK with the largest level (or any k). Only the loss differs from TopK: `loss` (and
    `reconstruction_loss`) is the nested objective in train and eval mode alike, so a held-out loss — what the
    recipes' plateau watches — is the objective being trained, not the full-dictionary NMSE (which approaches 0
    long after the small levels have settled). `fvu` and `reconstruction` follow the k asked for.
    """

    config_class = MatryoshkaSAEConfig

    def level_weights(self) -> list[float]:
        m = len(self.config.levels)
        raw = [1.0] * m if self.config.weighting == "UW" else [float(m - j) for j in range(m)]
        return [w / sum(raw) for w in raw]

    def _reconstruction_loss(self, x_c, pre, z, x_hat_c) -> torch.Tensor:
        acts = torch.relu(pre)
        # A row has at most `active` non-zero activations: every level >= `active` keeps all of them, so those
        # levels share one reconstruction (the same tensor, hence the same loss and gradient as decoding each).
        active = int((acts > 0).sum(-1).max()) if acts.numel() else 0
        levels = self.config.levels
        top = acts.topk(min(levels[-1], max(active, 1)), dim=-1, sorted=True)  # (B, ≤ k_max), largest first
        loss, error, decoded = x_c.new_zeros(()), None, None
        for level, weight in zip(levels, self.level_weights()):
            kept = min(level, top.values.shape[-1])
            if kept != decoded:
                z_level = torch.zeros_like(acts).scatter(-1, top.indices[:, :kept], top.values[:, :kept])
                error, decoded = self.reconstruction_error(x_c, z_level @ self.W_dec + self.b_dec), kept
            loss = loss + weight * error
        return loss


__all__ = ["MatryoshkaSAE"]
