"""The one interface every frozen encoder keeps (CLIP, SigLIP, BLIP, CoCa, plain text encoders).

A backbone turns images and/or texts into embeddings at named *sites* (`image_embeds`, `text_embeds`,
`vision_tokens`, ...). It is always frozen, in `eval()` mode, and runs under `torch.no_grad()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Sequence

import torch

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
