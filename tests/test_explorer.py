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
    # examples: the rows with the largest |activation| of concept 5, strongest first, with their texts
    values = [row[0] for row in examples]
    assert values == sorted(values, key=abs, reverse=True) and len(examples) == len(data.top_rows[5])
    for row, shown in zip(data.top_rows[5], examples):
        assert shown[2] == f"sentence {row}" and shown[1] == ("image" if row < 40 else "text")
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
    card, *_, concept = on_map_select(gr.SelectData(None, {"index": [float(x), float(y)], "value": None}))
    assert concept == 9 and card.startswith("## #9")


def test_search_and_row_callbacks(app):
    on_search = _callback(app, "on_search")
    hits, card, examples, *_rest, concept = on_search("horse")
    assert hits[0][0] == 5 and concept == 5 and "horse" in card and examples
    on_row_select = _callback(app, "on_row_select")
    event = gr.SelectData(None, {"index": [0, 1], "value": "x", "row_value": [12, "latent 12", 0.1, ""]})
    assert on_row_select(event)[-1] == 12


def test_without_modalities_shows_nearest_directions():
    model = build_model("cedar", d_in=12, k=3, init_std=0.3)
    explorer = ConceptExplorer(prepare_explorer_data(model, _dataset(with_modality=False), progress=False))
    assert explorer.data.scores is None and explorer.data.partners is None
    card, examples, _, partners, _, _ = explorer.show(2)
    assert "modality" not in card and len(examples[0]) == 2  # [activation, example]
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
