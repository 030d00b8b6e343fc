"""The imaging WCS of a NIRCam/NIRISS/FGS/MIRI-imager exposure as a gwcs pipeline (pure; no xarray, no I/O).

Frames and transforms, in the jwst layout that its tools (tweakreg, resample, datamodels) read::

    detector (pix, 0-based in the readout window)
      --distortion-->  v2v3 (arcsec)
      --velocity aberration about (v2_ref, v3_ref)-->  v2v3vacorr (arcsec)
      --attitude rotation-->  world (ICRS, deg)

The distortion is the SIAF one of the detector's full-frame aperture (JWST-STScI-001550, the
numbers :class:`webbflow.sim._siaf_transforms.Frame` holds): a shift from the readout window to
the full-frame science frame, the Sci2Idl polynomial, then the parity flip, the V3IdlYAngle
rotation and the (V2Ref, V3Ref) offset. The polynomial's inverse is a least-squares fit on the
detector (the SIAF Idl2Sci polynomial is good to only 0.15 px on FGS), of the lowest degree
reaching :data:`INVERSE_TOLERANCE`. The attitude is the rotation sequence
``z(v2_ref) y(-v3_ref) x(roll_ref) y(dec_ref) z(-ra_ref)``, which puts the reference point at
``(ra_ref, dec_ref)`` with V3 at position angle ``roll_ref`` there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import Model
from astropy.modeling import models as am
from astropy.modeling.rotations import SphericalRotationSequence
from gwcs import WCS
from gwcs import coordinate_frames as cf

from webbflow.detectors import MIRI_DETECTORS, get_detector
from webbflow.errors import InputError
from webbflow.io.keywords import get_path
from webbflow.sim import _siaf_names as siaf_names
from webbflow.sim._siaf_transforms import Frame

INVERSE_TOLERANCE: Final = 1e-5  # px, worst residual of the fitted ideal -> science inverse
_MAX_INVERSE_DEGREE: Final = 9
_FIT_NODES: Final = 65  # per axis, over the frame plus a margin

#: meta.wcsinfo keys the WCS is built from.
WCSINFO_KEYS: Final = ("v2_ref", "v3_ref", "vparity", "v3yangle", "ra_ref", "dec_ref", "roll_ref")


def siaf_frame(detector: str) -> Frame:
    """SIAF numbers of ``detector``'s full-frame aperture (``NRCA1`` → ``NRCA1_FULL``).

    Raises
    ------
    InputError
        If ``detector`` is not a NIRCam, NIRISS or FGS ``DETECTOR`` value.
    """
    return _siaf_frame(str(detector).strip().upper())


@functools.cache
def _siaf_frame(detector: str) -> Frame:
    for inst, det, full in siaf_names.PREFIX.values():
        if det == detector:
            return Frame.from_aperture(siaf_names.siaf(inst)[full])
    known = sorted(d for _, d, _ in siaf_names.PREFIX.values())
    raise InputError(f"meta.instrument.detector = {detector!r}: expected one of {', '.join(known)}")


def siaf_distortion(
    frame: Frame, xstart: int = 1, ystart: int = 1, *, nx: int = 2048, ny: int = 2048
) -> Model:
    """Readout-window pixels (0-based) → V2/V3 (arcsec), with an inverse good to 1e-5 px.

    Parameters
    ----------
    frame
        SIAF numbers of the detector's full-frame aperture.
    xstart, ystart
        1-based full-frame position of the readout window (``SUBSTRT1/2``).
    nx, ny
        Full-frame size, px: the region the inverse is fitted on.
    """
    shift = am.Shift(xstart - frame.x_sci_ref) & am.Shift(ystart - frame.y_sci_ref)
    poly_x = _polynomial(frame.sci2idl_x, frame.degree)
    poly_y = _polynomial(frame.sci2idl_y, frame.degree)
    forward = am.Mapping((0, 1, 0, 1)) | poly_x & poly_y
    forward.inverse = _fitted_inverse(frame, nx, ny)
    t = math.radians(frame.v3_idl_yangle)
    # ideal -> V2/V3: flip x by the parity, rotate by -V3IdlYAngle, offset to the reference point
    to_tel = (
        am.Scale(float(frame.vidl_parity)) & am.Identity(1)
        | am.Rotation2D(-math.degrees(t))
        | am.Shift(frame.v2_ref) & am.Shift(frame.v3_ref)
    )
    model = shift | forward | to_tel
    model.name = "distortion"
    return model


def _polynomial(coef: tuple[float, ...], degree: int) -> am.Polynomial2D:
    """SIAF coefficients (k over i <= degree, j <= i: term x^(i-j) y^j) as a Polynomial2D."""
    values: dict[str, float] = {}
    k = 0
    for i in range(degree + 1):
        for j in range(i + 1):
            values[f"c{i - j}_{j}"] = coef[k]
            k += 1
    return am.Polynomial2D(degree, **values)


def _design(x: np.ndarray, y: np.ndarray, degree: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    powers = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]
    return np.stack([x**i * y**j for i, j in powers], axis=-1), powers


@functools.lru_cache(maxsize=32)
def _fitted_inverse(frame: Frame, nx: int, ny: int) -> Model:
    """Ideal (arcsec) → science pixel offsets from the reference point, fitted by least squares."""
    margin = 0.05 * max(nx, ny)
    gx, gy = np.meshgrid(
        np.linspace(0.5 - margin, nx + 0.5 + margin, _FIT_NODES),
        np.linspace(0.5 - margin, ny + 0.5 + margin, _FIT_NODES),
    )
    xs, ys = gx.ravel(), gy.ravel()  # 1-based science pixels
    xi, yi = frame.sci_to_idl(xs, ys)
    scale = float(np.max(np.abs(np.concatenate([xi, yi]))))
    targets = np.stack([xs - frame.x_sci_ref, ys - frame.y_sci_ref], axis=-1)
    for degree in range(frame.degree, _MAX_INVERSE_DEGREE + 1):
        design, powers = _design(xi / scale, yi / scale, degree)  # scaled: a well-conditioned fit
        coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
        if np.max(np.abs(design @ coef - targets)) < INVERSE_TOLERANCE:
            break
    polys = [
        am.Polynomial2D(degree, **{f"c{i}_{j}": c[n] / scale ** (i + j) for n, (i, j) in enumerate(powers)})
        for c in coef.T
    ]
    return am.Mapping((0, 1, 0, 1)) | polys[0] & polys[1]


def velocity_aberration(v2_ref: float, v3_ref: float, scale: float) -> Model:
    """V2/V3 (arcsec) scaled by the velocity-aberration ``scale`` about the reference point."""
    model = (
        am.Shift(-v2_ref) & am.Shift(-v3_ref)
        | am.Scale(scale) & am.Scale(scale)
        | am.Shift(v2_ref) & am.Shift(v3_ref)
    )
    model.name = "va_corr"
    return model


def v23_to_sky(v2_ref: float, v3_ref: float, ra_ref: float, dec_ref: float, roll_ref: float) -> Model:
    """V2/V3 (arcsec) → (RA, Dec) (deg) for the attitude given at the reference point.

    ``(v2_ref, v3_ref)`` arcsec lands on ``(ra_ref, dec_ref)`` deg, with the V3 axis at position
    angle ``roll_ref`` deg (East of North) there.
    """
    rotation = SphericalRotationSequence(
        [v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref, dec_ref, -ra_ref], axes_order="zyxyz", name="v23tosky"
    )
    model = am.Scale(1 / 3600.0) & am.Scale(1 / 3600.0) | rotation
    model.name = "v23tosky"
    return model


def imaging_wcs(meta: Mapping[str, Any], ny: int, nx: int, distortion: Model | None = None) -> WCS:
    """The gwcs WCS of an imaging exposure from its jwst ``meta``.

    Parameters
    ----------
    meta
        Nested jwst meta: ``wcsinfo.{v2_ref, v3_ref, vparity, v3yangle, ra_ref, dec_ref,
        roll_ref}``, ``instrument.detector``, ``subarray.xstart/ystart`` (default 1) and
        ``velocity_aberration.scale_factor`` (default 1).
    ny, nx
        Shape of the readout window, px: the bounding box is its pixel edges.
    distortion
        Full-frame 0-based pixels → V2/V3 (arcsec), e.g. a jwst DISTORTION reference's
        ``model``; default the SIAF distortion of the detector.

    Raises
    ------
    InputError
        A missing or non-numeric ``wcsinfo`` value, or an unknown detector.
    """
    w = {k: _number(meta, f"wcsinfo.{k}") for k in WCSINFO_KEYS}
    xstart = int(get_path(meta, "subarray.xstart", 1) or 1)
    ystart = int(get_path(meta, "subarray.ystart", 1) or 1)
    detector = str(get_path(meta, "instrument.detector", "") or "")
    if distortion is None:
        det = get_detector(detector) if detector else None
        full = (det.nx, det.ny) if det is not None else (2048, 2048)
        to_v2v3 = siaf_distortion(siaf_frame(detector), xstart, ystart, nx=full[0], ny=full[1])
    else:
        to_v2v3 = (
            am.Shift(xstart - 1) & am.Shift(ystart - 1) | distortion
            if (xstart, ystart) != (1, 1)
            else distortion
        )
    va = float(get_path(meta, "velocity_aberration.scale_factor", 1.0) or 1.0)
    detector_frame = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    v2v3va = cf.Frame2D(
        name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec)
    )
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    wcs = WCS(
        [
            (detector_frame, to_v2v3),
            (v2v3, velocity_aberration(w["v2_ref"], w["v3_ref"], va)),
            (v2v3va, v23_to_sky(w["v2_ref"], w["v3_ref"], w["ra_ref"], w["dec_ref"], w["roll_ref"])),
            (world, None),
        ]
    )
    wcs.bounding_box = (_x_bounds(detector, xstart, nx), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    return wcs


def _x_bounds(detector: str, xstart: int, nx: int) -> tuple[float, float]:
    """Window-pixel x bounds of the WCS: the window's edges, without MIRI's reference columns.

    As jwst's MIRI imaging WCS (its full-frame bounding box is x 3.5-1027.5): the 4 reference
    columns on each side of the MIRI imager see no sky.
    """
    lo, hi = -0.5, nx - 0.5
    if detector.strip().upper() in MIRI_DETECTORS:
        det = MIRI_DETECTORS[detector.strip().upper()]
        first, last = det.refpix, det.nx - det.refpix - 1  # full-frame 0-based sky columns
        lo = max(lo, first - (xstart - 1) - 0.5)
        hi = min(hi, last - (xstart - 1) + 0.5)
    return lo, hi


def s_region(wcs: WCS) -> str:
    """``S_REGION`` of the WCS's footprint: the sky corners of its bounding box."""
    corners = wcs.footprint()
    return "POLYGON ICRS " + " ".join(f"{ra % 360.0:.9f} {dec:.9f}" for ra, dec in corners)


def _number(meta: Mapping[str, Any], path: str) -> float:
    value = get_path(meta, path)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InputError(
            f"meta.{path} = {value!r}: assign_wcs needs a finite number (keyword from the pointing)"
        )
    return number
