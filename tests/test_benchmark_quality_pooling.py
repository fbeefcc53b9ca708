"""`scripts/benchmark_quality.py --add-to-json`: seeds are added to an earlier run's results only when that run used
the same settings; a seed run again replaces its earlier report."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark_quality  # noqa: E402
import benchmark_quality_report  # noqa: E402

SETTINGS = {"recipe": "cedar-hf", "expansion": 8, "max_epochs": 30, "patience": 3, "n_train": 50000, "n_val": 10000,
            "total_minutes": 71.5, "training": {"TopK": {"0": {"steps": 10}, "1": {"steps": 11}}}}


def _opts(**overrides):
    values = dict(recipe="cedar-hf", expansion=8, max_epochs=30, patience=3, n_train=50000, n_val=10000, seeds=[1, 2], max_epochs_for={})
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
    opts = SimpleNamespace(recipe="cedar-hf", max_epochs=90, patience=3, max_epochs_for={})
    benchmark_quality.write_training_only({"TopK": {0: row}}, opts, started=0.0)
    saved = json.loads((tmp_path / "quality_training_90ep.json").read_text())
    assert saved["training"]["TopK"]["0"]["eval_fvu"] == 0.1801 and saved["settings"]["max_epochs"] == 90
    table = (tmp_path / "quality_training_90ep.md").read_text()
    assert "| TopK | 1 | 88.5 (88.5–88.5) | 4320 |" in table and "1/1" in table and "0.1801" in table
    assert (tmp_path / "quality.json").read_text() == "{}"
    # a later `--models` subset run of the same setting adds its rows; a row it trains again is replaced
    opts = SimpleNamespace(recipe="cedar-hf", max_epochs=90, patience=3, max_epochs_for={})
    benchmark_quality.write_training_only({"TopK": {1: {**row, "eval_fvu": 0.1802}}, "ReLU": {0: row}}, opts, 0.0)
    saved = json.loads((tmp_path / "quality_training_90ep.json").read_text())["training"]
    assert set(saved) == {"TopK", "ReLU"} and set(saved["TopK"]) == {"0", "1"} and saved["TopK"]["1"]["eval_fvu"] == 0.1802
    opts.max_epochs_for = {"MSAE (RW)": 270}  # per-model budgets: a file of their own, the 90-epoch one untouched
    benchmark_quality.write_training_only({"MSAE (RW)": {0: row}}, opts, 0.0)
    assert json.loads((tmp_path / "quality_training_90ep_msae-rw-270ep.json").read_text())["training"].keys() == {
        "MSAE (RW)"}
    assert "MSAE (RW) at most 270" in (tmp_path / "quality_training_90ep_msae-rw-270ep.md").read_text()
    assert set(json.loads((tmp_path / "quality_training_90ep.json").read_text())["training"]) == {"TopK", "ReLU"}
    opts.max_epochs_for = {}
    opts.patience = 5  # another patience: a file of its own (`_p5`), the default patience's file untouched
    benchmark_quality.write_training_only({"ReLU": {0: row}}, opts, 0.0)
    assert set(json.loads((tmp_path / "quality_training_90ep_p5.json").read_text())["training"]) == {"ReLU"}
    assert set(json.loads((tmp_path / "quality_training_90ep.json").read_text())["training"]) == {"TopK", "ReLU"}
    opts.recipe = "msae"  # another setting with the same file name: its table replaces the file's
    benchmark_quality.write_training_only({"TopK": {0: row}}, opts, 0.0)
    assert set(json.loads((tmp_path / "quality_training_90ep_p5.json").read_text())["training"]) == {"TopK"}


# ---- per-model epoch budgets and resumable trainings ----------------------------------------------------------------
NAMES = [*benchmark_quality.model_specs(8, 0), *benchmark_quality.OVERCOMPLETE.values()]


def test_per_model_budgets_are_parsed_with_clear_errors_and_get_their_own_cache_folders(tmp_path, monkeypatch):
    assert benchmark_quality.parse_budgets(["MSAE (RW)=270", "overcomplete TopK=180"], NAMES) == {
        "MSAE (RW)": 270, "overcomplete TopK": 180}
    for bad, message in (("MSAE (RW)", "expected NAME=EPOCHS"), ("MSAE=270", "no model 'MSAE'"),
                         ("MSAE (RW)=0", "EPOCHS='0' must be a positive integer"),
                         ("TopK=ten", "EPOCHS='ten'")):
        with pytest.raises(SystemExit, match=bad.replace("(", r"\(").replace(")", r"\)")) as error:
            benchmark_quality.parse_budgets([bad], NAMES)
        assert message in str(error.value)
    monkeypatch.setattr(benchmark_quality, "CACHE", tmp_path)
    opts = SimpleNamespace(tag="t", max_epochs=90, max_epochs_for={"MSAE (RW)": 270})
    assert benchmark_quality.model_folder("MSAE (RW)", 1, opts).name == "msae-rw-270ep-seed1"
    assert benchmark_quality.model_folder("TopK", 1, opts).name == "topk-seed1"  # the earlier runs' folders
    assert benchmark_quality.budget("TopK", opts) == 90 and benchmark_quality.budget("MSAE (RW)", opts) == 270


def test_results_of_other_per_model_budgets_are_not_pooled(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_quality, "RESULTS", tmp_path)
    (tmp_path / "quality.json").write_text(json.dumps({"settings": SETTINGS, "per_seed": {"0": {"a": 0}}}))
    assert benchmark_quality._earlier_results(_opts(max_epochs_for={}))[0] == {0: {"a": 0}}  # file without the key
    with pytest.raises(SystemExit, match=r"max_epochs_for=\{\}.*max_epochs_for=\{'MSAE \(RW\)': 270\}"):
        benchmark_quality._earlier_results(_opts(max_epochs_for={"MSAE (RW)": 270}))


def _random_splits(tmp_path, monkeypatch) -> dict:
    """2048 training / 256 held-out random 384-d rows saved as datasets; the benchmark's cache under tmp_path."""
    import datasets
    import torch

    g = torch.Generator().manual_seed(0)
    rows = torch.randn(2048 + 256, 384, generator=g)
    paths = {}
    for split, part in (("train", rows[:2048]), ("val", rows[2048:])):
        paths[split] = tmp_path / split
        datasets.Dataset.from_dict({"embedding": part.numpy()}).save_to_disk(str(paths[split]))
    monkeypatch.setattr(benchmark_quality, "CACHE", tmp_path / "cache")
    return paths


