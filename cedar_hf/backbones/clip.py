"""CLIP and SigLIP (transformers `AutoModel`): pooled image and text embeddings, and the vision tokens.

Sites:
- `image_embeds`: `get_image_features(...).pooler_output`, the projected image embedding `(B, projection_dim)`.
- `text_embeds`: `get_text_features(...).pooler_output`, the projected text embedding `(B, projection_dim)`.
- `vision_tokens`: the vision tower's `last_hidden_state` `(B, N, vision hidden size)` (CLS + patches).

Pooled embeddings are L2-normalised by default (`normalize=True`), as in the contrastive loss these models
were trained with and as in the SAE literature; pass `normalize=False` for the raw projections.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

from .base import Backbone, batched, format_texts, freeze, resolve_device_dtype, to_rgb

CONTRASTIVE_MODEL_TYPES = ("clip", "siglip", "siglip2", "metaclip_2")


class ClipBackbone(Backbone):
    """A frozen CLIP-like dual encoder (`CLIPModel`, `SiglipModel`, ...) behind the `Backbone` interface."""

    def __init__(self, name_or_path: str, device=None, dtype=None, normalize: bool = True, **model_kwargs):
        self.name_or_path = str(name_or_path)
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.normalize = normalize
        self.model = freeze(AutoModel.from_pretrained(self.name_or_path, **model_kwargs), self.device, self.dtype)
        self.model_type = self.model.config.model_type
        if self.model_type not in CONTRASTIVE_MODEL_TYPES:
            raise ValueError(
                f"{self.name_or_path} is a {self.model_type!r} model; ClipBackbone expects one of {CONTRASTIVE_MODEL_TYPES}"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.name_or_path)
        self.image_processor = AutoImageProcessor.from_pretrained(self.name_or_path)
        config = self.model.config
        projection_dim = getattr(config, "projection_dim", None) or config.text_config.hidden_size
        self.site_dims = {
            "image_embeds": projection_dim,
            "text_embeds": projection_dim,
            "vision_tokens": config.vision_config.hidden_size,
        }
        self.max_text_length = getattr(config.text_config, "max_position_embeddings", 77)

    def _pooled(self, output) -> torch.Tensor:
        emb = output.pooler_output if hasattr(output, "pooler_output") else output
        emb = emb.float()
        return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64, prompt: Optional[str] = None) -> torch.Tensor:
        texts = format_texts(texts, prompt)
        out = []
        for batch in batched(texts, batch_size, desc="text embeddings"):
            if self.model_type.startswith("siglip"):
                # SigLIP was trained on max-length padding without an attention mask.
                ids = self.tokenizer(batch, padding="max_length", truncation=True, max_length=self.max_text_length,
                                     return_tensors="pt")["input_ids"]
                inputs = {"input_ids": ids}
            else:
                inputs = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_text_length,
                                        return_tensors="pt")
                inputs = {key: inputs[key] for key in ("input_ids", "attention_mask") if key in inputs}
            inputs = {key: value.to(self.device) for key, value in inputs.items()}
            out.append(self._pooled(self.model.get_text_features(**inputs)).cpu())
        return torch.cat(out) if out else torch.empty(0, self.site_dims["text_embeds"])

    @torch.no_grad()
    def embed_images(self, images: Sequence, sites: Sequence[str] = ("image_embeds",), batch_size: int = 32) -> dict[str, torch.Tensor]:
        sites = self.check_image_sites(sites)
        out: dict[str, list[torch.Tensor]] = {site: [] for site in sites}
        for batch in batched(list(images), batch_size, desc="image embeddings"):
            inputs = self.image_processor(to_rgb(batch), return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
            output = self.model.get_image_features(pixel_values=pixel_values)
            if "image_embeds" in sites:
                out["image_embeds"].append(self._pooled(output).cpu())
            if "vision_tokens" in sites:
                out["vision_tokens"].append(output.last_hidden_state.float().cpu())
        return {site: torch.cat(parts) if parts else torch.empty(0, self.site_dims[site]) for site, parts in out.items()}
