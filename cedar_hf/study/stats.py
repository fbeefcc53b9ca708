"""The statistics of the study analysis: Clopper–Pearson intervals, the sign test, the Wilcoxon signed-rank test."""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import stats


def binomial_ci(successes: int, n: int, level: float = 0.95) -> Optional[list[float]]:
    """Clopper–Pearson interval of a proportion (None when n = 0)."""
    if n == 0:
        return None
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def sign_test(differences) -> dict:
    """Two-sided sign test of paired differences (zeros dropped): positives, negatives, p, CI of the positive share."""
    d = np.asarray(list(differences), dtype=float)
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    p = float(stats.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else None
    return {"positive": pos, "negative": neg, "ties": int((d == 0).sum()), "p": p,
            "positive_share": pos / (pos + neg) if pos + neg else None, "ci95": binomial_ci(pos, pos + neg)}


def wilcoxon(differences) -> dict:
    """Two-sided Wilcoxon signed-rank test (zeros dropped; scipy picks exact or normal-approximation p)."""
    d = np.asarray(list(differences), dtype=float)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return {"n": int(d.size), "nonzero": 0, "statistic": None, "p": None}
    result = stats.wilcoxon(nonzero)
    return {"n": int(d.size), "nonzero": int(nonzero.size), "statistic": float(result.statistic),
            "p": float(result.pvalue)}


def share_errors(shares, cis) -> np.ndarray:
    """`(2, n)` error-bar lengths below/above each share from its interval (0 where there is none)."""
    shares = np.asarray(shares, dtype=float)
    low = np.array([s - ci[0] if ci else 0.0 for s, ci in zip(shares, cis)])
    high = np.array([ci[1] - s if ci else 0.0 for s, ci in zip(shares, cis)])
    return np.clip(np.vstack([low, high]), 0.0, None)


__all__ = ["binomial_ci", "share_errors", "sign_test", "wilcoxon"]
