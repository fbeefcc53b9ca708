"""Interpretation: concept vocabularies, naming, explanations, top-activating examples, sparse captions and
steering, concept search.

    names = cedar_hf.name_concepts(dictionary, backbone)            # nearest vocabulary entry per latent
    print(cedar_hf.explain(dictionary, "a dog on the beach", backbone=backbone, k=10))
"""

from .attribution import SimilarityAttribution, attribute_similarity
from .captions import (
    CaptionReport,
    SteeredDictionary,
    caption_report,
    recurring_words,
    sparse_captions,
    steer,
)
from .examples import format_top_examples, plot_top_examples, top_activating
from .explanations import Explanation, explain
from .naming import concept_name, embed_vocabulary, find_latents, name_concepts, name_info
from .quality import QualityReport, concept_quality
from .search import ConceptIndex
from .vocabulary import load_blocklist, load_demo_texts, load_vocabulary, resource_path

__all__ = [
    "SimilarityAttribution",
    "attribute_similarity",
    "CaptionReport",
    "ConceptIndex",
    "QualityReport",
    "concept_quality",
    "load_blocklist",
    "name_info",
    "Explanation",
    "SteeredDictionary",
    "caption_report",
    "concept_name",
    "embed_vocabulary",
    "explain",
    "find_latents",
    "format_top_examples",
    "load_demo_texts",
    "load_vocabulary",
    "name_concepts",
    "plot_top_examples",
    "recurring_words",
    "resource_path",
    "sparse_captions",
    "steer",
    "top_activating",
]
