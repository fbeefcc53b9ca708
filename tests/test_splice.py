"""SpLiCE baseline: the reference's objective solved exactly (vs sklearn's Lasso), the contract, names = words."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

import cedar_hf
from cedar_hf import SpliceConfig, SpliceModel
from cedar_hf.interpret import name_concepts
from cedar_hf.modeling_splice import centred_concepts, nonnegative_lasso
from cedar_hf.registry import resolve_architecture

from interpret_helpers import planted_word_world


def _world(V=200, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    vocabulary = torch.randn(V, d, generator=g) + 2.0  # text embeddings share an offset, like real ones
    words = [f"w{i}" for i in range(V)]
    data = torch.randn(300, d, generator=g) - 1.0
    return vocabulary, words, data


@pytest.mark.parametrize("penalty", [0.05, 0.25])
def test_codes_are_the_reference_nonnegative_lasso(penalty):
    """The reference's sklearn route: Lasso(alpha=λ / (2d), positive=True, fit_intercept=False) on the centred
    unit input over the centred atoms. Compared in float64 at a tight tolerance: same minimiser."""
    vocabulary, _, data = _world()
    C = centred_concepts(vocabulary)
    v = torch.nn.functional.normalize(torch.nn.functional.normalize(data[:6].double(), dim=-1)
                                      - torch.nn.functional.normalize(data.double(), dim=-1).mean(0), dim=-1)
    ours = nonnegative_lasso(v, C, penalty, max_iterations=20000, tolerance=1e-12, working_set=24)
    for i in range(v.shape[0]):
        reference = Lasso(alpha=penalty / (2 * 16), positive=True, fit_intercept=False, max_iter=200000,
                          tol=1e-14).fit(C.numpy().T, v[i].numpy()).coef_
        # both solvers stop at ~1e-12 of the optimum; 1e-7 leaves room for the problem's conditioning
        np.testing.assert_allclose(ours[i].numpy(), reference, atol=1e-7)
        assert (reference > 0).sum() >= 2  # a real sparse decomposition, not all zeros


def test_contract_and_model_level_codes():
    vocabulary, words, data = _world()
    model = SpliceModel.from_vocabulary(vocabulary, words, data)
    assert resolve_architecture("splice") == "splice" and cedar_hf.DICTIONARY_CLASSES["splice"][1] is SpliceModel
    unit = torch.nn.functional.normalize(data, dim=-1)
    torch.testing.assert_close(model.mean.detach(), unit.mean(0))  # μ: the mean of the unit inputs
    codes = model.encode(data[:20])
    assert (codes >= 0).all() and bool((codes == 0).any()) and codes.shape == (20, 200)
    # codes = ‖normalize(z) − μ‖ · w*, so decode reconstructs normalize(z) (a linear decode)
    centred = unit[:20] - model.mean.detach()
    w = nonnegative_lasso(centred / centred.norm(dim=-1, keepdim=True), model.concepts, 0.25)
    torch.testing.assert_close(codes.double(), w * centred.norm(dim=-1, keepdim=True).double(), atol=1e-5, rtol=1e-4)
    x_hat = model.decode(codes)
    assert torch.nn.functional.cosine_similarity(x_hat, unit[:20]).mean() > 0.5
    atoms = model.concept_directions
    torch.testing.assert_close(atoms.norm(dim=-1), torch.ones(200))
    e = torch.zeros(1, 200)
    e[0, 7] = 2.5
    torch.testing.assert_close(model.decode(e) - model.decode(torch.zeros(1, 200)), 2.5 * atoms[7:8])
    topk = model.encode(data[:20], k=3)
    assert ((topk != 0).sum(-1) <= 3).all()
    out = model(data[:20])
    assert out.loss is not None and float(out.l0) == pytest.approx(float((codes != 0).sum(-1).float().mean()))
    # a lower penalty gives denser codes
    dense = SpliceModel.from_vocabulary(vocabulary, words, data, l1_penalty=0.02)
    assert (dense.encode(data[:20]) != 0).sum() > (codes != 0).sum()


def test_names_are_the_words_and_survive_save_load(tmp_path):
    vocabulary, words, data = _world()
    model = SpliceModel.from_vocabulary(vocabulary, words, data)
    assert model.concept_labels == words
    model.save_pretrained(tmp_path)
    from cedar_hf.auto import load_dictionary

    loaded = load_dictionary(str(tmp_path))
    assert isinstance(loaded, SpliceModel) and loaded.concept_labels == words
    # float32 tolerance: the weights come back memory-mapped (other SIMD paths), the solve itself is float64
    torch.testing.assert_close(loaded.encode(data[:5]), model.encode(data[:5]), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="l1_penalty=-1"):
        SpliceConfig(d_in=4, l1_penalty=-1)
    with pytest.raises(ValueError, match="3 words for 200"):
        SpliceModel.from_vocabulary(vocabulary, words[:3])


def test_naming_a_splice_model_finds_its_own_words():
    """name_concepts with the same vocabulary (centred by its own mean) names every atom by its word."""
    backbone, vocabulary, _, _, _ = planted_word_world(d=32, n_distractors=100)
    embeddings = backbone.embed_texts(vocabulary)
    model = SpliceModel.from_vocabulary(embeddings, vocabulary)
    named = name_concepts(model, backbone, vocabulary, signed=False)
    assert [e["name"] for e in named["names"]] == vocabulary
    # not exactly 1: SpLiCE centres the *unit* embeddings, naming centres the raw ones (these differ in norm)
    assert all(e["score"] > e["alternatives"][1][1] + 0.1 for e in named["names"])
