"""Semi-NMF and sparsification without rotation: the seeds' other baselines, same contract."""

import pytest
import torch
from transformers import AutoModel

import cedar_hf
from builders import planted_sparse

D = 16


def _nonnegative_planted(n=2000, n_atoms=8, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, D, generator=g)
    idx = torch.rand(n, n_atoms, generator=g).argsort(-1)[:, :k]
    codes = torch.zeros(n, n_atoms).scatter(-1, idx, 1 + torch.rand(n, k, generator=g))
    return codes @ atoms + 0.5, atoms


def test_semi_nmf_objective_decreases_monotonically_and_codes_are_nonnegative():
    z, _ = _nonnegative_planted()
    model = cedar_hf.SemiNMF(cedar_hf.SemiNMFConfig(d_in=D, n_latents=8, l1_coefficient=0.01))
    history = model.fit_embeddings(z, batch_size=512, num_epochs=12)
    assert len(history) == 12
    assert all(later <= earlier + 1e-6 for earlier, later in zip(history, history[1:])), history
    assert history[-1] < 0.2 * history[0]
    codes = model.encode(z)
    assert (codes >= 0).all()
    assert bool((codes == 0).any())  # projected gradient from 0 reaches exact zeros (multiplicative rules never do)
    assert float(model(z).fvu) < 0.05  # the planted factorisation is found
    torch.testing.assert_close(model.mean, z.mean(0), atol=1e-5, rtol=1e-5)


def test_semi_nmf_reads_datasets_in_batches_like_tensors():
    datasets = pytest.importorskip("datasets")
    z, _ = _nonnegative_planted(n=600)
    ds = datasets.Dataset.from_dict({"embedding": z.numpy().tolist(), "id": [str(i) for i in range(600)]})
    from_tensor = cedar_hf.SemiNMF(cedar_hf.SemiNMFConfig(d_in=D, n_latents=8))
    from_dataset = cedar_hf.SemiNMF(cedar_hf.SemiNMFConfig(d_in=D, n_latents=8))
    h1 = from_tensor.fit_embeddings(z, batch_size=128, num_epochs=3)
    h2 = from_dataset.fit_embeddings(ds, batch_size=128, num_epochs=3)
    assert h1 == pytest.approx(h2, rel=1e-4)


def test_semi_nmf_top_k_is_a_hard_sparsity_constraint():
    z, _ = _nonnegative_planted(n=500)
    model = cedar_hf.SemiNMF(cedar_hf.SemiNMFConfig(d_in=D, n_latents=8, k=2))
    model.fit_embeddings(z, batch_size=500, num_epochs=5)
    assert ((model.encode(z) != 0).sum(-1) <= 2).all()
    assert ((model.encode(z, k=5) != 0).sum(-1) <= 5).all()


def test_semi_nmf_refuses_an_empty_dataset():
    model = cedar_hf.SemiNMF(cedar_hf.SemiNMFConfig(d_in=D))
    with pytest.raises(ValueError, match="empty"):
        model.fit_embeddings(torch.zeros(0, D))


def test_no_rotation_is_lossless_at_full_k_and_fits_only_the_mean():
    z, _, b = planted_sparse(400, D, k=3)
    model = cedar_hf.NoRotation(cedar_hf.NoRotationConfig(d_in=D, k=3))
    model.fit_embeddings(z, batch_size=64)
    torch.testing.assert_close(model.b, z.mean(0), atol=1e-5, rtol=1e-5)
    assert (model.reconstruct(z, k=D) - z).abs().max() <= 1e-5
    assert ((model.encode(z) != 0).sum(-1) == 3).all()
    torch.testing.assert_close(model.concept_directions, torch.eye(D))


