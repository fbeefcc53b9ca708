"""Image:text mixtures of a multimodal embedding dataset (the stability-vs-mixture studies)."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np


def parse_mixture(spec: Union[str, dict, None]) -> Optional[dict[str, float]]:
    """`"image=1,text=3"` -> `{"image": 1.0, "text": 3.0}`."""
    if spec is None or spec == "" or isinstance(spec, dict):
        return spec or None
    weights = {}
    for part in str(spec).split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"mixture {spec!r}: expected 'modality=weight,...' (e.g. image=1,text=3)") from None
        if not sep or not name.strip() or weights[name.strip()] < 0:
            raise ValueError(f"mixture {spec!r}: expected 'modality=weight,...' with weights >= 0")
    if not any(weights.values()):
        raise ValueError(f"mixture {spec!r}: at least one weight must be > 0")
    return weights


def mixture_rows(dataset, mixture: Union[str, dict], seed: int = 0, column: str = "modality") -> np.ndarray:
    """
    Row indices whose modalities follow the ratio `mixture` (e.g. image:text = 1:3), as many as the data allows:
    the scarcest modality is used whole and the others are subsampled (seeded). Sorted.
    """
    weights = parse_mixture(mixture)
    if column not in dataset.column_names:
        raise ValueError(f"a mixture needs a {column!r} column; dataset columns: {dataset.column_names}")
    modality = np.asarray(dataset.select_columns([column])[column])
    available = {name: np.flatnonzero(modality == name) for name in weights}
    missing = [name for name, w in weights.items() if w > 0 and len(available[name]) == 0]
    if missing:
        raise ValueError(f"mixture asks for {missing} but the {column!r} column holds {sorted(set(modality.tolist()))}")
    scale = min(len(available[name]) / w for name, w in weights.items() if w > 0)
    rng = np.random.default_rng([int(seed), 7919])
    chosen = [rng.choice(available[name], int(np.floor(w * scale + 1e-9)), replace=False)
              for name, w in weights.items() if w > 0]
    return np.sort(np.concatenate(chosen))


__all__ = ["mixture_rows", "parse_mixture"]
