"""`scripts/benchmark_topk_ablation.py`: overcomplete's initialisation as its code builds it, the reference run cut to
the variants' epochs, the reproduction check and the report table."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark_topk_ablation as ablation  # noqa: E402

import cedar_hf  # noqa: E402


def _model(d=24, **config):
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES["topk_sae"]
    torch.manual_seed(0)
    return model_class(config_class(d_in=d, expansion_factor=8, k=4, residual_aux_coefficient=0.1, **config))


def test_overcomplete_init_is_linear_default_and_unit_xavier_dictionary():
    model, d = _model(), 24
    tied = torch.allclose(model.W_enc / model.W_enc.norm(dim=-1, keepdim=True), model.W_dec, atol=1e-6)
    assert tied  # MSAE's start: the encoder along the decoder rows
    ablation.overcomplete_init(model, seed=3)
    torch.manual_seed(3)  # what overcomplete's constructor draws, in its order: the encoder first
    encoder = torch.nn.Linear(d, 8 * d)
    dictionary = torch.nn.init.xavier_uniform_(torch.empty(8 * d, d))
    torch.testing.assert_close(model.W_enc.data, encoder.weight.data)
    torch.testing.assert_close(model.b_enc.data, encoder.bias.data)
    torch.testing.assert_close(model.W_dec.data, dictionary / dictionary.norm(dim=-1, keepdim=True))
    assert float(model.W_enc.data.abs().max()) <= 1 / math.sqrt(d) and float(model.b_enc.data.abs().max()) > 0
    cosines = (model.W_enc.data / model.W_enc.data.norm(dim=-1, keepdim=True) * model.W_dec.data).sum(-1)
    assert float(cosines.abs().mean()) < 0.5  # independent of the dictionary, no longer tied


def test_overcomplete_init_leaves_the_global_generator_alone():
    model = _model()
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    ablation.overcomplete_init(model, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


def _row(epochs, per_epoch=48, start=0.5, stopped=True):
    curve = [(per_epoch * (e + 1), start / (e + 1)) for e in range(epochs)]
    return {"steps": per_epoch * epochs, "epochs": epochs, "max_epochs": 270, "train_seconds": 100.0 * epochs,
            "stopped_on_plateau": stopped, "eval_fvu": curve[-1][1], "eval_curve": curve}


def test_reference_cut_to_the_variants_epochs():
    row = ablation.first_epochs(_row(228), epochs=90, n_train=50000, changes="overcomplete")
    assert row["epochs"] == 90 and row["steps"] == 90 * 48 and len(row["eval_curve"]) == 90
    assert row["eval_fvu"] == pytest.approx(0.5 / 90) and not row["stopped_on_plateau"]
    assert row["train_seconds"] == pytest.approx(9000.0)
    assert row["full_run"] == {"epochs": 228, "eval_fvu": 0.5 / 228, "stopped_on_plateau": True, "max_epochs": 270}


def test_reproduction_check_measures_the_largest_difference_over_common_epochs():
    ours, stored = _row(5), _row(143)
    ours["eval_curve"][2] = (ours["eval_curve"][2][0], ours["eval_curve"][2][1] + 0.003)
    check = ablation.reproduction_check(ours, stored)
    assert check["epochs"] == 5 and check["max_abs_fvu_difference"] == pytest.approx(0.003)
    assert ablation.reproduction_check(None, stored) is None and ablation.reproduction_check(ours, {}) is None


def test_markdown_lists_every_run_with_its_fvu_at_each_mark():
    runs = {"ours": {"0": {**_row(90), "changes": "nothing", "dead_share": 0.125, "rare_share": 0.25}},
            "overcomplete TopK": {"0": ablation.first_epochs(_row(228), 90, 50000, "itself")}}
    text = ablation.markdown({"seed": 0, "protocol": "P", "runs": runs, "reference": "quality_topk-270ep.json",
                              "reproduction_check": {"against": "x", "epochs": 90, "max_abs_fvu_difference": 1e-4}},
                             [1, 30, 90])
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert f"{0.5 / 30:.4f}" in lines["| ours"] and "12.5 %" in lines["| ours"] and "25.0 %" in lines["| ours"]
    assert f"{0.5 / 90:.4f}" in lines["| overcomplete TopK"] and "| — | — |" in lines["| overcomplete TopK"]
    assert "1.00e-04" in text and "Protocol: P" in text
