"""CKNNA: the blocked implementation against a naive dense one written here from the formula (Huh et al. 2024)."""

import pytest
import torch

from cedar_hf.evaluation import cknna
from cedar_hf.evaluation.cknna import topk_neighbours


def hsic_unbiased_dense(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Song et al. 2012 on dense matrices, diagonal zeroed."""
    m = A.shape[0]
    A = A.clone().fill_diagonal_(0)
    B = B.clone().fill_diagonal_(0)
    value = (A * B.T).sum() + A.sum() * B.sum() / ((m - 1) * (m - 2)) - 2 * (A @ B).sum() / (m - 2)
    return value / (m * (m - 3))


def cknna_dense(x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """The naive N×N reference: linear kernels, top-k masks with the diagonal excluded, mutual mask, HSIC_u."""
    n = x.shape[0]
    K, L = x @ x.T, y @ y.T

    def mask(kernel):
        hat = kernel.clone().fill_diagonal_(float("-inf"))
        return torch.zeros(n, n, dtype=kernel.dtype).scatter_(1, hat.topk(k, dim=1).indices, 1.0)

    M_K, M_L = mask(K), mask(L)
    M = M_K * M_L
    kl = hsic_unbiased_dense(M * K, M * L)
    kk = hsic_unbiased_dense(M_K * K, M_K * K)
    ll = hsic_unbiased_dense(M_L * L, M_L * L)
    return float(kl / torch.sqrt(kk * ll))


@pytest.mark.parametrize("block_size", [1, 7, 64, None])
@pytest.mark.parametrize("k", [2, 5, 10])
def test_blocked_matches_dense(block_size, k):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(60, 12, generator=g, dtype=torch.float64)
    y = x + 0.7 * torch.randn(60, 12, generator=g, dtype=torch.float64)  # related but not identical
    expected = cknna_dense(x, y, k)
    assert cknna(x, y, k=k, block_size=block_size) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_asymmetric_neighbourhoods_and_different_widths():
    # y has another dimension and unrelated structure: the mutual masks are sparse and asymmetric.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(45, 8, generator=g, dtype=torch.float64) + 2.0
    y = torch.randn(45, 5, generator=g, dtype=torch.float64)
    expected = cknna_dense(x, y, 10)
    assert cknna(x, y, k=10, block_size=4) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_identical_representations_score_one_and_noise_scores_lower():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    assert cknna(x, x.clone(), k=10) == pytest.approx(1.0, abs=1e-6)
    noisy = cknna(x, x + 0.5 * torch.randn(200, 16, generator=g), k=10)
    unrelated = cknna(x, torch.randn(200, 16, generator=g), k=10)
    assert 1.0 > noisy > unrelated
    assert abs(unrelated) < 0.2


def test_float32_matches_float64_reference():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(80, 10, generator=g)
    y = x + 0.3 * torch.randn(80, 10, generator=g)
    assert cknna(x, y, k=10, block_size=16) == pytest.approx(cknna_dense(x.double(), y.double(), 10), abs=1e-5)


def test_topk_neighbours_excludes_diagonal():
    x = torch.eye(5) * 10 + 0.1  # each row is most similar to itself
    values, indices = topk_neighbours(x, 2, block_size=2)
    assert not (indices == torch.arange(5).unsqueeze(1)).any()
    assert values.shape == (5, 2)


@pytest.mark.parametrize("kwargs, match", [(dict(k=1), "k=1"), (dict(k=30), "k=30")])
def test_bad_arguments_raise(kwargs, match):
    x = torch.randn(20, 4)
    with pytest.raises(ValueError, match=match):
        cknna(x, x, **kwargs)
    with pytest.raises(ValueError, match="same number of rows"):
        cknna(x, x[:10])


def test_sparse_codes_take_the_sparse_product_and_give_the_same_value():
    """Wide, 4%-dense codes (an SAE at matched FVU) go through torch.sparse.mm; float64 so both paths agree to
    rounding (the only difference is the order of additions)."""
    from cedar_hf.evaluation.cknna import SPARSE_DENSITY

    g = torch.Generator().manual_seed(3)
    x = torch.randn(80, 8, generator=g, dtype=torch.float64)
    codes = torch.relu(torch.randn(80, 512, generator=g, dtype=torch.float64)) * (
        torch.rand(80, 512, generator=g) < 0.04)  # ~10 non-zeros per row
    assert float((codes != 0).double().mean()) < SPARSE_DENSITY
    values, indices = topk_neighbours(codes, 3)
    dense = codes @ codes.T
    dense.fill_diagonal_(float("-inf"))
    assert bool((dense.topk(4, dim=1).values > 0).all())  # k = 3 < the 4+ overlapping rows: no ties at 0
    assert torch.allclose(values, dense.gather(1, indices), atol=1e-12)
    assert torch.allclose(values, dense.topk(3, dim=1).values, atol=1e-12)
    assert cknna(x, codes, k=3) == pytest.approx(cknna_dense(x, codes, 3), abs=1e-10)
