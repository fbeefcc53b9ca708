"""Concept-quality scores (purity, name fidelity, caption agreement): hand-checked small cases, then planted data
where a trained CEDAR must beat a random rotation."""

import json

import datasets
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cedar_hf.interpret import name_concepts
from cedar_hf.interpret.quality import (caption_agreement, caption_chance, concept_quality, content_words,
                                        label_purity, name_fidelity, oriented_top_rows, purity_chance)

from builders import build_model, planted_sparse
from interpret_helpers import planted_cedar


def test_oriented_top_rows_follow_the_named_end():
    codes = sp.csr_matrix(np.array([[3.0, -1.0], [1.0, -4.0], [-2.0, 2.0], [2.0, -3.0]]))
    top = oriented_top_rows(codes, signs=[1, -1], n=2)
    assert top[0].tolist() == [0, 3]  # largest positive codes
    assert top[1].tolist() == [1, 3]  # named end is the negative one: most negative codes
    assert oriented_top_rows(codes, signs=[1, 1], n=2)[1] is None  # only one positive row: unscored
    with pytest.raises(ValueError, match="n=0"):
        oriented_top_rows(codes, [1, 1], 0)


def test_label_purity_and_its_chance_level():
    labels = ["a", "a", "b", "c", "a", "b"]
    scores = label_purity([np.array([0, 1, 4]), np.array([0, 2, 3]), None], labels)
    assert scores[0] == 1.0 and scores[1] == pytest.approx(1 / 3) and np.isnan(scores[2])
    # all rows one label: chance is 1; two balanced labels, n = 2: purity 1 w.p. 1/3 (same pair), else 1/2
    assert purity_chance(["x"] * 10, 3) == 1.0
    assert purity_chance(["x", "y"] * 50, 2, draws=4000) == pytest.approx(0.5 + 0.5 * 49 / 99, abs=0.02)


def test_name_fidelity_is_precision_at_n():
    # 2-d: rows 0-3 point at 0°, 10°, 20°, 80°; the rest at 90°+ (random distractors far from the name at 0°)
    angles = np.deg2rad([0, 10, 20, 80] + [100 + i for i in range(40)])
    x = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1))
    name = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    top = [np.array([0, 1, 2]), np.array([0, 1, 3])]
    scores = name_fidelity(top, x, name, n_random=40)
    assert scores[0] == 1.0  # the name ranks exactly the three top rows first
    # name 1 points at 90°: row 3 (80°) is among the nearest three, rows 0 and 1 lose to distractors at 100°+
    assert scores[1] == pytest.approx(1 / 3)
    assert np.isnan(name_fidelity([None, top[1]], x, name, n_random=5)[0])
    with pytest.raises(ValueError, match="3-d"):
        name_fidelity(top, x, torch.zeros(2, 3))


def test_caption_agreement_counts_name_words():
    assert content_words("Brown dogs and the boxes") == {"brown", "dog", "box"}
    scores = caption_agreement(["dog", "ice cream", None, "cat"],
                               [["a dog on a beach", "two dogs", "a cat"], ["ice on a lake"], ["x"], []])
    assert scores[0] == pytest.approx(2 / 3) and scores[1] == 1.0 and np.isnan(scores[2]) and np.isnan(scores[3])
    assert caption_chance(["dog", "cat"], ["a dog", "a car", "a man", "a cat"]) == pytest.approx(0.25)


@pytest.fixture(scope="module")
def planted_world():
    torch.manual_seed(0)
    model, backbone, vocabulary, planted, atoms = planted_cedar(d=32, k=3)
    name_concepts(model, backbone, vocabulary)
    z, _, _ = planted_sparse(800, 32, 3, atoms=atoms, seed=7, offset=0.0)
    coefficients = z @ atoms.T  # (N, 32) planted coefficients (atoms orthonormal)
    labels = [f"planted{int(i)}" for i in coefficients.argmax(1)]  # the most positive planted word of each row
    ds = datasets.Dataset.from_dict({"embedding": (z + backbone.mean).tolist(), "label": labels})
    return model, backbone, vocabulary, ds


def test_trained_cedar_scores_high_and_a_random_rotation_low(planted_world, tmp_path):
    model, backbone, vocabulary, ds = planted_world
    report = concept_quality(model, ds, backbone, n=10, n_random=40, progress=False)
    purity, fidelity = report.summary["purity"], report.summary["fidelity"]
    assert fidelity["chance"] == pytest.approx(10 / 50)
    assert purity["scored"] >= 28 and fidelity["scored"] >= 28
    assert purity["mean"] > 0.8 and fidelity["mean"] > 0.8
    assert purity["chance"] < 0.3
    random = build_model("cedar", d_in=32, k=3, init_std=1.0)  # a random rotation, named the same way
    random.set_mean(model.b.detach())
    name_concepts(random, backbone, vocabulary)
    baseline = concept_quality(random, ds, backbone, n=10, n_random=40, progress=False).summary
    assert baseline["fidelity"]["mean"] < fidelity["mean"] - 0.3
    assert baseline["purity"]["mean"] < purity["mean"] - 0.3
    json_path, md_path = report.save(tmp_path / "q")
    saved = json.loads(json_path.read_text())
    assert saved["summary"] == report.summary and len(saved["per_concept"]) == 32
    assert "| fidelity |" in md_path.read_text() and not list((tmp_path / "q").glob(".*"))  # no temp files left


