"""The user-study kit: seeded tasks with the key kept apart, answers stored as given, the analysis of known answers."""

import json

import numpy as np
import pytest
import torch
from scipy import stats
from tiny_backbones import build_tiny_blip, build_tiny_clip, make_images

import cedar_hf
from builders import build_model
from cedar_hf.study import (analyze_study, answer_record, build_study, load_answers, load_tasks, make_tasks,
                            save_answer, write_study)
from cedar_hf.study.store import answered_tasks


def named(model, prefix):
    model.concept_names = {"format": "cedar-hf-concept-names/1", "names": [
        {"latent": i, "name": f"{prefix}{i}", "sign": 1, "score": 0.9, "opposite": {"name": f"{prefix}{i}-", "score": 0.8}}
        for i in range(model.config.n_latents)]}
    return model


@pytest.fixture(scope="module")
def clip_dictionaries(tmp_path_factory):
    path = build_tiny_clip(tmp_path_factory.mktemp("clip"))
    backbone = cedar_hf.load_backbone(path)
    images = make_images(10)
    x = backbone.embed_images(images)["image_embeds"]
    cedar = named(build_model("cedar", d_in=16, k=5, init_std=0.3), "alpha")
    cedar.set_mean(x.mean(0))
    sae = named(build_model("relu_sae", d_in=16, expansion_factor=4), "beta")
    sae.set_normalization(*sae.compute_normalization(x))
    return backbone, images, {"cedar": cedar.eval(), "msae": sae.eval()}


def test_build_writes_public_tasks_and_a_separate_seeded_key(tmp_path, clip_dictionaries):
    backbone, images, dictionaries = clip_dictionaries
    out = build_study(tmp_path / "s", images, dictionaries=dictionaries, backbone=backbone, n_tasks=8, seed=3)
    tasks = load_tasks(out / "public")
    key = json.loads((out / "key.json").read_text())
    assert len(tasks) == 16 and {t["study"] for t in tasks} == {1, 2}
    public_text = (out / "public" / "tasks.json").read_text()
    shown = json.dumps(tasks)
    assert "cedar" not in shown and "msae" not in shown  # nothing participants see names a method
    assert sorted(p.name for p in (out / "public" / "images").iterdir()) == sorted(f"{t['task']}.png" for t in tasks)
    assert not (out / "public" / "key.json").exists()
    for task in tasks:
        entry = key["tasks"][task["task"]]
        if task["study"] == 1:  # each list is the named method's top-5 explanation of the image
            assert len(task["options"]) == 2 and all(len(o) == 5 for o in task["options"])
            for option, methods in zip(task["options"], entry["options"]):
                assert all(name.startswith({"cedar": "alpha", "msae": "beta"}[methods[0]]) for name in option)
        else:
            assert len(task["options"]) == 6 and sorted(m for ms in entry["options"] for m in ms) == ["cedar"] * 3 + ["msae"] * 3
    a_methods = [key["tasks"][t["task"]]["options"][0][0] for t in tasks if t["study"] == 1]
    assert set(a_methods) == {"cedar", "msae"}  # A is drawn per task, not fixed
    again = build_study(tmp_path / "t", images, dictionaries=dictionaries, backbone=backbone, n_tasks=8, seed=3)
    assert (again / "public" / "tasks.json").read_text() == public_text  # same seed, same study
    assert json.loads((again / "key.json").read_text()) == key
    other = build_study(tmp_path / "u", images, dictionaries=dictionaries, backbone=backbone, n_tasks=8, seed=4)
    assert json.loads((other / "key.json").read_text())["tasks"] != key["tasks"]


def test_study2_shows_a_shared_word_once_and_credits_both():
    names = [{"cedar": ["dog", "grass", "ball", "x", "y"], "msae": ["dog", "sky", "tree", "z", "w"]}]
    tasks, key = make_tasks(2, names, seed=0, pairs=[("cedar", "msae")])
    assert sorted(tasks[0]["options"]) == ["ball", "dog", "grass", "sky", "tree"]
    credited = dict(zip(tasks[0]["options"], key[tasks[0]["task"]]["options"]))
    assert sorted(credited["dog"]) == ["cedar", "msae"] and credited["sky"] == ["msae"]


