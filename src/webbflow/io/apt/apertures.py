"""Which detectors an imaging exposure reads out, their SIAF apertures, and where they point.

A NIRCam exposure reads the four short-wavelength detectors of each module used (with the
short filter) and that module's long-wavelength detector (with the long filter); NIRISS reads
``NIS``; FGS the guider the template names; MIRI imaging the imager ``MIRIMAGE`` through its
``MIRIM_<SUBARRAY>`` aperture (the ``.pointing`` file names ``MIRIM_ILLUM`` for full-frame imaging,
the illuminated part of the array; the exposure's aperture is still ``MIRIM_FULL``).
Sky positions follow the JWST attitude: the ``.pointing`` row puts the target at (V2, V3)
with V3 at position angle ``v3pa`` (``pysiaf.utils.rotations.attitude``); each aperture's
reference point is then mapped to the sky through that attitude (``rotations.pointing``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from webbflow.io.apt.model import ExposureSpec, PointingRow, TemplateSpec

_SIAF_NAME = {"NIRCAM": "NIRCam", "NIRISS": "NIRISS", "FGS": "FGS", "MIRI": "MIRI"}


class DetectorExposure(NamedTuple):
    """One detector of an exposure: jwst DETECTOR, SIAF aperture, SUBARRAY, FILTER, PUPIL."""

    detector: str
    aperture: str
    subarray: str
    filter: str
    pupil: str


@functools.cache
def siaf(instrument: str) -> Any:
    """The (cached) ``pysiaf.Siaf`` of ``NIRCAM``/``NIRISS``/``FGS``/``MIRI``."""
    import pysiaf

    return pysiaf.Siaf(_SIAF_NAME[instrument])


def _modules(module: str) -> tuple[str, ...]:
    return ("A", "B") if module.upper() in ("ALL", "BOTH", "") else tuple(module.upper())


def detectors(
    template: TemplateSpec, spec: ExposureSpec, row_aperture: str = ""
) -> tuple[DetectorExposure, ...]:
    """The detectors that ``spec`` of ``template`` reads out (empty: no SIAF imaging aperture).

    Parameters
    ----------
    template, spec
        The template and the exposure specification of one pointing row.
    row_aperture
        The row's pointing aperture: names the FGS guider when the XML does not.
    """
    apertures = siaf(template.instrument).apernames
    subarray = (spec.subarray or template.subarray or "FULL").upper()
    if template.instrument == "NIRCAM":
        out = []
        for module in _modules(template.module):
            for n in range(1, 6):
                name = f"NRC{module}{n}_{subarray}"
                if name not in apertures:
                    continue
                if n < 5:
                    out.append(DetectorExposure(f"NRC{module}{n}", name, subarray, spec.filter, spec.pupil))
                else:
                    out.append(
                        DetectorExposure(f"NRC{module}LONG", name, subarray, spec.lw_filter, spec.lw_pupil)
                    )
        return tuple(out)
    if template.instrument == "MIRI":
        name = f"MIRIM_{subarray}"
        return (DetectorExposure("MIRIMAGE", name, subarray, spec.filter, ""),) if name in apertures else ()
    if template.instrument == "NIRISS":
        name = "NIS_CEN" if subarray == "FULL" else f"NIS_{subarray}"
        return (
            (DetectorExposure("NIS", name, subarray, spec.filter, spec.pupil),) if name in apertures else ()
        )
    guider = template.detector or ("GUIDER" + row_aperture[3] if row_aperture.startswith("FGS") else "")
    if guider not in ("GUIDER1", "GUIDER2"):
        return ()
    name = f"FGS{guider[-1]}_{subarray}"
    return (DetectorExposure(guider, name, subarray, "", ""),) if name in apertures else ()


def sky(
    instrument: str, aperture: str, row: PointingRow, ra: float, dec: float, v3pa: float
) -> tuple[float, float]:
    """RA, Dec (deg) of ``aperture``'s reference point when ``row`` points the target (ra, dec).

    The attitude puts (``row.v2``, ``row.v3``) arcsec on (``ra``, ``dec``) with V3 at position
    angle ``v3pa`` deg at V1 (PA_V3, as the simulator's :class:`~webbflow.sim.geometry.Pointing`
    and Mirage take it); the roll at (v2, v3) follows from it.
    """
    from pysiaf.utils import rotations

    local_roll = rotations.posangle(rotations.attitude(0.0, 0.0, ra, dec, v3pa), row.v2, row.v3)
    att = rotations.attitude(row.v2, row.v3, ra, dec, local_roll)
    ap = siaf(instrument)[aperture]
    ra_ref, dec_ref = rotations.pointing(att, ap.V2Ref, ap.V3Ref)
    return float(ra_ref), float(dec_ref)


def frame_size(instrument: str, aperture: str) -> tuple[int, int]:
    """(xsize, ysize) pixels of ``aperture`` in the science frame."""
    ap = siaf(instrument)[aperture]
    return int(ap.XSciSize), int(ap.YSciSize)
