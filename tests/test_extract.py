"""Extraction to `datasets`: same vectors as the backbone, resumable without losing or duplicating a row."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_backbones import build_tiny_blip, build_tiny_clip, make_image_folder, make_images

import cedar_hf
from cedar_hf.data import embedding_matrix, extract_embeddings, load_embeddings, read_metadata

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return cedar_hf.load_backbone(build_tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture
def folder(tmp_path):
    return Path(make_image_folder(tmp_path / "images", n=11))


def direct(backbone, folder: Path, ids, site="image_embeds"):
    images = [Image.open(folder / i).convert("RGB") for i in ids]
    return backbone.embed_images(images, sites=(site,))[site]


@pytest.mark.parametrize("site", ["image_embeds", "vision_tokens"])
def test_folder_to_disk_and_back_equals_the_backbone(clip, folder, tmp_path, site):
    out = tmp_path / "emb"
    extract_embeddings(clip, folder, out, site=site, batch_size=3, shard_size=4)
    dataset = load_embeddings(out)
    ids = dataset["id"]
    assert sorted(ids) == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    torch.testing.assert_close(embedding_matrix(dataset, flatten_tokens=False), direct(clip, folder, ids, site))
    assert set(dataset["modality"]) == {"image"}
    assert dataset.features["label"].names == ["cats", "dogs"]
    assert [dataset.features["label"].int2str(label) for label in dataset["label"]] == [i.split("/")[0] for i in ids]
    meta = read_metadata(out)
    assert (meta["backbone"], meta["site"], meta["count"], meta["dtype"]) == (clip.name_or_path, site, 11, "float32")
    assert meta["dim"] == clip.site_dims[site] and meta["skipped"] == []
    flat = embedding_matrix(dataset, flatten_tokens=False).reshape(-1, meta["dim"])
    np.testing.assert_allclose(meta["mean"], flat.mean(0).numpy(), atol=1e-6)
    if site == "vision_tokens":
        assert meta["tokens_per_row"] == 17
        assert load_embeddings(out, format="torch")[:2]["embedding"].shape == (2, 17, 32)
    assert not out.with_name("emb.partial").exists()


def test_texts_with_labels_and_prompt_from_a_dataset(clip, tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    texts = ["dog", "cat", "red car", "blue sky", "a tree"]
    data = Dataset.from_dict({"text": texts, "label": [0, 0, 1, 1, 0]},
                             features=Features({"text": Value("string"), "label": ClassLabel(names=["animal", "thing"])}))
    data.save_to_disk(str(tmp_path / "source"))
    dataset = extract_embeddings(clip, str(tmp_path / "source"), tmp_path / "emb", site="text_embeds",
                                 prompt="a photo of {}", shard_size=2)
    assert dataset["text"] == texts and dataset["id"] == ["0", "1", "2", "3", "4"]
    assert dataset["label"] == [0, 0, 1, 1, 0] and dataset.features["label"].names == ["animal", "thing"]
    torch.testing.assert_close(embedding_matrix(dataset, flatten_tokens=False), clip.embed_texts(texts, prompt="a photo of {}"))
    assert read_metadata(tmp_path / "emb")["modality"] == "text"


def test_image_dataset_with_ids_and_unreadable_rows(clip, tmp_path):
    from datasets import Dataset, DatasetDict, Features, Image as ImageFeature, Value

    images = make_images(5)
    blobs = []
    for image in images:
        path = tmp_path / f"{len(blobs)}.png"
        image.save(path)
        blobs.append({"bytes": path.read_bytes(), "path": None})
    blobs[3] = {"bytes": b"broken", "path": None}
    data = Dataset.from_dict({"image": blobs, "id": [f"img-{i}" for i in range(5)]},
                             features=Features({"image": ImageFeature(), "id": Value("string")}))
    DatasetDict({"validation": data}).save_to_disk(str(tmp_path / "source"))
    dataset = extract_embeddings(clip, str(tmp_path / "source"), tmp_path / "emb", split="validation", shard_size=2)
    assert dataset["id"] == ["img-0", "img-1", "img-2", "img-4"]
    good = [images[i] for i in (0, 1, 2, 4)]
    torch.testing.assert_close(embedding_matrix(dataset, flatten_tokens=False), clip.embed_images(good)["image_embeds"])
    skipped = read_metadata(tmp_path / "emb")["skipped"]
    assert [entry["id"] for entry in skipped] == ["img-3"] and "UnidentifiedImageError" in skipped[0]["error"]
    with pytest.raises(ValueError, match="image 'img-3' could not be read"):
        extract_embeddings(clip, str(tmp_path / "source"), tmp_path / "strict", split="validation", on_error="raise")
    with pytest.raises(ValueError, match="split='test' not in the source"):
        extract_embeddings(clip, str(tmp_path / "source"), tmp_path / "other", split="test")


def test_injected_failure_then_rerun_gives_every_id_once(clip, folder, tmp_path, monkeypatch):
    reference = extract_embeddings(clip, folder, tmp_path / "reference", shard_size=3, batch_size=2)
    out = tmp_path / "emb"
    original, calls = clip.embed_images, {"n": 0}

    def failing(images, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the middle of the second shard (batches of 2 in shards of 3)
            raise RuntimeError("power cut")
        return original(images, **kwargs)

    monkeypatch.setattr(clip, "embed_images", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        extract_embeddings(clip, folder, out, shard_size=3, batch_size=2)
    partial = tmp_path / "emb.partial"
    assert sorted(p.name for p in partial.glob("shard-*")) == ["shard-00000"]
    assert not out.exists()
    monkeypatch.setattr(clip, "embed_images", original)
    dataset = extract_embeddings(clip, folder, out, shard_size=3, batch_size=2)
    assert sorted(dataset["id"]) == sorted(reference["id"]) and len(set(dataset["id"])) == len(dataset) == 11
    torch.testing.assert_close(embedding_matrix(dataset, flatten_tokens=False), embedding_matrix(reference, flatten_tokens=False))
    assert not partial.exists()


def test_finished_output_is_returned_plan_mismatch_and_overwrite(clip, folder, tmp_path):
    out = tmp_path / "emb"
    first = extract_embeddings(clip, folder, out, shard_size=4)
    again = extract_embeddings(clip, folder, out, shard_size=4)  # no work: the finished dataset comes back
    assert again["id"] == first["id"]
    (tmp_path / "x.partial").mkdir()
    (tmp_path / "x.partial" / "plan.json").write_text(json.dumps({"shard_size": 99}))
    with pytest.raises(ValueError, match="different settings"):
        extract_embeddings(clip, folder, tmp_path / "x", shard_size=4)
    redone = extract_embeddings(clip, folder, tmp_path / "x", shard_size=4, max_samples=5, overwrite=True)
    assert len(redone) == 5
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not a finished"):
        extract_embeddings(clip, folder, tmp_path / "busy")
    with pytest.raises(ValueError, match="no site 'pooled'"):
        extract_embeddings(clip, folder, tmp_path / "bad", site="pooled")


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import cedar_hf
from cedar_hf.data import extract_embeddings
backbone = cedar_hf.load_backbone({model!r})
original = backbone.embed_images
def slow(images, **kwargs):
    time.sleep(0.3)
    return original(images, **kwargs)
backbone.embed_images = slow
extract_embeddings(backbone, {folder!r}, {out!r}, shard_size=2, batch_size=1)
"""


