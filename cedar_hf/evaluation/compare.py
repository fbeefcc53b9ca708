"""The FVU-matched comparison of several dictionaries (paper Table 1 and Figure 8), as one JSON-ready dict.

For every model and every target FVU: search τ on the dense codes (see `threshold.py`), then report K, IC, CS, LP
(cross-entropy and accuracy of a probe trained on original embeddings, scored on reconstructions of held-out
data, plus MSAE's KL / argmax agreement), CKNNA (k = 10) and dead latents there — each metric as the named
`protocol` defines it (`protocols.py`: "cedar-hf", the default, or "msae", the paper's). Each model is also
scored at its own default sparsity (`model.encode(x)`), and optional `curve_targets` add points for the CKNNA / LP
vs FVU plots. The report's top-level "protocol" object says which definitions were used.
"""

from __future__ import annotations

import datetime
from typing import Mapping, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..data import embedding_matrix
from .metrics import log_binomial
from .probe import LinearProbe, train_linear_probe
from .probe_msae import train_linear_probe_msae
from .protocols import Protocol, get_protocol, score_reconstruction
from .threshold import DenseCodes, apply_threshold, scan_thresholds, search_threshold, threshold_codes

DEFAULT_TARGETS = (0.25, 0.30, 0.35)


@torch.no_grad()
def evaluate_reconstruction(x: torch.Tensor, x_hat: torch.Tensor, counts: torch.Tensor, firing: torch.Tensor,
                            mean: torch.Tensor, n_latents: int, probe: Optional[LinearProbe] = None,
                            labels: Optional[Sequence] = None, cknna_k: int = 10,
                            lp_rows: slice = slice(None), protocol: Protocol | str = "cedar-hf",
                            codes_of_rows=None, cache: Optional[dict] = None) -> dict:
    """All metrics of one reconstruction under `protocol`, from per-sample non-zero counts and per-latent firing
    counts. `codes_of_rows(rows)` gives the codes of those rows (needed when the protocol's CKNNA is against the
    codes). LP is scored on the rows `lp_rows` only (the rows the probe never saw). `cache`: see
    `score_reconstruction`."""
    protocol = get_protocol(protocol)
    if protocol.cknna_against == "codes" and codes_of_rows is None:
        raise ValueError(f"protocol {protocol.name!r} computes CKNNA against the codes: pass codes_of_rows")
    dead = int((firing == 0).sum())
    row = score_reconstruction(protocol, x, x_hat, mean, codes_of_rows, cknna_k, cache)
    row.update({
        "K": float(counts.double().mean()),
        "IC": float(log_binomial(n_latents, counts).mean()),
        "dead_latents": dead,
        "dead_fraction": dead / n_latents,
    })
    if probe is not None and labels is not None:
        scores = probe.evaluate(x_hat[lp_rows], labels[lp_rows])
        row["LP"], row["LP_accuracy"] = scores["cross_entropy"], scores["accuracy"]
        agreement = probe.agreement(x[lp_rows], x_hat[lp_rows])
        row["LP_kl"], row["LP_agreement"] = agreement["kl"], agreement["argmax_agreement"]
    return row


def _native(model, x, mean, protocol, probe, labels, cknna_k, batch_size, lp_rows, cache) -> dict:
    n_latents = int(model.config.n_latents)
    with torch.no_grad():
        codes = torch.cat([model.encode(xb).float() for xb in x.split(batch_size)])
        recon = torch.cat([model.decode(cb).float() for cb in codes.split(batch_size)])
    return evaluate_reconstruction(x, recon, (codes != 0).sum(-1), (codes != 0).sum(0), mean, n_latents, probe,
                                   labels, cknna_k, lp_rows, protocol, codes.__getitem__, cache)


def evaluate_model(model, x: torch.Tensor, mean: torch.Tensor, targets: Sequence[float] = DEFAULT_TARGETS,
                   curve_targets: Sequence[float] = (), probe: Optional[LinearProbe] = None,
                   labels: Optional[Sequence] = None, cknna_k: int = 10, tolerance: float = 0.005,
                   batch_size: int = 4096, lp_rows: slice = slice(None), progress: bool = True,
                   protocol: Protocol | str = "cedar-hf", cache: Optional[dict] = None) -> dict:
    """One model's row block of Table 1 (`matched`), its default-sparsity scores (`native`) and curve points,
    under `protocol` (its FVU variant is the one the threshold search matches). `cache`: one dict shared by the
    calls on the same `x` and protocol (the originals' CKNNA neighbours are then found once)."""
    protocol = get_protocol(protocol)
    cache = {} if cache is None else cache
    model.eval()
    n_latents = int(model.config.n_latents)
    native = _native(model, x, mean, protocol, probe, labels, cknna_k, batch_size, lp_rows, cache)
    codes = DenseCodes(model, x, batch_size=batch_size)
    scan = scan_thresholds(model, x, mean, codes, protocol.fvu, progress=progress)
    matched, curve, sweep = [], [], {p["tau"]: p for p in scan}
    for target in tqdm(sorted(set(targets) | set(curve_targets)), desc="FVU targets", disable=not progress,
                       leave=False):
        search = search_threshold(model, x, target, mean, tolerance=tolerance, codes=codes, fvu=protocol.fvu,
                                  scan=scan)
        sweep.update({p["tau"]: p for p in search.history})
        entry = {"target": target, "tau": search.tau, "reached": search.reached, "fvu_searched": search.fvu,
                 "min_fvu": search.min_fvu, "fvu_at_zero": search.fvu_at_zero, "max_fvu": search.max_fvu,
                 "iterations": search.iterations}
        if search.reached:
            out = apply_threshold(model, codes, search.tau)

            def codes_of_rows(rows, tau=search.tau):
                return threshold_codes(model.dense_codes(x[rows]).float(), tau)

            entry.update(evaluate_reconstruction(x, out.reconstruction, out.counts, out.firing, mean, n_latents,
                                                 probe, labels, cknna_k, lp_rows, protocol, codes_of_rows, cache))
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
        "sweep": sorted(sweep.values(), key=lambda p: p["fvu"]),
    }


