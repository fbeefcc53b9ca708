"""The foundation: every dictionary keeps one contract, saves/loads through the Auto classes, rejects bad input."""

import os

import pytest
import torch
from transformers import AutoConfig, AutoModel

import cedar_hf
from builders import ARCHITECTURES, BASELINES, build_config, build_model, planted_sparse

D = 16


def _with_nontrivial_stats(model):
    """Give the normalisation buffers values that would expose a wrong formula."""
    g = torch.Generator().manual_seed(1)
    if isinstance(model, cedar_hf.CedarModel):
        model.set_mean(torch.randn(D, generator=g))
    elif isinstance(model, (cedar_hf.SemiNMF, cedar_hf.NoRotation)):
        model.fit_embeddings(torch.randn(64, D, generator=g) + 2.0, num_epochs=2)
    else:
        model.set_normalization(torch.randn(D, generator=g), 0.7)
    return model


@pytest.mark.parametrize("model_type", ARCHITECTURES + BASELINES)
def test_save_load_round_trip_through_auto_classes(model_type, tmp_path):
    model = _with_nontrivial_stats(build_model(model_type, D)).eval()
    x = torch.randn(7, D)
    model.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files), files

    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is type(model.config)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name  # stored values: bit-identical
    # Outputs are computed from memory-mapped weights, whose address may take another SIMD path than the
    # original's (last-bit differences on some CPUs), so they are compared at float32 tolerance, not bit for bit.
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).reconstruction, model(x).reconstruction)
        torch.testing.assert_close(loaded.encode(x), model.encode(x))


@pytest.mark.parametrize("parametrization", ["matrix_exp", "cayley", "orthogonal"])
def test_cedar_rotation_is_orthogonal_and_lossless_at_full_k(parametrization):
    model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=D, init_std=0.5, parametrization=parametrization))
    _with_nontrivial_stats(model)
    U = model.rotation
    assert not torch.allclose(U, torch.eye(D), atol=1e-2)  # a real rotation, not the identity
    assert (U.T @ U - torch.eye(D)).abs().max() <= 1e-5
    x = torch.randn(32, D)  # unit-scale entries, like CLIP embeddings
    assert (model.reconstruct(x, k=D) - x).abs().max() <= 1e-5
    assert (model.reconstruct(x, k=2) - x).abs().max() > 1e-2  # and small k really drops information
    assert torch.equal(model.concept_directions, U)


def test_cedar_codes_are_signed_topk_by_magnitude():
    model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=D, init_std=0.3))
    x = torch.randn(5, D)
    dense = model.rotate(x)
    codes = model.encode(x, k=3)
    assert ((codes != 0).sum(-1) == 3).all()
    kept = codes != 0
    assert torch.equal(codes[kept], dense[kept])  # signs and values kept
    assert (dense.abs().masked_fill(kept, float("inf")).min(-1).values >= 0).all()
    smallest_kept = dense.abs().masked_fill(~kept, float("inf")).min(-1).values
    largest_dropped = dense.abs().masked_fill(kept, -1.0).max(-1).values
    assert (smallest_kept >= largest_dropped).all()


