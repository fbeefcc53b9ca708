"""CLIP, SigLIP, SigLIP2 and AIMv2 (transformers `AutoModel`): pooled image and text embeddings, vision tokens.

Sites:
- `image_embeds`: `get_image_features(...).pooler_output`, the projected image embedding `(B, projection_dim)`.
- `text_embeds`: `get_text_features(...).pooler_output`, the projected text embedding `(B, projection_dim)`.
- `vision_tokens`: the vision tower's `last_hidden_state` `(B, N, vision hidden size)` (CLS + patches; AIMv2 has
  no CLS token). Not offered for SigLIP2: its NaFlex processor turns each image into a patch sequence of its own
  aspect ratio, padded to `max_num_patches`, so token positions mean different things from image to image.

SigLIP2's processor also returns `pixel_attention_mask` and `spatial_shapes`; they are passed on to the model.
AIMv2 (the `-lit` checkpoints, which have a text tower) pools its text at the EOS token and its image with an
attention-pooling head, as in transformers. Its text tower is loaded with eager attention: under SDPA, transformers
5 skips the causal mask when a batch has no padding (the attention layer itself is not causal), so the same text
embedded alone and in a padded batch gave different vectors (seen: 0.1 max difference on a tiny model); eager
attention with the attention mask is causal in both cases, as an EOS-pooled CLIP-style text tower is meant to be.

Pooled embeddings are L2-normalised by default (`normalize=True`), as in the contrastive loss these models
were trained with and as in the SAE literature; pass `normalize=False` for the raw projections.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

from .base import Backbone, batched, format_texts, freeze, resolve_device_dtype, to_rgb

CONTRASTIVE_MODEL_TYPES = ("clip", "siglip", "siglip2", "metaclip_2", "aimv2")
IMAGE_INPUTS = ("pixel_values", "pixel_attention_mask", "spatial_shapes")  # what get_image_features takes


class ClipBackbone(Backbone):
    """A frozen CLIP-like dual encoder (`CLIPModel`, `SiglipModel`, `Siglip2Model`, `Aimv2Model`) behind the `Backbone` interface."""

    def __init__(self, name_or_path: str, device=None, dtype=None, normalize: bool = True, **model_kwargs):
        self.name_or_path = str(name_or_path)
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.normalize = normalize
        if AutoConfig.from_pretrained(self.name_or_path).model_type == "aimv2":
            model_kwargs.setdefault("attn_implementation", "eager")  # always causal text attention (see above)
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
        if self.model_type == "siglip2":
            del self.site_dims["vision_tokens"]  # NaFlex: padded patch sequences of per-image shape (see above)
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
            inputs = {key: inputs[key].to(self.device) for key in IMAGE_INPUTS if key in inputs}
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            output = self.model.get_image_features(**inputs)
            if "image_embeds" in sites:
                out["image_embeds"].append(self._pooled(output).cpu())
            if "vision_tokens" in sites:
                out["vision_tokens"].append(output.last_hidden_state.float().cpu())
        return {site: torch.cat(parts) if parts else torch.empty(0, self.site_dims[site]) for site, parts in out.items()}
