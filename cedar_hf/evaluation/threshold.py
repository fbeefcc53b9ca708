"""FVU-matched comparison (paper App. B): zero every code with |value| < τ and binary-search τ per model until an
FVU (a named variant, see `metrics.FVU_VARIANTS`; the protocol picks it) hits a target.

Starts from `model.dense_codes(x)` — the *dense* codes: all ReLU pre-activations for the SAEs (MSAE thresholds
those too), all D rotated coordinates for CEDAR, the unconstrained solution for the other models — and decodes
with `model.decode`, so it serves every model of the contract and every target between the FVU at τ = 0 and the
FVU with every code zeroed (≈ 1) is reachable. FVU(τ) need not be monotone (an SAE reading *all* its positive
pre-activations can reconstruct worse than with a few), so the search first scans a shared ladder of τ (the
quantiles keeping 1, ½, ¼, … of the non-zero codes), brackets the largest τ whose FVU is at most the target, and
bisects inside that bracket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator, Optional

import torch
from tqdm.auto import tqdm

from .metrics import fvu_variant, log_binomial


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
    """Result of `search_threshold`: τ, the FVU reached there (variant `fvu_variant`), whether it lies within
    `tolerance` of the target, the FVU range the model covers (`fvu_at_zero` at τ = 0, `min_fvu` the lowest seen,
    `max_fvu` with every code zeroed), and every (τ, FVU, K, IC) visited (a free curve for Pareto plots)."""

    target: float
    tau: float
    fvu: float
    reached: bool
    tolerance: float
    iterations: int
    min_fvu: float
    history: list = field(default_factory=list)
    fvu_at_zero: float = float("nan")
    max_fvu: float = float("nan")
    fvu_variant: str = "dataset"

    def to_dict(self) -> dict:
        return asdict(self)


def _point(model, x, codes, tau, mean, fvu_name: str = "dataset") -> tuple[dict, ThresholdedOutput]:
    out = apply_threshold(model, codes, tau)
    return {
        "tau": tau,
        "fvu": fvu_variant(fvu_name)(x, out.reconstruction, mean),
        "K": float(out.counts.double().mean()),
        "IC": float(log_binomial(codes.n_latents, out.counts).mean()),
    }, out


def threshold_ladder(codes: DenseCodes, steps: int = 12, sample: int = 1 << 20, seed: int = 0) -> list[float]:
    """τ = 0, the |code| quantiles that keep 1/2, 1/4, …, 1/2^steps of the non-zero codes (from a seeded sample
    of at most `sample` of them), and τ just above max|code| (every code zeroed)."""
    generator = torch.Generator().manual_seed(seed)
    per_batch = max(1, sample // max(1, -(-codes.x.shape[0] // codes.batch_size)))
    parts = []
    for batch in codes:
        nonzero = batch[batch != 0].abs()
        if nonzero.numel() > per_batch:
            nonzero = nonzero[torch.randint(nonzero.numel(), (per_batch,), generator=generator)]
        parts.append(nonzero)
    values = torch.cat(parts)
    top = codes.max_abs * (1 + 1e-6)
    if values.numel() == 0:
        return [0.0, top]
    quantiles = torch.tensor([1 - 0.5 ** j for j in range(1, steps + 1)], dtype=torch.float64)
    ladder = torch.quantile(values.double(), quantiles).tolist()
    return sorted({0.0, top, *[float(t) for t in ladder]})


def scan_thresholds(model, x: torch.Tensor, mean: torch.Tensor, codes: DenseCodes, fvu: str = "dataset",
                    steps: int = 12, progress: bool = False) -> list[dict]:
    """FVU, K and IC at every τ of `threshold_ladder` (sorted by τ): the shared start of every target's search."""
    taus = threshold_ladder(codes, steps)
    return [_point(model, x, codes, tau, mean, fvu)[0]
            for tau in tqdm(taus, desc="τ ladder", disable=not progress, leave=False)]


def _bracket(scan: list[dict], target: float) -> tuple[Optional[int], dict]:
    """Index of the largest-τ scan point with FVU ≤ target (None if none) and where the search starts: the closer
    to the target of that point and the next one, or, when no point is ≤ target, the scan point closest to it.
    The start stays inside the bracket: a scan point of the other branch at about the same FVU (a TopK SAE
    reading every positive pre-activation at τ = 0 reconstructs worse than with its k) must not end the search —
    it did, with K 363 instead of 37 at FVU 0.25."""
    below = [i for i, p in enumerate(scan) if p["fvu"] <= target]
    if not below:
        return None, min(scan, key=lambda p: abs(p["fvu"] - target))
    return below[-1], min(scan[below[-1]:below[-1] + 2], key=lambda p: abs(p["fvu"] - target))


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
    fvu: str = "dataset",
    scan: Optional[list[dict]] = None,
) -> ThresholdSearch:
    """
    Find τ so that the FVU variant `fvu` (training mean `mean`) of `decode(threshold(dense_codes(x), τ))` lands
    within `search_tolerance` (default `tolerance / 5`) of `target`: bracket it on the τ ladder (`scan`, computed
    when not given; pass one `scan_thresholds` result to share it between targets), then bisect. `reached` is
    False when no τ gets within `tolerance` (e.g. the FVU at τ = 0 is already above `target + tolerance`).
    """
    if not 0 < target < 1:
        raise ValueError(f"target FVU={target} must be in (0, 1)")
    if tolerance <= 0:
        raise ValueError(f"tolerance={tolerance} must be > 0")
    search_tolerance = tolerance / 5 if search_tolerance is None else search_tolerance
    codes = DenseCodes(model, x) if codes is None else codes
    scan = scan_thresholds(model, x, mean, codes, fvu) if scan is None else scan
    history = list(scan)
    index, best = _bracket(scan, target)
    iterations = 0
    if index is not None and index + 1 < len(scan):
        low, high = scan[index]["tau"], scan[index + 1]["tau"]
        bar = tqdm(total=max_iterations, desc=f"τ for FVU {target:.3f}", disable=not progress, leave=False)
        while abs(best["fvu"] - target) > search_tolerance and iterations < max_iterations:
            middle = _point(model, x, codes, (low + high) / 2, mean, fvu)[0]
            history.append(middle)
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
        target=target, tau=best["tau"], fvu=best["fvu"], reached=abs(best["fvu"] - target) <= tolerance,
        tolerance=tolerance, iterations=iterations, min_fvu=min(p["fvu"] for p in scan), history=history,
        fvu_at_zero=scan[0]["fvu"], max_fvu=scan[-1]["fvu"], fvu_variant=fvu,
    )


__all__ = ["DenseCodes", "ThresholdSearch", "ThresholdedOutput", "apply_threshold", "scan_thresholds",
           "search_threshold", "threshold_codes", "threshold_ladder"]
