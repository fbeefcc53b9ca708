"""The Hub: push dictionaries and embedding datasets with their cards, render cards, tell Hub ids from paths.

- `push.py`: `push_dictionary_to_hub`, `push_embeddings_to_hub`, `render_model_card`, `render_dataset_card`;
- `cards.py`: what the cards say (values for the Jinja templates in `model_cards/`);
- `ids.py`: `is_hub_id` (a leaf: the data layer uses it to tell a Hub dataset id from a folder).

It imports no model class: models reach it (`DictionaryPreTrainedModel.push_to_hub`), never the other way.
Names load on first use, so `cedar_hf.hub.ids` can be imported without the push machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "is_hub_id": "ids",
    "REPO_ID": "ids",
    "MISSING": "cards",
    "HubPushError": "push",
    "push_dictionary_to_hub": "push",
    "push_embeddings_to_hub": "push",
    "render_dataset_card": "push",
    "render_model_card": "push",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cedar_hf.hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
