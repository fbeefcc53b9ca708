"""The one interface every frozen encoder keeps (CLIP, SigLIP, BLIP, CoCa, plain text encoders).

A backbone turns images and/or texts into embeddings at named *sites* (`image_embeds`, `text_embeds`,
`vision_tokens`, ...). It is always frozen, in `eval()` mode, and runs under `torch.no_grad()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

SITES = ("image_embeds", "text_embeds", "vision_tokens")


class Backbone(ABC):
    """A frozen encoder behind one interface.

    Attributes:
        name_or_path: the Hub id or local path it was loaded from (recorded in dictionary configs).
        site_dims: `{site: embedding dimension}` for every site this backbone provides.
        device, dtype: where and in what precision it runs.
    """

    name_or_path: str
    site_dims: dict[str, int]
    device: torch.device
    dtype: torch.dtype

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(self.site_dims)

    def dim(self, site: str) -> int:
        if site not in self.site_dims:
            raise ValueError(f"{type(self).__name__} ({self.name_or_path}) has no site {site!r}; it has {self.sites}")
        return self.site_dims[site]

    @abstractmethod
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64, prompt: Optional[str] = None) -> torch.Tensor:
        """`(len(texts), d)` text embeddings (site `text_embeds`). `prompt` like "a photo of {}" formats each."""

    @abstractmethod
    def embed_images(self, images: Sequence, sites: Sequence[str] = ("image_embeds",), batch_size: int = 32) -> dict[str, torch.Tensor]:
        """`{site: tensor}` for PIL images: `(B, d)` for pooled sites, `(B, N, d)` for `vision_tokens`."""

    # ---- shared helpers (not part of the interface a consumer needs) --------------------------------------------
    normalize: bool = False

    def check_sites(self, sites: Sequence[str]) -> tuple[str, ...]:
        """`sites` as a tuple, each checked against `site_dims` (a `ValueError` names the unknown one)."""
        if isinstance(sites, str):
            sites = (sites,)
        for site in sites:
            self.dim(site)
        return tuple(sites)

    def check_image_sites(self, sites: Sequence[str]) -> tuple[str, ...]:
        """`check_sites`, refusing the text site (images have none)."""
        sites = self.check_sites(sites)
        if "text_embeds" in sites:
            raise ValueError("text_embeds is a text site; use embed_texts")
        return sites

    def caption(self, images: Sequence, **generate_kwargs) -> list[str]:
        """Captions of PIL images (captioning backbones only: BLIP, CoCa, vision encoder-decoders)."""
        raise ValueError(f"{type(self).__name__} ({self.name_or_path}) is not a captioning model")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name_or_path!r}, sites={self.site_dims}, device={self.device}, dtype={self.dtype})"


def batched(items: Sequence, batch_size: int, desc: Optional[str] = None):
    """Consecutive slices of `items` of length `batch_size`, with a progress bar when there are many."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    starts = range(0, len(items), batch_size)
    for start in tqdm(starts, desc=desc, disable=len(starts) <= 4, leave=False):
        yield items[start : start + batch_size]


def format_texts(texts: Sequence[str], prompt: Optional[str]) -> list[str]:
    """Apply a prompt template like `"a photo of {}"` to every text (no template: the texts as they are)."""
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, got a single str (wrap it in a list)")
    if prompt is None:
        return [str(t) for t in texts]
    if "{}" not in prompt:
        raise ValueError(f"prompt={prompt!r} must contain '{{}}' where the text goes")
    return [prompt.format(t) for t in texts]


def to_rgb(images: Sequence) -> list:
    """PIL images converted to RGB (grayscale, palette and RGBA images are common in folders)."""
    out = []
    for image in images:
        if not hasattr(image, "convert"):
            raise ValueError(f"expected PIL images, got {type(image).__name__}")
        out.append(image if image.mode == "RGB" else image.convert("RGB"))
    return out


def freeze(module: torch.nn.Module, device, dtype) -> torch.nn.Module:
    """The module in eval mode, without gradients, on `device` in `dtype`."""
    module.eval().requires_grad_(False)
    return module.to(device=device, dtype=dtype)


def resolve_device_dtype(device=None, dtype=None) -> tuple[torch.device, torch.dtype]:
    """`device` (default: CUDA when available, else CPU) and `dtype` (a torch dtype or its name; default fp32)."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(dtype, str):
        name = dtype.replace("torch.", "")
        aliases = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16", "float": "float32"}
        resolved = getattr(torch, aliases.get(name, name), None)
        if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
            raise ValueError(f"dtype={dtype!r} is not a floating-point torch dtype (try float32, float16, bfloat16)")
        dtype = resolved
    return device, dtype or torch.float32
