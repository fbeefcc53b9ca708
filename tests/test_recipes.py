"""SAE losses and defaults as their references define them, and the named training recipes (issue 14).

References: MSAE (github.com/WolodjaZ/MSAE: `loss.py`, `config.py`, `train.py`, `sae.py`), EleutherAI sparsify
(`sparsify/sparse_coder.py`: aux-k), the JumpReLU paper (ε relative to unit-scale inputs).
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import datasets
import pytest
import torch
import typer

import cedar_hf
from builders import ARCHITECTURES, build_model
from cedar_hf.cli import app
from cedar_hf.commands.train import split_options
from cedar_hf.configuration_sae import matryoshka_levels
from cedar_hf.training import EmbeddingStream, TrainingArgs, evaluate_stream, train
from cedar_hf.training.recipes import (PlateauStopper, build_optimizer, recipe_learning_rate, resolve_recipe,
                                      select_recipe)

SAES = ("relu_sae", "topk_sae", "batchtopk_sae", "jumprelu_sae", "matryoshka_sae")


def _sae(model_type: str, **config):
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    return model_class(config_class(**config))


# ---- losses --------------------------------------------------------------------------------------------------------
def test_relu_loss_is_msae_normalised_mse_plus_normalised_l1():
    torch.manual_seed(0)
    model = build_model("relu_sae", 16, l1_coefficient=0.01).double().train()
    x = torch.randn(64, 16, dtype=torch.float64) + 0.5
    model.set_normalization(x.mean(0), 1.7)
    out = model(x)
    x_c = model.standardize(x)
    z = torch.relu(model.pre_activation(x_c))
    x_hat_c = z @ model.W_dec + model.b_dec
    nmse = ((x_c - x_hat_c).pow(2).sum(-1) / x_c.pow(2).sum(-1)).mean()
    l1 = (z.sum(-1) / x_c.norm(dim=-1)).mean()
    torch.testing.assert_close(out.reconstruction_loss, nmse)
    torch.testing.assert_close(out.auxiliary_loss, 0.01 * l1)


@pytest.mark.parametrize("model_type", ["relu_sae", "topk_sae", "matryoshka_sae"])
def test_sae_losses_are_scale_free(model_type):
    """Both terms are ratios (MSAE): scaling the standardised inputs by c changes neither (zero biases, so the
    ReLU encoder is positively homogeneous and the codes scale by c too). The old ReLU loss (plain MSE +
    λ Σ z_i‖W_dec,i‖) grew like c² and c."""
    torch.manual_seed(1)
    model = build_model(model_type, 12).double().train()
    x = torch.randn(48, 12, dtype=torch.float64)
    losses = []
    for scale in (1.0, 28.0):
        model.set_normalization(torch.zeros(12, dtype=torch.float64), scale)
        out = model(x)
        losses.append((float(out.reconstruction_loss.detach()), float(out.auxiliary_loss.detach())))
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)  # float64: only rounding differs


def test_aux_k_is_off_by_default_and_follows_sparsify_when_on():
    for model_type in ("topk_sae", "batchtopk_sae", "matryoshka_sae"):
        config = cedar_hf.DICTIONARY_CLASSES[model_type][0](d_in=64)
        assert config.aux_k_coefficient == 0.0 and config.aux_k == 32 and config.dead_tokens_threshold == 10_000_000
    torch.manual_seed(2)
    model = build_model("topk_sae", 16, k=2, aux_k=8, aux_k_coefficient=0.5, dead_tokens_threshold=1).double().train()
    x = torch.randn(32, 16, dtype=torch.float64)
    assert float(model(x).auxiliary_loss) == 0.0  # nothing has had the chance to die yet
    dead = torch.zeros(model.config.n_latents, dtype=torch.bool)
    dead[:3] = True  # 3 dead latents < aux_k = 8: sparsify scales the loss by 3/8
    with torch.no_grad():
        model.tokens_since_fired.zero_()
        model.tokens_since_fired[dead] = 5
    out = model(x)
    x_c = model.standardize(x)
    pre = model.pre_activation(x_c)
    z = torch.relu(pre)
    z = torch.zeros_like(z).scatter(-1, z.topk(2, dim=-1).indices, z.topk(2, dim=-1).values)
    residual = x_c - (z @ model.W_dec + model.b_dec)
    aux_z = torch.relu(pre).masked_fill(~dead, 0.0)  # all 3 dead latents (k_aux = min(8, 3))
    expected = 0.5 * (3 / 8) * (aux_z @ model.W_dec - residual).pow(2).sum() / (x_c - x_c.mean(0)).pow(2).sum()
    torch.testing.assert_close(out.auxiliary_loss, expected)


def test_jumprelu_bandwidth_and_threshold_are_relative_to_the_input_scale():
    config = cedar_hf.JumpReLUSAEConfig(d_in=400)
    assert config.effective_bandwidth == pytest.approx(0.001 * 20) and config.reconstruction_loss == "mse"
    model = cedar_hf.DICTIONARY_CLASSES["jumprelu_sae"][1](config)
    torch.testing.assert_close(model.threshold, torch.full((config.n_latents,), 0.02))


@pytest.mark.parametrize("model_type", ["relu_sae", "jumprelu_sae"])
def test_decoder_normalisation_keeps_the_function(model_type):
    """MSAE's `scale_to_unit_norm`: unit decoder rows, encoder rows, biases and JumpReLU thresholds rescaled."""
    torch.manual_seed(3)
    model = build_model(model_type, 8).double().eval()
    with torch.no_grad():
        model.W_dec.mul_(torch.rand(model.config.n_latents, 1, dtype=torch.float64) * 3 + 0.2)
        model.b_enc.normal_()
    x = torch.randn(20, 8, dtype=torch.float64)
    before = model.reconstruct(x)
    model.normalize_decoder()
    torch.testing.assert_close(model.W_dec.norm(dim=-1), torch.ones(model.config.n_latents, dtype=torch.float64))
    torch.testing.assert_close(model.reconstruct(x), before)