@pytest.mark.parametrize("model_type", ARCHITECTURES + BASELINES)
def test_decode_is_affine_in_concept_directions(model_type):
    model = _with_nontrivial_stats(build_model(model_type, D)).eval()
    atoms = model.concept_directions
    assert atoms.shape == (model.config.n_latents, D)
    zero = model.decode(torch.zeros(1, model.config.n_latents))
    for i in [0, 3, model.config.n_latents - 1]:
        for a in (2.5, -0.7):
            e = torch.zeros(1, model.config.n_latents)
            e[0, i] = a
            torch.testing.assert_close(model.decode(e) - zero, a * atoms[i : i + 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_type", ARCHITECTURES + BASELINES)
def test_token_inputs_are_handled_tokenwise(model_type):
    model = build_model(model_type, D).eval()
    tokens = torch.randn(3, 5, D)
    codes = model.encode(tokens)
    assert codes.shape == (3, 5, model.config.n_latents)
    torch.testing.assert_close(codes.reshape(15, -1), model.encode(tokens.reshape(15, D)))
    out = model(tokens)
    assert out.reconstruction.shape == tokens.shape
    torch.testing.assert_close(model.reconstruct(tokens), out.reconstruction)


def test_batchtopk_threshold_is_saved_and_used(tmp_path):
    model = build_model("batchtopk_sae", D)
    model.train()
    model(torch.randn(64, D))  # the batch rule estimates θ
    assert float(model.threshold) > 0 and int(model.threshold_updates) == 1
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded.threshold, model.threshold)
    x = torch.randn(16, D)
    before = loaded.encode(x)
    torch.testing.assert_close(before, model.encode(x))  # same θ, same codes (float32 tolerance: mmapped weights)
    loaded.threshold.fill_(float(loaded.threshold) * 3)
    after = loaded.encode(x)
    assert (after != 0).sum() < (before != 0).sum()


def test_batchtopk_training_keeps_k_per_sample_on_average():
    model = build_model("batchtopk_sae", D, k=4).train()
    codes = model(torch.randn(50, D)).codes
    assert int((codes != 0).sum()) == 4 * 50
    assert (codes != 0).sum(-1).float().std() > 0  # the budget is shared, not per sample


def test_jumprelu_thresholds_are_saved_and_used(tmp_path):
    model = build_model("jumprelu_sae", D).eval()
    with torch.no_grad():
        model.log_threshold.copy_(torch.linspace(-4, 0, model.config.n_latents))
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded.threshold, model.threshold)
    x = torch.randn(16, D)
    before = loaded.encode(x)
    torch.testing.assert_close(before, model.encode(x))  # same θ, same codes (float32 tolerance: mmapped weights)
    with torch.no_grad():
        loaded.log_threshold.add_(2.0)
    assert (loaded.encode(x) != 0).sum() < (before != 0).sum()


def test_jumprelu_threshold_gets_a_straight_through_gradient():
    model = build_model("jumprelu_sae", D, l0_coefficient=1.0).train()
    with torch.no_grad():
        model.log_threshold.fill_(-0.5)
    model(torch.randn(256, D)).loss.backward()
    assert model.log_threshold.grad is not None and model.log_threshold.grad.abs().sum() > 0


def test_matryoshka_weighting_and_nested_loss():
    uw = build_model("matryoshka_sae", D, weighting="UW")
    rw = build_model("matryoshka_sae", D, weighting="RW")
    assert uw.level_weights() == pytest.approx([1 / 3] * 3)
    assert rw.level_weights() == pytest.approx([3 / 6, 2 / 6, 1 / 6])
    x = torch.randn(32, D)
    rw.eval()
    x_c = rw.standardize(x)
    expected = sum(  # MSAE's per-sample normalised MSE at each level
        w * ((x_c - rw.standardize(rw.reconstruct(x, k=level))).pow(2).sum(-1) / x_c.pow(2).sum(-1)).mean()
        for level, w in zip([2, 4, 8], rw.level_weights())
    )
    rw.train()
    torch.testing.assert_close(rw(x).reconstruction_loss, expected, atol=1e-5, rtol=1e-5)
    rw.eval()  # the held-out loss is the same objective (what the plateau watches), not the largest level's NMSE
    out = rw(x)
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-5)
    largest = ((x_c - rw.standardize(out.reconstruction)).pow(2).sum(-1) / x_c.pow(2).sum(-1)).mean()
    assert not torch.allclose(out.loss, largest)


def test_matryoshka_levels_beyond_the_active_count_share_one_decode_with_the_same_loss_and_gradient():
    """Levels above the most non-zero activations of any row are decoded once (the fast path); loss and gradients
    must equal decoding every level on its own (MSAE `train.py`), in float64."""
    torch.manual_seed(3)
    model = build_model("matryoshka_sae", D, levels=[2, 4, 8, 16, 32, 64]).double().train()
    x = torch.randn(48, D, dtype=torch.float64)
    with torch.no_grad():  # few active latents per row (a latent fires on ~10 % of rows): several levels keep all
        model.b_enc.copy_(-model.pre_activation(model.standardize(x)).quantile(0.9, dim=0))
    x_c = model.standardize(x)
    active = int((torch.relu(model.pre_activation(x_c)) > 0).sum(-1).max())
    assert 2 < active < 32, active  # both paths are exercised
    loss = model(x).reconstruction_loss
    grads = torch.autograd.grad(loss, [model.W_enc, model.W_dec, model.b_enc, model.b_dec])
    acts = torch.relu(model.pre_activation(x_c))
    top = acts.topk(64, dim=-1, sorted=True)
    expected = sum(
        w * model.reconstruction_error(x_c, torch.zeros_like(acts).scatter(-1, top.indices[:, :level],
                                                                            top.values[:, :level]) @ model.W_dec
                                       + model.b_dec)
        for level, w in zip(model.config.levels, model.level_weights()))
    expected_grads = torch.autograd.grad(expected, [model.W_enc, model.W_dec, model.b_enc, model.b_dec])
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_sae_initialisation_is_msaes():
    """MSAE `_init_weights(norm=0.1)` + `scale_to_unit_norm`: unit decoder rows, encoder rows 0.01 along them;
    `encoder_init_norm=1` is Gao et al.'s transposed decoder; JumpReLU keeps the transposed decoder."""
    for model_type, norm in (("topk_sae", 0.01), ("relu_sae", 0.01), ("jumprelu_sae", 1.0)):
        model = build_model(model_type, D)
        assert model.config.encoder_init_norm == norm
        torch.testing.assert_close(model.W_dec.norm(dim=-1), torch.ones(model.config.n_latents))
        torch.testing.assert_close(model.W_enc, norm * model.W_dec)
    gao = build_model("topk_sae", D, encoder_init_norm=1.0)
    torch.testing.assert_close(gao.W_enc, gao.W_dec)
    with pytest.raises(ValueError, match="encoder_init_norm=0"):
        build_config("topk_sae", D, encoder_init_norm=0)


