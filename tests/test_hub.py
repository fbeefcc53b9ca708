"""The Hub: from_pretrained from a Hub id (offline cache), push_to_hub at the upload boundary, model/dataset cards."""

import contextlib
import io
import json
import logging
from pathlib import Path
import re
import shutil

import datasets
import httpx
from huggingface_hub import DatasetCard, HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError
import pytest
import torch
from transformers import AutoModel

import cedar_hf
from cedar_hf.hub import push as hub  # the module that calls huggingface_hub (monkeypatched below)
from cedar_hf.hub.cards import MISSING

from builders import build_model

TOKEN = "hf_SECRETtoken1234567890abcdef"


def named_model(d: int = 24, **overrides):
    model = build_model("cedar", d_in=d, backbone="openai/clip-vit-base-patch32", embedding_site="image_embeds",
                        training_data={"dataset": "user/coco-clip-embeddings", "rows": 1000}, **overrides)
    model.set_mean(torch.randn(d))
    model.concept_names = {
        "format": "cedar-hf-concept-names/1", "vocabulary": "test words", "prompt": None,
        "names": [{"latent": i, "name": f"concept{i}", "score": 0.5, "alternatives": [[f"concept{i}", 0.5]]}
                  for i in range(d)],
    }
    return model


# the shape `cedar-hf evaluate --save-in-models` writes (context, protocol, matched rows); values made up
EVALUATION = {
    "n_eval": 500, "d_in": 24, "n_train": 0, "tolerance": 0.005, "cknna_k": 10, "n_latents": 24,
    "protocol": {"name": "msae", "summary": "MSAE's scoring as the CEDAR paper's Table 1 used it"},
    "matched": [
        {"target": 0.25, "reached": True, "tau": 0.1, "fvu": 0.2502, "K": 7.5, "IC": 20.1, "CS": 0.93, "CKNNA": 0.61,
         "dead_latents": 0, "dead_fraction": 0.0},
        {"target": 0.1, "reached": False, "tau": 0.0, "min_fvu": 0.18},
    ],
}


