"""The FVU-matched comparison of several dictionaries (paper Table 1 and Figure 8), as one JSON-ready dict.

For every model and every target FVU: binary-search τ (see `threshold.py`), then report K, IC, CS, LP
(cross-entropy and accuracy of a probe trained on original embeddings, scored on reconstructions of held-out
data), CKNNA (k = 10) and dead latents there. Each model is also scored at its own default sparsity
(`model.reconstruct(x)`), and optional `curve_targets` add points for the CKNNA / LP vs FVU plots.
"""

from __future__ import annotations

import datetime
from typing import Mapping, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..data import embedding_matrix
from .cknna import cknna
from .metrics import cosine_similarity, fvu, fvu_per_sample, log_binomial
from .probe import LinearProbe, train_linear_probe
from .threshold import DenseCodes, apply_threshold, search_threshold

DEFAULT_TARGETS = (0.25, 0.30, 0.35)


@torch.no_grad()
def evaluate_reconstruction(x: torch.Tensor, x_hat: torch.Tensor, counts: torch.Tensor, firing: torch.Tensor,
                            mean: torch.Tensor, n_latents: int, probe: Optional[LinearProbe] = None,
                            labels: Optional[Sequence] = None, cknna_k: int = 10,
                            lp_rows: slice = slice(None)) -> dict:
    """All metrics of one reconstruction, from per-sample non-zero counts and per-latent firing counts. LP is
    scored on the rows `lp_rows` only (the rows the probe never saw)."""
    dead = int((firing == 0).sum())
    row = {
        "fvu": fvu(x, x_hat, mean),
        "fvu_per_sample_msae": fvu_per_sample(x, x_hat, mean),
        "K": float(counts.double().mean()),
        "IC": float(log_binomial(n_latents, counts).mean()),
        "CS": cosine_similarity(x, x_hat),
        "CKNNA": cknna(x, x_hat, k=cknna_k),
        "dead_latents": dead,
        "dead_fraction": dead / n_latents,
    }
    if probe is not None and labels is not None:
        scores = probe.evaluate(x_hat[lp_rows], labels[lp_rows])
        row["LP"], row["LP_accuracy"] = scores["cross_entropy"], scores["accuracy"]
    return row


def evaluate_model(model, x: torch.Tensor, mean: torch.Tensor, targets: Sequence[float] = DEFAULT_TARGETS,
                   curve_targets: Sequence[float] = (), probe: Optional[LinearProbe] = None,
                   labels: Optional[Sequence] = None, cknna_k: int = 10, tolerance: float = 0.005,
                   batch_size: int = 4096, lp_rows: slice = slice(None), progress: bool = True) -> dict:
    """One model's row block of Table 1 (`matched`), its default-sparsity scores (`native`) and curve points."""
    model.eval()
    n_latents = int(model.config.n_latents)
    with torch.no_grad():
        native_codes = torch.cat([model.encode(xb).float() for xb in x.split(batch_size)])
        native_recon = torch.cat([model.decode(cb).float() for cb in native_codes.split(batch_size)])
    native = evaluate_reconstruction(x, native_recon, (native_codes != 0).sum(-1), (native_codes != 0).sum(0),
                                     mean, n_latents, probe, labels, cknna_k, lp_rows)
    del native_codes
    codes = DenseCodes(model, x, batch_size=batch_size)
    matched, curve, sweep = [], [], []
    all_targets = sorted(set(targets) | set(curve_targets))
    for target in tqdm(all_targets, desc="FVU targets", disable=not progress, leave=False):
        search = search_threshold(model, x, target, mean, tolerance=tolerance, codes=codes)
        sweep.extend(search.history)
        entry = {"target": target, "tau": search.tau, "reached": search.reached, "min_fvu": search.min_fvu,
                 "iterations": search.iterations}
        if search.reached:
            out = apply_threshold(model, codes, search.tau)
            entry.update(evaluate_reconstruction(x, out.reconstruction, out.counts, out.firing, mean, n_latents,
                                                 probe, labels, cknna_k, lp_rows))
        (matched if target in targets else curve).append(entry)
        if target in targets and target in curve_targets:
            curve.append(entry)
    return {
        "model_type": getattr(model.config, "model_type", type(model).__name__),
        "d_in": int(model.config.d_in),
        "n_latents": n_latents,
        "default_k": getattr(model.config, "k", None),
        "native": native,
        "matched": matched,
        "curve": curve,
        "sweep": sorted(sweep, key=lambda p: p["fvu"]),
    }


def compare_models(models: Mapping[str, object], eval_data, targets: Sequence[float] = DEFAULT_TARGETS,
                   train_data=None, eval_labels: Optional[Sequence] = None,
                   train_labels: Optional[Sequence] = None, curve_targets: Sequence[float] = (),
                   cknna_k: int = 10, tolerance: float = 0.005, probe_epochs: int = 60,
                   progress: bool = True) -> dict:
    """
    The FVU-matched comparison of `models` (name -> model of the contract) on `eval_data` (tensor or embedding
    dataset). FVU uses the mean of `train_data` (the training mean, as the paper); without it the evaluation
    data's own mean is used and the report says so. LP needs labels: a probe is trained on `train_data` with
    `train_labels` — or, without training data, on the first half of the evaluation rows and scored on the
    second half only.
    """
    x = embedding_matrix(eval_data, flatten_tokens=True)
    x_train = embedding_matrix(train_data, flatten_tokens=True) if train_data is not None else None
    mean = (x_train if x_train is not None else x).double().mean(0)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "n_eval": int(x.shape[0]),
        "d_in": int(x.shape[1]),
        "n_train": int(x_train.shape[0]) if x_train is not None else 0,
        "mean_source": "training data" if x_train is not None else "evaluation data (no --train-data given)",
        "targets": list(targets),
        "tolerance": tolerance,
        "cknna_k": cknna_k,
        "fvu_definition": "dataset-level, Σ‖x − x̂‖² / Σ‖x − μ‖² with μ the training mean (Gao et al. 2024)",
        "models": {},
    }
    probe, lp_rows = None, slice(None)
    if eval_labels is not None:
        if x_train is not None and train_labels is not None:
            probe = train_linear_probe(x_train, train_labels, epochs=probe_epochs, progress=progress)
            report["probe_trained_on"] = "training data"
        else:
            half = x.shape[0] // 2
            probe = train_linear_probe(x[:half], eval_labels[:half], epochs=probe_epochs, progress=progress)
            lp_rows = slice(half, None)
            report["probe_trained_on"] = "first half of the evaluation data; LP scored on the second half"
        report["probe_on_original"] = probe.evaluate(x[lp_rows], eval_labels[lp_rows])
    for name, model in tqdm(models.items(), desc="models", disable=not progress):
        if int(model.config.d_in) != x.shape[1]:
            raise ValueError(f"model {name!r} has d_in={model.config.d_in}, the data has d={x.shape[1]}")
        report["models"][name] = evaluate_model(model, x, mean, targets, curve_targets, probe, eval_labels,
                                                cknna_k, tolerance, lp_rows=lp_rows, progress=progress)
    return report


__all__ = ["DEFAULT_TARGETS", "compare_models", "evaluate_model",
           "evaluate_reconstruction"]
