"""CEDAR trained on the rotation group (issue 18): `parametrization="orthogonal"` with `cedar_hf.optim.OrthogonalAdam`.

The claims: the algebra gradient is the derivative along the group; a step is Adam in the algebra followed by the
exponential (or Cayley) retraction; U stays orthogonal to 1e-5 over thousands of float32 steps; training recovers
planted rotations as the paper's parametrization does; save / load / resume are exact and a corrupt U is refused.
"""

import json

import datasets
import pytest
import torch
from safetensors.torch import load_file, save_file

import cedar_hf
from cedar_hf.auto import load_dictionary
from builders import planted_sparse, random_rotation
from cedar_hf.optim import OrthogonalAdam, orthogonality_error, retract, riemannian_gradient
from cedar_hf.training import TrainingArgs, train
from cedar_hf.training.recipes import build_optimizer


def _orthogonal(d, seed=0, dtype=torch.float64):
    """A random rotation (det +1), orthogonalised in float64."""
    Q = torch.linalg.qr(random_rotation(d, torch.Generator().manual_seed(seed)).double()).Q
    if torch.linalg.det(Q) < 0:
        Q[0] = -Q[0]
    return Q.to(dtype)


def _skew(d, seed, scale=1.0):
    X = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    return X - X.T


def _loss(U, x, k=3):
    """CEDAR's L1 loss at a fixed U (dense formulas)."""
    rotated = x @ U.T
    index = rotated.abs().topk(k, dim=-1).indices
    codes = torch.zeros_like(rotated).scatter(1, index, rotated.gather(1, index))
    return (codes @ U - x).abs().sum(-1).mean()


def test_the_algebra_gradient_is_the_derivative_along_the_group():
    d = 12
    U = _orthogonal(d, 1).requires_grad_(True)
    C = torch.randn(d, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def f(V):  # smooth, so a central difference is accurate to O(t²)
        return (torch.sin(V) * C).sum() + (V @ C).pow(2).sum() / 7

    (G,) = torch.autograd.grad(f(U), U)
    omega = riemannian_gradient(U.detach(), G)
    assert torch.equal(omega, -omega.T)  # exactly skew
    for seed in range(3):
        X = _skew(d, 10 + seed)
        t = 1e-5
        with torch.no_grad():
            derivative = (f(torch.linalg.matrix_exp(t * X) @ U) - f(torch.linalg.matrix_exp(-t * X) @ U)) / (2 * t)
        # ⟨Ω, X⟩ = d/dt f(exp(tX)U)|₀; the central difference errs by ~t²·f''' ≈ 1e-10 here
        torch.testing.assert_close((omega * X).sum(), derivative, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("retraction", ["exp", "cayley"])
def test_one_step_is_adam_in_the_algebra_then_the_retraction(retraction):
    d, lr, eps = 10, 3e-3, 1e-8
    U0 = _orthogonal(d, 3)
    U = torch.nn.Parameter(U0.clone())
    x = torch.randn(64, d, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    optimizer = OrthogonalAdam([U], lr=lr, eps=eps, retraction=retraction)
    _loss(U, x).backward()
    omega = riemannian_gradient(U0, U.grad)
    optimizer.step()
    # first Adam step: m̂ = Ω, v̂ = Ω², so W = −2·lr·Ω / (|Ω| + ε)
    W = -2 * lr * omega / (omega.abs() + eps)
    eye = torch.eye(d, dtype=torch.float64)
    expected = (torch.linalg.matrix_exp(W) if retraction == "exp" else
                torch.linalg.solve(eye - W / 2, eye + W / 2)) @ U0
    torch.testing.assert_close(U.detach(), expected, rtol=0, atol=1e-13)
    assert _loss(U.detach(), x) < _loss(U0, x)  # a descent step


@pytest.mark.parametrize("retraction", ["exp", "cayley"])
def test_u_stays_orthogonal_over_thousands_of_float32_steps(retraction):
    d = 48
    U = torch.nn.Parameter(_orthogonal(d, 5, torch.float32))
    optimizer = OrthogonalAdam([U], lr=2e-2, retraction=retraction)
    generator = torch.Generator().manual_seed(6)
    start = U.detach().clone()
    for _ in range(3000):
        U.grad = torch.randn(d, d, generator=generator)
        optimizer.step()
    assert orthogonality_error(U) <= 1e-5
    assert (U.detach() - start).abs().max() > 0.5  # it really moved far along the group
    assert torch.linalg.det(U.detach().double()) > 0  # and stayed in SO(n), where it started


def test_a_random_walk_without_the_correction_drifts_off_the_group_more():
    # the Newton–Schulz correction is what keeps U orthogonal: the same walk without it drifts further
    d = 48

    def walk(every):
        U = torch.nn.Parameter(_orthogonal(d, 5, torch.float32))
        optimizer = OrthogonalAdam([U], lr=2e-2, reorthogonalize_every=every)
        generator = torch.Generator().manual_seed(6)
        for _ in range(1500):
            U.grad = torch.randn(d, d, generator=generator)
            optimizer.step()
        return orthogonality_error(U)

    assert walk(16) < walk(0)


def test_bad_settings_are_refused():
    U = torch.nn.Parameter(_orthogonal(4))
    with pytest.raises(ValueError, match="weight_decay=0.1"):
        OrthogonalAdam([U], weight_decay=0.1)
    with pytest.raises(ValueError, match="retraction='qr'"):
        OrthogonalAdam([U], retraction="qr")
    with pytest.raises(ValueError, match="orthogonal parameters"):
        OrthogonalAdam([torch.nn.Parameter(2 * torch.eye(4))])
    with pytest.raises(ValueError, match=r"square matrices.*\(4, 3\)"):
        OrthogonalAdam([torch.nn.Parameter(torch.zeros(4, 3))])
    with pytest.raises(ValueError, match="retraction='qr'"):
        cedar_hf.CedarConfig(d_in=4, parametrization="orthogonal", retraction="qr")
    with pytest.raises(ValueError, match="retraction"):
        retract(torch.eye(3), torch.zeros(3, 3), "polar")


def test_the_model_starts_where_the_paper_s_parametrization_starts():
    for std in (0.0, 0.05):
        torch.manual_seed(7)
        ours = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=24, k=3, parametrization="orthogonal", init_std=std))
        torch.manual_seed(7)
        paper = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=24, k=3, parametrization="matrix_exp", init_std=std))
        assert [name for name, _ in ours.named_parameters()] == ["U"]
        torch.testing.assert_close(ours.rotation, paper.rotation, rtol=0, atol=1e-6)  # same draw, exp in float64
    assert ours.orthogonal_parameters() == [ours.U] and paper.orthogonal_parameters() == []
    x = torch.randn(5, 24)
    assert torch.allclose(ours.reconstruct(x, k=24), x, atol=1e-5)  # lossless at k = D, as every CEDAR


