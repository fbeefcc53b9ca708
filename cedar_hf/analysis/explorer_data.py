"""Everything the explorer shows, computed once at startup: codes, energy, modality scores, a UMAP layout of the
concept directions, top-activating examples of each end, bridges and nearest directions of every concept.

The computed views are cached on disk (`cache_dir`, default `~/.cache/cedar-hf/explorer` or `$CEDAR_HF_CACHE`),
keyed by a hash of the model's weights and names, the dataset's fingerprint and the settings; each cache file is
written atomically (temp file in the same folder + `os.replace`), so a second start of the same model on the same
data skips encoding, bridges and UMAP.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_path
from ..data import embedding_matrix, load_dataset, read_metadata
from .bridge import GENERAL, bridge_definition, bridge_partners, coactivation_partners, same_axis_bridge
from .codes import compute_codes, directions_of, modality_masks, pair_indices, unit_rows
from .energy import concept_energy
from .modality import modality_scores

IMAGE_COLUMNS = ("image", "image_path", "path", "file_name", "filepath")
CACHE_VERSION = 2
WEAK_SCORE = 0.3  # the naming default (cedar_hf.interpret.naming.WEAK_SCORE); names files record their own


@dataclass
class ExplorerData:
    """Precomputed views of one dictionary over one embedding dataset (see `prepare_explorer_data`)."""

    labels: list[str]
    alternatives: list[list[tuple[str, float]]]
    energy: np.ndarray  # (n,)
    layout: np.ndarray  # (n, 2) UMAP coordinates
    top_rows: list[np.ndarray]  # per concept: rows of the named end (oriented value sign·code > 0), strongest first
    top_values: list[np.ndarray]  # their oriented values (> 0)
    neighbors: np.ndarray  # (n, m) most similar directions by |cos|
    neighbor_cos: np.ndarray  # (n, m) their signed cosine
    other_rows: list[np.ndarray] = field(default_factory=list)  # rows of the other end (oriented value < 0)
    other_values: list[np.ndarray] = field(default_factory=list)  # their oriented values (< 0)
    other_labels: list[str] = field(default_factory=list)  # the name of each axis's other end
    name_scores: Optional[np.ndarray] = None  # (n,) match score of each name, NaN when unnamed
    weak: Optional[np.ndarray] = None  # (n,) bool: name score below the names' weak_below
    directions: Optional[np.ndarray] = None  # (n, d) oriented unit directions (for search by meaning)
    origin: Optional[np.ndarray] = None  # (d,) decode(0): the centre queries are compared from
    self_bridge: Optional[np.ndarray] = None  # (n,) E_pairs[z_a,i z_b,i]: the same axis co-active across pairs
    bridge_definition: Optional[str] = None  # "bridge" (Eq. 6) or "co-activation" (orthogonal atoms)
    modality_names: Optional[tuple[str, str]] = None
    scores: Optional[np.ndarray] = None  # (n,) modality score, NaN for never-active concepts
    partners: Optional[np.ndarray] = None  # (n, m) strongest bridge partners
    partner_scores: Optional[np.ndarray] = None
    row_modality: Optional[list[str]] = None
    row_text: list[str] = field(default_factory=list)
    image_source: Optional[tuple[Any, str, Optional[str]]] = None  # (dataset, column, root): images, read lazily
    title: str = "dictionary"
    cached: bool = False  # True when the views came from the on-disk cache

    def image(self, row: int):
        """The image of a dataset row as a small RGB PIL image (None when the row has none)."""
        if self.image_source is None:
            return None
        dataset, column, root = self.image_source
        value = dataset[int(row)][column]
        if value is None:
            return None

        if root is not None:  # image-folder datasets: the id is the path relative to the folder
            value = os.path.join(root, str(value))
            if not os.path.isfile(value):
                return None
        image = value if isinstance(value, Image.Image) else Image.open(value)
        image = image.convert("RGB")
        image.thumbnail((256, 256))
        return image

    @property
    def n_latents(self) -> int:
        return len(self.labels)

    @property
    def energy_rank(self) -> np.ndarray:
        rank = np.empty(self.n_latents, dtype=int)
        rank[np.argsort(-self.energy, kind="stable")] = np.arange(1, self.n_latents + 1)
        return rank


def umap_layout(directions: np.ndarray, n_neighbors: int = 15, seed: int = 0) -> np.ndarray:
    """2-D UMAP (cosine metric) of the concept directions; any number of concepts works (tiny ones included)."""
    units = unit_rows(directions)
    n = units.shape[0]
    if n < 4:  # UMAP's graph needs a few points: lay tiny dictionaries out on their first two principal axes
        centred = units - units.mean(0)
        basis = np.linalg.svd(centred, full_matrices=False)[2][:2] if n > 1 else np.zeros((2, units.shape[1]))
        coords = centred @ basis.T
        return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    import umap

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        metric="cosine",
        random_state=seed,
        init="spectral" if n > 16 else "random",  # spectral init needs more points than components + 1
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(units), dtype=np.float64)


def _top_examples(codes, per_concept: int, signs: np.ndarray) -> tuple[list, list, list, list]:
    """Per concept, the strongest rows of each end: `(rows, values)` with oriented value `sign·code > 0` (the named
    end) and `(other_rows, other_values)` with `sign·code < 0`, each by decreasing |value|."""
    columns = codes.tocsc()
    rows, values, other_rows, other_values = [], [], [], []
    for i in range(columns.shape[1]):
        start, stop = columns.indptr[i], columns.indptr[i + 1]
        index, data = columns.indices[start:stop], columns.data[start:stop] * signs[i]
        for keep, out_rows, out_values in ((data > 0, rows, values), (data < 0, other_rows, other_values)):
            idx, val = index[keep], data[keep]
            order = np.argsort(-np.abs(val), kind="stable")[:per_concept]
            out_rows.append(idx[order])
            out_values.append(val[order])
    return rows, values, other_rows, other_values


def _nearest_directions(directions: np.ndarray, per_concept: int, block: int = 1024):
    units = unit_rows(directions)
    n = units.shape[0]
    m = max(0, min(per_concept, n - 1))
    neighbors, cosines = np.zeros((n, m), dtype=int), np.zeros((n, m))
    if m == 0:
        return neighbors, cosines
    for start in range(0, n, block):
        cos = units[start : start + block] @ units.T  # (block, n)
        strength = np.abs(cos)
        strength[np.arange(cos.shape[0]), start + np.arange(cos.shape[0])] = -1.0
        best = np.argsort(-strength, axis=1)[:, :m]
        neighbors[start : start + block], cosines[start : start + block] = best, np.take_along_axis(cos, best, 1)
    return neighbors, cosines


def _title(model) -> str:
    path = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "").rstrip("/")
    return path.split("/")[-1] if path else type(model).__name__


def _name_fields(model, labels: list[str]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """`(signs, other-end labels, name scores, weak)` from the model's concept names (defaults when unnamed)."""
    n = len(labels)
    names = getattr(model, "concept_names", None) or {}
    threshold = float(names.get("weak_below", WEAK_SCORE))
    signs, scores = np.ones(n), np.full(n, np.nan)
    others = [f"−{label}" for label in labels]
    for entry in names.get("names", []):
        i = int(entry.get("latent", -1))
        if not 0 <= i < n:
            continue
        signs[i] = -1.0 if int(entry.get("sign", 1)) < 0 else 1.0
        scores[i] = float(entry["score"]) if entry.get("score") is not None else np.nan
        if entry.get("opposite"):
            others[i] = str(entry["opposite"]["name"])
    weak = np.isfinite(scores) & (np.nan_to_num(scores, nan=1.0) < threshold)
    return signs, others, scores, weak


