"""`cedar_hf.sparse_tokens`: captions from sparse visual tokens through the model's own `generate`."""

import pytest
import torch
from builders import build_model
from tiny_backbones import build_tiny_blip, build_tiny_coca, build_tiny_vision_encoder_decoder, make_images

import cedar_hf

GENERATE_KWARGS = [
    pytest.param(dict(), id="greedy"),
    pytest.param(dict(num_beams=3), id="beam"),
    pytest.param(dict(num_beams=3, num_return_sequences=2), id="beam-2-sequences"),
]


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    from transformers import AutoProcessor, BlipForConditionalGeneration

    path = build_tiny_blip(tmp_path_factory.mktemp("blip"))
    model = BlipForConditionalGeneration.from_pretrained(path).eval()
    pixel_values = AutoProcessor.from_pretrained(path)(images=make_images(4), return_tensors="pt")["pixel_values"]
    return model, pixel_values


def rotated_cedar(tokens: torch.Tensor, k: int = 4):
    """A CEDAR with a far-from-identity rotation, centred on the tokens' mean."""
    cedar = build_model("cedar", d_in=tokens.shape[-1], k=k, init_std=0.3)
    cedar.set_mean(tokens.reshape(-1, tokens.shape[-1]).mean(0))
    assert (cedar.rotation - torch.eye(tokens.shape[-1])).abs().max() > 0.5  # the test could fail
    return cedar


def generate(model, pixel_values, **kwargs):
    return model.generate(pixel_values=pixel_values, max_new_tokens=10, **kwargs)


@pytest.mark.parametrize("kwargs", GENERATE_KWARGS)
def test_blip_lossless_k_equals_dense_small_k_differs_and_exit_restores(blip, kwargs):
    model, pixel_values = blip
    cedar = rotated_cedar(model.vision_model(pixel_values=pixel_values).last_hidden_state)
    dense = generate(model, pixel_values, **kwargs)
    # the tiny BLIP really reads its visual tokens (initializer_range=0.5): noise changes the captions
    assert not torch.equal(dense, generate(model, torch.randn_like(pixel_values), **kwargs))
    with cedar_hf.sparse_tokens(model, cedar, k=cedar.config.d_in) as handle:
        lossless = generate(model, pixel_values, **kwargs)
    assert handle.calls == 1 and not handle.active
    assert torch.equal(lossless, dense)
    with cedar_hf.sparse_tokens(model, cedar, k=2):
        sparse = generate(model, pixel_values, **kwargs)
    assert sparse.shape[0] == dense.shape[0]
    assert not torch.equal(sparse, dense)
    assert torch.equal(generate(model, pixel_values, **kwargs), dense)


def test_handle_remove_and_live_k(blip):
    model, pixel_values = blip
    cedar = rotated_cedar(model.vision_model(pixel_values=pixel_values).last_hidden_state)
    dense = generate(model, pixel_values)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    handle = cedar_hf.sparse_tokens(model, cedar, k=2)
    sparse = generate(model, pixel_values)
    handle.k = cedar.config.d_in
    assert torch.equal(generate(model, pixel_values), dense)
    handle.remove()
    handle.remove()  # idempotent
    assert not torch.equal(sparse, dense)
    assert torch.equal(generate(model, pixel_values), dense)
    assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())
    assert not model.vision_model._forward_hooks


def test_sampling_and_temperature_run_through_the_hook(blip):
    model, pixel_values = blip
    cedar = rotated_cedar(model.vision_model(pixel_values=pixel_values).last_hidden_state)
    kwargs = dict(do_sample=True, temperature=0.7, top_k=20, num_return_sequences=3)
    torch.manual_seed(1)
    dense = generate(model, pixel_values, **kwargs)
    with cedar_hf.sparse_tokens(model, cedar, k=cedar.config.d_in):
        torch.manual_seed(1)
        lossless = generate(model, pixel_values, **kwargs)
    assert lossless.shape[0] == 3 * pixel_values.shape[0]
    assert torch.equal(lossless, dense)


def test_gradients_flow_through_the_reconstruction(blip):
    model, pixel_values = blip
    cedar = rotated_cedar(model.vision_model(pixel_values=pixel_values).last_hidden_state)
    ids = generate(model, pixel_values)
    with cedar_hf.sparse_tokens(model, cedar, k=8):
        loss = model(pixel_values=pixel_values, input_ids=ids, labels=ids).loss
    loss.backward()
    assert cedar.A.grad is not None and cedar.A.grad.abs().sum() > 0
    cedar.zero_grad()


