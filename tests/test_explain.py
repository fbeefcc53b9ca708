"""Explanations (terminal table, Figure-3 bar chart) and top-activating examples on planted word data."""

import datasets
import numpy as np
from PIL import Image
import pytest
import torch

from cedar_hf.interpret import (Explanation, explain, format_top_examples, name_concepts, plot_top_examples,
                                top_activating)

from builders import planted_sparse
from interpret_helpers import planted_cedar


@pytest.fixture(scope="module")
def named():
    torch.manual_seed(0)
    model, backbone, vocabulary, planted, atoms = planted_cedar(d=32, k=3)
    name_concepts(model, backbone, vocabulary)
    return model, backbone, planted, atoms


def test_explaining_a_text_names_its_planted_concepts(named):
    model, backbone, planted, _ = named
    explanation = explain(model, "planted3 planted17", backbone=backbone, k=2)
    assert isinstance(explanation, Explanation)
    assert sorted(explanation.names) == ["planted17", "planted3"]  # each named by the end its coefficient points to
    assert explanation.reconstruction_cosine > 0.95
    batch = explain(model, ["planted3", "planted5 planted9 planted11"], backbone=backbone, k=3)
    assert batch[0].names[0] == "planted3" and sorted(batch[1].names) == ["planted11", "planted5", "planted9"]


def test_explanation_matches_the_codes_and_renders(named, tmp_path):
    model, backbone, _, _ = named
    x = backbone.embed_texts(["planted1 planted2 planted30"])[0]
    explanation = explain(model, x, k=3)
    codes = model.encode(x[None], k=3)[0].detach()
    assert explanation.latents == codes.abs().argsort(descending=True)[:3].tolist()
    signs = [e["sign"] for e in model.concept_names["names"]]
    assert explanation.coefficients == pytest.approx([signs[i] * float(codes[i]) for i in explanation.latents])
    assert all(c > 0 for c in explanation.coefficients)  # the planted words are present: "more of" each name
    abs_coefs = [abs(c) for c in explanation.coefficients]
    assert abs_coefs == sorted(abs_coefs, reverse=True)
    table = str(explanation)
    assert all(name in table for name in explanation.names) and "cos(x, x̂)" in table
    path = explanation.plot(tmp_path / "out" / "bars.png")
    image = np.asarray(Image.open(path))
    assert image.shape[0] > 100 and image.shape[1] > 300 and image.std() > 10  # a real chart, not a blank canvas
    assert len(explain(model, torch.stack([x, x]), k=3)) == 2
    with pytest.raises(ValueError, match="no backbone given"):
        explain(model.__class__(model.config), "planted1")  # no backbone anywhere
    with pytest.raises(ValueError, match="expected 1 or 2 dims"):
        explain(model, torch.zeros(2, 2, 32))


def planted_dataset(model, atoms, n=300, k=3):
    z, _, _ = planted_sparse(n, 32, k, atoms=atoms, seed=5, offset=0.0)
    z = z + model.b  # around the training mean
    support = (z - model.b) @ atoms.T  # planted coefficients (atoms orthonormal)
    texts = [" ".join(f"planted{i}" for i in (row.abs() > 0.5).nonzero().flatten().tolist()) for row in support]
    ds = datasets.Dataset.from_dict({"embedding": z.tolist(), "id": [f"r{i}" for i in range(n)], "text": texts,
                                     "modality": ["text"] * n})
    return ds, support


def test_top_activating_examples_carry_the_concept(named, tmp_path):
    model, _, planted, atoms = named
    ds, support = planted_dataset(model, atoms)
    cos = atoms @ model.rotation.detach().T
    word = 7
    latent = int(cos[word].abs().argmax())
    top = top_activating(model, ds, latents=[latent], n=5, progress=False)[latent]
    assert len(top) == 5
    for entry in top:  # the rows that carry the named word (positively), whatever the sign of the learned axis
        assert f"planted{word}" in entry["text"].split() and support[entry["row"], word] > 0.5
    other = top_activating(model, ds, latents=[latent], n=5, opposite=True, progress=False)[latent]
    assert all(support[e["row"], word] < -0.5 and e["value"] < 0 for e in other)
    values = [abs(e["value"]) for e in top]
    assert values == sorted(values, reverse=True)
    text = format_top_examples({latent: top}, model)
    assert text.splitlines()[0].startswith("planted7 (latent")
    assert plot_top_examples({latent: top}, ds, tmp_path / "top.png", model).stat().st_size > 2000
    default = top_activating(model, ds, n=3, progress=False)
    assert len(default) == 8 and all(len(v) <= 3 for v in default.values())
    with pytest.raises(ValueError, match="out of range"):
        top_activating(model, ds, latents=[99], progress=False)


