"""The default ``DISTORTION`` reference: the SIAF distortion of a detector, as a jwst ASDF file.

jwst's ``DistortionModel`` is an ASDF file whose ``model`` maps full-frame 0-based detector
pixels ``(x, y)`` to the telescope's ``(V2, V3)`` in arcsec, with ``meta`` naming the
reftype, instrument, detector, exposure types and units. Ours is
:func:`webbflow.steps.assign_wcs.wcs.siaf_distortion` of the detector's full-frame aperture
(the SIAF Sci2Idl polynomial, its fitted inverse good to 1e-5 px, the V3IdlYAngle rotation and
the V2Ref/V3Ref offset), with its bounding box set to the detector's pixel edges as CRDS
files have (MIRI: without the 4 reference columns on each side). The tree has no date and
arrays are stored inline, so every writer produces the same bytes for a given software
environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asdf
from astropy import units as u

from webbflow.detectors import Detector


def distortion_tree(det: Detector, filename: str, generator_version: str) -> dict[str, Any]:
    """The ASDF tree ``{"model": ..., "meta": ...}`` of ``det``'s default distortion reference.

    Parameters
    ----------
    det
        The detector (full frame ``det.nx`` × ``det.ny``).
    filename
        The file's own name (``meta.filename``).
    generator_version
        The default set's generator version, recorded in ``meta.description``.
    """
    from webbflow.steps.assign_wcs.wcs import siaf_distortion, siaf_frame

    model = siaf_distortion(siaf_frame(det.name), nx=det.nx, ny=det.ny)
    # astropy's bounding_box is in (y, x) order for a 2-input model; MIRI's excludes its
    # reference columns (x 0-3, nx-4..nx-1), as jwst's MIRI imaging WCS does
    x0 = det.refpix - 0.5 if det.instrument == "MIRI" else -0.5
    model.bounding_box = ((-0.5, det.ny - 0.5), (x0, det.nx - 1 - x0))
    instrument: dict[str, Any] = {"name": det.instrument, "detector": det.name}
    exp_types = det.exp_types
    if det.instrument == "NIRCAM":
        instrument.update(module=det.module, channel=det.channel, pupil="ANY", p_pupil="ANY|", filter="N/A")
    if det.instrument == "MIRI":
        instrument.update(filter="N/A", band="N/A")
        exp_types = ("MIR_IMAGE", "MIR_TACQ", "MIR_TACONFIRM", "MIR_FLATIMAGE", "MIR_CORONCAL")
    meta: dict[str, Any] = {
        "telescope": "JWST",
        "reftype": "DISTORTION",
        "model_type": "DistortionModel",
        "filename": filename,
        "description": f"webbflow default distortion (SIAF, generator v{generator_version})",
        "author": "webbflow",
        "pedigree": "DUMMY",
        "useafter": "2000-01-01T00:00:00",
        "instrument": instrument,
        "exposure": {"type": exp_types[0], "p_exptype": "|".join(exp_types) + "|"},
        "subarray": {"name": "FULL", "xstart": 1, "ystart": 1, "xsize": det.nx, "ysize": det.ny},
        "input_units": u.pix,
        "output_units": u.arcsec,
    }
    return {"model": model, "meta": meta}


def write_distortion(det: Detector, path: Path, generator_version: str, final_name: str) -> None:
    """Write ``det``'s default distortion reference to ``path`` (ASDF, arrays inline)."""
    tree = distortion_tree(det, final_name, generator_version)
    af = asdf.AsdfFile(tree)
    with path.open("wb") as f:
        af.write_to(f, all_array_storage="inline")
