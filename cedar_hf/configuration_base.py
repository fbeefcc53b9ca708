"""The configuration fields every dictionary model shares.

A *dictionary* here is anything that maps a frozen embedding to sparse codes and back: the CEDAR rotation,
each sparse autoencoder, and the baselines. Their configs all record the same provenance so that a dictionary
found on the Hub says which backbone and which embedding site it was trained on.
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import PretrainedConfig


class DictionaryConfig(PretrainedConfig):
    r"""
    Base configuration of a dictionary model (CEDAR or an SAE). Not registered itself.

    Args:
        d_in (`int`, defaults to 768):
            Dimension of the embeddings the dictionary reads (CLIP ViT-L/14 image embeddings are 768-d).
        n_latents (`int`, *optional*):
            Number of latents (concepts). CEDAR forces `n_latents == d_in`; SAEs default to `expansion * d_in`.
        k (`int`, *optional*):
            Default number of active latents at inference. `None` means the model's own sparsity rule decides.
        backbone (`str`, *optional*):
            Hub id or path of the frozen encoder whose embeddings the dictionary was trained on.
        embedding_site (`str`, *optional*):
            Which embedding: `"image_embeds"`, `"text_embeds"`, `"vision_tokens"`, ...
        training_data (`dict`, *optional*):
            Provenance of the training embeddings (dataset id, split, number of rows, ...).
    """

    def __init__(
        self,
        d_in: int = 768,
        n_latents: Optional[int] = None,
        k: Optional[int] = None,
        backbone: Optional[str] = None,
        embedding_site: Optional[str] = None,
        training_data: Optional[dict[str, Any]] = None,
        **kwargs,
    ):
        self.d_in = d_in
        self.n_latents = n_latents if n_latents is not None else d_in
        self.k = k
        self.backbone = backbone
        self.embedding_site = embedding_site
        self.training_data = dict(training_data or {})
        super().__init__(**kwargs)
        self.validate_dictionary()

    def validate_dictionary(self) -> None:
        """Raise `ValueError` naming the field when fields contradict each other."""
        _positive_int("d_in", self.d_in)
        _positive_int("n_latents", self.n_latents)
        if self.k is not None:
            _positive_int("k", self.k)
            if self.k > self.n_latents:
                raise ValueError(f"k={self.k} must be in [1, n_latents={self.n_latents}]")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
