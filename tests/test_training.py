"""Training: planted structure is recovered, resume is exact, bad input fails clearly, every architecture trains."""

from __future__ import annotations

import json
import os

import datasets
import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import cedar_hf
from builders import ARCHITECTURES, build_model, planted_sparse
from cedar_hf.training import EmbeddingStream, TrainingArgs, evaluate_stream, mixture_rows, train
from cedar_hf.training.recipes import lr_multiplier, resolve_recipe


def _dataset(z: torch.Tensor, **columns) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"embedding": z.numpy(), "id": [f"e{i}" for i in range(len(z))], **columns})


def _args(tmp_path, name="run", **overrides) -> TrainingArgs:
    defaults = dict(output_dir=str(tmp_path / name), batch_size=256, learning_rate=3e-3, max_steps=30,
                    report_to="none", disable_tqdm=True)
    return TrainingArgs(**{**defaults, **overrides})


def _matched_abs_cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Hungarian matching of the rows of a to rows of b on |cos|; the matched values."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    cos = (a @ b.T).abs().detach().numpy()
    rows, cols = linear_sum_assignment(-cos)
    return cos[rows, cols]


def test_planted_cedar_rotation_is_recovered(tmp_path):
    z, Q, b = planted_sparse(22_000, 32, 3, seed=0)
    train_set, eval_set = _dataset(z[:20_000]), _dataset(z[20_000:])
    model = build_model("cedar", 32, k=3, init_std=0.0, parametrization="cayley")
    args = _args(tmp_path, batch_size=512, max_steps=600, curriculum_steps=200, eval_steps=300)
    model = train(model, train_set, args, eval_dataset=eval_set)

    matched = _matched_abs_cos(model.rotation, Q)
    assert matched.mean() >= 0.98, matched
    held_out = evaluate_stream(model, EmbeddingStream(eval_set), z[:20_000].mean(0), k=3)
    assert held_out["fvu"] <= 0.02 and held_out["l0"] == 3.0
    assert torch.allclose(model.b, z[:20_000].mean(0), atol=1e-5)  # b is the training mean

    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval/fvu"] <= 0.02 and [h["step"] for h in metrics["history"]] == [300, 600]
    # the saved settings are the resolved ones: the recipe's values fill what `args` left unset
    assert TrainingArgs.from_json_file(out / "training_args.json") == resolve_recipe(model, args, 20_000, True)
    reloaded = cedar_hf.CedarModel.from_pretrained(out)
    assert torch.allclose(reloaded.rotation, model.rotation, atol=1e-6)
    assert reloaded.config.training_data["rows"] == 20_000


def test_planted_topk_sae_atoms_are_recovered(tmp_path):
    d, n_atoms, k, n = 32, 32, 3, 20_000
    g = torch.Generator().manual_seed(1)
    atoms = torch.randn(n_atoms, d, generator=g)
    atoms = atoms / atoms.norm(dim=-1, keepdim=True)
    idx = torch.rand(n, n_atoms, generator=g).argsort(-1)[:, :k]
    codes = torch.zeros(n, n_atoms).scatter(-1, idx, 1 + 2 * torch.rand(n, k, generator=g))  # non-negative
    z = codes @ atoms + 0.5 * torch.randn(d, generator=g)
    model = build_model("topk_sae", d, expansion_factor=2, k=k)
    model = train(model, _dataset(z), _args(tmp_path, max_steps=800))

    directions = model.concept_directions
    cos = (atoms @ (directions / directions.norm(dim=-1, keepdim=True)).T).detach().numpy()
    rows, cols = linear_sum_assignment(-cos)
    assert cos[rows, cols].mean() >= 0.95, cos[rows, cols]
    assert torch.allclose(model.W_dec.norm(dim=-1), torch.ones(2 * d), atol=1e-5)  # unit-norm decoder kept
    mean, scale = model.compute_normalization(z)
    assert torch.allclose(model.mean, mean, atol=1e-5) and torch.allclose(model.scale, scale, rtol=1e-4)


