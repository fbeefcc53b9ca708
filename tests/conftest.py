"""Shared fixtures: offline Hub, seeded RNGs, few threads (CI has 2 cores)."""

import os
import random
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# the explorer caches its computed views on disk: one folder for the session (never the home folder), removed at
# the end so that runs do not pile folders up in /tmp
_CACHE_DIR = tempfile.mkdtemp(prefix="cedar-hf-test-cache-")
os.environ.setdefault("CEDAR_HF_CACHE", _CACHE_DIR)

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)
