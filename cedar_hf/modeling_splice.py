"""SpLiCE (Bhalla et al. 2024) as a model of the shared contract: no training, the vocabulary is the dictionary.

Deliberate deviations from the reference code (github.com/AI4LIFE-GROUP/SpLiCE), each for the contract:
- **Solver**: an exact non-negative lasso by FISTA on a per-sample working set of the most correlated atoms,
  grown until the KKT conditions hold over the whole vocabulary (the reference runs ADMM with a dense
  V × V Cholesky factor, or sklearn's coordinate descent one sample at a time). Same objective and minimiser (the
  tests compare with sklearn's `Lasso(positive=True)`), float64 inside like Semi-NMF's solve.
- **Code scale**: the codes are `‖normalize(z) − μ‖ · w*`, the lasso weights times the centred input's norm (the
  reference returns `w*`, fitted to the renormalised centred vector). A positive per-sample factor: the support
  and the order within a sample are unchanged, and `decode` stays linear — `decode(codes) = codes @ C + μ`
  reconstructs `normalize(z)` (the reference renormalises twice: `normalize(normalize(w C) + μ)`, which is not
  linear in the codes).
- **Reconstruction norm**: `decode` returns the unit-sphere embedding; the input's own norm is not restored
  (cosines, and anything computed on normalised embeddings, are unaffected).
- `k` (optional) keeps each sample's k largest weights, for comparisons at matched K.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from .configuration_splice import SpliceConfig
from .data.stream import iter_embedding_batches, running_mean
from .modeling_base import DictionaryOutput, DictionaryPreTrainedModel
from .modeling_sae import per_sample_topk

ENCODE_BATCH = 128  # samples solved together: the working set's (B, m, d) gather stays ~25 MB in float64


def centred_concepts(vocabulary_embeddings: torch.Tensor) -> torch.Tensor:
    """SpLiCE's atoms: `normalize(normalize(t) − mean(normalize(t)))` over the vocabulary. (V, d) -> (V, d)"""
    unit = nn.functional.normalize(torch.as_tensor(vocabulary_embeddings).double(), dim=-1)
    return nn.functional.normalize(unit - unit.mean(0, keepdim=True), dim=-1)


def nonnegative_lasso(v: torch.Tensor, atoms: torch.Tensor, penalty: float, max_iterations: int = 500,
                      tolerance: float = 1e-6, working_set: int = 256, max_rounds: int = 20) -> torch.Tensor:
    """`argmin_{w ≥ 0} ‖v − w C‖² + λ‖w‖₁` for every row of `v`, in float64. (B, d), (V, d) -> (B, V)

    FISTA (step 1/L, L = 2‖C_S‖²) on each sample's working set S of `working_set` atoms (its current support plus
    the atoms whose gradient most violates optimality), then the KKT check over all V atoms: a zero weight is
    optimal iff `2 (v − w C)·c_j ≤ λ`. Rounds repeat until no atom violates it by more than `tolerance·max(λ, 1)`.
    """
    v, C = v.double(), atoms.double()
    B, V = v.shape[0], C.shape[0]
    m = min(working_set, V)
    w = v.new_zeros(B, V)
    rows = torch.arange(B)[:, None]
    for _round in range(max_rounds):
        gradient_room = 2 * (v - w @ C) @ C.T - penalty  # > 0 where raising a weight lowers the objective
        gradient_room = torch.where(w > 0, torch.full_like(gradient_room, float("inf")), gradient_room)
        if float(gradient_room.max()) <= tolerance * max(penalty, 1.0):
            break  # KKT holds over the whole vocabulary: w is the minimiser
        S = gradient_room.topk(m, dim=-1).indices  # (B, m): the support (inf) first, then the worst violators
        C_S = C[S]  # (B, m, d)
        gram = C_S @ C_S.transpose(1, 2)  # (B, m, m)
        vc = (C_S @ v[:, :, None]).squeeze(-1)  # (B, m)
        step = 1.0 / (2 * torch.linalg.matrix_norm(gram, ord=2).clamp_min(1e-12))  # (B,)
        w_S = w[rows, S]
        previous, y, t = w_S, w_S, 1.0
        for _iteration in range(max_iterations):
            grad = 2 * ((y[:, None, :] @ gram).squeeze(1) - vc)
            w_S = torch.relu(y - step[:, None] * (grad + penalty))
            t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
            y = w_S + ((t - 1) / t_next) * (w_S - previous)
            moved = float((w_S - previous).abs().max())
            previous, t = w_S, t_next
            if moved <= tolerance:
                break
        w = v.new_zeros(B, V)
        w[rows, S] = w_S
    return w