@pytest.fixture
def model_folder(tmp_path):
    model = named_model()
    folder = tmp_path / "trained"
    model.save_pretrained(folder)
    (folder / "evaluation.json").write_text(json.dumps(EVALUATION))
    (folder / "metrics.json").write_text(json.dumps({"train/loss": 1.25, "steps": 300, "eval/fvu": 0.3}))
    (folder / "training_args.json").write_text(json.dumps({"batch_size": 1024, "learning_rate": 0.001}))
    return folder


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """Replace the two Hub calls; record what they were given and copy the uploaded folder."""
    calls = {"create_repo": [], "upload_folder": [], "uploaded": tmp_path / "uploaded"}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"].append((repo_id, kwargs, self.token))

    def upload_folder(self, **kwargs):
        calls["upload_folder"].append(kwargs)
        shutil.copytree(kwargs["folder_path"], calls["uploaded"], dirs_exist_ok=True)
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_from_pretrained_hub_id_from_offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = named_model()
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--user--repo"
    model.save_pretrained(repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    for cls in (cedar_hf.CedarModel, AutoModel):
        loaded = cls.from_pretrained("user/repo", cache_dir=str(tmp_path / "cache"))
        assert isinstance(loaded, cedar_hf.CedarModel)
        torch.testing.assert_close(loaded.rotation, model.rotation)
        assert loaded.concept_labels == model.concept_labels


def test_from_pretrained_hub_id_with_hf_hub_cache_env(tmp_path):
    """The same from a fresh process that finds the cache through HF_HUB_CACHE (read at import time)."""
    import os
    import subprocess
    import sys

    model = named_model()
    sha = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--someone--cedar"
    model.save_pretrained(repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    code = ("import cedar_hf; from transformers import AutoModel; "
            "m = AutoModel.from_pretrained('someone/cedar'); print(type(m).__name__, m.concept_labels[5])")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["CedarModel", "concept5"]


def test_push_uploads_exactly_the_expected_files_and_card(model_folder, fake_hub):
    model = cedar_hf.CedarModel.from_pretrained(model_folder)
    result = model.push_to_hub("user/cedar-clip", token=TOKEN, private=True, commit_message="first")
    assert result == "commit-info"
    assert [(r, kw["private"], kw["exist_ok"]) for r, kw, _ in fake_hub["create_repo"]] == [("user/cedar-clip", True, True)]
    assert fake_hub["create_repo"][0][2] == TOKEN  # handed to huggingface_hub, nowhere else
    (upload,) = fake_hub["upload_folder"]
    assert upload["repo_id"] == "user/cedar-clip" and upload["commit_message"] == "first"
    uploaded = fake_hub["uploaded"]
    assert sorted(p.name for p in uploaded.iterdir()) == sorted([
        "README.md", "config.json", "model.safetensors", "concept_names.json",
        "evaluation.json", "metrics.json", "training_args.json",
    ])
    again = AutoModel.from_pretrained(uploaded)
    torch.testing.assert_close(again.rotation, model.rotation)
    assert again.concept_names == model.concept_names
    card = (uploaded / "README.md").read_text()
    assert not re.search(r"{{|}}|{%|%}", card)
    assert "concept0" in card and "training data: rows | 1000" in card
    assert "| 0.25 | 0.2502 | 7.5 | 20.1 | 0.93 | 0.61 | — | — | 0 |" in card  # the matched-FVU table
    assert "| 0.1 | not reached (lowest FVU 0.18) |" in card and "protocol `msae`" in card
    assert "| FVU | 0.3 |" in card and "train/loss" not in card  # held-out numbers, not the loop's bookkeeping


def test_card_metadata_passes_hub_card_parsing(model_folder):
    model = cedar_hf.CedarModel.from_pretrained(model_folder)
    card = hub.render_model_card(model, "user/cedar-clip", embeddings=torch.randn(200, 24))
    parsed = ModelCard(str(card))  # parses the YAML and the model-index as the Hub library does
    data = parsed.data.to_dict()
    assert data["library_name"] == "cedar-hf"
    assert data["base_model"] == "openai/clip-vit-base-patch32"
    assert data["datasets"] == ["user/coco-clip-embeddings"]
    assert {"cedar-hf", "cedar", "image-embeds"} <= set(data["tags"])
    assert data["pipeline_tag"] == "feature-extraction"
    values = {r.metric_name: r.metric_value for r in parsed.data.eval_results}
    # real metrics only, at the target reached, with the protocol: no sizes, settings or training bookkeeping
    assert values == {"K at FVU 0.25": 7.5, "IC at FVU 0.25": 20.1, "CS at FVU 0.25": 0.93,
                      "CKNNA at FVU 0.25": 0.61, "dead_fraction at FVU 0.25": 0.0}
    assert {r.metric_config for r in parsed.data.eval_results} == {"protocol=msae, target_fvu=0.25"}
    assert sorted(data["metrics"]) == ["cknna", "cs", "dead_fraction", "ic", "k"]
    assert {r.dataset_name for r in parsed.data.eval_results} == {"user/coco-clip-embeddings"}
    assert ModelCard(str(parsed)).data.to_dict() == data  # round trip
    # the 20 highest-energy concepts, ranked by mean |code| over the given embeddings
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (concept\d+) \| ([\d.]+) \|", str(card), flags=re.M)
    assert [int(r[0]) for r in rows] == list(range(1, 21))
    energies = [float(r[3]) for r in rows]
    assert energies == sorted(energies, reverse=True) and all(r[2] == f"concept{r[1]}" for r in rows)


def test_card_marks_weak_names():
    model = named_model()
    for entry in model.concept_names["names"][:3]:
        entry.update(score=0.12, weak=True)
    card = str(hub.render_model_card(model, "user/cedar-clip"))
    weak = re.findall(r"^\| \d+ \| (\d+) \| concept\d+ \*\(weak\)\* \|", card, flags=re.M)
    assert sorted(int(latent) for latent in weak) == [0, 1, 2]  # only the three below the threshold
    assert "concept3 |" in card


def test_card_says_what_is_missing(tmp_path):
    model = build_model("topk_sae", d_in=16)  # no backbone, no names, no metrics, no dataset
    text = str(hub.render_model_card(model))
    assert MISSING in text and "energies are [More Information Needed]" in text
    assert not re.search(r"{{|}}|{%|%}", text)
    data = ModelCard(text).data.to_dict()
    assert data["library_name"] == "cedar-hf" and "base_model" not in data and "datasets" not in data


def test_usage_snippet_in_the_card_runs(model_folder):
    model = cedar_hf.CedarModel.from_pretrained(model_folder)
    card = str(hub.render_model_card(model, "user/cedar-clip"))
    snippet = re.search(r"```python\n(.*?)```", card, flags=re.S).group(1)
    snippet = snippet.replace('"user/cedar-clip"', repr(str(model_folder)))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "card-snippet", "exec"), {})
    lines = out.getvalue().strip().splitlines()[1:]  # after the table's header
    assert len(lines) == model.config.k and all(re.search(r"concept\d+ +[+-]\d", line) for line in lines)