def test_independent_initialisation_is_overcompletes():
    """`init_scheme="independent"`: overcomplete 0.3.0's `SAE.__init__` from the same seed — `nn.Linear(d, n)`'s
    default encoder weight and bias, then a Xavier-uniform dictionary scaled to unit rows, independent of it."""
    for model_type in ("topk_sae", "batchtopk_sae", "relu_sae"):
        torch.manual_seed(5)
        model = build_model(model_type, D, init_scheme="independent")
        n = model.config.n_latents
        torch.manual_seed(5)
        encoder = torch.nn.Linear(D, n)
        dictionary = torch.nn.init.xavier_uniform_(torch.empty(n, D))
        torch.testing.assert_close(model.W_enc.data, encoder.weight.data)
        torch.testing.assert_close(model.b_enc.data, encoder.bias.data)
        torch.testing.assert_close(model.W_dec.data, dictionary / dictionary.norm(dim=-1, keepdim=True))
        assert float(model.b_dec.data.abs().max()) == 0.0
    with pytest.raises(ValueError, match="init_scheme='untied'"):
        build_config("topk_sae", D, init_scheme="untied")


def test_decoder_bias_off_is_a_zero_buffer_the_optimiser_never_moves(tmp_path):
    """`decoder_bias=False` (overcomplete's SAEs have no b_dec): b_dec stays zero through training steps and a
    save/load, and is not a parameter; the default learns it."""
    torch.manual_seed(2)
    x = torch.randn(64, D) + 3.0
    for decoder_bias in (True, False):
        model = build_model("topk_sae", D, k=4, decoder_bias=decoder_bias)
        model.set_normalization(*model.compute_normalization(x))
        assert ("b_dec" in dict(model.named_parameters())) == decoder_bias
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            model(x).loss.backward()
            optimiser.step()
            optimiser.zero_grad()
        assert (float(model.b_dec.detach().abs().max()) > 0) == decoder_bias
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.decoder_bias is False and "b_dec" not in dict(loaded.named_parameters())
    assert float(loaded.b_dec.abs().max()) == 0.0
    torch.testing.assert_close(loaded.encode(x), model.encode(x))
    with pytest.raises(ValueError, match="decoder_bias='no'"):
        build_config("topk_sae", D, decoder_bias="no")


