"""Streaming embedding rows from a `datasets.Dataset` without loading it into memory.

A dataset saved with `save_to_disk` is memory-mapped Arrow: reading a batch touches only its rows, so 1.28M ×
768 image embeddings or far larger token datasets (one `(N, d)` matrix per row) train with a few batches in RAM.
The order of every epoch is a seeded permutation, a pure function of `(seed, epoch)`: a resumed run, and every
process of a multi-process run, computes the same order with no state to carry.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import torch

METADATA_FILE = "cedar_metadata.json"


def load_dataset_any(data: Union[str, os.PathLike, "datasets.Dataset"]):  # noqa: F821
    """A `datasets.Dataset` from a `save_to_disk` folder (memory-mapped) or a dataset object as is."""
    import datasets

    if isinstance(data, datasets.Dataset):
        return data
    path = os.fspath(data)
    if not os.path.isdir(path):
        raise ValueError(f"dataset path {path!r} is not a folder written by Dataset.save_to_disk")
    loaded = datasets.load_from_disk(path)
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise ValueError(f"{path!r} holds splits {list(loaded)}; pass the folder of one split")
        loaded = loaded["train"]
    return loaded


def dataset_folder(dataset) -> Optional[str]:
    """The folder a memory-mapped dataset was loaded from, or None for an in-memory one."""
    files = [entry["filename"] for entry in getattr(dataset, "cache_files", []) or []]
    return os.path.dirname(os.path.abspath(files[0])) if files else None


def read_dataset_metadata(dataset) -> dict:
    """`cedar_metadata.json` of the dataset's folder (backbone, site, dim, ...), or `{}`."""
    folder = dataset_folder(dataset)
    path = os.path.join(folder, METADATA_FILE) if folder else None
    if path is None or not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def arrow_to_numpy(column: Union[pa.ChunkedArray, pa.Array]) -> np.ndarray:
    """Flatten a (possibly nested, possibly extension-typed) list column to a 1-D float32 array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    while True:
        if isinstance(array, pa.ExtensionArray):
            array = array.storage
        elif pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(
            array.type
        ):
            array = array.flatten()
        else:
            break
    if array.null_count:
        raise ValueError("the embedding column contains missing (null) values")
    return np.array(array.to_numpy(zero_copy_only=False), dtype=np.float32)  # writable copy


class EmbeddingStream:
    """
    Random access to the embedding rows of a dataset (a subset `rows` of it, or all), one batch at a time.

    Each row is a vector `(d,)` (pooled embeddings) or a token matrix `(N, d)`; `tokens_per_row` is N (1 for
    vectors). `read(positions)` returns float32 `(len(positions), *row_shape)` and raises a `ValueError` naming
    the ids of rows with NaN/Inf values.
    """

    def __init__(self, dataset, column: str = "embedding", rows: Optional[Sequence[int]] = None):
        self.dataset = load_dataset_any(dataset)
        if column not in self.dataset.column_names:
            raise ValueError(f"dataset has no column {column!r}; columns: {self.dataset.column_names}")
        self.column = column
        self._arrow = self.dataset.with_format("arrow", columns=[column])
        self.rows = np.arange(len(self.dataset), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        if len(self.rows) == 0:
            raise ValueError("the training dataset is empty (0 rows)" if rows is None else "the row selection is empty")
        first = self._arrow[int(self.rows[0])].column(column).to_pylist()[0]
        self.row_shape = tuple(np.asarray(first, dtype=np.float32).shape)
        if len(self.row_shape) not in (1, 2) or 0 in self.row_shape:
            raise ValueError(f"embedding rows must be vectors (d,) or token matrices (N, d); got shape {self.row_shape}")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dim(self) -> int:
        return self.row_shape[-1]

    @property
    def tokens_per_row(self) -> int:
        return int(np.prod(self.row_shape[:-1])) if len(self.row_shape) > 1 else 1

    def ids(self, positions: Sequence[int]) -> list[str]:
        """The `id` column of these positions (or `row <index>` when the dataset has no ids)."""
        row_ids = [int(self.rows[p]) for p in positions]
        if "id" not in self.dataset.column_names:
            return [f"row {r}" for r in row_ids]
        return [str(v) for v in self.dataset.select_columns(["id"])[row_ids]["id"]]

    def read(self, positions: Sequence[int]) -> np.ndarray:
        """Rows at these positions, float32 `(len(positions), *row_shape)`; NaN/Inf rows raise with their ids."""
        positions = np.asarray(positions, dtype=np.int64)
        table = self._arrow[self.rows[positions].tolist()]
        values = arrow_to_numpy(table.column(self.column))
        if values.size != len(positions) * int(np.prod(self.row_shape)):
            raise ValueError(
                f"embedding rows have different shapes: expected every row to be {self.row_shape} like the first"
            )
        values = values.reshape(len(positions), *self.row_shape)
        finite = np.isfinite(values.reshape(len(positions), -1)).all(-1)
        if not finite.all():
            bad = positions[~finite]
            raise ValueError(
                f"{len(bad)} embedding row(s) contain NaN or Inf values; ids: {self.ids(bad[:20])}"
                + (" ..." if len(bad) > 20 else "")
                + ". Drop them (e.g. dataset.filter) before training."
            )
        return values

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """The seeded permutation of positions for this epoch (the same in every process and on resume)."""
        return np.random.default_rng([int(seed), int(epoch)]).permutation(len(self.rows))

    def iter_blocks(self, block_rows: int, positions: Optional[np.ndarray] = None) -> Iterator[np.ndarray]:
        """Consecutive blocks of rows (all positions, or the given ones) for statistics and evaluation."""
        positions = np.arange(len(self.rows)) if positions is None else positions
        for start in range(0, len(positions), block_rows):
            yield self.read(positions[start : start + block_rows])


def statistics_positions(stream: EmbeddingStream, max_rows: Optional[int]) -> np.ndarray:
    """All positions, or `max_rows` evenly spaced ones."""
    if max_rows is None or max_rows >= len(stream):
        return np.arange(len(stream))
    return np.unique(np.linspace(0, len(stream) - 1, max_rows).round().astype(np.int64))


def compute_mean(stream: EmbeddingStream, max_rows: Optional[int] = None, block_rows: int = 4096) -> torch.Tensor:
    """Mean over all tokens (float64 accumulation), streamed. `(d,)` float32"""
    total = np.zeros(stream.dim, dtype=np.float64)
    count = 0
    for block in stream.iter_blocks(block_rows, statistics_positions(stream, max_rows)):
        flat = block.reshape(-1, stream.dim)
        total += flat.sum(0, dtype=np.float64)
        count += flat.shape[0]
    return torch.from_numpy(total / count).float()


def compute_mean_norm(stream: EmbeddingStream, mean: torch.Tensor, max_rows: Optional[int] = None,
                      block_rows: int = 4096) -> float:
    """E‖x − μ‖ over tokens, streamed (the SAE's scale is `√d / E‖x − μ‖`)."""
    mu = mean.double().numpy()
    total, count = 0.0, 0
    for block in stream.iter_blocks(block_rows, statistics_positions(stream, max_rows)):
        flat = block.reshape(-1, stream.dim).astype(np.float64) - mu
        total += float(np.linalg.norm(flat, axis=-1).sum())
        count += flat.shape[0]
    return total / count


def parse_mixture(spec: Union[str, dict, None]) -> Optional[dict[str, float]]:
    """`"image=1,text=3"` -> `{"image": 1.0, "text": 3.0}`."""
    if spec is None or spec == "" or isinstance(spec, dict):
        return spec or None
    weights = {}
    for part in str(spec).split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"mixture {spec!r}: expected 'modality=weight,...' (e.g. image=1,text=3)") from None
        if not sep or not name.strip() or weights[name.strip()] < 0:
            raise ValueError(f"mixture {spec!r}: expected 'modality=weight,...' with weights >= 0")
    if not any(weights.values()):
        raise ValueError(f"mixture {spec!r}: at least one weight must be > 0")
    return weights


