"""Linear-structure analyses of a dictionary (the VLM linear-structure paper, §3.3–§6) and its explorer.

- energy: `concept_energy`, `energy_share`, `energy_share_curve`, `concepts_for_share`, `top_concepts`
- stability: `atom_cosine`, `match_concepts`, `stability`, `stability_curve`, `random_baseline`
- modality: `modality_scores`, `modality_histograms`, `modality_classifier_accuracy`, `accuracy_histograms`
- bridge: `bridge_matrix`, `top_bridge_pairs`, `bridge_partners`
- inputs: `compute_codes`, `embedding_matrix`, `load_dataset`, `modality_masks`, `pair_indices`
- everything at once: `analyze_dictionary` (what `cedar-hf analyze` writes); the app: `build_explorer`
"""

from ..data import embedding_matrix, load_dataset
from .bridge import bridge_matrix, bridge_partners, top_bridge_pairs
from .codes import compute_codes, modality_masks, pair_indices
from .energy import (
    concept_energy,
    concepts_for_share,
    energy_share,
    energy_share_curve,
    top_concepts,
)
from .explorer import build_explorer
from .modality import (
    accuracy_histograms,
    modality_classifier_accuracy,
    modality_histograms,
    modality_scores,
)
from .report import analyze_dictionary
from .stability import (
    atom_cosine,
    match_concepts,
    random_baseline,
    stability,
    stability_curve,
)


def __getattr__(name):
    # the report pulls in matplotlib and the explorer gradio + umap: load them only when asked for
    if name == "analyze_dictionary":
        return analyze_dictionary
    if name == "build_explorer":
        return build_explorer
    raise AttributeError(f"module 'cedar_hf.analysis' has no attribute {name!r}")


__all__ = [
    "accuracy_histograms",
    "analyze_dictionary",
    "atom_cosine",
    "bridge_matrix",
    "bridge_partners",
    "build_explorer",
    "compute_codes",
    "concept_energy",
    "concepts_for_share",
    "embedding_matrix",
    "energy_share",
    "energy_share_curve",
    "load_dataset",
    "match_concepts",
    "modality_classifier_accuracy",
    "modality_histograms",
    "modality_masks",
    "modality_scores",
    "pair_indices",
    "random_baseline",
    "stability",
    "stability_curve",
    "top_bridge_pairs",
    "top_concepts",
]
