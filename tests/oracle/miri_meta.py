"""Metadata of a MIRI imager SUB64 FASTR1 exposure, for the MIRI step tests and their jwst oracles."""

from __future__ import annotations

from typing import Any

from webbflow.detectors import MIRI_SUBARRAYS

SUB64 = MIRI_SUBARRAYS["SUB64"]


def sub64_meta(**exposure: Any) -> dict[str, Any]:
    """webbflow meta of a MIRI imager SUB64 FASTR1 exposure; ``exposure`` adds ``exposure.*`` keys."""
    return {
        "instrument": {
            "name": "MIRI",
            "detector": "MIRIMAGE",
            "filter": "F770W",
            "module": "",
            "channel": "",
        },
        "exposure": {"type": "MIR_IMAGE", "readpatt": "FASTR1", **exposure},
        "subarray": {
            "name": "SUB64",
            "xstart": SUB64.xstart,
            "ystart": SUB64.ystart,
            "xsize": SUB64.xsize,
            "ysize": SUB64.ysize,
            "fastaxis": 1,
            "slowaxis": 2,
        },
    }


def jwst_meta(nints: int, ngroups: int, nint_data: int, int_start: int | None) -> dict[str, Any]:
    """jwst datamodel meta (dotted paths) of a MIRI SUB64 FASTR1 exposure.

    ``nint_data`` integrations of the ``nints`` are in the data; ``int_start`` (1-based
    INTSTART, or None for a whole exposure) sets ``integration_start``/``integration_end``.
    """
    meta = {
        "instrument.name": "MIRI",
        "instrument.detector": "MIRIMAGE",
        "instrument.filter": "F770W",
        "exposure.type": "MIR_IMAGE",
        "exposure.readpatt": "FASTR1",
        "exposure.nints": nints,
        "exposure.ngroups": ngroups,
        "exposure.nframes": 1,
        "exposure.groupgap": 0,
        "subarray.name": "SUB64",
        "subarray.xstart": SUB64.xstart,
        "subarray.ystart": SUB64.ystart,
        "subarray.xsize": SUB64.xsize,
        "subarray.ysize": SUB64.ysize,
        "subarray.fastaxis": 1,
        "subarray.slowaxis": 2,
        "observation.date": "2026-01-01",
        "observation.time": "00:00:00",
    }
    if int_start is not None:
        meta["exposure.integration_start"] = int_start
        meta["exposure.integration_end"] = int_start + nint_data - 1
    return meta
