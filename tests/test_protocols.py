"""Evaluation protocols: every metric by hand under `cedar-hf` and `msae`, the CEDAR identity CS = √(1 − FVU), and
the protocol recorded in every file `cedar-hf evaluate` writes."""

import json
import math
import re

import datasets
import pytest
import torch
from builders import build_model, planted_sparse
from PIL import Image
from typer.testing import CliRunner

from cedar_hf.cli import app
from cedar_hf.evaluation import (
    FVU_VARIANTS,
    LinearProbe,
    cknna,
    cknna_batched,
    compare_models,
    compare_protocols,
    evaluate_reconstruction,
    fvu_variant,
    get_protocol,
    macro_f1,
    per_sample_cosine,
    score_reconstruction,
    train_linear_probe_msae,
)
from cedar_hf.evaluation.cknna import batch_rows

# Two samples, d = 3, training mean μ. Per sample:
#   x₁ − x̂₁ = [0, 0, 2]: var_d = ((−2/3)² + (−2/3)² + (4/3)²)/2 = 4/3;  var_d(x₁) = (4 + 0 + 4)/2 = 4
#   x₂ − x̂₂ = [0, 0, 6]: var_d = 12;                                     var_d(x₂) = (4 + 4 + 16)/2 = 12
#   ‖x₁ − x̂₁‖² = 4, ‖x₂ − x̂₂‖² = 36;  ‖x₁ − μ‖² = 0 + 1 + 9 = 10, ‖x₂ − μ‖² = 1 + 0 + 36 = 37;  ‖x₁‖² = 35, ‖x₂‖² = 72
X = torch.tensor([[1.0, 3.0, 5.0], [2.0, 2.0, 8.0]], dtype=torch.float64)
X_HAT = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=torch.float64)
MU = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)

FVU_BY_HAND = {
    "dataset": (4 + 36) / (10 + 37),
    "msae-score": ((4 / 3) / 4 + 12 / 12) / 2,
    "msae-loss": (4 / 10 + 36 / 37) / 2,
    "nmse-raw": (4 / 35 + 36 / 72) / 2,
}
# raw: cos(x₁, x̂₁) = (1 + 9 + 15)/(√35 √19); cos(x₂, x̂₂) = (4 + 4 + 16)/(√72 √12)
CS_RAW = (25 / math.sqrt(35 * 19) + 24 / math.sqrt(72 * 12)) / 2
# centred: x₁ − μ = [0, 1, 3], x̂₁ − μ = [0, 1, 1] → 4/(√10 √2); x₂ − μ = [1, 0, 6], x̂₂ − μ = [1, 0, 0] → 1/√37
CS_CENTRED = (4 / math.sqrt(20) + 1 / math.sqrt(37)) / 2

# CKNNA, k = 2, on five 2-D points (kernels are integer matrices; computed with exact fractions):
#   K = XXᵀ = [[9,6,0,3,-6],[6,5,2,-1,-5],[0,2,4,-6,-2],[3,-1,-6,10,1],[-6,-5,-2,1,5]]
#   L = YYᵀ = [[13,9,3,-3,4],[9,10,8,6,-1],[3,8,10,12,-5],[-3,6,12,18,-9],[4,-1,-5,-9,5]]
#   top-2 masks (diagonal excluded): M_K rows {1,3},{0,2},{0,1},{0,4},{2,3}; M_L rows {1,4},{0,2},{1,3},{1,2},{0,1}
#   HSIC_u(M∘K, M∘L) = 24/5, HSIC_u(M_K∘K, M_K∘K) = 101/30, HSIC_u(M_L∘L, M_L∘L) = 2993/120
CK_X = torch.tensor([[3.0, 0.0], [2.0, 1.0], [0.0, 2.0], [1.0, -3.0], [-2.0, -1.0]], dtype=torch.float64)
CK_Y = torch.tensor([[3.0, -2.0], [1.0, -3.0], [-1.0, -3.0], [-3.0, -3.0], [2.0, 1.0]], dtype=torch.float64)
CK_DENOMINATOR = math.sqrt(101 / 30 * 2993 / 120)
CKNNA_BY_HAND = (24 / 5) / CK_DENOMINATOR  # 0.52381561717…


