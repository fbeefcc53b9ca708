"""CEDAR's k curriculum (paper App. A): linear from D to k_target over τ steps, then k ~ Uniform{1..2k_target − 1}."""

from __future__ import annotations

import collections

import datasets
import pytest

from builders import build_model, planted_sparse
from cedar_hf.training import TrainingArgs, curriculum_k, train


def test_linear_phase_goes_from_d_in_to_k_target():
    D, k_target, tau = 64, 10, 100
    ks = [curriculum_k(t, D, k_target, tau, seed=0) for t in range(tau + 1)]
    assert ks[0] == D and ks[tau] == k_target
    assert ks[50] == round(D + 0.5 * (k_target - D)) == 37
    assert all(a >= b for a, b in zip(ks, ks[1:]))  # never increases


def test_random_phase_is_uniform_on_1_to_2k_minus_1_and_reproducible():
    D, k_target, tau = 64, 10, 5
    draws = [curriculum_k(t, D, k_target, tau, seed=1) for t in range(tau + 1, tau + 20_001)]
    counts = collections.Counter(draws)
    assert set(counts) == set(range(1, 2 * k_target))  # exactly {1..19}
    expected = len(draws) / (2 * k_target - 1)
    assert all(abs(c - expected) < 0.1 * expected for c in counts.values())
    again = [curriculum_k(t, D, k_target, tau, seed=1) for t in range(tau + 1, tau + 201)]
    assert again == draws[:200]  # a pure function of (seed, step): resumed runs and all processes agree
    other = [curriculum_k(t, D, k_target, tau, seed=2) for t in range(tau + 1, tau + 201)]
    assert other != draws[:200]


def test_random_phase_is_capped_at_d_in_and_tau_zero_skips_the_ramp():
    assert all(1 <= curriculum_k(t, 8, 6, 0, seed=0) <= 8 for t in range(200))
    assert max(curriculum_k(t, 8, 6, 0, seed=0) for t in range(200)) == 8


@pytest.mark.parametrize("tau_from", ["args", "config"])
def test_training_passes_the_curriculum_k_to_the_model(tmp_path, tau_from):
    z, _, _ = planted_sparse(512, 16, 3)
    model = build_model("cedar", 16, k=3, curriculum_steps=4 if tau_from == "config" else 1000)
    seen = []
    forward = model.forward
    model.forward = lambda x, k=None, **kw: (seen.append(k), forward(x, k=k, **kw))[1]
    args = TrainingArgs(output_dir=str(tmp_path), batch_size=128, max_steps=12, report_to="none", disable_tqdm=True,
                        curriculum_steps=4 if tau_from == "args" else None, seed=5)
    train(model, datasets.Dataset.from_dict({"embedding": z.numpy()}), args)
    assert seen == [curriculum_k(t, 16, 3, 4, seed=5) for t in range(12)]
    assert seen[:5] == [16, 13, 10, 6, 3]