def test_push_without_a_token_fails_clearly(model_folder, fake_hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "get_token", lambda: None)
    model = cedar_hf.CedarModel.from_pretrained(model_folder)
    with pytest.raises(hub.HubPushError, match="No Hugging Face token"):
        model.push_to_hub("user/cedar-clip")
    assert fake_hub["create_repo"] == [] and fake_hub["upload_folder"] == []
    with pytest.raises(ValueError, match="owner/name"):
        model.push_to_hub("no-slash", token=TOKEN)


def test_push_to_a_repo_without_write_access_fails_clearly_and_hides_the_token(model_folder, monkeypatch, caplog, capsys):
    def forbidden(self, repo_id, **kwargs):
        request = httpx.Request("POST", "https://huggingface.co/api/repos/create")
        response = httpx.Response(403, request=request, headers={"x-request-id": "abc"})
        raise HfHubHTTPError(f"403 Forbidden for token {TOKEN}", response=response)

    monkeypatch.setattr(HfApi, "create_repo", forbidden)
    model = cedar_hf.CedarModel.from_pretrained(model_folder)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(hub.HubPushError, match=r"cannot write to the model repository 'someone/else' \(HTTP 403\)") as info:
        model.push_to_hub("someone/else", token=TOKEN)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    captured = capsys.readouterr()
    assert TOKEN not in str(info.value) + caplog.text + captured.out + captured.err


def test_push_embedding_dataset_with_card(tmp_path, monkeypatch, fake_hub):
    pushed = {}
    monkeypatch.setattr(datasets.Dataset, "push_to_hub",
                        lambda self, repo_id, **kw: pushed.update(repo_id=repo_id, rows=len(self), **kw))
    ds = datasets.Dataset.from_dict({
        "embedding": torch.randn(30, 8).tolist(), "id": [str(i) for i in range(30)],
        "modality": ["image"] * 15 + ["text"] * 15, "text": [""] * 15 + [f"t{i}" for i in range(15)],
    })
    folder = tmp_path / "emb"
    ds.save_to_disk(str(folder))
    meta = {"backbone": "openai/clip-vit-base-patch32", "site": "image_embeds", "dim": 8, "dtype": "float32",
            "count": 30}
    (folder / "cedar_metadata.json").write_text(json.dumps(meta))
    hub.push_embeddings_to_hub(str(folder), "user/emb", token=TOKEN, private=False, source="user/coco")
    assert pushed["repo_id"] == "user/emb" and pushed["rows"] == 30 and pushed["token"] == TOKEN
    (upload,) = fake_hub["upload_folder"]
    assert upload["repo_type"] == "dataset"
    files = {p.name for p in fake_hub["uploaded"].iterdir()}
    assert files == {"README.md", "cedar_metadata.json"}
    text = (fake_hub["uploaded"] / "README.md").read_text()
    assert not re.search(r"{{|}}|{%|%}", text)
    data = DatasetCard(text).data.to_dict()
    assert data["source_datasets"] == ["user/coco"] and data["size_categories"] == ["n<1K"]
    assert {"cedar-hf", "embeddings", "image", "text"} <= set(data["tags"])
    assert "| Rows | 30 |" in text and "| Embedding dimension | 8 |" in text


