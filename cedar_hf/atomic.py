"""Crash-safe writing: every file and folder the package writes appears whole or not at all.

A file is written under a temporary name in its own folder, flushed to disk and renamed over the target in one
step (`os.replace`, atomic on POSIX and Windows within one file system). A folder is built under a temporary
name beside the target and renamed into place; an existing folder is first renamed aside (`.<name>.old-<pid>`)
and deleted only after the new one is in place, and a later writer puts such a leftover back when the target
is missing (see `recover_directory`). A process killed at any moment therefore leaves either the previous or
the new state, plus at most some temporary names that start with a dot and are ignored by every reader.

A leaf module: standard library only, imported by the data layer, the models and the training loop alike.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, os.PathLike]
TEMP_PREFIX = ".tmp-"


def _temp_sibling(path: Path, kind: str) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{kind}-{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync(path: Path) -> None:
    """Flush a written file to disk so the rename never exposes a name whose data is still in a cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; when the block succeeds it replaces `path` in one step.

    On an exception the temporary file is removed and `path` is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(final, "file")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: PathLike, value: Any, indent: int = 2) -> None:
    """Write `value` as JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=indent) + "\n")


def read_json(path: PathLike, what: str = "file") -> Any:
    """JSON from `path`; a `ValueError` naming the file (and what it is) when it is empty or not valid JSON."""
    text = Path(path).read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"{what} {str(path)!r} is empty (an interrupted write?); delete it or restore it")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON ({err}); delete it or restore it") from err


def temp_directory(path: PathLike) -> Path:
    """A fresh, empty temporary folder beside `path` (same file system), to be moved in by `replace_directory`."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(final, "dir")
    tmp.mkdir()
    return tmp


def _aside(path: Path) -> Path:
    return path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def recover_directory(path: PathLike) -> None:
    """When `path` is missing but an earlier `replace_directory` left it renamed aside, put it back."""
    final = Path(path)
    if final.exists() or not final.parent.is_dir():
        return
    leftovers = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if leftovers:
        os.replace(leftovers[-1], final)


def replace_directory(tmp: PathLike, path: PathLike) -> None:
    """Move the finished folder `tmp` to `path`; an existing `path` is replaced (renamed aside, then deleted)."""
    tmp, final = Path(tmp), Path(path)
    old = None
    if final.exists():
        old = _aside(final)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_directory(path: PathLike) -> None:
    """Delete a folder so that no reader ever sees it half-deleted: renamed to a hidden name first."""
    final = Path(path)
    if not final.exists():
        return
    doomed = final.with_name(f"{TEMP_PREFIX}deleted-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(final, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _writer_alive(entry: Path) -> bool:
    """Whether the process that named this temporary (`.tmp-<kind>-<name>-<pid>-<hex>`) is still running."""
    parts = entry.name.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_temporaries(folder: PathLike, only_dead: bool = False) -> None:
    """Remove the temporary names a killed writer left in `folder` (never a finished file or folder); with
    `only_dead`, only those whose writing process is gone (safe while other writers work in the folder)."""
    root = Path(folder)
    if not root.is_dir():
        return
    for entry in root.glob(f"{TEMP_PREFIX}*"):
        if only_dead and _writer_alive(entry):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


__all__ = ["atomic_path", "clean_temporaries", "read_json", "recover_directory", "remove_directory",
           "replace_directory", "temp_directory", "write_json", "write_text"]
