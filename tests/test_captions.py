"""Sparse captions, recurring words and steering on a tiny BLIP that really reads its visual tokens."""

import numpy as np
from PIL import Image
import pytest
import torch

import cedar_hf
from cedar_hf.interpret import explain
from cedar_hf.interpret.captions import caption_report, recurring_words, sparse_captions, steer

from builders import build_model
from tiny_backbones import build_tiny_blip


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    path = build_tiny_blip(tmp_path_factory.mktemp("blip") / "blip")  # initializer_range=0.5
    backbone = cedar_hf.load_backbone(path)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    tokens = backbone.embed_images(images, sites=("vision_tokens",))["vision_tokens"]  # (3, 17, 32)
    torch.manual_seed(0)
    dictionary = build_model("cedar", d_in=32, k=8, init_std=0.1, embedding_site="vision_tokens")
    dictionary.set_mean(tokens.reshape(-1, 32).mean(0))
    return backbone, dictionary, images, tokens


def test_steering_a_coordinate_changes_the_caption_and_setting_it_back_restores_it(blip):
    backbone, dictionary, images, tokens = blip
    dense = backbone.caption(images, max_new_tokens=30)
    base = sparse_captions(backbone, dictionary, images, k=8)
    latent = int(dictionary.encode(tokens, k=8).abs().sum((0, 1)).argmax())  # an active coordinate
    raised = steer(backbone, dictionary, images, latent, delta=5.0, k=8)
    assert raised != base
    assert sum(r != b for r, b in zip(raised, base)) >= 2
    assert steer(backbone, dictionary, images, latent, delta=0.0, k=8) == base  # set back: the caption returns
    codes = dictionary.encode(tokens, k=8)[..., latent]
    # setting the coordinate to a constant replaces it in every token; setting it to its own value would restore
    assert steer(backbone, dictionary, images, latent, value=0.0, k=8) != base or bool((codes == 0).all())
    # nothing stays hooked: sparse and dense captions are as before
    assert sparse_captions(backbone, dictionary, images, k=8) == base
    assert backbone.caption(images, max_new_tokens=30) == dense


def test_steering_by_name_and_bad_arguments(blip):
    backbone, dictionary, images, _ = blip
    dictionary.concept_names = {"names": [{"latent": i, "name": f"c{i}", "score": 0.1, "alternatives": []}
                                          for i in range(32)]}
    try:
        assert steer(backbone, dictionary, images, "c3", delta=4.0, k=8) == steer(backbone, dictionary, images, 3,
                                                                                   delta=4.0, k=8)
        with pytest.raises(ValueError, match="no latent is named"):
            steer(backbone, dictionary, images, "zebra", delta=1.0)
        with pytest.raises(ValueError, match="exactly one of delta"):
            steer(backbone, dictionary, images, 3, delta=1.0, value=2.0)
        with pytest.raises(ValueError, match=r"latent=40 must be in \[0, n_latents=32\)"):
            steer(backbone, dictionary, images, 40, delta=1.0)
    finally:
        dictionary.concept_names = None


def test_caption_report_dense_sparse_samples_and_recurring_words(blip):
    backbone, dictionary, images, _ = blip
    reports = caption_report(backbone, dictionary, images, k=8, samples=5, temperature=0.3)
    again = caption_report(backbone, dictionary, images, k=8, samples=5, temperature=0.3)
    assert [r.samples for r in reports] == [r.samples for r in again]  # seeded
    dense = backbone.caption(images, max_new_tokens=30)
    for report, caption in zip(reports, dense):
        assert report.dense == caption and len(report.samples) == 5
        for word, count in report.recurring:
            assert count >= 3 and sum(word in s.lower().split() for s in report.samples) == count
        assert "recurring words" in str(report) and "sparse caption (k=8)" in str(report)
    assert any(r.sparse != r.dense for r in reports)  # k=8 of 32 changes what the decoder sees
    lossless = caption_report(backbone, dictionary, images, k=32, samples=0)
    assert [r.sparse for r in lossless] == dense  # CEDAR with k = d_in is exact


