"""The data layer: embeddings extracted once, stored as `datasets`, and read back the same way everywhere.

- `extraction.py`: `extract_embeddings` — images/texts through a frozen backbone into a `datasets` folder
  (sharded, resumable, multi-process) with `cedar_metadata.json`;
- `sources.py`: where images/texts come from (folders, datasets, Hub ids, text files, lists);
- `loading.py`: `load_dataset` (path, `Dataset` or Hub id), `load_embeddings`, `read_metadata` (the one reader),
  `embedding_matrix(data, flatten_tokens=...)`, `dataset_labels`;
- `stream.py`: `EmbeddingStream` (memory-mapped batches), `compute_mean` / `running_mean` (the one training
  mean), `compute_mean_norm`, `iter_embedding_batches`;
- `mixtures.py`: image:text mixtures; `images.py`: `open_images`.

It imports no model: training, evaluation, interpretation, analysis, the baselines and the Hub build on it.
"""

from .extraction import extract_embeddings, process_state
from .images import open_images
from .loading import (
    METADATA_FILE,
    dataset_folder,
    dataset_labels,
    embedding_matrix,
    load_dataset,
    load_embeddings,
    read_metadata,
)
from .mixtures import mixture_rows, parse_mixture
from .stream import (
    EmbeddingStream,
    arrow_to_numpy,
    compute_mean,
    compute_mean_norm,
    iter_embedding_batches,
    running_mean,
    statistics_positions,
)

__all__ = [
    "METADATA_FILE",
    "EmbeddingStream",
    "arrow_to_numpy",
    "compute_mean",
    "compute_mean_norm",
    "dataset_folder",
    "dataset_labels",
    "embedding_matrix",
    "extract_embeddings",
    "iter_embedding_batches",
    "load_dataset",
    "load_embeddings",
    "mixture_rows",
    "open_images",
    "parse_mixture",
    "process_state",
    "read_metadata",
    "running_mean",
    "statistics_positions",
]
