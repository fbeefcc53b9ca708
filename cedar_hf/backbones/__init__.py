"""Frozen encoders behind one interface: `load_backbone(name_or_path)` picks the right one from the config.

| config / identifier                              | class                          | sites                                   |
|--------------------------------------------------|--------------------------------|-----------------------------------------|
| `clip`, `siglip`, `siglip2`, `aimv2` (transformers) | `ClipBackbone`               | image_embeds, text_embeds, vision_tokens (not SigLIP2) |
| `blip` (`BlipForConditionalGeneration`)          | `BlipBackbone`                 | image_embeds, vision_tokens             |
| `vision-encoder-decoder` (e.g. Swin + GPT-2)     | `VisionEncoderDecoderBackbone` | image_embeds, vision_tokens             |
| `hf-hub:…`, `local-dir:…`, open_clip folder      | `OpenClipBackbone` (CoCa/CLIP) | image_embeds, text_embeds, vision_tokens (CoCa) |
| `"minilm"` or any other text model (BERT, MPNet…)| `TextBackbone`                 | text_embeds                             |
"""

from __future__ import annotations

from typing import Optional

from transformers import AutoConfig

from .base import SITES, Backbone
from .blip import BlipBackbone, VisionEncoderDecoderBackbone
from .clip import ClipBackbone
from .coca import OpenClipBackbone, open_clip_model_name
from .hooks import sparse_tokens
from .text import MINILM_ALIASES, TextBackbone

__all__ = ["SITES", "Backbone", "load_backbone", "sparse_tokens"]


def load_backbone(name_or_path: str, device=None, dtype=None, **kwargs) -> Backbone:
    """Load a frozen backbone (eval mode, no gradients) from a Hub id or a local path.

    Args:
        name_or_path: a transformers model id/folder (CLIP, SigLIP, BLIP, a vision encoder-decoder, a text
            encoder), an open_clip id (`hf-hub:org/repo`, `local-dir:/path`, a folder with
            `open_clip_config.json`, or a built-in name with `pretrained=`), or `"minilm"` for the offline
            all-MiniLM-L6-v2.
        device: where it runs (default: CUDA if available, else CPU).
        dtype: `torch.float32` (default), `torch.float16`, `torch.bfloat16` or their names.
        **kwargs: passed to the backbone class (e.g. `normalize=False` for raw pooled embeddings).
    """
    name = str(name_or_path)
    if open_clip_model_name(name) is not None or "pretrained" in kwargs:
        return OpenClipBackbone(name, device=device, dtype=dtype, **kwargs)

    if name.lower() in (alias.lower() for alias in MINILM_ALIASES):
        return TextBackbone(name, device=device, dtype=dtype, **kwargs)
    model_type = _model_type(name)
    if model_type in ("clip", "siglip", "siglip2", "metaclip_2", "aimv2"):
        return ClipBackbone(name, device=device, dtype=dtype, **kwargs)
    if model_type == "blip":
        return BlipBackbone(name, device=device, dtype=dtype, **kwargs)
    if model_type == "vision-encoder-decoder":
        return VisionEncoderDecoderBackbone(name, device=device, dtype=dtype, **kwargs)
    if model_type in ("blip-2", "instructblip", "llava", "clip_vision_model", "clip_text_model", "aimv2_vision_model"):
        raise ValueError(f"{name} is a {model_type!r} model, which cedar-hf has no backbone for yet")
    return TextBackbone(name, device=device, dtype=dtype, **kwargs)


def _model_type(name: str) -> Optional[str]:
    try:
        return AutoConfig.from_pretrained(name).model_type
    except (OSError, ValueError) as err:
        raise ValueError(
            f"cannot load a backbone from {name!r}: no transformers config found there and it is not an open_clip "
            f"identifier (hf-hub:…, local-dir:…, a folder with open_clip_config.json) nor 'minilm' ({err})"
        ) from err


def __getattr__(name: str):
    if name == "sparse_tokens":
        return sparse_tokens
    raise AttributeError(f"module 'cedar_hf.backbones' has no attribute {name!r}")
