"""Resume continues exactly the interrupted run: architecture, config and run length from the checkpoint, a
complete metrics.json, checkpoint files never rewritten, changed settings refused, incomplete checkpoints
skipped; a fresh run never mixes with another one in its output folder."""

from __future__ import annotations

import json
import os
import shutil

import datasets
import pytest
import torch
from typer.testing import CliRunner

import cedar_hf
from builders import build_model, planted_sparse
from cedar_hf.cli import app
from cedar_hf.training import TrainingArgs, train

FAST = ["--report_to", "none", "--disable_tqdm", "--batch_size", "128"]


def _data(tmp_path, n=1024, d=16, seed=1) -> str:
    z, _, _ = planted_sparse(n, d, 3, seed=seed)
    path = str(tmp_path / "emb")
    datasets.Dataset.from_dict({"embedding": z.numpy(), "id": [f"e{i}" for i in range(n)]}).save_to_disk(path)
    return path


def _cli(*argv):
    result = CliRunner().invoke(app, ["train", *argv])
    return result


def _files(folder) -> dict[str, bytes]:
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))}


def test_the_printed_resume_command_continues_the_run_as_it_was(tmp_path):
    data, run = _data(tmp_path), str(tmp_path / "run")
    first = _cli("--data", data, "--architecture", "cedar", "--config", "k=3", "parametrization=cayley",
                 "curriculum_steps=20", "--max_steps", "60", "--save_steps", "20", "--stop_after_steps", "40",
                 "--output_dir", run, *FAST)
    assert first.exit_code == 0, first.output
    assert f"--output-dir {run} --resume latest" in first.output
    saved = _files(os.path.join(run, "checkpoints", "step-0000040"))

    resumed = _cli("--data", data, "--output_dir", run, "--resume", "latest", *FAST[:3])
    assert resumed.exit_code == 0, resumed.output
    config = json.loads(open(os.path.join(run, "config.json")).read())
    assert config["parametrization"] == "cayley" and config["k"] == 3 and config["curriculum_steps"] == 20
    metrics = json.loads(open(os.path.join(run, "metrics.json")).read())
    assert metrics["step"] == 60  # the 20 remaining steps were trained, not 0
    for key in ("train/loss", "train/fvu", "train/l0", "train/lr", "train/k"):
        assert key in metrics, key
    assert _files(os.path.join(run, "checkpoints", "step-0000040")) == saved  # never rewritten
    model = cedar_hf.CedarModel.from_pretrained(os.path.join(run, "checkpoints", "step-0000060"))
    assert model.config.parametrization == "cayley"  # checkpoints load with from_pretrained
    final = cedar_hf.CedarModel.from_pretrained(run)
    assert torch.equal(model.b, final.b)


def test_resume_with_another_setting_is_refused_by_the_cli(tmp_path):
    data, run = _data(tmp_path), str(tmp_path / "run")
    assert _cli("--data", data, "--config", "k=3", "curriculum_steps=4", "--max_steps", "10",
                "--stop_after_steps", "5", "--output_dir", run, *FAST).exit_code == 0
    changed = _cli("--data", data, "--config", "k=5", "--output_dir", run, "--resume", "latest", *FAST)
    assert changed.exit_code == 2 and "k: 3 -> 5" in changed.output and "resume_with_changes" in changed.output
    longer = _cli("--data", data, "--max_steps", "20", "--output_dir", run, "--resume", "latest", *FAST)
    assert longer.exit_code == 2 and "max_steps: 10 -> 20" in longer.output
    assert not os.path.exists(os.path.join(run, "metrics.json"))  # nothing written by the refused runs


def test_resume_latest_skips_an_incomplete_checkpoint_with_a_warning(tmp_path, caplog):
    z, _, _ = planted_sparse(512, 16, 3)
    args = dict(output_dir=str(tmp_path / "run"), batch_size=128, max_steps=8, save_steps=2, save_total_limit=0,
                stop_after_steps=6, report_to="none", disable_tqdm=True, curriculum_steps=2)
    train(build_model("cedar", 16), datasets.Dataset.from_dict({"embedding": z.numpy()}), TrainingArgs(**args))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == ["step-0000002", "step-0000004", "step-0000006"]  # 0 keeps all
    os.remove(checkpoints / "step-0000006" / "dictionary_config.json")  # as an older version's killed save left it
    with caplog.at_level("WARNING", logger="cedar_hf.training.checkpoint"):
        model = train(build_model("cedar", 16), datasets.Dataset.from_dict({"embedding": z.numpy()}),
                      TrainingArgs(**{**args, "stop_after_steps": None, "resume_from_checkpoint": "latest"}))
    assert "skipping incomplete checkpoint" in caplog.text and "step-0000006" in caplog.text
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["step"] == 8
    assert isinstance(model, cedar_hf.CedarModel)


