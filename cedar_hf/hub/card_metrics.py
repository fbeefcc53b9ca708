"""The model card's numbers: only real metrics, and only with what defines them.

- The YAML `model-index` holds the matched-FVU table of `evaluation.json` (`cedar-hf evaluate --save-in-models`):
  for each target FVU the dictionary reached, K, IC, CS, CKNNA, LP and the dead-latent share, each named with its
  target (`K at FVU 0.25`) and configured with the evaluation protocol (`protocol=msae, target_fvu=0.25`), because
  the same model gives other numbers under another protocol. Sizes (`d_in`, `n_latents`), settings (`tolerance`,
  `cknna_k`) and counts (`n_train`) are context, never metrics.
- The body adds the held-out numbers measured during training (`eval/*` of `metrics.json`); the training loop's
  bookkeeping (`train/k`, `train/lr`, losses) is left out of the card (it stays in the uploaded `metrics.json`).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from huggingface_hub import EvalResult

from .ids import is_hub_id

# (key in a matched row of evaluation.json, YAML metric type, what it is)
MATCHED_METRICS = (
    ("K", "k", "mean non-zero codes"),
    ("IC", "ic", "mean ln C(n, k)"),
    ("CS", "cs", "mean cosine of x and x̂"),
    ("CKNNA", "cknna", "CKNNA of x vs x̂"),
    ("LP", "lp", "linear-probe cross-entropy on x̂"),
    ("LP_accuracy", "lp_accuracy", "linear-probe accuracy on x̂"),
    ("dead_fraction", "dead_fraction", "share of latents never active"),
)
HELD_OUT = {"eval/fvu": "FVU", "eval/l0": "L0 (mean active latents)", "eval/dead_fraction": "dead-latent share"}
TASK = {"type": "feature-extraction", "name": "Sparse dictionary of embeddings at matched FVU"}


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def protocol_of(evaluation: dict) -> tuple[str, str]:
    """(name, one-line description) of the evaluation's protocol; older files without one say what they used."""
    protocol = evaluation.get("protocol")
    if isinstance(protocol, dict) and protocol.get("name"):
        return str(protocol["name"]), str(protocol.get("summary") or protocol.get("fvu_variant") or "")
    if isinstance(protocol, str) and protocol:
        return protocol, ""
    return "unrecorded", str(evaluation.get("fvu_definition") or "no protocol recorded in evaluation.json")


def matched_rows(evaluation: dict) -> list[dict]:
    """The reached rows of the matched-FVU table: `{"target", "fvu", <metric>: value}` (unreached targets are
    reported in the body as such, never as metrics)."""
    rows = []
    for entry in evaluation.get("matched") or []:
        target = _number(entry.get("target"))
        if target is None:
            continue
        row = {"target": target, "reached": bool(entry.get("reached")), "fvu": _number(entry.get("fvu")),
               "min_fvu": _number(entry.get("min_fvu"))}
        if row["reached"]:
            row.update({key: _number(entry.get(key)) for key, _, _ in MATCHED_METRICS})
        rows.append(row)
    return rows


def eval_results(rows: list[dict], protocol: str, dataset: Optional[str]) -> list[EvalResult]:
    """The model-index entries: one per (reached target, metric)."""
    on_hub = is_hub_id(dataset)
    results = []
    for row in rows:
        if not row["reached"]:
            continue
        for key, metric_type, _ in MATCHED_METRICS:
            if row.get(key) is None:
                continue
            results.append(EvalResult(
                task_type=TASK["type"], task_name=TASK["name"],
                dataset_type=dataset if on_hub else "embeddings",
                dataset_name=dataset if on_hub else "held-out embeddings",
                metric_type=metric_type, metric_name=f"{key} at FVU {row['target']:g}", metric_value=row[key],
                metric_config=f"protocol={protocol}, target_fvu={row['target']:g}",
            ))
    return results


def _cell(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.4g}"


def evaluation_table(rows: list[dict]) -> list[list[str]]:
    """Markdown cells of the matched-FVU table (header first)."""
    header = ["target FVU", "FVU reached", *[key for key, _, _ in MATCHED_METRICS]]
    body = []
    for row in rows:
        if row["reached"]:
            body.append([f"{row['target']:g}", _cell(row["fvu"]), *[_cell(row.get(key)) for key, _, _ in
                                                                    MATCHED_METRICS]])
        else:
            body.append([f"{row['target']:g}", f"not reached (lowest FVU {_cell(row['min_fvu'])})",
                         *["—"] * len(MATCHED_METRICS)])
    return [header, *body]


def held_out_rows(metrics: Optional[dict]) -> list[tuple[str, str]]:
    """The held-out numbers of the training run (`eval/*` of metrics.json), named."""
    metrics = metrics or {}
    return [(label, _cell(_number(metrics.get(key)))) for key, label in HELD_OUT.items()
            if _number(metrics.get(key)) is not None]


__all__ = ["HELD_OUT", "MATCHED_METRICS", "eval_results", "evaluation_table", "held_out_rows", "matched_rows",
           "protocol_of"]