# ---- defaults that build for any size -----------------------------------------------------------------------------
def test_matryoshka_levels_double_from_64_to_the_full_dictionary():
    assert cedar_hf.MatryoshkaSAEConfig(d_in=768).levels == [64, 128, 256, 512, 1024, 2048, 4096, 6144]
    assert cedar_hf.MatryoshkaSAEConfig(d_in=24).levels == [64, 128, 192]  # used to fail: 512 > 192
    assert matryoshka_levels(100) == [32, 64, 100] and matryoshka_levels(5) == [2, 4, 5]
    assert matryoshka_levels(1) == [1] and matryoshka_levels(128) == [64, 128]
    assert cedar_hf.MatryoshkaSAEConfig(d_in=768).k == 6144  # inference: every positive code, as MSAE's


@pytest.mark.parametrize("model_type", SAES)
@pytest.mark.parametrize("d_in,n_latents", [(1, None), (3, None), (24, None), (5, 1), (384, 7)])
def test_default_configs_build_and_train_for_any_size(model_type, d_in, n_latents):
    model = _sae(model_type, d_in=d_in, **({} if n_latents is None else {"n_latents": n_latents})).train()
    x = torch.randn(16, d_in)
    out = model(x)
    assert torch.isfinite(out.loss) and out.reconstruction.shape == x.shape
    out.loss.backward()


# ---- recipes -------------------------------------------------------------------------------------------------------
def test_msae_recipe_is_msae_defaults_and_switches_aux_k_off(caplog):
    model = build_model("topk_sae", 16, aux_k_coefficient=1 / 32, residual_aux_coefficient=0.1)
    args = resolve_recipe(model, TrainingArgs(recipe="msae", report_to="none"))
    assert (args.batch_size, args.num_epochs, args.learning_rate) == (4096, 30.0, 5e-4)
    assert (args.adam_epsilon, args.max_grad_norm, args.plateau_patience) == (6.25e-10, 1.0, 0)
    assert (args.lr_schedule, args.decay_fraction) == ("msae", 0.2)  # MSAE's LinearDecayLR, decay_time 0.8
    assert model.config.aux_k_coefficient == 0.0 and "aux_k_coefficient" in caplog.text
    assert model.config.residual_aux_coefficient == 0.0 and "residual_aux_coefficient" in caplog.text
    kept = build_model("topk_sae", 16, residual_aux_coefficient=0.1)
    resolve_recipe(kept, TrainingArgs(recipe="cedar-hf", report_to="none"))
    assert kept.config.residual_aux_coefficient == 0.1  # cedar-hf leaves the model's losses as configured
    rates = {t: recipe_learning_rate("msae", t) for t in ("relu_sae", "topk_sae", "batchtopk_sae", "matryoshka_sae")}
    assert rates == {"relu_sae": 5e-5, "topk_sae": 5e-4, "batchtopk_sae": 5e-4, "matryoshka_sae": 1e-4}
    optimizer = build_optimizer(model.parameters(), args)
    assert optimizer.defaults["eps"] == 6.25e-10 and optimizer.defaults["weight_decay"] == 0.0