def test_a_fresh_run_refuses_a_folder_holding_a_run_unless_overwrite(tmp_path):
    data, run = _data(tmp_path), str(tmp_path / "run")
    assert _cli("--data", data, "--config", "k=3", "--max_steps", "4", "--output_dir", run, *FAST).exit_code == 0
    before = _files(run)
    again = _cli("--data", data, "--architecture", "topk", "--max_steps", "6", "--output_dir", run, *FAST)
    assert again.exit_code == 2 and "already holds a training run" in again.output
    assert "--overwrite-output-dir" in again.output and _files(run) == before  # training_args.json untouched
    replaced = _cli("--data", data, "--architecture", "topk", "--max_steps", "6", "--output_dir", run,
                    "--overwrite_output_dir", *FAST)
    assert replaced.exit_code == 0, replaced.output
    assert os.listdir(os.path.join(run, "checkpoints")) == ["step-0000006"]  # the old run's checkpoints are gone
    assert isinstance(cedar_hf.auto.load_dictionary(run), cedar_hf.TopKSAE)


def test_init_from_refuses_other_architectures_and_non_dictionaries(tmp_path):
    from transformers import BertConfig, BertModel

    data = _data(tmp_path)
    topk = str(tmp_path / "topk")
    build_model("topk_sae", 16).save_pretrained(topk)
    bert = str(tmp_path / "bert")
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(bert)
    other = _cli("--data", data, "--architecture", "cedar", "--init_from", topk, "--max_steps", "2",
                 "--output_dir", str(tmp_path / "a"), *FAST)
    assert other.exit_code == 2 and "'topk_sae' dictionary but architecture='cedar'" in other.output
    not_dictionary = _cli("--data", data, "--init_from", bert, "--max_steps", "2", "--output_dir",
                          str(tmp_path / "b"), *FAST)
    assert not_dictionary.exit_code == 2 and "'bert' model, not a cedar-hf dictionary" in not_dictionary.output
    same = _cli("--data", data, "--init_from", topk, "--max_steps", "2", "--output_dir", str(tmp_path / "c"), *FAST)
    assert same.exit_code == 0, same.output
    assert isinstance(cedar_hf.auto.load_dictionary(tmp_path / "c"), cedar_hf.TopKSAE)


def test_eval_fraction_with_eval_data_is_refused(tmp_path):
    data = _data(tmp_path)
    both = _cli("--data", data, "--eval_data", data, "--eval_fraction", "0.2", "--max_steps", "2",
                "--output_dir", str(tmp_path / "run"), *FAST)
    assert both.exit_code == 2 and "eval_fraction=0.2 and eval_data=" in both.output
    assert not os.path.exists(tmp_path / "run")


def test_a_short_cedar_run_warns_and_the_default_length_reaches_k(tmp_path, caplog):
    z, _, _ = planted_sparse(512, 16, 3)
    dataset = datasets.Dataset.from_dict({"embedding": z.numpy()})
    common = dict(batch_size=128, report_to="none", disable_tqdm=True, curriculum_steps=10)
    with caplog.at_level("WARNING", logger="cedar_hf.training.resume"):
        train(build_model("cedar", 16, k=3), dataset, TrainingArgs(output_dir=str(tmp_path / "a"), max_steps=8,
                                                                   **common))
    assert "before the CEDAR curriculum reaches k=3" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="cedar_hf.training.resume"):  # 1 epoch = 4 steps, extended to 2τ
        train(build_model("cedar", 16, k=3), dataset,
              TrainingArgs(output_dir=str(tmp_path / "b"), num_epochs=1, **common))
    assert "curriculum" not in caplog.text
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["step"] == 20


def test_a_checkpoint_copied_elsewhere_resumes_from_its_own_files(tmp_path):
    """A checkpoint holds everything a resume needs: copied into a new folder, train(None, ...) finishes it."""
    z, _, _ = planted_sparse(512, 16, 3)
    dataset = datasets.Dataset.from_dict({"embedding": z.numpy()})
    common = dict(batch_size=128, report_to="none", disable_tqdm=True)
    train(build_model("cedar", 16, k=2, parametrization="cayley"), dataset,
          TrainingArgs(output_dir=str(tmp_path / "b"), max_steps=6, curriculum_steps=2, stop_after_steps=3, **common))
    shutil.copytree(tmp_path / "b" / "checkpoints", tmp_path / "c" / "checkpoints")
    resumed = train(None, dataset, TrainingArgs(output_dir=str(tmp_path / "c"), resume_from_checkpoint="latest",
                                                **common))
    assert resumed.config.parametrization == "cayley" and resumed.config.k == 2
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["step"] == 6
    at_step_3 = cedar_hf.CedarModel.from_pretrained(tmp_path / "c" / "checkpoints" / "step-0000003")
    assert not torch.allclose(at_step_3.rotation, resumed.rotation)  # three more steps were trained
    with pytest.raises(ValueError, match="needs resume_from_checkpoint"):
        train(None, dataset, TrainingArgs(output_dir=str(tmp_path / "d"), **common))


