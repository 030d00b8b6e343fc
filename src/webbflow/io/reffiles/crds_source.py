"""Ask CRDS for a reference file (when the user configured CRDS).

CRDS is used when ``use_crds=True`` or, by default, when ``CRDS_PATH`` is set
in the environment. The matching parameters are the exposure's metadata
flattened to the ``META.<PATH>`` keys CRDS matches on for JWST
(``META.INSTRUMENT.DETECTOR``, ``META.EXPOSURE.READPATT``,
``META.SUBARRAY.NAME``, ``META.OBSERVATION.DATE`` …).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from webbflow.errors import ReferenceFileError

#: Meta branches that never select a reference (they change from step to step).
_IGNORED: Final = ("cal_step", "ref_file", "filename", "date")


def crds_configured(use_crds: bool | None) -> bool:
    """Whether to ask CRDS: ``use_crds`` if given, else whether ``CRDS_PATH`` is set."""
    if use_crds is not None:
        return use_crds
    return bool(os.environ.get("CRDS_PATH"))


def crds_parameters(meta: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """CRDS matching parameters ``{"META.INSTRUMENT.NAME": "NIRCAM", …}`` from nested meta."""
    out: dict[str, str | int | float | bool] = {"META.TELESCOPE": "JWST"}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                walk(value, path)
            elif isinstance(value, str | int | float | bool) and path.split(".")[0] not in _IGNORED:
                out[f"META.{path.upper()}"] = value

    walk(meta, "")
    return out


def crds_reference(reftype: str, parameters: Mapping[str, Any], context: str | None = None) -> Path | None:
    """The CRDS best reference of ``reftype`` (cached locally), or ``None`` if CRDS says N/A.

    Raises
    ------
    ReferenceFileError
        If CRDS cannot be imported or fails (no rule, not cached and offline…).
    """
    try:
        import crds
    except ImportError:
        raise ReferenceFileError(
            f"CRDS is configured (CRDS_PATH) but the crds package is not installed; "
            f"pass override_{reftype} or unset CRDS_PATH"
        ) from None
    try:
        result = crds.getreferences(dict(parameters), reftypes=[reftype], context=context, observatory="jwst")
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise ReferenceFileError(
            f"CRDS found no {reftype} reference for this exposure ({message}); "
            f"pass override_{reftype}, or unset CRDS_PATH to use webbflow's defaults"
        ) from None
    value = str(result.get(reftype, "N/A"))
    if value.strip().upper() in ("N/A", "NOT FOUND N/A") or value.upper().startswith("NOT FOUND"):
        return None
    return Path(value)
