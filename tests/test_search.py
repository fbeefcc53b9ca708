"""Concept search over an embedding dataset's codes, by concept names or by an example."""

import builtins
import re

import pytest
import torch

from cedar_hf.interpret import ConceptIndex, name_concepts

from interpret_helpers import planted_cedar
from test_explain import planted_dataset


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    model, backbone, vocabulary, planted, atoms = planted_cedar(d=32, k=3)
    name_concepts(model, backbone, vocabulary)
    ds, support = planted_dataset(model, atoms, n=3000)
    return model, backbone, ds, support


def test_search_by_concept_names(world):
    model, _, ds, support = world
    index = ConceptIndex(model, ds, k=3, progress=False)
    assert len(index) == 3000
    results = index.search(concepts=["planted4"], n=10)
    assert len(results) == 10
    assert all(support[r["row"], 4] > 0.5 for r in results)  # the planted word is there, on the named end
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    has_both = {i for i in range(len(ds)) if support[i, 4] > 0.5 and support[i, 9] > 0.5}
    assert len(has_both) >= 2
    both = index.search(concepts=["planted4", "planted9"], n=len(has_both) + 3)
    assert {r["row"] for r in both[: len(has_both)]} == has_both  # rows with both concepts come first
    assert [r["matches"] for r in both] == [2] * len(has_both) + [1] * 3
    with pytest.raises(ValueError, match="no latent is named"):
        index.search(concepts=["zebra"])
    with pytest.raises(ValueError, match="exactly one"):
        index.search()


def test_search_by_the_opposite_end_name(world):
    model, _, ds, support = world
    entry = model.concept_names["names"][0]
    word = int(entry["name"].removeprefix("planted"))
    index = ConceptIndex(model, ds, k=3, progress=False)
    results = index.search(concepts=[entry["opposite"]["name"]], n=5)
    assert len(results) == 5 and all(support[r["row"], word] < -0.5 for r in results)  # the other end of the axis


def test_search_by_example_finds_the_row_itself(world):
    model, backbone, ds, support = world
    x = torch.tensor(ds[17]["embedding"])
    for space in ("codes", "reconstruction"):
        index = ConceptIndex(model, ds, k=3, space=space, progress=False)
        results = index.search(example=x, n=3)
        assert results[0]["row"] == 17 and results[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert results[0]["id"] == "r17"
    hits = ConceptIndex(model, ds, k=3, progress=False).search(example="planted6", backbone=backbone, n=5)
    assert len(hits) == 5 and all(support[h["row"], 6] > 0.5 for h in hits)  # a text query through the backbone


def test_reconstruction_space_without_faiss_gives_the_same_answer(world, monkeypatch):
    model, _, ds, _ = world
    x = torch.tensor(ds[3]["embedding"])
    with_faiss = ConceptIndex(model, ds, k=3, space="reconstruction", progress=False)
    assert with_faiss._dense[0] == "faiss"
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    without = ConceptIndex(model, ds, k=3, space="reconstruction", progress=False)
    assert without._dense[0] == "numpy"
    a, b = with_faiss.search(example=x, n=5), without.search(example=x, n=5)
    assert [r["row"] for r in a] == [r["row"] for r in b]
    assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-5)


def test_search_command(world, tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    model, _, ds, support = world
    model.save_pretrained(tmp_path / "dict")
    ds.select(range(500)).save_to_disk(str(tmp_path / "emb"))
    result = CliRunner().invoke(app, ["search", "--model", str(tmp_path / "dict"), "--data", str(tmp_path / "emb"),
                                      "--concept", "planted2", "--n", "4"])
    assert result.exit_code == 0, result.output
    lines = re.findall(r"\b\d+\.\s+[+-]\d+\.\d+\s+(.*)", result.output)
    assert len(lines) == 4 and all("planted2" in line.split() for line in lines)
    both = CliRunner().invoke(app, ["search", "--model", str(tmp_path / "dict"), "--data", str(tmp_path / "emb")])
    assert both.exit_code != 0 and "--concept" in both.output
