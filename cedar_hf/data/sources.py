"""Where extraction reads from: an image folder, a saved `datasets` folder, a Hub dataset id, a `Dataset`,
a `.txt` file or a list of texts — resolved to one ordered list of rows (the resume plan depends on the order).
Used by `cedar_hf.data.extract_embeddings`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import datasets
from datasets import ClassLabel, Value
from datasets import Image as ImageFeature
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TEXT_COLUMNS = ("text", "caption", "sentence", "gloss")


@dataclass
class Source:
    """Rows to embed, in a fixed order (the resume plan depends on it)."""

    modality: str
    ids: list[str]
    description: str
    texts: Optional[list[str]] = None
    labels: Optional[list] = None
    label_feature: Any = None
    read_image: Optional[Callable[[int], Any]] = None  # row index -> PIL image (raises when unreadable)


# ---- sources -----------------------------------------------------------------------------------------------
def _open_image(data: Union[str, bytes]):
    image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    image.load()  # PIL is lazy: force the decode here so a broken file fails now, by id
    return image.convert("RGB")


def _folder_source(root: Path) -> Source:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    ids = [p.relative_to(root).as_posix() for p in files]
    source = Source("image", ids, f"image folder {root}", read_image=lambda i: _open_image(str(files[i])))
    if all("/" in i for i in ids):  # ImageFolder convention: the first sub-folder is the class
        names = sorted({i.split("/")[0] for i in ids})
        source.label_feature = ClassLabel(names=names)
        source.labels = [names.index(i.split("/")[0]) for i in ids]
    return source


def _dataset_source(dataset, modality: str, description: str, image_column=None, text_column=None,
                    label_column=None, id_column=None) -> Source:
    features = dataset.features
    if id_column is not None and id_column not in features:
        raise ValueError(f"id_column={id_column!r} is not a column of the source (columns: {list(features)})")
    id_column = id_column or ("id" if "id" in features else None)
    ids = [str(i) for i in dataset[id_column]] if id_column else [str(i) for i in range(len(dataset))]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the source's {id_column!r} column has duplicate ids; pass id_column=None to use row indices")
    label_column = label_column or next((c for c in ("label", "labels") if c in features), None)
    source = Source(modality, ids, description)
    if label_column:
        if label_column not in features:
            raise ValueError(f"label_column={label_column!r} is not a column of the source ({list(features)})")
        source.labels, source.label_feature = list(dataset[label_column]), features[label_column]
    if modality == "text":
        text_column = text_column or next((c for c in TEXT_COLUMNS if c in features), None) or next(
            (c for c, f in features.items() if isinstance(f, Value) and f.dtype in ("string", "large_string")), None)
        if text_column not in features:
            raise ValueError(f"text_column={text_column!r}: the source needs a text column (columns: {list(features)})")
        source.texts = [str(t) for t in dataset[text_column]]
        return source
    image_column = image_column or next((c for c, f in features.items() if isinstance(f, ImageFeature)), None)
    if image_column not in features:
        raise ValueError(f"image_column={image_column!r}: the source needs an image column (columns: {list(features)})")
    raw = dataset.cast_column(image_column, ImageFeature(decode=False)) if isinstance(features[image_column], ImageFeature) else dataset

    def read_image(i: int):
        value = raw[i][image_column]
        if hasattr(value, "convert"):
            return value.convert("RGB")
        if isinstance(value, dict):
            value = value.get("bytes") or value.get("path")
        return _open_image(value)

    source.read_image = read_image
    return source


def resolve_source(source, modality: str, split: Optional[str], **columns) -> Source:
    if isinstance(source, (list, tuple)):
        if modality != "text" or not all(isinstance(t, str) for t in source):
            raise ValueError("a list source must be a list of strings (texts) with site='text_embeds'")
        return Source("text", [str(i) for i in range(len(source))], "list of texts", texts=list(source))
    if isinstance(source, datasets.DatasetDict):
        source = source[_pick_split(source, split)]
    if isinstance(source, datasets.Dataset):
        return _dataset_source(source, modality, "datasets.Dataset", **columns)
    path = Path(str(source))
    if path.is_file() and path.suffix == ".txt":
        if modality != "text":
            raise ValueError(f"{path} is a text file; use site='text_embeds'")
        texts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return Source("text", [str(i) for i in range(len(texts))], f"text file {path}", texts=texts)
    if path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            split = _pick_split(loaded, split)
            loaded = loaded[split]
        return _dataset_source(loaded, modality, f"saved dataset {path}" + (f" [{split}]" if split else ""), **columns)
    if path.is_dir():
        if modality != "image":
            raise ValueError(f"{path} is an image folder; use site='image_embeds' or 'vision_tokens'")
        return _folder_source(path)
    if path.exists():
        raise ValueError(f"source={str(source)!r}: expected an image folder, a saved dataset, a .txt file or a Hub id")
    text = str(source)
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or text.endswith(".txt"):
        raise ValueError(f"source={text!r} does not exist (and is not a Hub dataset id like owner/name)")
    split = split or "train"
    loaded = datasets.load_dataset(str(source), split=split)  # a Hub dataset id
    return _dataset_source(loaded, modality, f"hub dataset {source} [{split}]", **columns)


def _pick_split(dataset_dict, split: Optional[str]) -> str:
    if split is None:
        split = "train" if "train" in dataset_dict else next(iter(dataset_dict))
    if split not in dataset_dict:
        raise ValueError(f"split={split!r} not in the source (splits: {list(dataset_dict)})")
    return split