def test_quality_without_names_or_labels_and_with_captions(planted_world):
    model, backbone, _, ds = planted_world
    unnamed = build_model("cedar", d_in=32, k=3, init_std=0.0)
    unnamed.set_mean(model.b.detach())
    report = concept_quality(unnamed, ds.remove_columns("label"), backbone, progress=False)
    assert report.summary == {}  # nothing to score: no names, no labels
    texts = {row: f"a picture of {label}" for row, label in enumerate(ds["label"])}
    with_captions = concept_quality(model, ds, backbone, label_column=None, progress=False,
                                    captions=lambda rows: [texts[r] for r in rows])
    agreement = with_captions.summary["caption_agreement"]
    assert agreement["mean"] > 0.8 and agreement["chance"] < 0.2 and "purity" not in with_captions.summary
    with pytest.raises(ValueError, match="n_random=40"):
        concept_quality(model, ds.select(range(30)), backbone, progress=False)


def test_score_command_writes_the_report(tmp_path):
    from typer.testing import CliRunner

    import cedar_hf
    from cedar_hf.cli import app
    from tiny_backbones import WORDS, build_tiny_text_encoder

    encoder = build_tiny_text_encoder(tmp_path / "bert")  # 24-d
    backbone = cedar_hf.load_backbone(encoder)
    texts = [" ".join(WORDS[(3 * i + j) % 60] for j in range(3)) for i in range(120)]
    x = backbone.embed_texts(texts).float()
    ds = datasets.Dataset.from_dict({"embedding": x.tolist(), "text": texts,
                                     "label": [t.split()[0][:1] for t in texts]})
    ds.save_to_disk(str(tmp_path / "emb"))
    model = build_model("cedar", d_in=24, k=4, init_std=0.2, backbone=encoder, embedding_site="text_embeds")
    model.set_mean(x.mean(0))
    name_concepts(model, backbone, list(dict.fromkeys(WORDS[10:60])))
    model.save_pretrained(tmp_path / "dict")
    runner = CliRunner()
    result = runner.invoke(app, ["score", "-m", str(tmp_path / "dict"), "-d", str(tmp_path / "emb"), "-o",
                                 str(tmp_path / "out"), "--n", "5", "--n-random", "20"])
    assert result.exit_code == 0, result.output
    assert "purity" in result.output and "fidelity" in result.output
    saved = json.loads((tmp_path / "out" / "quality.json").read_text())
    expected = concept_quality(model, ds, backbone, n=5, n_random=20, progress=False)
    assert saved["summary"].keys() == expected.summary.keys() == {"purity", "fidelity"}
    for key in expected.summary:  # the CLI scores exactly as the API (same rows, same seed)
        assert saved["summary"][key]["scored"] == expected.summary[key]["scored"]
        assert saved["summary"][key]["mean"] == pytest.approx(expected.summary[key]["mean"], abs=1e-6)
    assert "-h" in runner.invoke(app, ["score", "-h"]).output
    bad = runner.invoke(app, ["score", "-m", str(tmp_path / "dict"), "-d", str(tmp_path / "nope")])
    assert bad.exit_code != 0 and "nope" in bad.output


@pytest.mark.slow
def test_caption_agreement_on_a_tiny_blip_uses_sparse_captions_of_the_top_images(tmp_path):
    """The real route: each concept's top images captioned from their sparse visual tokens (a tiny BLIP that reads
    its tokens), scored against the concept's name, exactly as a direct `sparse_captions` call gives."""
    from PIL import Image

    import cedar_hf
    from cedar_hf.interpret.captions import sparse_captions
    from cedar_hf.interpret.quality import sparse_caption_fn
    from tiny_backbones import build_tiny_blip

    backbone = cedar_hf.load_backbone(build_tiny_blip(tmp_path / "blip"))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(12)]
    tokens = backbone.embed_images(images, sites=("vision_tokens",))["vision_tokens"]  # (12, 17, 32)
    ds = datasets.Dataset.from_dict({"embedding": tokens.numpy().tolist(), "image": images})
    dictionary = build_model("cedar", d_in=32, k=8, init_std=0.1, embedding_site="vision_tokens")
    dictionary.set_mean(tokens.reshape(-1, 32).mean(0))
    captions = sparse_caption_fn(dictionary, backbone, ds, k=8, max_new_tokens=8)
    direct = sparse_captions(backbone, dictionary, [images[3], images[7]], k=8, max_new_tokens=8)
    assert captions([3, 7]) == direct
    # name every latent by the first content word of one image's sparse caption: some concepts then agree
    words = sorted({w for c in captions(list(range(12))) for w in content_words(c)})
    assert words, "the tiny BLIP produced no content words"
    dictionary.concept_names = {"names": [{"latent": i, "name": words[i % len(words)], "score": 0.5, "sign": 1,
                                           "alternatives": []} for i in range(32)]}
    report = concept_quality(dictionary, ds, backbone, label_column=None, n=3, n_random=5, captions=captions,
                             progress=False)
    assert set(report.summary) == {"caption_agreement"}  # no fidelity for visual tokens, no labels
    for concept in report.per_concept:
        if concept["caption_agreement"] is not None:
            expected = caption_agreement([concept["name"]], [captions(concept["examples"])])[0]
            assert concept["caption_agreement"] == pytest.approx(expected)
    assert report.summary["caption_agreement"]["scored"] >= 1
    missing = sparse_caption_fn(dictionary, backbone, ds.remove_columns("image"), k=8)
    with pytest.raises(ValueError, match="row 0 of the dataset has no image"):
        missing([0])
