"""The two baselines of the source papers, as models of the same contract.

- `SemiNMF` (Ding, Li & Jordan 2010; Papadimitriou et al. 2025 §3.2): `x − μ ≈ g D`, codes g ≥ 0, dictionary D
  unconstrained, fitted by its own alternating algorithm (`fit_embeddings`), batched over the dataset. (Ding et
  al.'s multiplicative code rule never reaches an exact 0 and was seen to stall on real embeddings; projected
  gradient from 0 gives truly sparse codes and the same monotone alternating scheme.)
- `NoRotation` (CEDAR paper §4, Study 3): signed top-k of `z − b` in the original basis; only b is fitted.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from .configuration_baselines import NoRotationConfig, SemiNMFConfig
from .data.stream import iter_embedding_batches, running_mean
from .modeling_base import DictionaryOutput, DictionaryPreTrainedModel, signed_topk
from .modeling_sae import per_sample_topk


class SemiNMF(DictionaryPreTrainedModel):
    """
    Semi-NMF: non-negative codes over an unconstrained dictionary. Encoding solves for the codes with the
    dictionary fixed (accelerated projected gradient from 0, so the L1 term leaves most codes exactly 0);
    `fit_embeddings` alternates warm-started projected-gradient code updates with the exact ridge least-squares
    dictionary update — each step lowers the objective, so it decreases monotonically.

    Conditioning: the code solve is a non-negative lasso whose sensitivity grows with the condition number of
    the Gram matrix `D Dᵀ`. A dictionary with nearly dependent atoms (seen: cond 1.1e5 after two fitting epochs
    on planted data) makes the codes move by ~1e-4 for a last-bit change of the arithmetic, and 200 FISTA steps
    then also stop short of the optimum. The solve therefore runs in float64 whatever the model's dtype: the
    rounding of a different SIMD path, thread count or summation order (1e-16 relative) stays far below float32
    resolution after that amplification, so the same dictionary gives the same float32 codes on every machine.
    A genuine change of the dictionary itself still moves the codes as much as the problem's conditioning says.
    """

    config_class = SemiNMFConfig
    base_model_prefix = "semi_nmf"

    def __init__(self, config: SemiNMFConfig):
        super().__init__(config)
        self.dictionary = nn.Parameter(torch.empty(config.n_latents, config.d_in))
        self.register_buffer("mean", torch.zeros(config.d_in))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            with torch.no_grad():
                self.dictionary.normal_(0.0, self.config.d_in**-0.5)
                self.mean.zero_()

    @property
    def concept_directions(self) -> torch.Tensor:
        return self.dictionary

    # ---- codes ------------------------------------------------------------------------------------------------
    def _step_size(self, gram: torch.Tensor) -> float:
        return 1.0 / max(float(torch.linalg.matrix_norm(gram, ord=2)), 1e-12)

    def update_codes(self, x_c: torch.Tensor, codes: torch.Tensor, iterations: int, accelerated: bool = False):
        """Projected gradient on `½‖x_c − g D‖² + λ‖g‖₁` over g ≥ 0 with step 1/L (L = ‖D Dᵀ‖₂): each plain
        step does not increase the objective (the fitting uses those); `accelerated` is FISTA (encoding from 0).
        Computed in float64 (see the class docstring: the solve amplifies rounding), returned in `codes.dtype`.
        (B, d), (B, m) -> (B, m)"""
        out_dtype = codes.dtype
        D, x_c, codes = self.dictionary.double(), x_c.double(), codes.double()
        gram, xd = D @ D.T, x_c @ D.T  # (m, m), (B, m)
        step, lam = self._step_size(gram), self.config.l1_coefficient
        previous, momentum_point, t = codes, codes, 1.0
        for _ in range(iterations):
            point = momentum_point if accelerated else codes
            codes = torch.relu(point - step * (point @ gram - xd + lam))
            if accelerated:
                t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
                momentum_point = codes + ((t - 1) / t_next) * (codes - previous)
                previous, t = codes, t_next
        return codes.to(out_dtype)

    def _center(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.mean if self.config.center else x

    def _encode(self, x: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        with torch.no_grad():
            x_c = self._center(x)
            start = x_c.new_zeros(x_c.shape[0], self.config.n_latents)
            codes = self.update_codes(x_c, start, self.config.encode_iterations, accelerated=True)
        return codes if k is None else per_sample_topk(codes, k)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.dictionary + (self.mean if self.config.center else 0.0)

    def objective(self, x_c: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """`mean_n [½‖x_c − g D‖² + λ‖g‖₁] + (ρ/2)‖D‖²`: what `fit_embeddings` lowers."""
        residual = x_c - codes @ self.dictionary
        data_term = (0.5 * residual.pow(2).sum(-1) + self.config.l1_coefficient * codes.sum(-1)).mean()
        return data_term + 0.5 * self.config.dictionary_ridge * self.dictionary.pow(2).sum()

    def forward(self, x: torch.Tensor, k: Optional[int] = None, return_dict: bool = True, **kwargs) -> DictionaryOutput:
        x = self.check_input(x)
        flat = x.reshape(-1, self.config.d_in)
        codes = self._encode(flat, self.resolve_k(k))
        x_hat = self._decode(codes)
        out = DictionaryOutput(
            loss=self.objective(self._center(flat), codes),
            reconstruction=x_hat.reshape(x.shape),
            codes=codes.reshape(*x.shape[:-1], self.config.n_latents),
            reconstruction_loss=0.5 * (flat - x_hat).pow(2).sum(-1).mean(),
            fvu=self.batch_fvu(flat, x_hat).detach(),
            l0=self.mean_l0(codes).detach(),
        )
        return out if return_dict else out.to_tuple()

    # ---- fitting ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_embeddings(self, dataset: Any, args: Any = None, **overrides) -> list[float]:
        """Fit μ and D on an embedding dataset (tensor or `datasets.Dataset`); returns the objective after each
        epoch. Reads `batch_size` and `seed` from `args` (a `TrainingArgs`) or `overrides`; epochs from
        `config.fit_epochs` (or `num_epochs=` here). Each epoch: the codes of every batch take `code_iterations`
        projected-gradient steps with D fixed (warm-started from the last epoch's codes while they fit in
        `max_cached_codes` elements), the normal equations are accumulated, then D = (GᵀG/N + ρI)⁻¹ GᵀX/N — exact
        over the whole dataset in O(m² + m·d) memory."""
        options = {"batch_size": 4096, "seed": 0, "max_cached_codes": 200_000_000, "code_iterations": 20}
        options.update({key: getattr(args, key) for key in options if getattr(args, key, None) is not None})
        options.update(overrides)
        epochs = int(options.get("num_epochs") or self.config.fit_epochs)
        d, m = self.config.d_in, self.config.n_latents
        batches = lambda: iter_embedding_batches(dataset, options["batch_size"], d)  # noqa: E731
        try:
            mean, count = running_mean((self.check_input(batch) for batch in batches()), d)
        except ValueError:
            raise ValueError("cannot fit Semi-NMF on an empty dataset") from None
        self.mean.copy_(mean.float() if self.config.center else torch.zeros(d))
        self._init_dictionary_from_data(batches(), torch.Generator().manual_seed(int(options["seed"])))
        cache: Optional[list[torch.Tensor]] = [] if count * m <= options["max_cached_codes"] else None
        history = []
        for _ in tqdm(range(epochs), desc="Semi-NMF", unit="epoch"):
            self._fit_epoch(batches, cache, options["code_iterations"], count)
            codes_per_batch = cache if cache is not None else self._fresh_codes(batches(), options["code_iterations"])
            data_term = sum(
                float(self.objective(self._center(batch), codes)) * batch.shape[0]
                for batch, codes in zip(batches(), codes_per_batch)
            )
            history.append(data_term / count)
        return history

    def _fresh_codes(self, batches: Iterator[torch.Tensor], iterations: int) -> Iterator[torch.Tensor]:
        for batch in batches:
            x_c = self._center(batch)
            yield self.update_codes(x_c, x_c.new_zeros(x_c.shape[0], self.config.n_latents), iterations)

    def _fit_epoch(self, batches, cache: Optional[list[torch.Tensor]], iterations: int, count: int) -> None:
        """One alternating step: codes of every batch with D fixed, then the exact ridge least-squares D."""
        m, d = self.config.n_latents, self.config.d_in
        gram, cross = torch.zeros(m, m, dtype=torch.float64), torch.zeros(m, d, dtype=torch.float64)
        for i, batch in enumerate(batches()):
            x_c = self._center(batch)
            warm = cache is not None and i < len(cache)
            start = cache[i] if warm else x_c.new_zeros(x_c.shape[0], m)
            codes = self.update_codes(x_c, start, iterations)
            if cache is not None:
                if warm:
                    cache[i] = codes
                else:
                    cache.append(codes)
            gram += (codes.T @ codes).double()
            cross += (codes.T @ x_c).double()
        ridge = self.config.dictionary_ridge * torch.eye(m, dtype=torch.float64)
        self.dictionary.copy_(torch.linalg.solve(gram / count + ridge, cross / count).float())

    def _init_dictionary_from_data(self, batches: Iterator[torch.Tensor], generator: torch.Generator) -> None:
        """Atoms start as random centred samples (plus a little noise): a data-shaped start."""
        first = self._center(next(iter(batches)))
        rows = torch.randint(0, first.shape[0], (self.config.n_latents,), generator=generator)
        noise = torch.randn(self.config.n_latents, self.config.d_in, generator=generator)
        self.dictionary.copy_(first[rows] + 0.01 * first.std() * noise)


class NoRotation(DictionaryPreTrainedModel):
    """Signed top-k of `z − b` in the original basis (U = I): CEDAR without its learned rotation."""

    config_class = NoRotationConfig
    base_model_prefix = "no_rotation"

    def __init__(self, config: NoRotationConfig):
        super().__init__(config)
        # b is fitted from data, never by gradients; a frozen parameter (not a buffer) so that the model has
        # the parameter transformers reads its device and dtype from.
        self.b = nn.Parameter(torch.zeros(config.d_in), requires_grad=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            with torch.no_grad():
                self.b.zero_()

    @property
    def concept_directions(self) -> torch.Tensor:
        return torch.eye(self.config.d_in, dtype=self.b.dtype, device=self.b.device)

    def _encode(self, x: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        centred = x - self.b
        return centred if k is None else signed_topk(centred, k)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes + self.b

    def dense_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x, k=self.config.d_in)

    def forward(self, x: torch.Tensor, k: Optional[int] = None, return_dict: bool = True, **kwargs) -> DictionaryOutput:
        x = self.check_input(x)
        flat = x.reshape(-1, self.config.d_in)
        codes = self._encode(flat, self.resolve_k(k))
        x_hat = self._decode(codes)
        return self.l1_output(x, codes, x_hat, return_dict)  # the same L1 objective as CEDAR, for comparison

    @torch.no_grad()
    def fit_embeddings(self, dataset: Any, args: Any = None, **overrides) -> list[float]:
        """b = the mean of the training embeddings (over all tokens), streamed in batches."""
        batch_size = overrides.get("batch_size", getattr(args, "batch_size", None) or 4096)
        batches = iter_embedding_batches(dataset, batch_size, self.config.d_in)
        try:
            mean, _ = running_mean((self.check_input(batch) for batch in batches), self.config.d_in)
        except ValueError:
            raise ValueError("cannot fit the no-rotation baseline on an empty dataset") from None
        self.b.copy_(mean.to(self.b.dtype))
        return []


__all__ = ["SemiNMF", "NoRotation"]
