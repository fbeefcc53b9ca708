"""`scripts/benchmark_topk_ablation.py`: the reference run cut to the variants' epochs, the reproduction check and the
report table (overcomplete's initialisation itself: tests/test_models.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark_topk_ablation as ablation  # noqa: E402


def _row(epochs, per_epoch=48, start=0.5, stopped=True):
    curve = [(per_epoch * (e + 1), start / (e + 1)) for e in range(epochs)]
    return {"steps": per_epoch * epochs, "epochs": epochs, "max_epochs": 270, "train_seconds": 100.0 * epochs,
            "stopped_on_plateau": stopped, "eval_fvu": curve[-1][1], "eval_curve": curve}


def test_reference_cut_to_the_variants_epochs():
    row = ablation.first_epochs(_row(228), epochs=90, n_train=50000, changes="overcomplete")
    assert row["epochs"] == 90 and row["steps"] == 90 * 48 and len(row["eval_curve"]) == 90
    assert row["eval_fvu"] == pytest.approx(0.5 / 90) and not row["stopped_on_plateau"]
    assert row["train_seconds"] == pytest.approx(9000.0)
    assert row["full_run"] == {"epochs": 228, "eval_fvu": 0.5 / 228, "stopped_on_plateau": True, "max_epochs": 270}


def test_reproduction_check_measures_the_largest_difference_over_common_epochs():
    ours, stored = _row(5), _row(143)
    ours["eval_curve"][2] = (ours["eval_curve"][2][0], ours["eval_curve"][2][1] + 0.003)
    check = ablation.reproduction_check(ours, stored)
    assert check["epochs"] == 5 and check["max_abs_fvu_difference"] == pytest.approx(0.003)
    assert ablation.reproduction_check(None, stored) is None and ablation.reproduction_check(ours, {}) is None


def test_markdown_lists_every_run_with_its_fvu_at_each_mark():
    runs = {"ours": {"0": {**_row(90), "changes": "nothing", "dead_share": 0.125, "rare_share": 0.25,
                      "dense_share": 0.0, "effective_latents_share": 0.5, "encoder_decoder_cosine": 0.75,
                      "matched_k": {"0.25": 29.4375, "0.30": 21.5, "0.35": None}}},
            "overcomplete TopK": {"0": ablation.first_epochs(_row(228), 90, 50000, "itself")}}
    text = ablation.markdown({"seed": 0, "protocol": "P", "runs": runs, "reference": "quality_topk-270ep.json",
                              "reproduction_check": {"against": "x", "epochs": 90, "max_abs_fvu_difference": 1e-4}},
                             [1, 30, 90])
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert f"{0.5 / 30:.4f}" in lines["| ours"] and "12.5 %" in lines["| ours"] and "25.0 %" in lines["| ours"] and "| 0.750 |" in lines["| ours"]
    assert "| 29.44 | 21.50 | — |" in lines["| ours"]  # K at 0.25 / 0.30, 0.35 out of reach
    assert f"{0.5 / 90:.4f}" in lines["| overcomplete TopK"]
    assert "| — | — | — | — | — | — | — | — |" in lines["| overcomplete TopK"]  # no K, no usage: not measured
    assert "1.00e-04" in text and "Protocol: P" in text


def test_every_variant_builds_and_names_real_training_arguments():
    import dataclasses

    import cedar_hf

    fields = {f.name for f in dataclasses.fields(cedar_hf.TrainingArgs)}
    config_class, _ = cedar_hf.DICTIONARY_CLASSES["topk_sae"]
    for name, (changes, config, overrides) in ablation.VARIANTS.items():
        built = config_class(d_in=24, expansion_factor=8, k=4, residual_aux_coefficient=0.1, **config)
        assert all(getattr(built, key) == value for key, value in config.items()) and changes, name
        assert set(overrides) <= fields, name


def test_matched_k_is_the_quality_benchmarks_k_and_is_stored_once(tmp_path, monkeypatch):
    """`matched_k` finds the K `compare_models` (the quality benchmark's evaluation) reports at each target, and
    `usage` stores it beside the run: a second call reads usage.json instead of measuring again. An overcomplete run
    file of the same weights gives a row with the same K and its own curve."""
    import datasets
    import torch

    import cedar_hf
    from cedar_hf.evaluation import compare_models

    from builders import planted_sparse

    torch.manual_seed(0)
    d = 24
    x, _, _ = planted_sparse(900, d, k=3)
    x_train, x_val = x[:600], x[600:]
    paths = {}
    for split, x in (("train", x_train), ("val", x_val)):
        paths[split] = tmp_path / split
        datasets.Dataset.from_dict({"embedding": x.tolist(), "label": [0] * len(x)}).save_to_disk(str(paths[split]))
    config_class, model_class = cedar_hf.DICTIONARY_CLASSES["topk_sae"]
    model = model_class(config_class(d_in=d, expansion_factor=4, k=12, decoder_bias=False))  # overcomplete's form
    model.set_normalization(*model.compute_normalization(x_train))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):  # far enough that the FVU targets are within reach
        model(x_train).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        model.normalize_decoder()
    model.eval().save_pretrained(tmp_path / "run")
    found = ablation.matched_k(ablation.load_ours(tmp_path / "run"), paths)
    report = compare_models({"m": model}, x_val, ablation.TARGETS, train_data=x_train, progress=False)
    expected = {f"{e['target']:.2f}": e["K"] if e["reached"] else None for e in report["models"]["m"]["matched"]}
    assert found.keys() == expected.keys() and any(v is not None for v in found.values())
    for target, k in expected.items():
        assert found[target] == (pytest.approx(k, rel=1e-6) if k is not None else None), target

    monkeypatch.setattr(ablation, "firing", lambda model, path: {"dead_share": 0.0})
    path = tmp_path / "run" / "usage.json"
    stored = ablation.usage(path, lambda: ablation.load_ours(tmp_path / "run"), paths)
    assert path.exists() and stored["matched_k"] == found
    monkeypatch.setattr(ablation, "matched_k", lambda model, paths: pytest.fail("measured again"))
    assert ablation.usage(path, lambda: pytest.fail("loaded again"), paths) == stored

    # the same weights as an overcomplete run file (its export's keys; no b_dec, as overcomplete has none)
    monkeypatch.undo()
    monkeypatch.setattr(ablation.sys.modules["benchmark_quality"], "CACHE", tmp_path)
    torch.save({"mean": model.mean.clone(), "scale": model.scale.clone()},
               tmp_path / f"overcomplete-inputs-{tmp_path.name}.pt")
    history = [{"epoch": e, "step": 10 * e, "eval/fvu": 0.5 / e} for e in (1, 2, 3)]
    export = {"rule": "topk", "k": 12, "W_enc": model.W_enc.detach(), "b_enc": model.b_enc.detach(),
              "dictionary": model.W_dec.detach(), "threshold": None, "steps": 30, "epochs": 3, "seconds": 9.0,
              "stopped_on_plateau": False, "history": history}
    torch.save({"topk": export}, tmp_path / "overcomplete.pt")
    row = ablation.overcomplete_row(tmp_path / "overcomplete.pt", paths, epochs=3)
    assert row["eval_curve"] == [(10, 0.5), (20, 0.25), (30, 0.5 / 3)] and row["epochs"] == 3
    assert (tmp_path / "overcomplete.usage.json").exists() and row["dead_share"] >= 0
    for target, k in found.items():
        assert row["matched_k"][target] == (pytest.approx(k, rel=1e-5) if k is not None else None), target


def test_results_name_writes_its_own_report_beside_the_committed_one(tmp_path, monkeypatch):
    """`--results-name`: a run of other epochs or another seed is written to its own stem, never over
    topk_ablation.*."""
    monkeypatch.setattr(ablation, "RESULTS", tmp_path)
    runs = {"overcomplete TopK": {"1": ablation.first_epochs(_row(228), 90, 50000, "itself")}}
    results = {"seed": 1, "epochs": 90, "protocol": "P", "runs": runs, "reference": "quality_topk-270ep.json",
               "reproduction_check": None}
    ablation.write_report(results, [1, 90], "topk_ablation_270ep_seed1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "topk_ablation_270ep_seed1.json", "topk_ablation_270ep_seed1.md", "topk_ablation_270ep_seed1_curves.png"]
    assert "Protocol: P" in (tmp_path / "topk_ablation_270ep_seed1.md").read_text()
