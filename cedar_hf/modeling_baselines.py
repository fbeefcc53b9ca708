"""The two baselines of the source papers, as models of the same contract.

- `SemiNMF` (Ding, Li & Jordan 2010; Papadimitriou et al. 2025 §3.2): `x − μ ≈ g D`, codes g ≥ 0, dictionary D
  unconstrained, fitted by its own alternating algorithm (`fit_embeddings`), batched over the dataset.
- `NoRotation` (CEDAR paper §4, Study 3): signed top-k of `z − b` in the original basis; only b is fitted.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from .configuration_baselines import NoRotationConfig, SemiNMFConfig
from .modeling_base import DictionaryOutput, DictionaryPreTrainedModel, signed_topk
from .modeling_sae import per_sample_topk

_EPS = 1e-9


def iter_embedding_batches(dataset: Any, batch_size: int, d_in: int) -> Iterator[torch.Tensor]:
    """`(B, d_in)` float32 batches, in order, from a tensor or a `datasets.Dataset` with an `embedding` column
    (rows `(d,)` or token matrices `(N, d)`, flattened token-wise). Reads slice by slice (memory-mapped Arrow)."""
    if isinstance(dataset, torch.Tensor):
        flat = dataset.reshape(-1, dataset.shape[-1])
        for start in range(0, flat.shape[0], batch_size):
            yield flat[start : start + batch_size].float()
        return
    if "embedding" not in getattr(dataset, "column_names", []):
        raise ValueError(f"expected a tensor or a datasets.Dataset with an 'embedding' column, got {type(dataset).__name__}")
    torch_view = dataset.with_format("torch", columns=["embedding"])
    for start in range(0, len(dataset), batch_size):
        rows = torch_view[start : start + batch_size]["embedding"]
        yield rows.reshape(-1, d_in).float() if isinstance(rows, torch.Tensor) else torch.stack(list(rows)).reshape(-1, d_in).float()


def _positive_part(m: torch.Tensor) -> torch.Tensor:
    return (m.abs() + m) / 2


def _negative_part(m: torch.Tensor) -> torch.Tensor:
    return (m.abs() - m) / 2


class SemiNMF(DictionaryPreTrainedModel):
    """
    Semi-NMF: non-negative codes over an unconstrained dictionary. Encoding solves for the codes with the
    dictionary fixed (multiplicative updates, `config.encode_iterations` of them), so it is slower than an SAE's
    encoder; `fit_embeddings` alternates code updates with the exact least-squares dictionary update.
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
    def _initial_codes(self, x_c: torch.Tensor) -> torch.Tensor:
        # Least-squares projection, clipped at 0, plus a floor: multiplicative updates never revive an exact 0.
        codes = torch.relu(torch.linalg.lstsq(self.dictionary.T, x_c.T).solution.T)
        return codes + 0.01 * codes.mean().clamp_min(1e-3)

    def update_codes(self, x_c: torch.Tensor, codes: torch.Tensor, iterations: int) -> torch.Tensor:
        """Ding et al.'s multiplicative rule with the L1 term in the denominator; keeps codes ≥ 0 and does not
        increase `½‖x_c − g D‖² + λ‖g‖₁` for fixed D. (B, d), (B, m) -> (B, m)"""
        D = self.dictionary
        xd = x_c @ D.T  # (B, m)
        gram = D @ D.T  # (m, m)
        xd_pos, xd_neg = _positive_part(xd), _negative_part(xd)
        gram_pos, gram_neg = _positive_part(gram), _negative_part(gram)
        for _ in range(iterations):
            numerator = xd_pos + codes @ gram_neg
            denominator = xd_neg + codes @ gram_pos + self.config.l1_coefficient
            codes = codes * torch.sqrt(numerator / denominator.clamp_min(_EPS))
        return codes

    def _center(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.mean if self.config.center else x

    def _encode(self, x: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        with torch.no_grad():
            x_c = self._center(x)
            codes = self.update_codes(x_c, self._initial_codes(x_c), self.config.encode_iterations)
        return codes if k is None else per_sample_topk(codes, k)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.dictionary + (self.mean if self.config.center else 0.0)

    def objective(self, x_c: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Mean over samples of `½‖x_c − g D‖² + λ‖g‖₁`."""
        residual = x_c - codes @ self.dictionary
        return (0.5 * residual.pow(2).sum(-1) + self.config.l1_coefficient * codes.sum(-1)).mean()

    def forward(self, x: torch.Tensor, k: Optional[int] = None, return_dict: bool = True, **kwargs) -> DictionaryOutput:
        x = self.check_input(x)
        flat = x.reshape(-1, self.config.d_in)
        codes = self._encode(flat, self.resolve_k(k))
        x_hat = self._decode(codes)
        loss = self.objective(self._center(flat), codes)
        out = DictionaryOutput(
            loss=loss,
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
        """Fit μ and D on an embedding dataset; returns the objective after each epoch (non-increasing when the
        codes fit in `max_cached_codes` elements and are warm-started, the classical alternating algorithm).

        Reads `batch_size`, `num_epochs`, `seed` from `args` (a `TrainingArgs`) or `overrides`. Each epoch: codes
        of every batch are updated with D fixed, the normal equations `Σ gᵀg`, `Σ gᵀx` are accumulated, then
        `D = (Σ gᵀg)⁻¹ Σ gᵀx` — exact least squares over the whole dataset, in memory O(m² + m·d)."""
        options = {"batch_size": 4096, "num_epochs": 20, "seed": 0, "max_cached_codes": 200_000_000, "code_iterations": 10}
        options.update({key: getattr(args, key) for key in options if getattr(args, key, None) is not None})
        options.update(overrides)
        d, m = self.config.d_in, self.config.n_latents
        batches = lambda: iter_embedding_batches(dataset, options["batch_size"], d)  # noqa: E731
        total, count = torch.zeros(d, dtype=torch.float64), 0
        for batch in batches():
            batch = self.check_input(batch)
            total += batch.double().sum(0)
            count += batch.shape[0]
        if count == 0:
            raise ValueError("cannot fit Semi-NMF on an empty dataset")
        self.mean.copy_((total / count).float() if self.config.center else torch.zeros(d))
        generator = torch.Generator().manual_seed(int(options["seed"]))
        self._init_dictionary_from_data(batches(), generator)
        cache: Optional[list[torch.Tensor]] = [] if count * m <= options["max_cached_codes"] else None
        history = []
        for _ in tqdm(range(int(options["num_epochs"])), desc="Semi-NMF", unit="epoch"):
            self._fit_epoch(batches, cache, options["code_iterations"])
            objective = sum(
                float(self.objective(self._center(batch), codes)) * batch.shape[0]
                for batch, codes in zip(batches(), cache or self._fresh_codes(batches(), options["code_iterations"]))
            )
            history.append(objective / count)
        return history

    def _fresh_codes(self, batches: Iterator[torch.Tensor], iterations: int) -> Iterator[torch.Tensor]:
        for batch in batches:
            x_c = self._center(batch)
            yield self.update_codes(x_c, self._initial_codes(x_c), iterations)

    def _fit_epoch(self, batches, cache: Optional[list[torch.Tensor]], iterations: int) -> None:
        """One alternating step: codes of every batch with D fixed (warm-started from `cache` when kept), then
        the exact least-squares D from the accumulated normal equations."""
        m, d = self.config.n_latents, self.config.d_in
        gram, cross = torch.zeros(m, m, dtype=torch.float64), torch.zeros(m, d, dtype=torch.float64)
        for i, batch in enumerate(batches()):
            x_c = self._center(batch)
            warm = cache is not None and i < len(cache)
            codes = self.update_codes(x_c, cache[i] if warm else self._initial_codes(x_c), iterations)
            if cache is not None:
                if warm:
                    cache[i] = codes
                else:
                    cache.append(codes)
            gram += (codes.T @ codes).double()
            cross += (codes.T @ x_c).double()
        ridge = 1e-8 * torch.diagonal(gram).mean().clamp_min(1e-12)
        self.dictionary.copy_(torch.linalg.solve(gram + ridge * torch.eye(m, dtype=torch.float64), cross).float())

    def _init_dictionary_from_data(self, batches: Iterator[torch.Tensor], generator: torch.Generator) -> None:
        """Atoms start as random centred samples (plus a little noise), a k-means++-free but data-shaped start."""
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
        total, count = torch.zeros(self.config.d_in, dtype=torch.float64), 0
        for batch in iter_embedding_batches(dataset, batch_size, self.config.d_in):
            batch = self.check_input(batch)
            total += batch.double().sum(0)
            count += batch.shape[0]
        if count == 0:
            raise ValueError("cannot fit the no-rotation baseline on an empty dataset")
        self.b.copy_((total / count).to(self.b.dtype))
        return []


__all__ = ["SemiNMF", "NoRotation", "iter_embedding_batches"]
