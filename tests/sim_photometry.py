"""Star-field photometry for the simulator's closure test (test-side helper, not package code).

* :func:`jittered_grid`, :func:`write_point_catalog`: an isolated-star field written as an
  ordinary Mirage RA/Dec catalog;
* :func:`fit_positions`: positions by PSF fitting with photutils' ``PSFPhotometry`` and an
  ``ImagePSF`` made from the simulation's own effective PSF;
* :func:`aperture_fluxes`: circular-aperture fluxes with a local background (the median of an
  annulus), corrected to total flux by the same operations applied to a noiseless model of the
  star (same PSF, same sub-pixel position), optionally with the other stars' fitted models
  (:func:`model_image`) removed first; expected noise from the calibrated ``err`` and the
  background estimate;
* :func:`measure_closure`: all of it for a calibrated image and its truth, giving a
  :class:`Closure`; :func:`closure_table` / :func:`format_table`: bias and scatter per
  magnitude bin.

Images are in e⁻/s (``rate.sci`` × gain); positions are array pixel coordinates (pixel
centres at integers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table
from photutils.aperture import CircularAnnulus, CircularAperture
from photutils.background import LocalBackground, MedianBackground
from photutils.psf import ImagePSF, PSFPhotometry

from webbflow.sim.psf import PSF

#: Standard error of the median of Gaussian samples, in units of sigma / sqrt(n).
MEDIAN_ERROR = np.sqrt(np.pi / 2.0)
#: Gaussian sigma per unit of median absolute deviation.
MAD_SIGMA = 1.4826


@dataclass(frozen=True)
class Apertures:
    """Photometry apertures, detector pixels."""

    radius: float = 4.0
    """Source aperture radius."""
    r_in: float = 9.0
    """Inner radius of the background annulus."""
    r_out: float = 13.0
    """Outer radius of the background annulus."""


def jittered_grid(
    window: tuple[int, int, int, int],
    spacing: float,
    jitter: float,
    margin: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions on a square grid, each moved uniformly by up to ``jitter`` pixels along x and y.

    Any two positions differ by at least ``spacing - 2 * jitter`` along x or along y,
    so the stars are isolated when that exceeds the background annulus; sub-pixel
    phases are uniform.

    Parameters
    ----------
    window
        ``(xstart, ystart, xsize, ysize)``, 1-based full-frame pixels (``Geometry.window``).
    spacing
        Grid step, pixels.
    jitter
        Largest shift from the grid node along each axis, pixels.
    margin
        Smallest distance from a position to the window edge, pixels.
    rng
        Random generator of the jitter.

    Returns
    -------
    x, y : numpy.ndarray, shape (n,), float64
        0-based full-frame pixel positions.
    """
    xstart, ystart, xsize, ysize = window
    gx = np.arange(xstart - 1 + margin + jitter, xstart - 1 + xsize - margin - jitter, spacing)
    gy = np.arange(ystart - 1 + margin + jitter, ystart - 1 + ysize - margin - jitter, spacing)
    x, y = (a.ravel() for a in np.meshgrid(gx, gy))
    x = x + rng.uniform(-jitter, jitter, x.size)
    y = y + rng.uniform(-jitter, jitter, y.size)
    return x, y


def write_point_catalog(
    path: Path, ra: np.ndarray, dec: np.ndarray, mag: np.ndarray, column: str = "nircam_f200w_clear_magnitude"
) -> Path:
    """Write a Mirage point-source catalog (RA/Dec in degrees, AB magnitudes); indices start at 1."""
    table = Table(
        {"index": np.arange(1, ra.size + 1), "x_or_RA": ra, "y_or_Dec": dec, column: np.round(mag, 5)}
    )
    table.meta["comments"] = ["abmag", "isolated stars for the closure test"]
    formats = {"x_or_RA": "%.10f", "y_or_Dec": "%.10f"}
    table.write(path, format="ascii.basic", delimiter=" ", comment="# ", formats=formats, overwrite=True)
    return path