def test_explicit_settings_win_over_the_recipe_and_cedar_hf_evaluates_each_epoch():
    model = build_model("relu_sae", 16)
    args = resolve_recipe(model, TrainingArgs(recipe="msae", learning_rate=1e-2, batch_size=64, max_grad_norm=0.0))
    assert (args.learning_rate, args.batch_size, args.max_grad_norm) == (1e-2, 64, 0.0)
    ours = resolve_recipe(model, TrainingArgs(), rows=10_000, has_eval=True)
    assert (ours.recipe, ours.batch_size, ours.learning_rate, ours.plateau_patience) == ("cedar-hf", 1024, 5e-4, 3)
    assert ours.eval_steps == 10_000 // 1024  # one held-out evaluation per epoch drives the plateau stop
    with pytest.raises(ValueError, match="recipe='paper'"):
        TrainingArgs(recipe="paper")


def test_plateau_stopper_counts_evaluations_without_relative_improvement():
    stopper = PlateauStopper(patience=2, min_delta=0.01)
    assert [stopper.update(v) for v in (0.5, 0.4, 0.399, 0.3, 0.2999, 0.2998)] == [False] * 5 + [True]
    assert not PlateauStopper(0, 0.01).update(1.0)  # patience 0: never stops


def test_plateau_stopper_restore_rederives_stopped_under_its_own_patience():
    saved = PlateauStopper(patience=2, min_delta=0.01)
    for v in (0.5, 0.5, 0.5):
        saved.update(v)
    assert saved.state() == {"best": 0.5, "bad": 2, "stopped": True}
    same, raised = PlateauStopper(2, 0.01), PlateauStopper(4, 0.01)
    same.restore(saved.state())
    raised.restore(saved.state())
    assert same.stopped and not raised.stopped and raised.bad == 2  # a raised patience goes on...
    assert [raised.update(0.5), raised.update(0.5)] == [False, True]  # ...and stops at its own patience
    legacy = PlateauStopper(4, 0.01)
    legacy.restore({"stopped": True})  # a checkpoint without a count keeps its flag
    assert legacy.stopped and legacy.bad == 0


def test_training_stops_on_a_held_out_plateau(tmp_path):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(600, 8, generator=g)
    make = lambda rows: datasets.Dataset.from_dict({"embedding": rows.numpy()})  # noqa: E731
    model = build_model("topk_sae", 8, k=2)
    # min_delta 0.9 demands a 90 % FVU drop per epoch: the second evaluation cannot, so training stops there
    args = TrainingArgs(output_dir=str(tmp_path / "run"), batch_size=100, num_epochs=30, plateau_patience=1,
                        plateau_min_delta=0.9, report_to="none", disable_tqdm=True)
    train(model, make(z[:500]), args, eval_dataset=make(z[500:]))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train/stopped_on_plateau"] is True
    assert [h["step"] for h in metrics["history"]] == [5, 10] and metrics["step"] == 10  # of 150 scheduled
    saved = TrainingArgs.from_json_file(tmp_path / "run" / "training_args.json")
    assert saved.eval_steps == 5 and saved.learning_rate == 5e-4 and math.isclose(saved.adam_epsilon, 6.25e-10)


