"""Opening images from paths (for captioning and explanation commands)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from PIL import Image, UnidentifiedImageError


def open_images(paths: Sequence[str | os.PathLike]) -> list:
    """RGB PIL images from file paths; a missing or unreadable file raises a `ValueError` naming it."""
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"image {str(path)!r} does not exist")
        try:
            images.append(Image.open(path).convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image {str(path)!r}: {err}") from err
    return images


__all__ = ["open_images"]
