"""Loading what the interpretation commands need: a dictionary (folder or Hub id), images from paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def load_dictionary(name_or_path: str | os.PathLike, **kwargs):
    """Any cedar-hf dictionary from a `save_pretrained` folder or a Hub id (concept names included), in eval mode."""
    from transformers import AutoModel

    import cedar_hf  # noqa: F401  (registers the dictionary classes with the Auto classes)

    try:
        model = AutoModel.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load a dictionary from {str(name_or_path)!r}: {err}") from err
    if not all(hasattr(model, name) for name in ("encode", "decode", "concept_directions")):
        raise ValueError(f"{name_or_path} loads as a {type(model).__name__}, not a cedar-hf dictionary")
    return model.eval()


def open_images(paths: Sequence[str | os.PathLike]) -> list:
    """RGB PIL images from file paths; a missing or unreadable file raises a `ValueError` naming it."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"image {str(path)!r} does not exist")
        try:
            images.append(Image.open(path).convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {str(path)!r}: {err}") from err
    return images


__all__ = ["load_dictionary", "open_images"]