def test_study3_captions_dense_and_sparse_with_the_key(tmp_path):
    backbone = cedar_hf.load_backbone(build_tiny_blip(tmp_path / "blip"))
    images = make_images(3)
    tokens = backbone.embed_images(images, sites=("vision_tokens",))["vision_tokens"].reshape(-1, 32)
    lossless = build_model("cedar", d_in=32, k=32, init_std=0.3)
    lossless.set_mean(tokens.mean(0))
    norot = build_model("no_rotation", d_in=32, k=1)
    with torch.no_grad():
        norot.b.copy_(tokens.mean(0))
    out = build_study(tmp_path / "s3", images, caption_dictionaries={"cedar": lossless, "no-rotation": norot},
                      caption_backbone=backbone, studies=(3,), n_tasks=None, caption_kwargs={"max_new_tokens": 6})
    tasks, key = load_tasks(out / "public"), json.loads((out / "key.json").read_text())["tasks"]
    dense = backbone.caption(images, max_new_tokens=6)
    for task in tasks:
        by_method = {ms[0]: caption for ms, caption in zip(key[task["task"]]["options"], task["options"])}
        i = key[task["task"]]["image"]
        assert by_method["dense"] == dense[i]
        assert by_method["cedar"] == dense[i]  # k = D: CEDAR is lossless, so its caption is the dense one
    assert any(by_method["no-rotation"] != dense[i] for i in range(3) for by_method in [
        {ms[0]: c for ms, c in zip(key[t["task"]]["options"], t["options"])} for t in tasks if key[t["task"]]["image"] == i])