@pytest.mark.parametrize("model_type", ["cedar", "cedar-orthogonal", "batchtopk_sae"])
def test_resume_gives_identical_weights(tmp_path, model_type):
    z, _, _ = planted_sparse(2048, 16, 3, seed=2)
    data = tmp_path / "data"
    _dataset(z).save_to_disk(str(data))  # memory-mapped, as the CLI reads it
    overrides = dict(max_steps=24, batch_size=256, warmup_steps=3, curriculum_steps=6, save_steps=5, seed=3)

    # float64: the resumed run reads its batches into other buffers (other alignment, maybe another SIMD path)
    # than the straight run; in float32 a last-bit difference there could grow over the remaining steps.
    def fresh():
        torch.manual_seed(0)
        if model_type == "cedar-orthogonal":  # U itself on the rotation group, OrthogonalAdam's state resumed
            return build_model("cedar", 16, k=3, parametrization="orthogonal").double()
        model = build_model(model_type, 16, k=3) if model_type == "cedar" else build_model(model_type, 16)
        return model.double()

    straight = train(fresh(), str(data), _args(tmp_path, "straight", **overrides))
    train(fresh(), str(data), _args(tmp_path, "split", stop_after_steps=11, **overrides))
    assert not (tmp_path / "split" / "model.safetensors").exists()  # stopped: a checkpoint only
    resumed = train(fresh(), str(data), _args(tmp_path, "split", resume_from_checkpoint="latest", **overrides))

    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype in (torch.float64, torch.int64, torch.bool), (key, a[key].dtype)
        # Same steps, same batches, same optimiser state: equal up to float64 rounding of a reordered sum (~1e-16
        # relative); a missed or repeated step, or a lost optimiser/scheduler/RNG state, moves weights by ≫ 1e-6.
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-10, msg=key)
    if model_type == "batchtopk_sae":
        assert float(resumed.threshold) > 0  # the inference threshold was estimated and saved
    checkpoints = sorted(os.listdir(tmp_path / "split" / "checkpoints"))
    assert checkpoints == ["step-0000020", "step-0000024"]  # save_total_limit=2 keeps the newest


