"""Where the sky lands on a detector: SIAF apertures, attitude and distortion.

A :class:`Geometry` maps sky positions to **0-based full-frame DMS (science-frame) pixels** of one
detector and back, for a telescope attitude given by a :class:`Pointing`. It follows the JWST
Science Instrument Aperture File (SIAF, read with ``pysiaf``; JWST-STScI-001550):

    pixel (sci) --Sci2Idl polynomial--> ideal (arcsec) --rotation, parity--> V2/V3 (arcsec)
    --attitude matrix--> RA/Dec

always through the detector's full-frame aperture (``NRCA1_FULL``, ``NIS_CEN``, ``FGS1_FULL``,
``MIRIM_FULL``),
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
only to build it. The numeric transforms live in :mod:`webbflow.sim._siaf_transforms`, the
aperture-name rules (detector, ``SUBARRAY`` keyword, readout window) in
:mod:`webbflow.sim._siaf_names`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from webbflow.detectors import get_detector
from webbflow.errors import UsageError
from webbflow.sim import _siaf_names as siaf_names
from webbflow.sim._siaf_transforms import (
    ARCSEC,
    AREA_STEP,
    Frame,
    area_grid,
    offset_attitude,
    solve_attitude,
    tel_to_sky,
    unit_vectors,
    vector_angles,
)


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
    _frame: Frame = field(repr=False)
    _attitude: tuple[tuple[float, ...], ...] = field(repr=False)  # V2/V3 -> sky rotation
    _wcs: tuple[tuple[str, Any], ...] = field(repr=False)  # exposure-aperture numbers for meta()

    @classmethod
    def from_aperture(cls, aperture: str, pointing: Pointing, *, reference: str | None = None) -> Geometry:
        """The geometry of SIAF ``aperture`` with ``reference``'s reference point at ``pointing``.

        Parameters
        ----------
        aperture
            SIAF aperture read (``NRCA1_FULL``, ``NRCB5_FULL``, ``NRCA3_SUB400P``, ``NIS_CEN``,
            ``NIS_SUB64``, ``FGS1_FULL``, ``FGS2_SUB128CNTR``, ``MIRIM_FULL``, ``MIRIM_SUB256`` …), any
            case. MIRI's science frame is 1032 × 1024 and includes its reference columns (x 0-3,
            1028-1031, 0-based), exactly as pysiaf's ``MIRIM_FULL``.
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
        if prefix not in siaf_names.PREFIX:
            siaf_names.lookup(name, None)  # unknown names get a did-you-mean
            raise UsageError(f"aperture {name!r} is not on one NIRCam/NIRISS/FGS/MIRI imager detector")
        inst, detector, full_name = siaf_names.PREFIX[prefix]
        sub, _ = siaf_names.lookup(name, inst)
        if sub.XSciSize is None or sub.YSciSize is None:
            raise UsageError(
                f"aperture {name!r} ({sub.AperType}) has no pixel window: use an imaging aperture"
            )
        ref_name = name if reference is None else str(reference).strip().upper()
        ref, _ = siaf_names.lookup(ref_name, inst)
        det = get_detector(detector)
        full = siaf_names.siaf(inst)[full_name]
        window = siaf_names.readout_window(sub, full, det)
        frame = Frame.from_aperture(full)
        att = solve_attitude(float(ref.V2Ref), float(ref.V3Ref), pointing.ra, pointing.dec, pointing.v3pa)

        # the aperture's reference point through our full-frame distortion (the SIAF XSciRef of
        # a few subarrays, fitted apart from their full frame, is off by ~0.1 px)
        v2_ref, v3_ref = float(sub.V2Ref), float(sub.V3Ref)
        xs, ys = frame.idl_to_sci(*frame.tel_to_idl(np.array(v2_ref), np.array(v3_ref)))
        ref_pixel = (round(float(xs) - 1.0, 9), round(float(ys) - 1.0, 9))
        corners = sub.idl_to_tel(
            *(np.array([float(getattr(sub, f"{a}IdlVert{i}")) for i in range(1, 5)]) for a in "XY")
        )
        ras, decs = tel_to_sky(att, *corners)
        (ra_ref, ra_v1), (dec_ref, dec_v1) = tel_to_sky(att, [v2_ref, 0.0], [v3_ref, 0.0])
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
            instrument=siaf_names.INSTRUME[inst],
            detector=detector,
            subarray_name=siaf_names.subarray_name(prefix, suffix, window[2:] == (det.nx, det.ny)),
            window=window,
            reference_pixel=ref_pixel,
            nominal_pixel_area_sr=float(nominal) * ARCSEC**2,
            _frame=frame,
            _attitude=tuple(tuple(float(v) for v in row) for row in att),
            _wcs=tuple(wcs.items()),
        )

    def with_pointing_error(self, dx: float, dy: float, droll: float = 0.0) -> Geometry:
        """This geometry with the telescope off its commanded pointing (a guide-star error).

        Sources land ``(dx, dy)`` arcsec away, along the exposure aperture's ideal X and Y axes
        (about ``dx / pixel_scale`` pixels on NIRCam and NIRISS), and rotated by ``droll`` deg
        (+X towards +Y) about the aperture's reference point, from where this geometry puts them.
        The sky mapping changes; :attr:`pointing` and :meth:`meta` still describe the commanded
        pointing, which is what the headers of such an exposure carry.
        """
        w = dict(self._wcs)
        att = offset_attitude(
            self._attitude, w["v2_ref"], w["v3_ref"], w["v3yangle"], w["vparity"], dx, dy, droll
        )
        return replace(self, _attitude=tuple(tuple(float(v) for v in row) for row in att))

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
        return tel_to_sky(self._attitude, *self._frame.idl_to_tel(xi, yi))

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
        return self._vectors_to_pixel(unit_vectors(np.asarray(ra, float), np.asarray(dec, float)))

    def _vectors_to_pixel(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tel = np.einsum("ji,j...->i...", np.array(self._attitude), u)  # inverse of a rotation
        v2, v3 = vector_angles(tel)
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
        eps, pa = 0.01 * ARCSEC, np.radians(pa)
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
        grid = area_grid(self._frame, det.nx, det.ny)
        iy, fy = np.divmod(np.arange(y0, y1, dtype=float), float(AREA_STEP))
        ix, fx = np.divmod(np.arange(x0, x1, dtype=float), float(AREA_STEP))
        iy, ix = iy.astype(np.intp)[:, None], ix.astype(np.intp)
        fy, fx = (fy / AREA_STEP)[:, None], fx / AREA_STEP
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