def test_build_optimizer_picks_orthogonal_adam_for_a_rotation(tmp_path):
    model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=8, parametrization="orthogonal", retraction="cayley"))
    args = TrainingArgs(output_dir=str(tmp_path), learning_rate=1e-3, adam_epsilon=1e-9)
    optimizer = build_optimizer(model.parameters(), args, model)
    assert isinstance(optimizer, OrthogonalAdam)
    assert optimizer.param_groups[0]["retraction"] == "cayley" and optimizer.param_groups[0]["eps"] == 1e-9
    with pytest.raises(ValueError, match="weight_decay=0.01"):
        build_optimizer(model.parameters(), TrainingArgs(output_dir=str(tmp_path), learning_rate=1e-3,
                                                         weight_decay=0.01), model)
    paper = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=8))
    assert isinstance(build_optimizer(paper.parameters(), args, paper), torch.optim.AdamW)


def _dataset(z):
    return datasets.Dataset.from_dict({"embedding": z.numpy(), "id": [f"e{i}" for i in range(len(z))]})


def test_train_saves_an_orthogonal_u_that_reloads_and_a_corrupt_one_is_refused(tmp_path):
    z, _, _ = planted_sparse(2048, 16, 3, seed=8)
    model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=16, k=3, parametrization="orthogonal", init_std=0.01))
    args = TrainingArgs(output_dir=str(tmp_path / "run"), batch_size=256, learning_rate=3e-3, max_steps=40,
                        curriculum_steps=10, report_to="none", disable_tqdm=True)
    start = model.U.detach().clone()
    model = train(model, _dataset(z), args)
    assert (model.U.detach() - start).abs().max() > 1e-2 and orthogonality_error(model.U) <= 1e-5
    reloaded = load_dictionary(tmp_path / "run")
    assert reloaded.config.parametrization == "orthogonal"
    assert torch.equal(reloaded.U.detach().clone(), model.U.detach())  # the stored tensor itself
    x = z[:64]
    torch.testing.assert_close(reloaded.encode(x), model.encode(x), rtol=1e-5, atol=1e-5)

    weights = load_file(tmp_path / "run" / "model.safetensors")
    weights["U"] = weights["U"] * 1.01
    save_file(weights, tmp_path / "run" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"run.*not orthogonal"):
        cedar_hf.CedarModel.from_pretrained(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["retraction"] == "exp"