@pytest.mark.slow
def test_killed_process_then_rerun_gives_every_id_once(clip, folder, tmp_path):
    out = tmp_path / "emb"
    script = KILL_SCRIPT.format(tests=str(TESTS), model=clip.name_or_path, folder=str(folder), out=str(out))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    partial = tmp_path / "emb.partial"
    deadline = time.time() + 120
    while not list(partial.glob("shard-*")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.kill()
    process.wait()
    done = sorted(p.name for p in partial.glob("shard-*"))
    assert 1 <= len(done) < 6, process.stderr.read().decode()[-2000:]  # killed midway, not before or after
    dataset = extract_embeddings(clip, folder, out, shard_size=2, batch_size=1)
    ids = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert sorted(dataset["id"]) == ids and len(dataset) == len(ids)
    torch.testing.assert_close(embedding_matrix(dataset, flatten_tokens=False), direct(clip, folder, dataset["id"]))


def test_cli_extract(tmp_path, folder, clip):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    runner = CliRunner()
    help_text = runner.invoke(app, ["extract", "--help"]).output
    for option in ("--backbone", "--site", "--shard-size", "--on-error", "--overwrite", "vision_tokens"):
        assert option in help_text
    result = runner.invoke(app, ["extract", str(folder), "-b", clip.name_or_path, "-o", str(tmp_path / "emb"),
                                 "--site", "vision_tokens", "--shard-size", "5"])
    assert result.exit_code == 0, result.output
    assert "11 image embeddings (vision_tokens, 17x32)" in result.output
    assert read_metadata(tmp_path / "emb")["count"] == 11
    bad = runner.invoke(app, ["extract", str(folder), "-b", clip.name_or_path, "-o", str(tmp_path / "x"), "--site", "nope"])
    assert bad.exit_code != 0 and "--site 'nope'" in bad.output


def test_blip_vision_tokens_extraction(tmp_path):
    backbone = cedar_hf.load_backbone(build_tiny_blip(tmp_path / "blip"))
    folder = Path(make_image_folder(tmp_path / "images", n=4, classes=()))
    dataset = extract_embeddings(backbone, folder, tmp_path / "emb", site="vision_tokens")
    assert "label" not in dataset.column_names
    torch.testing.assert_close(embedding_matrix(dataset, flatten_tokens=False), direct(backbone, folder, dataset["id"], "vision_tokens"))


ACCELERATE_SCRIPT = """
import json, sys
from cedar_hf.data import extract_embeddings, process_state
import cedar_hf
state = process_state()
backbone = cedar_hf.load_backbone({model!r}, device=state.device)
original, seen = backbone.embed_images, []
def counting(images, **kwargs):
    seen.append(len(images))
    return original(images, **kwargs)
backbone.embed_images = counting
dataset = extract_embeddings(backbone, {folder!r}, {out!r}, shard_size=2, batch_size=2)
# one report file a rank: two processes printing to one pipe can interleave their lines
with open({reports!r} + f"/rank-{{state.process_index}}.json", "w") as f:
    json.dump({{"rank": state.process_index, "world": state.num_processes, "embedded": sum(seen),
               "rows": len(dataset)}}, f)
"""


@pytest.mark.slow
def test_accelerate_two_processes_share_the_work_and_merge(clip, folder, tmp_path):
    out = tmp_path / "emb"
    script = tmp_path / "run.py"
    reports_dir = tmp_path / "reports"
    reports_dir.mkdir()
    script.write_text(ACCELERATE_SCRIPT.format(model=clip.name_or_path, folder=str(folder), out=str(out),
                                               reports=str(reports_dir)))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(p.read_text()) for p in sorted(reports_dir.glob("rank-*.json"))]
    assert [r["rank"] for r in reports] == [0, 1], result.stdout[-2000:]
    assert [r["world"] for r in reports] == [2, 2]
    assert [r["embedded"] for r in reports] == [6, 5]  # shards 0,2,4 (2+2+2 rows) and 1,3,5 (2+2+1 rows)
    assert all(r["rows"] == 11 for r in reports)
    dataset = load_embeddings(out)
    assert len(set(dataset["id"])) == len(dataset) == 11
    torch.testing.assert_close(embedding_matrix(dataset, flatten_tokens=False), direct(clip, folder, dataset["id"]))


