"""FVU-matched threshold search: lands within ±0.005 of the target on any model of the contract."""

import pytest
import torch
from builders import ARCHITECTURES, build_config, build_model, planted_sparse

from cedar_hf.evaluation import DenseCodes, apply_threshold, fvu, search_threshold, threshold_codes


def exact_relu_sae(x: torch.Tensor):
    """A ReLU SAE that reconstructs exactly at τ = 0: encoder/decoder rows [I; −I; 0] (relu(v) − relu(−v) = v)."""
    d = x.shape[1]
    model = build_model("relu_sae", d)
    model.set_normalization(*model.compute_normalization(x))
    with torch.no_grad():
        rows = torch.zeros(model.config.n_latents, d)
        rows[:d], rows[d : 2 * d] = torch.eye(d), -torch.eye(d)
        model.W_enc.copy_(rows)
        model.W_dec.copy_(rows)
        model.b_enc.zero_()
        model.b_dec.zero_()
    return model.eval()


def cedar_with_mean(x: torch.Tensor):
    model = build_model("cedar", x.shape[1], init_std=0.3)
    model.set_mean(x.mean(0))
    return model.eval()


@pytest.fixture(scope="module")
def data():
    x, _, _ = planted_sparse(1500, 16, 4, seed=1)
    return x[:1000], x[1000:]  # train, eval


def test_threshold_codes_zeroes_small_magnitudes_and_keeps_signs():
    codes = torch.tensor([[0.5, -2.0, 1.0, -0.9]])
    assert torch.equal(threshold_codes(codes, 1.0), torch.tensor([[0.0, -2.0, 1.0, 0.0]]))


@pytest.mark.parametrize("factory", [cedar_with_mean, exact_relu_sae], ids=["cedar", "relu_sae"])
@pytest.mark.parametrize("target", [0.10, 0.25, 0.30, 0.35, 0.60])
def test_search_lands_within_tolerance(data, factory, target):
    train, x = data
    model = factory(train)
    mean = train.mean(0)
    result = search_threshold(model, x, target, mean)
    assert result.reached
    assert abs(result.fvu - target) <= 0.005
    # the reported FVU is what the threshold really gives, recomputed independently from the contract
    with torch.no_grad():
        x_hat = model.decode(threshold_codes(model.dense_codes(x), result.tau))
    assert fvu(x, x_hat, mean) == pytest.approx(result.fvu, abs=1e-9)
    assert result.min_fvu < 1e-6  # both models are lossless at τ = 0


def test_unreachable_target_is_reported(data):
    train, x = data
    model = build_model("topk_sae", 16, k=1)  # untrained, one latent per sample: far from FVU 0.1
    model.set_normalization(*model.compute_normalization(train))
    result = search_threshold(model.eval(), x, 0.10, train.mean(0))
    assert not result.reached
    assert result.min_fvu > 0.105
    assert result.iterations == 0


def test_recomputed_codes_match_cached(data):
    train, x = data
    model = cedar_with_mean(train)
    cached = DenseCodes(model, x, batch_size=128)
    streamed = DenseCodes(model, x, batch_size=128, max_bytes=0)
    assert cached._cache is not None and streamed._cache is None
    a, b = apply_threshold(model, cached, 0.8), apply_threshold(model, streamed, 0.8)
    assert torch.equal(a.reconstruction, b.reconstruction)
    assert torch.equal(a.counts, b.counts) and torch.equal(a.firing, b.firing)
    # K falls as τ grows
    assert apply_threshold(model, cached, 1.5).counts.float().mean() < a.counts.float().mean()


@pytest.mark.parametrize("target", [0.0, 1.0, -0.2])
def test_bad_target_raises(data, target):
    train, x = data
    with pytest.raises(ValueError, match="target FVU"):
        search_threshold(cedar_with_mean(train), x, target, train.mean(0))


@pytest.mark.parametrize("model_type", sorted(__import__("cedar_hf").DICTIONARY_CLASSES))
def test_every_registered_dictionary_runs_the_comparison(data, model_type):
    """No branching on the model type: every registered class goes through search + evaluation, and the FVU
    the search reports is the one its threshold really gives through `dense_codes` / `decode`."""
    import cedar_hf
    from cedar_hf.evaluation import evaluate_model

    train, x = data
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    config = build_config(model_type, 16) if model_type in ARCHITECTURES else config_class(d_in=16)
    model = model_class(config)
    if callable(getattr(model, "set_mean", None)):
        model.set_mean(train.mean(0))
    if callable(getattr(model, "set_normalization", None)):
        model.set_normalization(*model.compute_normalization(train))
    model.eval()
    mean = train.mean(0)
    result = search_threshold(model, x, 0.5, mean)
    with torch.no_grad():
        x_hat = model.decode(threshold_codes(model.dense_codes(x), result.tau))
    assert fvu(x, x_hat, mean) == pytest.approx(result.fvu, abs=1e-9)
    assert result.reached == (abs(result.fvu - 0.5) <= 0.005)
    report = evaluate_model(model, x[:200], mean, targets=(0.5,), progress=False)
    assert report["n_latents"] == model.config.n_latents and len(report["matched"]) == 1
    assert 0 <= report["native"]["K"] <= model.config.n_latents
