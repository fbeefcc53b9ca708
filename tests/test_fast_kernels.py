"""The fast kernels of issue 18 compute the same functions as the plain formulas: the skew-symmetric exponential
(values and gradients against autograd through `torch.linalg.matrix_exp`), and the sparse top-k encode/decode
(values and gradients against the dense `(B, n) × (n, d)` formulas)."""

import math

import pytest
import torch

from builders import build_model
from cedar_hf import CedarConfig, CedarModel
from cedar_hf.expm import NORM_SAFETY, choose_scheme, expm_skew, skew_spectral_norm_estimate
from cedar_hf.sparse_ops import gathered_linear, sparse_decode, sparse_pays

F64_EPS = torch.finfo(torch.float64).eps


def _skew(d, scale, seed=0, dtype=torch.float64):
    A = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    return (A - A.T).to(dtype)


def _grad_through(f, A, G):
    A = A.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((f(A - A.T) * G).sum(), A)
    return grad


# Both exponentials are accurate to the unit roundoff u per unit norm (U is orthogonal); rounding in the ~20
# products of D-term sums adds at most ~20·D·u to an entry (a worst-case bound, D = 48: ~2e-13). Gradients are
# compared relative to their largest entry with the same budget.
TOLERANCE = 20 * 48 * F64_EPS


