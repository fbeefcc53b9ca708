"""Interpretation: concept vocabularies, naming, explanations, sparse captions and steering, concept search."""

from .vocabulary import load_demo_texts, load_vocabulary, resource_path

__all__ = ["load_demo_texts", "load_vocabulary", "resource_path"]
