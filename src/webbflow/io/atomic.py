"""Atomic outputs: write under a temporary name beside the target, then rename."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from webbflow.errors import OutputError


def check_writable(path: Path, overwrite: bool) -> None:
    """Raise :class:`OutputError` if ``path`` exists (and not ``overwrite``) or its folder is not writable."""
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists; pass --overwrite (or overwrite=True) to replace it")
    folder = path.parent
    if not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create output directory ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output directory is not writable")


def temporary_name(path: Path) -> Path:
    """A unique hidden sibling of ``path`` to write to before renaming."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")


def commit(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` onto ``path`` (atomic on one filesystem)."""
    if tmp.is_dir() and path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    tmp.replace(path)


def discard(tmp: Path) -> None:
    """Remove a temporary output, file or directory, if it is there."""
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)
