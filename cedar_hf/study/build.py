"""Build the CEDAR paper's three user studies (App. D) as tasks: seeded randomisation, the key kept apart.

    build_study("study/", images, dictionaries={"cedar": cedar, "msae": msae}, backbone=coca, studies=(1, 2))
    build_study("study3/", images, caption_dictionaries={"cedar": c, "no-rotation": n}, caption_backbone=blip,
                studies=(3,))

- Study 1 (method preference): an image and two 5-concept explanations A and B; which method is A is drawn per task.
  Answer on a 5-point scale (`STUDY1_SCALE`).
- Study 2 (concept selection): an image and the top 3 concepts of each of two methods, shown together in a random
  order; select all that are relevant. A word both methods give is shown once and credited to both (the key lists
  every method behind each option), so no participant sees a duplicate and the analysis stays exact.
- Study 3 (description quality): an image and the captions of the dense model and of each caption dictionary
  (sparse visual tokens), in a random order; each rated 1–3 (`STUDY3_SCALE`).

Output: `<dir>/public/` holds only what participants see (`tasks.json`, the images renamed to their task ids);
`<dir>/key.json` says which method produced each option. `cedar-hf study serve <dir>/public` never reads the key;
`cedar-hf study analyze` joins the answers with it. With more than two dictionaries, studies 1 and 2 get tasks for
every pair. Randomisation uses `random.Random(seed)`, the same on every platform.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from tqdm.auto import tqdm

from cedar_hf.data.images import open_images
from cedar_hf.interpret.captions import sparse_captions
from cedar_hf.interpret.explanations import explain
from cedar_hf.interpret.naming import resolve_backbone
from cedar_hf.atomic import atomic_path

STUDY1_SCALE = ("Strongly prefer A", "Slightly prefer A", "Equally prefer A and B", "Slightly prefer B",
                "Strongly prefer B")
STUDY3_SCALE = ("1 – Does not describe the image", "2 – Partially describes the image", "3 – Describes the image")
PROMPTS = {
    1: "Which list of concepts describes the image better?",
    2: "Select all concepts that are relevant to the image (any number, or none).",
    3: "How well does each description reflect the image? Judge the overall impression, not fine details.",
}
FORMAT = "cedar-hf-study/1"
DENSE = "dense"


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))


def concept_lists(images: Sequence, dictionaries: Mapping[str, Any], backbone, n: int = 5,
                  k: Optional[int] = None) -> list[dict[str, list[str]]]:
    """Per image, each dictionary's `n` strongest named concepts (positive end first, as `explain` orders them)."""
    out = [dict() for _ in images]
    for method, dictionary in dictionaries.items():
        for i, explanation in enumerate(tqdm(explain(dictionary, list(images), backbone=backbone, k=k or n),
                                             desc=f"concepts ({method})", disable=len(images) < 20)):
            names = [name for name in explanation.names if name][:n]
            if len(names) < n:
                raise ValueError(f"dictionary {method!r} gives only {len(names)} active concepts for image {i}; "
                                 f"a study needs {n} (raise k or n_concepts)")
            out[i][method] = names
    return out


def caption_sets(images: Sequence, dictionaries: Mapping[str, Any], backbone, k: Optional[int] = None,
                 **generate_kwargs) -> list[dict[str, str]]:
    """Per image, the dense caption (`"dense"`) and each dictionary's caption from sparse visual tokens."""
    dense = backbone.caption(list(images), **{"max_new_tokens": 30, **generate_kwargs})
    out = [{DENSE: caption} for caption in dense]
    for method, dictionary in dictionaries.items():
        for row, caption in zip(out, sparse_captions(backbone, dictionary, list(images), k=k, **generate_kwargs)):
            row[method] = caption
    return out


def _study1(names: dict, pair: tuple, rng: random.Random) -> tuple[dict, dict]:
    order = list(pair)
    rng.shuffle(order)  # which method is A, drawn per task
    public = {"options": [names[m] for m in order], "scale": list(STUDY1_SCALE)}
    return public, {"options": [[m] for m in order]}


def _study2(names: dict, pair: tuple, rng: random.Random, per_method: int = 3) -> tuple[dict, dict]:
    credited: dict[str, list[str]] = {}
    for method in pair:
        for name in names[method][:per_method]:
            credited.setdefault(name, []).append(method)  # a word both give is shown once, credited to both
    options = list(credited)
    rng.shuffle(options)
    return {"options": options}, {"options": [credited[o] for o in options], "per_method": per_method}


def _study3(captions: dict, rng: random.Random) -> tuple[dict, dict]:
    methods = list(captions)
    rng.shuffle(methods)
    return ({"options": [captions[m] for m in methods], "scale": list(STUDY3_SCALE)},
            {"options": [[m] for m in methods]})


