"""Aperture radii and aperture corrections from webbflow's own PSF model (NIR and MIRI imaging).

jwst reads the radii enclosing 30/50/70 % of a point source's energy, their
aperture corrections and the sky annulus from the APCORR reference file. We have
no APCORR file, so they come from the effective PSF of
:func:`webbflow.sim.psf.get_psf` for the mosaic's instrument, filter and pupil,
generated at the mosaic's pixel scale (for MIRI the drizzle drop's extra blur is
modelled, :func:`drizzled`; for the near-infrared it is not yet):

* **radius** of ``ee`` %: where the encircled energy of the pixel-convolved PSF
  (the oversampled ePSF summed inside the circle, relative to the total flux)
  reaches ``ee`` %;
* **sky annulus**: ``[5, 8] × r(ee3)`` pixels unless given (far enough that the
  PSF wings in it are faint and flat: at ``[3, 5] × r`` the noisy median of the
  skewed wings biased bright sources' total flux low by ~0.1 %); for MIRI
  ``[2.5, 4] × r(ee3)`` (nominal: its diffraction-limited PSF is 2-7 px wide at
  the imager's 0.11"/px, and a wider annulus would leave the model PSF's field);
* **aperture correction**: ``1 / m(r)`` where ``m(r)`` is what the catalogue
  *measures* for a unit point source (exact-overlap aperture sum minus the
  annulus median × area, :func:`~webbflow.steps.source_catalog.measure.aperture_fluxes`)
  averaged over a 4×4 grid of sub-pixel positions. It therefore also corrects
  the PSF wings that fall in the sky annulus, so ``aper_total_flux`` of a point
  source is unbiased (the scatter over sub-pixel positions is recorded as
  ``apcorr_scatter``).

Explicit radii (``aperture_radii``) replace the EE radii; their corrections still
come from the PSF. Results are cached per process.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from webbflow.errors import InputError
from webbflow.steps.source_catalog.measure import aperture_fluxes

log = logging.getLogger("webbflow")

#: Sky annulus radii in units of the largest EE radius, when not given.
ANNULUS_FACTORS: Final = (5.0, 8.0)
#: MIRI's (nominal): its 70 % EE radius is 2-7 px (F560W-F2550W at 0.11"/px), so the annulus
#: stays inside the model PSF's 63-px field and the mosaic's dither overlap.
MIRI_ANNULUS_FACTORS: Final = (2.5, 4.0)
_PHASES: Final = (np.arange(4) + 0.5) / 4.0 - 0.5  # sub-pixel offsets of the apcorr average


@dataclass(frozen=True)
class ApertureParams:
    """Apertures of the catalogue (all radii in mosaic pixels).

    Attributes
    ----------
    ee : tuple of int
        Encircled energies, percent (column names ``aper<ee>_flux``).
    radii : tuple of float
        Aperture radii, pixels.
    corrections : tuple of float
        Multiply an aperture's flux by this to get the total flux of a point source.
    bkg_inner, bkg_outer : float
        Sky annulus radii, pixels.
    scatter : tuple of float
        Relative rms of the measured point-source fraction over sub-pixel positions.
    source : str
        Where they came from (PSF provenance, or ``explicit``).
    """

    ee: tuple[int, ...]
    radii: tuple[float, ...]
    corrections: tuple[float, ...]
    bkg_inner: float
    bkg_outer: float
    scatter: tuple[float, ...]
    source: str

    def to_meta(self) -> dict[str, Any]:
        """JSON-friendly description for the catalogue's meta."""
        return {
            "aperture_ee": list(self.ee),
            "aperture_radii": list(self.radii),
            "aperture_corrections": list(self.corrections),
            "apcorr_scatter": list(self.scatter),
            "bkg_aperture_inner_radius": self.bkg_inner,
            "bkg_aperture_outer_radius": self.bkg_outer,
            "apcorr_source": self.source,
        }


