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

For signed codes (CEDAR) an axis has two ends, and the sign of a learned axis is arbitrary (the loss does not
change when a row of U flips). Each axis is therefore named by the better of its two ends: `sign = +1` when the best
word matches `c_i`, `−1` when it matches `−c_i`; the best word of the other end is kept as `opposite`. Explanations
show `sign · code`, so a positive bar always means "more of the named concept". Codes that cannot be negative (the
SAEs) are named by `c_i` alone (`sign = +1`); which case applies is probed from the dictionary, never from its type.

Name confidence. Each name carries its `score`, the cosine above, and is marked `weak` when the score is below
`weak_below` (default `WEAK_SCORE = 0.3`). Why 0.3: for a direction that matches no word at all, the best of V
random word directions in d dimensions reaches about `sqrt(2 ln V / d)` by chance (0.23 for V = 20,000 words and
d = 384, MiniLM; 0.16 for d = 768), so a best match below 0.3 is hardly above what noise gives, and every place
that shows a name (explanations, plots, the explorer) marks it as weak rather than presenting it as the meaning.
`name_confidence_threshold(V, d)` gives that chance level for other sizes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Union

import torch

from cedar_hf.backbones import load_backbone

from .vocabulary import DEFAULT_VOCABULARY, load_vocabulary

NAMES_FORMAT = "cedar-hf-concept-names/1"
CENTERS = ("vocabulary", "none")
WEAK_SCORE = 0.3  # names with a lower cosine are marked weak (see the module docstring)


def name_confidence_threshold(vocabulary_size: int, dim: int) -> float:
    """Chance level of a name's score: the best cosine `sqrt(2 ln V / d)` a direction reaches against V random
    word directions in d dimensions (the expected maximum of V near-Gaussian cosines of variance 1/d)."""
    if vocabulary_size < 2 or dim < 1:
        raise ValueError(f"vocabulary_size={vocabulary_size} must be >= 2 and dim={dim} >= 1")
    return math.sqrt(2.0 * math.log(vocabulary_size) / dim)


@dataclass(frozen=True)
class NameInfo:
    """What is shown for one end of a latent: its `name`, the name's `score` (cosine with the direction, None
    when unknown), whether it is `weak` (score below the dictionary's threshold) and whether it names the
    `opposite` end (a negative oriented coefficient of a signed axis)."""

    name: str
    score: Optional[float] = None
    weak: bool = False
    opposite: bool = False

    def label(self, digits: int = 2) -> str:
        """`name`, or `name (0.21, weak)` / `name (0.64)` when a score is known."""
        if self.score is None:
            return self.name
        return f"{self.name} ({self.score:.{digits}f}{', weak' if self.weak else ''})"


def resolve_backbone(backbone: Any, dictionary=None):
    """A backbone object from an object with `embed_texts`, a name/path for `cedar_hf.load_backbone`, or None
    (then the dictionary's `config.backbone`)."""
    if backbone is None:
        backbone = getattr(getattr(dictionary, "config", None), "backbone", None)
        if backbone is None:
            raise ValueError("no backbone given and the dictionary's config.backbone is not set")
    if isinstance(backbone, (str, os.PathLike)):
        backbone = load_backbone(str(backbone))
    if not callable(getattr(backbone, "embed_texts", None)):
        raise ValueError(f"backbone {backbone!r} has no embed_texts(texts, batch_size, prompt) method")
    return backbone


def embed_vocabulary(
    backbone, vocabulary: Sequence[str], prompt: Optional[str] = None, batch_size: int = 256,
) -> torch.Tensor:
    """`(len(vocabulary), d)` text embeddings of the vocabulary (formatted with `prompt`, e.g. "a photo of {}").
    The backbone shows its own progress bar."""
    if prompt is not None and "{}" not in prompt:
        raise ValueError(f"prompt {prompt!r} must contain '{{}}' where the concept word goes")
    embeddings = backbone.embed_texts(list(vocabulary), batch_size=batch_size, prompt=prompt)
    return torch.as_tensor(embeddings).detach().float().cpu()


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


def codes_can_be_negative(dictionary, n: int = 64) -> bool:
    """Probe (no data needed): encode points scattered around `decode(0)` along ± every concept direction and see
    whether any code comes out negative. True for CEDAR's signed codes, False for ReLU/TopK-style SAEs."""
    with torch.no_grad():
        directions = dictionary.concept_directions.detach().float()
        origin = dictionary.decode(torch.zeros(1, directions.shape[0], dtype=directions.dtype, device=directions.device))
        g = torch.Generator(device="cpu").manual_seed(0)
        mix = torch.randn(n, directions.shape[0], generator=g).to(directions)
        x = origin + mix @ directions
        return bool((dictionary.encode(x) < 0).any())


