"""Configurations of wrapped models: a frozen backbone composed with a dictionary (CEDAR or an SAE)."""

from __future__ import annotations

from typing import Any, Optional, Union

from transformers import CONFIG_MAPPING, AutoConfig, PretrainedConfig


def _sub_config(value: Union[None, dict, PretrainedConfig], name: str) -> Optional[PretrainedConfig]:
    """A sub-config from a config object or its dict (any registered `model_type`, dictionaries included)."""
    if value is None or isinstance(value, PretrainedConfig):
        return value
    if not isinstance(value, dict) or "model_type" not in value:
        raise ValueError(f"{name} must be a PretrainedConfig or its to_dict() with a 'model_type', got {type(value).__name__}")

    model_type = value["model_type"]
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"{name} has model_type={model_type!r}, which is not registered (import cedar_hf first)")
    return CONFIG_MAPPING[model_type](**{k: v for k, v in value.items() if k != "model_type"})


class _WrappedConfig(PretrainedConfig):
    sub_configs = {"backbone_config": AutoConfig, "dictionary_config": AutoConfig}

    def __init__(self, backbone_config=None, dictionary_config=None, k: Optional[int] = None,
                 backbone: Optional[str] = None, dictionary: Optional[str] = None, **kwargs: Any):
        self.backbone_config = _sub_config(backbone_config, "backbone_config")
        self.dictionary_config = _sub_config(dictionary_config, "dictionary_config")
        self.k = k
        self.backbone = backbone
        self.dictionary = dictionary
        super().__init__(**kwargs)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"k={k!r} must be a positive integer or None")


class CedarBlipConfig(_WrappedConfig):
    r"""
    A `BlipForConditionalGeneration` whose visual tokens pass through a dictionary before the text decoder.

    Args:
        backbone_config (`BlipConfig` or `dict`):
            The BLIP captioner's config.
        dictionary_config (`DictionaryConfig` or `dict`):
            The dictionary's config (CEDAR or an SAE), trained on the BLIP's `vision_tokens`; its `d_in` must be
            the vision hidden size.
        k (`int`, *optional*):
            Default active latents per token in `generate`/`forward` (`None`: the dictionary's own `k`).
        backbone (`str`, *optional*), dictionary (`str`, *optional*):
            Where the two parts came from (Hub ids or paths), for provenance.
    """

    model_type = "cedar_blip"

    # transformers 5 turns every config class into a dataclass; a class without its own `__init__` would get a
    # generated one that stores the sub-configs as plain dicts, so each concrete class defines it.
    def __init__(self, backbone_config=None, dictionary_config=None, k: Optional[int] = None,
                 backbone: Optional[str] = None, dictionary: Optional[str] = None, **kwargs: Any):
        super().__init__(backbone_config=backbone_config, dictionary_config=dictionary_config, k=k,
                         backbone=backbone, dictionary=dictionary, **kwargs)


class CedarClipConfig(_WrappedConfig):
    r"""
    A CLIP/SigLIP dual encoder whose pooled embeddings pass through dictionaries: sparse image/text embeddings.

    Args:
        backbone_config (`CLIPConfig`/`SiglipConfig` or `dict`):
            The dual encoder's config.
        dictionary_config (`DictionaryConfig` or `dict`):
            The image dictionary (trained on `image_embeds`; also used for texts unless `text_dictionary_config`).
        text_dictionary_config (`DictionaryConfig` or `dict`, *optional*):
            A separate dictionary for `text_embeds`.
        k (`int`, *optional*):
            Default active latents (`None`: the dictionary's own `k`).
        normalize (`bool`, defaults to `True`):
            L2-normalise the pooled embeddings before the dictionary, as `cedar_hf.load_backbone` does by default
            (match what the dictionary was trained on).
        backbone (`str`, *optional*), dictionary (`str`, *optional*), text_dictionary (`str`, *optional*):
            Provenance.
    """

    model_type = "cedar_clip"
    sub_configs = {**_WrappedConfig.sub_configs, "text_dictionary_config": AutoConfig}

    def __init__(self, backbone_config=None, dictionary_config=None, text_dictionary_config=None,
                 k: Optional[int] = None, normalize: bool = True, text_dictionary: Optional[str] = None, **kwargs: Any):
        self.text_dictionary_config = _sub_config(text_dictionary_config, "text_dictionary_config")
        self.normalize = normalize
        self.text_dictionary = text_dictionary
        super().__init__(backbone_config=backbone_config, dictionary_config=dictionary_config, k=k, **kwargs)


__all__ = ["CedarBlipConfig", "CedarClipConfig"]
