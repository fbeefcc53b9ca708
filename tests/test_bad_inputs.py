"""Every bad input of issue 15 gets a clear error naming the problem and the file, and nothing is written half:
ragged rows, folders of other models, truncated or empty files, a push without network or in offline mode, and
a launch that silently gives one process."""

from __future__ import annotations

import json
import os

import datasets
import httpx
import numpy as np
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import OfflineModeIsEnabled

import cedar_hf
from builders import build_model
from cedar_hf.auto import load_dictionary
from cedar_hf.hub import push as hub
from cedar_hf.training import TrainingArgs, train
from cedar_hf.training.resume import warn_if_fewer_processes


def _args(tmp_path, **overrides):
    return TrainingArgs(**{"output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 64, "report_to": "none",
                           "disable_tqdm": True, **overrides})


def test_ragged_embedding_rows_are_refused_with_their_ids(tmp_path):
    rows = [np.random.default_rng(i).standard_normal(16).tolist() for i in range(200)]
    rows[5], rows[130] = rows[5][:15], rows[130] + [0.0]  # the batch total can still be a multiple of 16
    data = datasets.Dataset.from_dict({"embedding": rows, "id": [f"r{i}" for i in range(200)]})
    with pytest.raises(ValueError, match=r"different lengths.*\[15, 17\].*ids: \['r5', 'r130'\]"):
        train(build_model("cedar", 16), data, _args(tmp_path))
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("model_class, saved, message", [
    (cedar_hf.CedarModel, "bert", r"holds a 'bert' model, not a cedar-hf dictionary"),
    (cedar_hf.TopKSAE, "cedar", r"holds a 'cedar' dictionary, not a 'topk_sae' \(TopKSAE\); load it with CedarModel"),
])
def test_from_pretrained_refuses_a_folder_of_another_model(tmp_path, model_class, saved, message):
    from transformers import BertConfig, BertModel

    folder = tmp_path / saved
    if saved == "bert":
        BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16)).save_pretrained(folder)
    else:
        build_model("cedar", 16).save_pretrained(folder)
    with pytest.raises(ValueError, match=message):
        model_class.from_pretrained(folder)


def test_the_base_class_loads_the_saved_architecture(tmp_path):
    build_model("topk_sae", 16).save_pretrained(tmp_path / "topk")
    assert isinstance(cedar_hf.DictionaryPreTrainedModel.from_pretrained(tmp_path / "topk"), cedar_hf.TopKSAE)


def test_damaged_files_are_named(tmp_path):
    folder = tmp_path / "model"
    build_model("cedar", 16).save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"weights in '{folder}'.*truncated or corrupt"):
        cedar_hf.CedarModel.from_pretrained(folder)
    with pytest.raises(ValueError, match=rf"{folder}.*truncated or corrupt"):
        load_dictionary(folder)

    named = tmp_path / "named"
    build_model("cedar", 16).save_pretrained(named)
    (named / "concept_names.json").write_text("")
    with pytest.raises(ValueError, match=r"concept names file '.*concept_names.json' is empty"):
        load_dictionary(named)
    (named / "config.json").write_text("")
    with pytest.raises(ValueError, match=r"model config '.*config.json' is empty"):
        cedar_hf.CedarModel.from_pretrained(named)


def test_an_empty_checkpoint_config_is_named(tmp_path):
    z = np.random.default_rng(0).standard_normal((256, 16)).astype(np.float32)
    data = datasets.Dataset.from_dict({"embedding": z})
    train(build_model("cedar", 16), data, _args(tmp_path, max_steps=4, stop_after_steps=2))
    config = tmp_path / "run" / "checkpoints" / "step-0000002" / "dictionary_config.json"
    config.write_text("")
    with pytest.raises(ValueError, match=r"checkpoint config '.*dictionary_config.json' is empty"):
        train(build_model("cedar", 16), data, _args(tmp_path, max_steps=4, resume_from_checkpoint="latest"))
    (config.parent / "training_args.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"training args '.*training_args.json' is not valid JSON"):
        TrainingArgs.from_json_file(config.parent / "training_args.json")


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "model"
    build_model("cedar", 16).save_pretrained(folder)
    return folder


def test_push_without_network_says_so(model_folder, monkeypatch):
    def unreachable(self, *args, **kwargs):
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    with pytest.raises(hub.HubPushError, match=r"cannot be reached \(ConnectError: no network"):
        load_dictionary(model_folder).push_to_hub("someone/model", token="hf_secret")


def test_push_in_offline_mode_names_the_variable_that_is_set(model_folder, monkeypatch):
    def offline(self, *args, **kwargs):
        raise OfflineModeIsEnabled("offline")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(hub.HubPushError, match=r"offline mode is on \(TRANSFORMERS_OFFLINE=1\); unset "
                                               r"TRANSFORMERS_OFFLINE to push") as info:
        load_dictionary(model_folder).push_to_hub("someone/model", token="hf_secret")
    assert "HF_HUB_OFFLINE" not in str(info.value) and "hf_secret" not in str(info.value)


def test_explaining_an_empty_text_is_refused(model_folder):
    with pytest.raises(ValueError, match="empty"):
        cedar_hf.explain(load_dictionary(model_folder), "")


def test_accelerate_launch_cpu_with_two_processes_warns(monkeypatch, caplog):
    # What `accelerate launch --cpu --num_processes 2` sets before starting ONE process (simple launcher).
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with caplog.at_level("WARNING", logger="cedar_hf.training.resume"):
        assert warn_if_fewer_processes(1)
    assert "--multi_gpu" in caplog.text
    monkeypatch.delenv("MASTER_PORT")  # `accelerate launch --cpu` with one process asked for: no warning
    assert not warn_if_fewer_processes(1)


def test_a_failing_run_leaves_a_finished_run_untouched(tmp_path):
    z = np.random.default_rng(0).standard_normal((256, 16)).astype(np.float32)
    train(build_model("cedar", 16), datasets.Dataset.from_dict({"embedding": z}), _args(tmp_path))
    before = {name: (tmp_path / "run" / name).read_bytes() for name in ("training_args.json", "metrics.json")}
    with pytest.raises(ValueError, match="already holds a training run"):
        train(build_model("cedar", 16), datasets.Dataset.from_dict({"embedding": z}),
              _args(tmp_path, learning_rate=0.5))
    assert {name: (tmp_path / "run" / name).read_bytes() for name in before} == before
    assert json.loads(before["metrics.json"])["step"] == 2 and os.listdir(tmp_path / "run" / "checkpoints")
