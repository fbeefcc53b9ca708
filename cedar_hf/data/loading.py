"""Loading embedding datasets back: the one reader of datasets, their metadata and their embedding matrix.

Every part of the package (training, evaluation, interpretation, analysis, the baselines and the Hub) reads
embeddings through these functions, so a path, a `datasets.Dataset` or a Hub id is accepted everywhere and
refused with the same message everywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Union

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..hub.ids import is_hub_id

METADATA_FILE = "cedar_metadata.json"
"""Written beside an extracted dataset: backbone, site, dim, dtype, count, mean, skipped ids, source."""

DataLike = Union[str, os.PathLike, "datasets.Dataset", torch.Tensor, np.ndarray]  # noqa: F821


def load_dataset(data: Any, split: str = "train"):
    """
    A `datasets.Dataset` from a `save_to_disk` folder (memory-mapped), a Hub dataset id (`split`), a
    `DatasetDict` (`split`) or a `Dataset` (returned as is).

    Raises:
        ValueError: naming `data` when the folder is missing or is not a saved dataset, or the split is absent.
    """
    if isinstance(data, datasets.Dataset):
        return data
    if isinstance(data, datasets.DatasetDict):
        return _split(data, split, "the DatasetDict")
    if not isinstance(data, (str, os.PathLike)):
        raise ValueError(f"expected a dataset folder, a Hub dataset id or a datasets.Dataset, got {type(data).__name__}")
    path = os.fspath(data)
    if not os.path.exists(path):
        if is_hub_id(path):
            return _split(datasets.load_dataset(path), split, path)
        raise ValueError(f"embedding dataset {path!r} does not exist")
    if not os.path.isdir(path):
        raise ValueError(f"dataset path {path!r} is not a folder written by Dataset.save_to_disk")
    try:
        loaded = datasets.load_from_disk(path)
    except FileNotFoundError as err:
        raise ValueError(f"{path!r} is not a folder written by Dataset.save_to_disk: {err}") from err
    return _split(loaded, split, path) if isinstance(loaded, datasets.DatasetDict) else loaded


def _split(dataset_dict, split: str, where: str):
    if split not in dataset_dict:
        raise ValueError(f"{where!r} holds splits {list(dataset_dict)}; pass the folder of one split (no {split!r})")
    return dataset_dict[split]


def load_embeddings(path: Union[str, os.PathLike], format: Optional[str] = None):
    """The embedding dataset saved at `path` (memory-mapped `datasets.Dataset`; `format="torch"` for tensors).
    Raises a `ValueError` when it has no `embedding` column."""
    if not Path(path).is_dir():
        raise ValueError(f"{str(path)!r} is not a folder holding an embedding dataset (see cedar-hf extract)")
    dataset = load_dataset(path)
    if "embedding" not in dataset.column_names:
        raise ValueError(f"{str(path)!r} is not an embedding dataset: expected a Dataset with an 'embedding' column")
    return dataset.with_format(format) if format else dataset


def dataset_folder(dataset) -> Optional[str]:
    """The folder a memory-mapped dataset was loaded from, or None for an in-memory one."""
    files = [entry["filename"] for entry in getattr(dataset, "cache_files", []) or []]
    return os.path.dirname(os.path.abspath(files[0])) if files else None


def read_metadata(data: Any, required: bool = True) -> dict:
    """
    The `cedar_metadata.json` of an embedding dataset (a folder path, or a `Dataset` loaded from one).

    Args:
        required: raise a `ValueError` when there is none (a dataset not written by `cedar-hf extract`);
            with False, return `{}` instead.
    """
    folder = os.fspath(data) if isinstance(data, (str, os.PathLike)) else dataset_folder(data)
    file = Path(folder) / METADATA_FILE if folder else None
    if file is None or not file.is_file():
        if required:
            raise ValueError(f"{folder or 'the in-memory dataset'!r} has no {METADATA_FILE}: not a finished "
                             "cedar-hf embedding dataset")
        return {}
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(file)!r} is not valid JSON: {err}") from err


def embedding_matrix(data: DataLike, *, flatten_tokens: bool) -> torch.Tensor:
    """
    All embeddings of a dataset, a path to one, a tensor or an array, as one float32 tensor (loaded into memory).

    Args:
        flatten_tokens: with True, token-matrix rows `(N, T, d)` become one row per token `(N·T, d)` (what the
            metrics compare); with False they keep their shape (what per-image analyses average over).
    """
    if isinstance(data, torch.Tensor):
        x = data.detach().float().cpu()
    elif isinstance(data, np.ndarray):
        x = torch.from_numpy(np.asarray(data, dtype=np.float32))
    else:
        x = _dataset_embeddings(load_dataset(data))
    if x.dim() < 2:
        raise ValueError(f"embeddings must be at least 2-D (N, d), got shape {tuple(x.shape)}")
    return x.reshape(-1, x.shape[-1]) if flatten_tokens else x


def _dataset_embeddings(dataset) -> torch.Tensor:
    """The `embedding` column as float32 `(rows, d)` or `(rows, T, d)`, read straight from Arrow."""
    if "embedding" not in dataset.column_names:
        raise ValueError(f"dataset has no 'embedding' column (columns: {dataset.column_names})")
    if len(dataset) == 0:
        raise ValueError("the embedding dataset is empty")
    flat = arrow_to_numpy(dataset.with_format("arrow")["embedding"])  # honours select()/shuffle() indices
    row_shape = np.asarray(dataset[0]["embedding"], dtype=np.float32).shape
    if flat.size != len(dataset) * int(np.prod(row_shape)):
        raise ValueError(f"embedding rows have different shapes: expected every row to be {row_shape} like the first")
    return torch.from_numpy(flat.reshape(len(dataset), *row_shape))


class RaggedRowsError(ValueError):
    """Embedding rows of different lengths; `positions` are the offending rows of the array read (top level)."""

    def __init__(self, message: str, positions: list[int]):
        super().__init__(message)
        self.positions = positions


def _check_equal_lengths(array, level: int) -> None:
    """Every list of a variable-length list level must have the length of the first (else the rows are ragged)."""
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        odd = np.flatnonzero(lengths != lengths[0])
        where = "rows" if level == 0 else f"nested lists (level {level})"
        raise RaggedRowsError(
            f"embedding {where} have different lengths: the first has {int(lengths[0])} values but "
            f"{len(odd)} have {sorted(set(lengths[odd].tolist()))[:5]}; every row must have the same shape",
            odd.tolist() if level == 0 else [])


def arrow_to_numpy(column) -> np.ndarray:
    """Flatten a (possibly nested, possibly extension-typed) Arrow list column to a 1-D float32 array; ragged
    rows (variable-length lists of different lengths) raise a `RaggedRowsError`."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    level = 0
    while True:
        if isinstance(array, pa.ExtensionArray):
            array = array.storage
        elif pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
            _check_equal_lengths(array, level)
            array, level = array.flatten(), level + 1
        elif pa.types.is_fixed_size_list(array.type):
            array, level = array.flatten(), level + 1
        else:
            break
    if array.null_count:
        raise ValueError("the embedding column contains missing (null) values")
    return np.array(array.to_numpy(zero_copy_only=False), dtype=np.float32)  # writable copy


def dataset_labels(data, column: str, n_rows: int) -> list:
    """The `column` of a dataset, repeated per token when rows hold token matrices (`n_rows` > len)."""
    if column not in data.column_names:
        raise ValueError(f"labels column {column!r} not in dataset columns {data.column_names}")
    labels = list(data[column])
    if n_rows % len(labels):
        raise ValueError(f"{n_rows} embedding rows cannot be split evenly over {len(labels)} labels")
    repeat = n_rows // len(labels)
    return [label for label in labels for _ in range(repeat)]


__all__ = ["METADATA_FILE", "RaggedRowsError", "arrow_to_numpy", "dataset_folder", "dataset_labels", "embedding_matrix", "load_dataset", "load_embeddings",
           "read_metadata"]
