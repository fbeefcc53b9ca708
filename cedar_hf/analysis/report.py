"""All analyses of one dictionary over one embedding dataset, as a JSON-ready dict plus PNGs (what
`cedar-hf analyze` writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..atomic import write_json
from ..data import embedding_matrix, load_dataset
from .bridge import top_bridge_pairs
from .codes import compute_codes, directions_of, modality_masks, pair_indices
from .energy import concept_energy, concepts_for_share, default_ns, energy_share_curve
from .modality import (
    accuracy_histograms,
    modality_classifier_accuracy,
    modality_histograms,
    modality_scores,
)
from .stability import random_baseline, stability, stability_curve


def _labels(model) -> list[str]:
    labels = getattr(model, "concept_labels", None)
    return list(labels) if labels is not None else [f"latent {i}" for i in range(model.config.n_latents)]


def _finite(values: np.ndarray) -> list:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _modality_section(dataset, codes, x, energy, model, modalities, bins, progress) -> Optional[dict]:
    if "modality" not in getattr(dataset, "column_names", []) or len(set(dataset["modality"])) < 2:
        return None
    names, is_a = modality_masks(dataset, modalities)
    scores = modality_scores(codes[is_a], codes[~is_a])
    x_pooled = x.mean(1) if x.dim() == 3 else x
    accuracy = modality_classifier_accuracy(x_pooled.numpy(), is_a, model, progress=progress)
    return {
        "names": list(names),
        "rows": {names[0]: int(is_a.sum()), names[1]: int((~is_a).sum())},
        "scores": _finite(scores),
        "histogram": modality_histograms(scores, energy, bins=bins),
        "classifier_accuracy": accuracy.tolist(),
        "classifier_histogram": accuracy_histograms(accuracy, energy, bins=bins),
        "energy_weighted_mean_accuracy": float(np.average(accuracy, weights=np.maximum(energy, 1e-30))),
    }


def skipped_reasons(dataset, pairs, references, modality_done: bool) -> dict[str, str]:
    """Why each analysis that did not run was skipped (`analysis.json`'s `skipped`; printed by `cedar-hf analyze`)."""
    columns = getattr(dataset, "column_names", None)
    skipped = {}
    if not modality_done:
        if columns is None:
            skipped["modality"] = "the data is a bare matrix: it has no `modality` column"
        elif "modality" not in columns:
            skipped["modality"] = "the dataset has no `modality` column (image/text rows, e.g. two cedar-hf extract " \
                                  "runs concatenated)"
        else:
            skipped["modality"] = f"the `modality` column has one value only ({sorted(set(dataset['modality']))})"
        skipped["bridge"] = "bridges need the modality analysis (see modality)"
    elif pairs is None and "pair_id" not in (columns or []):
        skipped["bridge"] = "no aligned pairs: give --pairs FILE (image id, text id) or a `pair_id` column"
    if not references:
        skipped["stability"] = "no --reference dictionary (another seed or data mixture) to compare with"
    return skipped


def _diagonal_bridges(codes_a, codes_b, model, top: int) -> list[dict]:
    """The strongest self-bridges B_ii = E[z_img_i z_txt_i] (cos(a_i, a_i) = 1 for every non-zero atom)."""
    alive = np.linalg.norm(directions_of(model), axis=1) > 0
    diagonal = np.where(alive, np.asarray(codes_a.multiply(codes_b).mean(axis=0)).ravel(), 0.0)
    order = np.argsort(-diagonal, kind="stable")[:top]
    return [{"image_concept": int(i), "text_concept": int(i), "score": float(diagonal[i])} for i in order]


def _stability_section(model, energy, references, data, batch_size, progress) -> dict:
    atoms = model.concept_directions.detach()
    ns = default_ns(atoms.shape[0])
    # chance depends on N (fewer atoms to match, fewer lucky partners): two random Gaussian dictionaries per N
    chance = {str(n): random_baseline(n, atoms.shape[1], samples=max(1, min(16, 512 // n)), seed=n) for n in ns}
    section = {"pairs": {}, "chance": chance}
    for name, reference in references.items():
        energy_ref = concept_energy(compute_codes(reference, data, batch_size=batch_size, progress=progress))
        curve = stability_curve(model, reference, energy, energy_ref, ns=[n for n in ns if n <= len(energy_ref)])
        # the curve's last point already is the whole dictionary when both have the same size
        overall = curve[atoms.shape[0]] if len(energy_ref) == atoms.shape[0] else stability(model, reference)
        section["pairs"][name] = {"overall": overall, "curve": {str(n): v for n, v in curve.items()}}
    return section


def analyze_dictionary(
    model,
    data,
    pairs=None,
    references: Optional[dict] = None,
    modalities: Optional[Sequence[str]] = None,
    output_dir=None,
    batch_size: int = 1024,
    bins: int = 20,
    top_pairs: int = 20,
    progress: bool = True,
) -> dict:
    """Energy, modality scores and classifiers, bridges and stability of `model` over `data`.

    Args:
        model: a cedar-hf dictionary.
        data: an embedding dataset (or its folder). Modality analyses need a `modality` column with two values;
            bridges need aligned pairs (`pairs`, or a `pair_id` column).
        pairs: `(id_a, id_b)` pairs or a file of them (see `pair_indices`); None uses `pair_id` when present.
        references: `{name: dictionary}` to measure stability against (other seeds / data mixtures).
        modalities: the two `modality` values to compare (default ("image", "text") when present).
        output_dir: when given, writes `analysis.json` and the PNGs there.
    Returns the JSON-ready dict (also written as `analysis.json`).
    """
    dataset = data if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
    x = embedding_matrix(dataset, flatten_tokens=False)
    codes = compute_codes(model, x, batch_size=batch_size, progress=progress)
    energy = concept_energy(codes)
    labels = _labels(model)
    result = {
        "n_latents": int(codes.shape[1]),
        "rows": int(codes.shape[0]),
        "energy": energy.tolist(),
        "energy_share": {str(n): v for n, v in energy_share_curve(energy).items()},
        "concepts_for_share": {str(s): concepts_for_share(energy, s) for s in (0.5, 0.9, 0.99)},
        "dead": int((energy == 0).sum()),
        "labels": labels,
    }
    result["modality"] = _modality_section(dataset, codes, x, energy, model, modalities, bins, progress)
    has_pairs = pairs is not None or "pair_id" in getattr(dataset, "column_names", [])
    if result["modality"] is not None and has_pairs:
        rows_a, rows_b = pair_indices(dataset, pairs, modalities)
        a, b = codes[rows_a], codes[rows_b]
        cross = top_bridge_pairs(a, b, model, top=top_pairs, include_self=False, progress=progress)
        shared = _diagonal_bridges(a, b, model, top_pairs)  # for an orthogonal CEDAR basis the only nonzero ones
        for entry in cross + shared:
            entry.update(image_label=labels[entry["image_concept"]], text_label=labels[entry["text_concept"]])
        result["bridge"] = {"pairs": int(len(rows_a)), "top": cross, "top_shared": shared}
    if references:
        result["stability"] = _stability_section(model, energy, references, x, batch_size, progress)
    result["skipped"] = skipped_reasons(dataset, pairs, references, result["modality"] is not None)
    if output_dir is not None:
        result["figures"] = write_figures(result, output_dir)
        write_json(Path(output_dir) / "analysis.json", result, indent=1)
    return result


def write_figures(result: dict, output_dir) -> list[str]:
    """The PNGs of an `analyze_dictionary` result, into `output_dir`. -> their file names."""
    from . import plots

    out = Path(output_dir)
    paths = [plots.plot_energy(np.asarray(result["energy"]), out / "energy.png")]
    modality = result.get("modality")
    if modality:
        paths.append(plots.plot_modality_histograms(modality["histogram"], out / "modality.png", modality["names"]))
        paths.append(plots.plot_accuracy_histograms(modality["classifier_histogram"], out / "modality_classifier.png"))
    if result.get("bridge"):
        names = modality["names"] if modality else ("image", "text")
        paths.append(plots.plot_bridge_pairs(result["bridge"], result["labels"], out / "bridges.png", names))
    if result.get("stability"):
        pairs = result["stability"]["pairs"]
        curves = {name: {int(n): v for n, v in entry["curve"].items()} for name, entry in pairs.items()}
        chance = {int(n): v for n, v in result["stability"]["chance"].items()}
        paths.append(plots.plot_stability_curves(curves, out / "stability.png", chance=chance))
    return [path.name for path in paths]