def test_a_training_cut_short_continues_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    """The benchmark checkpoints every epoch; run again, it resumes the same run and ends where an uninterrupted
    one ends (same steps, same held-out history, same weights up to float rounding)."""
    import dataclasses

    import torch

    import cedar_hf

    paths = _random_splits(tmp_path, monkeypatch)
    spec = ("topk_sae", dict(expansion_factor=1, k=16))
    real_train = cedar_hf.train
    finished = {}
    for tag, cut in (("whole", None), ("cut", 3)):
        opts = SimpleNamespace(tag=tag, recipe="cedar-hf", max_epochs=3, max_epochs_for={}, patience=3, n_train=2048)
        if cut:  # the first invocation stops after step 3 (mid-epoch 2), leaving a checkpoint and no metrics.json
            monkeypatch.setattr(cedar_hf, "train", lambda m, d, a, **kw: real_train(
                m, d, dataclasses.replace(a, stop_after_steps=cut), **kw))
            with pytest.raises(FileNotFoundError):
                benchmark_quality.train_ours("TopK", spec, 0, paths, opts)  # no metrics.json to read back
            monkeypatch.setattr(cedar_hf, "train", real_train)
            assert not (benchmark_quality.model_folder("TopK", 0, opts) / "metrics.json").exists()
            capsys.readouterr()
        finished[tag] = benchmark_quality.train_ours("TopK", spec, 0, paths, opts)
        assert ("resuming TopK seed 0" in capsys.readouterr().out) == bool(cut)
    (whole, whole_run), (cut, cut_run) = finished["whole"], finished["cut"]
    assert cut_run["step"] == whole_run["step"] == 6
    assert [h["step"] for h in cut_run["history"]] == [h["step"] for h in whole_run["history"]] == [2, 4, 6]
    for a, b in zip(cut_run["history"], whole_run["history"]):
        assert a["eval/fvu"] == pytest.approx(b["eval/fvu"], rel=1e-5)
    torch.testing.assert_close(cut.W_dec, whole.W_dec, rtol=1e-5, atol=1e-6)