@pytest.mark.parametrize("scale", [0.0, 1e-6, 1e-3, 0.05, 0.3, 2.0])
def test_expm_skew_matches_matrix_exp_values_and_gradients(scale):
    d = 48
    A = torch.randn(d, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * scale
    S = A - A.T
    U, reference = expm_skew(S), torch.linalg.matrix_exp(S)
    assert (U - reference).abs().max() <= TOLERANCE
    G = torch.randn(d, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours, theirs = _grad_through(expm_skew, A, G), _grad_through(torch.linalg.matrix_exp, A, G)
    assert (ours - theirs).abs().max() <= TOLERANCE * theirs.abs().max()


def test_expm_skew_at_zero_is_the_identity_with_the_identity_derivative():
    # A = 0 (CEDAR's identity start): every eigenvalue is 0, the fully degenerate case. exp(0) = I and the
    # derivative of exp at 0 is the identity map, so ∂⟨G, exp(A − Aᵀ)⟩/∂A = G − Gᵀ exactly.
    d = 16
    G = torch.randn(d, d, dtype=torch.float64)
    assert torch.equal(expm_skew(torch.zeros(d, d, dtype=torch.float64)), torch.eye(d, dtype=torch.float64))
    assert torch.allclose(_grad_through(expm_skew, torch.zeros(d, d, dtype=torch.float64), G), G - G.T,
                          rtol=0, atol=4 * F64_EPS * G.abs().max())


def test_expm_skew_with_repeated_eigenvalues():
    # Block-diagonal copies of one plane rotation by 1.3 rad (eigenvalues ±1.3i, each 8 times), conjugated by a
    # random rotation: exact answer known in closed form.
    d, angle = 16, 1.3
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    block = torch.tensor([[0.0, -angle], [angle, 0.0]], dtype=torch.float64)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    S = Q @ torch.block_diag(*[block] * (d // 2)) @ Q.T
    exact = Q @ torch.block_diag(*[rot] * (d // 2)) @ Q.T
    assert (expm_skew(S) - exact).abs().max() <= TOLERANCE
    G = torch.randn(d, d, dtype=torch.float64)
    A = torch.triu(S)  # A − Aᵀ = S for skew S
    ours, theirs = _grad_through(expm_skew, A, G), _grad_through(torch.linalg.matrix_exp, A, G)
    assert (ours - theirs).abs().max() <= TOLERANCE * theirs.abs().max()


@pytest.mark.parametrize("scale", [0.01, 0.1, 1.0])
def test_expm_skew_is_orthogonal_in_float32(scale):
    U = expm_skew(_skew(256, scale, dtype=torch.float32))
    assert (U.T @ U - torch.eye(256)).abs().max() <= 1e-5


@pytest.mark.parametrize("kind", ["random", "one_large_angle", "flat_spectrum"])
def test_norm_estimate_with_its_safety_factor_bounds_the_spectral_norm(kind):
    d = 128
    g = torch.Generator().manual_seed(4)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    angles = {"random": None, "one_large_angle": torch.cat([torch.tensor([3.0]), 0.01 * torch.rand(d // 2 - 1)]),
              "flat_spectrum": 1.0 + 1e-3 * torch.rand(d // 2)}[kind]
    if angles is None:
        S = _skew(d, 0.1)
    else:
        blocks = [torch.tensor([[0.0, -a], [a, 0.0]], dtype=torch.float64) for a in angles.tolist()]
        S = Q @ torch.block_diag(*blocks) @ Q.T
    true = float(torch.linalg.matrix_norm(S, 2))
    estimate = skew_spectral_norm_estimate(S)
    assert estimate <= true * (1 + 1e-9)  # power iteration converges from below
    assert NORM_SAFETY * estimate >= true


def test_the_chosen_scheme_keeps_the_taylor_error_below_the_unit_roundoff():
    for norm in (0.0, 1e-5, 0.4, 1.7, 3.1, 25.0):
        for dtype in (torch.float32, torch.float64):
            m, p, s = choose_scheme(norm, dtype)
            assert m % p == 0
            theta = norm / 2 ** s  # the norm the Taylor polynomial sees
            bound = theta ** (m + 1) / math.factorial(m + 1)
            assert bound <= torch.finfo(dtype).eps / 2, (norm, dtype, m, s)


def test_saved_matrix_exp_models_load_with_the_same_rotation(tmp_path):
    # A folder saved with parametrization="matrix_exp" (before issue 18 U came from torch.linalg.matrix_exp)
    # loads and gives that U: float32, both accurate to ~10 ulp per entry of an orthogonal matrix; 1e-5 is
    # ~80 ulp of 1, loose enough for either SIMD path on memory-mapped weights, far below a changed U (> 1e-2).
    model = CedarModel(CedarConfig(d_in=32, k=4, parametrization="matrix_exp", init_std=0.1))
    model.save_pretrained(tmp_path)
    loaded = CedarModel.from_pretrained(tmp_path)
    assert loaded.config.parametrization == "matrix_exp"
    reference = torch.linalg.matrix_exp(model.A.detach() - model.A.detach().T)
    assert (loaded.rotation - reference).abs().max() <= 1e-5


# ---- sparse top-k kernels ------------------------------------------------------------------------------------
def test_gathered_linear_and_sparse_decode_pass_gradcheck():
    g = torch.Generator().manual_seed(5)
    h = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(9, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(9, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.randn(6, 9, generator=g).topk(3, dim=-1).indices  # fixed selection, some rows shared

    def selected(h, W, b):
        return gathered_linear(h, W, b, index, torch.addmm(b, h, W.T))

    assert torch.autograd.gradcheck(selected, (h, W, b))
    values = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, W: sparse_decode(v, index, W), (values, W))
    dense = torch.zeros(6, 9, dtype=torch.float64).scatter(1, index, values.detach())
    assert torch.allclose(sparse_decode(values.detach(), index, W.detach()), dense @ W.detach())


def _loss_and_grads(model, x, k):
    model.zero_grad(set_to_none=True)
    out = model(x, k=k)
    out.loss.backward()
    return out, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("model_type, k", [("cedar", 2), ("topk_sae", 5), ("matryoshka_sae", 8)])
@pytest.mark.parametrize("dead_latents", [False, True])
def test_sparse_training_forward_equals_the_dense_formulas(model_type, k, dead_latents):
    model = build_model(model_type, d_in=16).double().train()
    assert sparse_pays(k, model.config.n_latents)  # the sparse path is the one under test
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(6), dtype=torch.float64) + 0.5
    if model_type == "cedar":
        model.set_mean(x.mean(0))
    else:
        model.set_normalization(*model.compute_normalization(x))
        if dead_latents:  # aux-k reads the dense pre-activations: the kernel must keep their gradient
            model.tokens_since_fired[: model.config.n_latents // 2] = model.config.dead_tokens_threshold
    state = {key: value.clone() for key, value in model.state_dict().items()}
    fast, fast_grads = _loss_and_grads(model, x, k)
    model.load_state_dict(state)  # the dead-latent counters moved
    model.use_sparse_kernels = False
    dense, dense_grads = _loss_and_grads(model, x, k)
    assert torch.allclose(fast.loss, dense.loss, rtol=1e-12, atol=0)
    assert torch.allclose(fast.codes, dense.codes, rtol=1e-12, atol=1e-12)
    assert torch.allclose(fast.reconstruction, dense.reconstruction, rtol=1e-12, atol=1e-12)
    assert fast_grads.keys() == dense_grads.keys() and fast_grads
    for name, grad in dense_grads.items():
        assert torch.allclose(fast_grads[name], grad, rtol=1e-10, atol=1e-12 * grad.abs().max()), name


def test_sparse_kernels_accept_a_column_major_weight():
    # The Cayley U comes from linalg.solve in column-major order; the kernels make it row-major (speed) and must
    # give the same values and gradients.
    g = torch.Generator().manual_seed(7)
    W = torch.randn(9, 5, generator=g, dtype=torch.float64).T.contiguous().T.requires_grad_(True)
    assert not W.is_contiguous()
    index = torch.randn(6, 9, generator=g).topk(2, dim=-1).indices
    values = torch.randn(6, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, W: sparse_decode(v, index, W), (values, W))
    h = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, W: gathered_linear(h, W, None, index, h @ W.T), (h, W))
