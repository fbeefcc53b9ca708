"""De-randomise the stored answers with the key and report the paper's Figures 5–7 with statistics.

- Study 1 (Figure 5): each answer becomes a preference for the pair's first method on −2..2 (strong/slight for the
  first, equal, slight/strong for the second), whichever label (A/B) that method had in the task. Reported: the five
  shares; a sign test (two-sided binomial test of the non-tied answers against ½) with a Clopper–Pearson 95%
  interval for the share preferring the first method; a Wilcoxon signed-rank test of the participants' mean
  preferences against 0 (participants, not answers, are the independent units).
- Study 2 (Figure 6): per answer, how many of each method's concepts were selected (0..3). Reported: the
  distribution per method; each method's selection rate with a Clopper–Pearson interval; a Wilcoxon signed-rank test
  and a sign test of the paired differences (first − second method) over answers.
- Study 3 (Figure 7): each rating (1–3) credited to the method behind the description. Reported: the distribution
  per method, the mean rating, the share of "3 – describes the image" with a Clopper–Pearson interval, and a Wilcoxon
  signed-rank test for every pair of methods over answers (paired: same participant and image).

The paper reports the distributions (no test is named there); the tests are this kit's choice, named in the report.
Tests with fewer than one non-zero difference report `null`. Outputs (atomic): `analysis.json`, `report.md` and one
PNG per figure (`figure5_<a>-vs-<b>.png`, `figure6_<a>-vs-<b>.png`, `figure7.png`).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from cedar_hf.atomic import atomic_path, read_json

from .plots import plot_distribution
from .stats import binomial_ci, sign_test, wilcoxon
from .store import load_answers

PREFERENCE = {0: 2, 1: 1, 2: 0, 3: -1, 4: -2}  # scale position (A-side first) -> preference for A


def _study1(rows: list[dict], key: dict) -> dict:
    by_pair = defaultdict(list)
    for row in rows:
        entry = key[row["task"]]
        first, second = entry["pair"]
        a_method = entry["options"][0][0]
        preference = PREFERENCE[row["choice"]] * (1 if a_method == first else -1)
        by_pair[(first, second)].append((row["participant"], preference))
    out = {}
    for (first, second), prefs in by_pair.items():
        values = np.array([p for _, p in prefs])
        labels = [f"strongly {first}", f"slightly {first}", "equal", f"slightly {second}", f"strongly {second}"]
        counts = [int((values == v).sum()) for v in (2, 1, 0, -1, -2)]
        per_participant = defaultdict(list)
        for participant, p in prefs:
            per_participant[participant].append(p)
        means = [float(np.mean(v)) for v in per_participant.values()]
        out[f"{first} vs {second}"] = {
            "methods": [first, second], "answers": len(values), "participants": len(means), "labels": labels,
            "counts": counts, "shares": [c / len(values) for c in counts],
            "ci95": [binomial_ci(c, len(values)) for c in counts], "mean_preference": float(values.mean()),
            "sign_test": sign_test(values), "wilcoxon_participant_means": wilcoxon(means)}
    return out


def _study2(rows: list[dict], key: dict) -> dict:
    by_pair = defaultdict(list)
    for row in rows:
        entry = key[row["task"]]
        selected = set(row["selected"])
        counts = {m: sum(1 for pos, methods in enumerate(entry["options"]) if m in methods and pos in selected)
                  for m in entry["pair"]}
        by_pair[tuple(entry["pair"])].append((counts, entry.get("per_method", 3)))
    out = {}
    for (first, second), items in by_pair.items():
        per_method = items[0][1]
        result = {"methods": [first, second], "answers": len(items), "per_method": per_method, "distribution": {}}
        for m in (first, second):
            c = np.array([counts[m] for counts, _ in items])
            result["distribution"][m] = [int((c == v).sum()) for v in range(per_method + 1)]
            result[f"selection_rate_{m}"] = float(c.sum() / (per_method * len(c)))
            result[f"selection_rate_ci95_{m}"] = binomial_ci(int(c.sum()), per_method * len(c))
        diffs = [counts[first] - counts[second] for counts, _ in items]
        result["wilcoxon"], result["sign_test"] = wilcoxon(diffs), sign_test(diffs)
        out[f"{first} vs {second}"] = result
    return out


def _study3(rows: list[dict], key: dict, scale: int = 3) -> dict:
    ratings = defaultdict(dict)  # (participant, task) -> method -> rating
    for row in rows:
        for methods, rating in zip(key[row["task"]]["options"], row["ratings"]):
            for m in methods:
                ratings[(row["participant"], row["task"])][m] = int(rating)
    methods = sorted({m for r in ratings.values() for m in r})
    out = {"methods": methods, "answers": len(ratings), "distribution": {}, "mean": {}, "top_share": {},
           "top_share_ci95": {}, "wilcoxon": {}}
    for m in methods:
        values = np.array([r[m] for r in ratings.values() if m in r])
        out["distribution"][m] = [int((values == v).sum()) for v in range(1, scale + 1)]
        out["mean"][m] = float(values.mean())
        out["top_share"][m] = float((values == scale).mean())
        out["top_share_ci95"][m] = binomial_ci(int((values == scale).sum()), len(values))
    for a, b in itertools.combinations(methods, 2):
        diffs = [r[a] - r[b] for r in ratings.values() if a in r and b in r]
        out["wilcoxon"][f"{a} vs {b}"] = wilcoxon(diffs)
    return out


def _fmt_p(p) -> str:
    return "n/a" if p is None else f"{p:.4g}"


def _ci(ci) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _markdown(results: dict) -> str:
    lines = ["# User study analysis", "", "Tests: sign test = two-sided binomial test of non-tied answers against ½;",
             "Wilcoxon = two-sided signed-rank test, zeros dropped; intervals: Clopper–Pearson 95%.", ""]
    for pair, r in results.get("study1", {}).items():
        lines += [f"## Study 1 — method preference ({pair}, Figure 5)", "", "| answer | count | share | 95% CI |",
                  "|---|---|---|---|"]
        lines += [f"| {lab} | {c} | {s:.2f} | {_ci(ci)} |" for lab, c, s, ci in zip(r["labels"], r["counts"], r["shares"], r["ci95"])]
        st, w = r["sign_test"], r["wilcoxon_participant_means"]
        lines += ["", f"{r['answers']} answers from {r['participants']} participants; mean preference for "
                  f"{r['methods'][0]} {r['mean_preference']:+.2f} (−2..2). Sign test: {st['positive']} prefer "
                  f"{r['methods'][0]}, {st['negative']} {r['methods'][1]}, {st['ties']} equal, p = {_fmt_p(st['p'])}, "
                  f"share {_ci(st['ci95'])}. Wilcoxon on participant means: p = {_fmt_p(w['p'])}.", ""]
    for pair, r in results.get("study2", {}).items():
        first, second = r["methods"]
        lines += [f"## Study 2 — concept selection ({pair}, Figure 6)", "",
                  "| selected of " + str(r["per_method"]) + " | " + " | ".join(r["methods"]) + " |",
                  "|---|" + "---|" * 2]
        lines += [f"| {v} | " + " | ".join(str(r["distribution"][m][v]) for m in r["methods"]) + " |"
                  for v in range(r["per_method"] + 1)]
        lines += ["", f"Selection rate: {first} {r['selection_rate_' + first]:.2f} {_ci(r['selection_rate_ci95_' + first])}, "
                  f"{second} {r['selection_rate_' + second]:.2f} {_ci(r['selection_rate_ci95_' + second])}. Paired "
                  f"differences ({first} − {second}) over {r['answers']} answers: Wilcoxon p = {_fmt_p(r['wilcoxon']['p'])}, "
                  f"sign test p = {_fmt_p(r['sign_test']['p'])}.", ""]
    if "study3" in results:
        r = results["study3"]
        lines += ["## Study 3 — description quality (Figure 7)", "", "| method | 1 | 2 | 3 | mean | share of 3 (95% CI) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {m} | " + " | ".join(map(str, r["distribution"][m])) + f" | {r['mean'][m]:.2f} | "
                  f"{r['top_share'][m]:.2f} {_ci(r['top_share_ci95'][m])} |" for m in r["methods"]]
        lines += [""] + [f"- Wilcoxon {pair}: p = {_fmt_p(w['p'])} ({w['nonzero']} non-zero of {w['n']})"
                         for pair, w in r["wilcoxon"].items()] + [""]
    return "\n".join(lines)


def analyze_study(study_dir, answers_dir=None, output_dir=None) -> dict:
    """Analyse `<study_dir>/answers` (or `answers_dir`) with `<study_dir>/key.json`; write the report files."""
    study_dir = Path(study_dir)
    key_path = study_dir / "key.json"
    if not key_path.is_file():
        raise ValueError(f"no key.json in {str(study_dir)!r}: give the folder `cedar-hf study build` wrote")
    key = read_json(key_path, "study key")["tasks"]
    rows = load_answers(answers_dir or study_dir / "answers").to_list()
    unknown = sorted({r["task"] for r in rows} - set(key))
    if unknown:
        raise ValueError(f"answers name tasks {unknown[:5]} that {str(key_path)!r} does not know")
    results = {}
    for study, fn, name in ((1, _study1, "study1"), (2, _study2, "study2"), (3, _study3, "study3")):
        subset = [r for r in rows if r["study"] == study]
        if subset:
            results[name] = fn(subset, key)
    output_dir = Path(output_dir or study_dir / "analysis")
    results["figures"] = plot_distribution(results, output_dir)
    with atomic_path(output_dir / "analysis.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    with atomic_path(output_dir / "report.md") as tmp:
        tmp.write_text(_markdown(results))
    return results


__all__ = ["analyze_study", "binomial_ci", "sign_test", "wilcoxon"]