def test_decoder_norm_project_is_overcompletes_step():
    """`decoder_norm="project"`: one Adam step along the full gradient, then unit decoder rows, the encoder untouched
    (overcomplete's `DictionaryLayer`). The default `"tangent"` steps along the tangent and rescales the encoder."""
    torch.manual_seed(6)
    x = torch.randn(64, D)
    steps = {}
    for rule in ("tangent", "project"):
        torch.manual_seed(7)
        model = build_model("topk_sae", D, k=4, decoder_norm=rule).double()
        model.set_normalization(*model.compute_normalization(x.double()))
        start = {name: p.detach().clone() for name, p in model.named_parameters()}
        model(x.double()).loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        model.remove_parallel_decoder_grad()  # the trainer's order (cedar_hf.training.recipes.SAERecipe)
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        optimiser.step()
        model.normalize_decoder()
        torch.testing.assert_close(model.W_dec.norm(dim=-1), torch.ones(model.config.n_latents, dtype=torch.float64))
        steps[rule] = {name: p.detach().clone() for name, p in model.named_parameters()}
        if rule == "project":  # Adam's first step: lr·g / (|g| + ε), bias-corrected moments
            expected = {name: start[name] - 1e-2 * g / (g.abs() + 1e-8) for name, g in grads.items()}
            W = expected["W_dec"]
            torch.testing.assert_close(steps[rule]["W_dec"], W / (W.norm(dim=-1, keepdim=True) + 1e-8))
            for name in ("W_enc", "b_enc", "b_dec"):
                torch.testing.assert_close(steps[rule][name], expected[name])
    assert not torch.allclose(steps["tangent"]["W_dec"], steps["project"]["W_dec"])
    assert not torch.allclose(steps["tangent"]["W_enc"], steps["project"]["W_enc"])
    assert build_config("topk_sae", D).decoder_norm == "tangent"
    with pytest.raises(ValueError, match="decoder_norm='l2'"):
        build_config("topk_sae", D, decoder_norm="l2")


def test_topk_aux_loss_acts_on_dead_latents():
    model = build_model("topk_sae", D, dead_tokens_threshold=1, aux_k_coefficient=1 / 32).train()  # off by default
    x = torch.randn(32, D)
    assert float(model(x).auxiliary_loss.detach()) == 0.0  # nothing is dead before any token was seen
    model.tokens_since_fired.fill_(10)  # now every latent counts as dead
    assert float(model(x).auxiliary_loss.detach()) > 0


