"""Telling a Hub repository id from a local path."""

from __future__ import annotations

import os
import re
from typing import Any

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def is_hub_id(value: Any) -> bool:
    """True for strings that look like `owner/name` and are not a local path."""
    return isinstance(value, str) and bool(REPO_ID.match(value)) and not os.path.exists(value)


__all__ = ["REPO_ID", "is_hub_id"]