class SpliceModel(DictionaryPreTrainedModel):
    """
    SpLiCE: codes are a sparse non-negative decomposition of the centred unit embedding over the centred
    vocabulary embeddings (see `configuration_splice.SpliceConfig` for the math and the module docstring for the
    deviations from the reference code). Build it with `SpliceModel.from_vocabulary(embeddings, words, data)`.
    """

    config_class = SpliceConfig
    base_model_prefix = "splice"

    def __init__(self, config: SpliceConfig):
        super().__init__(config)
        # Not trained: frozen parameters (not buffers) so that transformers reads the model's dtype from them.
        self.concepts = nn.Parameter(torch.empty(config.n_latents, config.d_in), requires_grad=False)
        self.mean = nn.Parameter(torch.zeros(config.d_in), requires_grad=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self:
            with torch.no_grad():
                self.concepts.copy_(nn.functional.normalize(torch.randn_like(self.concepts), dim=-1))
                self.mean.zero_()

    @classmethod
    def from_vocabulary(cls, vocabulary_embeddings: torch.Tensor, words: Optional[Sequence[str]] = None,
                        data: Any = None, **config_kwargs) -> "SpliceModel":
        """A SpLiCE model whose atoms are the centred `vocabulary_embeddings` (V, d); `data` (embeddings or a
        dataset) gives the input mean μ. With `words`, each latent is named by its word (score 1.0: the atom is
        the word's own centred embedding)."""
        vocabulary_embeddings = torch.as_tensor(vocabulary_embeddings)
        if words is not None and len(words) != vocabulary_embeddings.shape[0]:
            raise ValueError(f"{len(words)} words for {vocabulary_embeddings.shape[0]} vocabulary embeddings")
        V, d = vocabulary_embeddings.shape
        model = cls(SpliceConfig(d_in=d, n_latents=V, **config_kwargs))
        with torch.no_grad():
            model.concepts.copy_(centred_concepts(vocabulary_embeddings).float())
        if data is not None:
            model.fit_embeddings(data)
        if words is not None:
            model.concept_names = {
                "format": "cedar-hf-concept-names/1", "vocabulary": f"SpLiCE atoms ({V} entries)", "prompt": None,
                "backbone": model.config.backbone, "center": "vocabulary", "signed": False, "weak_below": 0.3,
                "names": [{"latent": i, "name": str(word), "score": 1.0, "sign": 1, "weak": False,
                           "alternatives": [[str(word), 1.0]]} for i, word in enumerate(words)],
            }
        return model

    @property
    def concept_directions(self) -> torch.Tensor:
        return self.concepts

    def set_mean(self, mean: torch.Tensor) -> None:
        """μ: the mean of the unit-normalised input embeddings (`fit_embeddings` computes it from data)."""
        with torch.no_grad():
            self.mean.copy_(self.check_mean(mean, self.mean))

    @torch.no_grad()
    def fit_embeddings(self, dataset: Any, args: Any = None, **overrides) -> list[float]:
        """μ = the mean of `normalize(z)` over the data (streamed); the atoms are not trained."""
        batch_size = overrides.get("batch_size", getattr(args, "batch_size", None) or 4096)
        batches = iter_embedding_batches(dataset, batch_size, self.config.d_in)
        try:
            mean, _ = running_mean((nn.functional.normalize(self.check_input(b), dim=-1) for b in batches),
                                   self.config.d_in)
        except ValueError:
            raise ValueError("cannot compute SpLiCE's input mean from an empty dataset") from None
        self.set_mean(mean)
        return []

    def _encode(self, x: torch.Tensor, k: Optional[int]) -> torch.Tensor:
        with torch.no_grad():
            centred = nn.functional.normalize(x.double(), dim=-1) - self.mean.double()
            scale = centred.norm(dim=-1, keepdim=True)  # (B, 1)
            v = centred / scale.clamp_min(1e-12)
            blocks = [nonnegative_lasso(v[s : s + ENCODE_BATCH], self.concepts, self.config.l1_penalty,
                                        self.config.max_iterations, self.config.tolerance, self.config.working_set)
                      for s in range(0, v.shape[0], ENCODE_BATCH)]
            codes = (torch.cat(blocks) if blocks else v.new_zeros(0, self.config.n_latents)) * scale
        codes = codes.to(x.dtype)
        return codes if k is None else per_sample_topk(codes, k)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.concepts + self.mean

    def forward(self, x: torch.Tensor, k: Optional[int] = None, return_dict: bool = True, **kwargs) -> DictionaryOutput:
        x = self.check_input(x)
        flat = x.reshape(-1, self.config.d_in)
        codes = self._encode(flat, self.resolve_k(k))
        x_hat = self._decode(codes)
        target = nn.functional.normalize(flat, dim=-1)  # what SpLiCE reconstructs
        loss = (target - x_hat).pow(2).sum(-1).mean()
        out = DictionaryOutput(loss=loss, reconstruction=x_hat.reshape(x.shape),
                               codes=codes.reshape(*x.shape[:-1], self.config.n_latents), reconstruction_loss=loss,
                               fvu=self.batch_fvu(flat, x_hat).detach(), l0=self.mean_l0(codes).detach())
        return out if return_dict else out.to_tuple()


__all__ = ["SpliceModel", "centred_concepts", "nonnegative_lasso"]
