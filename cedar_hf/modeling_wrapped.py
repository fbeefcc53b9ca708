"""Wrapped models: a frozen backbone and a dictionary as one `PreTrainedModel` (save, load, push as a unit).

- `CedarBlipForConditionalGeneration`: BLIP captions from sparse visual tokens, `generate(pixel_values, k=10)`.
- `CedarClipModel`: CLIP/SigLIP with sparse image and text embeddings (codes and reconstructions).

Build one from parts with `from_backbone_and_dictionary(backbone_id, dictionary_id)`; a dictionary whose
`d_in` does not match the backbone's site is refused with a `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from transformers import (
    AutoModel,
    BlipConfig,
    BlipForConditionalGeneration,
    GenerationConfig,
    PreTrainedModel,
)
from transformers.utils import ModelOutput

from .auto import load_dictionary
from .backbones.hooks import sparse_tokens
from .configuration_wrapped import CedarBlipConfig, CedarClipConfig
from .modeling_base import DictionaryPreTrainedModel
from .registry import DICTIONARY_CLASSES, register_auto


@dataclass
class CedarClipOutput(ModelOutput):
    """
    Output of `CedarClipModel`.

    Args:
        logits_per_image (`torch.FloatTensor` of shape `(n_images, n_texts)`, *optional*):
            Similarities of the (re-normalised) sparse reconstructions, scaled like the backbone's.
        logits_per_text (`torch.FloatTensor` of shape `(n_texts, n_images)`, *optional*):
            The transpose.
        image_embeds, text_embeds (`torch.FloatTensor` of shape `(B, d)`, *optional*):
            Sparse embeddings: the dictionary's reconstructions from `k` active latents.
        image_codes, text_codes (`torch.FloatTensor` of shape `(B, n_latents)`, *optional*):
            The sparse codes (concept activations).
        dense_image_embeds, dense_text_embeds (`torch.FloatTensor` of shape `(B, d)`, *optional*):
            The backbone's own pooled embeddings (normalised when `config.normalize`).
    """

    logits_per_image: Optional[torch.FloatTensor] = None
    logits_per_text: Optional[torch.FloatTensor] = None
    image_embeds: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None
    image_codes: Optional[torch.FloatTensor] = None
    text_codes: Optional[torch.FloatTensor] = None
    dense_image_embeds: Optional[torch.FloatTensor] = None
    dense_text_embeds: Optional[torch.FloatTensor] = None


def _dictionary_from_config(config, name: str):
    if config is None:
        raise ValueError(f"config.{name} is missing: build with from_backbone_and_dictionary(backbone_id, dictionary_id)")
    if config.model_type not in DICTIONARY_CLASSES:
        raise ValueError(f"config.{name} has model_type={config.model_type!r}, not a dictionary ({sorted(DICTIONARY_CLASSES)})")
    return DICTIONARY_CLASSES[config.model_type][1](config)


def _load_dictionary(dictionary, **kwargs):
    """A dictionary instance from an instance, a folder or a Hub id (refuses non-dictionaries)."""
    if isinstance(dictionary, torch.nn.Module):
        if not isinstance(dictionary, DictionaryPreTrainedModel):
            raise ValueError(f"{dictionary!r} is a {type(dictionary).__name__}, not a cedar-hf dictionary (CEDAR or an SAE)")
        return dictionary
    return load_dictionary(dictionary, **kwargs)


def _check_d_in(dictionary, width: int, what: str) -> None:
    if dictionary.config.d_in != width:
        raise ValueError(
            f"dictionary d_in={dictionary.config.d_in} does not match {what} (width {width}); "
            f"it was trained on {dictionary.config.embedding_site or 'an unknown site'} of "
            f"{dictionary.config.backbone or 'an unknown backbone'}"
        )


class _WrappedPreTrainedModel(PreTrainedModel):
    supports_gradient_checkpointing = False
    _no_split_modules = []

    def _init_weights(self, module: torch.nn.Module) -> None:
        # The parts initialise themselves (and are normally loaded from their own checkpoints).
        pass

    def _k(self, k: Optional[int]) -> Optional[int]:
        return self.config.k if k is None else k


class CedarBlipForConditionalGeneration(_WrappedPreTrainedModel):
    """BLIP whose text decoder reads `dictionary.reconstruct(visual tokens, k)` (paper §3, free-form explanations).

    `generate(pixel_values, k=..., **generate_kwargs)` accepts every `generate` option (beams, sampling,
    temperature, `num_return_sequences`); with CEDAR and `k = d_in` the captions equal the dense BLIP's.
    """

    config_class = CedarBlipConfig
    base_model_prefix = "cedar_blip"
    main_input_name = "pixel_values"

    def __init__(self, config: CedarBlipConfig):
        super().__init__(config)

        if not isinstance(config.backbone_config, BlipConfig):
            raise ValueError(f"backbone_config must be a BlipConfig, got {type(config.backbone_config).__name__}")
        self.blip = BlipForConditionalGeneration(config.backbone_config)
        self.dictionary = _dictionary_from_config(config.dictionary_config, "dictionary_config")
        _check_d_in(self.dictionary, config.backbone_config.vision_config.hidden_size, "BLIP's visual tokens")
        self.post_init()

    @classmethod
    def from_backbone_and_dictionary(cls, backbone, dictionary, k: Optional[int] = None, **kwargs):
        """Compose a BLIP captioner (id, folder or model) with a dictionary (id, folder or model)."""
        blip = backbone if isinstance(backbone, torch.nn.Module) else BlipForConditionalGeneration.from_pretrained(backbone, **kwargs)
        dictionary_model = _load_dictionary(dictionary)
        _check_d_in(dictionary_model, blip.config.vision_config.hidden_size, f"the visual tokens of {_name(backbone)}")
        config = CedarBlipConfig(backbone_config=blip.config, dictionary_config=dictionary_model.config, k=k,
                                 backbone=_name(backbone), dictionary=_name(dictionary))
        with torch.device("meta"):  # the parts are replaced right away: allocate nothing for them
            model = cls(config)
        model.blip, model.dictionary = blip, dictionary_model
        return model.eval()

    def forward(self, pixel_values: torch.FloatTensor, input_ids: Optional[torch.LongTensor] = None,
                attention_mask: Optional[torch.LongTensor] = None, labels: Optional[torch.LongTensor] = None,
                k: Optional[int] = None, **kwargs):
        """BLIP's forward (captioning loss with `labels`) on sparse visual tokens."""
        with sparse_tokens(self.blip, self.dictionary, k=self._k(k)):
            return self.blip(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask,
                             labels=labels, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """Weights and config of both parts, plus BLIP's `generation_config.json`."""
        super().save_pretrained(save_directory, *args, **kwargs)
        self.blip.generation_config.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        try:
            model.blip.generation_config = GenerationConfig.from_pretrained(pretrained_model_name_or_path)
        except OSError:
            pass  # saved without one: BLIP's defaults from its config
        return model

    @torch.no_grad()
    def generate(self, pixel_values: torch.FloatTensor, k: Optional[int] = None, **generate_kwargs) -> torch.LongTensor:
        """Token ids of captions decoded from sparse visual tokens (`k` active latents per token)."""
        with sparse_tokens(self.blip, self.dictionary, k=self._k(k)):
            return self.blip.generate(pixel_values=pixel_values, **generate_kwargs)


class CedarClipModel(_WrappedPreTrainedModel):
    """A CLIP/SigLIP dual encoder with sparse embeddings: `get_image_features`/`get_text_features` return codes
    and reconstructions; `forward` also gives image-text logits computed from the sparse embeddings."""

    config_class = CedarClipConfig
    base_model_prefix = "cedar_clip"
    main_input_name = "pixel_values"

    def __init__(self, config: CedarClipConfig):
        super().__init__(config)

        if config.backbone_config is None:
            raise ValueError("config.backbone_config is missing: build with from_backbone_and_dictionary(...)")
        self.clip = AutoModel.from_config(config.backbone_config)
        self.image_dictionary = _dictionary_from_config(config.dictionary_config, "dictionary_config")
        self.text_dictionary = (_dictionary_from_config(config.text_dictionary_config, "text_dictionary_config")
                                if config.text_dictionary_config is not None else None)
        width = _projection_dim(config.backbone_config)
        _check_d_in(self.image_dictionary, width, "the backbone's image_embeds")
        if self.text_dictionary is not None:
            _check_d_in(self.text_dictionary, width, "the backbone's text_embeds")
        self.post_init()

    @classmethod
    def from_backbone_and_dictionary(cls, backbone, dictionary, text_dictionary=None, k: Optional[int] = None,
                                     normalize: bool = True, **kwargs):
        """Compose a CLIP/SigLIP (id, folder or model) with an image dictionary (and optionally a text one)."""
        clip = backbone if isinstance(backbone, torch.nn.Module) else AutoModel.from_pretrained(backbone, **kwargs)
        image_dictionary = _load_dictionary(dictionary)
        text_model = _load_dictionary(text_dictionary) if text_dictionary is not None else None
        width = _projection_dim(clip.config)
        _check_d_in(image_dictionary, width, f"the image_embeds of {_name(backbone)}")
        if text_model is not None:
            _check_d_in(text_model, width, f"the text_embeds of {_name(backbone)}")
        config = CedarClipConfig(
            backbone_config=clip.config, dictionary_config=image_dictionary.config,
            text_dictionary_config=text_model.config if text_model is not None else None, k=k, normalize=normalize,
            backbone=_name(backbone), dictionary=_name(dictionary),
            text_dictionary=_name(text_dictionary) if text_dictionary is not None else None,
        )
        with torch.device("meta"):  # the parts are replaced right away: allocate nothing for them
            model = cls(config)
        model.clip, model.image_dictionary, model.text_dictionary = clip, image_dictionary, text_model
        return model.eval()

    def _sparse(self, dense: torch.Tensor, dictionary, k: Optional[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dense = dense.float()
        if self.config.normalize:
            dense = torch.nn.functional.normalize(dense, dim=-1)
        codes = dictionary.encode(dense, k=self._k(k))
        return dictionary.decode(codes), codes, dense

    def get_image_features(self, pixel_values: torch.FloatTensor, k: Optional[int] = None) -> CedarClipOutput:
        """Sparse image embeddings `(B, d)` and codes `(B, n_latents)`."""
        pooled = self.clip.get_image_features(pixel_values=pixel_values).pooler_output
        embeds, codes, dense = self._sparse(pooled, self.image_dictionary, k)
        return CedarClipOutput(image_embeds=embeds, image_codes=codes, dense_image_embeds=dense)

    def get_text_features(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None,
                          k: Optional[int] = None) -> CedarClipOutput:
        """Sparse text embeddings `(B, d)` and codes `(B, n_latents)`."""
        pooled = self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        embeds, codes, dense = self._sparse(pooled, self.text_dictionary or self.image_dictionary, k)
        return CedarClipOutput(text_embeds=embeds, text_codes=codes, dense_text_embeds=dense)

    def forward(self, pixel_values: Optional[torch.FloatTensor] = None, input_ids: Optional[torch.LongTensor] = None,
                attention_mask: Optional[torch.Tensor] = None, k: Optional[int] = None, **kwargs) -> CedarClipOutput:
        fields: dict = {}
        if pixel_values is not None:
            fields.update(dict(self.get_image_features(pixel_values, k=k).items()))
        if input_ids is not None:
            fields.update(dict(self.get_text_features(input_ids, attention_mask, k=k).items()))
        if pixel_values is not None and input_ids is not None:
            image = torch.nn.functional.normalize(fields["image_embeds"], dim=-1)
            text = torch.nn.functional.normalize(fields["text_embeds"], dim=-1)
            logits = image @ text.T * self.clip.logit_scale.exp()
            if getattr(self.clip, "logit_bias", None) is not None:
                logits = logits + self.clip.logit_bias
            fields.update(logits_per_image=logits, logits_per_text=logits.T)
        out = CedarClipOutput(**fields)
        return out


def _projection_dim(config) -> int:
    return getattr(config, "projection_dim", None) or config.text_config.hidden_size


def _name(part) -> Optional[str]:
    if isinstance(part, torch.nn.Module):
        return getattr(part.config, "_name_or_path", None) or None
    return str(part)


def register_wrapped_models() -> None:
    """Register the wrapped models with `AutoConfig`/`AutoModel` (idempotent; `import cedar_hf` does it)."""
    register_auto(CedarBlipConfig, CedarBlipForConditionalGeneration)
    register_auto(CedarClipConfig, CedarClipModel)


__all__ = ["CedarBlipForConditionalGeneration", "CedarClipModel", "CedarClipOutput", "register_wrapped_models"]
