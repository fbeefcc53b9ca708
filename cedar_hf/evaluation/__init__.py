"""Evaluation of dictionaries: the paper's metrics (FVU, K, IC, CS, LP, CKNNA, dead latents), the FVU-matched
threshold comparison (paper Table 1) and its report (markdown, JSON, PNGs), under a named protocol
(`protocols.py`: "cedar-hf", every metric centred by the training mean — the default; "msae", MSAE's scoring
as the CEDAR paper used it). Works on any model of the contract: `dense_codes(x)`, `decode(codes)`, `encode(x)`,
`config.n_latents`, `config.d_in`.

    from cedar_hf.evaluation import compare_models, write_report
    report = compare_models({"cedar": cedar, "topk": topk}, val_ds, targets=(0.25, 0.30, 0.35),
                            train_data=train_ds, eval_labels=val_ds["label"], train_labels=train_ds["label"],
                            protocol="msae", cknna_batch_size=10000)
    write_report(report, "eval/")
"""

from .cknna import batch_rows, cknna, cknna_batched, topk_neighbours
from .compare import (
    DEFAULT_TARGETS,
    compare_models,
    compare_protocols,
    evaluate_model,
    evaluate_reconstruction,
)
from .metrics import (
    FVU_DEFINITIONS,
    FVU_VARIANTS,
    all_fvu_variants,
    cosine_similarity,
    dead_latents,
    firing_counts,
    fvu,
    fvu_per_sample,
    fvu_per_sample_variance,
    fvu_variant,
    information_capacity,
    log_binomial,
    mean_active,
    nmse_per_sample,
    nonzero_counts,
    per_sample_cosine,
    summarize_reconstruction,
)
from .probe import LinearProbe, encode_labels, train_linear_probe
from .probe_msae import macro_f1, train_linear_probe_msae
from .protocols import PROTOCOLS, Protocol, get_protocol, score_reconstruction
from .report import markdown_table, native_table, plot_report, protocol_line, write_json, write_report
from .threshold import (
    DenseCodes,
    ThresholdSearch,
    apply_threshold,
    scan_thresholds,
    search_threshold,
    threshold_codes,
    threshold_ladder,
)

__all__ = [
    "DEFAULT_TARGETS",
    "DenseCodes",
    "FVU_DEFINITIONS",
    "FVU_VARIANTS",
    "LinearProbe",
    "PROTOCOLS",
    "Protocol",
    "ThresholdSearch",
    "all_fvu_variants",
    "apply_threshold",
    "batch_rows",
    "cknna",
    "cknna_batched",
    "compare_models",
    "compare_protocols",
    "cosine_similarity",
    "dead_latents",
    "encode_labels",
    "evaluate_model",
    "evaluate_reconstruction",
    "firing_counts",
    "fvu",
    "fvu_per_sample",
    "fvu_per_sample_variance",
    "fvu_variant",
    "get_protocol",
    "information_capacity",
    "log_binomial",
    "macro_f1",
    "markdown_table",
    "mean_active",
    "native_table",
    "nmse_per_sample",
    "nonzero_counts",
    "per_sample_cosine",
    "plot_report",
    "protocol_line",
    "scan_thresholds",
    "score_reconstruction",
    "search_threshold",
    "summarize_reconstruction",
    "threshold_codes",
    "threshold_ladder",
    "topk_neighbours",
    "train_linear_probe",
    "train_linear_probe_msae",
    "write_json",
    "write_report",
]
