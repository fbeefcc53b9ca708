"""Everything the explorer shows, computed once at startup: codes, energy, modality scores, a UMAP layout of the
concept directions, top-activating examples, bridge partners and nearest directions of every concept."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from ..data import embedding_matrix, load_dataset, read_metadata
from .bridge import bridge_partners
from .codes import compute_codes, directions_of, modality_masks, pair_indices, unit_rows
from .energy import concept_energy
from .modality import modality_scores

IMAGE_COLUMNS = ("image", "image_path", "path", "file_name", "filepath")


@dataclass
class ExplorerData:
    """Precomputed views of one dictionary over one embedding dataset (see `prepare_explorer_data`)."""

    labels: list[str]
    alternatives: list[list[tuple[str, float]]]
    energy: np.ndarray  # (n,)
    layout: np.ndarray  # (n, 2) UMAP coordinates
    top_rows: list[np.ndarray]  # per concept: dataset rows, strongest |activation| first
    top_values: list[np.ndarray]  # their activations (signed)
    neighbors: np.ndarray  # (n, m) most similar directions by |cos|
    neighbor_cos: np.ndarray  # (n, m) their signed cosine
    modality_names: Optional[tuple[str, str]] = None
    scores: Optional[np.ndarray] = None  # (n,) modality score, NaN for never-active concepts
    partners: Optional[np.ndarray] = None  # (n, m) strongest bridge partners
    partner_scores: Optional[np.ndarray] = None
    row_modality: Optional[list[str]] = None
    row_text: list[str] = field(default_factory=list)
    image_source: Optional[tuple[Any, str, Optional[str]]] = None  # (dataset, column, root): images, read lazily
    title: str = "dictionary"

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


def _top_examples(codes, per_concept: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    columns = codes.tocsc()
    rows, values = [], []
    for i in range(columns.shape[1]):
        start, stop = columns.indptr[i], columns.indptr[i + 1]
        index, data = columns.indices[start:stop], columns.data[start:stop]
        order = np.argsort(-np.abs(data), kind="stable")[:per_concept]
        rows.append(index[order])
        values.append(data[order])
    return rows, values


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
) -> ExplorerData:
    """Compute every view of the explorer once (codes, energy, modality scores, UMAP, examples, bridges).

    Args:
        model: a cedar-hf dictionary (names from `model.concept_names` when it has been named).
        data: an embedding dataset or its folder: `embedding`, optional `modality` (two values enable the
            modality colouring), `text` / `id` (shown as examples), `image` or `image_path` (shown as images),
            `pair_id` (aligned pairs for bridges).
        pairs: aligned `(id_a, id_b)` pairs or a file of them (overrides `pair_id`).
        examples / partners: how many top-activating rows / bridge partners to keep per concept.
        image_root: folder the `id`s of image rows are relative to (default: read from `cedar_metadata.json`
            of an image-folder extraction).
    """
    image_root = image_root if image_root is not None else image_root_of(data)
    dataset = data if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
    is_dataset = hasattr(dataset, "column_names")
    x = embedding_matrix(dataset, flatten_tokens=False)
    codes = compute_codes(model, x, batch_size=batch_size, progress=progress)
    directions = directions_of(model)
    n = directions.shape[0]
    labels = list(getattr(model, "concept_labels", [f"latent {i}" for i in range(n)]))
    top_rows, top_values = _top_examples(codes, examples)
    neighbors, neighbor_cos = _nearest_directions(directions, partners)
    view = ExplorerData(
        labels=labels, alternatives=_alternatives(model, n), energy=concept_energy(codes),
        layout=umap_layout(directions, n_neighbors=umap_neighbors, seed=seed), top_rows=top_rows,
        top_values=top_values, neighbors=neighbors, neighbor_cos=neighbor_cos,
        title=_title(model),
    )
    if is_dataset:
        view.row_text, view.image_source = _row_texts(dataset, x.shape[0], image_root)
    else:
        view.row_text = [f"row {i}" for i in range(x.shape[0])]
    has_modalities = is_dataset and "modality" in dataset.column_names and len(set(dataset["modality"])) >= 2
    if has_modalities:
        view.modality_names, is_a = modality_masks(dataset, modalities)
        view.scores = modality_scores(codes[is_a], codes[~is_a])
        view.row_modality = [str(m) for m in dataset["modality"]]
        if pairs is not None or "pair_id" in dataset.column_names:
            rows_a, rows_b = pair_indices(dataset, pairs, modalities)
            if len(rows_a) and n > 1:
                view.partners, view.partner_scores = bridge_partners(
                    codes[rows_a], codes[rows_b], directions, per_concept=partners, progress=progress
                )
    return view