def test_answers_are_checked_stored_atomically_and_load_as_a_dataset(tmp_path, monkeypatch):
    task1 = {"task": "s1-000", "study": 1, "options": [["a"] * 5, ["b"] * 5], "scale": list(range(5))}
    task3 = {"task": "s3-000", "study": 3, "options": ["x", "y", "z"], "scale": [1, 2, 3]}
    with pytest.raises(ValueError, match="choice=7"):
        answer_record("p1", task1, choice=7)
    with pytest.raises(ValueError, match=r"ratings=\[1, 4, 2\]"):
        answer_record("p1", task3, ratings=[1, 4, 2])
    with pytest.raises(ValueError, match="participant id 'a/b'"):
        answer_record("a/b", task1, choice=0)
    first = save_answer(tmp_path, answer_record("p1", task1, choice=0))
    save_answer(tmp_path, answer_record("p1", task3, ratings=[3, 2, 1]))
    import cedar_hf.study.store as store

    monkeypatch.setattr(store.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk died")))
    with pytest.raises(RuntimeError):
        save_answer(tmp_path, answer_record("p1", task1, choice=4))  # a crash while rewriting the same answer
    monkeypatch.undo()
    assert json.loads(first.read_text())["choice"] == 0  # the earlier answer is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "p1__s1-000.json", "p1__s3-000.json"]  # no temp files
    import datasets

    plain = datasets.load_dataset(str(tmp_path), split="train")  # the folder is a datasets folder as it is
    assert plain.num_rows == 2 and sorted(plain["choice"]) == [-1, 0]
    assert answered_tasks(tmp_path, "p1") == {"s1-000", "s3-000"}
    data = load_answers(tmp_path)
    assert data.num_rows == 2 and set(data.column_names) == {"participant", "task", "study", "choice", "selected",
                                                              "ratings", "time"}
    assert sorted(data["ratings"], key=len) == [[], [3, 2, 1]]


def _known_study(tmp_path, n_images=8):
    names = [{"cedar": [f"c{i}-{j}" for j in range(5)], "msae": [f"m{i}-{j}" for j in range(5)]} for i in range(n_images)]
    captions = [{"dense": f"dense {i}", "cedar": f"cedar {i}", "no-rotation": f"norot {i}"} for i in range(n_images)]
    tasks, key = [], {}
    for study, items, pairs in ((1, names, [("cedar", "msae")]), (2, names, [("cedar", "msae")]), (3, captions, None)):
        t, k = make_tasks(study, items, seed=0, pairs=pairs)
        tasks, key = tasks + t, {**key, **k}
    return write_study(tmp_path / "study", make_images(n_images), tasks, key, {"seed": 0}), tasks, key


def answer_like(task, entry, participant, cedar_fan=True):
    """A participant who strongly prefers CEDAR, selects exactly CEDAR's concepts, rates dense/cedar 3, the rest 1."""
    if task["study"] == 1:
        return answer_record(participant, task, choice=0 if entry["options"][0] == ["cedar"] else 4)
    if task["study"] == 2:
        return answer_record(participant, task, selected=[i for i, ms in enumerate(entry["options"]) if "cedar" in ms])
    return answer_record(participant, task, ratings=[3 if ms[0] in ("dense", "cedar") else 1 for ms in entry["options"]])


def test_analysis_derandomises_known_answers(tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    out, tasks, key = _known_study(tmp_path)
    for p in ("p1", "p2", "p3"):
        for task in tasks:
            save_answer(out / "answers", answer_like(task, key[task["task"]], p))
    # a fourth participant answers study 1 "equally" everywhere: ties, dropped by the sign test
    for task in tasks:
        if task["study"] == 1:
            save_answer(out / "answers", answer_record("p4", task, choice=2))
    result = analyze_study(out)
    s1 = result["study1"]["cedar vs msae"]
    assert s1["counts"] == [24, 0, 8, 0, 0] and s1["answers"] == 32 and s1["participants"] == 4
    assert s1["sign_test"]["p"] == pytest.approx(2 * 0.5 ** 24)  # 24 of 24 non-tied answers prefer CEDAR

    assert s1["sign_test"]["ci95"] == pytest.approx([0.025 ** (1 / 24), 1.0])  # Clopper-Pearson for 24/24
    assert s1["wilcoxon_participant_means"]["nonzero"] == 3
    s2 = result["study2"]["cedar vs msae"]
    assert s2["distribution"] == {"cedar": [0, 0, 0, 24], "msae": [24, 0, 0, 0]}
    assert s2["selection_rate_cedar"] == 1.0 and s2["selection_rate_msae"] == 0.0
    assert s2["wilcoxon"]["p"] == pytest.approx(stats.wilcoxon([3] * 24).pvalue)
    s3 = result["study3"]
    assert s3["distribution"] == {"cedar": [0, 0, 24], "dense": [0, 0, 24], "no-rotation": [24, 0, 0]}
    assert s3["mean"] == {"cedar": 3.0, "dense": 3.0, "no-rotation": 1.0}
    assert s3["wilcoxon"]["cedar vs dense"]["p"] is None  # identical ratings: no test
    assert s3["wilcoxon"]["cedar vs no-rotation"]["p"] < 1e-4
    analysis = out / "analysis"
    for name in ("figure5_cedar-vs-msae.png", "figure6_cedar-vs-msae.png", "figure7.png", "report.md", "analysis.json"):
        assert (analysis / name).stat().st_size > 100
    cli = CliRunner().invoke(app, ["study", "analyze", str(out), "-o", str(tmp_path / "again")])
    assert cli.exit_code == 0, cli.output
    assert "| strongly cedar | 24 | 0.75 |" in cli.output and (tmp_path / "again" / "figure7.png").exists()
    bad = CliRunner().invoke(app, ["study", "analyze", str(tmp_path)])
    assert bad.exit_code != 0 and "no key.json" in bad.output


def test_cli_build_refuses_bad_model_specs(tmp_path):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    result = CliRunner().invoke(app, ["study", "build", str(tmp_path), "-m", "cedar"])
    assert result.exit_code != 0
    assert "Examples" in CliRunner().invoke(app, ["study", "build", "-h"]).output