def psf_detector(instrument: str, detector: str | None, filter: str, pupil: str | None) -> str:
    """A detector of ``instrument`` whose channel sees ``filter`` (the mosaic's, if valid)."""
    from webbflow.detectors import ALL_DETECTORS
    from webbflow.sim.fluxcal import filter_info

    inst = instrument.upper()
    det = (detector or "").upper()
    if det in ALL_DETECTORS and ALL_DETECTORS[det].instrument == inst:
        return det
    if inst == "MIRI":
        return "MIRIMAGE"
    if inst == "NIRCAM":
        return "NRCA1" if filter_info(inst, filter, pupil).pivot_um < 2.4 else "NRCALONG"
    if inst == "NIRISS":
        return "NIS"
    if inst == "FGS":
        return "GUIDER1"
    raise InputError(f"source_catalog: meta.instrument.name {instrument!r} has no PSF model")


def psf_aperture_params(
    instrument: str,
    detector: str | None,
    filter: str,
    pupil: str | None,
    pixel_scale: float,
    ee: tuple[int, ...],
    radii: tuple[float, ...] | None = None,
    annulus: tuple[float, float] | None = None,
    *,
    drizzle_width: float = 0.0,
) -> ApertureParams:
    """The :class:`ApertureParams` of a mosaic from its PSF (see the module docstring).

    Parameters
    ----------
    instrument, detector, filter, pupil : str
        ``meta.instrument`` values of the mosaic (detector may be None or ``MULTIPLE``).
    pixel_scale : float
        Mosaic pixel scale, arcsec/pixel.
    ee : tuple of int
        Encircled energies, percent, strictly increasing in (0, 100).
    radii : tuple of float, optional
        Explicit radii (pixels) instead of the EE radii.
    annulus : (float, float), optional
        Explicit sky annulus radii, pixels.
    drizzle_width : float
        Width (mosaic pixels) of the square drop each input pixel was drizzled as
        (``pixfrac / pixel_scale_ratio``); the PSF is convolved with it (:func:`drizzled`).
        0: no extra blur.
    """
    if any(not 0 < e < 100 for e in ee) or any(b <= a for a, b in itertools.pairwise(ee)):
        raise InputError(f"source_catalog: aperture_ee {ee} must be strictly increasing within (0, 100)")
    det = psf_detector(instrument, detector, filter, pupil)
    return _cached(
        instrument.upper(),
        det,
        filter.upper(),
        (pupil or "").upper() or None,
        round(float(pixel_scale), 7),
        tuple(int(e) for e in ee),
        None if radii is None else tuple(float(r) for r in radii),
        None if annulus is None else (float(annulus[0]), float(annulus[1])),
        round(float(drizzle_width), 4),
    )


@functools.lru_cache(maxsize=16)
def _cached(
    instrument: str,
    detector: str,
    filter: str,
    pupil: str | None,
    scale: float,
    ee: tuple[int, ...],
    radii: tuple[float, ...] | None,
    annulus: tuple[float, float] | None,
    drizzle_width: float = 0.0,
) -> ApertureParams:
    from webbflow.sim.psf import get_psf

    psf = drizzled(get_psf(instrument, detector, filter, pupil, pixel_scale=scale), drizzle_width)
    if radii is None:
        radii = tuple(float(r) for r in ee_radii(psf.data, psf.oversample, np.asarray(ee) / 100.0))
    factors = MIRI_ANNULUS_FACTORS if instrument == "MIRI" else ANNULUS_FACTORS
    inner, outer = annulus or (factors[0] * radii[-1], factors[1] * radii[-1])
    if not 0 < inner < outer:
        raise InputError(f"source_catalog: sky annulus ({inner}, {outer}) must satisfy 0 < inner < outer")
    fraction = measured_fraction(psf, radii, inner, outer)
    mean = fraction.mean(axis=0)
    params = ApertureParams(
        ee,
        radii,
        tuple(float(v) for v in 1.0 / mean),
        float(inner),
        float(outer),
        tuple(float(v) for v in fraction.std(axis=0) / mean),
        f'webbflow PSF {psf.meta.get("source")} {instrument} {filter} {pupil or ""} {scale:.5f}"/px'.strip(),
    )
    log.info(
        "source_catalog: apertures %s px (EE %s), corrections %s, sky annulus %.2f-%.2f px (%s)",
        np.round(radii, 3).tolist(),
        list(ee),
        np.round(params.corrections, 4).tolist(),
        inner,
        outer,
        params.source,
    )
    return params


