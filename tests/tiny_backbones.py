"""Tiny real-architecture backbones for the tests, built from configs and saved locally (nothing downloads).

Every builder takes a folder, saves the model there (with a tokenizer / processor that works offline) and
returns the folder as a `str`, so `cedar_hf.load_backbone(path)` and `from_pretrained(path)` load it:

- `build_tiny_clip(dir)`: `CLIPModel` (width 32, 16-d projection) + BERT word-piece tokenizer + `CLIPImageProcessor`.
- `build_tiny_siglip(dir)`: `SiglipModel` (width 32) + the same tokenizer + `SiglipImageProcessor`.
- `build_tiny_siglip2(dir)`: `Siglip2Model` (NaFlex patches) + a character-level `Siglip2Tokenizer` +
  `Siglip2ImageProcessor`.
- `build_tiny_aimv2(dir)`: `Aimv2Model` (image + text, 16-d projection) + the BERT tokenizer + `CLIPImageProcessor`.
- `build_tiny_blip(dir)`: `BlipForConditionalGeneration` with `initializer_range=0.5` (a tiny BLIP with the
  default 0.02 ignores its visual tokens, so a captioning test on it could not fail) + `BlipProcessor`.
- `build_tiny_vision_encoder_decoder(dir, encoder="vit"|"swin")`: `VisionEncoderDecoderModel` with a GPT-2
  decoder (the paper's Swin + GPT-2 study), `initializer_range=0.5` for the same reason.
- `build_tiny_coca(dir)`: open_clip `CoCa` in an open_clip `local-dir:` folder (`open_clip_config.json` +
  weights); its `text_decoder.text_projection`, left uninitialised by open_clip, is initialised here.
- `build_tiny_text_encoder(dir)`: a `BertModel` + tokenizer (a plain mean-pooled text encoder).
- `make_image_folder(dir, n)`: `n` random PNG images (two classes in sub-folders, so `label` exists).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

VOCAB_SIZE = 1000
PAD_ID, UNK_ID, SEP_ID, CLS_ID, MASK_ID, DEC_ID = 0, 1, 2, 3, 4, 5
WORDS = (
    "a an the of on in with and is are photo picture image drawing painting of dog cat bird car tree house "
    "person man woman child red green blue yellow black white small large big sitting standing running "
    "flying water sky grass road table chair street city beach snow mountain boat plane train flower fruit "
    "apple banana pizza cake food plate cup bottle book computer phone clock bed room window door wall "
    "two three group field park river lake forest night day sun light dark old young happy"
).split()


def tiny_vocab(size: int = VOCAB_SIZE) -> dict[str, int]:
    """A word-piece vocabulary: special tokens at fixed ids, a few English words, fillers up to `size`."""
    tokens = ["[PAD]", "[UNK]", "[SEP]", "[CLS]", "[MASK]", "[DEC]"]
    tokens += list(dict.fromkeys(WORDS))
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1) if chr(c) not in tokens]
    tokens += [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    tokens += [str(i) for i in range(10)] + [".", ",", "!", "?"]
    tokens += [f"w{i}" for i in range(size - len(tokens))]
    return {tok: i for i, tok in enumerate(tokens[:size])}


def tiny_tokenizer(bos_token: str | None = None):
    """A BERT word-piece tokenizer over `tiny_vocab()` (BLIP's tokenizer family), built offline."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(vocab=tiny_vocab(), do_lower_case=True)
    if bos_token is not None:
        tokenizer.add_special_tokens({"bos_token": bos_token})
    return tokenizer


def _save_tokenizer_and_processor(path: str, model, processor) -> str:
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def build_tiny_clip(path: str | Path, projection_dim: int = 16, seed: int = 0) -> str:
    """Tiny `CLIPModel` + tokenizer + image processor (32 px images, 16-d embeddings) saved into `path`."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=32, bos_token_id=CLS_ID,
                         eos_token_id=SEP_ID, pad_token_id=PAD_ID),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=projection_dim,
    )
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    tokenizer = tiny_tokenizer()
    model.save_pretrained(path)
    image_processor.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def build_tiny_siglip(path: str | Path, seed: int = 0) -> str:
    """Tiny `SiglipModel` (width 32, 32 px images) + tokenizer + image processor saved into `path`."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config=dict(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=32, pad_token_id=PAD_ID,
                         eos_token_id=SEP_ID, bos_token_id=CLS_ID),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
    )
    model = SiglipModel(config).eval()
    image_processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(path)
    image_processor.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def build_tiny_blip(path: str | Path, initializer_range: float = 0.5, seed: int = 0) -> str:
    """Tiny `BlipForConditionalGeneration` + `BlipProcessor` saved into `path` (visual tokens: (B, 17, 32))."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    torch.manual_seed(seed)
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, initializer_range=initializer_range),
        text_config=dict(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, encoder_hidden_size=32,
                         bos_token_id=DEC_ID, eos_token_id=SEP_ID, sep_token_id=SEP_ID, pad_token_id=PAD_ID,
                         initializer_range=initializer_range),
        projection_dim=16,
    )
    model = BlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tiny_tokenizer(bos_token="[DEC]"))
    return _save_tokenizer_and_processor(path, model, processor)


def build_tiny_vision_encoder_decoder(path: str | Path, encoder: str = "vit", seed: int = 0) -> str:
    """Tiny `VisionEncoderDecoderModel` (ViT or Swin encoder, GPT-2 decoder) + image processor saved into `path`."""
    from transformers import (GPT2Config, SwinConfig, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)

    torch.manual_seed(seed)
    if encoder == "vit":
        enc = ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8, initializer_range=0.5)
    elif encoder == "swin":
        enc = SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
                         initializer_range=0.5)
    else:
        raise ValueError(f"encoder={encoder!r} must be 'vit' or 'swin'")
    dec = GPT2Config(vocab_size=VOCAB_SIZE, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=DEC_ID,
                     eos_token_id=SEP_ID, pad_token_id=PAD_ID, initializer_range=0.5)
    config = VisionEncoderDecoderConfig(encoder=enc.to_dict(), decoder=dec.to_dict())
    config.decoder.is_decoder = True
    config.decoder.add_cross_attention = True
    config.decoder_start_token_id = DEC_ID
    config.pad_token_id = PAD_ID
    config.eos_token_id = SEP_ID
    model = VisionEncoderDecoderModel(config=config).eval()
    model.generation_config.decoder_start_token_id = DEC_ID
    model.generation_config.pad_token_id = PAD_ID
    model.generation_config.eos_token_id = SEP_ID
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    tiny_tokenizer(bos_token="[DEC]").save_pretrained(path)
    return str(path)


COCA_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 8,
                   "attentional_pool": True, "attn_pooler_heads": 4, "output_tokens": True},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2,
                 "embed_cls": True, "output_tokens": True},
    "multimodal_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2,
                       "attn_pooler_heads": 4},
}


def build_tiny_coca(path: str | Path, seed: int = 0) -> str:
    """Tiny open_clip `CoCa` saved as an open_clip `local-dir:` folder; returns the folder path.

    Load it with `open_clip.create_model("local-dir:" + path)` or `cedar_hf.load_backbone(path)`. The tokenizer is
    open_clip's built-in `SimpleTokenizer` (vocabulary shipped inside open_clip, so offline).
    """
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.CoCa(**COCA_CONFIG).eval()
    # open_clip leaves the captioner's output projection uninitialised (NaN logits otherwise).
    torch.nn.init.normal_(model.text_decoder.text_projection, std=model.text_decoder.width ** -0.5)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    # `custom_text` makes open_clip's factory build a CoCa (with `multimodal_cfg`) rather than a CLIP.
    config = {"model_cfg": {**COCA_CONFIG, "custom_text": True},
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                 "std": [0.26862954, 0.26130258, 0.27577711]}}
    (path / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / "open_clip_model.safetensors"))
    return str(path)


def build_tiny_text_encoder(path: str | Path, seed: int = 0) -> str:
    """Tiny `BertModel` (hidden 24) + tokenizer saved into `path` (a plain mean-pooled text encoder)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=64, pad_token_id=PAD_ID)
    BertModel(config).eval().save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