def test_resume_refuses_another_architecture(tmp_path):
    z, _, _ = planted_sparse(512, 16, 3)
    train(build_model("topk_sae", 16), _dataset(z), _args(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match="'topk_sae'.*'cedar'"):
        train(build_model("cedar", 16), _dataset(z), _args(tmp_path, max_steps=4, resume_from_checkpoint="latest"))


def test_clear_errors_for_bad_input(tmp_path):
    z, _, _ = planted_sparse(512, 16, 3)
    with pytest.raises(ValueError, match="16-d.*d_in=8"):
        train(build_model("cedar", 8), _dataset(z), _args(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        train(build_model("cedar", 16), _dataset(z[:0]), _args(tmp_path))
    bad = z.clone()
    bad[7, 3] = float("nan")
    bad[300, 0] = float("inf")
    with pytest.raises(ValueError, match=r"2 embedding row\(s\).*'e7', 'e300'"):
        train(build_model("topk_sae", 16), _dataset(bad), _args(tmp_path))
    with pytest.raises(ValueError, match="fewer than batch_size=1024"):
        train(build_model("cedar", 16), _dataset(z), _args(tmp_path, batch_size=1024))
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainingArgs(lr_schedule="step")


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_every_architecture_trains_and_reloads(tmp_path, model_type):
    z, _, _ = planted_sparse(1024, 16, 3, seed=4)
    model = build_model(model_type, 16)
    eval_set = _dataset(z[:256])
    before = evaluate_stream(model, EmbeddingStream(eval_set), z.mean(0))["fvu"] if model_type == "cedar" else None
    model = train(model, _dataset(z), _args(tmp_path, max_steps=40, eval_steps=20), eval_dataset=eval_set)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(metrics["eval/fvu"]) and metrics["train/lr"] == 0.0
    if before is not None:
        assert metrics["eval/fvu"] < before
    else:
        assert "eval/dead_fraction" in metrics
    reloaded = type(model).from_pretrained(tmp_path / "run")
    model.eval()
    assert torch.allclose(reloaded.reconstruct(z[:8]), model.reconstruct(z[:8]), atol=1e-5)


@pytest.mark.parametrize("feature", ["inferred", "array2d"])
def test_token_dataset_trains_token_wise(tmp_path, feature):
    z, _, _ = planted_sparse(600 * 5, 16, 3, seed=5)
    tokens = z.reshape(600, 5, 16)  # one (N=5, d) token matrix per row, as BLIP's vision tokens are stored
    features = datasets.Features({"embedding": datasets.Array2D((5, 16), "float32")}) if feature == "array2d" else None
    datasets.Dataset.from_dict({"embedding": tokens.numpy()}, features=features).save_to_disk(str(tmp_path / "d"))
    data = datasets.load_from_disk(str(tmp_path / "d"))
    stream = EmbeddingStream(data)
    assert stream.row_shape == (5, 16) and stream.tokens_per_row == 5
    model = train(build_model("cedar", 16), data, _args(tmp_path, batch_size=64, max_steps=5))
    assert torch.allclose(model.b, z.mean(0), atol=1e-5)  # the mean over all tokens
    assert model.config.training_data["tokens"] == 3000


def test_epoch_order_is_seeded_and_streams_rows(tmp_path):
    z, _, _ = planted_sparse(300, 8, 2)
    _dataset(z).save_to_disk(str(tmp_path / "d"))
    stream = EmbeddingStream(str(tmp_path / "d"))
    first, again, second = stream.epoch_order(0, 0), stream.epoch_order(0, 0), stream.epoch_order(0, 1)
    assert np.array_equal(first, again) and not np.array_equal(first, second)
    assert sorted(first.tolist()) == list(range(300))
    assert np.allclose(stream.read(first[:5]), z[first[:5]].numpy())


def test_mixture_follows_the_ratio(tmp_path):
    z, _, _ = planted_sparse(1000, 8, 2)
    modality = ["image" if i < 400 else "text" for i in range(1000)]
    data = _dataset(z, modality=modality)
    rows = mixture_rows(data, "image=1,text=1", seed=0)
    picked = np.asarray(modality)[rows]
    assert (picked == "image").sum() == 400 and (picked == "text").sum() == 400
    rows = mixture_rows(data, "image=1,text=3", seed=0)
    assert (np.asarray(modality)[rows] == "image").sum() == 200 and len(rows) == 800
    with pytest.raises(ValueError, match="audio"):
        mixture_rows(data, "audio=1", seed=0)
    model = train(build_model("cedar", 8, k=2), data, _args(tmp_path, mixture="image=1,text=3", max_steps=3))
    assert model.config.training_data["rows"] == 800 and model.config.training_data["mixture"] == "image=1,text=3"


def test_lr_schedule_warms_up_holds_and_decays_over_the_last_fifth():
    lrs = [lr_multiplier(step, 100, 10, "msae", 0.2) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(v == 1.0 for v in lrs[10:80])
    assert lrs[80] == pytest.approx(1.0) and lrs[90] == pytest.approx(0.5) and 0 < lrs[99] < lrs[98]


def test_fit_embeddings_hook_replaces_the_gradient_loop(tmp_path):
    z, _, _ = planted_sparse(512, 16, 3)
    model = build_model("cedar", 16)
    calls = []
    model.fit_embeddings = lambda dataset, args: (calls.append(len(dataset)), model.set_mean(torch.ones(16)))
    train(model, _dataset(z), _args(tmp_path))
    assert calls == [512] and torch.equal(model.b, torch.ones(16))
    assert (tmp_path / "run" / "model.safetensors").exists() and (tmp_path / "run" / "metrics.json").exists()


def test_cli_help_explains_every_training_option():
    from dataclasses import fields

    from typer.testing import CliRunner

    from cedar_hf.cli import app

    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for field in fields(TrainingArgs):
        assert f"--{field.name.replace('_', '-')}" in text, field.name
        assert " ".join(field.metadata["help"].split())[:40] in text, field.name
    for option in ("--data", "--architecture", "--config", "--seeds", "--resume", "--mixture", "--eval-fraction"):
        assert option in text


def test_cli_trains_one_model_per_seed_with_a_mixture(tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    z, _, _ = planted_sparse(1200, 16, 3, seed=7)
    modality = ["image" if i % 3 == 0 else "text" for i in range(1200)]
    _dataset(z, modality=modality).save_to_disk(str(tmp_path / "data"))
    out = tmp_path / "stability"
    result = CliRunner().invoke(app, [
        "train", "--data", str(tmp_path / "data"), "--architecture", "topk", "--config", "k=4", "expansion_factor=2",
        "--seeds", "0", "1", "--mixtures", "image=1,text=1", "image=0,text=1", "--eval_fraction", "0.2",
        "--max_steps", "5", "--batch_size", "128", "--output_dir", str(out), "--report_to", "none", "--disable_tqdm"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["mixture-image0_text1", "mixture-image1_text1"]
    models = [cedar_hf.TopKSAE.from_pretrained(out / "mixture-image1_text1" / f"seed-{seed}") for seed in (0, 1)]
    assert [m.config.n_latents for m in models] == [32, 32] and [m.config.k for m in models] == [4, 4]
    assert not torch.allclose(models[0].W_dec, models[1].W_dec)  # different seeds, different dictionaries
    n_images = sum(1 for i in range(1200) if i % 3 == 0)
    for seed, m in zip((0, 1), models):
        assert m.config.training_data["seed"] == seed and m.config.training_data["mixture"] == "image=1,text=1"
        folder = out / "mixture-image1_text1" / f"seed-{seed}"
        assert json.loads((folder / "metrics.json").read_text())["eval/fvu"] > 0
        assert m.config.training_data["rows"] < 2 * n_images  # balanced: images (after the eval split) × 2
    text_only = cedar_hf.TopKSAE.from_pretrained(out / "mixture-image0_text1" / "seed-1")
    assert text_only.config.training_data["mixture"] == "image=0,text=1"

    bad = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "data"), "--architecture", "pca"])
    assert bad.exit_code == 2 and "architecture='pca' is not known" in bad.output


def test_tensorboard_receives_training_and_eval_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    z, _, _ = planted_sparse(600, 8, 2)
    args = _args(tmp_path, report_to="tensorboard", max_steps=6, logging_steps=2, eval_steps=3, batch_size=100)
    train(build_model("topk_sae", 8, k=2), _dataset(z[:500]), args, eval_dataset=_dataset(z[500:]))
    event_files = [os.path.join(root, f) for root, _, files in os.walk(tmp_path / "run" / "logs") for f in files
                   if f.startswith("events")]
    tags = set()
    for path in event_files:
        accumulator = EventAccumulator(path)
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"train/loss", "train/fvu", "train/l0", "train/lr", "train/dead_fraction", "eval/fvu",
            "eval/dead_fraction"} <= tags


def test_a_model_without_trainable_parameters_gets_its_statistics_and_is_saved(tmp_path):
    z, _, _ = planted_sparse(512, 16, 3)
    model = build_model("cedar", 16, init_std=0.0)
    model.A.requires_grad_(False)  # a fixed basis: only the mean is fitted
    model = train(model, _dataset(z), _args(tmp_path))
    assert torch.allclose(model.b, z.mean(0), atol=1e-5) and torch.equal(model.A, torch.zeros(16, 16))
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_resume_refuses_changed_settings_unless_asked_then_warns(tmp_path, caplog):
    z, _, _ = planted_sparse(512, 16, 3)
    train(build_model("cedar", 16), _dataset(z), _args(tmp_path, max_steps=4, stop_after_steps=2))
    with pytest.raises(ValueError, match=r"learning_rate: 0.003 -> 0.1.*resume-with-changes"):
        train(build_model("cedar", 16), _dataset(z),
              _args(tmp_path, max_steps=4, learning_rate=0.1, resume_from_checkpoint="latest"))
    with caplog.at_level("WARNING", logger="cedar_hf.training.resume"):
        train(build_model("cedar", 16), _dataset(z), _args(tmp_path, max_steps=4, learning_rate=0.1,
                                                           resume_from_checkpoint="latest", resume_with_changes=True))
    assert "learning_rate" in caplog.text and "differ from an uninterrupted" in caplog.text


def test_saved_config_names_the_data_folder_never_this_machines_path(tmp_path):
    folder = tmp_path / "deep" / "clip-embeddings"
    _dataset(torch.randn(512, 16)).save_to_disk(str(folder))
    model = train(build_model("cedar", 16, k=3), str(folder), _args(tmp_path, max_steps=2))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert model.config.training_data["dataset"] == saved["training_data"]["dataset"] == "clip-embeddings"
    assert str(tmp_path) not in json.dumps(saved)  # the config travels with the model: no absolute path in it
