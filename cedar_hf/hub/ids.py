"""Telling a Hub repository id from a local path."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def is_hub_id(value: Any) -> bool:
    """True for strings that look like `owner/name` and are not a local path."""
    return isinstance(value, str) and bool(REPO_ID.match(value)) and not os.path.exists(value)


def public_name(value: Any) -> Any:
    """What a card or a pushed config may say about a source: a Hub id or a short name as it is, a local path as
    its folder (or file) name only — an absolute path of the machine that made the model means nothing elsewhere
    and tells things about that machine."""
    if not isinstance(value, str) or not value or is_hub_id(value):
        return value
    if any(c.isspace() for c in value):  # prose (a definition, a summary), not a path
        return value
    looks_local = os.path.isabs(value) or value.startswith(("./", "../", "~")) or os.path.exists(value)
    return (Path(value.rstrip("/" + os.sep)).name or value) if looks_local else value


__all__ = ["REPO_ID", "is_hub_id", "public_name"]
