"""FVU-matched comparison (paper App. B): zero every code with |value| < τ and binary-search τ per model until the
dataset-level FVU hits a target. Starts from `model.dense_codes(x)` (the loosest sparsity the model supports) and
decodes with `model.decode`, so it serves every model of the contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator, Optional

import torch
from tqdm.auto import tqdm

from .metrics import fvu, log_binomial


def threshold_codes(codes: torch.Tensor, tau: float) -> torch.Tensor:
    """Zero every code with `|value| < tau` (signs kept)."""
    return codes * (codes.abs() >= tau)


class DenseCodes:
    """`model.dense_codes(x)` over batches, kept in memory when they fit in `max_bytes`, else recomputed on each
    pass (so a 50k × 6144 sweep never needs more than one batch of codes)."""

    def __init__(self, model, x: torch.Tensor, batch_size: int = 4096, max_bytes: int = 2 << 30):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.model, self.x, self.batch_size = model, x, batch_size
        n_latents = int(model.config.n_latents)
        self.n_latents = n_latents
        self._cache: Optional[list[torch.Tensor]] = None
        if x.shape[0] * n_latents * 4 <= max_bytes:
            self._cache = list(self._compute())
        self.max_abs = max(float(codes.abs().max()) for codes in self)

    @torch.no_grad()
    def _compute(self) -> Iterator[torch.Tensor]:
        for xb in self.x.split(self.batch_size):
            yield self.model.dense_codes(xb).float()

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self._cache) if self._cache is not None else self._compute()


@dataclass
class ThresholdedOutput:
    """Reconstructions `(N, d)`, non-zeros per sample `(N,)` and samples firing per latent `(n_latents,)` at τ."""

    tau: float
    reconstruction: torch.Tensor
    counts: torch.Tensor
    firing: torch.Tensor


@torch.no_grad()
def apply_threshold(model, codes: DenseCodes, tau: float) -> ThresholdedOutput:
    """Decode the dense codes with every |code| < τ zeroed."""
    recon, counts, firing = [], [], torch.zeros(codes.n_latents, dtype=torch.long)
    for batch in codes:
        kept = threshold_codes(batch, tau)
        nonzero = kept != 0
        counts.append(nonzero.sum(-1))
        firing += nonzero.sum(0)
        recon.append(model.decode(kept).float())
    return ThresholdedOutput(tau, torch.cat(recon), torch.cat(counts), firing)


@dataclass
class ThresholdSearch:
    """Result of `search_threshold`: τ, the FVU reached there, whether it lies within `tolerance` of the target,
    and every (τ, FVU, K, IC) visited on the way (a free sparsity–reconstruction curve for Pareto plots)."""

    target: float
    tau: float
    fvu: float
    reached: bool
    tolerance: float
    iterations: int
    min_fvu: float
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _point(model, x, codes, tau, mean) -> tuple[dict, ThresholdedOutput]:
    out = apply_threshold(model, codes, tau)
    return {
        "tau": tau,
        "fvu": fvu(x, out.reconstruction, mean),
        "K": float(out.counts.double().mean()),
        "IC": float(log_binomial(codes.n_latents, out.counts).mean()),
    }, out


def search_threshold(
    model,
    x: torch.Tensor,
    target: float,
    mean: torch.Tensor,
    tolerance: float = 0.005,
    search_tolerance: Optional[float] = None,
    max_iterations: int = 50,
    codes: Optional[DenseCodes] = None,
    progress: bool = False,
) -> ThresholdSearch:
    """
    Binary-search τ so that the dataset-level FVU (training mean `mean`) of `decode(threshold(dense_codes(x), τ))`
    lands within `search_tolerance` (default `tolerance / 5`) of `target`. FVU grows with τ (more codes zeroed), so
    bisection between τ = 0 and τ = max|code| converges. `reached` is False when even τ = 0 gives FVU above
    `target + tolerance` (the model cannot reconstruct that well) or the search ends farther than `tolerance`.
    """
    if not 0 < target < 1:
        raise ValueError(f"target FVU={target} must be in (0, 1)")
    if tolerance <= 0:
        raise ValueError(f"tolerance={tolerance} must be > 0")
    search_tolerance = tolerance / 5 if search_tolerance is None else search_tolerance
    codes = DenseCodes(model, x) if codes is None else codes
    history = []

    def visit(tau: float) -> dict:
        point, _ = _point(model, x, codes, tau, mean)
        history.append(point)
        return point

    low, high = 0.0, codes.max_abs * (1 + 1e-6)
    best = visit(low)
    min_fvu = best["fvu"]
    bar = tqdm(total=max_iterations, desc=f"τ for FVU {target:.3f}", disable=not progress, leave=False)
    iterations = 0
    while min_fvu <= target + tolerance and abs(best["fvu"] - target) > search_tolerance and iterations < max_iterations:
        middle = visit((low + high) / 2)
        iterations += 1
        bar.update(1)
        if abs(middle["fvu"] - target) < abs(best["fvu"] - target):
            best = middle
        if middle["fvu"] <= target:
            low = middle["tau"]
        else:
            high = middle["tau"]
    bar.close()
    return ThresholdSearch(
        target=target,
        tau=best["tau"],
        fvu=best["fvu"],
        reached=abs(best["fvu"] - target) <= tolerance,
        tolerance=tolerance,
        iterations=iterations,
        min_fvu=min_fvu,
        history=history,
    )


__all__ = ["DenseCodes", "ThresholdSearch", "ThresholdedOutput", "apply_threshold", "search_threshold",
           "threshold_codes"]
