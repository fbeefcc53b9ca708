"""The explorer app: built on tiny dictionaries and datasets, its lookups and Gradio callbacks called directly."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from builders import build_model
from cedar_hf import analysis
from cedar_hf.analysis.explorer import ConceptExplorer, build_explorer
from cedar_hf.analysis.explorer_data import prepare_explorer_data, umap_layout

import gradio as gr

# the first UMAP fit of a process JIT-compiles umap-learn's numba kernels (~15-40 s on 2 cores); later fits are fast
pytestmark = pytest.mark.slow


def _dataset(n=40, d=12, seed=0, with_modality=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2 * n, d)).astype(np.float32)
    x[:n, 0] += 3.0  # image rows lean on coordinate 0
    columns = {"embedding": x.tolist(), "text": [f"sentence {i}" for i in range(2 * n)],
               "id": [f"row{i}" for i in range(2 * n)]}
    if with_modality:
        columns.update(modality=["image"] * n + ["text"] * n, pair_id=list(range(n)) * 2)
    return Dataset.from_dict(columns)


def _named_model(n_latents_factor=4):
    model = build_model("topk_sae", d_in=12, expansion_factor=n_latents_factor, k=3)
    model.concept_names = {
        "format": "cedar-hf-concept-names/1",
        "names": [{"latent": 5, "name": "horse", "score": 0.9, "alternatives": [["stallion", 0.8], ["mare", 0.7]]}],
    }
    return model


@pytest.fixture(scope="module")
def app():
    torch.manual_seed(0)
    return build_explorer(_named_model(), _dataset(), progress=False, examples=5, partners=4)


def _callback(app, name):
    matches = [fn.fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == name]
    assert matches, f"no callback {name}"
    return matches[0]


def test_app_is_blocks_and_search_finds_names(app):
    assert isinstance(app, gr.Blocks)
    explorer = app.explorer
    assert explorer.search("horse")[0][:2] == [5, "horse"]
    assert explorer.search("STALLION")[0][0] == 5  # alternatives are searched too, case-insensitively
    assert explorer.search("#7")[0][0] == 7
    assert explorer.search("no such concept") == []
    # names beat alternatives: "mare" is an alternative of concept 5, the name of none
    explorer.data.labels[9] = "mare"
    try:
        assert [row[0] for row in explorer.search("mare")] == [9, 5]
    finally:
        explorer.data.labels[9] = "latent 9"
    everything = explorer.search("", limit=1000)
    energies = [row[2] for row in everything]
    assert len(everything) == 48 and energies == sorted(energies, reverse=True)


def test_show_gives_examples_partners_and_map(app):
    explorer = app.explorer
    card, examples, gallery, partners, image, concept = explorer.show(5)
    assert concept == 5 and "horse" in card and "stallion (0.80)" in card and "modality score" in card
    data = explorer.data
    # examples: the rows with the largest activation of concept 5, strongest first, under its name, with texts
    values = [row[1] for row in examples]
    assert values == sorted(values, key=abs, reverse=True) and len(examples) == len(data.top_rows[5])
    for row, shown in zip(data.top_rows[5], examples):
        assert shown[0] == "horse" and shown[3] == f"sentence {row}" and shown[2] == ("image" if row < 40 else "text")
    assert gallery == []
    assert [row[0] for row in partners] == list(data.partners[5]) and 5 not in [row[0] for row in partners]
    assert image.shape == explorer.render_map().shape and (image != explorer.render_map()).any()


def test_examples_match_direct_codes():
    torch.manual_seed(0)
    model, dataset = _named_model(), _dataset()
    data = prepare_explorer_data(model, dataset, progress=False, examples=3)
    codes = model.encode(torch.tensor(dataset["embedding"])).detach().numpy()
    for i in (0, 5, 11):
        strongest = np.sort(np.abs(codes[:, i]))[::-1][: len(data.top_rows[i])]
        np.testing.assert_allclose(np.abs(data.top_values[i]), strongest, rtol=1e-5)
    bridge = analysis.bridge_matrix(codes[:40], codes[40:], model)
    both = np.maximum(bridge, bridge.T)
    np.fill_diagonal(both, -np.inf)
    np.testing.assert_allclose(data.partner_scores[:, 0], both.max(1), rtol=1e-6)


def test_map_click_selects_the_nearest_concept(app):
    explorer = app.explorer
    x, y = explorer._pixels[9]
    assert explorer.nearest(x + 1, y - 1) == 9
    on_map_select = _callback(app, "on_map_select")
    out = on_map_select(gr.SelectData(None, {"index": [float(x), float(y)], "value": None}))
    assert out[5] == 9 and out[0].startswith("## #9")


def test_search_and_row_callbacks(app):
    on_search = _callback(app, "on_search")
    hits, card, examples, *_rest = on_search("horse")
    assert hits[0][0] == 5 and _rest[3] == 5 and "horse" in card and examples
    on_row_select = _callback(app, "on_row_select")
    event = gr.SelectData(None, {"index": [0, 1], "value": "x", "row_value": [12, "latent 12", 0.1, ""]})
    assert on_row_select(event)[5] == 12


def test_without_modalities_shows_nearest_directions():
    model = build_model("cedar", d_in=12, k=3, init_std=0.3)
    explorer = ConceptExplorer(prepare_explorer_data(model, _dataset(with_modality=False), progress=False))
    assert explorer.data.scores is None and explorer.data.partners is None
    card, examples, _, partners, _, _ = explorer.show(2)
    assert "modality" not in card and len(examples[0]) == 3  # [end, value, example]
    units = model.concept_directions.detach().numpy()
    cos = np.abs(units @ units.T)
    np.fill_diagonal(cos, -1)
    assert partners[0][0] == int(np.argmax(cos[2]))


def test_image_rows_feed_the_gallery(tmp_path):
    from PIL import Image

    paths = []
    for i in range(6):  # the text rows get images of their own colour, the image rows none
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (40, 30), (40 * i, 0, 0)).save(paths[-1])
    dataset = _dataset(n=6).add_column("image_path", [None] * 6 + paths)
    explorer = ConceptExplorer(prepare_explorer_data(_named_model(), dataset, progress=False))
    concept = next(i for i in range(48) if any(r >= 6 for r in explorer.data.top_rows[i]))
    gallery = explorer.gallery(concept)
    expected = [int(r) - 6 for r in explorer.data.top_rows[concept] if r >= 6]
    assert [image.getpixel((0, 0))[0] for image, _ in gallery] == [40 * i for i in expected]


def test_image_folder_ids_resolve_against_the_recorded_root(tmp_path):
    import json

    from PIL import Image

    (tmp_path / "images" / "cats").mkdir(parents=True)
    ids = []
    for i in range(6):
        ids.append(f"cats/{i}.png")
        Image.new("RGB", (20, 20), (0, 30 * i, 0)).save(tmp_path / "images" / ids[-1])
    dataset = _dataset(n=6, with_modality=False).select(range(6))
    dataset = dataset.remove_columns(["id", "text"]).add_column("id", ids)
    dataset.save_to_disk(str(tmp_path / "data"))
    metadata = {"source": f"image folder {tmp_path / 'images'}"}
    (tmp_path / "data" / "cedar_metadata.json").write_text(json.dumps(metadata))
    explorer = ConceptExplorer(prepare_explorer_data(_named_model(), str(tmp_path / "data"), progress=False))
    concept = int(np.argmax(explorer.data.energy))
    rows = [int(r) for r in explorer.data.top_rows[concept]]
    assert [image.getpixel((0, 0))[1] for image, _ in explorer.gallery(concept)] == [30 * r for r in rows]
    assert [row[-1] for row in explorer.examples(concept)] == [ids[r] for r in rows]  # no text: the id is shown


def test_cli_explore_rejects_bad_arguments(tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app as cli

    model = build_model("topk_sae", d_in=12, expansion_factor=4, k=3)
    model.save_pretrained(tmp_path / "model")
    result = CliRunner().invoke(cli, ["explore", "-m", str(tmp_path / "model"), "-d", str(tmp_path / "missing")])
    assert result.exit_code != 0 and "neither a dataset folder" in result.output
    result = CliRunner().invoke(cli, ["explore", "-m", str(tmp_path / "model"), "-d", "x", "--modalities", "a,b,c"])
    assert result.exit_code != 0 and "exactly two" in result.output


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 20])
def test_small_umaps_do_not_crash(n):
    rng = np.random.default_rng(n)
    layout = umap_layout(rng.standard_normal((n, 8)))
    assert layout.shape == (n, 2) and np.isfinite(layout).all()


def _paired_cedar_world(n=60, d=12, seed=0):
    """A CEDAR (orthogonal atoms) over aligned pairs whose two rows share signed coefficients on the same axes."""
    from builders import random_rotation

    g = torch.Generator().manual_seed(seed)
    atoms = random_rotation(d, g)
    coefficients = torch.zeros(n, d)
    for p in range(n):
        axes = torch.randperm(d, generator=g)[:2]
        coefficients[p, axes] = (1 + torch.rand(2, generator=g)) * torch.where(torch.rand(2, generator=g) < 0.5,
                                                                                -1.0, 1.0)
    a = coefficients @ atoms + 0.05 * torch.randn(n, d, generator=g)
    b = coefficients @ atoms + 0.05 * torch.randn(n, d, generator=g)
    dataset = Dataset.from_dict({"embedding": torch.cat([a, b]).tolist(), "text": [f"pair {i % n} side {i // n}"
                                 for i in range(2 * n)], "modality": ["image"] * n + ["text"] * n,
                                 "pair_id": list(range(n)) * 2})
    return dataset, atoms


def _rotated_cedar(atoms):
    """CEDAR whose rotation U is exactly `atoms` (rows), via the skew-symmetric logarithm."""
    import scipy.linalg

    d = atoms.shape[0]
    model = build_model("cedar", d_in=d, k=2, init_std=0.0, parametrization="matrix_exp")
    log = scipy.linalg.logm(atoms.double().numpy()).real
    with torch.no_grad():
        model.A.copy_(torch.tensor(np.triu(log, 1), dtype=torch.float32))
        model.set_mean(torch.zeros(d))
    return model


def test_orthogonal_dictionary_bridges_are_same_axis_coactivation(tmp_path):
    from cedar_hf.analysis.bridge import bridge_definition, bridge_matrix

    dataset, atoms = _paired_cedar_world()
    model = _rotated_cedar(atoms)
    torch.testing.assert_close(model.concept_directions.detach(), atoms, atol=1e-4, rtol=0)
    assert bridge_definition(model) == "co-activation" and bridge_definition(build_model("topk_sae", d_in=12)) == \
        "bridge"
    data = prepare_explorer_data(model, dataset, progress=False, partners=3, cache_dir=tmp_path)
    assert data.bridge_definition == "co-activation"
    codes = model.encode(torch.tensor(dataset["embedding"]), k=2).detach().double().numpy()
    a, b = codes[:60], codes[60:]
    # Eq. 6 is diagonal for orthogonal atoms: off the diagonal only float noise, which is why it is not shown
    eq6 = bridge_matrix(a, b, model)
    off = eq6 - np.diag(np.diag(eq6))
    assert np.abs(off).max() < 1e-5 * np.abs(np.diag(eq6)).max()
    np.testing.assert_allclose(data.self_bridge, (a * b).mean(0), rtol=1e-5, atol=1e-8)
    assert (data.self_bridge > 0).sum() >= 10  # the planted pairs share signed axes: same-axis bridges are positive
    coactivation = np.maximum(a.T @ b, b.T @ a) / 60
    np.fill_diagonal(coactivation, -np.inf)
    np.testing.assert_allclose(data.partner_scores[:, 0], coactivation.max(1), rtol=1e-5, atol=1e-8)
    explorer = ConceptExplorer(data)
    assert "Co-activation partners" in explorer.partner_title() and "same-axis bridge" in explorer.card(0)


def test_examples_are_split_by_sign_under_each_ends_name(tmp_path):
    dataset, atoms = _paired_cedar_world()
    model = _rotated_cedar(atoms)
    model.concept_names = {"format": "cedar-hf-concept-names/1", "weak_below": 0.3, "names": [
        {"latent": 3, "name": "hot", "score": 0.6, "sign": -1, "weak": False, "alternatives": [["hot", 0.6]],
         "opposite": {"name": "cold", "score": 0.2, "weak": True}},
        {"latent": 4, "name": "middle west", "score": 0.12, "sign": 1, "weak": True, "alternatives": []}]}
    explorer = ConceptExplorer(prepare_explorer_data(model, dataset, progress=False, cache_dir=tmp_path))
    codes = model.encode(torch.tensor(dataset["embedding"]), k=2).detach().numpy()
    rows = explorer.examples(3)
    named = [r for r in rows if r[0] == "hot"]
    other = [r for r in rows if r[0] == "cold"]
    assert named and other and len(named) + len(other) == len(rows)
    assert all(r[1] > 0 for r in named) and all(r[1] < 0 for r in other)  # oriented values: sign·code
    # "hot" names the negative end of the learned axis (sign −1): its rows are the most negative codes
    strongest = int(np.argmin(codes[:, 3]))
    assert named[0][3] == dataset["text"][strongest]
    assert "other end of the axis:** cold" in explorer.card(3)
    card = explorer.card(4)
    assert "middle west?" in card and "weak name" in card and "0.12" in card
    assert explorer.search("middle")[0][1] == "middle west?"


def test_search_by_meaning_embeds_the_query():
    model, dataset = _named_model(), _dataset()
    directions = torch.nn.functional.normalize(model.concept_directions.detach(), dim=-1)
    origin = model.decode(torch.zeros(1, model.config.n_latents))[0].detach()

    class Backbone:
        def embed_texts(self, texts, batch_size=64, prompt=None):
            return torch.stack([origin + 3.0 * directions[17] if t == "music" else origin for t in texts])

    from cedar_hf.analysis.explorer import query_embedder

    data = prepare_explorer_data(model, dataset, progress=False, cache_dir=False)
    explorer = ConceptExplorer(data, embed_query=query_embedder(Backbone()))
    meaning = explorer.search_meaning("music", limit=3)
    assert meaning[0][0] == 17 and meaning[0][1] == pytest.approx(1.0, abs=1e-5)
    rows = explorer.search("music")  # no name contains "music": the meaning hits are shown
    assert rows[0][0] == 17 and rows[0][-1].startswith("meaning 1.00")
    assert ConceptExplorer(data).search("music") == []  # without a backbone: names only
    assert explorer.search("horse")[0][:2] == [5, "horse"] and explorer.search("horse")[0][-1] == "name"


def test_views_are_cached_on_disk_keyed_by_model_and_data(tmp_path, monkeypatch):
    from cedar_hf.analysis import explorer_data

    model, dataset = _named_model(), _dataset()
    first = prepare_explorer_data(model, dataset, progress=False, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert not first.cached and len(files) == 1 and files[0].suffix == ".npz"  # one file, no temp leftovers

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(explorer_data, "compute_codes", boom)
    monkeypatch.setattr(explorer_data, "umap_layout", boom)
    second = prepare_explorer_data(model, dataset, progress=False, cache_dir=tmp_path)
    assert second.cached
    for key in ("energy", "layout", "neighbors", "neighbor_cos", "scores", "partners", "partner_scores"):
        np.testing.assert_array_equal(getattr(second, key), getattr(first, key))
    assert all((a == b).all() for a, b in zip(second.top_rows, first.top_rows))
    monkeypatch.undo()
    # other weights, other data: a miss (a new file)
    with torch.no_grad():
        model.W_dec.mul_(-1)
    assert not prepare_explorer_data(model, dataset, progress=False, cache_dir=tmp_path).cached
    assert not prepare_explorer_data(model, _dataset(seed=1), progress=False, cache_dir=tmp_path).cached
    assert len(list(tmp_path.iterdir())) == 3
    # a damaged cache file is recomputed, not trusted
    for path in tmp_path.iterdir():
        path.write_bytes(b"not a cache")
    assert not prepare_explorer_data(model, dataset, progress=False, cache_dir=tmp_path).cached


def test_url_selects_a_concept_and_the_map_is_interactive(app):
    from cedar_hf.analysis._explorer_app import _initial

    explorer = app.explorer

    class Request:
        def __init__(self, **params):
            self.query_params = params

    assert _initial(explorer, Request(concept="12")) == 12
    assert _initial(explorer, Request(concept="horse")) == 5
    assert _initial(explorer, Request()) == explorer.initial_concept()
    assert _initial(explorer, Request(concept="999")) == explorer.initial_concept()
    figure = explorer.map_figure(5)
    points = figure.data[0]
    assert list(points.customdata) == list(range(48)) and "#5 horse" in points.text[5]
    assert "match 0.90" in points.text[5] and len(figure.data) >= 3  # partner lines and the ring


def test_meaning_search_loads_the_dictionarys_backbone_lazily_and_survives_a_missing_one():
    from cedar_hf.analysis.explorer import query_embedder

    model = _named_model()
    assert query_embedder("config", model) is None  # no config.backbone: names only
    model.config.backbone = "/nonexistent/backbone"
    embed = query_embedder("config", model)  # nothing loaded yet: startup stays fast
    explorer = ConceptExplorer(prepare_explorer_data(model, _dataset(), progress=False, cache_dir=False), embed)
    assert explorer.search("horse")[0][:2] == [5, "horse"]  # the failed load switches meaning search off
    assert explorer.embed_query is None