def test_sae_plateau_watches_the_held_out_loss_and_cedar_the_fvu(tmp_path):
    """A ReLU SAE trades FVU for sparsity: its held-out FVU may rise while its objective (NMSE + λ·L1) still
    falls — a plateau of the FVU would stop it mid-way (it did: 7 epochs in the quality benchmark)."""
    accelerator = SimpleNamespace(device="cpu", num_processes=1)
    rising_fvu = [{"eval/fvu": 0.10 + 0.01 * i, "eval/loss": 1.0 - 0.1 * i} for i in range(5)]
    for model_type, stops in (("relu_sae", False), ("cedar", True)):
        model = build_model(model_type, 8)
        recipe = select_recipe(model, TrainingArgs(output_dir=str(tmp_path), plateau_patience=2))
        decisions = [recipe.should_stop(accelerator, metrics) for metrics in rising_fvu]
        assert any(decisions) is stops, (model_type, decisions)
    g = torch.Generator().manual_seed(5)
    z = torch.randn(600, 8, generator=g)
    make = lambda rows: datasets.Dataset.from_dict({"embedding": rows.numpy()})  # noqa: E731
    model = build_model("relu_sae", 8)
    args = TrainingArgs(output_dir=str(tmp_path / "run"), batch_size=100, num_epochs=3, report_to="none",
                        disable_tqdm=True)
    train(model, make(z[:500]), args, eval_dataset=make(z[500:]))
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert history and all(h["eval/loss"] > 0 for h in history)
    model.eval()
    with torch.no_grad():  # the recorded loss is the model's own objective on the held-out rows
        x = z[500:]
        assert math.isclose(history[-1]["eval/loss"], float(model(x).loss), rel_tol=1e-4)


def test_batchtopk_plateau_waits_for_its_threshold_to_settle(tmp_path):
    """θ is a running mean (momentum 0.99): evaluations in its first 459 steps measure its start, not the model."""
    accelerator = SimpleNamespace(device="cpu", num_processes=1)
    rising = [{"eval/fvu": 0.3 + 0.01 * i, "eval/loss": 0.3 + 0.01 * i} for i in range(12)]
    for model_type, start in (("batchtopk_sae", 459), ("topk_sae", 0)):
        model = build_model(model_type, 8)
        recipe = select_recipe(model, TrainingArgs(output_dir=str(tmp_path), plateau_patience=2))
        assert recipe.plateau_start(model) == start
        if start:
            assert 0.99 ** start <= 0.01 < 0.99 ** (start - 1)
        steps = [48 * (i + 1) for i in range(len(rising))]  # one evaluation an epoch of 48 steps
        decisions = [recipe.should_stop(accelerator, m, model=model, step=t) for m, t in zip(rising, steps)]
        first_stop = steps[decisions.index(True)]
        # the first counted evaluation sets the best; two more without improvement stop
        assert first_stop == (48 * 12 if start else 48 * 3), (model_type, decisions)
    fast = build_model("batchtopk_sae", 8, threshold_momentum=0.0)
    assert fast.settling_steps() == 0


def test_cli_takes_a_recipe():
    train_command = typer.main.get_command(app).get_command(None, "train")
    context = train_command.make_context("train", ["-d", "some/folder", "-a", "relu", "--recipe", "msae"])
    _, args = split_options(context.params)
    assert args.recipe == "msae" and args.learning_rate is None  # resolved per architecture at train time
    assert "--recipe" in train_command.get_help(context)
    with pytest.raises(ValueError, match="recipe='nope'"):
        split_options({**context.params, "recipe": "nope"})


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_held_out_loss_pass_gives_the_same_fvu_and_l0(model_type):
    """`evaluate_stream(with_loss=True)` reads codes and reconstruction off one eval-mode forward; they must be
    encode's and decode's, so adding the loss never changes the FVU, L0 or never-active share it reports."""
    torch.manual_seed(0)
    model = build_model(model_type, 8).double()
    z = torch.randn(300, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 + 0.5
    stream = EmbeddingStream(datasets.Dataset.from_dict({"embedding": z.numpy()}))
    plain = evaluate_stream(model, stream, z.mean(0), batch_rows=128)
    with_loss = evaluate_stream(model, stream, z.mean(0), batch_rows=128, with_loss=True)
    assert with_loss.keys() - plain.keys() == {"loss"} and math.isfinite(with_loss["loss"])
    for key, value in plain.items():
        assert math.isclose(with_loss[key], value, rel_tol=1e-12, abs_tol=1e-15), (key, value, with_loss[key])