def test_recurring_words():
    captions = ["a dog on the beach", "a dog running", "the dog and a ball on the beach", "a cat"]
    assert recurring_words(captions) == [("dog", 3), ("beach", 2)]
    assert recurring_words(captions, min_fraction=0.75) == [("dog", 3)]


def test_explain_an_image_shows_the_sparse_caption(blip, tmp_path):
    backbone, dictionary, images, tokens = blip
    explanation = explain(dictionary, images[0], backbone=backbone, k=8)
    assert explanation.caption == sparse_captions(backbone, dictionary, images[:1], k=8)[0]
    mean_code = dictionary.encode(tokens[0], k=8).mean(0)
    top = mean_code.abs().argsort(descending=True)[:8]
    assert explanation.latents == top.tolist()
    path = explanation.plot(tmp_path / "fig3.png")
    assert path.stat().st_size > 5000


def test_caption_command(blip, tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    backbone, dictionary, images, _ = blip
    dictionary.config.backbone = backbone.name_or_path
    dictionary.save_pretrained(tmp_path / "dict")
    paths = []
    for i, image in enumerate(images[:2]):
        image.save(tmp_path / f"im{i}.png")
        paths.append(str(tmp_path / f"im{i}.png"))
    result = CliRunner().invoke(app, ["caption", *paths, "--model", str(tmp_path / "dict"), "--k", "8",
                                      "--samples", "3", "--temperature", "0.3", "--steer", "5=4"])
    assert result.exit_code == 0, result.output
    dense = backbone.caption(images[:2], max_new_tokens=30)
    sparse = sparse_captions(backbone, dictionary, images[:2], k=8)
    steered = steer(backbone, dictionary, images[:2], 5, delta=4.0, k=8)
    for i in range(2):
        assert f"dense caption:       {dense[i]}" in result.output
        assert f"sparse caption (k=8): {sparse[i]}" in result.output
        assert f"steered 5 +4: {steered[i]}" in result.output
    assert result.output.count("recurring words") == 2 and result.output.count("sample 3") == 2
    bad = CliRunner().invoke(app, ["caption", paths[0], "--model", str(tmp_path / "dict"), "--steer", "oops"])
    assert bad.exit_code != 0 and "NAME=DELTA" in bad.output


def test_dense_cedar_and_no_rotation_captions_side_by_side(blip, tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app
    from cedar_hf.interpret.captions import compare_captions

    backbone, dictionary, images, tokens = blip
    no_rotation = cedar_hf.NoRotation(cedar_hf.NoRotationConfig(d_in=32, k=8))
    no_rotation.fit_embeddings(tokens)
    full = compare_captions(backbone, {"CEDAR": dictionary, "no rotation": no_rotation}, images, k=32)
    assert all(row["CEDAR"] == row["dense"] == row["no rotation"] for row in full)  # both lossless at k = d
    sparse = compare_captions(backbone, {"CEDAR": dictionary, "no rotation": no_rotation}, images, k=2)
    assert [row["dense"] for row in sparse] == [row["dense"] for row in full]
    assert any(row["no rotation"] != row["dense"] for row in sparse)
    assert [row["CEDAR"] for row in sparse] == sparse_captions(backbone, dictionary, images, k=2)
    assert [row["no rotation"] for row in sparse] == sparse_captions(backbone, no_rotation, images, k=2)

    dictionary.config.backbone = backbone.name_or_path
    dictionary.save_pretrained(tmp_path / "cedar")
    no_rotation.save_pretrained(tmp_path / "plain")
    images[0].save(tmp_path / "im.png")
    result = CliRunner().invoke(app, ["caption", str(tmp_path / "im.png"), "--model", str(tmp_path / "cedar"),
                                      "--k", "2", "--samples", "0", "--compare", str(tmp_path / "plain")])
    assert result.exit_code == 0, result.output
    assert "side by side:" in result.output
    assert f"{tmp_path / 'plain'} (k=2)" in result.output and sparse[0]["no rotation"] in result.output