@pytest.mark.parametrize("model_class, config", [
    (cedar_hf.SemiNMF, cedar_hf.SemiNMFConfig(d_in=D, n_latents=8, k=3)),
    (cedar_hf.NoRotation, cedar_hf.NoRotationConfig(d_in=D, k=3)),
])
def test_baselines_round_trip_through_auto_model(model_class, config, tmp_path):
    z, _ = _nonnegative_planted(n=300)
    model = model_class(config)
    model.fit_embeddings(z, batch_size=300, num_epochs=2)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is model_class
    torch.testing.assert_close(loaded.reconstruct(z[:20]), model.reconstruct(z[:20]))
    zero = loaded.decode(torch.zeros(1, config.n_latents))
    e = torch.zeros(1, config.n_latents)
    e[0, 1] = 1.5
    torch.testing.assert_close(loaded.decode(e) - zero, 1.5 * loaded.concept_directions[1:2])


def test_semi_nmf_codes_do_not_depend_on_the_order_of_the_arithmetic():
    """The AMD failure, reproduced on any CPU: another summation order (here: the atoms permuted, which reorders
    every `codes @ gram` sum) must give the same codes, permuted. Two fitting epochs leave this dictionary
    ill-conditioned (cond(D Dᵀ) ~ 1e5), which amplified float32 rounding to ~1e-5 here (1e-4 on an EPYC after
    save/load); the float64 solve keeps it at float32 resolution (codes ≤ ~2.5, so 1e-6 is a few ulps)."""
    z, _ = _nonnegative_planted(n=300)
    model = cedar_hf.SemiNMF(cedar_hf.SemiNMFConfig(d_in=D, n_latents=8))
    model.fit_embeddings(z, batch_size=300, num_epochs=2)
    eigenvalues = torch.linalg.eigvalsh((model.dictionary @ model.dictionary.T).double())
    assert eigenvalues[-1] / eigenvalues[0] > 1e3  # the ill-conditioned case this guards
    x = z[:40]
    codes = model.encode(x)
    original = model.dictionary.detach().clone()
    for seed in range(3):
        order = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            model.dictionary.copy_(original[order])
        torch.testing.assert_close(model.encode(x), codes[:, order], rtol=0, atol=1e-6)


def test_rotation_is_what_makes_rotated_data_sparse():
    """The ablation's point as a property: on planted rotated data, a (briefly) trained CEDAR at k reconstructs
    far better than top-k in the original basis at the same k."""
    z, _, _ = planted_sparse(4000, D, k=3, seed=3)
    no_rotation = cedar_hf.NoRotation(cedar_hf.NoRotationConfig(d_in=D, k=3))
    no_rotation.fit_embeddings(z)
    cedar = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=D, k=3, parametrization="cayley"))
    cedar.set_mean(z.mean(0))
    optimiser = torch.optim.Adam(cedar.parameters(), lr=0.02)
    steps, tau = 600, 200
    for step in range(steps):
        k = round(D + min(step, tau) / tau * (3 - D)) if step < tau else int(torch.randint(1, 6, ()))
        batch = z[torch.randint(0, len(z), (256,))]
        loss = cedar(batch, k=k).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        fvu_cedar = float(cedar(z, k=3).fvu)
        fvu_plain = float(no_rotation(z, k=3).fvu)
    assert fvu_cedar < 0.25 * fvu_plain, (fvu_cedar, fvu_plain)


def test_train_fits_semi_nmf_by_its_own_algorithm(tmp_path):
    from cedar_hf.registry import resolve_architecture

    assert resolve_architecture("semi-nmf") == "semi_nmf" and resolve_architecture("no-rotation") == "no_rotation"
    z, _ = _nonnegative_planted(n=800)
    model = cedar_hf.SemiNMF(cedar_hf.SemiNMFConfig(d_in=D, n_latents=8, fit_epochs=4))
    args = cedar_hf.TrainingArgs(output_dir=str(tmp_path / "nmf"), batch_size=200, disable_tqdm=True)
    import datasets

    trained = cedar_hf.train(model, datasets.Dataset.from_dict({"embedding": z.tolist()}), args)
    metrics = __import__("json").loads((tmp_path / "nmf" / "metrics.json").read_text())
    history = metrics["train/objective_per_epoch"]
    assert len(history) == 4 and history[-1] <= history[0]
    loaded = AutoModel.from_pretrained(tmp_path / "nmf")
    torch.testing.assert_close(loaded.dictionary, trained.dictionary)
