"""Streaming access to embedding datasets: rows read from memory-mapped Arrow in batches, never loaded whole;
streamed statistics (mean, mean norm) and batch iteration for training, evaluation and the baselines."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from .loading import RaggedRowsError, arrow_to_numpy, load_dataset


class EmbeddingStream:
    """
    Random access to the embedding rows of a dataset (a subset `rows` of it, or all), one batch at a time.

    Each row is a vector `(d,)` (pooled embeddings) or a token matrix `(N, d)`; `tokens_per_row` is N (1 for
    vectors). `read(positions)` returns float32 `(len(positions), *row_shape)` and raises a `ValueError` naming
    the ids of rows with NaN/Inf values.
    """

    def __init__(self, dataset, column: str = "embedding", rows: Optional[Sequence[int]] = None):
        self.dataset = load_dataset(dataset)
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
        try:
            values = arrow_to_numpy(table.column(self.column))
        except RaggedRowsError as err:
            named = f"; ids: {self.ids(positions[err.positions[:10]])}" if err.positions else ""
            raise ValueError(f"{err}{named} (rows of this dataset must all be {self.row_shape} like the first)") from err
        if values.size != len(positions) * int(np.prod(self.row_shape)):
            raise ValueError(
                f"embedding rows have different shapes: expected every row to be {self.row_shape} like the first, "
                f"ids {self.ids(positions[:10])} hold {values.size} values in all"
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
    """The training mean over all tokens (float64 accumulation), streamed. `(d,)` float32"""
    blocks = (torch.from_numpy(block) for block in stream.iter_blocks(block_rows, statistics_positions(stream, max_rows)))
    mean, _ = running_mean(blocks, stream.dim)
    return mean.float()


def running_mean(batches: Iterable[torch.Tensor], dim: int) -> tuple[torch.Tensor, int]:
    """`(mean (dim,) float64, count)` over the tokens of batches `(..., dim)`, accumulated in float64: the one
    mean computation behind every training mean (CEDAR's b, the SAEs' μ, Semi-NMF's and no-rotation's μ).
    Raises a `ValueError` when there are no tokens."""
    total, count = torch.zeros(dim, dtype=torch.float64), 0
    for batch in batches:
        flat = batch.reshape(-1, dim)
        total += flat.double().sum(0)
        count += flat.shape[0]
    if count == 0:
        raise ValueError("cannot compute a mean over an empty dataset (0 rows)")
    return total / count, count


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


def iter_embedding_batches(data: Any, batch_size: int, d_in: int) -> Iterator[torch.Tensor]:
    """`(B, d_in)` float32 batches, in order, from a tensor or a `datasets.Dataset` with an `embedding` column
    (rows `(d,)` or token matrices `(N, d)`, flattened token-wise). Reads slice by slice (memory-mapped Arrow)."""
    if isinstance(data, torch.Tensor):
        flat = data.reshape(-1, data.shape[-1])
        for start in range(0, flat.shape[0], batch_size):
            yield flat[start : start + batch_size].float()
        return
    if "embedding" not in getattr(data, "column_names", []):
        raise ValueError(f"expected a tensor or a datasets.Dataset with an 'embedding' column, got {type(data).__name__}")
    arrow = data.with_format("arrow", columns=["embedding"])
    for start in range(0, len(data), batch_size):
        values = arrow_to_numpy(arrow[start : start + batch_size].column("embedding"))
        yield torch.from_numpy(values.reshape(-1, d_in))


__all__ = [
    "EmbeddingStream",
    "arrow_to_numpy",
    "compute_mean",
    "compute_mean_norm",
    "iter_embedding_batches",
    "running_mean",
    "statistics_positions",
]