def drizzled(psf: Any, width: float) -> Any:
    """``psf`` convolved with a ``width`` × ``width`` pixel square: the drizzle drop's blur.

    Drizzling with a square kernel spreads each (pixel-integrated) input sample over a
    square of side ``pixfrac`` input pixels before the output pixel integrates it again;
    the model ePSF at the mosaic scale has only the output pixel's box, so its apertures
    would hold too much flux (1.5 % at the 70 % EE radius of MIRI F770W, pixfrac 1).
    """
    if width <= 0:
        return psf
    from scipy.ndimage import convolve1d

    from webbflow.sim.psf import PSF

    half = width * psf.oversample / 2.0
    k = np.arange(-int(np.ceil(half)), int(np.ceil(half)) + 1, dtype=float)
    # overlap of each fine sample's [k - 1/2, k + 1/2] with the box [-half, half]
    weights = np.clip(np.minimum(k + 0.5, half) - np.maximum(k - 0.5, -half), 0.0, None)
    weights /= weights.sum()
    data = convolve1d(
        convolve1d(psf.data, weights, axis=0, mode="constant"), weights, axis=1, mode="constant"
    )
    return PSF(data, psf.oversample, psf.pixel_scale, psf.enclosed, {**psf.meta, "drizzle_width": width})


def ee_radii(epsf: np.ndarray, oversample: int, fractions: np.ndarray) -> np.ndarray:
    """Radii (pixels) where the encircled energy of an oversampled ePSF reaches ``fractions``.

    Parameters
    ----------
    epsf : numpy.ndarray, shape (ny, nx), float64
        Effective PSF centred on the array centre; ``sum / oversample²`` = enclosed fraction.
    """
    ny, nx = epsf.shape
    yy, xx = np.indices(epsf.shape)
    r = np.hypot(yy - (ny - 1) / 2.0, xx - (nx - 1) / 2.0).ravel() / oversample
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(epsf.ravel()[order]) / oversample**2
    if np.any(fractions > cum[-1]):
        raise InputError(
            f"source_catalog: encircled energy {fractions.max():.2f} is beyond the PSF's field "
            f"(it holds {cum[-1]:.3f} of the flux); give aperture_radius* explicitly"
        )
    idx = np.searchsorted(cum, fractions)
    lo = np.maximum(idx - 1, 0)
    # linear between the two samples that bracket each fraction
    span = np.where(cum[idx] > cum[lo], cum[idx] - cum[lo], 1.0)
    return np.asarray(r[order][lo] + (fractions - cum[lo]) / span * (r[order][idx] - r[order][lo]))


def measured_fraction(psf: Any, radii: tuple[float, ...], inner: float, outer: float) -> np.ndarray:
    """What :func:`aperture_fluxes` measures for a unit point source, per sub-pixel position.

    Returns
    -------
    numpy.ndarray, shape (16, len(radii)), float64
    """
    half = int(min(psf.max_radius, np.ceil(outer) + 2))
    rows = []
    for dy in _PHASES:
        for dx in _PHASES:
            stamp = psf.stamp(dx, dy, half)
            covered = np.ones(stamp.shape, bool)
            x, y = np.array([half + dx]), np.array([half + dy])
            rows.append(aperture_fluxes(stamp, None, covered, x, y, radii, inner, outer).flux[0])
    return np.array(rows)