def make_tasks(study: int, per_image: Sequence[dict], seed: int, pairs: Optional[Sequence[tuple]] = None):
    """Public tasks and their key for one study from per-image inputs (concept lists or captions), seeded."""
    rng = random.Random(f"cedar-hf-study-{study}-{seed}")
    tasks, key = [], {}
    for p, pair in enumerate(pairs or [None]):
        for i, item in enumerate(per_image):
            task = f"s{study}-{p:02d}-{i:03d}" if pairs and len(pairs) > 1 else f"s{study}-{i:03d}"
            if study == 3:
                public, secret = _study3(item, rng)
            else:
                public, secret = (_study1 if study == 1 else _study2)(item, pair, rng)
            tasks.append({"task": task, "study": study, "image": i, "prompt": PROMPTS[study], **public})
            key[task] = {"study": study, "image": i, **({"pair": list(pair)} if pair else {}), **secret}
    return tasks, key


def _pairs(methods: Sequence[str]) -> list[tuple]:
    if len(methods) < 2:
        raise ValueError(f"studies 1 and 2 compare two methods; got dictionaries {list(methods)}")
    return list(itertools.combinations(methods, 2))


def _select_images(images: Sequence, n_tasks: Optional[int], seed: int) -> list[int]:
    indices = list(range(len(images)))
    if n_tasks is None or n_tasks >= len(indices):
        return indices
    if n_tasks < 1:
        raise ValueError(f"n_tasks={n_tasks} must be at least 1")
    return sorted(random.Random(f"cedar-hf-images-{seed}").sample(indices, n_tasks))


def write_study(output_dir, images: Sequence, tasks: list, key: dict, meta: dict) -> Path:
    """Write `public/tasks.json`, `public/images/<task>.png` and `key.json` (all atomic)."""
    output_dir = Path(output_dir)
    public = output_dir / "public"
    (public / "images").mkdir(parents=True, exist_ok=True)
    for task in tasks:
        name = f"images/{task['task']}.png"  # named by the task id: the file name reveals nothing
        with atomic_path(public / name) as tmp:
            images[task["image"]].save(tmp, format="PNG")
        task["image"] = name
    _write_json(public / "tasks.json", {"format": FORMAT, "tasks": tasks,
                                        "scales": {"1": list(STUDY1_SCALE), "3": list(STUDY3_SCALE)}})
    _write_json(output_dir / "key.json", {"format": FORMAT, **meta, "tasks": key})
    return output_dir


def build_study(output_dir, images: Sequence, dictionaries: Optional[Mapping[str, Any]] = None,
                caption_dictionaries: Optional[Mapping[str, Any]] = None, backbone: Any = None,
                caption_backbone: Any = None, studies: Sequence[int] = (1, 2), n_tasks: Optional[int] = 8,
                seed: int = 0, n_concepts: int = 5, k: Optional[int] = None, caption_kwargs: Optional[dict] = None) -> Path:
    """Make the tasks of `studies` from images (PIL images or paths) and write them (see the module docstring).

    Args:
        dictionaries: name -> dictionary for studies 1 and 2 (e.g. {"cedar": ..., "msae": ...}).
        caption_dictionaries: name -> `vision_tokens` dictionary of `caption_backbone` for study 3.
        backbone / caption_backbone: encoders (objects, names/paths, or None for the dictionaries' config.backbone).
        n_tasks: images per study (a seeded sample of them; None: all). n_concepts: concepts per list in study 1.
        k: active latents for the explanations (default n_concepts) and the sparse captions (the dictionary's k).
    """
    studies = sorted(set(int(s) for s in studies))
    if not studies or any(s not in (1, 2, 3) for s in studies):
        raise ValueError(f"studies={studies} must be a non-empty subset of (1, 2, 3)")
    images = open_images(images) if all(isinstance(i, (str, Path)) for i in images) else list(images)
    if not images:
        raise ValueError("build_study needs at least one image")
    chosen = _select_images(images, n_tasks, seed)
    picked = [images[i] for i in chosen]
    tasks, key = [], {}
    if {1, 2} & set(studies):
        if not dictionaries:
            raise ValueError("studies 1 and 2 need dictionaries={name: dictionary, ...} (two or more)")
        pairs = _pairs(list(dictionaries))
        first = next(iter(dictionaries.values()))
        names = concept_lists(picked, dictionaries, resolve_backbone(backbone, first), n=n_concepts, k=k)
        for study in {1, 2} & set(studies):
            t, kk = make_tasks(study, names, seed, pairs)
            tasks, key = tasks + t, {**key, **kk}
    if 3 in studies:
        if not caption_dictionaries:
            raise ValueError("study 3 needs caption_dictionaries={name: vision_tokens dictionary, ...}")
        first = next(iter(caption_dictionaries.values()))
        captioner = resolve_backbone(caption_backbone, first)
        t, kk = make_tasks(3, caption_sets(picked, caption_dictionaries, captioner, k=k, **(caption_kwargs or {})), seed)
        tasks, key = tasks + t, {**key, **kk}
    meta = {"seed": seed, "studies": studies, "methods": list(dictionaries or {}),
            "caption_methods": [DENSE, *list(caption_dictionaries or {})], "images": chosen, "n_concepts": n_concepts}
    return write_study(output_dir, picked, sorted(tasks, key=lambda t: t["task"]), key, meta)


__all__ = ["STUDY1_SCALE", "STUDY3_SCALE", "build_study", "caption_sets", "concept_lists", "make_tasks", "write_study"]
