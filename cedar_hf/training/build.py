"""Building what a training run starts from: a dictionary of a named architecture, config overrides from
`key=value` strings, and a held-out split of a dataset (library logic behind `cedar-hf train`)."""

from __future__ import annotations

import json
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..registry import dictionary_classes


def parse_overrides(items: Sequence[str]) -> dict:
    """`["k=16", "parametrization=cayley"]` -> `{"k": 16, "parametrization": "cayley"}` (values parsed as JSON)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"config override {item!r} must look like key=value")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def build_dictionary(architecture: str, overrides: Union[Sequence[str], dict], d_in: int, seed: int,
                     init_from: Optional[str] = None):
    """A fresh model of `architecture` (a model_type or alias) initialised under `seed`, with config
    `overrides`; or the pretrained `init_from` dictionary with the overrides set on its config."""
    config_class, model_class = dictionary_classes(architecture)
    overrides = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    torch.manual_seed(seed)
    if init_from:
        model = model_class.from_pretrained(init_from)
        for key, value in overrides.items():
            setattr(model.config, key, value)
        return model
    return model_class(config_class(**{"d_in": d_in, **overrides}))


def split_eval(dataset, fraction: float, seed: int = 0):
    """(train, eval) subsets of a dataset, a seeded split; only index mappings are held in memory."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"eval_fraction={fraction} must be in (0, 1)")
    order = np.random.default_rng([seed, 31337]).permutation(len(dataset))
    n_eval = max(1, int(round(fraction * len(dataset))))
    return (dataset.select(np.sort(order[n_eval:]).tolist(), keep_in_memory=True),
            dataset.select(np.sort(order[:n_eval]).tolist(), keep_in_memory=True))


__all__ = ["build_dictionary", "parse_overrides", "split_eval"]