def test_d_in_mismatch_is_refused(blip):
    model, _ = blip
    with pytest.raises(ValueError, match="d_in=16 does not match the 32-d visual tokens"):
        cedar_hf.sparse_tokens(model, build_model("cedar", d_in=16))
    assert not model.vision_model._forward_hooks
    with pytest.raises(ValueError, match="does not know where the visual tokens"):
        cedar_hf.sparse_tokens(torch.nn.Linear(2, 2), build_model("cedar", d_in=16))


@pytest.mark.parametrize("encoder", ["vit", "swin"])
def test_vision_encoder_decoder(tmp_path, encoder):
    from transformers import AutoImageProcessor, VisionEncoderDecoderModel

    path = build_tiny_vision_encoder_decoder(tmp_path / encoder, encoder=encoder)
    model = VisionEncoderDecoderModel.from_pretrained(path).eval()
    pixel_values = AutoImageProcessor.from_pretrained(path)(make_images(3), return_tensors="pt")["pixel_values"]
    cedar = rotated_cedar(model.encoder(pixel_values=pixel_values).last_hidden_state)
    for kwargs in (dict(), dict(num_beams=3)):
        dense = generate(model, pixel_values, **kwargs)
        with cedar_hf.sparse_tokens(model, cedar, k=cedar.config.d_in):
            assert torch.equal(generate(model, pixel_values, **kwargs), dense)
        with cedar_hf.sparse_tokens(model, cedar, k=1):
            assert not torch.equal(generate(model, pixel_values, **kwargs), dense)
        assert torch.equal(generate(model, pixel_values, **kwargs), dense)


def test_coca_greedy_and_sampling_captions_from_sparse_tokens(tmp_path):
    from cedar_hf.backbones.coca import coca_generate

    backbone = cedar_hf.load_backbone(build_tiny_coca(tmp_path / "coca"))
    model, pixel_values = backbone.model, backbone.pixel_values(make_images(3))
    tokens = backbone.embed_images(make_images(3), sites=("vision_tokens",))["vision_tokens"]
    cedar = rotated_cedar(tokens)
    dense = coca_generate(model, pixel_values, max_new_tokens=8)
    assert dense.shape == (3, 9) and bool((dense[:, 0] == 49406).all())
    with cedar_hf.sparse_tokens(backbone, cedar, k=cedar.config.d_in):
        assert torch.equal(coca_generate(model, pixel_values, max_new_tokens=8), dense)
    with cedar_hf.sparse_tokens(backbone, cedar, k=1):
        assert not torch.equal(coca_generate(model, pixel_values, max_new_tokens=8), dense)
    assert torch.equal(coca_generate(model, pixel_values, max_new_tokens=8), dense)
    sampled = coca_generate(model, pixel_values, max_new_tokens=8, do_sample=True, temperature=0.7, top_k=50,
                            num_return_sequences=2, generator=torch.Generator().manual_seed(0))
    assert sampled.shape[0] == 6 and not torch.equal(sampled[::2], sampled[1::2])
    captions = backbone.caption(make_images(2), max_new_tokens=5)
    assert len(captions) == 2 and all(isinstance(c, str) and c for c in captions)
    with pytest.raises(ValueError, match="beam search is not available"):
        coca_generate(model, pixel_values, num_beams=3)


@pytest.mark.parametrize("architecture", ["relu_sae", "topk_sae", "batchtopk_sae", "jumprelu_sae", "matryoshka_sae"])
def test_every_dictionary_architecture_plugs_into_generate(blip, architecture):
    from builders import build_model as build

    model, pixel_values = blip
    dictionary = build(architecture, d_in=32).eval()
    tokens = model.vision_model(pixel_values=pixel_values).last_hidden_state
    dense = generate(model, pixel_values, num_beams=2)
    with cedar_hf.sparse_tokens(model, dictionary) as handle:
        sparse = generate(model, pixel_values, num_beams=2)
    assert handle.calls == 1 and sparse.shape[0] == dense.shape[0]
    # an untrained dictionary reconstructs the tokens badly, so the captions change
    assert (dictionary.reconstruct(tokens) - tokens).abs().mean() > 0.1
    assert not torch.equal(sparse, dense)
    assert torch.equal(generate(model, pixel_values, num_beams=2), dense)
