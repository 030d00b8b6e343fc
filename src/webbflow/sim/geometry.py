"""Where the sky lands on a detector: SIAF apertures, attitude and distortion.

A :class:`Geometry` maps sky positions to **0-based full-frame DMS (science-frame) pixels** of one
detector and back, for a telescope attitude given by a :class:`Pointing`. It follows the JWST
Science Instrument Aperture File (SIAF, read with ``pysiaf``; JWST-STScI-001550):

    pixel (sci) --Sci2Idl polynomial--> ideal (arcsec) --rotation, parity--> V2/V3 (arcsec)
    --attitude matrix--> RA/Dec

always through the detector's full-frame aperture (``NRCA1_FULL``, ``NIS_CEN``, ``FGS1_FULL``),
whatever subarray is read: a subarray only sets :attr:`Geometry.window` and the WCS keywords.
The ideal-to-V2/V3 step is the SIAF planar approximation (pysiaf's default, and what the jwst
distortion reference files encode). Sky-to-pixel starts from the SIAF inverse polynomial
(Idl2Sci: 1e-3 px on NIRCam, 0.15 px on FGS) and refines it by Newton steps on Sci2Idl, so both are
exact inverses of each other.

The attitude follows Mirage's ``Telescope`` convention: the reference point (V2Ref, V3Ref) of the
aperture (or of another ``reference`` aperture) points at ``(ra, dec)``, and ``v3pa`` is the
position angle of the V3 axis at V1 (keyword ``PA_V3``). The local roll at the reference point is
solved for exactly; Mirage's closed-form approximation of it (V1 taken at the reference point)
moves the detector corners by 0.005-0.04 px at |Dec| <= 60° and ~1 px at Dec 85°.

The object holds only SIAF numbers (polynomial coefficients, angles and a 3×3 attitude), so it
pickles in a few kB and evaluates without ``pysiaf``, which is imported (lazily, once per process)
only to build it.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from webbflow.detectors import Detector, get_detector
from webbflow.errors import UsageError, suggest

#: SIAF aperture-name prefix -> (pysiaf instrument, DETECTOR keyword, full-frame aperture, whose
#: science frame is our pixel frame).
_PREFIX: Final = {
    **{f"NRC{m}{i}": ("NIRCam", f"NRC{m}{i}", f"NRC{m}{i}_FULL") for m in "AB" for i in range(1, 5)},
    "NRCA5": ("NIRCam", "NRCALONG", "NRCA5_FULL"),
    "NRCB5": ("NIRCam", "NRCBLONG", "NRCB5_FULL"),
    "NIS": ("NIRISS", "NIS", "NIS_CEN"),
    "FGS1": ("FGS", "GUIDER1", "FGS1_FULL"),
    "FGS2": ("FGS", "GUIDER2", "FGS2_FULL"),
}
_INSTRUME: Final = {"NIRCam": "NIRCAM", "NIRISS": "NIRISS", "FGS": "FGS"}
#: SUBARRAY keyword of subarrays not named by their aperture suffix (jwst datamodel enum);
#: the first matching pattern wins (``{m}``: NIRCam module), otherwise the suffix is the name.
_SUBARRAY_RULES: Final = (
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
_AREA_STEP: Final = 16  # px between nodes of the pixel-area grid (a power of 2: exact node maths)
_NEWTON_STEPS: Final = 3
_MAX_OVERHANG: Final = 16  # px a SIAF subarray may overhang the frame (then shifted inside)
_ARCSEC: Final = math.pi / (180.0 * 3600.0)  # radians per arcsec


class _QuietPrdCheck(logging.Filter):
    """Drop pysiaf's import-time notice that the PRD version cannot be checked online."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "PRD VERSION" not in str(record.msg)


logging.getLogger("pysiaf").addFilter(_QuietPrdCheck())


@functools.cache
def _siaf(instrument: str) -> Any:
    """The pysiaf ``Siaf`` of ``instrument`` (slow to build: once per process)."""
    import pysiaf

    return pysiaf.Siaf(instrument)