@pytest.mark.parametrize("name", sorted(FVU_BY_HAND))
def test_every_fvu_variant_by_hand(name):
    assert fvu_variant(name)(X, X_HAT, MU) == pytest.approx(FVU_BY_HAND[name], rel=1e-12)


def test_variants_are_all_named_and_unknown_names_raise():
    assert set(FVU_VARIANTS) == set(FVU_BY_HAND)
    with pytest.raises(ValueError, match="unknown FVU variant 'bogus'"):
        fvu_variant("bogus")


def test_cknna_by_hand_with_and_without_the_reference_epsilon():
    assert cknna(CK_X, CK_Y, k=2) == pytest.approx(CKNNA_BY_HAND, rel=1e-12)
    # the reference code (platonic-rep, MSAE) divides by √(…) + 1e-6
    assert cknna(CK_X, CK_Y, k=2, epsilon=1e-6) == pytest.approx((24 / 5) / (CK_DENOMINATOR + 1e-6), rel=1e-12)


@pytest.mark.parametrize("protocol, fvu, cs", [("cedar-hf", "dataset", CS_CENTRED), ("msae", "msae-score", CS_RAW)])
def test_score_reconstruction_by_hand(protocol, fvu, cs):
    # 5 samples so CKNNA is defined: the two hand-computed pairs plus three exact reconstructions. The exact rows
    # add 0 error; for the variants below that is still a hand sum.
    x = torch.cat([X, torch.tensor([[0.0, 1.0, 4.0], [3.0, 1.0, 1.0], [5.0, 2.0, 0.0]], dtype=torch.float64)])
    x_hat = torch.cat([X_HAT, x[2:]])
    row = score_reconstruction(get_protocol(protocol), x, x_hat, MU, codes_of_rows=lambda rows: x_hat[rows], cknna_k=2)
    # extra rows: ‖x − μ‖² = 1 + 1 + 4 = 6, 4 + 1 + 1 = 6, 16 + 0 + 4 = 20 → dataset FVU = 40 / (47 + 32)
    expected_fvu = {"dataset": 40 / 79, "msae-score": FVU_BY_HAND["msae-score"] * 2 / 5}[fvu]
    assert row["fvu"] == pytest.approx(expected_fvu, rel=1e-12)
    assert row["fvu_variants"][fvu] == row["fvu"] and set(row["fvu_variants"]) == set(FVU_VARIANTS)
    assert row["CS"] == pytest.approx((2 * cs + 3) / 5, rel=1e-12)  # exact rows have cosine 1


def test_msae_cknna_is_against_the_codes_and_cedar_hf_against_centred_reconstructions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64) + 3.0
    codes = torch.relu(torch.randn(40, 12, generator=g, dtype=torch.float64))
    msae = score_reconstruction(get_protocol("msae"), x, x.clone(), x.mean(0), lambda rows: codes[rows], cknna_k=5)
    # fewer rows than MSAE's 10000: one batch of all rows; reconstruction exact but codes unrelated
    assert msae["CKNNA_batches"] == 1 and msae["CKNNA_batch_size"] == 40
    assert msae["CKNNA"] == pytest.approx(cknna(x, codes, k=5, epsilon=1e-6), rel=1e-12)
    ours = score_reconstruction(get_protocol("cedar-hf"), x, x.clone(), x.mean(0), lambda rows: codes[rows], cknna_k=5)
    assert ours["CKNNA"] == pytest.approx(1.0, abs=1e-12)
    assert "CKNNA_batches" not in ours


