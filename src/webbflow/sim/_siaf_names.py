"""SIAF aperture names: their detector, their ``SUBARRAY`` keyword, their readout window.

An aperture name is ``<prefix>_<suffix>``; the prefix names the detector (``NRCB5`` ->
``NRCBLONG``) and the suffix the subarray. :func:`siaf` and :func:`lookup` reach pysiaf (imported
lazily, once per process); :func:`detector_for_aperture` and :func:`subarray_name` are pure text.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Final

import numpy as np

from webbflow.detectors import Detector
from webbflow.errors import UsageError, suggest

#: SIAF aperture-name prefix -> (pysiaf instrument, DETECTOR keyword, full-frame aperture, whose
#: science frame is our pixel frame).
PREFIX: Final = {
    **{f"NRC{m}{i}": ("NIRCam", f"NRC{m}{i}", f"NRC{m}{i}_FULL") for m in "AB" for i in range(1, 5)},
    "NRCA5": ("NIRCam", "NRCALONG", "NRCA5_FULL"),
    "NRCB5": ("NIRCam", "NRCBLONG", "NRCB5_FULL"),
    "NIS": ("NIRISS", "NIS", "NIS_CEN"),
    "FGS1": ("FGS", "GUIDER1", "FGS1_FULL"),
    "FGS2": ("FGS", "GUIDER2", "FGS2_FULL"),
    "MIRIM": ("MIRI", "MIRIMAGE", "MIRIM_FULL"),
}
#: pysiaf instrument name -> ``INSTRUME`` keyword.
INSTRUME: Final = {"NIRCam": "NIRCAM", "NIRISS": "NIRISS", "FGS": "FGS", "MIRI": "MIRI"}
#: SUBARRAY keyword of subarrays not named by their aperture suffix (jwst datamodel enum);
#: the first matching pattern wins (``{m}``: NIRCam module), otherwise the suffix is the name.
SUBARRAY_RULES: Final = (
    (r"GRISM(?:TS)?(64|128|256)(_.*)?", r"SUBGRISM\1"),
    (r"TAGRISMTS32(_.*)?", "SUB32TATSGRISM"),
    (r"TAPSIMG32(_.*)?", "SUB32TATS"),
    (r"(\d+STRIPE\d)_DHS(_.*)?", r"SUB\1_DHS"),
    (r"DHSPIL_SUB(\d+)", r"SUB\1DHSPIL{m}"),
    (r"(FP\d)_SUB(\d+)", r"SUB\2\1{m}"),
    (r"AMI[1-4](_.*)?", "SUB80"),
    (r"AMITA", "SUBTAAMI"),
    (r"SOSSTA", "SUBTASOSS"),
    (r"WFSS(64|128)([RC])3?", r"WFSS\1\2"),
)
_MAX_OVERHANG: Final = 16  # px a SIAF subarray may overhang the frame (then shifted inside)


class _QuietPrdCheck(logging.Filter):
    """Drop pysiaf's import-time notice that the PRD version cannot be checked online."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "PRD VERSION" not in str(record.msg)


logging.getLogger("pysiaf").addFilter(_QuietPrdCheck())


@functools.cache
def siaf(instrument: str) -> Any:
    """The pysiaf ``Siaf`` of ``instrument`` (slow to build: once per process)."""
    import pysiaf

    return pysiaf.Siaf(instrument)


def detector_for_aperture(aperture: str) -> str:
    """The ``DETECTOR`` keyword of a SIAF aperture (``NRCB5_FULL`` -> ``NRCBLONG``).

    Raises
    ------
    ValueError
        If the aperture does not name one NIRCam, NIRISS or FGS detector or the MIRI imager.
    """
    prefix, _, suffix = str(aperture).strip().upper().partition("_")
    if prefix in PREFIX and re.fullmatch(r"\w+", suffix):
        return PREFIX[prefix][1]
    raise ValueError(
        f"{aperture!r} does not name one detector's SIAF aperture "
        "(expected e.g. NRCA1_FULL, NRCB5_FULL, NRCA1_SUB160, NIS_CEN, FGS1_FULL, MIRIM_FULL)"
    )


def subarray_name(prefix: str, suffix: str, is_full: bool) -> str:
    """``SUBARRAY`` keyword of aperture ``<prefix>_<suffix>``."""
    if suffix == "FULLP":
        return "FULLP"
    if is_full:
        return "FULL"
    for pattern, name in SUBARRAY_RULES:
        if re.fullmatch(pattern, suffix):
            return re.sub(pattern, name, suffix).replace("{m}", prefix[3:4])
    return suffix


def readout_window(sub: Any, full: Any, det: Detector) -> tuple[int, int, int, int]:
    """Readout window (1-based xstart, ystart, xsize, ysize) of SIAF aperture ``sub`` on its
    detector's full frame.

    Goes through the det frame (the sci frames of a subarray and of its full frame may differ).
    A few SIAF subarrays (``NRCA5_SUB400P``) overhang the frame by a few pixels: their window is
    shifted inside, as the readout is.
    """
    xs, ys = np.array([1.0, float(sub.XSciSize)]), np.array([1.0, float(sub.YSciSize)])
    xf, yf = full.det_to_sci(*sub.sci_to_det(xs, ys))
    if not np.allclose([xf[1] - xf[0], yf[1] - yf[0]], [xs[1] - 1, ys[1] - 1]):
        raise UsageError(f"aperture {sub.AperName!r}: its science frame is not aligned with the DMS frame")
    size = (int(sub.XSciSize), int(sub.YSciSize))
    start = []
    for s0, n, nfull in ((round(float(xf[0])), size[0], det.nx), (round(float(yf[0])), size[1], det.ny)):
        shifted = min(max(s0, 1), nfull - n + 1)
        if abs(shifted - s0) > _MAX_OVERHANG:
            raise UsageError(
                f"aperture {sub.AperName!r}: its window starts at {s0}, off the {nfull}-px frame"
            )
        start.append(shifted)
    return (start[0], start[1], *size)


def lookup(name: str, instrument: str | None) -> tuple[Any, str]:
    """(pysiaf aperture, pysiaf instrument) of aperture ``name``, searching ``instrument`` first."""
    order = [instrument] if instrument else []
    order += [i for i in ("NIRCam", "NIRISS", "FGS", "MIRI") if i != instrument]
    for inst in order:
        if name in siaf(inst).apernames:
            return siaf(inst)[name], inst
    known = [n for inst in order for n in siaf(inst).apernames]
    raise UsageError(f"unknown SIAF aperture {name!r}{suggest(name, known)}")