def test_a_cached_evaluation_is_reused_only_for_the_same_trained_models(tmp_path, monkeypatch):
    """The evaluation cache is keyed by each model's budget and run fingerprint (steps, held-out FVU): a model
    retrained into the same folder (another stopping rule, a longer budget) is evaluated again."""
    import cedar_hf.data
    import cedar_hf.evaluation

    calls = []

    def compare_models(models, x_val, targets, protocol="cedar-hf", **kwargs):
        calls.append(protocol)
        return {"models": {name: {"matched": []} for name in models}, "targets": list(targets)}

    monkeypatch.setattr(cedar_hf.evaluation, "compare_models", compare_models)
    monkeypatch.setattr(cedar_hf.data, "load_dataset", lambda path: {"label": ["a"]})
    monkeypatch.setattr(cedar_hf.data, "embedding_matrix", lambda ds, flatten_tokens: None)
    monkeypatch.setattr(benchmark_quality, "CACHE", tmp_path)
    opts = SimpleNamespace(tag="t", max_epochs=90, max_epochs_for={}, protocols=["cedar-hf"])
    row = {"steps": 4320, "eval_fvu": 0.0029}
    runs = {"MSAE (RW)": benchmark_quality.run_fingerprint(row)}
    evaluate = lambda runs: benchmark_quality.evaluate_seed({"MSAE (RW)": None}, {"train": 0, "val": 0}, 0, opts,  # noqa: E731
                                                            runs)
    evaluate(runs)
    evaluate(runs)
    assert calls == ["cedar-hf"]  # the second call read the cache
    evaluate({"MSAE (RW)": benchmark_quality.run_fingerprint({"steps": 2000, "eval_fvu": 0.0041})})
    assert len(calls) == 2  # retrained: evaluated again
    opts.max_epochs_for = {"MSAE (RW)": 270}
    evaluate({"MSAE (RW)": benchmark_quality.run_fingerprint({"steps": 2000, "eval_fvu": 0.0041})})
    assert len(calls) == 3  # same fingerprint, another budget: evaluated again


