"""Training with Accelerate: CEDAR's curriculum and the SAE recipes, resumable, on any number of processes.

`train(model, train_dataset, args, eval_dataset=None)` and the `TrainingArgs` dataclass; `cedar-hf train` is the
command-line front end.
"""

from ..data import EmbeddingStream, mixture_rows, parse_mixture
from .args import TrainingArgs
from .evaluate import evaluate_stream
from .loop import train
from .recipes import curriculum_k, lr_multiplier

__all__ = [
    "EmbeddingStream",
    "TrainingArgs",
    "curriculum_k",
    "evaluate_stream",
    "lr_multiplier",
    "mixture_rows",
    "parse_mixture",
    "train",
]
