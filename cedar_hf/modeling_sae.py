"""The shared base of the sparse-autoencoder family (paper App. B; MSAE repo, github.com/WolodjaZ/MSAE).

Inputs are standardised, `x_c = (x − μ)·s` with μ the training mean and `s = √d / E‖x − μ‖` (the paper's "√n
scaling"); both are buffers saved with the model. Then `pre = W_enc(x_c − b_dec) + b_enc`, `z = act(pre)`,
`x̂_c = W_dec z + b_dec`, `x̂ = x̂_c / s + μ`. Each variant overrides only `_activate` (and, where its paper says
so, its sparsity loss). The reconstruction loss is MSAE's per-sample normalised MSE by default
(`config.reconstruction_loss`), so it does not depend on s. Decoder rows are kept unit norm in the standardised
space by the trainer, with the encoder rescaled to match (MSAE's `scale_to_unit_norm`; overcomplete's rule, rows
projected and the encoder left alone, is `config.decoder_norm="project"`). `config.decoder_bias=False` fixes
`b_dec` at zero (overcomplete has none).

Deviation, named: MSAE's code (`utils.py` `SAEDataset`) divides √d by the mean *squared* norm E‖x − μ‖², not by
E‖x − μ‖ as the paper's "√n scaling" reads; we follow the paper. With the scale-free losses only the optimiser's
step size relative to the inputs differs.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .configuration_sae import SAEConfig
from .modeling_base import DictionaryOutput, DictionaryPreTrainedModel


def per_sample_topk(values: torch.Tensor, k: int) -> torch.Tensor:
    """Keep each row's k largest values, zero the rest. (B, n) -> (B, n)"""
    if k >= values.shape[-1]:
        return values
    top = values.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(values).scatter(-1, top.indices, top.values)


