"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

Training runs on sparse kernels (`cedar_hf.sparse_ops`, issue 18): the encoder matmul is dense (the top-k needs
every pre-activation), but the decode gathers the k active decoder rows and the backward touches only the k
selected encoder and decoder rows per sample — the same values and gradients as the dense formulas, without two
of the three `(B, n) × (n, d)` matmuls and all three of the backward's.
"""

from __future__ import annotations

from typing import Optional

import torch

from .configuration_sae import TopKSAEConfig
from .modeling_sae import SparseAutoencoder, per_sample_topk
from .sparse_ops import gathered_linear, scatter_codes, sparse_decode, sparse_pays


class TopKSAE(SparseAutoencoder):
    """`z = TopK(ReLU(pre))` per sample; aux-k loss against dead latents (in the shared base)."""

    config_class = TopKSAEConfig
    # False: the plain dense formulas (the reference the sparse kernels are tested against).
    use_sparse_kernels = True

    def _activate(self, pre: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        return per_sample_topk(torch.relu(pre), k if k is not None else self.config.n_latents)

    def _pre_activation_needs_grad(self) -> bool:
        """Whether a loss reads the dense pre-activations with gradient: aux-k when latents are dead,
        overcomplete's residual auxiliary loss, or a variant's own losses (Matryoshka's nested reconstructions)."""
        own_losses = (type(self)._reconstruction_loss is not SparseAutoencoder._reconstruction_loss
                      or type(self)._sparsity_loss is not SparseAutoencoder._sparsity_loss)
        aux = self.training and self.config.aux_k_coefficient != 0 and bool(self.dead_latents.any())
        residual_aux = self.training and self.config.residual_aux_coefficient != 0
        return own_losses or aux or residual_aux

    def _codes_and_reconstruction(self, x_c: torch.Tensor, k: Optional[int]):
        n = self.config.n_latents
        if not self.use_sparse_kernels or not sparse_pays(k, n):
            return super()._codes_and_reconstruction(x_c, k)
        h = x_c - self.b_dec
        if self._pre_activation_needs_grad():
            pre = h @ self.W_enc.T + self.b_enc
            index = pre.detach().topk(k, dim=-1, sorted=False).indices
            selected = pre.gather(1, index)
        else:
            with torch.no_grad():
                pre = torch.addmm(self.b_enc, h, self.W_enc.T)
                index = pre.topk(k, dim=-1, sorted=False).indices  # = the top-k of relu(pre) where it is > 0
            selected = gathered_linear(h, self.W_enc, self.b_enc, index, pre)
        values = torch.relu(selected)
        x_hat_c = sparse_decode(values, index, self.W_dec) + self.b_dec
        return pre, scatter_codes(values, index, n), x_hat_c


__all__ = ["TopKSAE"]
