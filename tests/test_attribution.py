"""Exact similarity attribution (`attribute_similarity`, `cedar-hf attribute`) on tiny CLIP embeddings."""

import json

import pytest
import torch
from tiny_backbones import build_tiny_clip, make_images

import cedar_hf
from builders import build_model
from cedar_hf.interpret.attribution import attribute_similarity, is_orthogonal

TEXTS = ["a photo of a dog", "a red car on the street", "two cats sitting on a bed", "the sky at night"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = build_tiny_clip(tmp_path_factory.mktemp("clip"))
    backbone = cedar_hf.load_backbone(path)
    images = make_images(4)
    image_embeds = backbone.embed_images(images)["image_embeds"]
    text_embeds = backbone.embed_texts(TEXTS)
    return path, backbone, images, image_embeds, text_embeds


@pytest.fixture(scope="module")
def cedar(clip):
    _, _, _, image_embeds, text_embeds = clip
    model = build_model("cedar", d_in=16, k=4, init_std=0.3)  # a random rotation, far from the identity
    model.set_mean(torch.cat([image_embeds, text_embeds]).mean(0))
    return model.eval()


def pairs(clip):
    _, _, _, image_embeds, text_embeds = clip
    return [(image_embeds[i], text_embeds[j]) for i in range(4) for j in range(4)] + [
        (image_embeds[0], image_embeds[1]), (text_embeds[0], text_embeds[2])]


def test_cedar_terms_sum_to_the_similarity_at_k_equal_d(clip, cedar):
    assert is_orthogonal(cedar)
    for a, c in pairs(clip):
        att = attribute_similarity(cedar, a, c, k=16)
        a64, c64 = a.double(), c.double()
        dot = float(a64 @ c64)  # computed here, independently of the attribution
        cosine = float(torch.nn.functional.cosine_similarity(a64, c64, dim=0))
        assert abs(sum(att.contributions) + sum(att.mean_terms.values()) - dot) < 1e-5
        assert abs(att.to_cosine(sum(att.contributions) + sum(att.mean_terms.values())) - cosine) < 1e-5
        assert abs(att.reconstruction_error) < 1e-5 and att.residual == 0.0 and all(att.in_top_k)
        assert abs(att.explained - att.centred_dot) < 1e-5
        b = cedar.b.double()
        assert abs(att.centred_dot - float((a64 - b) @ (c64 - b))) < 1e-9
        assert att.mean_terms["‖m‖²"] == pytest.approx(float(b @ b), abs=1e-9)


def test_cedar_top_k_part_and_residual_are_the_axes_products(clip, cedar):
    U = cedar.rotation.detach().double()
    b = cedar.b.double()
    for a, c in pairs(clip)[:6]:
        att = attribute_similarity(cedar, a, c, k=3)
        za, zc = U @ (a.double() - b), U @ (c.double() - b)  # the rotated coordinates, computed here
        union = set(za.abs().topk(3).indices.tolist()) | set(zc.abs().topk(3).indices.tolist())
        products = za * zc
        assert abs(att.explained - float(products[list(union)].sum())) < 1e-6
        rest = [d for d in range(16) if d not in union]
        assert abs(att.residual - float(products[rest].sum())) < 1e-6
        assert abs(att.explained + att.residual + sum(att.mean_terms.values()) - float(a.double() @ c.double())) < 1e-5
        assert {lat for lat, top in zip(att.latents, att.in_top_k) if top} == union
        for latent, value in zip(att.latents, att.contributions):
            assert value == pytest.approx(float(products[latent]), abs=1e-9)
        assert sorted((abs(v) for v in att.contributions), reverse=True) == [abs(v) for v in att.contributions]


def test_an_sae_reports_its_reconstruction_error_and_interference(clip):
    _, _, _, image_embeds, text_embeds = clip
    sae = build_model("topk_sae", d_in=16, expansion_factor=4, k=3).eval()
    data = torch.cat([image_embeds, text_embeds])
    sae.set_normalization(*sae.compute_normalization(data))
    assert not is_orthogonal(sae)
    a, c = image_embeds[0], text_embeds[1]
    att = attribute_similarity(sae, a, c)
    with torch.no_grad():  # the reconstruction-error term, by the independent route through reconstruct()
        m = sae.decode(torch.zeros(1, 64)).double()[0]
        a_hat, c_hat = sae.reconstruct(torch.stack([a, c])).double()
    expected = float((a.double() - m) @ (c.double() - m) - (a_hat - m) @ (c_hat - m))
    assert att.reconstruction_error == pytest.approx(expected, abs=1e-5)
    assert abs(att.reconstruction_error) > 1e-3  # 3 of 64 latents do not reconstruct a 16-d embedding
    assert abs(att.interference) > 1e-6  # non-orthogonal atoms interfere
    assert sum(att.contributions) == pytest.approx(float((a_hat - m) @ (c_hat - m)), abs=1e-5)
    assert att.total == pytest.approx(float(a.double() @ c.double()), abs=1e-5)
    assert "reconstruction error" in att.table()


def test_texts_and_images_go_through_the_backbone_and_names_follow_the_ends(clip, cedar, tmp_path):
    path, backbone, images, image_embeds, text_embeds = clip
    images[0].save(tmp_path / "im.png")
    att = attribute_similarity(cedar, str(tmp_path / "im.png"), TEXTS[0], k=16, backbone=backbone)
    direct = attribute_similarity(cedar, image_embeds[0], text_embeds[0], k=16)
    assert att.sources == (str(tmp_path / "im.png"), TEXTS[0])
    assert att.contributions == pytest.approx(direct.contributions, abs=1e-6)
    named = build_model("cedar", d_in=16, k=4, init_std=0.3)
    named.load_state_dict(cedar.state_dict())
    named.concept_names = {"format": "cedar-hf-concept-names/1", "names": [
        {"latent": d, "name": f"up{d}", "sign": 1, "score": 0.9, "opposite": {"name": f"down{d}", "score": 0.8}}
        for d in range(16)]}
    att = attribute_similarity(named, image_embeds[0], text_embeds[0], k=16)
    for latent, name, va, vc in zip(att.latents, att.names, att.code_a, att.code_c):
        expected = {(True, True): f"up{latent}", (False, False): f"down{latent}",
                    (True, False): f"up{latent} ↔ down{latent}", (False, True): f"down{latent} ↔ up{latent}"}
        assert name == expected[(va >= 0, vc >= 0)]


def test_bad_inputs_are_refused_with_the_value(cedar):
    with pytest.raises(ValueError, match="expected 16 values"):
        attribute_similarity(cedar, torch.zeros(5), torch.zeros(16))
    with pytest.raises(ValueError, match="empty text"):
        attribute_similarity(cedar, "  ", "a dog", backbone=object())
    att = attribute_similarity(cedar, torch.randn(16), torch.randn(16))
    with pytest.raises(ValueError, match="measure='cos'"):
        att.terms(measure="cos")


def test_cli_writes_a_bar_chart_and_json(clip, cedar, tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    path, _, images, _, _ = clip
    cedar.config.backbone = path
    cedar.save_pretrained(tmp_path / "dict")
    images[0].save(tmp_path / "a.png")
    images[1].save(tmp_path / "b.png")
    for a, c in [(str(tmp_path / "a.png"), TEXTS[0]), (TEXTS[0], TEXTS[1]), (str(tmp_path / "a.png"), str(tmp_path / "b.png"))]:
        out = tmp_path / "why.png"
        result = CliRunner().invoke(app, ["attribute", a, c, "-m", str(tmp_path / "dict"), "--k", "4", "-o", str(out),
                                          "--json", str(tmp_path / "why.json")])
        assert result.exit_code == 0, result.output
        assert "sum of the terms" in result.output and out.stat().st_size > 5000
        data = json.loads((tmp_path / "why.json").read_text())
        assert data["sources"] == [a, c]
        total = sum(data["contributions"]) + data["reconstruction_error"] + sum(data["mean_terms"].values())
        assert total == pytest.approx(data["dot"], abs=1e-5)
    bad = CliRunner().invoke(app, ["attribute", TEXTS[0], TEXTS[1], "-m", str(tmp_path / "dict"), "--measure", "x"])
    assert bad.exit_code != 0 and "--measure 'x'" in bad.output
    missing = CliRunner().invoke(app, ["attribute", str(tmp_path / "nope.jpg"), TEXTS[0], "-m", str(tmp_path / "dict")])
    assert missing.exit_code != 0 and "nope.jpg' does not exist" in missing.output
    assert "Examples" in CliRunner().invoke(app, ["attribute", "-h"]).output


def test_search_results_explain_their_match(clip, cedar):
    from datasets import Dataset

    from cedar_hf.interpret import ConceptIndex

    _, _, _, image_embeds, text_embeds = clip
    data = Dataset.from_dict({"embedding": image_embeds.tolist(), "id": [f"img{i}" for i in range(4)]})
    index = ConceptIndex(cedar, data, k=4, progress=False)
    results = index.search(example=text_embeds[0], n=3, explain=True)
    assert len(results) == 3
    for result in results:
        why = result["why"]
        direct = float(torch.nn.functional.cosine_similarity(text_embeds[0].double(),
                                                             image_embeds[result["row"]].double(), dim=0))
        assert why["cosine"] == pytest.approx(direct, abs=1e-6)
        assert sum(share for _, share in why["terms"]) == pytest.approx(direct, abs=1e-5)  # nothing left out
    match = index.explain_match(text_embeds[0], row=results[0]["row"])
    expected = attribute_similarity(cedar, text_embeds[0], image_embeds[results[0]["row"]], k=4)
    assert match.contributions == pytest.approx(expected.contributions, abs=1e-9)
    assert match.sources == ("query", results[0]["id"])
    with pytest.raises(ValueError, match="row=9 is out of range"):
        index.explain_match(text_embeds[0], row=9)
    tensor_index = ConceptIndex(cedar, image_embeds, k=4, progress=False)
    assert tensor_index.explain_match(text_embeds[1], row=2).dot == pytest.approx(
        float(text_embeds[1].double() @ image_embeds[2].double()), abs=1e-6)


def test_the_explorer_explains_a_match_between_two_rows(clip, cedar):
    from datasets import Dataset

    from cedar_hf.analysis.explorer import ConceptExplorer, build_explorer
    from cedar_hf.interpret.attribution import match_explainer

    _, _, _, image_embeds, text_embeds = clip
    data = Dataset.from_dict({"embedding": torch.cat([image_embeds, text_embeds]).tolist(),
                              "text": [f"image {i}" for i in range(4)] + TEXTS,
                              "modality": ["image"] * 4 + ["text"] * 4, "pair_id": list(range(4)) * 2})
    explain = match_explainer(cedar, data, k=4)
    text = explain(0, 4)
    expected = attribute_similarity(cedar, image_embeds[0], text_embeds[0], k=4)
    assert f"cosine {expected.cosine:+.4f}" in text and "'0: image 0'" in text and "a photo of a dog" in text
    app = build_explorer(cedar, data, progress=False, backbone=None, explain_match=explain, umap_neighbors=3)
    explorer = app.explorer
    assert explorer.explain_rows(0, 4).startswith("```") and "sum of the terms" in explorer.explain_rows(0, 4)
    assert "row=99 is out of range" in explorer.explain_rows(0, 99)
    off = ConceptExplorer(explorer.data)
    assert "needs the dictionary's attribution" in off.explain_rows(0, 1)
    app.close()