def test_only_the_retrained_model_is_evaluated_again_and_joins_the_cached_entries(tmp_path, monkeypatch):
    """Per-model cache: retraining one model re-evaluates that model alone, its entry joins the cached ones; when
    the shared probe scores the originals differently (another setting) every model is evaluated anew."""
    import cedar_hf.data
    import cedar_hf.evaluation

    calls, probe = [], {"cross_entropy": 1.0379, "accuracy": 0.70}

    def compare_models(models, x_val, targets, protocol="cedar-hf", **kwargs):
        calls.append(sorted(models))
        return {"models": {name: {"matched": [len(calls)]} for name in models}, "targets": list(targets),
                "probe_on_original": dict(probe), "date": f"call {len(calls)}"}

    monkeypatch.setattr(cedar_hf.evaluation, "compare_models", compare_models)
    monkeypatch.setattr(cedar_hf.data, "load_dataset", lambda path: {"label": ["a"]})
    monkeypatch.setattr(cedar_hf.data, "embedding_matrix", lambda ds, flatten_tokens: None)
    monkeypatch.setattr(benchmark_quality, "CACHE", tmp_path)
    opts = SimpleNamespace(tag="t", max_epochs=90, max_epochs_for={}, protocols=["cedar-hf"])
    fp = benchmark_quality.run_fingerprint
    runs = {"TopK": fp({"steps": 100, "eval_fvu": 0.2}), "MSAE (RW)": fp({"steps": 4320, "eval_fvu": 0.003})}
    models = {"TopK": None, "MSAE (RW)": None}
    evaluate = lambda runs: benchmark_quality.evaluate_seed(models, {"train": 0, "val": 0}, 0, opts,  # noqa: E731
                                                            runs)["cedar-hf"]
    evaluate(runs)
    runs["MSAE (RW)"] = fp({"steps": 2000, "eval_fvu": 0.004})  # retrained under another stopping rule
    report = evaluate(runs)
    assert calls == [["MSAE (RW)", "TopK"], ["MSAE (RW)"]]
    assert report["models"] == {"TopK": {"matched": [1]}, "MSAE (RW)": {"matched": [2]}}
    assert report["evaluated"] == {"TopK": "call 1", "MSAE (RW)": "call 2"}
    cached = json.loads((tmp_path / "evaluations" / "t" / "seed0-cedar-hf.json").read_text())
    assert cached["runs"] == {name: list(value) for name, value in runs.items()}
    assert evaluate(runs)["models"] == report["models"] and len(calls) == 2  # nothing changed: all from the cache
    # a subset of the models reads its entries from the cache and returns only those
    assert set(benchmark_quality.evaluate_seed({"TopK": None}, {"train": 0, "val": 0}, 0, opts,
                                               {"TopK": runs["TopK"]})["cedar-hf"]["models"]) == {"TopK"}
    probe["cross_entropy"] = 1.05  # the probe of another setting: the cached entries cannot be joined
    runs["MSAE (RW)"] = fp({"steps": 2100, "eval_fvu": 0.004})
    report = evaluate(runs)
    assert calls[2:] == [["MSAE (RW)"], ["MSAE (RW)", "TopK"]]
    assert report["models"] == {"TopK": {"matched": [4]}, "MSAE (RW)": {"matched": [4]}}


def test_a_larger_patience_continues_the_smaller_patience_runs(tmp_path, monkeypatch, capsys):
    """`--patience 4` after a `--patience 1` run of the same setting continues its runs from where they stopped
    (only their checkpoints are copied) and ends as a patience-4 run from the start ends; an evaluation cache of
    the smaller patience gives its entries to the models whose runs did not change."""
    import dataclasses

    import torch

    import cedar_hf
    import cedar_hf.data
    import cedar_hf.evaluation

    paths = _random_splits(tmp_path, monkeypatch)
    real_train = cedar_hf.train  # min_delta 0.9: every evaluation after the first is bad, patience p stops at p + 1
    monkeypatch.setattr(cedar_hf, "train", lambda m, d, a, **kw: real_train(
        m, d, dataclasses.replace(a, plateau_min_delta=0.9), **kw))
    spec = ("topk_sae", dict(expansion_factor=1, k=16))
    opts = lambda tag, patience: SimpleNamespace(tag=f"{tag}-p{patience}", recipe="cedar-hf", max_epochs=8,  # noqa: E731
                                                 max_epochs_for={}, patience=patience, n_train=2048)
    _, short = benchmark_quality.train_ours("TopK", spec, 0, paths, opts("a", 1))
    assert short["step"] == 4 and short["train/stopped_on_plateau"]  # 2 steps an epoch, stopped at epoch 2
    straight, straight_run = benchmark_quality.train_ours("TopK", spec, 0, paths, opts("b", 4))
    capsys.readouterr()
    longer, longer_run = benchmark_quality.train_ours("TopK", spec, 0, paths, opts("a", 4))
    assert "continuing the run of" in capsys.readouterr().out
    assert longer_run["step"] == straight_run["step"] == 10 and longer_run["train/stopped_on_plateau"]
    assert [h["step"] for h in longer_run["history"]] == [h["step"] for h in straight_run["history"]]
    torch.testing.assert_close(longer.W_dec, straight.W_dec, rtol=1e-5, atol=1e-6)
    folder = benchmark_quality.model_folder("TopK", 0, opts("a", 1))
    assert json.loads((folder / "metrics.json").read_text())["step"] == 4  # the shorter run is left as it was

    calls = []

    def compare_models(models, x_val, targets, protocol="cedar-hf", **kwargs):
        calls.append(sorted(models))
        return {"models": {name: {"matched": [len(calls)]} for name in models}, "targets": list(targets),
                "probe_on_original": {"cross_entropy": 1.0, "accuracy": 0.5}, "date": f"call {len(calls)}"}

    monkeypatch.setattr(cedar_hf.evaluation, "compare_models", compare_models)
    monkeypatch.setattr(cedar_hf.data, "load_dataset", lambda path: {"label": ["a"]})
    monkeypatch.setattr(cedar_hf.data, "embedding_matrix", lambda ds, flatten_tokens: None)
    fp = benchmark_quality.run_fingerprint
    models, same = {"TopK": None, "MSAE (RW)": None}, fp({"steps": 4320, "eval_fvu": 0.003})
    for patience, topk in ((1, fp({"steps": 4, "eval_fvu": 0.9})), (4, fp({"steps": 10, "eval_fvu": 0.8}))):
        chosen = opts("a", patience)
        chosen.protocols = ["cedar-hf"]
        report = benchmark_quality.evaluate_seed(models, paths, 0, chosen, {"TopK": topk, "MSAE (RW)": same})
    assert calls == [["MSAE (RW)", "TopK"], ["TopK"]]  # MSAE's run is the same at patience 4: its entry is kept
    assert report["cedar-hf"]["models"] == {"TopK": {"matched": [2]}, "MSAE (RW)": {"matched": [1]}}
    assert (tmp_path / "cache" / "evaluations" / "a-p1" / "seed0-cedar-hf.json").exists()


