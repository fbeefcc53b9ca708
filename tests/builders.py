"""Tiny dictionary builders and planted-structure data for the tests (nothing downloads)."""

from __future__ import annotations

import torch

import cedar_hf

ARCHITECTURES = ("cedar", "relu_sae", "topk_sae", "batchtopk_sae", "jumprelu_sae", "matryoshka_sae")
BASELINES = ("semi_nmf", "no_rotation")  # fitted by their own algorithms, not by gradient steps


def build_config(model_type: str, d_in: int = 16, **overrides):
    """A small config of each architecture; `overrides` win."""
    defaults = {
        "cedar": dict(k=4, init_std=0.1),
        "relu_sae": dict(expansion_factor=4),
        "topk_sae": dict(expansion_factor=4, k=4),
        "batchtopk_sae": dict(expansion_factor=4, k=4),
        "jumprelu_sae": dict(expansion_factor=4, initial_threshold=0.05, bandwidth=0.05),
        "matryoshka_sae": dict(expansion_factor=4, levels=[2, 4, 8]),
        "semi_nmf": dict(expansion_factor=2),
        "no_rotation": dict(k=4),
    }[model_type]
    config_class, _ = cedar_hf.DICTIONARY_CLASSES[model_type]
    return config_class(d_in=d_in, **{**defaults, **overrides})


def build_model(model_type: str, d_in: int = 16, **overrides):
    config = build_config(model_type, d_in=d_in, **overrides)
    _, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    return model_class(config)


def random_rotation(d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator))
    return q * torch.sign(torch.diagonal(r))


def planted_sparse(n: int, d: int, k: int, atoms: torch.Tensor | None = None, seed: int = 0, offset: float = 1.0):
    """`z = sᵀ atoms + b` with s k-sparse (signed, magnitudes in [1, 3]). Returns (z, atoms, b)."""
    g = torch.Generator().manual_seed(seed)
    atoms = random_rotation(d, g) if atoms is None else atoms
    n_atoms = atoms.shape[0]
    idx = torch.rand(n, n_atoms, generator=g).argsort(-1)[:, :k]
    mags = (1 + 2 * torch.rand(n, k, generator=g)) * torch.where(torch.rand(n, k, generator=g) < 0.5, -1.0, 1.0)
    s = torch.zeros(n, n_atoms).scatter(-1, idx, mags)
    b = offset * torch.randn(d, generator=g)
    return s @ atoms + b, atoms, b
