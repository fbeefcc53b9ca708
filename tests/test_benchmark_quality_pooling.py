"""`scripts/benchmark_quality.py --add-to-json`: seeds are added to an earlier run's results only when that run used
the same settings; a seed run again replaces its earlier report."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark_quality  # noqa: E402

SETTINGS = {"recipe": "cedar-hf", "expansion": 8, "max_epochs": 30, "patience": 3, "n_train": 50000, "n_val": 10000,
            "total_minutes": 71.5, "training": {"TopK": {"0": {"steps": 10}, "1": {"steps": 11}}}}


def _opts(**overrides):
    values = dict(recipe="cedar-hf", expansion=8, max_epochs=30, patience=3, n_train=50000, n_val=10000, seeds=[1, 2])
    return SimpleNamespace(**{**values, **overrides})


def test_earlier_seeds_are_kept_and_a_rerun_seed_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_quality, "RESULTS", tmp_path)
    (tmp_path / "quality.json").write_text(json.dumps({"settings": SETTINGS, "per_seed": {"0": {"a": 0}, "1": {"a": 1}}}))
    per_seed, training, minutes = benchmark_quality._earlier_results(_opts())
    assert per_seed == {0: {"a": 0}}  # seed 1 is run again, so its earlier report is dropped
    assert training == {"TopK": {0: {"steps": 10}}} and minutes == 71.5


def test_other_settings_are_refused_naming_the_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_quality, "RESULTS", tmp_path)
    (tmp_path / "quality.json").write_text(json.dumps({"settings": SETTINGS, "per_seed": {}}))
    with pytest.raises(SystemExit, match="max_epochs=30.*max_epochs=15"):
        benchmark_quality._earlier_results(_opts(max_epochs=15))
    (tmp_path / "quality.json").unlink()
    with pytest.raises(SystemExit, match="does not exist"):
        benchmark_quality._earlier_results(_opts())


def test_stage_train_writes_its_own_training_table_and_leaves_quality_json_alone(tmp_path, monkeypatch):
    """`--stage train --max-epochs 90` (how far the 30-epoch models are from a plateau) must not overwrite the
    main results: it writes quality_training_90ep.{md,json}."""
    monkeypatch.setattr(benchmark_quality, "RESULTS", tmp_path)
    (tmp_path / "quality.json").write_text("{}")
    row = {"steps": 4320, "epochs": 88.5, "batch_size": 1024, "learning_rate": 5e-4, "train_seconds": 210.0,
           "stopped_on_plateau": True, "eval_fvu": 0.1801}
    opts = SimpleNamespace(recipe="cedar-hf", max_epochs=90, patience=3)
    benchmark_quality.write_training_only({"TopK": {0: row}}, opts, started=0.0)
    saved = json.loads((tmp_path / "quality_training_90ep.json").read_text())
    assert saved["training"]["TopK"]["0"]["eval_fvu"] == 0.1801 and saved["settings"]["max_epochs"] == 90
    table = (tmp_path / "quality_training_90ep.md").read_text()
    assert "| TopK | 1 | 88.5 (88.5–88.5) | 4320 |" in table and "1/1" in table and "0.1801" in table
    assert (tmp_path / "quality.json").read_text() == "{}"