def test_a_run_with_no_plateau_stop_keeps_its_held_out_curve(tmp_path, monkeypatch):
    """`--patience 0` trains the whole budget and still evaluates once per epoch, so its report has the curve the
    report's stopping sentence promises (before, the per-epoch evaluation came only with a plateau stop)."""
    paths = _random_splits(tmp_path, monkeypatch)
    spec = ("topk_sae", dict(expansion_factor=1, k=16))
    opts = SimpleNamespace(tag="c-p0", recipe="cedar-hf", max_epochs=3, max_epochs_for={}, patience=0, n_train=2048)
    _, run = benchmark_quality.train_ours("TopK", spec, 0, paths, opts)
    row = benchmark_quality.training_row(run, 2048, 3)
    assert row["steps"] == 6 and row["epochs"] == 3 and not row["stopped_on_plateau"]
    assert [step for step, _ in row["eval_curve"]] == [2, 4, 6]  # 2 steps an epoch
    assert all(0 < fvu < 2 for _, fvu in row["eval_curve"])
    assert "kept for the curves" in benchmark_quality_report.stopping_rule(0)


def _from_json(tmp_path, monkeypatch, committed_name: str, stem: str) -> Path:
    """`--from-json --results-name STEM` on a copy of a committed result file, all writing under `tmp_path`;
    returns the committed file."""
    committed = Path(benchmark_quality.RESULTS) / committed_name
    monkeypatch.setattr(benchmark_quality, "RESULTS", tmp_path)
    monkeypatch.setattr(benchmark_quality, "CACHE", tmp_path / "cache")
    (tmp_path / f"{stem}.json").write_text(committed.read_text())
    monkeypatch.setattr(sys, "argv", ["benchmark_quality.py", "--from-json", "--results-name", stem])
    benchmark_quality.main()
    return committed


def test_results_name_writes_beside_the_main_results_and_is_read_back(tmp_path, monkeypatch):
    """`--results-name`: the report of another setting (or a subset) goes to its own files, never over
    quality.*; `--from-json` / `--add-to-json` read that name; a stem with a path in it is refused."""
    committed = _from_json(tmp_path, monkeypatch, "quality.json", "quality_x")
    written = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert written == ["quality_x.json", "quality_x.md", "quality_x_pareto_k_ic.png", "quality_x_semantic_vs_fvu.png",
                       "quality_x_training_curves.png"]
    report = (tmp_path / "quality_x.md").read_text()
    assert "`quality_x_pareto_k_ic.png`" in report and "A side run (`--results-name quality_x`)" in report
    assert "`quality_x_training_curves.png`" in report
    assert benchmark_quality_report.READING[:60] not in report  # the committed comparison's reading stays there
    settings = json.loads(committed.read_text())["settings"]
    opts = _opts(**{key: settings[key] for key in ("max_epochs", "patience", "n_train", "n_val")},
                 max_epochs_for=settings["max_epochs_for"], results_name="quality_x", seeds=[2])
    per_seed, _, _ = benchmark_quality._earlier_results(opts)
    assert sorted(per_seed) == [0, 1]
    with pytest.raises(SystemExit, match="does not exist"):
        benchmark_quality._earlier_results(_opts(results_name="quality_y"))
    with pytest.raises(SystemExit, match="'../quality'"):
        benchmark_quality.results_name(SimpleNamespace(results_name="../quality"))


