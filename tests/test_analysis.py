"""Analyses on planted structure: stability, modality, bridge, energy (cedar_hf.analysis)."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from datasets import Dataset

from builders import build_model, random_rotation
from cedar_hf import analysis


def _permuted_flipped(atoms: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(atoms.shape[0], 1))
    scales = rng.uniform(0.5, 3.0, size=(atoms.shape[0], 1))  # SAE atoms are not unit norm
    return (atoms * signs * scales)[rng.permutation(atoms.shape[0])]


@pytest.mark.parametrize("model_type", ["cedar", "topk_sae"])
def test_stability_with_permuted_sign_flipped_copy_is_one(model_type):
    model = build_model(model_type, d_in=16, **({"init_std": 1.0} if model_type == "cedar" else {}))
    atoms = model.concept_directions.detach().numpy()
    copy = _permuted_flipped(atoms)
    assert analysis.stability(model, copy) == pytest.approx(1.0, abs=1e-6)
    # signed matching sees the flips: strictly below one
    assert analysis.stability(model, copy, absolute=False) < 0.99


def test_stability_of_unrelated_dictionaries_is_chance():
    d, n = 32, 32
    g = torch.Generator().manual_seed(0)
    a, b = random_rotation(d, g).numpy(), random_rotation(d, g).numpy()
    # chance, by Monte Carlo: |cos| of random unit vectors, and the expected max over n of them
    rng = np.random.default_rng(0)
    u = rng.standard_normal((4000, n, d))
    v = rng.standard_normal((4000, 1, d))
    cos = np.abs((u * v).sum(-1)) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)  # (4000, n)
    mean_abs_cos, expected_max = cos.mean(), cos.max(1).mean()
    value = analysis.stability(a, b)
    # the matching beats the identity matching (mean |cos|) but cannot beat each atom's best partner on average
    assert mean_abs_cos < value < expected_max + 0.03, (mean_abs_cos, value, expected_max)
    assert value < 0.5
    assert analysis.random_baseline(n, d) == pytest.approx(value, abs=0.06)


def test_stability_curve_is_one_on_shared_high_energy_core():
    d, n, shared = 24, 24, 6
    rng = np.random.default_rng(3)
    a = random_rotation(d, torch.Generator().manual_seed(1)).numpy()
    b = np.concatenate([a[:shared], random_rotation(d, torch.Generator().manual_seed(2)).numpy()[shared:]])
    perm = np.random.default_rng(4).permutation(n)
    flips = np.where(np.random.default_rng(5).random((n, 1)) < 0.5, -1.0, 1.0)
    b = (b * flips)[perm]
    # the shared core is the most energetic part of both (same ranking), the unshared tail is not
    energy_a = np.concatenate([10 + rng.random(shared), rng.random(n - shared)])
    energy_b = np.concatenate([energy_a[:shared], rng.random(n - shared)])[perm]
    curve = analysis.stability_curve(a, b, energy_a, energy_b, ns=[1, 3, shared, n])
    assert curve[1] == pytest.approx(1.0) and curve[3] == pytest.approx(1.0) and curve[shared] == pytest.approx(1.0)
    assert curve[n] < 0.9
    with pytest.raises(ValueError, match="top_n needs"):
        analysis.stability(a, b, top_n=3)


def _planted_modal_dataset(n_per_modality=200, d=12, seed=0):
    """Identity CEDAR (codes = top-k coordinates): image rows use coords 0-3, text rows 4-7, both use 8."""
    rng = np.random.default_rng(seed)

    def rows(active):
        x = np.zeros((n_per_modality, d), dtype=np.float32)
        for i in range(n_per_modality):
            picks = rng.choice(active, size=2, replace=False)
            x[i, picks] = rng.uniform(1, 3, size=2) * rng.choice([-1, 1], size=2)
            x[i, 8] = rng.uniform(0.5, 1.0)
        return x

    x = np.concatenate([rows([0, 1, 2, 3]), rows([4, 5, 6, 7])])
    modality = ["image"] * n_per_modality + ["text"] * n_per_modality
    ids = [f"img{i}" for i in range(n_per_modality)] + [f"txt{i}" for i in range(n_per_modality)]
    pair_id = list(range(n_per_modality)) * 2
    return Dataset.from_dict({"embedding": x.tolist(), "modality": modality, "id": ids, "pair_id": pair_id})


def test_modality_scores_of_planted_concepts():
    dataset = _planted_modal_dataset()
    model = build_model("cedar", d_in=12, k=3, init_std=0.0)  # U = I, b = 0
    codes = analysis.compute_codes(model, dataset, batch_size=64, progress=False)
    assert sp.issparse(codes) and codes.shape == (400, 12)
    (_, _), is_image = analysis.modality_masks(dataset)
    scores = analysis.modality_scores(codes[is_image], codes[~is_image])
    np.testing.assert_allclose(scores[:4], 1.0)
    np.testing.assert_allclose(scores[4:8], 0.0)
    assert 0.3 < scores[8] < 0.7
    assert np.isnan(scores[9:]).all()  # never active
    energy = analysis.concept_energy(codes)
    hist = analysis.modality_histograms(scores, energy, bins=10)
    assert hist["dead"] == 3 and sum(hist["counts"]) == 9
    assert hist["counts"][0] == 4 and hist["counts"][-1] == 4
    assert sum(hist["energy_weighted"]) == pytest.approx(1.0)


def test_modality_classifier_accuracy_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5))
    is_image = rng.random(60) < 0.3
    x[is_image, 0] += 4.0  # direction 0 separates the modalities, the others do not
    directions = np.eye(5) * rng.uniform(0.5, 2, size=(5, 1))
    accuracy = analysis.modality_classifier_accuracy(x, is_image, directions, block_size=2, progress=False)

    def brute(p):
        best = 0.0
        for t in np.concatenate([[-np.inf], np.sort(p)]):
            pred = p > t
            bal = 0.5 * ((pred & is_image).sum() / is_image.sum() + (~pred & ~is_image).sum() / (~is_image).sum())
            best = max(best, bal, 1 - bal)
        return best

    expected = np.array([brute(x[:, i]) for i in range(5)])
    np.testing.assert_allclose(accuracy, expected, atol=1e-12)
    assert accuracy[0] > 0.95 and accuracy[1:].max() < 0.85


def test_bridge_matrix_matches_direct_computation():
    rng = np.random.default_rng(0)
    n, d, pairs = 7, 5, 9
    atoms = rng.standard_normal((n, d)) * rng.uniform(0.5, 2, size=(n, 1))
    z_img = rng.standard_normal((pairs, n)) * (rng.random((pairs, n)) < 0.5)
    z_txt = rng.standard_normal((pairs, n)) * (rng.random((pairs, n)) < 0.5)
    direct = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            cos = atoms[i] @ atoms[j] / np.linalg.norm(atoms[i]) / np.linalg.norm(atoms[j])
            direct[i, j] = np.mean([z_img[p, i] * z_txt[p, j] for p in range(pairs)]) * cos
    got = analysis.bridge_matrix(sp.csr_matrix(z_img), z_txt, atoms, block_size=3)
    np.testing.assert_allclose(got, direct, atol=1e-12)

    top = analysis.top_bridge_pairs(z_img, z_txt, atoms, top=5, block_size=2, progress=False)
    off = direct.copy()
    np.fill_diagonal(off, -np.inf)
    order = np.argsort(-off, axis=None)[:5]
    expected = [tuple(np.unravel_index(o, off.shape)) for o in order]
    assert [(t["image_concept"], t["text_concept"]) for t in top] == expected
    assert [t["score"] for t in top] == pytest.approx(off.ravel()[order].tolist())

    partners, scores = analysis.bridge_partners(z_img, z_txt, atoms, per_concept=3, block_size=2, progress=False)
    both = np.maximum(direct, direct.T)
    np.fill_diagonal(both, -np.inf)
    np.testing.assert_allclose(scores, -np.sort(-both, axis=1)[:, :3], atol=1e-12)
    np.testing.assert_allclose(np.take_along_axis(both, partners, 1), scores, atol=1e-12)


def test_bridge_matrix_is_invariant_to_atom_sign_flips():
    rng = np.random.default_rng(1)
    atoms, z_img, z_txt = rng.standard_normal((6, 4)), rng.standard_normal((8, 6)), rng.standard_normal((8, 6))
    flip = np.array([1, -1, 1, -1, -1, 1.0])
    np.testing.assert_allclose(
        analysis.bridge_matrix(z_img, z_txt, atoms),
        analysis.bridge_matrix(z_img * flip, z_txt * flip, atoms * flip[:, None]),
        atol=1e-12,
    )


def test_energy_share_and_token_rows():
    energy = np.array([5.0, 3.0, 1.0, 1.0, 0.0])
    assert analysis.energy_share(energy, 2) == pytest.approx(0.8)
    assert analysis.concepts_for_share(energy, 0.8) == 2 and analysis.concepts_for_share(energy, 0.81) == 3
    assert list(analysis.top_concepts(energy, 2)) == [0, 1]
    assert analysis.energy_share_curve(energy, ns=[1, 5]) == pytest.approx({1: 0.5, 5: 1.0})
    with pytest.raises(ValueError, match="n=6"):
        analysis.energy_share(energy, 6)
    model = build_model("topk_sae", d_in=8, k=2)
    tokens = torch.randn(5, 3, 8)
    codes = analysis.compute_codes(model, tokens, batch_size=2, progress=False)
    expected = model.encode(tokens).mean(1).detach().numpy()
    np.testing.assert_allclose(codes.toarray(), expected, atol=1e-6)


def test_pair_indices_from_pair_id_and_from_file(tmp_path):
    dataset = _planted_modal_dataset(n_per_modality=5)
    rows_a, rows_b = analysis.pair_indices(dataset)
    assert list(rows_a) == [0, 1, 2, 3, 4] and list(rows_b) == [5, 6, 7, 8, 9]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([["img3", "txt1"], ["img0", "txt4"]]))
    rows_a, rows_b = analysis.pair_indices(dataset, pairs=path)
    assert list(rows_a) == [3, 0] and list(rows_b) == [6, 9]
    with pytest.raises(ValueError, match="each pair must be"):
        analysis.pair_indices(dataset, pairs=[("txt1", "img3")])
    with pytest.raises(ValueError, match="not in the dataset"):
        analysis.pair_indices(dataset, pairs=[("img99", "txt1")])


def test_cli_analyze_writes_json_and_figures(tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    dataset = _planted_modal_dataset(n_per_modality=60)
    dataset.save_to_disk(str(tmp_path / "data"))
    model = build_model("cedar", d_in=12, k=3, init_std=0.0)
    model.concept_names = {"format": "cedar-hf-concept-names/1", "names": [{"latent": 0, "name": "zero", "score": 1.0}]}
    model.save_pretrained(tmp_path / "model")
    other = build_model("cedar", d_in=12, k=3, init_std=0.5)
    other.save_pretrained(tmp_path / "other")
    result = CliRunner().invoke(
        app,
        ["analyze", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data"), "-o", str(tmp_path / "out"),
         "--reference", str(tmp_path / "model"), "--reference", str(tmp_path / "other"), "--bins", "10"],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert report["labels"][0] == "zero" and report["dead"] == 3
    assert report["modality"]["scores"][:4] == [1.0] * 4 and report["modality"]["scores"][9] is None
    accuracy = report["modality"]["classifier_accuracy"]
    # coordinate 0 is nonzero (either sign) on half the image rows, never on text rows: one threshold catches one
    # sign, i.e. a quarter of the images -> balanced accuracy about (1/4 + 1) / 2; constant coordinates are chance
    assert 0.55 < accuracy[0] < 0.72 and accuracy[9:] == [0.5] * 3
    # identity-CEDAR atoms are orthogonal: bridges between different concepts vanish, the shared concept 8 leads
    # the self-bridges with E[z_img_8 z_txt_8] = E[u]² for u ~ U(0.5, 1) (~0.5625)
    assert all(abs(entry["score"]) < 1e-9 for entry in report["bridge"]["top"])
    shared = report["bridge"]["top_shared"]
    assert shared[0]["image_concept"] == 8 and shared[0]["score"] == pytest.approx(0.5625, abs=0.05)
    assert all(abs(entry["score"]) < 1e-9 for entry in shared[1:])
    stability = report["stability"]["pairs"]
    assert stability["vs model"]["overall"] == pytest.approx(1.0)
    assert stability["vs other"]["overall"] < 1.0
    for name in ("energy.png", "modality.png", "modality_classifier.png", "bridges.png", "stability.png"):
        assert (tmp_path / "out" / name).stat().st_size > 5000
