"""Evaluation of dictionaries: the paper's metrics (FVU, K, IC, CS, LP, CKNNA, dead latents), the FVU-matched
threshold comparison (paper Table 1) and its report (markdown, JSON, PNGs). Works on any model of the contract:
`dense_codes(x)`, `decode(codes)`, `encode(x)`, `config.n_latents`, `config.d_in`.

    from cedar_hf.evaluation import compare_models, write_report
    report = compare_models({"cedar": cedar, "topk": topk}, val_ds, targets=(0.25, 0.30, 0.35),
                            train_data=train_ds, eval_labels=val_ds["label"], train_labels=train_ds["label"])
    write_report(report, "eval/")
"""

from .cknna import cknna, topk_neighbours
from .compare import (
    DEFAULT_TARGETS,
    compare_models,
    evaluate_model,
    evaluate_reconstruction,
)
from .metrics import (
    cosine_similarity,
    dead_latents,
    firing_counts,
    fvu,
    fvu_per_sample,
    information_capacity,
    log_binomial,
    mean_active,
    nonzero_counts,
    summarize_reconstruction,
)
from .probe import LinearProbe, encode_labels, train_linear_probe
from .report import markdown_table, native_table, plot_report, write_json, write_report
from .threshold import (
    DenseCodes,
    ThresholdSearch,
    apply_threshold,
    search_threshold,
    threshold_codes,
)

__all__ = [
    "DEFAULT_TARGETS",
    "DenseCodes",
    "LinearProbe",
    "ThresholdSearch",
    "apply_threshold",
    "cknna",
    "compare_models",
    "cosine_similarity",
    "dead_latents",
    "encode_labels",
    "evaluate_model",
    "evaluate_reconstruction",
    "firing_counts",
    "fvu",
    "fvu_per_sample",
    "information_capacity",
    "log_binomial",
    "markdown_table",
    "mean_active",
    "native_table",
    "nonzero_counts",
    "plot_report",
    "search_threshold",
    "summarize_reconstruction",
    "threshold_codes",
    "topk_neighbours",
    "train_linear_probe",
    "write_json",
    "write_report",
]
