"""Concept naming: planted word atoms are named correctly, the names travel with the dictionary."""

import gzip

import pytest
import torch

import cedar_hf
from cedar_hf.interpret import load_vocabulary, name_concepts
from cedar_hf.interpret.naming import codes_can_be_negative, concept_name, concept_sign, find_latents

from builders import build_model
from interpret_helpers import planted_cedar, planted_word_world


@pytest.fixture(scope="module")
def planted():
    torch.manual_seed(0)
    return planted_cedar(d=32, k=3)


def test_trained_cedar_on_planted_words_names_every_latent(planted):
    model, backbone, vocabulary, planted_words, atoms = planted
    names = name_concepts(model, backbone, vocabulary)
    entries = names["names"]
    assert len(entries) == model.config.n_latents == 32
    cos = atoms @ model.rotation.detach().T  # (planted word, learned coordinate)
    matched = set()
    for w, word in enumerate(planted_words):
        d = int(cos[w].abs().argmax())
        assert abs(float(cos[w, d])) > 0.99  # the fit recovered the atom (up to the sign of the axis)
        matched.add(d)
        # the sign of a learned CEDAR axis is arbitrary: the axis is named by its better end, `sign` says which
        assert entries[d]["name"] == word and entries[d]["sign"] == (1 if cos[w, d] > 0 else -1), entries[d]
        assert concept_name(model, d) == word and concept_sign(model, d) == entries[d]["sign"]
        assert concept_name(model, d, -1.0) == entries[d]["opposite"]["name"] != word
    assert matched == set(range(32))  # every latent is a planted word, each named once
    assert names["signed"] is True and {e["sign"] for e in entries} == {-1, 1}  # both orientations occurred


