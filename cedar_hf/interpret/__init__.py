"""Interpretation: concept vocabularies, naming, explanations, sparse captions and steering, concept search."""

from .naming import concept_name, embed_vocabulary, find_latents, name_concepts
from .vocabulary import load_demo_texts, load_vocabulary, resource_path

__all__ = [
    "concept_name",
    "embed_vocabulary",
    "find_latents",
    "load_demo_texts",
    "load_vocabulary",
    "name_concepts",
    "resource_path",
]
