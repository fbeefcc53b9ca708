"""The paper's reconstruction and sparsity metrics (CEDAR §5, App. B), on plain tensors.

All functions take `x` `(N, d)` originals, `x_hat` `(N, d)` reconstructions and/or `codes` `(N, n_latents)`, so
they serve every dictionary of the contract (and codes exported from other libraries). Sums are accumulated in
float64. The linear probe (LP) lives in `cedar_hf.evaluation.probe`.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch


def _check_pair(x: torch.Tensor, x_hat: torch.Tensor) -> None:
    if x.shape != x_hat.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but x_hat has shape {tuple(x_hat.shape)}; they must match")
    if x.dim() != 2:
        raise ValueError(f"expected 2-D (N, d) tensors, got shape {tuple(x.shape)}")


def _check_mean(mean: torch.Tensor, d: int) -> torch.Tensor:
    mean = torch.as_tensor(mean).reshape(-1)
    if mean.numel() != d:
        raise ValueError(f"mean has {mean.numel()} entries, expected d={d}")
    return mean


def squared_error_sums(x: torch.Tensor, x_hat: torch.Tensor, mean: torch.Tensor) -> tuple[float, float]:
    """`(Σ‖x − x̂‖², Σ‖x − μ‖²)` in float64: the two running sums of a streamed dataset-level FVU."""
    _check_pair(x, x_hat)
    mean = _check_mean(mean, x.shape[1]).to(x.device, torch.float64)
    x64 = x.double()
    return float((x64 - x_hat.double()).pow(2).sum()), float((x64 - mean).pow(2).sum())


def fvu(x: torch.Tensor, x_hat: torch.Tensor, mean: Optional[torch.Tensor] = None) -> float:
    """
    Dataset-level fraction of variance unexplained (Gao et al. 2024), the FVU of the paper's Table 1:

        FVU = Σ_i ‖x_i − x̂_i‖² / Σ_i ‖x_i − μ‖²

    with μ the **training** mean (pass it; when None the mean of `x` itself is used). Variant `"dataset"`; the
    others (`FVU_VARIANTS`) weight every sample equally and are not the same number.
    """
    mean = x.double().mean(0) if mean is None else mean
    error, total = squared_error_sums(x, x_hat, mean)
    if total <= 0:
        raise ValueError("Σ‖x − μ‖² is zero: FVU is undefined for data equal to its mean")
    return error / total


def fvu_per_sample(x: torch.Tensor, x_hat: torch.Tensor, mean: Optional[torch.Tensor] = None) -> float:
    """
    FVU variant `"msae-loss"`: the mean over samples of `‖x_i − x̂_i‖² / ‖x_i − μ‖²` — MSAE's *training* loss
    (`normalized_mean_squared_error` in WolodjaZ/MSAE `loss.py`), not what MSAE's scoring reports (that is
    `fvu_per_sample_variance`). Kept by name for comparisons; Table 1 uses neither (see `protocols.py`).
    """
    _check_pair(x, x_hat)
    mean = x.double().mean(0) if mean is None else _check_mean(mean, x.shape[1])
    x64 = x.double()
    error = (x64 - x_hat.double()).pow(2).sum(-1)
    total = (x64 - mean.to(x64)).pow(2).sum(-1)
    if bool((total <= 0).any()):
        raise ValueError(f"{int((total <= 0).sum())} sample(s) equal the mean: per-sample FVU is undefined")
    return float((error / total).mean())


def fvu_per_sample_variance(x: torch.Tensor, x_hat: torch.Tensor, mean: Optional[torch.Tensor] = None) -> float:
    """
    FVU variant `"msae-score"`, what MSAE's scoring reports (WolodjaZ/MSAE `metrics.explained_variance_full`,
    averaged over all samples in `score_topk_sae_embeddings.py`): per sample, in the raw embedding space,

        FVU_i = var_over_dims(x_i − x̂_i) / var_over_dims(x_i),   FVU = mean_i FVU_i.

    Each sample is centred by its *own* mean over dimensions, not by μ; `mean` is ignored (accepted so every
    variant has one signature). The variance's 1/(d − 1) cancels in the ratio.
    """
    _check_pair(x, x_hat)
    x64 = x.double()
    error = (x64 - x_hat.double()).var(dim=-1)
    total = x64.var(dim=-1)
    if bool((total <= 0).any()):
        raise ValueError(f"{int((total <= 0).sum())} sample(s) are constant over dimensions: FVU is undefined")
    return float((error / total).mean())


def nmse_per_sample(x: torch.Tensor, x_hat: torch.Tensor, mean: Optional[torch.Tensor] = None) -> float:
    """FVU variant `"nmse-raw"`: mean over samples of `mean_d (x̂ − x)² / mean_d x²`, uncentred (WolodjaZ/MSAE
    `metrics.normalized_mean_squared_error`, defined there but not used by its scoring). `mean` is ignored."""
    _check_pair(x, x_hat)
    x64 = x.double()
    total = x64.pow(2).sum(-1)
    if bool((total <= 0).any()):
        raise ValueError(f"{int((total <= 0).sum())} sample(s) are zero vectors: NMSE is undefined")
    return float(((x64 - x_hat.double()).pow(2).sum(-1) / total).mean())


FVU_VARIANTS = {
    "dataset": fvu,
    "msae-score": fvu_per_sample_variance,
    "msae-loss": fvu_per_sample,
    "nmse-raw": nmse_per_sample,
}
FVU_DEFINITIONS = {
    "dataset": "Σ_i ‖x_i − x̂_i‖² / Σ_i ‖x_i − μ‖², μ the training mean (Gao et al. 2024)",
    "msae-score": "mean_i var_d(x_i − x̂_i) / var_d(x_i), raw embeddings (MSAE's scoring)",
    "msae-loss": "mean_i ‖x_i − x̂_i‖² / ‖x_i − μ‖², μ the training mean (MSAE's training loss)",
    "nmse-raw": "mean_i ‖x_i − x̂_i‖² / ‖x_i‖², raw embeddings",
}


def fvu_variant(name: str):
    """The FVU function called `name` (one of `FVU_VARIANTS`); each takes `(x, x_hat, mean)`."""
    if name not in FVU_VARIANTS:
        raise ValueError(f"unknown FVU variant {name!r}; choose one of {sorted(FVU_VARIANTS)}")
    return FVU_VARIANTS[name]


def all_fvu_variants(x: torch.Tensor, x_hat: torch.Tensor, mean: torch.Tensor) -> dict:
    """Every named FVU variant of one reconstruction: `{name: value}`."""
    return {name: function(x, x_hat, mean) for name, function in FVU_VARIANTS.items()}


def nonzero_counts(codes: torch.Tensor) -> torch.Tensor:
    """Non-zero codes per sample `(N,)` (int64)."""
    if codes.dim() != 2:
        raise ValueError(f"codes must be 2-D (N, n_latents), got shape {tuple(codes.shape)}")
    return (codes != 0).sum(-1)


def mean_active(codes: torch.Tensor) -> float:
    """K: the mean number of non-zero codes per sample."""
    return float(nonzero_counts(codes).double().mean())


def log_binomial(n: int, k: torch.Tensor) -> torch.Tensor:
    """`ln C(n, k)` elementwise via lgamma (float64): `lgamma(n+1) − lgamma(k+1) − lgamma(n−k+1)`."""
    k = torch.as_tensor(k, dtype=torch.float64)
    if bool(((k < 0) | (k > n)).any()):
        raise ValueError(f"every k must lie in [0, n={n}], got min {float(k.min())}, max {float(k.max())}")
    n_ = torch.tensor(float(n), dtype=torch.float64)
    return torch.lgamma(n_ + 1) - torch.lgamma(k + 1) - torch.lgamma(n_ - k + 1)


def information_capacity(codes: torch.Tensor, n_latents: Optional[int] = None) -> float:
    """IC: the mean over samples of `ln C(n, k_i)` (natural log), n the number of latents, k_i the sample's
    non-zero count — the information a k-of-n support can carry (paper App. B)."""
    n = codes.shape[-1] if n_latents is None else int(n_latents)
    return float(log_binomial(n, nonzero_counts(codes)).mean())


def per_sample_cosine(x: torch.Tensor, x_hat: torch.Tensor, mean: Optional[torch.Tensor] = None,
                      eps: float = 1e-12) -> torch.Tensor:
    """Cosine between each original and its reconstruction `(N,)` (float64), after subtracting `mean` from both
    when it is given (a zero vector counts as cosine 0)."""
    _check_pair(x, x_hat)
    x64, y64 = x.double(), x_hat.double()
    if mean is not None:
        mean = _check_mean(mean, x.shape[1]).to(x64)
        x64, y64 = x64 - mean, y64 - mean
    dots = (x64 * y64).sum(-1)
    norms = x64.norm(dim=-1) * y64.norm(dim=-1)
    return torch.where(norms > eps, dots / norms.clamp_min(eps), torch.zeros_like(dots))


def cosine_similarity(x: torch.Tensor, x_hat: torch.Tensor, mean: Optional[torch.Tensor] = None,
                      eps: float = 1e-12) -> float:
    """CS: the mean cosine between each original and its reconstruction — raw (`mean=None`, MSAE's scoring) or
    in the space centred by `mean` (protocol `cedar-hf`)."""
    return float(per_sample_cosine(x, x_hat, mean, eps).mean())


def firing_counts(codes: Iterable[torch.Tensor] | torch.Tensor, n_latents: Optional[int] = None) -> torch.Tensor:
    """How many samples activate each latent `(n_latents,)`, over one code matrix or an iterable of batches."""
    batches = [codes] if isinstance(codes, torch.Tensor) else codes
    counts = None
    for batch in batches:
        batch_counts = (batch.reshape(-1, batch.shape[-1]) != 0).sum(0).long()
        counts = batch_counts if counts is None else counts + batch_counts
    if counts is None:
        if n_latents is None:
            raise ValueError("no code batches given and n_latents unknown")
        return torch.zeros(n_latents, dtype=torch.long)
    return counts


def dead_latents(codes: Iterable[torch.Tensor] | torch.Tensor, n_latents: Optional[int] = None) -> dict:
    """Latents that never fire on the evaluation data: `{"count", "fraction", "indices"}`."""
    counts = firing_counts(codes, n_latents)
    dead = (counts == 0).nonzero().flatten()
    return {"count": int(dead.numel()), "fraction": dead.numel() / counts.numel(), "indices": dead.tolist()}


def summarize_reconstruction(x: torch.Tensor, x_hat: torch.Tensor, codes: torch.Tensor, mean: torch.Tensor,
                             n_latents: Optional[int] = None) -> dict:
    """FVU (dataset level), MSAE's two per-sample FVUs, K, IC, CS (raw) and dead latents of one set of codes."""
    dead = dead_latents(codes, n_latents)
    return {
        "fvu": fvu(x, x_hat, mean),
        "fvu_msae_score": fvu_per_sample_variance(x, x_hat),
        "fvu_msae_loss": fvu_per_sample(x, x_hat, mean),
        "K": mean_active(codes),
        "IC": information_capacity(codes, n_latents),
        "CS": cosine_similarity(x, x_hat),
        "dead_latents": dead["count"],
        "dead_fraction": dead["fraction"],
    }


__all__ = [
    "FVU_DEFINITIONS",
    "FVU_VARIANTS",
    "all_fvu_variants",
    "cosine_similarity",
    "dead_latents",
    "firing_counts",
    "fvu",
    "fvu_per_sample",
    "fvu_per_sample_variance",
    "fvu_variant",
    "information_capacity",
    "log_binomial",
    "mean_active",
    "nmse_per_sample",
    "nonzero_counts",
    "per_sample_cosine",
    "squared_error_sums",
    "summarize_reconstruction",
]