def test_packaged_card_templates_match_the_repository_ones():
    top = Path(__file__).resolve().parents[1] / "model_cards"
    packaged = Path(cedar_hf.__file__).parent / "resources" / "model_cards"
    names = sorted(p.name for p in top.glob("*.md"))
    assert names == ["dataset_card.md", "dictionary_card.md"]
    for name in names:  # the wheel ships the copies: keep them identical (cp model_cards/*.md cedar_hf/resources/model_cards/)
        assert (top / name).read_text() == (packaged / name).read_text(), name


def test_push_command(model_folder, fake_hub, monkeypatch):
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    result = CliRunner().invoke(app, ["push", "user/cli-push", "-m", str(model_folder), "--token", TOKEN, "--private"])
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    assert fake_hub["create_repo"][0][0] == "user/cli-push" and fake_hub["create_repo"][0][1]["private"] is True
    assert (fake_hub["uploaded"] / "README.md").exists()
    monkeypatch.setattr(hub, "get_token", lambda: None)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    failed = CliRunner().invoke(app, ["push", "user/cli-push", "-m", str(model_folder)])
    assert failed.exit_code == 1 and "No Hugging Face token" in failed.output


def test_card_of_a_real_evaluation_and_no_local_paths(tmp_path):
    """`cedar-hf evaluate --save-in-models` then `push --dry-run`: the model-index is that evaluation's matched
    table; a local backbone path and dataset folder appear only as folder names, in the card and config.json."""
    import datasets
    from typer.testing import CliRunner

    from cedar_hf.cli import app

    x = torch.randn(400, 12, generator=torch.Generator().manual_seed(3))
    datasets.Dataset.from_dict({"embedding": x.numpy()}).save_to_disk(str(tmp_path / "emb"))
    local_backbone = str(tmp_path / "models" / "my-encoder")
    model = cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=12, k=4, init_std=0.2, backbone=local_backbone,
                                                     training_data={"dataset": str(tmp_path / "emb")}))
    model.set_mean(x.mean(0))
    model.save_pretrained(tmp_path / "run")
    runner = CliRunner()
    evaluated = runner.invoke(app, ["evaluate", "-m", str(tmp_path / "run"), "-d", str(tmp_path / "emb"),
                                    "--targets", "0.3", "0.6", "-o", str(tmp_path / "eval"), "--save-in-models"])
    assert evaluated.exit_code == 0, evaluated.output
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    result = runner.invoke(app, ["push", "user/tiny", "-m", str(tmp_path / "run"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path) not in result.output and "my-encoder" in result.output
    card = ModelCard(result.output.split("\n\nwould push to")[0])
    names = {r.metric_name: r.metric_value for r in card.data.eval_results}
    for row in evaluation["matched"]:  # CEDAR reaches every target in (0, 1): each is in the model-index
        assert names[f"K at FVU {row['target']:g}"] == pytest.approx(row["K"])
        assert names[f"CS at FVU {row['target']:g}"] == pytest.approx(row["CS"])
    assert not [n for n in names if n.split()[0] in ("d_in", "n_latents", "tolerance", "cknna_k", "n_train")]
    staged = tmp_path / "staged"
    hub.stage_dictionary(cedar_hf.CedarModel.from_pretrained(tmp_path / "run"), staged, "user/tiny")
    assert sorted(p.name for p in staged.iterdir()) == ["README.md", "config.json", "evaluation.json",
                                                       "model.safetensors"]
    for name in ("README.md", "config.json", "evaluation.json"):
        assert str(tmp_path) not in (staged / name).read_text(), name
    assert json.loads((staged / "config.json").read_text())["backbone"] == "my-encoder"
    dataset_plan = runner.invoke(app, ["push", "user/tiny-emb", "-d", str(tmp_path / "emb"), "--dry-run"])
    assert dataset_plan.exit_code == 0 and "would push to the dataset repository user/tiny-emb" in dataset_plan.output
    assert "README.md" in dataset_plan.output and "dataset_info.json" in dataset_plan.output

    from cedar_hf.hub.cards import public_config

    with public_config(model.config):
        assert model.config.backbone == "my-encoder" and model.config.training_data == {"dataset": "emb"}
    assert model.config.backbone == local_backbone  # restored after the block
