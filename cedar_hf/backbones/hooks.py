"""`sparse_tokens(model, dictionary, k)`: the model's own `generate` decodes from sparse visual tokens.

A forward hook on the vision tower replaces every visual token `z` (CLS included) by
`dictionary.reconstruct(z, k)` before the text decoder sees it, so `generate` runs unchanged: greedy, beams,
sampling, temperature and `num_return_sequences` all keep working, and gradients flow through the
reconstruction. Removing the hook (leaving the `with` block, or `handle.remove()`) leaves the model exactly as
before. Supported: BLIP (`model.vision_model`), any transformers `VisionEncoderDecoderModel` (`model.encoder`,
e.g. the Swin + GPT-2 captioner), open_clip CoCa (`model.visual`, whose second output the captioner attends to;
caption with `cedar_hf.backbones.coca.coca_generate`), and a `Backbone` wrapping one of those.

    with cedar_hf.sparse_tokens(blip, dictionary, k=10):
        ids = blip.generate(pixel_values=pixel_values, num_beams=3)
"""

from __future__ import annotations

import logging
from typing import Optional

import torch
from transformers import VisionEncoderDecoderModel

from .base import Backbone
from .blip import encoder_hidden_size

logger = logging.getLogger(__name__)


def _vision_site(model) -> tuple[torch.nn.Module, int, Optional[int]]:
    """`(module to hook, index of the tokens in its output, expected token width or None)`."""
    if isinstance(model, VisionEncoderDecoderModel):
        return model.encoder, 0, encoder_hidden_size(model)
    if hasattr(model, "vision_model") and hasattr(model, "text_decoder"):  # BLIP captioning / QA
        return model.vision_model, 0, model.config.vision_config.hidden_size
    if hasattr(model, "visual") and hasattr(model, "text_decoder") and hasattr(model, "_encode_image"):  # CoCa
        return model.visual, 1, None
    raise ValueError(
        f"sparse_tokens does not know where the visual tokens of a {type(model).__name__} are; supported: "
        "BlipForConditionalGeneration, VisionEncoderDecoderModel, open_clip CoCa (or a Backbone wrapping one)"
    )


class SparseTokensHandle:
    """An installed sparse-token hook. Use as a context manager or call `.remove()`; `k` may be changed live.

    Attributes:
        model: the hooked model. dictionary: the dictionary whose `reconstruct` replaces the tokens.
        k: active latents per token (`None`: the dictionary's default). calls: how many forward passes were replaced.
    """

    def __init__(self, model, dictionary, k: Optional[int] = None):
        if isinstance(model, Backbone):
            model = model.model
        self.model, self.dictionary = model, dictionary
        module, self._index, width = _vision_site(model)
        d_in = dictionary.config.d_in
        if width is not None and width != d_in:
            raise ValueError(
                f"dictionary d_in={d_in} does not match the {width}-d visual tokens of {type(model).__name__}"
                f" ({getattr(model, 'name_or_path', '')}); train the dictionary on this model's vision_tokens"
            )
        site = getattr(dictionary.config, "embedding_site", None)
        if site not in (None, "vision_tokens"):
            logger.warning("dictionary was trained on %r, not vision_tokens; captions may be poor", site)
        self.k = dictionary.check_k(k) if hasattr(dictionary, "check_k") and k is not None else k
        self.calls = 0
        self._hook = module.register_forward_hook(self._replace)

    def _replace(self, module, args, output):
        tokens = output[self._index]  # (B, N, d)
        if tokens.shape[-1] != self.dictionary.config.d_in:
            raise ValueError(
                f"dictionary d_in={self.dictionary.config.d_in} does not match the visual tokens of width "
                f"{tokens.shape[-1]} produced by {type(module).__name__}"
            )
        param = next(self.dictionary.parameters(), None)
        device, dtype = (param.device, param.dtype) if param is not None else (tokens.device, tokens.dtype)
        sparse = self.dictionary.reconstruct(tokens.to(device, dtype), k=self.k).to(tokens.device, tokens.dtype)
        self.calls += 1
        if isinstance(output, tuple):
            return (*output[: self._index], sparse, *output[self._index + 1 :])
        output[list(output.keys())[self._index]] = sparse  # a ModelOutput: item and attribute stay in sync
        return output

    @property
    def active(self) -> bool:
        return self._hook is not None

    def remove(self) -> None:
        """Remove the hook: the model is exactly as before (idempotent)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def __enter__(self) -> "SparseTokensHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"SparseTokensHandle({type(self.model).__name__}, k={self.k}, {state}, calls={self.calls})"


def sparse_tokens(model, dictionary, k: Optional[int] = None) -> SparseTokensHandle:
    """Make `model`'s visual tokens pass through `dictionary.reconstruct(tokens, k)` until removed.

    Args:
        model: a `BlipForConditionalGeneration`, a `VisionEncoderDecoderModel`, an open_clip `CoCa`, or a
            `Backbone` wrapping one.
        dictionary: any cedar-hf dictionary (CEDAR or an SAE) trained on this model's `vision_tokens`; its `d_in`
            must equal the token width (a `ValueError` otherwise).
        k: active latents per token (`None`: the dictionary's default `config.k`). CEDAR with `k = d_in` is
            lossless, so captions equal the dense model's.

    Returns:
        A `SparseTokensHandle`: use it as a context manager, or call `.remove()`.
    """
    return SparseTokensHandle(model, dictionary, k=k)