def _overcomplete_top_k_auxiliary_loss(x, x_hat, pre_codes, codes, dictionary, penalty):
    """overcomplete 0.3.0 `sae/losses.py::top_k_auxiliary_loss`, written out from its definition."""
    residual = x - x_hat
    rest = torch.relu(pre_codes) - codes  # the chosen codes removed
    top = torch.topk(rest, k=rest.shape[1] // 2, dim=1)
    residual_hat = torch.zeros_like(codes).scatter(-1, top.indices, top.values) @ dictionary
    return residual.square().mean() + penalty * (residual - residual_hat).square().mean()


@pytest.mark.parametrize("model_type,sparse_kernels", [("topk_sae", True), ("topk_sae", False),
                                                       ("batchtopk_sae", False)])
def test_residual_aux_loss_is_overcomplete_top_k_auxiliary_loss(model_type, sparse_kernels):
    """With `reconstruction_loss="mse"` and no decoder bias, loss and gradients are overcomplete's (float64)."""
    torch.manual_seed(3)
    model = build_model(model_type, D, k=3, reconstruction_loss="mse", residual_aux_coefficient=0.1,
                        decoder_bias=False).double()  # overcomplete has no decoder bias
    model.use_sparse_kernels = sparse_kernels
    model.set_normalization(torch.zeros(D, dtype=torch.float64), 1.0)
    with torch.no_grad():
        model.b_enc.normal_()
    model.train()
    x = torch.randn(64, D, dtype=torch.float64)
    out = model(x)
    ours = torch.autograd.grad(out.loss, [model.W_enc, model.b_enc, model.W_dec], retain_graph=True)
    pre = model.pre_activation(x)
    reference = _overcomplete_top_k_auxiliary_loss(x, out.codes @ model.W_dec, pre, out.codes, model.W_dec, 0.1)
    theirs = torch.autograd.grad(reference, [model.W_enc, model.b_enc, model.W_dec])
    torch.testing.assert_close(out.loss, reference, rtol=1e-12, atol=0)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    assert float(out.auxiliary_loss.detach()) > 0


def test_residual_aux_loss_reaches_unselected_latents_and_is_off_by_default():
    torch.manual_seed(4)
    x = torch.randn(8, D)
    grads = {}
    for coefficient in (0.0, 0.1):
        model = build_model("topk_sae", D, k=2, residual_aux_coefficient=coefficient).train()
        model.set_normalization(*model.compute_normalization(torch.randn(64, D)))
        out = model(x)
        out.loss.backward()
        never_selected = (out.codes != 0).sum(0) == 0
        grads[coefficient] = model.W_enc.grad[never_selected].abs().sum()
        assert (float(out.auxiliary_loss.detach()) > 0) == (coefficient > 0)
        if coefficient:
            model.eval()
            assert float(model(x).auxiliary_loss) == 0.0  # train mode only
    assert float(grads[0.0]) == 0.0 and float(grads[0.1]) > 0
    assert build_config("topk_sae", D).residual_aux_coefficient == 0.0
    with pytest.raises(ValueError, match="residual_aux_coefficient=-0.1"):
        build_config("topk_sae", D, residual_aux_coefficient=-0.1)


@pytest.mark.parametrize("model_type", ARCHITECTURES)
def test_optimiser_steps_lower_the_loss_on_planted_data(model_type):
    torch.manual_seed(0)
    z, _, _ = planted_sparse(512, D, k=3)
    model = build_model(model_type, D, **({"k": 4} if model_type == "cedar" else {}))
    if isinstance(model, cedar_hf.CedarModel):
        model.set_mean(z.mean(0))
    else:
        model.set_normalization(*model.compute_normalization(z))
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = model(z).loss
        first = float(loss.detach()) if first is None else first
        optimiser.zero_grad()
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        optimiser.step()
        if hasattr(model, "normalize_decoder"):
            model.normalize_decoder()
    assert float(model(z).loss.detach()) < 0.9 * first


# ---- bad input gets a clear error naming the value ----------------------------------------------------------
@pytest.mark.parametrize("model_type", ARCHITECTURES + BASELINES)
def test_bad_inputs_are_named(model_type):
    model = build_model(model_type, D)
    with pytest.raises(ValueError, match=r"shape \(4, 15\).*d_in=16"):
        model.encode(torch.randn(4, 15))
    bad = torch.randn(4, D)
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN.*\[2\]"):
        model(bad)
    bad[2, 3] = float("inf")
    with pytest.raises(ValueError, match=r"Inf"):
        model.encode(bad)
    n = model.config.n_latents
    with pytest.raises(ValueError, match=rf"k=0 must be in \[1, n_latents={n}\]"):
        model.encode(torch.randn(2, D), k=0)
    with pytest.raises(ValueError, match=rf"k={n + 1} must be in \[1, n_latents={n}\]"):
        model.reconstruct(torch.randn(2, D), k=n + 1)
    with pytest.raises(ValueError, match="n_latents"):
        model.decode(torch.randn(2, n + 3))


@pytest.mark.parametrize(
    "model_type, fields, message",
    [
        ("matryoshka_sae", dict(levels=[8, 4, 16]), r"levels=\[8, 4, 16\] must be strictly increasing"),
        ("matryoshka_sae", dict(levels=[4, 128]), r"largest level 128 > n_latents=64"),
        ("topk_sae", dict(k=65), r"k=65 must be in \[1, n_latents=64\]"),
        ("cedar", dict(k=17), r"k=17 must be in \[1, n_latents=16\]"),
        ("cedar", dict(n_latents=32), r"n_latents=32 must equal d_in=16"),
        ("cedar", dict(parametrization="qr"), r"parametrization='qr'"),
        ("relu_sae", dict(l1_coefficient=-1.0), r"l1_coefficient=-1.0"),
        ("batchtopk_sae", dict(threshold_momentum=1.5), r"threshold_momentum=1.5"),
        ("jumprelu_sae", dict(bandwidth=0.0), r"bandwidth=0.0"),
        ("topk_sae", dict(expansion_factor=0), r"expansion_factor=0"),
    ],
)
def test_contradictory_configs_are_refused(model_type, fields, message):
    with pytest.raises(ValueError, match=message):
        build_config(model_type, D, **fields)


def test_normalisation_statistics_are_checked():
    sae = build_model("topk_sae", D)
    with pytest.raises(ValueError, match="scale"):
        sae.set_normalization(torch.zeros(D), 0.0)
    with pytest.raises(ValueError, match="d_in=16"):
        sae.set_normalization(torch.zeros(D + 1), 1.0)
    mean, scale = sae.compute_normalization(torch.randn(1000, D) * 5 + 2)
    x_c = sae.standardize(torch.randn(1000, D) * 5 + 2) if sae.set_normalization(mean, scale) is None else None
    assert abs(float(x_c.norm(dim=-1).mean()) - D**0.5) < 0.2  # the paper's √n scaling


def test_concept_names_travel_with_the_dictionary(tmp_path):
    model = build_model("cedar", D)
    assert model.concept_labels[3] == "latent 3"
    model.concept_names = {"names": [{"latent": 3, "name": "dog", "score": 0.9, "alternatives": [["puppy", 0.8]]}]}
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.concept_names == model.concept_names
    assert loaded.concept_labels[3] == "dog" and loaded.concept_labels[0] == "latent 0"