def test_top_examples_image_grid(named, tmp_path):
    model, _, _, atoms = named
    ds, _ = planted_dataset(model, atoms, n=40)
    paths = []
    for i in range(len(ds)):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((16, 16, 3), i * 6, dtype=np.uint8)).save(path)
        paths.append(str(path))
    ds = ds.remove_columns("id").add_column("id", paths).remove_columns("text")
    top = top_activating(model, ds, n=4, progress=False)
    out = plot_top_examples(top, ds, tmp_path / "grid.png", model)
    grid = np.asarray(Image.open(out))
    assert grid.shape[0] > 8 * 50  # one row of images per latent (8 latents)


def test_explain_command_top_examples(named, tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    model, _, _, atoms = named
    ds, _ = planted_dataset(model, atoms)
    model.save_pretrained(tmp_path / "dict")
    ds.save_to_disk(str(tmp_path / "emb"))
    cos = atoms @ model.rotation.detach().T
    latent = int(cos[7].abs().argmax())
    name = "planted7"
    result = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "dict"), "--top-examples",
                                      str(tmp_path / "emb"), "--concept", name, "--n", "4", "--output-dir",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"planted7 (latent {latent})" in result.output
    assert result.output.count("planted7") >= 5  # the heading and the four top rows, each containing the word
    assert (tmp_path / "out" / "top_examples.png").exists()
    missing = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "dict")])
    assert missing.exit_code != 0 and "--data DATASET" in missing.output


def test_negative_coefficients_show_the_other_ends_name(named):
    model, backbone, planted, atoms = named
    # an embedding with "less of planted3" and "more of planted5"
    x = backbone.mean + 2.0 * atoms[5] - 2.0 * atoms[3]
    explanation = explain(model, x, k=2)
    cos = atoms @ model.rotation.detach().T
    latent3 = int(cos[3].abs().argmax())
    i = explanation.latents.index(latent3)
    assert explanation.coefficients[i] < 0
    entry = model.concept_names["names"][latent3]
    assert entry["name"] == "planted3"
    assert explanation.names[i] == entry["opposite"]["name"] != "planted3"  # never "planted3" on a red bar
    assert explanation.name_scores[i] == entry["opposite"]["score"]
    j = 1 - i
    assert explanation.names[j] == "planted5" and explanation.coefficients[j] > 0
    assert explanation.name_scores[j] == model.concept_names["names"][explanation.latents[j]]["score"]


def test_weak_names_are_marked_in_table_and_plot(named, tmp_path):
    model, backbone, planted, atoms = named
    saved = model.concept_names
    try:
        name_concepts(model, backbone, [w for w in planted if w != "planted3"])
        explanation = explain(model, "planted3 planted5", backbone=backbone, k=2)
        weak = [name for name, w in zip(explanation.names, explanation.weak) if w]
        assert len(weak) == 1 and weak[0] != "planted5"
        table = explanation.table()
        line = next(line for line in table.splitlines() if f"{weak[0]}?" in line)
        assert "weak" in line and "match" in line
        assert "? weak name" in table
        strong = next(line for line in table.splitlines() if "planted5" in line)
        assert "weak" not in strong
        assert explanation.plot(tmp_path / "weak.png").stat().st_size > 2000
    finally:
        model.concept_names = saved


@pytest.mark.parametrize("bad", ["", "   ", [""], ["a text", " "], [], torch.zeros(0, 32)])
def test_explaining_nothing_is_a_clear_error(named, bad):
    model, backbone, _, _ = named
    with pytest.raises(ValueError, match="nothing to explain"):
        explain(model, bad, backbone=backbone)
