"""Answers stored as they are given: one small JSON file per answer, written atomically.

A crash (of the server, the machine, the browser) loses at most the answer being written, never an earlier one, and
a reader never sees half a file. The folder loads with `datasets.load_dataset(folder, split="train")` (its README.md
card declares the column types) or `load_answers(folder)`: every record has the same columns, whatever the study.

Columns: `participant`, `task`, `study`, `choice` (study 1: the position on the 5-point scale, 0 = "Strongly prefer
A"; −1 otherwise), `selected` (study 2: positions of the selected options), `ratings` (study 3: 1–3 per option in
the order shown), `time` (UTC, ISO 8601). Positions refer to the options as shown; the key de-randomises them.
Answering a task again replaces the earlier answer (the file is named by participant and task).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

import datasets

from cedar_hf.atomic import atomic_path, read_json

COLUMNS = ("participant", "task", "study", "choice", "selected", "ratings", "time")
FEATURES = datasets.Features({"participant": datasets.Value("string"), "task": datasets.Value("string"),
                              "study": datasets.Value("int64"), "choice": datasets.Value("int64"),
                              "selected": datasets.Sequence(datasets.Value("int64")),
                              "ratings": datasets.Sequence(datasets.Value("int64")), "time": datasets.Value("string")})
# The folder's dataset card: its `dataset_info` gives `datasets.load_dataset(folder)` the column types (JSON alone
# cannot type a column whose first values are empty lists).
CARD = """---
dataset_info:
  features:
  - {name: participant, dtype: string}
  - {name: task, dtype: string}
  - {name: study, dtype: int64}
  - {name: choice, dtype: int64}
  - {name: selected, sequence: int64}
  - {name: ratings, sequence: int64}
  - {name: time, dtype: string}
---
# cedar-hf user-study answers

One JSON file per answer (`<participant>__<task>.json`), written when it was given. The key that de-randomises the
option positions is the study's `key.json`, kept apart. Load with `datasets.load_dataset(this_folder, split="train")`.
"""
_SAFE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def check_participant(participant: str) -> str:
    """A participant id usable in a file name (letters, digits, `_ . -`, at most 64)."""
    participant = str(participant).strip()
    if not _SAFE.match(participant):
        raise ValueError(f"participant id {participant!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return participant


def answer_record(participant: str, task: dict, choice: Optional[int] = None, selected: Sequence[int] = (),
                  ratings: Sequence[int] = ()) -> dict:
    """One answer, checked against its task (a `tasks.json` entry): the value and the task are named on error."""
    study, n_options, name = int(task["study"]), len(task["options"]), task["task"]
    record = {"participant": check_participant(participant), "task": name, "study": study, "choice": -1,
              "selected": [], "ratings": [], "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if study == 1:
        if choice is None or not 0 <= int(choice) < len(task["scale"]):
            raise ValueError(f"task {name}: choice={choice!r} must be a position on the {len(task['scale'])}-point scale")
        record["choice"] = int(choice)
    elif study == 2:
        positions = sorted({int(s) for s in selected})
        if any(not 0 <= s < n_options for s in positions):
            raise ValueError(f"task {name}: selected={list(selected)} must be option positions in [0, {n_options})")
        record["selected"] = positions
    else:
        values = [int(r) for r in ratings]
        if len(values) != n_options or any(not 1 <= r <= len(task["scale"]) for r in values):
            raise ValueError(f"task {name}: ratings={list(ratings)} must be {n_options} ratings in 1..{len(task['scale'])}")
        record["ratings"] = values
    return record


def save_answer(answers_dir, record: dict) -> Path:
    """Write one answer record as `<answers_dir>/<participant>__<task>.json`, atomically."""
    path = Path(answers_dir) / f"{check_participant(record['participant'])}__{record['task']}.json"
    card = Path(answers_dir) / "README.md"
    if not card.exists():
        with atomic_path(card) as tmp:
            tmp.write_text(CARD)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, ensure_ascii=False))
    return path


def answered_tasks(answers_dir, participant: str) -> set[str]:
    """Tasks this participant has answered already (so a returning participant resumes where they stopped)."""
    folder = Path(answers_dir)
    prefix = f"{check_participant(participant)}__"
    return {p.stem[len(prefix):] for p in folder.glob(f"{prefix}*.json")} if folder.is_dir() else set()


def load_tasks(public_dir) -> list[dict]:
    """The tasks participants see (`<public_dir>/tasks.json`, written by `build_study`), in order."""
    path = Path(public_dir) / "tasks.json"
    if not path.is_file():
        raise ValueError(f"no tasks.json in {str(public_dir)!r}: give the `public` folder `cedar-hf study build` wrote")
    data = read_json(path, "study tasks")
    if data.get("format") != "cedar-hf-study/1" or not data.get("tasks"):
        raise ValueError(f"{str(path)!r} is not a cedar-hf study (format {data.get('format')!r}, "
                         f"{len(data.get('tasks') or [])} tasks)")
    return data["tasks"]


def load_answers(answers_dir) -> datasets.Dataset:
    """Every stored answer as a `datasets.Dataset` (the `json` builder over the folder's files)."""
    files = sorted(str(p) for p in Path(answers_dir).glob("*.json"))
    if not files:
        raise ValueError(f"no answers in {str(answers_dir)!r} (expected <participant>__<task>.json files)")
    return datasets.load_dataset("json", data_files=files, features=FEATURES, split="train")


__all__ = ["CARD", "COLUMNS", "FEATURES", "answer_record", "answered_tasks", "check_participant", "load_answers", "load_tasks", "save_answer"]