def _entry(latent: int, sims: torch.Tensor, words: Sequence[str], top_k: int, signed: bool,
           weak_below: float = WEAK_SCORE) -> dict:
    """The naming record of one latent from its `(V,)` cosines to the vocabulary."""
    best, worst = sims.topk(top_k), (-sims).topk(top_k)
    sign = -1 if signed and float(worst.values[0]) > float(best.values[0]) else 1
    named, other = (worst, best) if sign < 0 else (best, worst)
    alternatives = [[words[int(j)], round(float(v), 4)] for v, j in zip(named.values, named.indices)]
    entry = {"latent": latent, "name": alternatives[0][0], "score": alternatives[0][1], "sign": sign,
             "weak": alternatives[0][1] < weak_below, "alternatives": alternatives}
    if signed:
        score = round(float(other.values[0]), 4)
        entry["opposite"] = {"name": words[int(other.indices[0])], "score": score, "weak": score < weak_below}
    return entry


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
    signed: Optional[bool] = None,
    batch_size: int = 256,
    weak_below: float = WEAK_SCORE,
    blocklist: Any = True,
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
        signed: whether codes can be negative (CEDAR). Then each axis is named by the better of its two ends and
            `sign` records which end (see the module docstring). None: probed from the dictionary itself.
        weak_below: names (and opposite ends) whose score is below this are marked `"weak": true` (default 0.3;
            see the module docstring for why, and `name_confidence_threshold` for the chance level).
        blocklist: True drops the shipped blocklist's entries (slurs, profanity, junk) from the vocabulary, also
            from your own; False keeps everything; or your own blocklist (see `load_vocabulary`).

    Returns:
        `{"format", "vocabulary", "prompt", "backbone", "center", "signed", "weak_below", "names": [{"latent",
        "name", "score", "sign", "weak", "alternatives": [[name, score], ...], "opposite": {"name", "score",
        "weak"}}, ...]}` (`opposite`, the
        best word for the other end, only for signed codes); it is saved with the dictionary
        (`concept_names.json`) by `save_pretrained` and `push_to_hub`.
    """
    words = load_vocabulary(vocabulary, blocklist=blocklist)
    if isinstance(center, str) and center not in CENTERS:
        raise ValueError(f"center={center!r} must be one of {CENTERS} or a mean vector")
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    is_name = isinstance(backbone, (str, os.PathLike))
    backbone_label = str(backbone) if is_name else getattr(backbone, "name_or_path", None)
    if vocabulary_embeddings is None:
        backbone = resolve_backbone(backbone, dictionary)
        backbone_label = backbone_label or getattr(backbone, "name_or_path", None)
        vocabulary_embeddings = embed_vocabulary(backbone, words, prompt, batch_size=batch_size)
    elif vocabulary_embeddings.shape[0] != len(words):
        raise ValueError(
            f"vocabulary_embeddings has {vocabulary_embeddings.shape[0]} rows for a vocabulary of {len(words)}"
            " (after the blocklist: embed load_vocabulary(...)'s output, or pass blocklist=False)"
        )
    signed = codes_can_be_negative(dictionary) if signed is None else bool(signed)
    with torch.no_grad():
        directions = dictionary.concept_directions.detach().float().cpu()
        top_k = min(top_k, len(words))
        names = []
        for start in range(0, directions.shape[0], 1024):  # (1024, V) at a time: bounded memory for big SAEs
            sims = concept_similarities(directions[start : start + 1024], vocabulary_embeddings, center)
            names += [_entry(start + row, sims[row], words, top_k, signed, weak_below)
                      for row in range(sims.shape[0])]
    concept_names = {
        "format": NAMES_FORMAT,
        "vocabulary": _describe(vocabulary, len(words)),
        "prompt": prompt,
        "backbone": backbone_label,
        "center": center if isinstance(center, str) else "given mean",
        "signed": signed,
        "weak_below": weak_below,
        "names": names,
    }
    dictionary.concept_names = concept_names
    return concept_names


def concept_sign(dictionary, latent: int) -> int:
    """+1 when the latent's name describes its concept direction, −1 when it describes the opposite end (signed
    codes only; see `name_concepts`). Displayed coefficients are `sign · code`, so positive means "more of it"."""
    for entry in (dictionary.concept_names or {}).get("names", []):
        if int(entry["latent"]) == int(latent):
            return int(entry.get("sign", 1))
    return 1


def concept_name(dictionary, latent: int, value: float = 1.0) -> str:
    """The readable name of a latent (`latent i` when it has none). With a negative oriented `value`
    (`sign · code`), the name of the other end: its `opposite` word when known, else "−name"."""
    name = dictionary.concept_labels[int(latent)]
    if value >= 0:
        return name
    for entry in (dictionary.concept_names or {}).get("names", []):
        if int(entry["latent"]) == int(latent) and entry.get("opposite"):
            return entry["opposite"]["name"]
    return f"−{name}"


def _names_entry(dictionary, latent: int) -> Optional[dict]:
    for entry in (getattr(dictionary, "concept_names", None) or {}).get("names", []):
        if int(entry["latent"]) == int(latent):
            return entry
    return None


def name_info(dictionary, latent: int, value: float = 1.0) -> NameInfo:
    """The name shown for a latent with oriented coefficient `value` (`sign · code`), with its confidence: the
    name of the positive end for `value >= 0`; for a negative value the `opposite` end's own name and score when
    the axis is signed and named (else `−name` with no score)."""
    entry = _names_entry(dictionary, latent)
    if entry is None:
        return NameInfo(dictionary.concept_labels[int(latent)] if hasattr(dictionary, "concept_labels")
                        else f"latent {latent}")
    threshold = float((dictionary.concept_names or {}).get("weak_below", WEAK_SCORE))
    if value >= 0:
        score = entry.get("score")
        return NameInfo(entry["name"], score, score is not None and score < threshold)
    opposite = entry.get("opposite")
    if opposite:
        return NameInfo(opposite["name"], opposite.get("score"),
                        opposite.get("score") is not None and opposite["score"] < threshold, True)
    return NameInfo(f"−{entry['name']}", None, False, True)


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


__all__ = ["name_concepts", "embed_vocabulary", "codes_can_be_negative", "concept_similarities", "concept_name",
           "concept_sign", "find_latents", "name_confidence_threshold", "name_info", "resolve_backbone", "NameInfo",
           "NAMES_FORMAT", "WEAK_SCORE"]
