"""Top-activating examples of a latent over an embedding dataset (paper Figures 4, 10–12): an image grid PNG for
image rows, a text list for text rows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from cedar_hf.analysis.codes import compute_codes
from cedar_hf.analysis.energy import concept_energy, top_concepts
from cedar_hf.data import load_dataset

from .vocabulary import save_figure
from .naming import concept_sign, name_info


def top_activating(
    dictionary,
    data: Any,
    latents: Optional[Sequence[int]] = None,
    n: int = 9,
    k: Optional[int] = None,
    opposite: bool = False,
    codes=None,
    progress: bool = True,
) -> dict[int, list[dict]]:
    """The `n` rows of `data` on which each latent is most active.

    Args:
        data: an embedding dataset (folder, `datasets.Dataset` with `embedding`, optionally `id`, `text`,
            `modality`, `label`, `image`) or a tensor.
        latents: which latents; None: the 8 with the highest energy (mean |code|).
        opposite: rank by the other end of a signed (CEDAR) axis: the most negative oriented coefficients.
        codes: precomputed sparse codes `(N, n_latents)` (from `cedar_hf.analysis.codes.compute_codes`).

    Returns:
        `{latent: [{"row", "value", "id", "text", "modality", "label"}, ...]}` (missing columns are None), value =
        the oriented coefficient `sign · code` (see `name_concepts`), strongest first; rows where the latent is
        inactive (or on the other end) are left out.
    """
    if n < 1:
        raise ValueError(f"n={n} must be at least 1")
    codes = compute_codes(dictionary, data, k=k, progress=progress) if codes is None else codes
    if latents is None:
        latents = top_concepts(concept_energy(codes), min(8, codes.shape[1])).tolist()
    bad = [i for i in latents if not 0 <= int(i) < codes.shape[1]]
    if bad:
        raise ValueError(f"latents {bad} are out of range [0, {codes.shape[1]})")
    dataset = None if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
    columns = set(getattr(dataset, "column_names", []) or [])
    csc = codes.tocsc()
    result = {}
    for latent in latents:
        column = csc.getcol(int(latent))
        orientation = concept_sign(dictionary, int(latent)) * (-1.0 if opposite else 1.0)
        rows, values = column.indices, column.data * orientation
        keep = values > 0
        rows, values = rows[keep], values[keep]
        order = np.argsort(-values, kind="stable")[:n]
        entries = []
        for row, value in zip(rows[order].tolist(), values[order].tolist()):
            record = dataset[int(row)] if dataset is not None else {}
            entries.append({"row": row, "value": (-value if opposite else value),
                            **{key: (record.get(key) if key in columns else None)
                               for key in ("id", "text", "modality", "label")}})
        result[int(latent)] = entries
    return result


def heading(dictionary, latent: int, value: float = 1.0) -> str:
    """`name (latent i) · match 0.64` for the end that `value` (an oriented coefficient) points to; weak names
    get a `?` and `weak name` (see `cedar_hf.interpret.naming.name_info`)."""
    if dictionary is None:
        return f"latent {latent}"
    info = name_info(dictionary, latent, value)
    text = f"{info.name}{'?' if info.weak else ''} (latent {latent})"
    if info.score is not None:
        text += f" · match {info.score:.2f}" + (", weak name" if info.weak else "")
    return text + (" · other end of the axis" if info.opposite else "")


def format_top_examples(top: dict[int, list[dict]], dictionary=None, max_chars: int = 100) -> str:
    """The top examples as a text list (one block per latent, named when the dictionary has names, with the name's
    match score; examples of the negative end are headed by that end's own name)."""
    blocks = []
    for latent, entries in top.items():
        value = entries[0]["value"] if entries else 1.0
        lines = [heading(dictionary, latent, value)]
        for entry in entries:
            text = entry["text"] or entry["id"] or f"row {entry['row']}"
            text = text if len(text) <= max_chars else text[: max_chars - 3] + "..."
            label = f" [{entry['label']}]" if entry["label"] is not None else ""
            lines.append(f"  {entry['value']:+7.3f}  {text}{label}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _load_image(entry: dict, dataset, image_root: Optional[Path]):
    if dataset is not None and "image" in getattr(dataset, "column_names", []):
        image = dataset[entry["row"]]["image"]
        return image if isinstance(image, Image.Image) else None
    for candidate in ([Path(entry["id"])] if entry["id"] else []) + (
        [image_root / entry["id"]] if entry["id"] and image_root else []
    ):
        if candidate.is_file():
            return Image.open(candidate).convert("RGB")
    return None


def load_row_image(row: int, dataset, image_root: Optional[Path] = None):
    """The RGB image of a dataset row (its `image` column, or its `id` as a path, relative to `image_root`), or
    None when it has none."""
    columns = getattr(dataset, "column_names", []) or []
    record = dataset[int(row)] if "id" in columns else {}
    return _load_image({"row": int(row), "id": record.get("id")}, dataset, image_root)


def plot_top_examples(
    top: dict[int, list[dict]],
    data: Any,
    path: Union[str, os.PathLike],
    dictionary=None,
    image_root: Union[None, str, os.PathLike] = None,
) -> Path:
    """Write the top examples as a PNG: an image grid (one row per latent) when the rows are images that can be
    found (an `image` column, or `id` paths, relative to `image_root`), else a text panel. Returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt


    dataset = None if isinstance(data, (torch.Tensor, np.ndarray)) else load_dataset(data)
    root = Path(image_root) if image_root else None
    images = {(latent, i): _load_image(e, dataset, root) for latent, entries in top.items() for i, e in enumerate(entries)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if images and all(image is not None for image in images.values()):
        cols = max(len(entries) for entries in top.values())
        fig, axes = plt.subplots(len(top), cols, figsize=(1.6 * cols, 1.8 * len(top)), squeeze=False)
        for r, (latent, entries) in enumerate(top.items()):
            for c in range(cols):
                ax = axes[r][c]
                ax.axis("off")
                if c < len(entries):
                    ax.imshow(images[(latent, c)])
                    ax.set_title(f"{entries[c]['value']:+.2f}", fontsize=7)
            value = entries[0]["value"] if entries else 1.0
            info = name_info(dictionary, latent, value) if dictionary is not None else None
            name = heading(dictionary, latent, value).replace(" · ", "\n")
            axes[r][0].text(-0.1, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=9,
                            color="#888888" if info is not None and info.weak else "black")
    else:
        text = format_top_examples(top, dictionary, max_chars=90)
        fig = plt.figure(figsize=(10, 0.19 * (text.count("\n") + 2) + 0.5))
        fig.text(0.01, 0.99, text, va="top", ha="left", family="monospace", fontsize=8)
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


__all__ = ["format_top_examples", "heading", "load_row_image", "plot_top_examples", "top_activating"]
