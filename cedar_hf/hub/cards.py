"""What the model and dataset cards say: values for the Jinja templates in `model_cards/` (pushed by `cedar_hf.hub.push`).

Templates are found in the installed package (`cedar_hf/resources/model_cards/`, a copy kept identical to the
repository's top-level `model_cards/` by a test) and, in a source checkout, in `model_cards/` itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, Optional

import transformers

from cedar_hf.analysis.codes import compute_codes
from cedar_hf.analysis.energy import concept_energy, top_concepts

from ..registry import card_text
from ..version import __version__
from .card_metrics import eval_results, evaluation_table, held_out_rows, matched_rows, protocol_of
from .ids import is_hub_id, public_name

MISSING = "[More Information Needed]"

def template_path(name: str) -> Path:
    """Path of a card template: the packaged copy first, then the source checkout's `model_cards/`."""
    here = Path(__file__).resolve().parents[1]  # cedar_hf/
    for folder in (here / "resources" / "model_cards", here.parent / "model_cards"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"card template {name!r} not found in cedar_hf/resources/model_cards or model_cards/")


def public_json(value: Any) -> Any:
    """`public_name` applied to every string of a JSON value (training_args.json, evaluation.json, ...)."""
    return _public(value)


def _public(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _public(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_public(item) for item in value)
    return public_name(value)


@contextlib.contextmanager
def public_config(config):
    """Within the block, `config.backbone` and `config.training_data` hold `public_name`s instead of local paths
    (for `save_pretrained` into a folder that is pushed); restored afterwards."""
    saved = {name: getattr(config, name, None) for name in ("backbone", "training_data")}
    try:
        for name, value in saved.items():
            if value is not None:
                setattr(config, name, _public(value))
        yield config
    finally:
        for name, value in saved.items():
            setattr(config, name, value)


def _or_missing(value: Any) -> Any:
    return MISSING if value is None or value == "" or value == [] or value == {} else value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(_or_missing(value))


def _read_json(folder: Optional[Path], name: str) -> Optional[dict]:
    if folder is None or not (folder / name).is_file():
        return None
    with open(folder / name) as f:
        return json.load(f)


def _evaluation(folder: Optional[Path], dataset: Optional[str]) -> dict:
    """Template values of the Evaluation section and the model-index entries (see `card_metrics`)."""
    evaluation, training = _read_json(folder, "evaluation.json"), _read_json(folder, "metrics.json")
    protocol, protocol_summary = protocol_of(evaluation or {})
    rows = matched_rows(evaluation or {})
    table = evaluation_table(rows) if rows else []
    if rows:
        summary = (f"At matched reconstruction error (the CEDAR paper's Table 1), from `evaluation.json` "
                   f"(`cedar-hf evaluate --save-in-models`) on {evaluation.get('n_eval', MISSING)} held-out "
                   f"embeddings; protocol `{protocol}`: {protocol_summary}. Codes below a threshold τ are zeroed, "
                   "τ chosen per model to reach each target FVU.")
    else:
        summary = (f"{MISSING}: no matched-FVU evaluation beside the model (run `cedar-hf evaluate -m MODEL -d "
                   "HELD_OUT --save-in-models` before pushing).")
    return {
        "evaluation_summary": summary, "evaluation_table": table, "held_out_rows": held_out_rows(training),
        "eval_results": eval_results(rows, protocol, dataset),
    }


TRAINING_ARGS_SKIPPED = {"output_dir", "disable_tqdm", "report_to", "logging_steps", "eval_batch_size",
                         "save_total_limit", "embedding_column", "save_steps", "resume_from_checkpoint",
                         "stop_after_steps", "eval_steps", "eval_max_rows"}


def _training(model, folder: Optional[Path]) -> tuple[list[tuple[str, str]], str]:
    args = {key: value for key, value in (_read_json(folder, "training_args.json") or {}).items()
            if key not in TRAINING_ARGS_SKIPPED}
    provenance = _public(dict(getattr(model.config, "training_data", {}) or {}))
    args = _public(args)
    rows = [(f"training data: {key}", _fmt(value)) for key, value in provenance.items()]
    rows += [(key, _fmt(value)) for key, value in args.items() if value is not None and not isinstance(value, dict)]
    summary = (
        "Trained with `cedar_hf.train` (Accelerate; CEDAR's k curriculum / the SAE recipe of its paper) on frozen "
        "embeddings; the settings below come from `training_args.json` and the config's `training_data`."
        if rows else f"{MISSING} (no training_args.json beside the model and no training_data in its config)."
    )
    return rows or [("settings", MISSING)], summary


def _top_concepts(model, embeddings, top_n: int, progress: bool) -> tuple[list[dict], str]:
    names = {int(e["latent"]): e for e in (model.concept_names or {}).get("names", [])}
    n = min(top_n, model.config.n_latents)
    if embeddings is None:
        order, energy = list(range(n)), None
        summary = (f"No embedding dataset was given when this card was made, so concept energies are "
                   f"{MISSING}; the first {n} latents are listed in index order.")
    else:
        codes = compute_codes(model, embeddings, progress=progress)
        energy = concept_energy(codes)
        order = top_concepts(energy, n).tolist()
        summary = (f"Energy = mean |code| of the latent over {codes.shape[0]} embeddings (k = {model.config.k}); "
                   f"the {n} most energetic concepts carry most of what the dictionary explains.")
    rows = []
    for rank, latent in enumerate(order, 1):
        entry = names.get(latent, {})
        name = entry.get("name", f"latent {latent}")
        if entry.get("weak"):  # below the naming's confidence threshold: shown as a hint, never as the meaning
            name = f"{name} *(weak)*"
        rows.append({"rank": rank, "latent": latent, "name": name,
                     "energy": MISSING if energy is None else f"{energy[latent]:.4g}",
                     "score": _fmt(entry.get("score"))})
    return rows, summary


def _backbone_markdown(backbone: Optional[str], is_hub_id) -> str:
    if not backbone:
        return MISSING
    return f"[`{backbone}`](https://huggingface.co/{backbone})" if is_hub_id(backbone) else f"`{backbone}` (local)"


def model_card_values(model, repo_id, dataset, embeddings, folder: Optional[Path], top_n: int, progress: bool) -> dict:
    """Template values and YAML metadata (`metadata`) for the dictionary card."""
    config = model.config
    backbone = public_name(config.backbone)
    dataset = public_name(dataset or (config.training_data or {}).get("dataset"))
    evaluation = _evaluation(folder, dataset)
    results = evaluation.pop("eval_results")
    training_rows, training_summary = _training(model, folder)
    top, energy_summary = _top_concepts(model, embeddings, top_n, progress)
    name, description = card_text(config)
    concept_names = model.concept_names or {}
    metadata = {
        "library_name": "cedar-hf",
        "pipeline_tag": "feature-extraction",
        "base_model": backbone if is_hub_id(backbone) else None,
        "datasets": [dataset] if is_hub_id(dataset) else None,
        "tags": ["cedar-hf", "interpretability", "sparse-dictionary", config.model_type]
        + ([config.embedding_site.replace("_", "-")] if config.embedding_site else []),
        "metrics": sorted({r.metric_type for r in results}) or None,
    }
    if results:
        metadata["model_name"] = repo_id or config.model_type
        metadata["eval_results"] = results
    names_summary = (f"{len(concept_names.get('names', []))} names from {concept_names.get('vocabulary', MISSING)}"
                     + (f", prompt `{concept_names['prompt']}`" if concept_names.get("prompt") else "")
                     if concept_names else f"{MISSING} (not named; see `cedar-hf name`)")
    k = config.k
    return {
        "metadata": {key: value for key, value in metadata.items() if value is not None},
        "title": repo_id.split("/")[-1] if repo_id else f"{name} dictionary",
        "repo_id": repo_id or "path/to/this/folder",
        "architecture": name, "architecture_description": _or_missing(description),
        "model_type": config.model_type, "embedding_site": _or_missing(config.embedding_site),
        "backbone_markdown": _backbone_markdown(backbone, is_hub_id), "backbone_plain": _or_missing(backbone),
        "dataset_markdown": (f"[`{dataset}`](https://huggingface.co/datasets/{dataset})" if is_hub_id(dataset)
                             else _or_missing(dataset)),
        "d_in": config.d_in, "n_latents": config.n_latents, "k": _fmt(k),
        "usage_k": k if k is not None else min(10, config.n_latents),
        "names_summary": names_summary, "vocabulary": concept_names.get("vocabulary", "a concept vocabulary"),
        "library_version": __version__, "transformers_version": transformers.__version__,
        "training_rows": training_rows, "training_summary": training_summary,
        **evaluation,
        "top_concepts": top, "top_concepts_count": len(top), "energy_summary": energy_summary,
    }


def _size_category(count: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if count < bound), "10M<n<100M")