class SparseAutoencoder(DictionaryPreTrainedModel):
    """Base SAE: parameters, standardisation buffers, dead-latent tracking, the aux-k loss and overcomplete's
    residual auxiliary loss."""

    config_class = SAEConfig
    base_model_prefix = "sae"

    def __init__(self, config: SAEConfig):
        super().__init__(config)
        n, d = config.n_latents, config.d_in
        self.W_enc = nn.Parameter(torch.empty(n, d))
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.W_dec = nn.Parameter(torch.empty(n, d))
        if getattr(config, "decoder_bias", True):
            self.b_dec = nn.Parameter(torch.zeros(d))
        else:  # overcomplete's SAEs: none; a zero buffer keeps the formulas (and the checkpoint keys) one
            self.register_buffer("b_dec", torch.zeros(d))
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale", torch.ones(()))
        # Training tokens seen since each latent last fired; a latent past `dead_tokens_threshold` is dead.
        self.register_buffer("tokens_since_fired", torch.zeros(n, dtype=torch.long))
        self._build_variant_state(config)
        self.post_init()

    def _build_variant_state(self, config: SAEConfig) -> None:
        """Register a variant's own parameters / buffers (thresholds) before `post_init`."""

    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            with torch.no_grad():
                # MSAE `sae.py` `_init_weights` (init_method "kaiming", norm 0.1, tied start W_enc = W_decᵀ),
                # followed by its `scale_to_unit_norm` (called every step): unit decoder rows, encoder rows of
                # norm 0.1 · 0.1 = `config.encoder_init_norm` (0.01) along the same directions. Gao et al.'s
                # transposed-decoder encoder of unit norm is `encoder_init_norm=1`.
                if getattr(self.config, "init_scheme", "tied") == "independent":
                    # overcomplete 0.3.0 `SAE.__init__`: `nn.Linear(d, n)`'s reset_parameters (kaiming-uniform,
                    # a = √5: ±1/√d, bias ±1/√d), then `DictionaryLayer`'s xavier_uniform_, normalised to unit rows
                    # by its first training forward
                    torch.nn.init.kaiming_uniform_(self.W_enc, a=math.sqrt(5))
                    bound = 1.0 / math.sqrt(self.W_enc.shape[1])
                    torch.nn.init.uniform_(self.b_enc, -bound, bound)
                    torch.nn.init.xavier_uniform_(self.W_dec)
                    self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))
                else:
                    torch.nn.init.kaiming_uniform_(self.W_dec, nonlinearity="relu")
                    self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))
                    self.W_enc.copy_(self.W_dec * float(getattr(self.config, "encoder_init_norm", 1.0)))
                    self.b_enc.zero_()
                self.b_dec.zero_()
                self.mean.zero_()
                self.scale.fill_(1.0)
                self.tokens_since_fired.zero_()
                self._init_variant_state()

    def _init_variant_state(self) -> None:
        """Initialise what `_build_variant_state` registered."""

    # ---- standardisation ------------------------------------------------------------------------------------
    def set_normalization(self, mean: torch.Tensor, scale: float | torch.Tensor) -> None:
        """Set μ and s (see `compute_normalization`)."""
        mean = self.check_mean(mean, like=self.mean)
        scale = torch.as_tensor(scale, dtype=self.scale.dtype, device=self.scale.device).reshape(())
        if not bool(torch.isfinite(scale)) or float(scale) <= 0:
            raise ValueError(f"scale={float(scale)} must be finite and > 0")
        with torch.no_grad():
            self.mean.copy_(mean)
            self.scale.copy_(scale)

    @staticmethod
    def compute_normalization(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ = mean(x), s = √d / mean‖x − μ‖ from a sample `(B, d)`."""
        x = x.reshape(-1, x.shape[-1]).double()
        mean = x.mean(0)
        scale = x.shape[-1] ** 0.5 / (x - mean).norm(dim=-1).mean()
        return mean.float(), scale.float()

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.scale

    def unstandardize(self, x_c: torch.Tensor) -> torch.Tensor:
        return x_c / self.scale + self.mean

    # ---- the contract ---------------------------------------------------------------------------------------
    def pre_activation(self, x_c: torch.Tensor) -> torch.Tensor:
        return (x_c - self.b_dec) @ self.W_enc.T + self.b_enc  # (B, n)

    def _activate(self, pre: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        """Codes from pre-activations; each variant defines its rule. (B, n) -> (B, n)"""
        raise NotImplementedError

    def _encode(self, x: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        return self._activate(self.pre_activation(self.standardize(x)), k)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.unstandardize(codes @ self.W_dec + self.b_dec)

    def dense_codes(self, x: torch.Tensor) -> torch.Tensor:
        """All ReLU pre-activations `ReLU(pre)` `(..., n_latents)`, before any TopK / θ / JumpReLU rule: where
        FVU-matched threshold sweeps start (MSAE thresholds these too), so thresholding can reach every
        sparsity, not only subsets of the model's own codes."""
        x = self.check_input(x)
        pre = self.pre_activation(self.standardize(x.reshape(-1, self.config.d_in)))
        return torch.relu(pre).reshape(*x.shape[:-1], self.config.n_latents)

    @property
    def concept_directions(self) -> torch.Tensor:
        # decode(a·e_i) − decode(0) = a·W_dec[i] / s: the atom in the original (unstandardised) space.
        return self.W_dec / self.scale

    # ---- training -------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, k: Optional[int] = None, return_dict: bool = True, **kwargs) -> DictionaryOutput:
        x = self.check_input(x)
        k = self.resolve_k(k)
        flat = x.reshape(-1, self.config.d_in)
        x_c = self.standardize(flat)
        pre, z, x_hat_c = self._codes_and_reconstruction(x_c, k)
        reconstruction_loss = self._reconstruction_loss(x_c, pre, z, x_hat_c)
        auxiliary_loss = (self._sparsity_loss(x_c, pre, z) + self._aux_k_loss(x_c, x_hat_c, pre)
                          + self._residual_aux_loss(x_c, x_hat_c, pre, z))
        if self.training:
            self._update_dead_latents(z)
        x_hat = self.unstandardize(x_hat_c)
        out = DictionaryOutput(
            loss=reconstruction_loss + auxiliary_loss,
            reconstruction=x_hat.reshape(x.shape),
            codes=z.reshape(*x.shape[:-1], self.config.n_latents),
            reconstruction_loss=reconstruction_loss,
            auxiliary_loss=auxiliary_loss,
            fvu=self.batch_fvu(flat, x_hat).detach(),
            l0=self.mean_l0(z).detach(),
        )
        return out if return_dict else out.to_tuple()

    def _codes_and_reconstruction(self, x_c: torch.Tensor, k: Optional[int]):
        """(pre-activations, codes, standardised reconstruction) of a training forward; top-k variants override
        it with sparse kernels (`TopKSAE`)."""
        pre = self.pre_activation(x_c)
        z = self._activate(pre, k)
        return pre, z, z @ self.W_dec + self.b_dec

    @staticmethod
    def _mse(x_c: torch.Tensor, x_hat_c: torch.Tensor) -> torch.Tensor:
        return (x_c - x_hat_c).pow(2).mean()

    @staticmethod
    def _nmse(x_c: torch.Tensor, x_hat_c: torch.Tensor) -> torch.Tensor:
        """MSAE's per-sample normalised MSE (MSAE `loss.py` `normalized_mean_squared_error`, the data already
        centred): `mean_i ‖x_c,i − x̂_c,i‖² / ‖x_c,i‖²`. Scale-free. A sample equal to the mean (‖x_c,i‖ = 0) has
        no defined ratio; its denominator is floored at 1e-12 of the batch's mean squared norm."""
        power = x_c.pow(2).sum(-1)  # (B,)
        floor = power.mean().detach().clamp_min(1e-30) * 1e-12
        return ((x_c - x_hat_c).pow(2).sum(-1) / power.clamp_min(floor)).mean()

    def reconstruction_error(self, x_c: torch.Tensor, x_hat_c: torch.Tensor) -> torch.Tensor:
        """The configured reconstruction loss (`config.reconstruction_loss`) in the standardised space."""
        if self.config.reconstruction_loss == "nmse":
            return self._nmse(x_c, x_hat_c)
        return self._mse(x_c, x_hat_c)

    def _reconstruction_loss(self, x_c, pre, z, x_hat_c) -> torch.Tensor:
        return self.reconstruction_error(x_c, x_hat_c)

    def _sparsity_loss(self, x_c: torch.Tensor, pre: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return pre.new_zeros(())

    @property
    def dead_latents(self) -> torch.Tensor:
        """Boolean mask `(n_latents,)` of latents that have not fired for `dead_tokens_threshold` tokens."""
        return self.tokens_since_fired >= self.config.dead_tokens_threshold

    def _update_dead_latents(self, z: torch.Tensor) -> None:
        """Called after the loss, so a step's aux-k uses the mask from before it (sparsify's order)."""
        with torch.no_grad():
            self.tokens_since_fired += z.shape[0]
            self.tokens_since_fired[(z != 0).any(0)] = 0

    def _aux_k_loss(self, x_c: torch.Tensor, x_hat_c: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        """Gao et al.'s aux-k as sparsify computes it (`sparsify/sparse_coder.py`): the top `aux_k` dead
        pre-activations reconstruct the detached residual; the squared error is divided by the batch's total
        variance `Σ‖x_c − mean(x_c)‖²` and scaled by `min(n_dead / aux_k, 1)`, so a few dead latents weigh
        little. Off when `aux_k_coefficient == 0` (MSAE)."""
        if not self.training or self.config.aux_k_coefficient == 0:
            return pre.new_zeros(())
        dead = self.dead_latents
        n_dead = int(dead.sum())
        if n_dead == 0:
            return pre.new_zeros(())
        scale = min(n_dead / self.config.aux_k, 1.0)
        residual = (x_c - x_hat_c).detach()
        dead_pre = torch.relu(pre).masked_fill(~dead, 0.0)
        aux_z = per_sample_topk(dead_pre, min(self.config.aux_k, n_dead))
        residual_hat = aux_z @ self.W_dec
        total_variance = (x_c - x_c.mean(0, keepdim=True)).pow(2).sum().clamp_min(1e-12)
        return self.config.aux_k_coefficient * scale * (residual_hat - residual).pow(2).sum() / total_variance

    def _residual_aux_loss(self, x_c: torch.Tensor, x_hat_c: torch.Tensor, pre: torch.Tensor,
                           z: torch.Tensor) -> torch.Tensor:
        """overcomplete's `top_k_auxiliary_loss` term (`config.residual_aux_coefficient`): the top half of the
        unselected positive pre-activations `ReLU(pre)·1[z = 0]` reconstruct the (not detached) residual,
        `c · L(x_c, x̂_c + top_half·W_dec)`. overcomplete subtracts the codes from `ReLU(pre)`; masking the
        selected positions gives the same values and gradients. Train mode only."""
        coefficient = self.config.residual_aux_coefficient
        if not self.training or coefficient == 0:
            return pre.new_zeros(())
        unselected = torch.relu(pre).masked_fill(z != 0, 0.0)
        half = unselected.topk(max(1, self.config.n_latents // 2), dim=-1, sorted=False)
        aux_codes = torch.zeros_like(unselected).scatter(-1, half.indices, half.values)
        return coefficient * self.reconstruction_error(x_c, x_hat_c + aux_codes @ self.W_dec)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale decoder rows to unit norm and the matching encoder rows and biases by the same factor, so the
        model's function is unchanged (MSAE `sae.py` `scale_to_unit_norm`). Called by the trainer every step.
        With `config.decoder_norm="project"` only the decoder rows are divided (overcomplete's
        `DictionaryLayer`, `x / (‖x‖ + 1e-8)`)."""
        if self._decoder_norm() == "project":
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True) + 1e-8)
            return
        norm = self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # (n, 1)
        self.W_dec.div_(norm)
        self.W_enc.mul_(norm)
        self.b_enc.mul_(norm.squeeze(-1))
        self._rescale_variant_state(norm.squeeze(-1))

    def _decoder_norm(self) -> str:
        return getattr(self.config, "decoder_norm", "tangent")

    def _rescale_variant_state(self, norm: torch.Tensor) -> None:
        """Rescale per-latent state in pre-activation units (JumpReLU's thresholds) by `norm` `(n,)`."""

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the gradient component parallel to each decoder row, so unit-norm projection loses nothing.
        Nothing with `config.decoder_norm="project"` (overcomplete steps along the full gradient)."""
        if self.W_dec.grad is None or self._decoder_norm() == "project":
            return
        W = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        self.W_dec.grad -= (self.W_dec.grad * W).sum(-1, keepdim=True) * W


__all__ = ["SparseAutoencoder", "per_sample_topk"]