def make_images(n: int, size: int = 40, seed: int = 0):
    """`n` random RGB PIL images (smooth blobs, not constant, so pooled embeddings differ)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        low = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((size, size), Image.BILINEAR)
        noise = rng.integers(-20, 20, size=(size, size, 3))
        images.append(Image.fromarray(np.clip(np.asarray(img, dtype=int) + noise, 0, 255).astype(np.uint8)))
    return images


def make_image_folder(path: str | Path, n: int = 12, classes: tuple[str, ...] = ("cats", "dogs"), seed: int = 0) -> str:
    """Write `n` PNGs into `path/<class>/img_XXX.png` (round-robin over `classes`); returns `path`."""
    path = Path(path)
    for i, image in enumerate(make_images(n, seed=seed)):
        folder = path / classes[i % len(classes)] if classes else path
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"img_{i:03d}.png")
    return str(path)


def tiny_siglip2_tokenizer():
    """A real `Siglip2Tokenizer` (Gemma-style byte-fallback BPE, lower-casing) over characters, built offline.

    transformers' AutoTokenizer maps `siglip2` checkpoints to this class whatever tokenizer was saved, so the tiny
    model gets one of its own: specials at Gemma's ids (pad 0, eos 1, bos 2, unk 3, mask 4), then `▁` and characters.
    """
    from transformers import Siglip2Tokenizer

    chars = ["▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(i) for i in range(10)] + list(".,!?")
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    vocab.update({ch: 5 + i for i, ch in enumerate(chars)})
    return Siglip2Tokenizer(vocab=vocab, merges=[])


def build_tiny_siglip2(path: str | Path, seed: int = 0) -> str:
    """Tiny `Siglip2Model` (width 32, NaFlex patches of 8 px, at most 16 per image) + `Siglip2Tokenizer` +
    `Siglip2ImageProcessor` saved into `path`."""
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model

    torch.manual_seed(seed)
    config = Siglip2Config(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=32, pad_token_id=0, eos_token_id=1,
                         bos_token_id=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           patch_size=8, num_patches=16),
    )
    model = Siglip2Model(config).eval()
    model.save_pretrained(path)
    Siglip2ImageProcessor(patch_size=8, max_num_patches=16).save_pretrained(path)
    tiny_siglip2_tokenizer().save_pretrained(path)
    return str(path)


def build_tiny_aimv2(path: str | Path, projection_dim: int = 16, seed: int = 0) -> str:
    """Tiny `Aimv2Model` (the `-lit` image + text model; width 32, 32 px, 16-d projection) + the word-piece
    tokenizer (EOS = [SEP], where AIMv2 pools its text) + `CLIPImageProcessor` (AIMv2's) saved into `path`."""
    from transformers import Aimv2Config, Aimv2Model, CLIPImageProcessor

    torch.manual_seed(seed)
    config = Aimv2Config(
        text_config=dict(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=32, eos_token_id=SEP_ID),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=projection_dim,
    )
    model = Aimv2Model(config).eval()
    model.save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)