def test_names_carry_sorted_alternatives_and_metadata(planted):
    model, backbone, vocabulary, _, _ = planted
    names = name_concepts(model, backbone, vocabulary, top_k=5)
    assert names["format"] == "cedar-hf-concept-names/1"
    assert names["backbone"] == "fake/word-backbone" and names["center"] == "vocabulary"
    for entry in names["names"]:
        scores = [s for _, s in entry["alternatives"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert entry["alternatives"][0] == [entry["name"], entry["score"]]
        assert -1.0 <= entry["opposite"]["score"] <= entry["score"] <= 1.0
    assert model.concept_names is names
    assert model.concept_labels[0] == names["names"][0]["name"]


def test_overcomplete_sae_with_word_atoms_is_named(planted):
    """An SAE whose (non-orthogonal, over-complete) decoder atoms are noisy planted word directions."""
    _, backbone, vocabulary, planted_words, atoms = planted
    g = torch.Generator().manual_seed(3)
    sae = build_model("topk_sae", d_in=32, expansion_factor=2, k=4)  # 64 latents
    words = torch.randint(0, len(planted_words), (64,), generator=g)
    noisy = atoms[words] + 0.3 * torch.randn(64, 32, generator=g) / 32**0.5
    with torch.no_grad():
        sae.W_dec.copy_(torch.nn.functional.normalize(noisy, dim=-1))
        sae.set_normalization(torch.zeros(32), 2.0)
    names = name_concepts(sae, backbone, vocabulary)
    assert [e["name"] for e in names["names"]] == [planted_words[int(w)] for w in words]
    assert names["signed"] is False and all(e["sign"] == 1 and "opposite" not in e for e in names["names"])


def test_signed_codes_are_probed_from_the_model():
    assert codes_can_be_negative(build_model("cedar", d_in=16))
    for model_type in ("topk_sae", "relu_sae", "batchtopk_sae", "jumprelu_sae", "matryoshka_sae"):
        assert not codes_can_be_negative(build_model(model_type, d_in=16)), model_type


def test_prompt_is_applied_and_center_options(planted):
    model, _, vocabulary, planted_words, atoms = planted
    backbone, *_ = planted_word_world(32)
    a = name_concepts(model, backbone, vocabulary, prompt="a photo of {}")
    assert backbone.seen_prompts[-1] == "a photo of {}" and a["prompt"] == "a photo of {}"
    mean = torch.stack([backbone.table[w] for w in vocabulary]).mean(0)
    b = name_concepts(model, backbone, vocabulary, center=mean)
    assert [e["name"] for e in a["names"]] == [e["name"] for e in b["names"]] and b["center"] == "given mean"
    with pytest.raises(ValueError, match="center='median'"):
        name_concepts(model, backbone, vocabulary, center="median")
    with pytest.raises(ValueError, match="must contain"):
        name_concepts(model, backbone, vocabulary, prompt="a photo")
    with pytest.raises(ValueError, match="16-d"):
        name_concepts(model, vocabulary_embeddings=torch.randn(len(vocabulary), 16), vocabulary=vocabulary)


def test_names_survive_save_and_load(planted, tmp_path):
    model, backbone, vocabulary, _, _ = planted
    names = name_concepts(model, backbone, vocabulary)
    model.save_pretrained(tmp_path)
    loaded = cedar_hf.CedarModel.from_pretrained(tmp_path)
    assert loaded.concept_names == names
    assert 3 in find_latents(loaded, names["names"][3]["name"])
    with pytest.raises(ValueError, match="no latent is named"):
        find_latents(loaded, "not-a-name")


def test_vocabulary_sources(tmp_path):
    default = load_vocabulary()
    assert 19_000 <= len(default) <= 21_000 and len(set(default)) == len(default)
    assert sum(" " in w for w in default) >= 500  # a few bigrams
    assert {"dog", "red", "ice cream"} <= set(default)
    assert load_vocabulary(max_size=10) == default[:10]
    path = tmp_path / "words.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("# my concepts\ncat\ndog\n\ncat\n")
    assert load_vocabulary(path) == ["cat", "dog"]
    assert load_vocabulary(["a", "b", "a"]) == ["a", "b"]
    with pytest.raises(ValueError, match="does not exist"):
        load_vocabulary(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="empty"):
        load_vocabulary(["ok", " "])


@pytest.mark.slow
def test_minilm_word_atoms_are_named():
    """Real MiniLM embeddings: atoms that are noisy centred embeddings of 25 real words get those words' names."""
    backbone = cedar_hf.load_backbone("minilm")
    vocabulary = load_vocabulary(max_size=3000)
    embeddings = backbone.embed_texts(vocabulary, batch_size=256).float()
    centred = embeddings - embeddings.mean(0)
    g = torch.Generator().manual_seed(0)
    planted = torch.randperm(len(vocabulary), generator=g)[:25]
    noise = torch.randn(25, centred.shape[1], generator=g)
    atoms = torch.nn.functional.normalize(centred[planted], dim=-1)
    atoms = atoms + 0.5 * torch.nn.functional.normalize(noise, dim=-1)  # cos(atom, word) ≈ 0.9
    sae = build_model("topk_sae", d_in=centred.shape[1], n_latents=25, k=4, aux_k=8)
    with torch.no_grad():
        sae.W_dec.copy_(atoms)
    names = name_concepts(sae, vocabulary=vocabulary, vocabulary_embeddings=embeddings)
    assert [e["name"] for e in names["names"]] == [vocabulary[int(i)] for i in planted]


def test_name_command_with_a_tiny_text_encoder(tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app
    from tiny_backbones import WORDS, build_tiny_text_encoder

    encoder = build_tiny_text_encoder(tmp_path / "bert")  # 24-d
    model = build_model("cedar", d_in=24, k=4, init_std=0.2, backbone=encoder, embedding_site="text_embeds")
    model.save_pretrained(tmp_path / "dict")
    words = tmp_path / "words.txt"
    words.write_text("\n".join(dict.fromkeys(WORDS[10:60])))
    result = CliRunner().invoke(app, ["name", "-m", str(tmp_path / "dict"), "--vocabulary", str(words), "--show", "3"])
    assert result.exit_code == 0, result.output
    assert "named 24 latents" in result.output and len(result.output.strip().splitlines()) == 4
    loaded = cedar_hf.CedarModel.from_pretrained(tmp_path / "dict")
    assert set(loaded.concept_labels) <= set(WORDS[10:60])
    # the CLI names exactly as the API does
    expected = name_concepts(model, cedar_hf.load_backbone(encoder), words)
    assert loaded.concept_names["names"] == expected["names"]


def test_blocklist_drops_slurs_profanity_and_junk_from_every_vocabulary(tmp_path):
    from cedar_hf.interpret.vocabulary import load_blocklist

    blocklist = load_blocklist()
    categories = set(blocklist.categories.values())
    assert {"slur", "profanity", "junk"} <= categories
    # the shipped vocabulary holds none of them (checked on the raw file, not only after loading)
    raw = load_vocabulary(blocklist=False)
    assert not [w for w in raw if w in blocklist], "the shipped vocabulary file still contains blocked entries"
    assert len(raw) == 20_000  # rebuilt with the blocklist, refilled to the same size
    # user vocabularies are filtered too: whole entries, words inside bigrams, any case; allowed phrases stay
    listed = [w for w, c in blocklist.categories.items() if c == "slur"][0]
    user = ["dog", listed.upper(), f"{listed} rig", "amp", "homo sapiens", "cat"]
    assert load_vocabulary(user) == ["dog", "homo sapiens", "cat"]
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(user))
    assert load_vocabulary(path) == ["dog", "homo sapiens", "cat"]
    assert load_vocabulary(user, blocklist=False) == user  # opt-out
    assert load_vocabulary(["dog", "cat"], blocklist=["dog"]) == ["cat"]  # your own list
    with pytest.raises(ValueError, match="empty"):
        load_vocabulary(["amp"])
    with pytest.raises(ValueError, match="missing-blocklist.txt"):
        load_vocabulary(["dog"], blocklist=tmp_path / "missing-blocklist.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("[slur\nword\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 1"):
        load_blocklist(bad)


def test_name_concepts_never_picks_a_blocked_word(planted):
    model, backbone, vocabulary, planted_words, _ = planted
    blocked = planted_words[4]
    names = name_concepts(model, backbone, vocabulary, blocklist=[blocked])
    shown = {e["name"] for e in names["names"]} | {a for e in names["names"] for a, _ in e["alternatives"]}
    assert blocked not in shown and planted_words[5] in shown


def test_weak_names_are_marked_by_score(planted):
    from cedar_hf.interpret.naming import WEAK_SCORE, name_confidence_threshold, name_info

    model, backbone, _, planted_words, _ = planted
    missing = planted_words[3]
    vocabulary = [w for w in planted_words if w != missing]  # planted3's axis has no word that matches it
    names = name_concepts(model, backbone, vocabulary)
    assert names["weak_below"] == WEAK_SCORE
    weak = [e for e in names["names"] if e["weak"]]
    assert len(weak) == 1 and weak[0]["score"] < WEAK_SCORE  # only the axis of the missing word
    assert all(e["score"] > 0.9 for e in names["names"] if not e["weak"])
    info = name_info(model, weak[0]["latent"])
    assert info.weak and info.score == weak[0]["score"] and "weak" in info.label()
    assert not name_info(model, (weak[0]["latent"] + 1) % 32).weak
    # the threshold's rationale: the chance level of a best match among V random words in d dimensions
    chance = name_confidence_threshold(20_000, 384)
    assert chance == pytest.approx(0.2271, abs=1e-3) and chance < WEAK_SCORE
    g = torch.Generator().manual_seed(0)
    words, direction = torch.randn(20_000, 384, generator=g), torch.randn(384, generator=g)
    best = float(torch.nn.functional.cosine_similarity(words, direction[None]).max())
    assert abs(best - name_confidence_threshold(20_000, 384)) < 0.05