def test_a_report_of_runs_without_curves_names_no_curves_figure(tmp_path, monkeypatch):
    """The committed patience-0 runs predate the per-epoch evaluation with no plateau stop: their report says no
    curve was kept and names no training-curves figure (none is written)."""
    _from_json(tmp_path, monkeypatch, "quality_topk-270ep-p0.json", "quality_y")
    assert not (tmp_path / "quality_y_training_curves.png").exists()
    report = (tmp_path / "quality_y.md").read_text()
    assert "training_curves" not in report and "no held-out curve kept" in report
    assert "kept for the curves" not in report


def test_training_row_counts_the_trainers_epochs():
    # 50 000 rows, batch 1024: an epoch is 48 steps (the loader drops the last partial batch), so a run of its whole
    # 90-epoch budget (4320 steps) shows 90, as overcomplete's loop counts it, not the 88.47 passes of rows seen
    row = benchmark_quality.training_row({"step": 4320, "batch_size": 1024, "learning_rate": 5e-4}, 50_000, 90)
    assert row["epochs"] == 90.0 and row["steps"] == 4320
    assert benchmark_quality.training_row({"step": 4224, "batch_size": 1024, "learning_rate": 5e-4}, 50_000, 90)[
        "epochs"] == 88.0


def test_training_curves_figure_draws_the_rows_that_kept_a_curve():
    from benchmark_quality_report import plot_training_curves

    plateau = {"steps": 96, "epochs": 2.0, "max_epochs": 90, "stopped_on_plateau": True,
               "eval_curve": [(48, 0.5), (96, 0.4)]}
    budget = {**plateau, "stopped_on_plateau": False, "eval_curve": [(48, 0.3), (96, 0.2)]}
    training = {"TopK": {0: plateau}, "overcomplete TopK": {"0": budget}, "No rotation": {0: {"steps": 0, "epochs": 0.0}},
                "old row": {0: {"steps": 96, "epochs": 2.0}}, "other seed": {1: plateau}}
    png, drawn = plot_training_curves(training, 0)
    assert png.startswith(b"\x89PNG") and drawn == ["TopK", "overcomplete TopK"]  # int or JSON-string seed keys
    assert plot_training_curves({"old row": {0: {"steps": 96, "epochs": 2.0}}}, 0) is None


def test_missing_wordnet_is_a_clear_error_naming_the_files(tmp_path):
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(SystemExit, match=r"data\.verb.*data\.adj.*data\.adv.*missing; install Debian's wordnet-base"):
        benchmark_quality.read_wordnet_glosses(tmp_path)


