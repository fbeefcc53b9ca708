"""Whole pipelines built from the library: the offline demo (`demo.py`, README's main job) and the explorer's
offline WordNet data (`wordnet_pairs.py`). They sit above every other room and nothing below imports them."""