def dataset_card_values(dataset, repo_id: str, metadata: dict, source: Optional[str]) -> dict:
    """Template values and YAML metadata for the embedding-dataset card."""
    count = len(dataset)
    backbone = public_name(metadata.get("backbone"))
    modalities = sorted(set(dataset["modality"])) if "modality" in dataset.column_names else []
    dim = metadata.get("dim")
    if dim is None and count:
        first = dataset[0]["embedding"]
        dim = len(first[-1]) if first and isinstance(first[0], (list, tuple)) else len(first)
    source = public_name(source or metadata.get("source") or metadata.get("dataset"))
    meta = {
        "tags": ["cedar-hf", "embeddings"] + [m for m in modalities],
        "size_categories": [_size_category(count)],
        "source_datasets": [source] if is_hub_id(source) else None,
        "pretty_name": repo_id.split("/")[-1],
    }
    return {
        "metadata": {key: value for key, value in meta.items() if value is not None},
        "title": repo_id.split("/")[-1], "repo_id": repo_id, "count": count, "dim": _or_missing(dim),
        "dtype": _or_missing(metadata.get("dtype")), "site": _or_missing(metadata.get("site")),
        "backbone_markdown": _backbone_markdown(backbone, is_hub_id),
        "source_markdown": _backbone_markdown(source, is_hub_id) if source else MISSING,
        "modalities": ", ".join(modalities) or MISSING, "columns": ", ".join(f"`{c}`" for c in dataset.column_names),
        "source_summary": (f"Computed from `{source}`; its license and terms apply to these embeddings."
                           if source else f"{MISSING}: the source of these embeddings and its license."),
    }


__all__ = ["MISSING", "dataset_card_values", "model_card_values", "public_config", "public_json", "public_name",
           "template_path"]