def mixture_rows(dataset, mixture: Union[str, dict], seed: int = 0, column: str = "modality") -> np.ndarray:
    """
    Row indices whose modalities follow the ratio `mixture` (e.g. image:text = 1:3), as many as the data allows:
    the scarcest modality is used whole and the others are subsampled (seeded). Sorted.
    """
    weights = parse_mixture(mixture)
    if column not in dataset.column_names:
        raise ValueError(f"a mixture needs a {column!r} column; dataset columns: {dataset.column_names}")
    modality = np.asarray(dataset.select_columns([column])[column])
    available = {name: np.flatnonzero(modality == name) for name in weights}
    missing = [name for name, w in weights.items() if w > 0 and len(available[name]) == 0]
    if missing:
        raise ValueError(f"mixture asks for {missing} but the {column!r} column holds {sorted(set(modality.tolist()))}")
    scale = min(len(available[name]) / w for name, w in weights.items() if w > 0)
    rng = np.random.default_rng([int(seed), 7919])
    chosen = [rng.choice(available[name], int(np.floor(w * scale + 1e-9)), replace=False)
              for name, w in weights.items() if w > 0]
    return np.sort(np.concatenate(chosen))


__all__ = [
    "EmbeddingStream",
    "compute_mean",
    "compute_mean_norm",
    "dataset_folder",
    "load_dataset_any",
    "mixture_rows",
    "parse_mixture",
    "read_dataset_metadata",
]