def _alternatives(model, n: int) -> list[list[tuple[str, float]]]:
    result: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    for entry in (getattr(model, "concept_names", None) or {}).get("names", []):
        latent = int(entry.get("latent", -1))
        if 0 <= latent < n:
            result[latent] = [(str(name), float(score)) for name, score in entry.get("alternatives", [])]
    return result


def _row_texts(dataset, n_rows: int, image_root: Optional[str]) -> tuple[list[str], Optional[tuple]]:
    """What each row shows (its text, else its id) and where its image comes from, if anywhere."""
    columns = getattr(dataset, "column_names", [])
    ids = [str(t) for t in dataset["id"]] if "id" in columns else [f"row {i}" for i in range(n_rows)]
    texts = list(dataset["text"]) if "text" in columns else [None] * n_rows
    shown = [str(text) if text else row_id for text, row_id in zip(texts, ids)]
    image_column = next((c for c in IMAGE_COLUMNS if c in columns), None)
    if image_column:
        return shown, (dataset, image_column, None)
    if image_root is not None and "id" in columns:
        return shown, (dataset, "id", str(image_root))
    return shown, None


def image_root_of(data) -> Optional[str]:
    """The image folder an extracted dataset came from (its `cedar_metadata.json` says "image folder <root>")."""
    if not isinstance(data, (str, os.PathLike)):
        return None
    source = str(read_metadata(data, required=False).get("source", ""))
    root = source[len("image folder "):] if source.startswith("image folder ") else None
    return root if root and os.path.isdir(root) else None


