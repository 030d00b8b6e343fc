"""MIRI imaging Image3: a small dithered F770W mosaic and its catalog recover the injected stars.

Three ``MIRIM_SUB256`` rates of one star field (dithers of a few arcsec) are made from the MIRI
model PSF (:func:`webbflow.sim.psf.get_psf`), with the pixel-area map of the default AREA
reference, calibrated by assign_wcs and photom with the MIRI defaults, and combined by
``run_image3``. The catalog's total fluxes are compared with the injected ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable

from test_miri_image2 import POINTING, miri_rate
from webbflow.detectors import MIRIMAGE
from webbflow.engine.execute import compute_products
from webbflow.graphs.image3 import run_image3
from webbflow.graphs.runner import RunOptions
from webbflow.io.products import fits_product
from webbflow.io.reffiles import miri_imaging
from webbflow.io.reffiles.arrays import pixel_area
from webbflow.sim.geometry import Pointing
from webbflow.sim.psf import get_psf
from webbflow.steps.assign_wcs.step import AssignWcsStep
from webbflow.steps.photom.step import PhotomStep

#: Dither offsets, arcsec (RA·cos Dec, Dec).
DITHERS = ((0.0, 0.0), (2.1, 1.3), (-1.4, 2.6))
#: Injected stars: offsets from the pointing (arcsec) and flux density (µJy).
STARS = ((-6.0, -5.0, 120.0), (4.0, -8.0, 300.0), (7.5, 6.0, 80.0), (-3.0, 7.0, 200.0), (1.0, 1.5, 150.0))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("miri_image3")
    refs = {}
    for reftype, writer in miri_imaging.WRITERS.items():
        refs[reftype] = work / f"{reftype}.{'asdf' if reftype == 'distortion' else 'fits'}"
        writer(MIRIMAGE, refs[reftype], None)
    with fits.open(refs["photom"]) as hdul:
        table = hdul["PHOTOM"].data
        photmjsr = float(table["photmjsr"][np.char.strip(table["filter"]) == "F770W"][0])
        pixar_sr = float(hdul[0].header["PIXAR_SR"])
    jy_per_dn_s = photmjsr * 1e6 * pixar_sr
    area, _ = pixel_area(MIRIMAGE)
    psf = get_psf("MIRI", "MIRIMAGE", "F770W", None, pixel_scale=0.1108)
    cos_dec = np.cos(np.radians(POINTING.dec))
    ra = POINTING.ra + np.array([s[0] for s in STARS]) / 3600.0 / cos_dec
    dec = POINTING.dec + np.array([s[1] for s in STARS]) / 3600.0
    flux_ujy = np.array([s[2] for s in STARS])
    cals = []
    for i, (dx, dy) in enumerate(DITHERS):
        pointing = Pointing(POINTING.ra + dx / 3600.0 / cos_dec, POINTING.dec + dy / 3600.0, POINTING.v3pa)
        rate = miri_rate("MIRIM_SUB256", pointing, sky=2.0, seed=i + 1, noise=0.02)
        wcs = AssignWcsStep(override_distortion=str(refs["distortion"]))(rate).attrs["wcs"]
        x, y = wcs.invert(ra, dec)
        image = np.zeros((rate.sizes["y"], rate.sizes["x"]))
        x0, y0 = int(rate.x[0]), int(rate.y[0])
        half = 15
        for xs, ys, f in zip(x, y, flux_ujy, strict=True):
            ix, iy = round(xs), round(ys)
            # DN/s from µJy: the pixel's true solid angle is area × PIXAR_SR
            dn = f * 1e-6 / jy_per_dn_s / float(area[y0 + iy, x0 + ix])
            image[iy - half : iy + half + 1, ix - half : ix + half + 1] += dn * psf.stamp(
                xs - ix, ys - iy, half
            )
        rate = rate.assign(sci=rate.sci + image.astype(np.float32))
        cal = PhotomStep(override_photom=str(refs["photom"]), override_area=str(refs["area"]))(
            AssignWcsStep(override_distortion=str(refs["distortion"]))(rate)
        )
        path = work / f"jw09999001001_01101_0000{i + 1}_mirimage_cal.fits"
        compute_products([fits_product(cal, path, "cal")], progress=False)
        cals.append(path)
    steps = {"tweakreg": {"skip": True}}
    products = run_image3(cals, steps, RunOptions(output_dir=work / "out", progress=False))
    return {
        "products": {p.name.rsplit("_", 1)[-1]: p for p in products},
        "ra": ra,
        "dec": dec,
        "flux": flux_ujy,
        "photmjsr": photmjsr,
    }


def test_mosaic_has_the_miri_pixel_scale_and_sky(run: dict) -> None:
    with fits.open(run["products"]["i2d.fits"]) as hdul:
        h = hdul["SCI"].header
        scale = np.sqrt(abs(h["CD1_1"] * h["CD2_2"] - h["CD1_2"] * h["CD2_1"])) * 3600.0
        assert scale == pytest.approx(0.1108, abs=0.0015)  # native MIRI imager pixels
        assert hdul[0].header["INSTRUME"] == "MIRI"
        wht = hdul["WHT"].data
        # surface brightness is conserved: the 2 DN/s sky is 2 × PHOTMJSR MJy/sr (skymatch
        # records the levels, it does not subtract them, as jwst's default subtract=False)
        assert np.nanmedian(hdul["SCI"].data[wht > 0]) == pytest.approx(2.0 * run["photmjsr"], rel=0.005)


def test_catalog_recovers_injected_fluxes(run: dict) -> None:
    cat = QTable.read(run["products"]["cat.ecsv"])
    sky = cat["sky_centroid"]
    found = []
    for ra, dec, flux in zip(run["ra"], run["dec"], run["flux"], strict=True):
        sep = np.hypot((sky.ra.deg - ra) * np.cos(np.radians(dec)), sky.dec.deg - dec) * 3600.0
        k = int(np.argmin(sep))
        assert sep[k] < 0.05  # arcsec: < half a MIRI pixel
        measured = float(cat["aper_total_flux"][k].to_value("uJy"))
        found.append(measured / flux)
        assert measured == pytest.approx(flux, rel=0.01)  # measured 0.997-1.0005
    print(f"\nMIRI F770W catalog / injected flux: {np.round(found, 4).tolist()}")
    assert np.all(np.isfinite(cat["aper_total_vegamag"][: len(run["flux"])]))
