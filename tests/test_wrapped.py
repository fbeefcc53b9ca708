"""Wrapped models: a backbone and a dictionary as one PreTrainedModel (BLIP captions, CLIP sparse embeddings)."""

import pytest
import torch
from builders import build_model
from tiny_backbones import build_tiny_blip, build_tiny_clip, build_tiny_siglip, make_images
from transformers import AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer, BlipForConditionalGeneration

import cedar_hf
from cedar_hf.modeling_wrapped import CedarBlipForConditionalGeneration, CedarClipModel, register_wrapped_models

register_wrapped_models()  # what cedar_hf/__init__.py does once these classes are in its registration block


@pytest.fixture(scope="module")
def blip_parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("blip")
    path = build_tiny_blip(root / "blip")
    blip = BlipForConditionalGeneration.from_pretrained(path).eval()
    pixel_values = AutoProcessor.from_pretrained(path)(images=make_images(3), return_tensors="pt")["pixel_values"]
    tokens = blip.vision_model(pixel_values=pixel_values).last_hidden_state
    cedar = build_model("cedar", d_in=32, k=4, init_std=0.3, embedding_site="vision_tokens", backbone=path)
    cedar.set_mean(tokens.reshape(-1, 32).mean(0))
    cedar.save_pretrained(root / "cedar")
    return path, str(root / "cedar"), blip, pixel_values


def test_blip_wrapper_generates_from_sparse_tokens_and_round_trips(blip_parts, tmp_path):
    path, cedar_path, blip, pixel_values = blip_parts
    model = CedarBlipForConditionalGeneration.from_backbone_and_dictionary(path, cedar_path, k=2)
    assert not any(p.is_meta for p in model.parameters()) and not any(b.is_meta for b in model.buffers())
    assert model.config.backbone == path and model.config.dictionary == cedar_path
    for kwargs in (dict(max_new_tokens=8), dict(max_new_tokens=8, num_beams=3)):
        dense = blip.generate(pixel_values=pixel_values, **kwargs)
        assert torch.equal(model.generate(pixel_values, k=32, **kwargs), dense)
        assert not torch.equal(model.generate(pixel_values, **kwargs), dense)  # config.k = 2
    assert not model.blip.vision_model._forward_hooks  # nothing left installed
    model.save_pretrained(tmp_path / "wrapped")
    loaded = AutoModel.from_pretrained(tmp_path / "wrapped")
    assert type(loaded) is CedarBlipForConditionalGeneration and loaded.config.k == 2
    torch.testing.assert_close(loaded.dictionary.rotation, model.dictionary.rotation)
    assert torch.equal(loaded.generate(pixel_values, max_new_tokens=8), model.generate(pixel_values, max_new_tokens=8))
    ids = model.generate(pixel_values, max_new_tokens=8)
    with torch.no_grad():
        loss_sparse = model(pixel_values, input_ids=ids, labels=ids, k=2).loss
        loss_full = model(pixel_values, input_ids=ids, labels=ids, k=32).loss
        dense_loss = blip(pixel_values=pixel_values, input_ids=ids, labels=ids).loss
    # k = d_in reconstructs the tokens up to float32 rounding of the rotation (~1e-6), which the decoder's
    # 0.5-scale weights amplify to ~1e-5 relative; the sparse loss differs by orders of magnitude more.
    torch.testing.assert_close(loss_full, dense_loss, rtol=1e-4, atol=0)
    assert abs(float(loss_sparse - dense_loss)) > 100 * abs(float(loss_full - dense_loss)) + 1e-3


def test_blip_wrapper_refuses_a_dictionary_of_the_wrong_width(blip_parts, tmp_path):
    path = blip_parts[0]
    build_model("cedar", d_in=16, embedding_site="image_embeds", backbone="openai/clip").save_pretrained(tmp_path / "d16")
    with pytest.raises(ValueError, match=r"d_in=16 does not match the visual tokens of .* \(width 32\)"):
        CedarBlipForConditionalGeneration.from_backbone_and_dictionary(path, str(tmp_path / "d16"))
    with pytest.raises(ValueError, match="not a cedar-hf dictionary"):
        CedarBlipForConditionalGeneration.from_backbone_and_dictionary(path, torch.nn.Linear(2, 2))


@pytest.mark.parametrize("builder", [build_tiny_clip, build_tiny_siglip])
def test_clip_wrapper_gives_sparse_image_and_text_embeddings(tmp_path, builder):
    path = builder(tmp_path / "clip")
    siglip = builder is build_tiny_siglip  # trained with max-length padding and no attention mask
    backbone = cedar_hf.load_backbone(path)
    d = backbone.site_dims["image_embeds"]
    image_dictionary = build_model("topk_sae", d_in=d, k=3)
    text_dictionary = build_model("cedar", d_in=d, k=5, init_std=0.2)
    model = CedarClipModel.from_backbone_and_dictionary(path, image_dictionary, text_dictionary=text_dictionary)
    images, texts = make_images(4), ["a dog", "a red car", "two cats"]
    pixel_values = AutoImageProcessor.from_pretrained(path)(images, return_tensors="pt")["pixel_values"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    padding = dict(padding="max_length", max_length=32) if siglip else dict(padding=True)
    inputs = tokenizer(texts, return_tensors="pt", **padding)
    with torch.no_grad():
        out = model(pixel_values=pixel_values, input_ids=inputs["input_ids"],
                    attention_mask=None if siglip else inputs["attention_mask"])
    dense_images = backbone.embed_images(images)["image_embeds"]
    torch.testing.assert_close(out.dense_image_embeds, dense_images)
    torch.testing.assert_close(out.dense_text_embeds, backbone.embed_texts(texts))
    assert out.image_codes.shape == (4, image_dictionary.config.n_latents)
    assert ((out.image_codes != 0).sum(-1) <= 3).all() and ((out.text_codes != 0).sum(-1) == 5).all()
    torch.testing.assert_close(out.image_embeds, image_dictionary.reconstruct(dense_images, k=3))
    assert out.logits_per_image.shape == (4, 3) and torch.equal(out.logits_per_text, out.logits_per_image.T)
    with torch.no_grad():
        lossless = model.get_text_features(inputs["input_ids"], None if siglip else inputs["attention_mask"], k=d)
    torch.testing.assert_close(lossless.text_embeds, lossless.dense_text_embeds, atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path / "wrapped")
    loaded = AutoModel.from_pretrained(tmp_path / "wrapped")
    assert type(loaded) is CedarClipModel and type(loaded.text_dictionary).__name__ == "CedarModel"
    with torch.no_grad():
        again = loaded.get_image_features(pixel_values)
    torch.testing.assert_close(again.image_embeds, out.image_embeds)


def test_clip_wrapper_refuses_a_dictionary_of_the_wrong_width(tmp_path):
    path = build_tiny_clip(tmp_path / "clip")
    with pytest.raises(ValueError, match=r"d_in=32 does not match the image_embeds of .* \(width 16\)"):
        CedarClipModel.from_backbone_and_dictionary(path, build_model("cedar", d_in=32))
    with pytest.raises(ValueError, match=r"d_in=8 does not match the text_embeds"):
        CedarClipModel.from_backbone_and_dictionary(path, build_model("cedar", d_in=16),
                                                    text_dictionary=build_model("cedar", d_in=8))
