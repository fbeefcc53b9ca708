"""Two processes (Accelerate over gloo on the CPU) train the same dictionary as one with the same global batch.

`accelerate launch --cpu --num_processes 2` silently runs ONE process, so the test launches with `--multi_gpu`
(on a machine without a GPU that is two CPU processes) and checks that both saved their RNG state, i.e. that a
real two-process group trained.
"""

from __future__ import annotations

import os
import subprocess
import sys

import datasets
import pytest
from safetensors.torch import load_file
import torch

from builders import planted_sparse

LAUNCH = [os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--multi_gpu", "--num_processes",
          "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def _train_command(data, output_dir, architecture, config):
    return ["-m", "cedar_hf.cli", "train", "--data", str(data), "--architecture", architecture, "--config", *config,
            "--output_dir", str(output_dir), "--batch_size", "256", "--max_steps", "30", "--learning_rate", "1e-2",
            "--curriculum_steps", "10", "--eval_fraction", "0.1", "--save_steps", "15", "--seed", "4",
            "--report_to", "none", "--disable_tqdm"]


def _run(command, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "ACCELERATE_CONFIG_FILE": str(tmp_path / "no-accelerate-config.yaml")}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("architecture,config", [("cedar", ["k=3", "parametrization=cayley"])])
def test_two_processes_match_one(tmp_path, architecture, config):
    z, _, _ = planted_sparse(3000, 16, 3, seed=6)
    data = tmp_path / "data"
    datasets.Dataset.from_dict({"embedding": z.numpy()}).save_to_disk(str(data))

    _run([sys.executable, *_train_command(data, tmp_path / "one", architecture, config)], tmp_path)
    _run([*LAUNCH, *_train_command(data, tmp_path / "two", architecture, config)], tmp_path)

    last = tmp_path / "two" / "checkpoints" / "step-0000030"
    assert (last / "random_states_0.pkl").exists() and (last / "random_states_1.pkl").exists()  # 2 processes ran
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    initial = torch.zeros_like(one["A"])
    assert (one["A"] - initial).abs().max() > 1e-3  # it did train
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
