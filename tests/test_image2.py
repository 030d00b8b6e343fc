"""Image2 end to end: rate/rateints → cal/calints, associations with backgrounds, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from test_products_cal import rate_dataset
from webbflow.engine.execute import compute_products
from webbflow.errors import InputError, UsageError
from webbflow.graphs.image2 import Image2
from webbflow.graphs.runner import RunOptions, run_image2
from webbflow.io.asn import make_association, write_association
from webbflow.io.products import fits_product
from webbflow.io.reffiles.defaults import default_reference
from webbflow.testing import raise_if_dask_computes

ROOT = "jw09999001001_01101_00001_nrca1"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A rate, a rateints and two background rates (same detector, filter and subarray)."""
    d = tmp_path_factory.mktemp("image2")
    rate = rate_dataset()
    bkg_a = rate_dataset(seed=7).assign(sci=lambda ds: ds.sci * 0 + np.float32(0.5))
    bkg_b = rate_dataset(seed=8).assign(sci=lambda ds: ds.sci * 0 + np.float32(0.7))
    for ds, name in ((bkg_a, "jw09999001001_01101_00002_nrca1"), (bkg_b, "jw09999001001_01101_00003_nrca1")):
        ds.attrs["meta"]["filename"] = f"{name}_rate.fits"
    products = [
        fits_product(rate, d / f"{ROOT}_rate.fits", "rate"),
        fits_product(rate_dataset(nints=2), d / f"{ROOT}_rateints.fits", "rateints"),
        fits_product(bkg_a, d / "jw09999001001_01101_00002_nrca1_rate.fits", "rate"),
        fits_product(bkg_b, d / "jw09999001001_01101_00003_nrca1_rate.fits", "rate"),
    ]
    paths = compute_products(products, progress=False)
    return dict(zip(("rate", "rateints", "bkg_a", "bkg_b"), paths, strict=True))


def _flat_and_photmjsr(cal: Path) -> tuple[np.ndarray, float]:
    """The default flat cut to the exposure's window, and PHOTMJSR used."""
    h = fits.getheader(cal)
    x0, y0, nx, ny = h["SUBSTRT1"] - 1, h["SUBSTRT2"] - 1, h["SUBSIZE1"], h["SUBSIZE2"]
    flat = fits.getdata(default_reference("flat", "NRCA1"), "SCI")[y0 : y0 + ny, x0 : x0 + nx]
    return flat, float(fits.getheader(cal, "SCI")["PHOTMJSR"])


def test_graph_is_lazy() -> None:
    with raise_if_dask_computes():
        cal = Image2()(rate_dataset())
    assert cal.attrs["meta"]["cal_step"] == {
        "assign_wcs": "COMPLETE",
        "bkg_subtract": "SKIPPED",
        "flat_field": "COMPLETE",
        "photom": "COMPLETE",
    }


def test_rate_and_rateints_to_cal_and_calints(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = run_image2(
        [inputs["rate"], inputs["rateints"]], {}, RunOptions(output_dir=tmp_path, progress=False)
    )
    # jwst's Image2 also drizzles each 2-D cal to an i2d (resample, on by default)
    assert [p.name for p in out] == [f"{ROOT}_cal.fits", f"{ROOT}_i2d.fits", f"{ROOT}_calints.fits"]
    with fits.open(out[1]) as i2d:
        assert i2d["SCI"].header["BUNIT"] == "MJy/sr" and "WHT" in i2d and "CON" in i2d
    out = [out[0], out[2]]
    flat, photmjsr = _flat_and_photmjsr(out[0])
    for product, source in zip(out, (inputs["rate"], inputs["rateints"]), strict=True):
        with fits.open(product) as cal, fits.open(source) as rate:
            assert cal["SCI"].header["BUNIT"] == "MJy/sr" and cal["SCI"].data.shape == rate["SCI"].data.shape
            good = (cal["DQ"].data & 1) == 0
            expected = rate["SCI"].data / flat * np.float32(photmjsr)  # DN/s → MJy/sr
            np.testing.assert_allclose(cal["SCI"].data[good], expected[good], rtol=1e-6)
            assert np.all(np.isnan(cal["SCI"].data[~good]))
            assert "ASDF" in cal and cal[0].header["S_BKDSUB"] == "SKIPPED"


def test_association_with_backgrounds(inputs: dict[str, Path], tmp_path: Path) -> None:
    asn = make_association(
        [inputs["rate"]], kind="image2", with_backgrounds=[inputs["bkg_a"], inputs["bkg_b"]]
    )
    asn_path = write_association(asn, inputs["rate"].parent / "bkg_asn.json", overwrite=True)
    options = RunOptions(output_dir=tmp_path, progress=False)
    (cal,) = run_image2(asn_path, {"resample": {"skip": True}}, options)
    assert cal.name == f"{asn.products[0].name}_cal.fits"
    flat, photmjsr = _flat_and_photmjsr(cal)
    with fits.open(cal) as hdul, fits.open(inputs["rate"]) as rate:
        assert hdul[0].header["S_BKDSUB"] == "COMPLETE"
        good = (hdul["DQ"].data & 1) == 0
        expected = (rate["SCI"].data - np.float32(0.6)) / flat * np.float32(photmjsr)  # mean background 0.6
        np.testing.assert_allclose(hdul["SCI"].data[good], expected[good], rtol=1e-5, atol=1e-6)


def test_errors_are_one_line_and_leave_no_product(inputs: dict[str, Path], tmp_path: Path) -> None:
    opts = RunOptions(output_dir=tmp_path, progress=False)
    with pytest.raises(UsageError, match="no input files"):
        run_image2([], {}, opts)
    with pytest.raises(UsageError, match="would both write"):
        run_image2([inputs["rate"], inputs["rate"]], {}, opts)
    empty = tmp_path / "empty_asn.json"
    empty.write_text('{"asn_type": "image2", "products": []}')
    with pytest.raises(InputError, match=r"empty_asn\.json"):
        run_image2(empty, {}, opts)
    uncal = tmp_path / "x_uncal.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((1, 2, 4, 4), np.uint16), name="SCI")]).writeto(
        uncal
    )
    with pytest.raises(InputError, match=r"x_uncal.fits: .*(dimensions|extension)") as exc:
        run_image2([uncal], {}, opts)
    assert "\n" not in str(exc.value)
    with pytest.raises(UsageError, match="image2 has no step 'flatfield'"):
        run_image2([inputs["rate"]], {"flatfield": {"skip": True}}, opts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty_asn.json", "x_uncal.fits"]


def test_skip_and_resample_parameters(inputs: dict[str, Path], tmp_path: Path) -> None:
    steps = {"flat_field": {"skip": "true"}, "resample": {"skip": "true"}}
    (cal,) = run_image2([inputs["rate"]], steps, RunOptions(output_dir=tmp_path, progress=False))
    assert fits.getheader(cal)["S_FLAT"] == "SKIPPED"
    with fits.open(cal) as hdul, fits.open(inputs["rate"]) as rate:
        photmjsr = np.float32(hdul["SCI"].header["PHOTMJSR"])
        np.testing.assert_allclose(hdul["SCI"].data, rate["SCI"].data * photmjsr, rtol=1e-6)
