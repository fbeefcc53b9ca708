"""`load_dictionary`: the one way to load any cedar-hf dictionary (CEDAR, an SAE or a baseline) by path or Hub id.

Every command, the wrapped models and the Python API load dictionaries through this function, so they accept
the same inputs and refuse bad ones with the same messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from transformers import AutoModel

from .modeling_base import DictionaryPreTrainedModel


def load_dictionary(name_or_path: Union[str, os.PathLike], **kwargs) -> DictionaryPreTrainedModel:
    """
    A cedar-hf dictionary (concept names included) from a `save_pretrained` folder or a Hub id, in eval mode.

    Args:
        name_or_path: a local folder holding `config.json` + `model.safetensors`, or a Hub repo id.
        kwargs: passed to `AutoModel.from_pretrained` (`revision`, `token`, `dtype`, ...).

    Raises:
        ValueError: naming `name_or_path` when it is a missing folder, not a model folder, not loadable, or a
            model that is not a cedar-hf dictionary.
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{text!r} is a file; pass the folder written by save_pretrained (or a Hub id)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ValueError(f"{text!r} has no config.json: not a folder written by save_pretrained")
    if not path.exists() and (text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep in text.strip("/")
                              and text.count("/") != 1):
        raise ValueError(f"dictionary folder {text!r} does not exist")
    try:
        model = AutoModel.from_pretrained(text, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load a dictionary from {text!r}: {err}") from err
    if not isinstance(model, DictionaryPreTrainedModel):
        raise ValueError(f"{text!r} loads as a {type(model).__name__}, not a cedar-hf dictionary (CEDAR or an SAE)")
    return model.eval()


__all__ = ["load_dictionary"]