@dataclass(frozen=True)
class Pointing:
    """Telescope pointing in Mirage's convention.

    Attributes
    ----------
    ra, dec
        Sky position (deg, ICRS) of the reference point of the reference aperture.
    v3pa
        Position angle of the telescope V3 axis at V1, deg East of North (``PA_V3``).
    """

    ra: float
    dec: float
    v3pa: float

    def __post_init__(self) -> None:
        values = (self.ra, self.dec, self.v3pa)
        try:
            ra, dec, v3pa = (float(v) for v in values)
        except (TypeError, ValueError):
            ra = dec = v3pa = math.nan
        if not all(math.isfinite(v) for v in (ra, dec, v3pa)) or abs(dec) > 90.0:
            raise UsageError(f"pointing (ra, dec, v3pa) = {values}: expected finite degrees, |dec| <= 90")
        for name, value in (("ra", ra), ("dec", dec), ("v3pa", v3pa)):
            object.__setattr__(self, name, value)  # plain floats (frozen dataclass)


@dataclass(frozen=True)
class _Frame:
    """SIAF numbers of a full-frame aperture: science pixels <-> ideal <-> V2/V3 (hashable)."""

    degree: int
    sci2idl_x: tuple[float, ...]
    sci2idl_y: tuple[float, ...]
    idl2sci_x: tuple[float, ...]
    idl2sci_y: tuple[float, ...]
    x_sci_ref: float  # 1-based science pixel of the reference point
    y_sci_ref: float
    v2_ref: float  # arcsec
    v3_ref: float
    v3_idl_yangle: float  # deg
    vidl_parity: int

    @classmethod
    def from_aperture(cls, ap: Any) -> _Frame:
        c = {k: tuple(float(v) for v in a) for k, a in ap.get_polynomial_coefficients().items()}
        ref = (float(ap.XSciRef), float(ap.YSciRef), float(ap.V2Ref), float(ap.V3Ref), float(ap.V3IdlYAngle))
        return cls(
            int(ap.Sci2IdlDeg),
            c["Sci2IdlX"],
            c["Sci2IdlY"],
            c["Idl2SciX"],
            c["Idl2SciY"],
            *ref,
            int(ap.VIdlParity),
        )

    def sci_to_idl(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = xs - self.x_sci_ref, ys - self.y_sci_ref
        return _poly(self.sci2idl_x, self.degree, dx, dy), _poly(self.sci2idl_y, self.degree, dx, dy)

    def jacobian(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, ...]:
        """d(ideal x, ideal y)/d(sci x, sci y) as ``(dxi/dx, dxi/dy, dyi/dx, dyi/dy)``, arcsec/px."""
        dx, dy = xs - self.x_sci_ref, ys - self.y_sci_ref
        return tuple(_poly(c, self.degree, dx, dy, d) for c in (self.sci2idl_x, self.sci2idl_y) for d in "xy")

    def idl_to_sci(self, xi: np.ndarray, yi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`sci_to_idl`: SIAF inverse polynomial, then Newton on Sci2Idl."""
        xs = _poly(self.idl2sci_x, self.degree, xi, yi) + self.x_sci_ref
        ys = _poly(self.idl2sci_y, self.degree, xi, yi) + self.y_sci_ref
        for _ in range(_NEWTON_STEPS):
            a, b, c, d = self.jacobian(xs, ys)
            rx, ry = self.sci_to_idl(xs, ys)
            rx, ry, det = rx - xi, ry - yi, a * d - b * c
            xs, ys = xs - (d * rx - b * ry) / det, ys - (a * ry - c * rx) / det
        return xs, ys

    def idl_to_tel(self, xi: np.ndarray, yi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, px = math.radians(self.v3_idl_yangle), self.vidl_parity * xi
        return self.v2_ref + px * math.cos(t) + yi * math.sin(t), self.v3_ref - px * math.sin(
            t
        ) + yi * math.cos(t)

    def tel_to_idl(self, v2: np.ndarray, v3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = math.radians(self.v3_idl_yangle)
        d2, d3 = v2 - self.v2_ref, v3 - self.v3_ref
        return self.vidl_parity * (d2 * math.cos(t) - d3 * math.sin(t)), d2 * math.sin(t) + d3 * math.cos(t)

    def area(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Pixel area, arcsec², at 1-based science pixels (Jacobian determinant)."""
        a, b, c, d = self.jacobian(xs, ys)
        return np.abs(a * d - b * c)


def _poly(coef: tuple[float, ...], degree: int, x: np.ndarray, y: np.ndarray, d: str = "") -> np.ndarray:
    """SIAF polynomial ``sum coef[k] x^(i-j) y^j`` (k runs over i <= degree, j <= i), or its
    derivative along ``d`` = ``"x"``/``"y"``."""
    xp, yp = [np.ones_like(x)], [np.ones_like(y)]
    for _ in range(degree):
        xp.append(xp[-1] * x)
        yp.append(yp[-1] * y)
    out = np.zeros_like(x)
    k = 0
    for i in range(degree + 1):
        for j in range(i + 1):
            factor = coef[k] * {"": 1, "x": i - j, "y": j}[d]
            if factor:
                out += factor * xp[i - j - (d == "x")] * yp[j - (d == "y")]
            k += 1
    return out


@functools.lru_cache(maxsize=32)
def _area_grid(frame: _Frame, nx: int, ny: int) -> np.ndarray:
    """Relative pixel area on full-frame nodes ``0, 16, ..., n`` (0-based), read-only float64."""
    gy, gx = np.meshgrid(
        np.arange(0, ny + 1, _AREA_STEP, dtype=float),
        np.arange(0, nx + 1, _AREA_STEP, dtype=float),
        indexing="ij",
    )
    grid = frame.area(gx + 1.0, gy + 1.0) / frame.area(np.array(frame.x_sci_ref), np.array(frame.y_sci_ref))
    grid.setflags(write=False)
    return grid


def _unit(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors (3, ...) of spherical angles in degrees."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lon) * np.cos(lat), np.sin(lon) * np.cos(lat), np.sin(lat)])


def _angles(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spherical angles (deg; longitude in (-180, 180]) of vectors (3, ...)."""
    return np.degrees(np.arctan2(u[1], u[0])), np.degrees(np.arcsin(np.clip(u[2], -1.0, 1.0)))


def _tel_to_sky(attitude: Any, v2: Any, v3: Any) -> tuple[np.ndarray, np.ndarray]:
    """(RA in [0, 360), Dec), deg, of V2/V3 positions (arcsec) under a 3×3 attitude matrix."""
    u = np.einsum("ij,j...->i...", np.asarray(attitude), _unit(np.asarray(v2) / 3600, np.asarray(v3) / 3600))
    ra, dec = _angles(u)
    ra = np.mod(ra, 360.0)
    return np.where(ra >= 360.0, 0.0, ra), dec  # mod of a tiny negative rounds to 360


def _subarray_name(prefix: str, suffix: str, is_full: bool) -> str:
    """``SUBARRAY`` keyword of aperture ``<prefix>_<suffix>``."""
    if suffix == "FULLP":
        return "FULLP"
    if is_full:
        return "FULL"
    for pattern, name in _SUBARRAY_RULES:
        if re.fullmatch(pattern, suffix):
            return re.sub(pattern, name, suffix).replace("{m}", prefix[3:4])
    return suffix


def _window(sub: Any, full: Any, det: Detector) -> tuple[int, int, int, int]:
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


def _lookup(name: str, instrument: str | None) -> tuple[Any, str]:
    """(pysiaf aperture, pysiaf instrument) of aperture ``name``, searching ``instrument`` first."""
    order = [instrument] if instrument else []
    order += [i for i in ("NIRCam", "NIRISS", "FGS") if i != instrument]
    for inst in order:
        if name in _siaf(inst).apernames:
            return _siaf(inst)[name], inst
    known = [n for inst in order for n in _siaf(inst).apernames]
    raise UsageError(f"unknown SIAF aperture {name!r}{suggest(name, known)}")


@dataclass(frozen=True, eq=False)
class Geometry:
    """Sky <-> pixel mapping of one detector at one pointing. Build with :meth:`from_aperture`.

    Attributes
    ----------
    aperture, reference
        SIAF names of the exposure aperture and of the aperture whose reference point is at
        the pointing.
    pointing
        The telescope pointing.
    instrument, detector
        ``INSTRUME`` and ``DETECTOR`` keyword values.
    subarray_name
        ``SUBARRAY`` keyword value (``FULL``, ``SUB160``, ``SUB64``, ``SUB128CNTR`` …).
    window
        ``(xstart, ystart, xsize, ysize)``: 1-based full-frame DMS start and size of the readout
        (``SUBSTRT1/2``, ``SUBSIZE1/2``).
    reference_pixel
        0-based full-frame pixel ``(x, y)`` of the exposure aperture's reference point (V2Ref,
        V3Ref), through the full-frame distortion.
    nominal_pixel_area_sr
        Pixel solid angle (sr) at the detector's reference point (its full-frame aperture's, the
        detector centre), the nominal area :meth:`pixel_area` is relative to.
    """

    aperture: str
    reference: str
    pointing: Pointing
    instrument: str
    detector: str
    subarray_name: str
    window: tuple[int, int, int, int]
    reference_pixel: tuple[float, float]
    nominal_pixel_area_sr: float
    _frame: _Frame = field(repr=False)
    _attitude: tuple[tuple[float, ...], ...] = field(repr=False)  # V2/V3 -> sky rotation
    _wcs: tuple[tuple[str, Any], ...] = field(repr=False)  # exposure-aperture numbers for meta()

    @classmethod
    def from_aperture(cls, aperture: str, pointing: Pointing, *, reference: str | None = None) -> Geometry:
        """The geometry of SIAF ``aperture`` with ``reference``'s reference point at ``pointing``.

        Parameters
        ----------
        aperture
            SIAF aperture read (``NRCA1_FULL``, ``NRCB5_FULL``, ``NRCA3_SUB400P``, ``NIS_CEN``,
            ``NIS_SUB64``, ``FGS1_FULL``, ``FGS2_SUB128CNTR`` …), any case.
        pointing
            Where the reference aperture's reference point lands, and ``PA_V3``.
        reference
            SIAF aperture (any instrument, e.g. ``NRCALL_FULL``) whose reference point is at
            ``pointing``; default ``aperture``.

        Raises
        ------
        UsageError
            Unknown aperture (with the closest name), or one that is not on a single
            NIRCam/NIRISS/FGS detector, has no pixel window or is not aligned with the DMS frame.
        """
        name = str(aperture).strip().upper()
        prefix, _, suffix = name.partition("_")
        if prefix not in _PREFIX:
            _lookup(name, None)  # unknown names get a did-you-mean
            raise UsageError(f"aperture {name!r} is not on one NIRCam/NIRISS/FGS detector")
        inst, detector, full_name = _PREFIX[prefix]
        sub, _ = _lookup(name, inst)
        if sub.XSciSize is None or sub.YSciSize is None:
            raise UsageError(
                f"aperture {name!r} ({sub.AperType}) has no pixel window: use an imaging aperture"
            )
        ref_name = name if reference is None else str(reference).strip().upper()
        ref, _ = _lookup(ref_name, inst)
        det = get_detector(detector)
        window = _window(sub, _siaf(inst)[full_name], det)
        frame = _Frame.from_aperture(_siaf(inst)[full_name])
        att = _solve_attitude(float(ref.V2Ref), float(ref.V3Ref), pointing)

        # the aperture's reference point through our full-frame distortion (the SIAF XSciRef of
        # a few subarrays, fitted apart from their full frame, is off by ~0.1 px)
        v2_ref, v3_ref = float(sub.V2Ref), float(sub.V3Ref)
        xs, ys = frame.idl_to_sci(*frame.tel_to_idl(np.array(v2_ref), np.array(v3_ref)))
        ref_pixel = (round(float(xs) - 1.0, 9), round(float(ys) - 1.0, 9))
        corners = sub.idl_to_tel(
            *(np.array([float(getattr(sub, f"{a}IdlVert{i}")) for i in range(1, 5)]) for a in "XY")
        )
        ras, decs = _tel_to_sky(att, *corners)
        (ra_ref, ra_v1), (dec_ref, dec_v1) = _tel_to_sky(att, [v2_ref, 0.0], [v3_ref, 0.0])
        from pysiaf.utils import rotations

        wcs = {
            "v2_ref": v2_ref,
            "v3_ref": v3_ref,
            "v3yangle": float(sub.V3IdlYAngle),
            "vparity": int(sub.VIdlParity),
            "ra_ref": float(ra_ref),
            "dec_ref": float(dec_ref),
            "roll_ref": float(rotations.posangle(att, v2_ref, v3_ref)) % 360.0,
            "crpix1": ref_pixel[0] - window[0] + 2.0,  # 1-based, in the readout window
            "crpix2": ref_pixel[1] - window[1] + 2.0,
            "cdelt1": float(sub.XSciScale) / 3600.0,
            "cdelt2": float(sub.YSciScale) / 3600.0,
            "ra_v1": float(ra_v1),
            "dec_v1": float(dec_v1),
            "s_region": "POLYGON ICRS "
            + " ".join(f"{a:.9f} {d:.9f}" for a, d in zip(ras, decs, strict=True)),
        }
        nominal = frame.area(np.array(frame.x_sci_ref), np.array(frame.y_sci_ref))
        return cls(
            aperture=name,
            reference=ref_name,
            pointing=pointing,
            instrument=_INSTRUME[inst],
            detector=detector,
            subarray_name=_subarray_name(prefix, suffix, window[2:] == (det.nx, det.ny)),
            window=window,
            reference_pixel=ref_pixel,
            nominal_pixel_area_sr=float(nominal) * _ARCSEC**2,
            _frame=frame,
            _attitude=tuple(tuple(float(v) for v in row) for row in att),
            _wcs=tuple(wcs.items()),
        )

    def pixel_to_sky(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Sky position of 0-based full-frame pixels.

        Parameters
        ----------
        x, y
            Array-likes (same shape), float, pixels (column, row); pixel centres at integers.

        Returns
        -------
        ra, dec : ndarray, float64, deg
            ``ra`` in [0, 360).
        """
        xi, yi = self._frame.sci_to_idl(np.asarray(x, float) + 1.0, np.asarray(y, float) + 1.0)
        return _tel_to_sky(self._attitude, *self._frame.idl_to_tel(xi, yi))

    def sky_to_pixel(self, ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
        """0-based full-frame pixel of sky positions.

        Parameters
        ----------
        ra, dec
            Array-likes (same shape), float, deg.

        Returns
        -------
        x, y : ndarray, float64, pixels
            NaN for positions far off the detector (ideal coordinates more than 1.5 times the
            distance of the farthest detector corner from the reference point), where the
            distortion polynomial cannot be extrapolated.
        """
        return self._vectors_to_pixel(_unit(np.asarray(ra, float), np.asarray(dec, float)))

    def _vectors_to_pixel(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tel = np.einsum("ji,j...->i...", np.array(self._attitude), u)  # inverse of a rotation
        v2, v3 = _angles(tel)
        xi, yi = self._frame.tel_to_idl(v2 * 3600, v3 * 3600)
        det = get_detector(self.detector)
        corners = self._frame.sci_to_idl(np.array([0.5, det.nx + 0.5]), np.array([0.5, det.ny + 0.5]))
        far = (np.hypot(xi, yi) > 1.5 * np.max(np.hypot(*corners))) | (tel[0] <= 0)
        xs, ys = self._frame.idl_to_sci(np.where(far, 0.0, xi), np.where(far, 0.0, yi))
        return np.where(far, np.nan, xs - 1.0), np.where(far, np.nan, ys - 1.0)

    def pixel_scale(self) -> tuple[float, float]:
        """Pixel size (arcsec) along x and along y at the detector's reference point (centre)."""
        a, b, c, d = self._frame.jacobian(np.array(self._frame.x_sci_ref), np.array(self._frame.y_sci_ref))
        return float(np.hypot(a, c)), float(np.hypot(b, d))

    def north_angle(self, x: Any, y: Any) -> np.ndarray:
        """Direction of sky North at 0-based full-frame pixels, deg.

        The angle is measured from the +y pixel axis towards the +x pixel axis (clockwise on an
        image displayed with the origin at the lower left): 0 when North points along +y, 90
        when it points along +x. JWST DMS frames have sky parity (East is counter-clockwise
        from North on such a display), so a direction of position angle ``pa`` (deg East of
        North) is at about ``north_angle - pa`` from +y towards +x, i.e. ``90 - north_angle +
        pa`` counter-clockwise from +x. That ignores the skew of the pixel grid on the sky (up to
        0.8° on NIRCam/NIRISS, 4° on FGS1); :meth:`pixel_angle` is exact.
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        x2, y2 = self._offset(x, y, 0.0)
        return np.degrees(np.arctan2(x2 - x, y2 - y))

    def pixel_angle(self, pa: Any, x: Any, y: Any) -> np.ndarray:
        """Pixel-frame angle of the sky direction with position angle ``pa`` at pixels ``(x, y)``.

        Parameters
        ----------
        pa
            Position angle, deg East of North (broadcasts with ``x``, ``y``).
        x, y
            0-based full-frame pixels.

        Returns
        -------
        ndarray, float64, deg
            Angle counter-clockwise from the +x pixel axis towards +y, in (-180, 180].
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        x2, y2 = self._offset(x, y, np.asarray(pa, float))
        return np.degrees(np.arctan2(y2 - y, x2 - x))

    def _offset(self, x: np.ndarray, y: np.ndarray, pa: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pixels 0.01″ away from ``(x, y)`` on the sky, towards position angle ``pa`` (deg)."""
        ra, dec = (np.radians(a) for a in self.pixel_to_sky(x, y))
        north = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)])
        east = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)])
        u = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
        eps, pa = 0.01 * _ARCSEC, np.radians(pa)
        return self._vectors_to_pixel(
            u * math.cos(eps) + (north * np.cos(pa) + east * np.sin(pa)) * math.sin(eps)
        )

    def pixel_area(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixel solid angle relative to :attr:`nominal_pixel_area_sr`, rows [y0, y1), columns [x0, x1).

        From the Jacobian of the SIAF science-to-ideal distortion, evaluated on a fixed
        full-frame grid every 16 px and interpolated bilinearly, so a pixel's value does not
        depend on the region asked for (bit-identical on any tiling).

        Returns
        -------
        ndarray, shape (y1 - y0, x1 - x0), float32, dimensionless
        """
        det = get_detector(self.detector)
        if not (0 <= y0 < y1 <= det.ny and 0 <= x0 < x1 <= det.nx):
            raise UsageError(f"pixel_area region rows [{y0}, {y1}), columns [{x0}, {x1}) is not in the frame")
        grid = _area_grid(self._frame, det.nx, det.ny)
        iy, fy = np.divmod(np.arange(y0, y1, dtype=float), float(_AREA_STEP))
        ix, fx = np.divmod(np.arange(x0, x1, dtype=float), float(_AREA_STEP))
        iy, ix = iy.astype(np.intp)[:, None], ix.astype(np.intp)
        fy, fx = (fy / _AREA_STEP)[:, None], fx / _AREA_STEP
        top = grid[iy, ix] * (1.0 - fx) + grid[iy, ix + 1] * fx
        bottom = grid[iy + 1, ix] * (1.0 - fx) + grid[iy + 1, ix + 1] * fx
        return (top * (1.0 - fy) + bottom * fy).astype(np.float32)

    def meta(self) -> dict[str, Any]:
        """jwst ``meta`` entries for this geometry, nested (``{"wcsinfo": {"ra_ref": ...}}``).

        What jwst ``assign_wcs`` needs for imaging (``wcsinfo.v2_ref/v3_ref/ra_ref/dec_ref/
        roll_ref``, ``subarray.*``, ``velocity_aberration.scale_factor``); the basic FITS WCS of
        the exposure aperture as jwst ``set_telescope_pointing`` writes it (TAN at the reference
        pixel, ``CDELT`` the SIAF scale, ``PC`` a rotation by ``roll_ref - vparity·v3yangle``);
        ``S_REGION`` (the SIAF aperture corners) and the V1 pointing. ``target`` is the pointing
        position and no velocity aberration is simulated (scale 1).
        """
        w = dict(self._wcs)
        rel = math.radians(w["roll_ref"] - w["vparity"] * w["v3yangle"])
        det = get_detector(self.detector)
        instrument = {"name": self.instrument, "detector": self.detector}
        instrument |= {k: v for k, v in (("module", det.module), ("channel", det.channel)) if v}
        wcsinfo = {
            k: w[k] for k in ("v2_ref", "v3_ref", "vparity", "v3yangle", "ra_ref", "dec_ref", "roll_ref")
        }
        wcsinfo |= {k: w[k] for k in ("crpix1", "crpix2", "cdelt1", "cdelt2")}
        return {
            "instrument": instrument,
            "aperture": {
                "name": self.aperture,
                "pps_name": self.aperture,
                "position_angle": (w["roll_ref"] + w["v3yangle"]) % 360.0,
            },
            "pointing": {"ra_v1": w["ra_v1"], "dec_v1": w["dec_v1"], "pa_v3": self.pointing.v3pa % 360.0},
            "target": {"ra": self.pointing.ra % 360.0, "dec": self.pointing.dec},
            "coordinates": {"reference_frame": "ICRS"},
            "subarray": {
                "name": self.subarray_name,
                **dict(zip(("xstart", "ystart", "xsize", "ysize"), self.window, strict=True)),
                "fastaxis": det.fastaxis,
                "slowaxis": det.slowaxis,
            },
            "velocity_aberration": {
                "scale_factor": 1.0,
                "va_ra_ref": w["ra_ref"],
                "va_dec_ref": w["dec_ref"],
            },
            "wcsinfo": wcsinfo
            | {
                "wcsaxes": 2,
                "crval1": w["ra_ref"],
                "crval2": w["dec_ref"],
                "ctype1": "RA---TAN",
                "ctype2": "DEC--TAN",
                "cunit1": "deg",
                "cunit2": "deg",
                "pc1_1": w["vparity"] * math.cos(rel),
                "pc1_2": math.sin(rel),
                "pc2_1": -w["vparity"] * math.sin(rel),
                "pc2_2": math.cos(rel),
                "siaf_xref_sci": w["crpix1"],
                "siaf_yref_sci": w["crpix2"],
                "s_region": w["s_region"],
            },
        }


def _solve_attitude(v2_ref: float, v3_ref: float, pointing: Pointing) -> np.ndarray:
    """Attitude matrix putting (v2_ref, v3_ref) at (ra, dec) with the PA of V3 at V1 = ``v3pa``.

    pysiaf's attitude takes the roll at (v2_ref, v3_ref); iterate it until the roll at V1 is
    ``v3pa`` (they differ by the meridian convergence between the two points; 3-4 iterations).
    """
    from pysiaf.utils import rotations

    roll = float(pointing.v3pa)
    for _ in range(20):
        att = np.asarray(rotations.attitude(v2_ref, v3_ref, pointing.ra, pointing.dec, roll), float)
        err = (pointing.v3pa - float(rotations.posangle(att, 0.0, 0.0)) + 180.0) % 360.0 - 180.0
        if abs(err) < 1e-11:
            break
        roll += err
    return att