def test_cknna_batched_is_the_mean_over_seeded_full_batches():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(23, 4, generator=g, dtype=torch.float64), torch.randn(23, 5, generator=g, dtype=torch.float64)
    batches = batch_rows(23, 7, seed=42)
    assert [b.numel() for b in batches] == [7, 7, 7]  # the incomplete last batch (2 rows) is dropped, as MSAE
    assert len(torch.cat(batches).unique()) == 21
    result = cknna_batched(x, y.__getitem__, batch_size=7, k=3, seed=42, epsilon=1e-6)
    by_batch = [cknna(x[b], y[b], k=3, epsilon=1e-6) for b in batches]
    assert result["mean"] == pytest.approx(sum(by_batch) / 3, rel=1e-12) and result["n_batches"] == 3
    assert result["std"] == pytest.approx(float(torch.tensor(by_batch, dtype=torch.float64).std(unbiased=False)), rel=1e-9)


def _probe(normalize: bool) -> LinearProbe:
    linear = torch.nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(2))
        linear.bias.zero_()
    return LinearProbe(linear, ["a", "b"], torch.tensor([1.0, 1.0]), torch.tensor(2.0), normalize=normalize)


def test_lp_by_hand_under_both_recipes():
    x_hat = torch.tensor([[4.0, 5.0]])  # x̂ − μ = [3, 4]
    # msae: L2-normalised → logits [0.6, 0.8]; label "a": CE = log(1 + e^{0.2})
    assert _probe(True).evaluate(x_hat, ["a"])["cross_entropy"] == pytest.approx(math.log1p(math.exp(0.2)), rel=1e-6)
    # cedar-hf: divided by the global RMS r = 2 → logits [1.5, 2]: CE = log(1 + e^{0.5})
    assert _probe(False).evaluate(x_hat, ["a"])["cross_entropy"] == pytest.approx(math.log1p(math.exp(0.5)), rel=1e-6)


def test_probe_agreement_kl_by_hand():
    x, x_hat = torch.tensor([[3.0, 1.0]]), torch.tensor([[4.0, 5.0]])  # normalised logits [1, 0] and [0.6, 0.8]
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    p, q = [sig(1), sig(-1)], [sig(-0.2), sig(0.2)]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    scores = _probe(True).agreement(x, x_hat)
    assert scores["kl"] == pytest.approx(kl, rel=1e-6)
    assert scores["argmax_agreement"] == 0.0  # class a for x, class b for x̂


def test_macro_f1_by_hand():
    # class 0: TP 1, FN 1 → 2/3; class 1: TP 1, FP 2 → 1/2; class 2: FN 1 → 0; mean 7/18 (= sklearn's macro F1)
    assert macro_f1(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1])) == pytest.approx(7 / 18)