def test_overcomplete_models_start_threshold_sweeps_where_ours_do():
    """`ExportedSAE.dense_codes` is ReLU(pre) of every latent, as our SAE's (not its TopK- or θ-capped codes), for
    the same weights; its `encode` keeps its own rule. The dense-code kind is part of its cache fingerprint."""
    import torch

    import cedar_hf

    torch.manual_seed(0)
    d = 16
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES["topk_sae"]
    ours = model_class(config_class(d_in=d, expansion_factor=4, k=3, decoder_bias=False))
    x = torch.randn(50, d)
    ours.set_normalization(*ours.compute_normalization(x))
    with torch.no_grad():
        ours.b_enc.normal_()
    for rule, threshold in (("topk", None), ("batchtopk", 0.3)):
        export = {"W_enc": ours.W_enc.detach(), "b_enc": ours.b_enc.detach(), "dictionary": ours.W_dec.detach(),
                  "rule": rule, "threshold": threshold, "k": 3}
        theirs = benchmark_quality.ExportedSAE(export, ours.mean, ours.scale)
        dense = theirs.dense_codes(x)
        torch.testing.assert_close(dense, ours.dense_codes(x))
        assert int((dense > 0).sum(-1).max()) > 3  # more than the k its own rule keeps
        if rule == "topk":
            torch.testing.assert_close(theirs.encode(x), ours.encode(x))
            assert int((theirs.encode(x) != 0).sum(-1).max()) == 3
    fp = benchmark_quality.run_fingerprint
    assert fp({"steps": 5, "eval_fvu": 0.1, "dense_codes": "relu(pre)"}) != fp({"steps": 5, "eval_fvu": 0.1})
    assert fp({"steps": 5, "eval_fvu": 0.1}) == [5, 0.1]  # our rows' fingerprints (and cached entries) unchanged


def test_a_larger_patience_continues_the_largest_smaller_one_and_zero_is_the_largest(tmp_path):
    """`_shorter_patience`: a run at patience P continues the cached run of the largest positive patience below P;
    patience 0 (no plateau stop) is above every positive one, so it continues the longest cached run."""
    base = "data-cedar-hf-8x-90ep"
    for patience in (3, 10):
        (tmp_path / f"{base}-p{patience}" / "TopK-seed0").mkdir(parents=True)
    (tmp_path / f"{base}-p30").mkdir()  # a larger patience without this model: not a candidate
    path = tmp_path / f"{base}-pX" / "TopK-seed0"
    found = {patience: benchmark_quality._shorter_patience(path, _opts(patience=patience, tag=f"{base}-p{patience}"),
                                                           tmp_path)
             for patience in (3, 5, 10, 50, 0)}
    assert found[3] is None
    assert found[5] == found[10] == tmp_path / f"{base}-p3" / "TopK-seed0"
    assert found[50] == found[0] == tmp_path / f"{base}-p10" / "TopK-seed0"


def test_the_report_says_when_trainings_stopped_and_that_patience_0_never_stops():
    assert benchmark_quality_report.stopping_rule(10).endswith("has not improved by 0.2 % for 10 epochs")
    never = benchmark_quality_report.stopping_rule(0)
    assert "no plateau stop" in never and "whole budget" in never and "0.2 %" not in never
    assert "kept for the curves" in never  # the runs evaluate every epoch (test above)
    older = benchmark_quality_report.stopping_rule(0, curves=False)  # a committed run from before that
    assert "no held-out curve kept" in older and "kept for the curves" not in older
    assert [benchmark_quality_report.patience_label(p) for p in (0, 10)] == ["no plateau stop", "patience 10"]


def test_curves_of_several_result_files_are_one_figure_labelled_by_stopping_rule(tmp_path, capsys):
    row = {"steps": 96, "epochs": 2, "max_epochs": 270, "stopped_on_plateau": False,
           "eval_curve": [[48, 0.6], [96, 0.5]]}
    for patience in (10, 0):
        (tmp_path / f"p{patience}.json").write_text(json.dumps(
            {"settings": {"patience": patience}, "training": {"TopK": {"0": row, "1": row}}}))
    out = tmp_path / "curves.png"
    benchmark_quality_report.main([str(tmp_path / "p10.json"), str(tmp_path / "p0.json"), "--curves", str(out)])
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "2 runs: TopK (patience 10); TopK (no plateau stop)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no run of seed 5"):
        benchmark_quality_report.main([str(tmp_path / "p0.json"), "--curves", str(out), "--seed", "5"])
    with pytest.raises(SystemExit, match="missing.json: no such file"):
        benchmark_quality_report.main([str(tmp_path / "missing.json"), "--curves", str(out)])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="bad.json: not a quality benchmark result"):
        benchmark_quality_report.main([str(tmp_path / "bad.json"), "--curves", str(out)])
