"""The paper's metrics against hand-computed cases, the linear probe, the comparison report and the CLI."""

import json
import math

import datasets
import pytest
import torch
from builders import build_model, planted_sparse
from scipy.special import gammaln
from typer.testing import CliRunner

from cedar_hf.cli import app
from cedar_hf.evaluation import (
    LinearProbe,
    compare_models,
    cosine_similarity,
    dead_latents,
    fvu,
    fvu_per_sample,
    information_capacity,
    markdown_table,
    mean_active,
    summarize_reconstruction,
    train_linear_probe,
    write_report,
)
from cedar_hf.evaluation.report import _split_at_best_fvu

X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
X_HAT = torch.tensor([[1.0, 1.0], [3.0, 5.0]])
CODES = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, -1.0, 0.0]])


def test_fvu_dataset_level_by_hand():
    # mean μ = 0: errors 1 and 1, totals 5 and 25 -> 2 / 30
    assert fvu(X, X_HAT, torch.zeros(2)) == pytest.approx(2 / 30)
    # with the data's own mean (2, 3): totals 2 and 2 -> 2 / 4
    assert fvu(X, X_HAT) == pytest.approx(0.5)


def test_fvu_per_sample_msae_differs_from_dataset_level():
    # per sample: (1/5 + 1/25) / 2 = 0.12, not 2/30
    assert fvu_per_sample(X, X_HAT, torch.zeros(2)) == pytest.approx(0.12)
    assert fvu_per_sample(X, X_HAT, torch.zeros(2)) != pytest.approx(fvu(X, X_HAT, torch.zeros(2)))


def test_k_ic_and_dead_by_hand():
    assert mean_active(CODES) == pytest.approx(4 / 3)  # non-zeros 2, 0, 2
    assert information_capacity(CODES) == pytest.approx(2 * math.log(6) / 3)  # ln C(4,2) = ln 6; ln C(4,0) = 0
    dead = dead_latents(torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, -1.0]]))
    assert dead == {"count": 1, "fraction": pytest.approx(1 / 3), "indices": [0]}


def test_ic_matches_scipy_gammaln():
    g = torch.Generator().manual_seed(0)
    n = 6144
    codes = torch.zeros(50, n)
    ks = torch.randint(0, 200, (50,), generator=g)
    for row, k in enumerate(ks.tolist()):
        codes[row, torch.randperm(n, generator=g)[:k]] = torch.rand(k, generator=g) + 0.1
    k = ks.double().numpy()
    expected = float((gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)).mean())
    assert information_capacity(codes) == pytest.approx(expected, rel=1e-12)
    assert information_capacity(codes[:, :300], n_latents=n) == pytest.approx(
        float((gammaln(n + 1) - gammaln((codes[:, :300] != 0).sum(-1).double().numpy() + 1)
               - gammaln(n - (codes[:, :300] != 0).sum(-1).double().numpy() + 1)).mean()), rel=1e-12)


def test_cosine_similarity_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    x_hat = torch.tensor([[1.0, 1.0], [0.0, -1.0], [0.0, 0.0]])  # cos 1/√2, −1, zero vector -> 0
    assert cosine_similarity(x, x_hat) == pytest.approx((1 / math.sqrt(2) - 1 + 0) / 3)


def test_summary_and_shape_errors():
    summary = summarize_reconstruction(X, X_HAT, CODES[:2], torch.zeros(2))
    assert summary["fvu"] == pytest.approx(2 / 30) and summary["K"] == pytest.approx(1.0)
    assert summary["dead_latents"] == 2  # latents 0 and 2 never fire in the first two rows
    with pytest.raises(ValueError, match="must match"):
        fvu(X, X_HAT[:1])
    with pytest.raises(ValueError, match="mean has 3 entries"):
        fvu(X, X_HAT, torch.zeros(3))


def test_probe_cross_entropy_by_hand():
    linear = torch.nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(2))
        linear.bias.zero_()
    probe = LinearProbe(linear, ["a", "b"], torch.zeros(2), torch.ones(2))
    scores = probe.evaluate(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), ["a", "a"])
    # logits (2, 0) for "a": log(1 + e^-2); logits (0, 1) for "a": log(1 + e^1)
    assert scores["cross_entropy"] == pytest.approx((math.log1p(math.exp(-2)) + math.log1p(math.e)) / 2)
    assert scores["accuracy"] == 0.5
    with pytest.raises(ValueError, match="none of the evaluation labels"):
        probe.evaluate(torch.zeros(1, 2), ["zzz"])


def test_probe_learns_planted_classes_and_noise_hurts():
    g = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(4, 8, generator=g)
    labels = torch.randint(0, 4, (1200,), generator=g)
    x = centers[labels] + torch.randn(1200, 8, generator=g)
    names = [f"class{int(v)}" for v in labels]
    probe = train_linear_probe(x[:800], names[:800], epochs=40, progress=False)
    clean = probe.evaluate(x[800:], names[800:])
    noisy = probe.evaluate(x[800:] + 3 * torch.randn(400, 8, generator=g), names[800:])
    assert clean["accuracy"] > 0.95
    assert noisy["cross_entropy"] > clean["cross_entropy"] + 0.2
    assert probe.history and all("lr" in h for h in probe.history)


