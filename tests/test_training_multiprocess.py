"""Two processes (Accelerate over gloo on the CPU) train the same dictionary as one with the same global batch.

`accelerate launch --cpu --num_processes 2` silently runs ONE process, so the test launches with `--multi_gpu`
(on a machine without a GPU that is two CPU processes) and checks that both saved their RNG state, i.e. that a
real two-process group trained.

Exactness: gloo's all-reduce adds the two half-batch gradients in another order than one process sums the
whole batch. In float32 that last-bit difference grows over 30 Adam steps and flips top-k selections (seen on
an AMD EPYC: 75% of A differed, by up to 7.4e-4). The runs therefore train a float64 model (`--init_from` a
saved float64 CEDAR; batches follow the model's dtype): the reordering error is then ~1e-16 relative per step,
and the comparison can be tight enough to catch any real difference in what the two runs compute.
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


def _train_command(data, output_dir, architecture, start):
    return ["-m", "cedar_hf.cli", "train", "--data", str(data), "--architecture", architecture,
            "--init_from", str(start), "--output_dir", str(output_dir), "--batch_size", "256", "--max_steps", "30", "--learning_rate", "1e-2",
            "--curriculum_steps", "10", "--eval_fraction", "0.1", "--save_steps", "15", "--seed", "4",
            "--report_to", "none", "--disable_tqdm"]


def _run(command, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "ACCELERATE_CONFIG_FILE": str(tmp_path / "no-accelerate-config.yaml")}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("architecture,config", [("cedar", {"k": 3, "parametrization": "cayley"}),
                                                 ("cedar", {"k": 3, "parametrization": "orthogonal"})],
                         ids=["cayley", "orthogonal"])
def test_two_processes_match_one(tmp_path, architecture, config):
    import cedar_hf

    z, _, _ = planted_sparse(3000, 16, 3, seed=6)
    data = tmp_path / "data"
    datasets.Dataset.from_dict({"embedding": z.numpy()}).save_to_disk(str(data))
    start = tmp_path / "start"
    from cedar_hf.registry import resolve_architecture

    model_type = resolve_architecture(architecture)
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES[model_type]
    model_class(config_class(d_in=16, **config)).double().save_pretrained(start)

    _run([sys.executable, *_train_command(data, tmp_path / "one", architecture, start)], tmp_path)
    _run([*LAUNCH, *_train_command(data, tmp_path / "two", architecture, start)], tmp_path)

    last = tmp_path / "two" / "checkpoints" / "step-0000030"
    assert (last / "random_states_0.pkl").exists() and (last / "random_states_1.pkl").exists()  # 2 processes ran
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    assert one.keys() == two.keys()
    assert all(value.dtype == torch.float64 for value in one.values())  # the runs really trained in float64
    initial = load_file(start / "model.safetensors")
    trained = "U" if config["parametrization"] == "orthogonal" else "A"
    assert (one[trained] - initial[trained]).abs().max() > 1e-3  # it did train
    # Tolerance: float64 reordering leaves ~1e-16 relative per step; even amplified 1e6-fold by 30 Adam steps
    # it stays below 1e-9. A real difference (another batch split, a missed all-reduce, a skipped step) moves
    # A by ~1e-3 after the first step, as the float32 runs showed — six orders above this bound.
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-9)