def test_an_all_unreadable_shard_is_skipped_and_the_good_images_kept(clip, tmp_path):
    folder = Path(make_image_folder(tmp_path / "images", n=6))
    names = sorted(p.name for p in folder.rglob("*.png"))
    for name in names[2:4]:  # the whole second shard (shards of 2) is corrupt
        next(folder.rglob(name)).write_bytes(b"not an image")
    dataset = extract_embeddings(clip, folder, tmp_path / "emb", shard_size=2)
    assert len(dataset) == 4 and len(read_metadata(tmp_path / "emb")["skipped"]) == 2
    again = extract_embeddings(clip, folder, tmp_path / "emb", shard_size=2)  # a rerun returns the same
    assert again["id"] == dataset["id"]


def test_a_finished_output_of_another_backbone_is_refused_and_overwrite_replaces_only_on_success(
        clip, folder, tmp_path):
    out = tmp_path / "emb"
    first = extract_embeddings(clip, folder, out, shard_size=4)
    other = cedar_hf.load_backbone(build_tiny_clip(tmp_path / "other-clip", seed=1))
    with pytest.raises(ValueError, match="already holds other embeddings.*backbone"):
        extract_embeddings(other, folder, out, shard_size=4)
    with pytest.raises(ValueError, match="already holds other embeddings.*site"):
        extract_embeddings(clip, folder, out, site="vision_tokens")
    with pytest.raises(ValueError):  # a bad source with overwrite=True: the good output is kept
        extract_embeddings(other, tmp_path / "missing", out, overwrite=True)
    assert load_embeddings(out)["id"] == first["id"] and read_metadata(out)["backbone"] == clip.name_or_path
    redone = extract_embeddings(other, folder, out, shard_size=4, overwrite=True)
    assert read_metadata(out)["backbone"] == other.name_or_path and len(redone) == len(first)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".emb")]  # the old output was deleted


def test_site_is_inferred_and_the_backbone_recorded_by_id(tmp_path):
    from tiny_backbones import build_tiny_text_encoder

    from cedar_hf.backbones.text import minilm_path
    from cedar_hf.data.extraction import backbone_id, infer_site

    text = cedar_hf.load_backbone(build_tiny_text_encoder(tmp_path / "text"))
    (tmp_path / "words.txt").write_text("cat\ndog\nbird\n")
    dataset = extract_embeddings(text, tmp_path / "words.txt", tmp_path / "emb")  # no site given
    assert read_metadata(tmp_path / "emb")["site"] == "text_embeds" and dataset["text"] == ["cat", "dog", "bird"]
    assert infer_site(text, tmp_path / "images") == "text_embeds"  # a text-only backbone has no other site

    class Offline:  # the offline MiniLM lives in site-packages: recorded by its Hub id, which load_backbone takes
        name_or_path = minilm_path()
    assert backbone_id(Offline()) == "sentence-transformers/all-MiniLM-L6-v2"