def psf_model(psf: PSF) -> ImagePSF:
    """The effective PSF as a photutils model: ``data`` already holds the per-pixel flux fraction."""
    return ImagePSF(psf.data, oversampling=psf.oversample)


def peak_guesses(image: np.ndarray, x: np.ndarray, y: np.ndarray, half: int = 2) -> tuple[np.ndarray, ...]:
    """The brightest pixel within ``half`` pixels of each position's nearest pixel (array indices).

    A first guess for the fit that does not carry the sub-pixel part of ``x, y``.
    """
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    off = np.arange(-half, half + 1)
    yy = iy[:, None, None] + off[None, :, None]
    xx = ix[:, None, None] + off[None, None, :]
    box = np.nan_to_num(image[yy, xx], nan=-np.inf).reshape(x.size, -1)
    best = np.argmax(box, axis=1)
    return (ix + off[best % off.size]).astype(float), (iy + off[best // off.size]).astype(float)


def fit_positions(
    image: np.ndarray,
    error: np.ndarray,
    mask: np.ndarray,
    x_init: np.ndarray,
    y_init: np.ndarray,
    psf: PSF,
    apertures: Apertures,
    fit_shape: int = 7,
) -> Table:
    """PSF-fit positions and fluxes of known stars.

    Parameters
    ----------
    image, error : numpy.ndarray, shape (ny, nx), float
        Rate image and its 1-sigma error, any one unit.
    mask : numpy.ndarray, shape (ny, nx), bool
        Pixels to ignore.
    x_init, y_init : numpy.ndarray, shape (n,), float
        First guesses, array pixel coordinates.
    psf
        The effective PSF of the exposure.
    apertures
        Its annulus gives the local background.
    fit_shape
        Side of the fitted box, pixels (odd).

    Returns
    -------
    astropy.table.Table
        photutils' result: ``x_fit``, ``y_fit``, ``flux_fit``, ``flags``, ... in input order.
    """
    phot = PSFPhotometry(
        psf_model(psf),
        (fit_shape, fit_shape),
        aperture_radius=apertures.radius,
        local_bkg_estimator=LocalBackground(
            apertures.r_in, apertures.r_out, bkg_estimator=MedianBackground()
        ),
    )
    init = Table({"id": np.arange(1, x_init.size + 1), "x_init": x_init, "y_init": y_init})
    return phot(image, error=error, mask=mask, init_params=init)


def model_image(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray, psf: PSF
) -> np.ndarray:
    """Noiseless image of point sources: ``flux`` × ePSF over each source's full PSF field.

    Parameters
    ----------
    shape
        ``(ny, nx)`` of the image.
    x, y, flux : numpy.ndarray, shape (n,), float
        Positions (array pixel coordinates) and total fluxes; non-finite entries are skipped.
    psf
        The effective PSF.

    Returns
    -------
    numpy.ndarray, shape ``shape``, float64
    """
    out = np.zeros(shape)
    r = psf.max_radius
    for xi, yi, fi in zip(x, y, flux, strict=True):  # a few hundred sources, one PSF field each
        if not np.isfinite(xi + yi + fi):
            continue
        ix, iy = round(xi), round(yi)
        ys = slice(max(iy - r, 0), min(iy + r + 1, shape[0]))
        xs = slice(max(ix - r, 0), min(ix + r + 1, shape[1]))
        if ys.start >= ys.stop or xs.start >= xs.stop:
            continue
        yy, xx = np.mgrid[ys, xs]
        out[ys, xs] += fi * psf.evaluate(xx - xi, yy - yi)
    return out


@dataclass(frozen=True)
class ApertureFluxes:
    """Output of :func:`aperture_fluxes`; arrays of shape (n,), float64 unless stated."""

    flux: np.ndarray
    """Total flux (aperture correction applied), image units."""
    sigma: np.ndarray
    """Its expected 1-sigma error."""
    apcorr: np.ndarray
    """Fraction of a point source's total flux the aperture measures (noiseless model)."""
    background: np.ndarray
    """Annulus median, image units per pixel."""
    bad: np.ndarray
    """bool: a masked or non-finite pixel inside the source aperture."""


def aperture_fluxes(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    psf: PSF,
    apertures: Apertures,
    neighbours: np.ndarray | None = None,
    own_flux: np.ndarray | None = None,
) -> ApertureFluxes:
    """Circular-aperture photometry with an annulus-median background and a model aperture correction.

    For each star: ``S = Σ w·I − B·Σw`` (``w`` the exact pixel overlap with the
    aperture, ``B`` the median of the annulus pixels whose centres are inside it);
    the same with the unit-flux ePSF at the star's position in place of ``I`` gives
    ``apcorr``; ``flux = S / apcorr``. Expected variance of ``S``:
    ``Σ w²·var + (Σw)² · (π/2) · s² / n_annulus`` with ``s`` the robust (MAD)
    standard deviation of the annulus pixels.

    Parameters
    ----------
    image, variance : numpy.ndarray, shape (ny, nx), float
        Rate image and its variance (same units squared).
    mask : numpy.ndarray, shape (ny, nx), bool
        Pixels to ignore (left out of the annulus; in the aperture they flag the star).
    x, y : numpy.ndarray, shape (n,), float
        Star positions, array pixel coordinates (pixel centres at integers).
    psf
        The effective PSF used for the aperture correction.
    apertures
        Radii.
    neighbours, own_flux
        Optional model of the field (:func:`model_image` of the PSF-fit positions and
        fluxes) and each star's own fitted flux: star ``i`` is then measured on
        ``image − neighbours + own_flux[i] × ePSF_i``, i.e. with every other star's
        light removed and its own left as observed (its measured flux does not
        depend on the PSF-fit flux).
    """
    n = x.size
    out = {k: np.full(n, np.nan) for k in ("flux", "sigma", "apcorr", "background")}
    bad = np.zeros(n, bool)
    for i in range(n):  # one star at a time: a few hundred, each a few hundred pixels
        ap = CircularAperture((x[i], y[i]), apertures.radius).to_mask(method="exact")
        an = CircularAnnulus((x[i], y[i]), apertures.r_in, apertures.r_out).to_mask(method="center")
        sa = ap.get_overlap_slices(image.shape)[0]
        sn = an.get_overlap_slices(image.shape)[0]
        if sa is None or sn is None or ap.data.shape != image[sa].shape or an.data.shape != image[sn].shape:
            bad[i] = True  # aperture or annulus off the image
            continue
        w = ap.data
        ring = an.data > 0
        yy_a, xx_a = np.mgrid[sa]
        yy_n, xx_n = np.mgrid[sn]
        model_a = psf.evaluate(xx_a - x[i], yy_a - y[i])
        model_n = psf.evaluate(xx_n - x[i], yy_n - y[i])[ring]
        data_a, var_a, m_a = image[sa], variance[sa], mask[sa] | ~np.isfinite(image[sa])
        data_n = image[sn][ring]
        if neighbours is not None and own_flux is not None:
            data_a = data_a - neighbours[sa] + own_flux[i] * model_a
            data_n = data_n - neighbours[sn][ring] + own_flux[i] * model_n
        good_n = ~(mask[sn][ring] | ~np.isfinite(data_n))
        bad[i] = bool((m_a & (w > 0)).any()) or good_n.sum() < 10
        if bad[i]:
            continue
        data_a = np.where(w > 0, data_a, 0.0)  # pixels of the box outside the aperture may be NaN
        var_a = np.where(w > 0, var_a, 0.0)
        area = w.sum()
        bkg = np.median(data_n[good_n])
        spread = MAD_SIGMA * np.median(np.abs(data_n[good_n] - bkg))
        apcorr = (w * model_a).sum() - np.median(model_n[good_n]) * area
        signal = (w * data_a).sum() - bkg * area
        var = (w**2 * var_a).sum() + area**2 * MEDIAN_ERROR**2 * spread**2 / good_n.sum()
        out["flux"][i] = signal / apcorr
        out["sigma"][i] = np.sqrt(var) / apcorr
        out["apcorr"][i] = apcorr
        out["background"][i] = bkg
    return ApertureFluxes(out["flux"], out["sigma"], out["apcorr"], out["background"], bad)


def robust_std(values: np.ndarray) -> float:
    """Gaussian-equivalent standard deviation from the median absolute deviation."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(MAD_SIGMA * np.median(np.abs(v - np.median(v)))) if v.size else float("nan")


def closure_table(
    mag: np.ndarray,
    ratio: np.ndarray,
    normalized: np.ndarray,
    offset: np.ndarray,
    snr: np.ndarray,
    edges: Sequence[float] | np.ndarray,
) -> list[dict[str, float]]:
    """Bias and scatter per magnitude bin.

    Parameters
    ----------
    mag, ratio, normalized, offset, snr : numpy.ndarray, shape (n,)
        Catalog magnitude, measured/true flux, (measured − true)/sigma, position
        error (px) and expected S/N of the stars kept.
    edges
        Bin edges, magnitudes.

    Returns
    -------
    list of dict
        Per bin: ``lo``, ``hi``, ``n``, ``bias`` (median ratio − 1), ``scatter``
        (robust std of the ratio), ``expected`` (median sigma/flux), ``norm_std``
        (robust std of the normalized residuals), ``snr`` (median), ``pos_median``
        (median offset, px), ``pos_within`` (fraction within 0.05 px).
    """
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (mag >= lo) & (mag < hi)
        k = int(sel.sum())
        rows.append(
            {
                "lo": lo,
                "hi": hi,
                "n": k,
                "bias": float(np.median(ratio[sel]) - 1.0) if k else np.nan,
                "scatter": robust_std(ratio[sel]),
                "expected": float(np.median(1.0 / snr[sel])) if k else np.nan,
                "norm_std": robust_std(normalized[sel]),
                "snr": float(np.median(snr[sel])) if k else np.nan,
                "pos_median": float(np.median(offset[sel])) if k else np.nan,
                "pos_within": float(np.mean(offset[sel] < 0.05)) if k else np.nan,
            }
        )
    return rows


def format_table(rows: list[dict[str, float]], title: str) -> str:
    """The rows of :func:`closure_table` as aligned text."""
    head = (
        f"{'mag':>11} {'n':>4} {'S/N':>7} {'bias':>8} {'scatter':>8} {'expect':>8} "
        f"{'norm std':>8} {'|dxy| med':>9} {'<0.05px':>7}"
    )
    lines = [title, head]
    for r in rows:
        lines.append(
            f"{r['lo']:5.1f}-{r['hi']:<5.1f} {r['n']:4d} {r['snr']:7.1f} {r['bias']:+8.4f} "
            f"{r['scatter']:8.4f} {r['expected']:8.4f} {r['norm_std']:8.2f} {r['pos_median']:9.4f} "
            f"{r['pos_within']:7.0%}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Closure:
    """Measured against true values for every star; arrays of shape (n,)."""

    mag: np.ndarray
    """Catalog magnitude."""
    true_flux: np.ndarray
    """Input count rate, e⁻/s."""
    flux: np.ndarray
    """Measured total count rate, e⁻/s (NaN when not measured)."""
    sigma: np.ndarray
    """Its expected 1-sigma error, e⁻/s."""
    dx: np.ndarray
    """PSF-fit minus true x, pixels."""
    dy: np.ndarray
    """PSF-fit minus true y, pixels."""
    kept: np.ndarray
    """bool: measured and not excluded."""
    excluded: dict[str, int]
    """Stars left out, by reason (a star counts under its first reason)."""
    saturated: np.ndarray
    """bool: a SATURATED pixel in the aperture (kept unless also DO_NOT_USE)."""
    jump_core: np.ndarray
    """bool: a JUMP_DET pixel within 1.5 px of the star (kept)."""

    @property
    def ratio(self) -> np.ndarray:
        """Measured / true flux."""
        return self.flux / self.true_flux

    @property
    def normalized(self) -> np.ndarray:
        """(measured − true) / sigma."""
        return (self.flux - self.true_flux) / self.sigma

    @property
    def snr(self) -> np.ndarray:
        """Expected signal-to-noise ratio, measured flux / sigma."""
        return self.flux / self.sigma

    @property
    def offset(self) -> np.ndarray:
        """Position error, pixels."""
        return np.hypot(self.dx, self.dy)

    def table(self, edges: Sequence[float] | np.ndarray) -> list[dict[str, float]]:
        """:func:`closure_table` of the kept stars."""
        k = self.kept
        return closure_table(
            self.mag[k], self.ratio[k], self.normalized[k], self.offset[k], self.snr[k], edges
        )


def measure_closure(
    image: np.ndarray,
    error: np.ndarray,
    dq: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    true_flux: np.ndarray,
    mag: np.ndarray,
    psf: PSF,
    apertures: Apertures,
    *,
    bits: dict[str, int],
) -> Closure:
    """Fit positions, measure neighbour-subtracted aperture fluxes, compare with the truth.

    Parameters
    ----------
    image, error : numpy.ndarray, shape (ny, nx), float
        Calibrated rate and its error, e⁻/s.
    dq : numpy.ndarray, shape (ny, nx), uint32
        Rate DQ.
    x, y, true_flux, mag : numpy.ndarray, shape (n,)
        True positions (array pixel coordinates), count rates (e⁻/s) and magnitudes.
    psf
        The simulation's effective PSF.
    apertures
        Photometry radii.
    bits
        DQ values of ``DO_NOT_USE``, ``SATURATED`` and ``JUMP_DET``.
    """
    bad_pixel = ((dq & bits["DO_NOT_USE"]) != 0) | ~np.isfinite(image) | ~np.isfinite(error)
    xg, yg = peak_guesses(image, x, y)
    fit = fit_positions(image, np.where(bad_pixel, 1.0, error), bad_pixel, xg, yg, psf, apertures)
    xf, yf = np.asarray(fit["x_fit"], float), np.asarray(fit["y_fit"], float)
    flags = np.asarray(fit["flags"], int)
    fit_flux = np.where(flags == 0, np.asarray(fit["flux_fit"], float), np.nan)
    field = model_image(image.shape, xf, yf, fit_flux, psf)
    phot = aperture_fluxes(
        image, error**2, bad_pixel, xf, yf, psf, apertures, neighbours=field, own_flux=np.nan_to_num(fit_flux)
    )
    saturated = np.zeros(x.size, bool)
    jump_core = np.zeros(x.size, bool)
    for i in range(x.size):  # per-star flag census in a small box
        ys = slice(max(int(y[i]) - 5, 0), int(y[i]) + 6)
        xs = slice(max(int(x[i]) - 5, 0), int(x[i]) + 6)
        yy, xx = np.mgrid[ys, xs]
        r2 = (xx - x[i]) ** 2 + (yy - y[i]) ** 2
        box = np.asarray(dq[ys, xs], np.int64)
        saturated[i] = bool((box[r2 <= apertures.radius**2] & bits["SATURATED"]).any())
        jump_core[i] = bool((box[r2 <= 1.5**2] & bits["JUMP_DET"]).any())
    reasons = {
        "DO_NOT_USE or NaN in the aperture": phot.bad,
        "PSF fit flagged": flags != 0,
        "not measured": ~np.isfinite(phot.flux),
    }
    kept = np.ones(x.size, bool)
    excluded = {}
    for name, hit in reasons.items():
        excluded[name] = int((hit & kept).sum())
        kept &= ~hit
    return Closure(
        mag, true_flux, phot.flux, phot.sigma, xf - x, yf - y, kept, excluded, saturated, jump_core
    )
