"""open_clip models, CoCa first: image latent, text latent, and the tokens CoCa's captioner attends to.

Load by `hf-hub:org/repo`, `local-dir:/path`, a local folder holding `open_clip_config.json` + weights, or a
built-in open_clip name with `pretrained=` (a tag or a checkpoint file).

Sites:
- `image_embeds`: the image latent `(B, embed_dim)` (L2-normalised by default, `normalize=False` for raw).
- `text_embeds`: the text latent `(B, embed_dim)`.
- `vision_tokens` (CoCa only): the attention-pooled tokens the captioner cross-attends to, `(B, N, width)`
  (the second output of `model.visual`, which `cedar_hf.sparse_tokens` replaces).

Captions: open_clip 3.3's `CoCa.generate` does not run under transformers 5 (it asserts, and its beam search
uses the removed `BeamSearchScorer`), so `coca_generate` reimplements greedy decoding and sampling
(temperature, top-k, top-p, repetition penalty, `num_return_sequences`) on the model's own forward pass.
Beam search raises a `ValueError` saying so.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import torch
from transformers import (
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .base import Backbone, batched, format_texts, freeze, resolve_device_dtype, to_rgb

SOT_TOKEN_ID, EOT_TOKEN_ID = 49406, 49407


def open_clip_model_name(name_or_path: str) -> Optional[str]:
    """The open_clip identifier for `name_or_path`, or None when it is not an open_clip model."""
    name = str(name_or_path)
    if name.startswith(("hf-hub:", "local-dir:")):
        return name
    if os.path.isdir(name) and os.path.isfile(os.path.join(name, "open_clip_config.json")):
        return "local-dir:" + name
    return None


class OpenClipBackbone(Backbone):
    """A frozen open_clip model (CoCa or CLIP) behind the `Backbone` interface."""

    def __init__(self, name_or_path: str, device=None, dtype=None, normalize: bool = True, pretrained: Optional[str] = None):
        import open_clip

        self.name_or_path = str(name_or_path)
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        self.normalize = normalize
        model_name = open_clip_model_name(self.name_or_path) or self.name_or_path
        model, _, self.preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
        self.model = freeze(model, self.device, self.dtype)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.is_coca = isinstance(model, open_clip.CoCa)
        with torch.no_grad():
            probe = torch.zeros(1, 3, *self._image_size(), device=self.device, dtype=self.dtype)
            latent, tokens = self._encode(probe)
        self.site_dims = {"image_embeds": latent.shape[-1], "text_embeds": latent.shape[-1]}
        if tokens is not None:
            self.site_dims["vision_tokens"] = tokens.shape[-1]

    def _image_size(self) -> tuple[int, int]:
        size = getattr(self.model.visual, "image_size", 224)
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    def _encode(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        if self.is_coca:
            return self.model._encode_image(pixel_values, normalize=False)
        return self.model.encode_image(pixel_values, normalize=False), None

    def pixel_values(self, images: Sequence) -> torch.Tensor:
        return torch.stack([self.preprocess(image) for image in to_rgb(images)]).to(self.device, self.dtype)

    def _pooled(self, latent: torch.Tensor) -> torch.Tensor:
        latent = latent.float()
        return torch.nn.functional.normalize(latent, dim=-1) if self.normalize else latent

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64, prompt: Optional[str] = None) -> torch.Tensor:
        texts = format_texts(texts, prompt)
        out = [
            self._pooled(self.model.encode_text(self.tokenizer(batch).to(self.device), normalize=False)).cpu()
            for batch in batched(texts, batch_size, desc="text embeddings")
        ]
        return torch.cat(out) if out else torch.empty(0, self.site_dims["text_embeds"])

    @torch.no_grad()
    def embed_images(self, images: Sequence, sites: Sequence[str] = ("image_embeds",), batch_size: int = 32) -> dict[str, torch.Tensor]:
        sites = self.check_image_sites(sites)
        out: dict[str, list[torch.Tensor]] = {site: [] for site in sites}
        for batch in batched(list(images), batch_size, desc="image embeddings"):
            latent, tokens = self._encode(self.pixel_values(batch))
            if "image_embeds" in sites:
                out["image_embeds"].append(self._pooled(latent).cpu())
            if "vision_tokens" in sites:
                out["vision_tokens"].append(tokens.float().cpu())
        return {site: torch.cat(parts) if parts else torch.empty(0, self.site_dims[site]) for site, parts in out.items()}

    @torch.no_grad()
    def caption(self, images: Sequence, batch_size: int = 16, **generate_kwargs) -> list[str]:
        """Captions by `coca_generate` (greedy by default; `do_sample=True`, `temperature`, `top_k`, `top_p`)."""
        import open_clip

        if not self.is_coca:
            raise ValueError(f"{self.name_or_path} is an open_clip CLIP, not a CoCa: it has no captioner")
        captions = []
        for batch in batched(list(images), batch_size, desc="captions"):
            for ids in coca_generate(self.model, self.pixel_values(batch), **generate_kwargs):
                text = open_clip.decode(ids).split("<end_of_text>")[0].replace("<start_of_text>", "")
                captions.append(text.strip())
        return captions


@torch.no_grad()
def coca_generate(model, pixel_values: torch.Tensor, max_new_tokens: int = 20, do_sample: bool = False,
                  temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
                  repetition_penalty: float = 1.0, min_new_tokens: int = 0, num_beams: int = 1,
                  num_return_sequences: int = 1, sot_token_id: int = SOT_TOKEN_ID,
                  eos_token_id: int = EOT_TOKEN_ID, pad_token_id: Optional[int] = None,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Token ids `(B·num_return_sequences, ≤ 1 + max_new_tokens)` from an open_clip `CoCa`, greedy or sampled.

    Runs the model's own `_encode_image` (so a `sparse_tokens` hook on `model.visual` applies) and its forward
    pass. Finished rows are padded with `pad_token_id` (default `model.pad_id`).
    """

    if num_beams != 1:
        raise ValueError(
            f"num_beams={num_beams}: CoCa beam search is not available — open_clip 3.3's beam search needs "
            "transformers' BeamSearchScorer, which transformers 5 removed. Use greedy decoding (num_beams=1) or "
            "sampling (do_sample=True with temperature / top_k / top_p)."
        )
    if num_return_sequences > 1 and not do_sample:
        raise ValueError(f"num_return_sequences={num_return_sequences} needs do_sample=True (greedy gives one caption)")
    pad_token_id = getattr(model, "pad_id", 0) if pad_token_id is None else pad_token_id
    image_latent, image_embs = model._encode_image(pixel_values)
    image_latent = image_latent.repeat_interleave(num_return_sequences, 0)
    image_embs = image_embs.repeat_interleave(num_return_sequences, 0)
    processors = LogitsProcessorList()
    if min_new_tokens > 0:
        processors.append(MinLengthLogitsProcessor(1 + min_new_tokens, eos_token_id))
    if repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if do_sample:
        processors.append(TemperatureLogitsWarper(temperature))
        if top_k:
            processors.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p))
    max_len = min(model.text.context_length, model.text_decoder.context_length)
    out = torch.full((image_embs.shape[0], 1), sot_token_id, dtype=torch.long, device=image_embs.device)
    finished = torch.zeros(out.shape[0], dtype=torch.bool, device=out.device)
    for _ in range(max_new_tokens):
        window = out[:, -max_len:]
        logits = model(None, window, image_latent=image_latent, image_embs=image_embs, output_labels=False)["logits"]
        scores = processors(window, logits[:, -1].float())
        if do_sample:
            nxt = torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(1)
        else:
            nxt = scores.argmax(-1)
        nxt = torch.where(finished, torch.full_like(nxt, pad_token_id), nxt)
        out = torch.cat([out, nxt[:, None]], dim=1)
        finished |= nxt == eos_token_id
        if bool(finished.all()):
            break
    return out