@pytest.mark.slow
def test_two_processes_stopped_and_resumed_match_one_uninterrupted_process(tmp_path):
    """Resume under `accelerate launch` (two gloo processes, each restoring its own RNG state) continues exactly:
    float64, so the comparison can be tight (see tests/test_training_multiprocess.py for the tolerance)."""
    import sys

    from safetensors.torch import load_file
    from test_training_multiprocess import LAUNCH, _run, _train_command

    z, _, _ = planted_sparse(3000, 16, 3, seed=6)
    data = tmp_path / "data"
    datasets.Dataset.from_dict({"embedding": z.numpy()}).save_to_disk(str(data))
    start = tmp_path / "start"
    cedar_hf.CedarModel(cedar_hf.CedarConfig(d_in=16, k=3, parametrization="cayley")).double().save_pretrained(start)

    _run([sys.executable, *_train_command(data, tmp_path / "one", "cedar", start)], tmp_path)
    split = _train_command(data, tmp_path / "two", "cedar", start)
    _run([*LAUNCH, *split, "--stop_after_steps", "15"], tmp_path)
    assert not (tmp_path / "two" / "model.safetensors").exists()
    _run([*LAUNCH, *split, "--resume", "latest"], tmp_path)
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    assert all(value.dtype == torch.float64 for value in two.values())
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-9)
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["step"] == 30


def test_a_run_stopped_on_a_plateau_resumes_to_the_same_stop(tmp_path):
    """The plateau stopper's state travels in the checkpoint: a resumed run stops where the straight one did."""
    z, _, _ = planted_sparse(1024, 16, 3, seed=8)
    train_set = datasets.Dataset.from_dict({"embedding": z[:768].double().numpy()})
    eval_set = datasets.Dataset.from_dict({"embedding": z[768:].double().numpy()})
    # min_delta 0.99: every evaluation after the first is "no improvement", so patience 2 stops at the 3rd (step 6)
    common = dict(batch_size=128, max_steps=40, eval_steps=2, save_steps=2, plateau_patience=2,
                  plateau_min_delta=0.99, report_to="none", disable_tqdm=True, learning_rate=3e-3)

    def fresh():
        torch.manual_seed(0)
        return build_model("topk_sae", 16).double()

    straight = train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "a"), **common), eval_set)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["step"] == 6
    train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "b"), stop_after_steps=4, **common), eval_set)
    resumed = train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "b"), resume_from_checkpoint="latest",
                                                     **common), eval_set)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["step"] == 6
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=1e-10, msg=key)
    os.remove(tmp_path / "b" / "metrics.json")  # as if killed after the stop, before the final files
    again = train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "b"), resume_from_checkpoint="latest",
                                                   **common), eval_set)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["step"] == 6  # no step after the stop
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=1e-10, msg=key)


def test_a_run_stopped_on_a_plateau_continues_with_a_larger_patience_as_that_run_would(tmp_path):
    """Patience 2 stops at step 6; resumed with patience 4 it goes on to the straight patience-4 run's stop (step
    10) with the same weights and history. A smaller patience would have stopped earlier: refused, naming it."""
    z, _, _ = planted_sparse(1024, 16, 3, seed=8)
    train_set = datasets.Dataset.from_dict({"embedding": z[:768].double().numpy()})
    eval_set = datasets.Dataset.from_dict({"embedding": z[768:].double().numpy()})
    common = dict(batch_size=128, max_steps=40, eval_steps=2, save_steps=2, plateau_min_delta=0.99,
                  report_to="none", disable_tqdm=True, learning_rate=3e-3)

    def fresh():
        torch.manual_seed(0)
        return build_model("topk_sae", 16).double()

    straight = train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "p4"), plateau_patience=4, **common),
                     eval_set)
    train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "p2"), plateau_patience=2, **common), eval_set)
    assert json.loads((tmp_path / "p2" / "metrics.json").read_text())["step"] == 6
    with pytest.raises(ValueError, match="plateau_patience: 2 -> 1"):
        train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "p2"), resume_from_checkpoint="latest",
                                               plateau_patience=1, **common), eval_set)
    longer = train(fresh(), train_set, TrainingArgs(output_dir=str(tmp_path / "p2"), resume_from_checkpoint="latest",
                                                    plateau_patience=4, **common), eval_set)
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("p4", "p2")]
    assert metrics[1]["step"] == metrics[0]["step"] == 10 and metrics[1]["train/stopped_on_plateau"]
    assert [h["step"] for h in metrics[1]["history"]] == [h["step"] for h in metrics[0]["history"]]
    assert TrainingArgs.from_json_file(tmp_path / "p2" / "training_args.json").plateau_patience == 4
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(longer.state_dict()[key], value, rtol=0, atol=1e-10, msg=key)
