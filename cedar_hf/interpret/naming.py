"""Name each latent of a dictionary by the vocabulary entry nearest to its concept direction (paper §3).

The math. A dictionary writes a centred embedding as a sum of its atoms, `z − b ≈ Σ_i code_i · c_i`, so a concept
direction `c_i` is a *difference* of embeddings and lives in the centred space. A vocabulary embedding `t_j` is a
*point*. Comparing the two needs the point turned into a difference too: `t_j − μ`, the direction in which word j
differs from the typical embedding. We name latent i by

    j*(i) = argmax_j cos(c_i, t_j − μ)

with `μ` (the `center` argument):

- `"vocabulary"` (default): the mean of the vocabulary's own embeddings. This is the right origin for cross-modal
  naming: CLIP's image and text embeddings sit in two cones apart (the modality gap), so `t_j − b` with `b` the
  *image* mean would be dominated by the same gap vector `μ_text − μ_image` for every word, and every latent would
  get the same few names. For a dictionary trained on text embeddings `μ_vocabulary ≈ b` up to the difference
  between vocabulary words and the training texts.
- a tensor: an explicit mean (e.g. the text mean of an embedding dataset, from `cedar_hf.data.read_metadata`).
- `"none"`: plain `cos(c_i, t_j)`, the paper's formula, correct only when the embeddings are centred already.

For signed codes (CEDAR) an axis has two ends: a negative coefficient points along `−c_i`. Each latent therefore
also records the best word for its negative end (`negative`); explanations use it for negative coefficients.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm

from .vocabulary import DEFAULT_VOCABULARY, load_vocabulary

NAMES_FORMAT = "cedar-hf-concept-names/1"
CENTERS = ("vocabulary", "none")


def resolve_backbone(backbone: Any, dictionary=None):
    """A backbone object from an object with `embed_texts`, a name/path for `cedar_hf.load_backbone`, or None
    (then the dictionary's `config.backbone`)."""
    if backbone is None:
        backbone = getattr(getattr(dictionary, "config", None), "backbone", None)
        if backbone is None:
            raise ValueError("no backbone given and the dictionary's config.backbone is not set")
    if isinstance(backbone, (str, os.PathLike)):
        from cedar_hf.backbones import load_backbone

        backbone = load_backbone(str(backbone))
    if not callable(getattr(backbone, "embed_texts", None)):
        raise ValueError(f"backbone {backbone!r} has no embed_texts(texts, batch_size, prompt) method")
    return backbone


def embed_vocabulary(
    backbone, vocabulary: Sequence[str], prompt: Optional[str] = None, batch_size: int = 256, chunk_size: int = 2048,
    progress: bool = True,
) -> torch.Tensor:
    """`(len(vocabulary), d)` text embeddings of the vocabulary (formatted with `prompt`, e.g. "a photo of {}")."""
    if prompt is not None and "{}" not in prompt:
        raise ValueError(f"prompt {prompt!r} must contain '{{}}' where the concept word goes")
    chunks = []
    starts = range(0, len(vocabulary), chunk_size)
    for start in tqdm(starts, desc="embedding vocabulary", unit="chunk", disable=not progress or len(starts) < 2):
        emb = backbone.embed_texts(list(vocabulary[start : start + chunk_size]), batch_size=batch_size, prompt=prompt)
        chunks.append(torch.as_tensor(emb).detach().float().cpu())
    return torch.cat(chunks)


def _centred_unit(vectors: torch.Tensor, center: Union[str, torch.Tensor]) -> tuple[torch.Tensor, str]:
    if isinstance(center, str):
        if center == "vocabulary":
            vectors, label = vectors - vectors.mean(0, keepdim=True), "vocabulary"
        elif center == "none":
            label = "none"
        else:
            raise ValueError(f"center={center!r} must be one of {CENTERS} or a mean vector")
    else:
        mean = torch.as_tensor(center, dtype=vectors.dtype).reshape(-1)
        if mean.numel() != vectors.shape[1]:
            raise ValueError(f"center has {mean.numel()} entries, expected the embedding dimension {vectors.shape[1]}")
        vectors, label = vectors - mean, "given mean"
    return torch.nn.functional.normalize(vectors, dim=-1), label


def concept_similarities(directions: torch.Tensor, vocabulary_embeddings: torch.Tensor, center="vocabulary"):
    """`(n_latents, V)` cosines between concept directions and centred vocabulary embeddings."""
    if directions.shape[1] != vocabulary_embeddings.shape[1]:
        raise ValueError(
            f"concept directions are {directions.shape[1]}-d but the vocabulary embeddings are "
            f"{vocabulary_embeddings.shape[1]}-d: was the vocabulary embedded with the dictionary's backbone?"
        )
    words, _ = _centred_unit(vocabulary_embeddings.float(), center)
    return torch.nn.functional.normalize(directions.float(), dim=-1) @ words.T


def _describe(vocabulary_source: Any, size: int) -> str:
    if vocabulary_source is None or vocabulary_source == "default":
        return f"cedar-hf default ({DEFAULT_VOCABULARY}, {size} entries)"
    if isinstance(vocabulary_source, (str, os.PathLike)):
        return f"{os.fspath(vocabulary_source)} ({size} entries)"
    return f"custom list ({size} entries)"


def name_concepts(
    dictionary,
    backbone: Any = None,
    vocabulary: Union[None, str, os.PathLike, Iterable[str]] = None,
    prompt: Optional[str] = None,
    *,
    center: Union[str, torch.Tensor] = "vocabulary",
    top_k: int = 5,
    vocabulary_embeddings: Optional[torch.Tensor] = None,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Name every latent of `dictionary` by its nearest vocabulary entry; sets and returns `dictionary.concept_names`.

    Args:
        dictionary: any cedar-hf dictionary (uses only `concept_directions`).
        backbone: a `cedar_hf.Backbone` (or any object with `embed_texts`), a name/path for `load_backbone`, or
            None for the dictionary's `config.backbone`. Not needed when `vocabulary_embeddings` is given.
        vocabulary: None for the shipped 20k-word English vocabulary, a file (one concept a line) or a list.
        prompt: template such as "a photo of {}" applied to each concept before embedding.
        center: how the vocabulary embeddings are centred before the cosine: "vocabulary" (their own mean, the
            default; see the module docstring for why), "none", or an explicit mean vector.
        top_k: how many alternatives (name, cosine) to keep per latent, best first.
        vocabulary_embeddings: precomputed `(len(vocabulary), d)` embeddings (skips the backbone).

    Returns:
        `{"format", "vocabulary", "prompt", "backbone", "center", "names": [{"latent", "name", "score",
        "alternatives": [[name, score], ...], "negative": {"name", "score"}}, ...]}`; it is saved with the
        dictionary (`concept_names.json`) by `save_pretrained` and `push_to_hub`.
    """
    words = load_vocabulary(vocabulary)
    if isinstance(center, str) and center not in CENTERS:
        raise ValueError(f"center={center!r} must be one of {CENTERS} or a mean vector")
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    if vocabulary_embeddings is None:
        backbone = resolve_backbone(backbone, dictionary)
        vocabulary_embeddings = embed_vocabulary(backbone, words, prompt, batch_size=batch_size, progress=progress)
    elif vocabulary_embeddings.shape[0] != len(words):
        raise ValueError(
            f"vocabulary_embeddings has {vocabulary_embeddings.shape[0]} rows for a vocabulary of {len(words)}"
        )
    with torch.no_grad():
        directions = dictionary.concept_directions.detach().float().cpu()
        top_k = min(top_k, len(words))
        names = []
        for start in range(0, directions.shape[0], 1024):  # (1024, V) at a time: bounded memory for big SAEs
            sims = concept_similarities(directions[start : start + 1024], vocabulary_embeddings, center)
            best = sims.topk(top_k, dim=-1)
            worst = sims.min(dim=-1)
            for row in range(sims.shape[0]):
                alternatives = [[words[j], round(float(s), 4)] for s, j in zip(best.values[row], best.indices[row])]
                names.append({
                    "latent": start + row,
                    "name": alternatives[0][0],
                    "score": alternatives[0][1],
                    "alternatives": alternatives,
                    "negative": {"name": words[int(worst.indices[row])], "score": round(-float(worst.values[row]), 4)},
                })
    concept_names = {
        "format": NAMES_FORMAT,
        "vocabulary": _describe(vocabulary, len(words)),
        "prompt": prompt,
        "backbone": getattr(backbone, "name_or_path", None) if backbone is not None else None,
        "center": center if isinstance(center, str) else "given mean",
        "names": names,
    }
    dictionary.concept_names = concept_names
    return concept_names


def concept_name(dictionary, latent: int, coefficient: float = 1.0) -> str:
    """The readable name of one end of a latent: its name for a positive coefficient, the name of its negative
    end (prefixed "−" when unknown) for a negative one."""
    entries = {int(e["latent"]): e for e in (dictionary.concept_names or {}).get("names", [])}
    entry = entries.get(int(latent))
    if entry is None:
        return f"latent {latent}" if coefficient >= 0 else f"−latent {latent}"
    if coefficient >= 0:
        return entry["name"]
    negative = entry.get("negative")
    return negative["name"] if negative else f"−{entry['name']}"


def find_latents(dictionary, names: Union[str, Sequence[str]]) -> list[int]:
    """Latent indices whose name (or `latent i` label) equals one of `names`; ValueError naming unknown ones."""
    names = [names] if isinstance(names, str) else list(names)
    labels = dictionary.concept_labels
    found, missing = [], []
    for name in names:
        matches = [i for i, label in enumerate(labels) if label == name]
        if not matches and name.strip().isdigit():
            matches = [int(name)]
        (found.extend(matches) if matches else missing.append(name))
    if missing:
        raise ValueError(f"no latent is named {missing}; name the dictionary first or pick from e.g. {labels[:5]}")
    return found


__all__ = ["name_concepts", "embed_vocabulary", "concept_similarities", "concept_name", "find_latents",
           "resolve_backbone", "NAMES_FORMAT"]