def _trained_pair(x_train):
    cedar = build_model("cedar", x_train.shape[1], init_std=0.2)
    cedar.set_mean(x_train.mean(0))
    topk = build_model("topk_sae", x_train.shape[1], k=1)  # untrained k=1: cannot reach low FVUs
    topk.set_normalization(*topk.compute_normalization(x_train))
    return {"cedar": cedar.eval(), "topk": topk.eval()}


def test_compare_models_report_and_plots(tmp_path):
    x, _, _ = planted_sparse(900, 16, 3, seed=2)
    labels = [int(v > 0) for v in x[:, 0] - x[:, 0].median()]
    report = compare_models(_trained_pair(x[:600]), x[600:], (0.25, 0.35), train_data=x[:600],
                            eval_labels=labels[600:], train_labels=labels[:600], curve_targets=(0.5,),
                            progress=False)
    assert report["protocol"]["name"] == "cedar-hf" and report["protocol"]["fvu_variant"] == "dataset"
    cedar = report["models"]["cedar"]
    assert [row["target"] for row in cedar["matched"]] == [0.25, 0.35]
    for row in cedar["matched"]:
        assert row["reached"] and abs(row["fvu"] - row["target"]) <= 0.005
        assert {"K", "IC", "CS", "LP", "LP_accuracy", "CKNNA", "dead_latents"} <= set(row)
    assert cedar["matched"][0]["K"] > cedar["matched"][1]["K"]  # lower FVU needs more codes
    assert not report["models"]["topk"]["matched"][0]["reached"]
    table = markdown_table(report)
    assert "cannot reach FVU 0.25" in table and "| 0.35 | cedar |" in table
    paths = write_report(report, tmp_path)
    assert json.loads(paths["json"].read_text())["targets"] == [0.25, 0.35]
    for png in paths["plots"]:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_ic_sweep_is_cut_where_lowering_the_threshold_stops_helping():
    """A TopK SAE's sweep: below some threshold more codes reconstruct worse (FVU 0.17 → 0.23 → 0.29 at K 100 →
    200 → 400). Sorted by FVU those points sat between the K ≈ 30–40 ones and the IC line spiked; the line now
    follows the threshold down to the lowest FVU and the rest are separate markers."""
    # (tau, fvu, IC) as in the quality benchmark's TopK sweep (seed 0)
    points = [(1.05, 0.302, 152.1), (0.92, 0.250, 196.1), (0.80, 0.209, 251.5), (0.54, 0.175, 435.8),
              (0.28, 0.230, 734.5), (0.0, 0.285, 1183.0), (1.17, 0.355, 121.0)]
    sweep = sorted(({"tau": t, "fvu": f, "IC": ic} for t, f, ic in points), key=lambda p: p["fvu"])
    line, past = _split_at_best_fvu(sweep)
    assert [p["tau"] for p in line] == [1.17, 1.05, 0.92, 0.80, 0.54]
    assert [p["tau"] for p in past] == [0.28, 0.0]
    assert all(a["fvu"] > b["fvu"] and a["IC"] < b["IC"] for a, b in zip(line, line[1:]))  # no spike left
    # a model whose sweep never turns back: one line, no markers (a higher threshold keeps fewer codes)
    monotone = [{"tau": t, "fvu": 0.2 + t / 2, "IC": 10 * (2 - t)} for t in (0.0, 0.5, 1.0, 1.5)]
    assert _split_at_best_fvu(monotone) == (sorted(monotone, key=lambda p: -p["tau"]), [])
    assert _split_at_best_fvu([]) == ([], [])


def test_cli_evaluate(tmp_path):
    x, _, _ = planted_sparse(700, 16, 3, seed=3)
    labels = ["pos" if v > 0 else "neg" for v in (x[:, 1] - x[:, 1].median()).tolist()]
    for name, rows in (("train", slice(0, 500)), ("val", slice(500, 700))):
        datasets.Dataset.from_dict({"embedding": x[rows].tolist(), "label": labels[rows]}).save_to_disk(
            str(tmp_path / name))
    paths = []
    for name, model in _trained_pair(x[:500]).items():
        model.save_pretrained(tmp_path / name)
        paths.append(str(tmp_path / name))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", "--models", *paths, "--data", str(tmp_path / "val"),
                                      "--train-data", str(tmp_path / "train"), "--targets", "0.3", "0.4",
                                      "--curve", "", "--output", str(out), "--save-in-models"])
    assert result.exit_code == 0, result.output
    assert "| 0.30 | cedar |" in result.output and "| 0.40 | topk | cannot reach" in result.output
    report = json.loads((out / "evaluation.json").read_text())
    assert report["targets"] == [0.3, 0.4] and report["mean_source"] == "training data"
    assert (out / "pareto_k_ic.png").exists() and (out / "semantic_vs_fvu.png").exists()
    own = json.loads((tmp_path / "cedar" / "evaluation.json").read_text())
    assert own["name"] == "cedar" and own["matched"][0]["reached"] and own["targets"] == [0.3, 0.4]
