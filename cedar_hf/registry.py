"""The registry of dictionary architectures: a leaf module (it imports no other cedar_hf module).

Each architecture is its config class (which carries `model_type`, `aliases` — short names for
`cedar-hf train --architecture` — and `card_title` / `card_description` for the model card) and its model
class. Adding a variant means writing its config and model files and adding one `register_dictionary` line to
`cedar_hf/__init__.py`. Registration also tells transformers' Auto classes, so `AutoModel.from_pretrained`
loads every dictionary after `import cedar_hf`, with no `trust_remote_code`.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

DICTIONARY_CLASSES: dict[str, tuple[type, type]] = {}
"""model_type -> (config class, model class) of every registered dictionary (CEDAR, the SAEs, the baselines)."""


def register_dictionary(config_class: type, model_class: type) -> None:
    """Register a dictionary architecture here and with `AutoConfig` / `AutoModel` (idempotent)."""
    register_auto(config_class, model_class)
    DICTIONARY_CLASSES[config_class.model_type] = (config_class, model_class)


def register_auto(config_class: type, model_class: type) -> None:
    """Register a config/model pair with transformers' Auto classes only (e.g. a backbone wrapped with a
    dictionary, which is not itself a dictionary)."""
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)


def aliases() -> dict[str, str]:
    """alias -> model_type for every registered dictionary (from each config's `aliases`)."""
    return {alias: model_type for model_type, (config_class, _) in DICTIONARY_CLASSES.items()
            for alias in getattr(config_class, "aliases", ())}


def resolve_architecture(name: str) -> str:
    """The registered model_type named by `name`: a model_type, one of its aliases, or `<name>_sae`
    (case and `-`/`_` ignored). Raises a `ValueError` listing the choices otherwise."""
    normalized = name.strip().lower().replace("-", "_")
    known = aliases()
    for candidate in (normalized, known.get(normalized), f"{normalized}_sae"):
        if candidate in DICTIONARY_CLASSES:
            return candidate
    raise ValueError(f"architecture={name!r} is not known; choose from {sorted(set(DICTIONARY_CLASSES) | set(known))}")


def dictionary_classes(name: str) -> tuple[type, type]:
    """`(config class, model class)` of an architecture named as `resolve_architecture` accepts."""
    return DICTIONARY_CLASSES[resolve_architecture(name)]


def card_text(config) -> tuple[str, str]:
    """`(title, description)` of an architecture for its model card, from its config class."""
    config_class = type(config)
    title = getattr(config_class, "card_title", None) or config_class.__name__.removesuffix("Config")
    description = getattr(config_class, "card_description", None) or (config_class.__doc__ or "").strip()
    return title, description


__all__ = ["DICTIONARY_CLASSES", "aliases", "card_text", "dictionary_classes", "register_auto", "register_dictionary",
           "resolve_architecture"]
