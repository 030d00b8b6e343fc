"""A gwcs WCS in our FITS products: the ``ASDF`` extension tree ``{"meta": {"wcs": <gwcs>}}``.

jwst datamodels keep an exposure's WCS only in the ASDF tree embedded in the FITS file (a
one-row binary table ``ASDF`` with a ``uint8`` column ``ASDF_METADATA``); everything else is
read from the FITS headers. :func:`asdf_extension_with_wcs` makes that table for the product
writer, :func:`read_wcs` reads the WCS back, and :func:`read_distortion` opens a jwst
``DISTORTION`` reference (an ASDF file whose ``model`` maps full-frame pixels to V2/V3 arcsec).
Arrays (polynomial coefficients) are stored inline in the YAML, so the tree does not depend on
ASDF binary blocks.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from astropy.io import fits
from astropy.modeling import Model
from gwcs import WCS

from webbflow import __version__
from webbflow.errors import InputError, ReferenceFileError
from webbflow.io.fits_writer import TableExtension
from webbflow.io.keywords import get_path

EXTNAME = "ASDF"
COLUMN = "ASDF_METADATA"


def wcs_tree_bytes(wcs: WCS | None, extra: Mapping[str, Any] | None = None) -> bytes:
    """The ASDF file (bytes) of the tree ``{"meta": {"wcs": wcs}, "webbflow_version": ...}``.

    ``extra`` entries are added at the top of the tree.
    """
    tree: dict[str, Any] = {"webbflow_version": __version__, **dict(extra or {})}
    if wcs is not None:
        tree["meta"] = {"wcs": wcs}
    buffer = io.BytesIO()
    asdf.AsdfFile(tree).write_to(buffer, all_array_storage="inline")
    return _stable_history(buffer.getvalue())


def _stable_history(raw: bytes) -> bytes:
    """The ASDF text with its ``history.extensions`` entries in sorted order.

    asdf lists the extensions in the order a process first used them (set order, so it
    changes with ``PYTHONHASHSEED``); sorting makes the same WCS give the same bytes in every
    process (a worker, the client, a resumed run). Arrays are inline, so nothing else moves.
    """
    lines = raw.decode("utf-8").splitlines(keepends=True)
    try:
        start = lines.index("  extensions:\n", lines.index("history:\n")) + 1
    except ValueError:
        return raw
    end = start
    while end < len(lines) and lines[end].startswith(("  - ", "    ")):
        end += 1
    entries: list[list[str]] = []
    for line in lines[start:end]:
        if line.startswith("  - "):
            entries.append([])
        if entries:
            entries[-1].append(line)
    body = [line for entry in sorted(entries, key="".join) for line in entry]
    if len(body) != end - start:
        return raw
    return "".join(lines[:start] + body + lines[end:]).encode("utf-8")


def asdf_extension_with_wcs(wcs: WCS | None) -> TableExtension:
    """The ``ASDF`` table extension of a product carrying ``wcs`` as ``meta.wcs``.

    Drop-in for :func:`webbflow.io.products.asdf_extension` (same minimal tree, no FITS
    hash, so readers still take every other value from the FITS headers).
    """
    raw = np.frombuffer(wcs_tree_bytes(wcs), dtype=np.uint8)
    table = np.zeros(1, dtype=[(COLUMN, np.uint8, (raw.size,))])
    table[COLUMN][0] = raw
    return TableExtension(EXTNAME, table)


def read_wcs(source: str | Path | fits.HDUList) -> WCS | None:
    """The ``meta.wcs`` of a product's ``ASDF`` extension, or ``None`` when it has none.

    Parameters
    ----------
    source
        A FITS file written by webbflow or jwst, or an open HDUList.

    Raises
    ------
    InputError
        If the ``ASDF`` extension cannot be parsed or its ``meta.wcs`` is not a gwcs WCS.
    """
    if not isinstance(source, fits.HDUList):
        with fits.open(source) as hdul:
            return read_wcs(hdul)
    name = getattr(source, "filename", lambda: None)() or "FITS file"
    if EXTNAME not in source:
        return None
    data = source[EXTNAME].data
    if data is None or COLUMN not in data.columns.names:
        raise InputError(f"{name}: extension {EXTNAME} has no {COLUMN} column")
    raw = np.asarray(data[COLUMN][0], dtype=np.uint8).tobytes()
    try:
        with asdf.open(io.BytesIO(raw), lazy_load=False, memmap=False) as af:
            wcs = get_path(af.tree, "meta.wcs")
    except Exception as exc:  # asdf raises many types for a corrupt tree
        raise InputError(f"{name}: extension {EXTNAME} is not a readable ASDF tree ({exc})") from None
    if wcs is not None and not isinstance(wcs, WCS):
        raise InputError(f"{name}: ASDF meta.wcs is a {type(wcs).__name__}, expected a gwcs WCS")
    return wcs


def read_distortion(path: str | Path, detector: str | None = None) -> Model:
    """The ``model`` of a jwst ``DISTORTION`` reference: full-frame pixels (0-based) → V2/V3 arcsec.

    Parameters
    ----------
    path
        The ASDF reference file.
    detector
        The exposure's ``DETECTOR``; when given, it must match the file's
        ``meta.instrument.detector`` (if the file has one).

    Raises
    ------
    ReferenceFileError
        Unreadable file, no 2-input/2-output ``model``, or a different detector.
    """
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            model = af.tree.get("model")
            file_detector = get_path(af.tree, "meta.instrument.detector")
    except Exception as exc:  # asdf/yaml raise many types for a bad file
        raise ReferenceFileError(f"{path}: not a readable ASDF distortion reference ({exc})") from None
    if not isinstance(model, Model) or (model.n_inputs, model.n_outputs) != (2, 2):
        raise ReferenceFileError(f"{path}: expected a 2-in, 2-out astropy model under 'model'")
    if detector and file_detector and str(file_detector).upper() != str(detector).upper():
        raise ReferenceFileError(f"{path}: distortion for DETECTOR={file_detector}, exposure has {detector}")
    return model
