"""Embeddings as `datasets`: extraction from images or texts through a frozen backbone, and loading back.

A saved embedding dataset is a `datasets.Dataset` folder (`save_to_disk`: Arrow, memory-mapped) with columns
- `embedding` (float32): a length-d list per row for pooled sites (`image_embeds`, `text_embeds`); for
  `vision_tokens` one row per image holding its `(N, d)` token matrix (an `Array2D`), so `with_format("torch")`
  yields `(B, N, d)` batches and an image's tokens stay together;
- `id` (str): relative file path for image folders, the source's `id` column or the row index otherwise;
- `modality` ("image" | "text"); `label` when the source has one; `text` for text rows;
plus `cedar_metadata.json` (backbone, site, dim, dtype, count, mean, skipped ids, source) in the same folder.

Extraction is written in shards under `<output_dir>.partial/`; a shard appears (atomic rename) only once all
its rows are embedded, so an interrupted run resumes from the first missing shard without losing or duplicating
a row. Under `accelerate launch` each process embeds its share of the shards; the main process merges them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from accelerate import PartialState
from datasets import (
    Array2D,
    Dataset,
    Features,
    List,
    Value,
    concatenate_datasets,
    load_from_disk,
)
from datasets.utils import (
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
)
from tqdm.auto import tqdm

from ..atomic import read_json, recover_directory, replace_directory, write_json
from ..backbones import load_backbone
from ..backbones.text import MINILM_ALIASES, minilm_path
from ..version import __version__
from .loading import METADATA_FILE, load_embeddings
from .sources import Source, resolve_source
from .stream import EmbeddingStream, compute_mean

logger = logging.getLogger(__name__)

FORMAT = "cedar-hf-embeddings/1"
IMAGE_SITES = ("image_embeds", "vision_tokens")


# ---- extraction --------------------------------------------------------------------------------------------
def extract_embeddings(backbone, source, output_dir: Union[str, os.PathLike], site: Optional[str] = None, *,
                       split: Optional[str] = None, image_column: Optional[str] = None,
                       text_column: Optional[str] = None, label_column: Optional[str] = None,
                       id_column: Optional[str] = None, prompt: Optional[str] = None, batch_size: int = 32,
                       shard_size: Optional[int] = None, on_error: str = "skip", max_samples: Optional[int] = None,
                       device=None, dtype=None, overwrite: bool = False):
    """Embed every image (or text) of `source` with a frozen backbone into a `datasets.Dataset` saved on disk.

    Args:
        backbone: a `Backbone` or a name/path for `cedar_hf.load_backbone`.
        source: an image folder (class sub-folders become `label`), a saved `datasets` folder, a Hub dataset id,
            a `datasets.Dataset`/`DatasetDict`, a `.txt` file (one text per line) or a list of texts.
        output_dir: where the dataset is saved (`save_to_disk`), with `cedar_metadata.json`.
        site: `image_embeds`, `vision_tokens` (one row per image holding its token matrix) or `text_embeds`;
            None infers it (`text_embeds` for a text-only backbone such as MiniLM or a text source, else
            `image_embeds`).
        split, image_column, text_column, label_column, id_column: how to read a dataset source (auto-detected).
        prompt: for texts, a template like `"a photo of {}"`.
        batch_size: rows per forward pass. shard_size: rows per shard, the unit of resumption and what is held in
            memory at once (default 1024; 64 for `vision_tokens`, whose rows are whole token matrices).
        on_error: `"skip"` an unreadable image (reported by id in a warning and in the metadata's `skipped`) or
            `"raise"` a `ValueError` naming it.
        max_samples: embed only the first rows. device, dtype: for loading `backbone` by name.
        overwrite: start again, discarding partial work; the existing output is replaced only once the new
            one is complete (a failing run leaves it as it was). Otherwise a finished output of the same
            backbone, site, source and prompt is returned as is, one of other settings is refused, and an
            interrupted run resumes.

    Returns:
        The saved dataset, loaded back (memory-mapped).
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error={on_error!r} must be 'skip' or 'raise'")
    state = process_state()
    output = Path(output_dir)
    partial = output.with_name(output.name + ".partial")
    if state.is_main_process:
        recover_directory(output)  # a replaced output renamed aside by a killed run comes back
    if not hasattr(backbone, "embed_images"):
        backbone = load_backbone(backbone, device=device or (state.device if state.num_processes > 1 else None), dtype=dtype)
    site = site or infer_site(backbone, source)
    if shard_size is None:
        shard_size = 64 if site == "vision_tokens" else 1024
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size={shard_size!r} must be a positive integer")
    dim = backbone.dim(site)
    modality = "text" if site == "text_embeds" else "image"
    src = resolve_source(source, modality, split, image_column=image_column, text_column=text_column,
                          label_column=label_column, id_column=id_column)
    n_rows = len(src.ids) if max_samples is None else min(max_samples, len(src.ids))
    plan = {"backbone": backbone_id(backbone), "site": site, "normalized": bool(getattr(backbone, "normalize", False)),
            "backbone_dtype": str(backbone.dtype), "count": n_rows, "shard_size": shard_size, "source": src.description,
            "prompt": prompt, "ids_sha1": hashlib.sha1("\n".join(src.ids[:n_rows]).encode()).hexdigest()}
    if not overwrite and _finished(output, plan):
        logger.info("%s is already a finished embedding dataset; returning it (overwrite=True to redo)", output)
        return load_embeddings(output)
    if overwrite and state.is_main_process:  # the old output stays until the new one replaces it
        shutil.rmtree(partial, ignore_errors=True)
    state.wait_for_everyone()
    _check_plan(partial, plan, state)
    n_shards = (n_rows + shard_size - 1) // shard_size
    mine = [i for i in range(n_shards) if i % state.num_processes == state.process_index and not _shard_dir(partial, i).exists()]
    _extract_shards(backbone, src, site, dim, partial, mine, n_rows, shard_size, batch_size, on_error, prompt, state)
    state.wait_for_everyone()
    if state.is_main_process:
        _merge(partial, output, n_shards, plan, backbone, site, dim, modality, src)
    state.wait_for_everyone()
    return load_embeddings(output)


def infer_site(backbone, source) -> str:
    """The site a backbone and source imply: `text_embeds` for a text-only backbone (e.g. MiniLM) or a text
    source (a .txt file, a list of strings) when the backbone has texts, else `image_embeds`."""
    sites = tuple(getattr(backbone, "sites", ()) or ())
    if "image_embeds" not in sites:
        return "text_embeds"
    texts = (isinstance(source, (str, os.PathLike)) and str(source).endswith((".txt", ".txt.gz"))) or (
        isinstance(source, (list, tuple)) and bool(source) and all(isinstance(t, str) for t in source))
    return "text_embeds" if texts and "text_embeds" in sites else "image_embeds"


def backbone_id(backbone) -> str:
    """What the metadata records as the backbone: its Hub id or short name, never a path into site-packages
    (the offline MiniLM is recorded as its Hub id, which `load_backbone` resolves offline)."""
    name = str(backbone.name_or_path)
    if not os.path.isdir(name):
        return name
    try:
        if Path(name).resolve() == Path(minilm_path()).resolve():
            return MINILM_ALIASES[-1]
    except ImportError:
        pass
    if {"site-packages", "dist-packages"} & set(Path(name).resolve().parts):
        return Path(name).name
    return name


def _finished(output: Path, plan: dict) -> bool:
    """True when `output` is a finished dataset of this plan; a `ValueError` when it holds other embeddings."""
    metadata_file = output / METADATA_FILE
    if not metadata_file.exists():
        if output.exists() and any(output.iterdir()):
            raise ValueError(f"output_dir={str(output)!r} exists and is not a finished cedar-hf embedding dataset; "
                             "choose another folder or pass overwrite=True")
        return False
    metadata = read_json(metadata_file, "embedding metadata")
    saved = metadata.get("plan") or metadata  # datasets of older versions record no plan: compare what they have
    keys = ("backbone", "site", "source", "normalized", "prompt", "count", "ids_sha1")
    changed = {k: (saved.get(k), plan[k]) for k in keys if k in saved and saved.get(k) != plan[k]}
    if "plan" not in metadata:
        changed.pop("count", None)  # the kept rows, not the planned ones
    if changed:
        raise ValueError(f"output_dir={str(output)!r} already holds other embeddings {changed} (saved, asked); "
                         "choose another folder or pass overwrite=True to replace them")
    return True


def process_state():
    """Accelerate's `PartialState`: under `accelerate launch`/`torchrun` this process's rank and share.

    Accelerate forms a gloo process group on a machine without an accelerator only when told `cpu=True`
    (otherwise each launched process would think it is alone and embed everything)."""
    available = getattr(torch, "accelerator", None) is not None and torch.accelerator.is_available()
    state = PartialState(cpu=not available)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and state.num_processes != world_size:
        raise RuntimeError(
            f"launched as {world_size} processes but accelerate's state says {state.num_processes}: a PartialState/"
            "Accelerator was created before without cpu=True on a machine without GPUs; create it with cpu=True "
            "(or call cedar_hf.data.process_state() first)"
        )
    return state


def _shard_dir(partial: Path, index: int) -> Path:
    return partial / f"shard-{index:05d}"


def _check_plan(partial: Path, plan: dict, state) -> None:
    """Write the plan of a fresh run, or check that a resumed run is the same run."""
    plan_file = partial / "plan.json"
    if state.is_main_process and not plan_file.exists():
        partial.mkdir(parents=True, exist_ok=True)
        write_json(plan_file, plan, indent=1)
    state.wait_for_everyone()
    previous = read_json(plan_file, "extraction plan")
    if previous != plan:
        changed = {k: (previous.get(k), v) for k, v in plan.items() if previous.get(k) != v}
        raise ValueError(f"{partial} holds an interrupted extraction with different settings {changed} "
                         "(old, new); pass overwrite=True to start again")


def _extract_shards(backbone, src: Source, site, dim, partial, shards, n_rows, shard_size, batch_size, on_error,
                    prompt, state) -> None:
    todo = sum(min(shard_size, n_rows - i * shard_size) for i in shards)
    with tqdm(total=todo, desc=f"extract {site}", unit=src.modality, disable=not state.is_local_main_process) as bar:
        for index in shards:
            rows = list(range(index * shard_size, min((index + 1) * shard_size, n_rows)))
            embeddings, kept, errors = [], [], []
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                vectors, ok = _embed_batch(backbone, src, site, batch, prompt, on_error, errors)
                embeddings += list(vectors)
                kept += ok
                bar.update(len(batch))
            _write_shard(partial, index, src, site, dim, embeddings, kept, errors)


def _embed_batch(backbone, src: Source, site, rows, prompt, on_error, errors) -> tuple[np.ndarray, list[int]]:
    if src.modality == "text":
        return backbone.embed_texts([src.texts[i] for i in rows], batch_size=len(rows), prompt=prompt).numpy(), rows
    images, ok = [], []
    for i in rows:
        try:
            images.append(src.read_image(i))
            ok.append(i)
        except Exception as err:  # PIL raises many types; each is reported by id
            if on_error == "raise":
                raise ValueError(f"image {src.ids[i]!r} could not be read: {err}") from err
            logger.warning("skipping unreadable image %r: %s", src.ids[i], err)
            errors.append({"id": src.ids[i], "error": f"{type(err).__name__}: {err}"})
    if not images:
        return np.zeros((0,), dtype=np.float32), []
    return backbone.embed_images(images, sites=(site,), batch_size=len(images))[site].numpy(), ok


def _features(src: Source, site: str, dim: int, n_tokens: Optional[int]):
    embedding = Array2D((n_tokens, dim), "float32") if site == "vision_tokens" else List(Value("float32"), length=dim)
    features = {"embedding": embedding, "id": Value("string"), "modality": Value("string")}
    if src.labels is not None:
        features["label"] = src.label_feature
    if src.texts is not None:
        features["text"] = Value("string")
    return Features(features)


def _write_shard(partial: Path, index: int, src: Source, site, dim, embeddings, rows, errors) -> None:
    """Save one shard under a temporary name, then rename it: a shard directory exists only when complete."""
    if embeddings:
        matrix = np.stack(embeddings).astype(np.float32)  # (n, d) or (n, N, d)
        n_tokens = matrix.shape[1] if site == "vision_tokens" else None
    else:  # every image of the shard was unreadable: an empty shard (kept for resumption, left out of the merge)
        matrix, n_tokens = [], 1 if site == "vision_tokens" else None  # an empty list: datasets accepts no (0, d)
    columns: dict[str, Any] = {
        "embedding": matrix,
        "id": [src.ids[i] for i in rows],
        "modality": [src.modality] * len(rows),
    }
    if src.labels is not None:
        columns["label"] = [src.labels[i] for i in rows]
    if src.texts is not None:
        columns["text"] = [src.texts[i] for i in rows]
    dataset = Dataset.from_dict(columns, features=_features(src, site, dim, n_tokens))
    final, tmp = _shard_dir(partial, index), partial / f"tmp-shard-{index:05d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet_datasets():
        dataset.save_to_disk(str(tmp))
    (tmp / "cedar_errors.json").write_text(json.dumps(errors))
    os.replace(tmp, final)


@contextmanager
def _quiet_datasets():
    """No `datasets` progress bar per shard save (ours counts rows); restores the previous setting."""
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _merge(partial: Path, output: Path, n_shards: int, plan: dict, backbone, site, dim, modality, src) -> None:
    """Concatenate the shards in order, save with metadata under a temporary name, rename, clean up."""
    parts, skipped = [], []
    for index in range(n_shards):
        shard = _shard_dir(partial, index)
        if not shard.exists():
            raise RuntimeError(f"shard {index} of {n_shards} is missing in {partial}; rerun to resume")
        skipped += json.loads((shard / "cedar_errors.json").read_text())
        dataset = load_from_disk(str(shard))
        if len(dataset):
            parts.append(dataset)
    if not parts:
        raise ValueError(f"no row could be embedded from {src.description} ({len(skipped)} unreadable)")
    merged = concatenate_datasets(parts)
    if len(set(merged["id"])) != len(merged):  # cannot happen by construction; guard the promise anyway
        raise RuntimeError("duplicate ids after merging shards")
    tmp = output.with_name(output.name + ".merging")
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet_datasets():
        merged.save_to_disk(str(tmp))

    metadata = {
        "format": FORMAT,
        "backbone": plan["backbone"],
        "backbone_class": type(backbone).__name__,
        "site": site,
        "modality": modality,
        "dim": dim,
        "tokens_per_row": len(merged[0]["embedding"]) if site == "vision_tokens" else None,
        "dtype": "float32",
        "backbone_dtype": str(backbone.dtype).replace("torch.", ""),
        "normalized": bool(getattr(backbone, "normalize", False)),
        "count": len(merged),
        "mean": compute_mean(EmbeddingStream(merged)).tolist(),
        "skipped": skipped,
        "source": src.description,
        "prompt": plan["prompt"],
        "shard_size": plan["shard_size"],
        "plan": plan,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cedar_hf_version": __version__,
    }
    (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=1))
    replace_directory(tmp, output)  # an old output (overwrite=True) is renamed aside, then deleted
    shutil.rmtree(partial, ignore_errors=True)
    if skipped:
        logger.warning("%d unreadable image(s) skipped: %s", len(skipped), ", ".join(e["id"] for e in skipped[:20]))


__all__ = ["extract_embeddings", "process_state"]