def default_cache_dir() -> Path:
    """`$CEDAR_HF_CACHE/explorer`, or `~/.cache/cedar-hf/explorer`."""
    root = os.environ.get("CEDAR_HF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cedar-hf")
    return Path(root) / "explorer"


def _data_fingerprint(dataset, x: torch.Tensor) -> str:
    fingerprint = getattr(dataset, "_fingerprint", None)
    if fingerprint:
        return f"dataset:{fingerprint}:{len(dataset)}"
    return "tensor:" + hashlib.sha256(x.detach().cpu().float().numpy().tobytes()).hexdigest()


def cache_key(model, dataset, x: torch.Tensor, settings: dict) -> str:
    """sha256 of the model's weights and names, the data's fingerprint and the settings that shape the views."""
    h = hashlib.sha256(f"v{CACHE_VERSION}:{type(model).__name__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    h.update(json.dumps(getattr(model, "concept_names", None), sort_keys=True, default=str).encode())
    h.update(_data_fingerprint(dataset, x).encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


_CACHED_ARRAYS = ("energy", "layout", "neighbors", "neighbor_cos", "scores", "partners", "partner_scores",
                  "self_bridge")
_CACHED_LISTS = ("top_rows", "top_values", "other_rows", "other_values")


def _save_cache(path: Path, view: "ExplorerData") -> None:
    """One .npz holding the computed arrays (ragged per-concept lists as flat arrays + offsets), atomically."""
    arrays = {key: getattr(view, key) for key in _CACHED_ARRAYS if getattr(view, key) is not None}
    for key in _CACHED_LISTS:
        items = getattr(view, key)
        arrays[f"{key}__flat"] = np.concatenate(items) if items else np.zeros(0)
        arrays[f"{key}__offsets"] = np.cumsum([0] + [len(item) for item in items])
    meta = {"modality_names": view.modality_names, "bridge_definition": view.bridge_definition}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, **arrays)


def _load_cache(path: Path) -> Optional[dict]:
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {key: f[key] for key in _CACHED_ARRAYS if key in f.files}
            for key in _CACHED_LISTS:
                flat, offsets = f[f"{key}__flat"], f[f"{key}__offsets"]
                cast = flat.astype(int) if key.endswith("rows") else flat
                out[key] = [cast[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            meta = json.loads(str(f["meta"]))
    except (OSError, KeyError, ValueError):
        return None  # a damaged or foreign file: recompute (and overwrite it)
    out["modality_names"] = tuple(meta["modality_names"]) if meta["modality_names"] else None
    out["bridge_definition"] = meta["bridge_definition"]
    return out


def _compute_views(model, dataset, x, directions, signs, is_dataset, pairs, modalities, examples, partners,
                   umap_neighbors, batch_size, seed, progress) -> dict:
    """The expensive part: codes, energies, examples of both ends, modality scores, bridges and the UMAP."""
    codes = compute_codes(model, x, batch_size=batch_size, progress=progress)
    n = directions.shape[0]
    top_rows, top_values, other_rows, other_values = _top_examples(codes, examples, signs)
    neighbors, neighbor_cos = _nearest_directions(directions, partners)
    out = dict(energy=concept_energy(codes), layout=umap_layout(directions, n_neighbors=umap_neighbors, seed=seed),
               top_rows=top_rows, top_values=top_values, other_rows=other_rows, other_values=other_values,
               neighbors=neighbors, neighbor_cos=neighbor_cos, modality_names=None, bridge_definition=None)
    has_modalities = is_dataset and "modality" in dataset.column_names and len(set(dataset["modality"])) >= 2
    if has_modalities:
        out["modality_names"], is_a = modality_masks(dataset, modalities)
        out["scores"] = modality_scores(codes[is_a], codes[~is_a])
        if pairs is not None or "pair_id" in dataset.column_names:
            rows_a, rows_b = pair_indices(dataset, pairs, modalities)
            if len(rows_a) and n > 1:
                definition = bridge_definition(directions)
                find = bridge_partners if definition == GENERAL else coactivation_partners
                atoms = (directions,) if definition == GENERAL else ()
                out["partners"], out["partner_scores"] = find(codes[rows_a], codes[rows_b], *atoms,
                                                              per_concept=partners, progress=progress)
                out["self_bridge"] = same_axis_bridge(codes[rows_a], codes[rows_b])
                out["bridge_definition"] = definition
    return out


def prepare_explorer_data(
    model,
    data,
    pairs=None,
    modalities=None,
    examples: int = 8,
    partners: int = 6,
    umap_neighbors: int = 15,
    batch_size: int = 1024,
    seed: int = 0,
    image_root: Optional[str] = None,
    progress: bool = True,
    cache_dir: Any = None,
) -> ExplorerData:
    """Compute every view of the explorer once (codes, energy, modality scores, UMAP, examples, bridges).

    Args:
        model: a cedar-hf dictionary (names from `model.concept_names` when it has been named).
        data: an embedding dataset or its folder: `embedding`, optional `modality` (two values enable the
            modality colouring), `text` / `id` (shown as examples), `image` or `image_path` (shown as images),
            `pair_id` (aligned pairs for bridges).
        pairs: aligned `(id_a, id_b)` pairs or a file of them (overrides `pair_id`).
        examples / partners: how many top-activating rows (per end) / bridge partners to keep per concept.
        image_root: folder the `id`s of image rows are relative to (default: read from `cedar_metadata.json`
            of an image-folder extraction).
        cache_dir: where computed views are cached (None: `default_cache_dir()`; False: no cache).
    """
    image_root = image_root if image_root is not None else image_root_of(data)
    dataset = data if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
    is_dataset = hasattr(dataset, "column_names")
    x = embedding_matrix(dataset, flatten_tokens=False)
    directions = directions_of(model)
    n = directions.shape[0]
    labels = list(getattr(model, "concept_labels", [f"latent {i}" for i in range(n)]))
    signs, other_labels, name_scores, weak = _name_fields(model, labels)
    settings = dict(pairs=None if pairs is None else (os.fspath(pairs) if isinstance(pairs, (str, os.PathLike))
                    else list(map(list, pairs))), modalities=modalities, examples=examples, partners=partners,
                    umap_neighbors=umap_neighbors, seed=seed)
    views = None
    path = None
    if cache_dir is not False:
        path = Path(cache_dir or default_cache_dir()) / f"{cache_key(model, dataset, x, settings)}.npz"
        views = _load_cache(path) if path.exists() else None
    cached = views is not None
    if views is None:
        views = _compute_views(model, dataset, x, directions, signs, is_dataset, pairs, modalities, examples,
                               partners, umap_neighbors, batch_size, seed, progress)
    with torch.no_grad():
        origin = model.decode(torch.zeros(1, n, dtype=next(model.parameters()).dtype))[0].float().cpu().numpy()
    view = ExplorerData(labels=labels, alternatives=_alternatives(model, n), title=_title(model),
                        other_labels=other_labels, name_scores=name_scores, weak=weak,
                        directions=unit_rows(directions) * signs[:, None], origin=origin,
                        **{key: value for key, value in views.items() if key in ExplorerData.__dataclass_fields__})
    if not cached and path is not None:
        _save_cache(path, view)
    view.cached = cached
    if is_dataset:
        view.row_text, view.image_source = _row_texts(dataset, x.shape[0], image_root)
        if view.modality_names is not None:
            view.row_modality = [str(m) for m in dataset["modality"]]
    else:
        view.row_text = [f"row {i}" for i in range(x.shape[0])]
    return view
