"""Building what a training run starts from: a dictionary of a named architecture, config overrides from
`key=value` strings, and a held-out split of a dataset (library logic behind `cedar-hf train`)."""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..data import load_dataset
from ..hub.ids import is_hub_id
from ..modeling_base import DictionaryPreTrainedModel
from ..registry import dictionary_classes

# Config fields that decide the shape of the weights: a pretrained start cannot change them.
_SHAPE_FIELDS = {"d_in", "n_latents", "expansion_factor", "levels"}


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


def build_dictionary(architecture: Optional[str], overrides: Union[Sequence[str], dict], d_in: int, seed: int,
                     init_from: Optional[str] = None):
    """A fresh model of `architecture` (a model_type or alias; None = CEDAR) initialised under `seed`, with config
    `overrides`; or the pretrained `init_from` dictionary (its own architecture; a different `architecture`
    is refused) with the overrides set on its config."""
    overrides = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    torch.manual_seed(seed)
    if init_from:
        return _pretrained_start(init_from, architecture, overrides, d_in)
    config_class, model_class = dictionary_classes(architecture or "cedar")
    return model_class(config_class(**{"d_in": d_in, **overrides}))


def _pretrained_start(init_from: str, architecture: Optional[str], overrides: dict, d_in: int):
    if not os.path.isdir(init_from) and not is_hub_id(init_from):
        raise ValueError(f"init_from={init_from!r} is not a dictionary folder (nor a Hub id)")
    model = DictionaryPreTrainedModel.from_pretrained(init_from)  # refuses a folder that is not a dictionary
    if architecture is not None and dictionary_classes(architecture)[1] is not type(model):
        raise ValueError(f"init_from={init_from!r} is a {model.config.model_type!r} dictionary but architecture="
                         f"{architecture!r}; drop --architecture to continue from it, or start a fresh model")
    if model.config.d_in != d_in:
        raise ValueError(f"init_from={init_from!r} reads {model.config.d_in}-d embeddings but the training data is "
                         f"{d_in}-d")
    unknown = sorted(key for key in overrides if not hasattr(model.config, key))
    fixed = sorted(key for key in overrides if key in _SHAPE_FIELDS and overrides[key] != getattr(model.config, key))
    if unknown or fixed:
        raise ValueError(f"config overrides {unknown + fixed} cannot be applied to the pretrained {init_from!r} "
                         f"({'unknown fields ' + str(unknown) if unknown else ''}"
                         f"{' shape fields ' + str(fixed) if fixed else ''}); a fresh model takes them")
    for key, value in overrides.items():
        setattr(model.config, key, value)
    return model


def training_datasets(data, eval_data=None, eval_fraction: float = 0.0, seed: int = 0):
    """`(train, eval or None)`: the held-out set is `eval_data`, or a seeded `eval_fraction` of `data`; both at
    once is refused (one of them would be ignored)."""
    dataset = load_dataset(data)
    if eval_data is not None and eval_fraction:
        raise ValueError(f"eval_fraction={eval_fraction} and eval_data={eval_data!r} both given: choose one "
                         "(the held-out set is either a separate dataset or a share of the training rows)")
    if eval_data is not None:
        return dataset, load_dataset(eval_data)
    if eval_fraction:
        return split_eval(dataset, eval_fraction, seed)
    return dataset, None


def split_eval(dataset, fraction: float, seed: int = 0):
    """(train, eval) subsets of a dataset, a seeded split; only index mappings are held in memory."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"eval_fraction={fraction} must be in (0, 1)")
    order = np.random.default_rng([seed, 31337]).permutation(len(dataset))
    n_eval = max(1, int(round(fraction * len(dataset))))
    return (dataset.select(np.sort(order[n_eval:]).tolist(), keep_in_memory=True),
            dataset.select(np.sort(order[:n_eval]).tolist(), keep_in_memory=True))


__all__ = ["build_dictionary", "parse_overrides", "split_eval", "training_datasets"]
