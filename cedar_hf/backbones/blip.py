"""Captioning backbones: BLIP (`BlipForConditionalGeneration`) and any `VisionEncoderDecoderModel`.

Sites:
- `vision_tokens`: every visual token the text decoder attends to, `(B, N, hidden)` — BLIP's
  `vision_model(...).last_hidden_state` (CLS + patches), or the encoder's `last_hidden_state` of a
  vision encoder-decoder (e.g. Swin + GPT-2). These are what `cedar_hf.sparse_tokens` replaces.
- `image_embeds`: the pooled image embedding `(B, hidden)` — BLIP's `pooler_output` (the post-layernormed CLS
  token); for an encoder-decoder the encoder's `pooler_output` when it has one, else the mean token.

Neither has a text-embedding site: their text side is a decoder. `caption(images, **generate_kwargs)` runs the
model's own `generate` (beams, sampling, temperature, `num_return_sequences` all pass through).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from transformers import (
    AutoImageProcessor,
    AutoProcessor,
    AutoTokenizer,
    BlipForConditionalGeneration,
    VisionEncoderDecoderModel,
)

from .base import Backbone, batched, freeze, resolve_device_dtype, to_rgb


class _CaptioningBackbone(Backbone):
    """Shared pieces: a vision module whose `last_hidden_state` feeds a text decoder."""

    model: torch.nn.Module

    @property
    def vision_module(self) -> torch.nn.Module:
        raise NotImplementedError

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64, prompt: Optional[str] = None) -> torch.Tensor:
        raise ValueError(
            f"{type(self).__name__} ({self.name_or_path}) has no text-embedding site (its text side is a decoder); "
            f"its sites are {self.sites}. Use a CLIP/SigLIP/CoCa or text-encoder backbone for text_embeds."
        )

    def pixel_values(self, images: Sequence) -> torch.Tensor:
        """Preprocessed `(B, 3, H, W)` pixel values on the model's device and dtype."""
        return self.image_processor(to_rgb(images), return_tensors="pt")["pixel_values"].to(self.device, self.dtype)

    def _pool(self, output) -> torch.Tensor:
        pooled = getattr(output, "pooler_output", None)
        return output.last_hidden_state.mean(1) if pooled is None else pooled

    @torch.no_grad()
    def embed_images(self, images: Sequence, sites: Sequence[str] = ("image_embeds",), batch_size: int = 32) -> dict[str, torch.Tensor]:
        sites = self.check_sites(sites)
        out: dict[str, list[torch.Tensor]] = {site: [] for site in sites}
        for batch in batched(list(images), batch_size, desc="image embeddings"):
            output = self.vision_module(pixel_values=self.pixel_values(batch))
            if "image_embeds" in sites:
                pooled = self._pool(output).float()
                out["image_embeds"].append((torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled).cpu())
            if "vision_tokens" in sites:
                out["vision_tokens"].append(output.last_hidden_state.float().cpu())
        return {site: torch.cat(parts) if parts else torch.empty(0, self.site_dims[site]) for site, parts in out.items()}

    @torch.no_grad()
    def caption(self, images: Sequence, batch_size: int = 16, **generate_kwargs) -> list[str]:
        """Captions from the model's own `generate` (under `sparse_tokens(...)` they come from sparse tokens)."""
        captions: list[str] = []
        for batch in batched(list(images), batch_size, desc="captions"):
            ids = self.model.generate(pixel_values=self.pixel_values(batch), **generate_kwargs)
            captions += [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return captions


class BlipBackbone(_CaptioningBackbone):
    """A frozen `BlipForConditionalGeneration`: all visual tokens, the pooled image embedding, captions."""

    def __init__(self, name_or_path: str, device=None, dtype=None, normalize: bool = False, **model_kwargs):
        self.name_or_path = str(name_or_path)
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.normalize = normalize
        model = BlipForConditionalGeneration.from_pretrained(self.name_or_path, **model_kwargs)
        self.model = freeze(model, self.device, self.dtype)
        self.processor = AutoProcessor.from_pretrained(self.name_or_path)
        self.image_processor, self.tokenizer = self.processor.image_processor, self.processor.tokenizer
        hidden = self.model.config.vision_config.hidden_size
        self.site_dims = {"image_embeds": hidden, "vision_tokens": hidden}

    @property
    def vision_module(self) -> torch.nn.Module:
        return self.model.vision_model


class VisionEncoderDecoderBackbone(_CaptioningBackbone):
    """A frozen `VisionEncoderDecoderModel` (ViT/Swin/... encoder, GPT-2/BERT/... decoder)."""

    def __init__(self, name_or_path: str, device=None, dtype=None, normalize: bool = False, **model_kwargs):
        self.name_or_path = str(name_or_path)
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.normalize = normalize
        model = VisionEncoderDecoderModel.from_pretrained(self.name_or_path, **model_kwargs)
        self.model = freeze(model, self.device, self.dtype)
        self.image_processor = AutoImageProcessor.from_pretrained(self.name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.name_or_path)
        hidden = encoder_hidden_size(self.model)
        self.site_dims = {"image_embeds": hidden, "vision_tokens": hidden}

    @property
    def vision_module(self) -> torch.nn.Module:
        return self.model.encoder


def encoder_hidden_size(model) -> int:
    """Width of the encoder's `last_hidden_state` of a `VisionEncoderDecoderModel` (Swin grows it per stage)."""
    config = model.config.encoder
    for name in ("hidden_size", "embed_dim", "d_model"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"cannot tell the encoder width of {type(model.encoder).__name__}")
