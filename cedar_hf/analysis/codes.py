"""Inputs of every analysis: embeddings from a dataset, their sparse codes, modality masks and aligned pairs.

Codes are kept as `scipy.sparse.csr_matrix` `(N, n_latents)`: a k-sparse code costs N·k numbers, so a 6144-latent
dictionary over 100k embeddings fits in memory. Any `datasets.Dataset` with an `embedding` column works (a
folder saved with `save_to_disk`, the output of `cedar-hf extract`, or one built in a test), as do plain
tensors / arrays.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from ..data import embedding_matrix

ArrayLike = Union[torch.Tensor, np.ndarray]
DataLike = Union[str, os.PathLike, ArrayLike, Any]  # Any: a datasets.Dataset


@torch.no_grad()
def compute_codes(
    model, data: DataLike, batch_size: int = 1024, k: Optional[int] = None, progress: bool = True
) -> sp.csr_matrix:
    """Sparse codes `(N, n_latents)` of every embedding (token rows: the codes averaged over the row's tokens).

    Args:
        model: any cedar-hf dictionary (only `encode` is used).
        data: a dataset with an `embedding` column, its folder, or a tensor / array `(N, d)` or `(N, T, d)`.
        batch_size: rows encoded at once.
        k: active latents per embedding (the model's default when None).
        progress: show a tqdm bar.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    x = embedding_matrix(data, flatten_tokens=False)
    if x.dim() not in (2, 3):
        raise ValueError(f"embeddings must have shape (N, d) or (N, T, d), got {tuple(x.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    blocks = []
    for start in tqdm(range(0, x.shape[0], batch_size), desc="encoding", disable=not progress, unit="batch"):
        codes = model.encode(x[start : start + batch_size].to(device), k=k).float()
        if codes.dim() == 3:  # (B, T, n) -> (B, n)
            codes = codes.mean(1)
        blocks.append(sp.csr_matrix(codes.cpu().numpy()))
    model.train(was_training)
    if not blocks:
        raise ValueError("the dataset is empty: no embeddings to encode")
    return sp.vstack(blocks, format="csr")


def modality_masks(dataset, modalities: Optional[Sequence[str]] = None) -> tuple[tuple[str, str], np.ndarray]:
    """Which rows belong to the first modality (`image` by default) and the second (`text`).

    Returns `((name_a, name_b), is_a)` with `is_a` a boolean array; rows of neither modality raise. When
    `modalities` is None, ("image", "text") is used if present, else the two distinct values in sorted order.
    """
    if "modality" not in dataset.column_names:
        raise ValueError("dataset has no 'modality' column: modality analyses need image and text rows")
    values = np.asarray(dataset["modality"], dtype=object)
    present = sorted(set(values.tolist()))
    if modalities is None:
        modalities = ("image", "text") if {"image", "text"} <= set(present) else tuple(present)
    if len(modalities) != 2 or not set(modalities) <= set(present):
        raise ValueError(f"modalities={tuple(modalities)} must be two of the values present {present}")
    return (modalities[0], modalities[1]), values == modalities[0]


def _read_pairs_file(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    if path.suffix == ".json":
        return [tuple(map(str, pair)) for pair in json.loads(text)]
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [tuple(map(str, row.values() if isinstance(row, dict) else row))[:2] for row in rows]
    rows = list(csv.reader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ","))
    if rows and rows[0][:2] in (["image_id", "text_id"], ["id_a", "id_b"]):
        rows = rows[1:]
    return [(row[0], row[1]) for row in rows if row]


def pair_indices(
    dataset, pairs: Union[None, str, os.PathLike, Sequence[tuple[str, str]]] = None, modalities=None
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices `(rows_a, rows_b)` of aligned (image, text) pairs.

    `pairs` is a list of `(id_a, id_b)` (values of the `id` column) or a file of them (.csv/.tsv with two
    columns, .json list of pairs, .jsonl). When None, rows sharing a `pair_id` value are paired (one row of each
    modality per pair).
    """
    (name_a, name_b), is_a = modality_masks(dataset, modalities)
    if pairs is None:
        if "pair_id" not in dataset.column_names:
            raise ValueError("no pairs given and the dataset has no 'pair_id' column: pass pairs=[(id_a, id_b), ...]")
        keys = np.asarray(dataset["pair_id"], dtype=object)
        first_a: dict = {}
        first_b: dict = {}
        for row, key in enumerate(keys):
            (first_a if is_a[row] else first_b).setdefault(key, row)
        common = [key for key in first_a if key in first_b]
        return np.array([first_a[k] for k in common], dtype=int), np.array([first_b[k] for k in common], dtype=int)
    if isinstance(pairs, (str, os.PathLike)):
        pairs = _read_pairs_file(Path(pairs))
    if "id" not in dataset.column_names:
        raise ValueError("pairs are given by id but the dataset has no 'id' column")
    row_of = {str(value): row for row, value in enumerate(dataset["id"])}
    missing = [pair for pair in pairs if pair[0] not in row_of or pair[1] not in row_of]
    if missing:
        raise ValueError(f"{len(missing)} pair(s) name ids not in the dataset, e.g. {missing[:3]}")
    rows_a = np.array([row_of[a] for a, _ in pairs], dtype=int)
    rows_b = np.array([row_of[b] for _, b in pairs], dtype=int)
    if not (is_a[rows_a].all() and not is_a[rows_b].any()):
        raise ValueError(f"each pair must be ({name_a} id, {name_b} id)")
    return rows_a, rows_b


def to_numpy(array) -> np.ndarray:
    """float64 numpy copy of a tensor / array / sparse matrix (dense)."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().double().numpy()
    if sp.issparse(array):
        return array.toarray().astype(np.float64)
    return np.asarray(array, dtype=np.float64)


def directions_of(model_or_atoms) -> np.ndarray:
    """Concept directions `(n_latents, d)` of a model (its `concept_directions`) or of an atom matrix."""
    atoms = getattr(model_or_atoms, "concept_directions", model_or_atoms)
    atoms = to_numpy(atoms)
    if atoms.ndim != 2:
        raise ValueError(f"concept directions must be a matrix (n_latents, d), got shape {atoms.shape}")
    return atoms


def unit_rows(atoms: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero): SAE atoms are not unit norm, cosine needs them to be."""
    norms = np.linalg.norm(atoms, axis=1, keepdims=True)
    return atoms / np.where(norms > 0, norms, 1.0)
