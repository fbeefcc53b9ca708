"""The Hub: push dictionaries and embedding datasets with their cards, render cards, tell Hub ids from paths.

- `push.py`: `push_dictionary_to_hub`, `push_embeddings_to_hub`, `render_model_card`, `render_dataset_card`;
- `cards.py`: what the cards say (values for the Jinja templates in `model_cards/`);
- `ids.py`: `is_hub_id`.

It imports no model class: models reach it (`DictionaryPreTrainedModel.push_to_hub`), never the other way.
"""

from .ids import is_hub_id
from .push import (
    MISSING,
    HubPushError,
    push_dictionary_to_hub,
    push_embeddings_to_hub,
    render_dataset_card,
    render_model_card,
)

__all__ = [
    "HubPushError",
    "MISSING",
    "is_hub_id",
    "push_dictionary_to_hub",
    "push_embeddings_to_hub",
    "render_dataset_card",
    "render_model_card",
]
