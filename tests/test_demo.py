"""The offline demo, reduced (few glosses, few steps, a small vocabulary): every stage runs and writes its outputs."""

import json
import re

import pytest
from typer.testing import CliRunner

import cedar_hf
from cedar_hf.cli import app
from cedar_hf.interpret import load_demo_texts, load_vocabulary
from cedar_hf.pipelines.demo import demo_texts_dataset, held_out_fvu, run_demo


def test_demo_texts_ship_with_the_package():
    records = load_demo_texts()
    assert len(records) == 5000
    assert len({r["lexname"] for r in records}) == 45 and len({r["id"] for r in records}) == 5000
    assert all(r["gloss"] and r["lemmas"] for r in records)
    ds = demo_texts_dataset(50)
    assert ds.column_names == ["id", "text", "label", "lemmas"] and len(ds) == 50
    license_file = cedar_hf.interpret.resource_path("WORDNET_LICENSE.txt").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in license_file


@pytest.mark.slow
def test_reduced_demo_runs_end_to_end_and_caches(tmp_path, capsys):
    out = tmp_path / "demo"
    kwargs = dict(max_texts=400, steps=60, k=4, batch_size=128, vocabulary_size=800)
    summary = run_demo(out, **kwargs)
    printed = capsys.readouterr().out
    assert "[1/5] embedding" in printed and "[5/5]" in printed
    assert summary["rows"] == 400 and summary["named"] and summary["backbone"] == "sentence-transformers/all-MiniLM-L6-v2"
    model = cedar_hf.CedarModel.from_pretrained(out / "model")
    assert model.config.backbone == "sentence-transformers/all-MiniLM-L6-v2" and model.config.d_in == 384
    vocabulary = set(load_vocabulary(max_size=800))
    assert set(model.concept_labels) <= vocabulary  # every latent named from the vocabulary
    assert len(summary["explanations"]) == 6
    for explanation in summary["explanations"]:
        assert len(explanation["names"]) == 4 and set(explanation["names"]) <= vocabulary
        assert (out / "explanations").joinpath(explanation["png"].split("/")[-1]).stat().st_size > 5000
        assert explanation["source"] in printed
    assert (out / "top_concepts.png").stat().st_size > 2000
    assert len(re.findall(r"\(latent \d+\)", (out / "top_concepts.txt").read_text())) == 8
    assert json.loads((out / "summary.json").read_text())["held_out_fvu"] == summary["held_out_fvu"]
    # training did something: the learned rotation beats the identity at the same k
    embeddings = cedar_hf.load_embeddings(next((out / "cache").glob("embeddings-*")))
    untrained = cedar_hf.CedarModel(model.config)
    untrained.set_mean(model.b)
    assert held_out_fvu(model, embeddings, 4) < held_out_fvu(untrained, embeddings, 4)

    again = run_demo(out, **kwargs)  # second run: embeddings, vocabulary and model from the cache
    printed = capsys.readouterr().out
    assert "embeddings: cached" in printed and "vocabulary embeddings: cached" in printed
    assert "model: reusing" in printed and again["held_out_fvu"] == summary["held_out_fvu"]
    assert [e["names"] for e in again["explanations"]] == [e["names"] for e in summary["explanations"]]
    other = run_demo(out, **{**kwargs, "steps": 30})  # other settings: trained again
    assert "[2/5] training CEDAR" in capsys.readouterr().out and other["steps"] == 30


@pytest.mark.slow
def test_demo_command(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--output-dir", str(tmp_path / "d"), "--max-texts", "300", "--steps",
                                      "20", "--k", "4", "--batch-size", "100", "--vocabulary-size", "300",
                                      "--input", "a cat sleeping on a warm sofa", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "done in" in result.output and "held-out FVU" in result.output
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert [e["source"] for e in summary["explanations"]] == ["a cat sleeping on a warm sofa"]
