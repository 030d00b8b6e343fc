"""Completion markers: which products of an output directory are finished and intact.

A product counts as done only when ``<output_dir>/.webbflow/done/<file name>.json`` says so
and the file on disk still matches it. The marker records the product's file name, the
*recipe* (a hash of everything that determines its bytes, chosen by the caller), its size,
its SHA-256 (for a Zarr store, a directory: of its sorted relative paths and their bytes),
the webbflow version that wrote it and when. A marker is written, atomically, only after
the product itself was renamed into place, so:

- a run killed before the rename leaves a hidden temporary (``.<name>.<8 hex>.partial``, see
  :mod:`webbflow.io.atomic`) and no product: :meth:`Ledger.clean_stale` removes the
  temporary, the next run writes the product;
- a run killed between the rename and the marker leaves a whole product without a marker:
  the next run rewrites it (the product is never trusted without a marker);
- a product changed after it was marked (truncated, edited, written by another recipe or
  version) no longer matches its marker: :meth:`Ledger.complete` says no, and says why
  at debug level.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from webbflow import __version__
from webbflow.io.atomic import commit, discard, temporary_name

log = logging.getLogger("webbflow")

#: Names :func:`webbflow.io.atomic.temporary_name` makes: ``.<name>.<8 hex digits>.partial``.
STALE = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.partial$")
_BLOCK = 8 << 20  # bytes hashed at a time: memory stays flat for any product size


def checksum(path: Path) -> tuple[int, str]:
    """Size in bytes and SHA-256 (hex) of a file, or of a directory's files.

    A directory (a Zarr store) hashes each file's relative POSIX path, a NUL, then its
    bytes, in sorted path order; its size is the sum of its files' sizes.
    """
    digest = hashlib.sha256()
    if not path.is_dir():
        return _feed(digest, path), digest.hexdigest()
    size = 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        size += _feed(digest, file)
    return size, digest.hexdigest()


def _feed(digest: Any, file: Path) -> int:
    size = 0
    with file.open("rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return size


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


class Ledger:
    """Completion markers of the products in ``output_dir``.

    Parameters
    ----------
    output_dir
        Where the products are; markers go to ``output_dir/.webbflow/done``.
    verify
        ``"checksum"``: a product is complete only if its SHA-256 still matches (reads
        every byte); ``"size"``: only its size is checked (catches truncation, not edits).
    """

    def __init__(self, output_dir: Path, verify: Literal["checksum", "size"] = "checksum") -> None:
        if verify not in ("checksum", "size"):
            raise ValueError(f"verify={verify!r}: expected 'checksum' or 'size'")
        self.output_dir = Path(output_dir)
        self.verify = verify
        self.folder = self.output_dir / ".webbflow" / "done"

    def marker(self, path: Path) -> Path:
        """The marker file of the product ``path``."""
        return self.folder / f"{Path(path).name}.json"

    def complete(self, path: Path, recipe: str) -> bool:
        """Whether ``path`` is a finished product of ``recipe``, intact since it was marked."""
        path = Path(path)
        why = self._mismatch(path, recipe)
        if why:
            log.debug("%s: not complete (%s)", path.name, why)
        return not why

    def _mismatch(self, path: Path, recipe: str) -> str:
        marker = self.marker(path)
        try:
            done = json.loads(marker.read_text())
        except FileNotFoundError:
            return "no completion marker"
        except (OSError, ValueError) as exc:
            return f"unreadable marker {marker} ({exc})"
        if not isinstance(done, dict):
            return f"marker {marker} is not a JSON object"
        if done.get("name") != path.name:
            return f"marker names {done.get('name')!r}"
        if done.get("recipe") != recipe:
            return "made with another recipe"
        if done.get("version") != __version__:
            return f"written by webbflow {done.get('version')}, this is {__version__}"
        if not path.exists():
            return "file missing"
        if self.verify == "size":
            size = _size(path)
            return "" if size == done.get("size") else f"size {size} B, marked {done.get('size')} B"
        size, sha = checksum(path)
        if size != done.get("size"):
            return f"size {size} B, marked {done.get('size')} B"
        return "" if sha == done.get("sha256") else "SHA-256 differs from the marked one"

    def mark(self, path: Path, recipe: str) -> None:
        """Record ``path`` (already renamed into place) as the finished product of ``recipe``."""
        path = Path(path)
        size, sha = checksum(path)  # always: a later "checksum" run can verify a "size" run's marks
        done = {
            "name": path.name,
            "recipe": recipe,
            "size": size,
            "sha256": sha,
            "version": __version__,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        marker = self.marker(path)
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(marker)
        try:
            tmp.write_text(json.dumps(done, indent=1) + "\n")
            commit(tmp, marker)
        except BaseException:
            discard(tmp)
            raise

    def forget(self, path: Path) -> None:
        """Remove the marker of ``path`` (before it is rewritten)."""
        self.marker(path).unlink(missing_ok=True)

    def clean_stale(self) -> list[Path]:
        """Remove the temporaries a killed run left in ``output_dir`` (any depth); return them.

        Only names :func:`webbflow.io.atomic.temporary_name` makes are touched. Do not call
        this while another run writes into the same directory: its temporaries look the same.
        """
        removed: list[Path] = []
        for root, dirs, files in os.walk(self.output_dir):
            for name in [*files, *dirs]:
                if STALE.match(name):
                    stale = Path(root) / name
                    discard(stale)
                    removed.append(stale)
            dirs[:] = [d for d in dirs if not STALE.match(d)]  # a stale Zarr store is gone already
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run", len(removed))
        return sorted(removed)
