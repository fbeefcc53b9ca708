"""CEDAR: a learned orthogonal rotation of frozen embeddings, sparsified by signed top-k (paper §3).

    z̃ = U (z − b),   codes = Π_k(z̃),   ẑ = Uᵀ codes + b,   U = exp(A − Aᵀ)

Since `z − b = Uᵀ z̃ = Σ_d z̃_d U[d, :]`, the concept direction of coordinate d is row d of U. With k = D nothing
is dropped and the reconstruction is exact (U is orthogonal).

Speed (issue 18), same values and gradients as the plain formulas: `exp(A − Aᵀ)` by `cedar_hf.expm.expm_skew`
(scaling and squaring of a Taylor series sized by ‖S‖₂, backward by autograd at 2 matmuls per matmul) instead of
`torch.linalg.matrix_exp`, whose backward is a `2D × 2D` exponential; and for k ≤ D/8 the reconstruction gathers
the k selected rows of U (`cedar_hf.sparse_ops`) instead of a dense `(B, D) × (D, D)` decode, with a backward
that is sparse too. Only the rotation `U(z − b)` itself stays a dense matmul (the top-k needs every coordinate).
With `parametrization="orthogonal"` U is the parameter itself, moved on the rotation group by
`cedar_hf.optim.OrthogonalAdam`: no matrix function is differentiated at all.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .configuration_cedar import CedarConfig
from .expm import expm_skew
from .modeling_base import DictionaryOutput, DictionaryPreTrainedModel, signed_topk
from .optim import ORTHOGONALITY_TOLERANCE, orthogonality_error
from .sparse_ops import gathered_linear, scatter_codes, sparse_decode, sparse_pays


def rotation_from_generator(A: torch.Tensor, parametrization: str) -> torch.Tensor:
    """Orthogonal U from the free matrix A via the skew-symmetric S = A − Aᵀ. (D, D) -> (D, D)"""
    S = A - A.T
    if parametrization == "matrix_exp":
        # The paper's exp(S); equal to torch.linalg.matrix_exp(S) to the dtype's precision (tests), without its
        # 2D × 2D backward (see cedar_hf.expm): the whole step was 2.4× faster at D = 768 (training_speed.md).
        return expm_skew(S)
    eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
    # Cayley map (I − S/2)⁻¹(I + S/2): orthogonal for every skew S; one LU solve instead of matrix_exp's
    # Padé series, whose backward dominates the CEDAR step on the CPU.
    return torch.linalg.solve(eye - S / 2, eye + S / 2)


class CedarModel(DictionaryPreTrainedModel):
    """
    CEDAR ([paper](https://arxiv.org/abs/2605.22679)): `codes = topk(U(z − b))`, `ẑ = Uᵀ codes + b`.

    The mean `b` is a buffer (set it to the training mean before training, see `cedar_hf.train`); `U` is exactly
    orthogonal. `k` is settable per call; `k = d_in` is lossless.
    """

    config_class = CedarConfig
    base_model_prefix = "cedar"

    def __init__(self, config: CedarConfig):
        super().__init__(config)
        d = config.d_in
        if config.parametrization == "orthogonal":
            self.U = nn.Parameter(torch.eye(d))  # kept orthogonal by cedar_hf.optim.OrthogonalAdam
        else:
            self.A = nn.Parameter(torch.zeros(d, d))
        self.register_buffer("b", torch.zeros(d))
        self._cached_rotation: Optional[tuple[tuple, torch.Tensor]] = None
        # False: the plain dense formulas (the reference the sparse kernels are tested against).
        self.use_sparse_kernels = True
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            with torch.no_grad():
                parameter = self.generator_parameter
                if self.config.init_std > 0:
                    A = torch.empty_like(parameter).normal_(0.0, self.config.init_std)  # the same draw for every parametrization
                else:
                    A = torch.zeros_like(parameter)
                if self.config.parametrization == "orthogonal":
                    parameter.copy_(torch.linalg.matrix_exp((A - A.T).double()).to(parameter.dtype))
                else:
                    parameter.copy_(A)
                self.b.zero_()

    @property
    def generator_parameter(self) -> nn.Parameter:
        """The trained matrix: A (`U = exp(A − Aᵀ)` or Cayley) or, for `parametrization="orthogonal"`, U itself."""
        return self.U if self.config.parametrization == "orthogonal" else self.A

    def orthogonal_parameters(self) -> list:
        """Parameters that live on the rotation group (trained by `OrthogonalAdam`, see `cedar_hf.train`)."""
        return [self.U] if self.config.parametrization == "orthogonal" else []

    # ---- the rotation ---------------------------------------------------------------------------------------
    @property
    def rotation(self) -> torch.Tensor:
        """U `(d_in, d_in)`, rows are the concept directions. Cached while A is unchanged and no grad is needed."""
        if self.config.parametrization == "orthogonal":
            return self.U
        if torch.is_grad_enabled() and self.A.requires_grad:
            return rotation_from_generator(self.A, self.config.parametrization)
        key = (self.A.data_ptr(), self.A._version, self.A.device, self.A.dtype, self.config.parametrization)
        if self._cached_rotation is None or self._cached_rotation[0] != key:
            with torch.no_grad():
                U = rotation_from_generator(self.A, self.config.parametrization)
            self._cached_rotation = (key, U)
        return self._cached_rotation[1]

    @property
    def concept_directions(self) -> torch.Tensor:
        return self.rotation

    def validate_loaded_weights(self, source: str) -> None:
        if self.config.parametrization == "orthogonal":
            error = orthogonality_error(self.U)
            if not error <= ORTHOGONALITY_TOLERANCE:  # also catches NaN
                raise ValueError(f"the U saved in {source!r} is not orthogonal (max |UᵀU − I| = {error:.3g} > "
                                 f"{ORTHOGONALITY_TOLERANCE}): the file is corrupt or was edited; "
                                 "parametrization='orthogonal' stores U itself")

    def set_mean(self, mean: torch.Tensor) -> None:
        """Set the centring vector b (the training mean, over all tokens for token inputs)."""
        mean = self.check_mean(mean, like=self.b)
        with torch.no_grad():
            self.b.copy_(mean)

    # ---- the contract ---------------------------------------------------------------------------------------
    def rotate(self, x: torch.Tensor, U: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Dense rotated coordinates `U(x − b)`. (B, d) -> (B, d)"""
        U = self.rotation if U is None else U
        return (x - self.b) @ U.T

    def _encode(self, x: torch.Tensor, k: Optional[int], U: Optional[torch.Tensor] = None) -> torch.Tensor:
        z_rot = self.rotate(x, U)
        return z_rot if k is None else signed_topk(z_rot, k)

    def _decode(self, codes: torch.Tensor, U: Optional[torch.Tensor] = None) -> torch.Tensor:
        U = self.rotation if U is None else U
        return codes @ U + self.b

    def dense_codes(self, x: torch.Tensor) -> torch.Tensor:
        """All D rotated coordinates `U(x − b)` (signed): threshold sweeps start here (k = D is lossless)."""
        return self.encode(x, k=self.config.d_in)

    def forward(self, x: torch.Tensor, k: Optional[int] = None, return_dict: bool = True, **kwargs) -> DictionaryOutput:
        """Codes, reconstruction and the paper's L1 loss: mean over samples (and tokens) of `‖z − ẑ‖₁`."""
        x = self.check_input(x)
        k = self.resolve_k(k)
        flat = x.reshape(-1, self.config.d_in)
        U = self.rotation  # computed once per step: it costs O(D³)
        if self.use_sparse_kernels and sparse_pays(k, self.config.d_in):  # dense early in the k curriculum
            codes, x_hat = self._sparse_encode_decode(flat, k, U)
        else:
            codes = self._encode(flat, k, U)
            x_hat = self._decode(codes, U)
        return self.l1_output(x, codes, x_hat, return_dict)

    def _sparse_encode_decode(self, flat: torch.Tensor, k: int, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes and `Uᵀ codes + b` with one dense matmul: the top-k coordinates' rows of U are gathered for the
        decode and for the backward (same values and gradients as `_encode` + `_decode`)."""
        h = flat - self.b
        with torch.no_grad():
            z_rot = h @ U.T
            index = z_rot.abs().topk(k, dim=-1, sorted=False).indices  # as signed_topk
        values = gathered_linear(h, U, None, index, z_rot)
        x_hat = sparse_decode(values, index, U) + self.b
        return scatter_codes(values, index, self.config.d_in), x_hat


__all__ = ["CedarModel", "rotation_from_generator"]