def test_msae_probe_learns_and_keeps_the_last_epoch():
    g = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(3, 6, generator=g)
    labels = torch.randint(0, 3, (600,), generator=g)
    x = centers[labels] + 0.5 * torch.randn(600, 6, generator=g) + 10.0  # a large offset: the centring matters
    names = [f"c{int(v)}" for v in labels]
    # MSAE's batch of 512 over ImageNet is ~2500 steps an epoch; 400 rows need small batches to take any steps
    probe = train_linear_probe_msae(x[:400], names[:400], x[400:], names[400:], center=x[:400].mean(0),
                                    batch_size=8, progress=False)
    assert probe.normalize and len(probe.history) <= 100
    assert probe.evaluate(x[400:], names[400:])["accuracy"] > 0.95
    last_f1 = macro_f1(torch.tensor([int(n[1]) for n in names[400:]]), probe.logits(x[400:]).argmax(-1))
    assert last_f1 == pytest.approx(probe.history[-1]["eval_macro_f1"])  # MSAE's by-reference "best" = last
    assert probe.history[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("tau", [0.0, 0.3, 0.8])
def test_cedar_cs_is_sqrt_one_minus_fvu_per_sample_in_the_centred_space(tau):
    """Top-k (or any τ) of an orthogonal map is an orthogonal projection: x̂ − μ = Uᵀ Π U (x − μ), so
    ⟨x − μ, x̂ − μ⟩ = ‖x̂ − μ‖² and cos² = 1 − ‖x − x̂‖²/‖x − μ‖² exactly. float64 throughout: the only error is
    rounding (~1e-15 relative), so 1e-10 is a generous bound."""
    x, _, _ = planted_sparse(300, 12, 3, seed=4)
    x = x.double()
    model = build_model("cedar", 12, init_std=0.3).double().eval()
    model.set_mean(x.mean(0))
    mu = model.b.detach()
    with torch.no_grad():
        codes = model.dense_codes(x)
        x_hat = model.decode(codes * (codes.abs() >= tau))
    fvu_i = (x - x_hat).pow(2).sum(-1) / (x - mu).pow(2).sum(-1)
    kept = fvu_i < 1 - 1e-9  # rows with every code zeroed have x̂ = μ: cosine undefined (counted 0)
    assert kept.sum() > 250
    cs_i = per_sample_cosine(x, x_hat, mu)
    assert torch.allclose(cs_i[kept], (1 - fvu_i[kept]).sqrt(), atol=1e-10, rtol=0)


def _pair(x_train):
    cedar = build_model("cedar", x_train.shape[1], init_std=0.2)
    cedar.set_mean(x_train.mean(0))
    topk = build_model("topk_sae", x_train.shape[1], k=2)
    topk.set_normalization(*topk.compute_normalization(x_train))
    return {"cedar": cedar.eval(), "topk": topk.eval()}


def test_compare_models_records_the_protocol_and_the_two_differ():
    x, _, _ = planted_sparse(700, 16, 3, seed=5)
    x = x + 4.0  # a shared offset (CLIP-like cone): raw and centred metrics part ways
    models = _pair(x[:500])
    reports = {p: compare_models(models, x[500:], (0.3,), train_data=x[:500], progress=False, protocol=p,
                                 cknna_batch_size=64 if p == "msae" else None) for p in ("cedar-hf", "msae")}
    assert reports["cedar-hf"]["protocol"]["name"] == "cedar-hf"
    assert reports["msae"]["protocol"]["name"] == "msae+cknna_batch_size=64"
    assert reports["msae"]["protocol"]["fvu_variant"] == "msae-score"
    assert set(reports["msae"]["protocol"]) == {"name", "summary", "space", "fvu_variant", "definitions", "parameters"}
    ours, theirs = (reports[p]["models"]["cedar"]["matched"][0] for p in ("cedar-hf", "msae"))
    assert ours["reached"] and theirs["reached"]
    assert abs(ours["fvu_variants"]["dataset"] - 0.3) <= 0.005 and abs(theirs["fvu_variants"]["msae-score"] - 0.3) <= 0.005
    assert theirs["CKNNA_batches"] == 3 and theirs["CKNNA_batch_size"] == 64  # 200 rows: 3 full batches of 64
    assert theirs["CS"] > ours["CS"] + 0.05  # raw cosine is inflated by the offset
    assert ours["tau"] != theirs["tau"]


def _write_data(tmp_path, x, labels):
    for name, rows in (("train", slice(0, 500)), ("val", slice(500, 700))):
        datasets.Dataset.from_dict({"embedding": x[rows].tolist(), "label": labels[rows]}).save_to_disk(
            str(tmp_path / name))


def test_cli_both_protocols_give_different_tables_and_record_the_protocol(tmp_path):
    x, _, _ = planted_sparse(700, 16, 3, seed=6)
    x = x + 3.0
    labels = ["pos" if v > 0 else "neg" for v in (x[:, 1] - x[:, 1].median()).tolist()]
    _write_data(tmp_path, x, labels)
    paths = []
    for name, model in _pair(x[:500]).items():
        model.save_pretrained(tmp_path / name)
        paths.append(str(tmp_path / name))
    tables = {}
    for protocol in ("cedar-hf", "msae"):
        out = tmp_path / protocol
        result = CliRunner().invoke(app, ["evaluate", "--models", *paths, "--data", str(tmp_path / "val"),
                                          "--train-data", str(tmp_path / "train"), "--targets", "0.3",
                                          "--curve", "", "--protocol", protocol, "--cknna-batch-size", "100",
                                          "--output", str(out)])
        assert result.exit_code == 0, result.output
        tables[protocol] = (out / "table.md").read_text()
        assert f"Protocol `{protocol}" in tables[protocol] and f"Protocol `{protocol}" in result.output
        report = json.loads((out / "evaluation.json").read_text())
        assert report["protocol"]["name"].startswith(protocol)
        for png in ("pareto_k_ic.png", "semantic_vs_fvu.png"):
            assert f"protocol {report['protocol']['name']}" in Image.open(out / png).info["Description"]
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave no temporary files
    body = {p: [line for line in t.splitlines() if line.startswith("| 0.30 | cedar |")] for p, t in tables.items()}
    assert body["cedar-hf"] and body["msae"] and body["cedar-hf"] != body["msae"]
    bad = CliRunner().invoke(app, ["evaluate", "--models", paths[0], "--data", str(tmp_path / "val"),
                                   "--protocol", "paper"])
    assert bad.exit_code != 0 and "unknown protocol 'paper'" in re.sub(r"[\s│]+", " ", bad.output)


def test_compare_protocols_keys_by_protocol_name():
    x, _, _ = planted_sparse(300, 8, 2, seed=7)
    cedar = build_model("cedar", 8, init_std=0.2)
    cedar.set_mean(x[:200].mean(0))
    reports = compare_protocols({"cedar": cedar.eval()}, x[200:], ("cedar-hf", get_protocol("msae", cknna_batch_size=50)),
                                targets=(0.4,), train_data=x[:200], progress=False)
    assert list(reports) == ["cedar-hf", "msae+cknna_batch_size=50"]
    assert reports["msae+cknna_batch_size=50"]["models"]["cedar"]["matched"][0]["CKNNA_batches"] == 2


@pytest.mark.parametrize("protocol", ["cedar-hf", "msae"])
def test_cknna_neighbour_cache_gives_the_same_values(protocol):
    g = torch.Generator().manual_seed(8)
    x = torch.randn(60, 6, generator=g, dtype=torch.float64)
    chosen = get_protocol(protocol, cknna_batch_size=20 if protocol == "msae" else None)
    cache = {}
    for noise in (0.1, 0.5, 1.0):
        x_hat = x + noise * torch.randn(60, 6, generator=g, dtype=torch.float64)
        codes = torch.relu(x_hat @ torch.randn(6, 12, generator=g, dtype=torch.float64))
        cached = score_reconstruction(chosen, x, x_hat, x.mean(0), codes.__getitem__, cknna_k=4, cache=cache)
        fresh = score_reconstruction(chosen, x, x_hat, x.mean(0), codes.__getitem__, cknna_k=4)
        assert cached["CKNNA"] == fresh["CKNNA"]
    assert len(cache) == (1 if protocol == "cedar-hf" else 3)  # one table of x (per batch), computed once


def test_msae_probe_selects_on_known_labels_only():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(120, 4, generator=g) + torch.tensor([4.0, 0, 0, 0]) * (torch.arange(120) % 2).unsqueeze(1)
    names = ["even" if i % 2 == 0 else "odd" for i in range(120)]
    eval_names = names[80:-4] + ["unseen"] * 4
    probe = train_linear_probe_msae(x[:80], names[:80], x[80:], eval_names, center=x[:80].mean(0), batch_size=8,
                                    progress=False)
    assert probe.evaluate(x[80:], eval_names)["n_unknown_labels"] == 4
    with pytest.raises(ValueError, match="none of the 4 evaluation labels"):
        train_linear_probe_msae(x[:80], names[:80], x[80:84], ["unseen"] * 4, center=x[:80].mean(0))
