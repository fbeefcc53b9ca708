"""CEDAR's two orthogonal parametrizations reach the same solution on planted data (DESIGN.md: a faster one is
welcome if tests show it reaches the same solutions)."""

import datasets
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import cedar_hf
from builders import planted_sparse
from cedar_hf.training import EmbeddingStream, TrainingArgs, evaluate_stream, train


def _matched_abs_cos(a, b):
    cos = (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).T
    cos = cos.abs().detach().numpy()
    rows, cols = linear_sum_assignment(-cos)
    return cos[rows, cols]


def test_matrix_exp_and_cayley_find_the_same_rotation(tmp_path):
    d, k = 24, 3
    z, Q, _ = planted_sparse(12_000, d, k, seed=5)
    train_set = datasets.Dataset.from_dict({"embedding": z[:10_000].numpy()})
    eval_set = datasets.Dataset.from_dict({"embedding": z[10_000:].numpy()})
    rotations, fvus = {}, {}
    for parametrization in ("matrix_exp", "cayley"):
        model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=d, k=k, parametrization=parametrization))
        args = TrainingArgs(output_dir=str(tmp_path / parametrization), batch_size=512, learning_rate=3e-3,
                            max_steps=500, curriculum_steps=150, report_to="none", disable_tqdm=True, seed=0)
        model = train(model, train_set, args)
        rotations[parametrization] = model.rotation.detach()
        fvus[parametrization] = evaluate_stream(model, EmbeddingStream(eval_set), z[:10_000].mean(0), k=k)["fvu"]
        assert _matched_abs_cos(model.rotation, Q).mean() >= 0.98, parametrization
    # The same solution: each one's concept directions match the other's (up to sign and order).
    assert _matched_abs_cos(rotations["matrix_exp"], rotations["cayley"]).mean() >= 0.98
    assert max(fvus.values()) <= 0.02, fvus
    assert np.isclose(fvus["matrix_exp"], fvus["cayley"], atol=0.01)