def _probe(protocol: Protocol, x, x_train, mean, eval_labels, train_labels, probe_epochs, progress):
    """Train the protocol's probe: `(probe, lp_rows, trained_on)`."""
    if x_train is not None and train_labels is not None:
        fit_x, fit_labels, lp_rows, where = x_train, train_labels, slice(None), "training data"
    else:
        half = x.shape[0] // 2
        fit_x, fit_labels, lp_rows = x[:half], eval_labels[:half], slice(half, None)
        where = "first half of the evaluation data; LP scored on the second half"
    if protocol.probe == "msae":
        probe = train_linear_probe_msae(fit_x, fit_labels, x[lp_rows], eval_labels[lp_rows], center=mean,
                                        progress=progress)
        where += " (MSAE recipe: model selection on the scored rows' macro-F1, as MSAE's linear_eval.py)"
    else:
        probe = train_linear_probe(fit_x, fit_labels, epochs=probe_epochs, progress=progress, center=mean)
    return probe, lp_rows, where


def compare_models(models: Mapping[str, object], eval_data, targets: Sequence[float] = DEFAULT_TARGETS,
                   train_data=None, eval_labels: Optional[Sequence] = None,
                   train_labels: Optional[Sequence] = None, curve_targets: Sequence[float] = (),
                   cknna_k: int = 10, tolerance: float = 0.005, probe_epochs: int = 60,
                   progress: bool = True, protocol: Protocol | str = "cedar-hf", **protocol_overrides) -> dict:
    """
    The FVU-matched comparison of `models` (name -> model of the contract) on `eval_data` (tensor or embedding
    dataset) under `protocol` ("cedar-hf" or "msae", or a `Protocol`; `protocol_overrides` such as
    `cknna_batch_size=2048` or `fvu="msae-loss"` change one field). μ is the mean of `train_data` (the
    training mean, as the paper); without it the evaluation data's own mean is used and the report says so. LP
    needs labels: a probe is trained on `train_data` with `train_labels` — or, without training data, on the
    first half of the evaluation rows and scored on the second half only. `probe_epochs` applies to the
    cedar-hf probe (MSAE's recipe fixes 100).
    """
    protocol = get_protocol(protocol, **protocol_overrides)
    x = embedding_matrix(eval_data, flatten_tokens=True)
    x_train = embedding_matrix(train_data, flatten_tokens=True) if train_data is not None else None
    mean = (x_train if x_train is not None else x).double().mean(0)
    report = {
        "protocol": protocol.to_dict(cknna_k),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "n_eval": int(x.shape[0]),
        "d_in": int(x.shape[1]),
        "n_train": int(x_train.shape[0]) if x_train is not None else 0,
        "mean_source": "training data" if x_train is not None else "evaluation data (no --train-data given)",
        "targets": list(targets),
        "tolerance": tolerance,
        "cknna_k": cknna_k,
        "fvu_definition": protocol.definitions(cknna_k)["FVU"],
        "models": {},
    }
    probe, lp_rows = None, slice(None)
    if eval_labels is not None:
        probe, lp_rows, report["probe_trained_on"] = _probe(protocol, x, x_train, mean, eval_labels, train_labels,
                                                            probe_epochs, progress)
        report["probe_on_original"] = probe.evaluate(x[lp_rows], eval_labels[lp_rows])
    cache = {}  # the originals' CKNNA neighbour tables, shared by every model and target
    for name, model in tqdm(models.items(), desc="models", disable=not progress):
        if int(model.config.d_in) != x.shape[1]:
            raise ValueError(f"model {name!r} has d_in={model.config.d_in}, the data has d={x.shape[1]}")
        report["models"][name] = evaluate_model(model, x, mean, targets, curve_targets, probe, eval_labels,
                                                cknna_k, tolerance, lp_rows=lp_rows, progress=progress,
                                                protocol=protocol, cache=cache)
    return report


def compare_protocols(models: Mapping[str, object], eval_data, protocols: Sequence = ("cedar-hf", "msae"),
                      **kwargs) -> dict:
    """`{protocol name: compare_models(models, eval_data, protocol=p, **kwargs)}` — both tables at once. Items of
    `protocols` are names or `Protocol`s (e.g. `get_protocol("msae", cknna_batch_size=1024)`; the key is then
    its name, "msae+cknna_batch_size=1024")."""
    chosen = [get_protocol(p) for p in protocols]
    return {p.name: compare_models(models, eval_data, protocol=p, **kwargs) for p in chosen}


__all__ = ["DEFAULT_TARGETS", "compare_models", "compare_protocols", "evaluate_model",
           "evaluate_reconstruction"]
