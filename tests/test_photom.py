"""photom: kernel and time law vs hand calculation, row matching, default PHOTOM file, jwst oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _step_checks import FakeResolver, assert_kernel_pure, build_lazily, computed
from test_flat_field import compare, make_rate, run_jwst_step, write_rate
from webbflow import dq
from webbflow.detectors import get_detector
from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError
from webbflow.io.reffiles import ReferenceResolver, default_reference
from webbflow.io.reffiles.photom import combinations, open_photom_table
from webbflow.sim import fluxcal
from webbflow.steps.photom.kernel import photom_kernel, time_correction
from webbflow.steps.photom.step import MJSR_TO_UJA2, PhotomStep
from webbflow.testing import make_reference


def _refs(rate, detector: str = "NRCA1"):
    table = open_photom_table(RefFile("photom", default_reference("photom", detector), "p.fits"), rate)
    area = make_reference(
        {"sci": (("y", "x"), np.full((rate.sizes["y"], rate.sizes["x"]), 1.01, np.float32))},
        rate,
        header={"PIXAR_SR": 2.0e-14, "PIXAR_A2": 0.00085},
    )
    return {"photom": table, "area": area}


def test_kernel_matches_hand_calculation() -> None:
    sci = np.array([[2.0, np.nan]], np.float32)
    ones = np.ones_like(sci)
    arrays = {
        "sci": sci,
        "err": ones,
        "dq": np.zeros((1, 2), np.uint32),
        "var_poisson": ones,
        "var_rnoise": ones,
    }
    out = assert_kernel_pure(photom_kernel, arrays, conversion=3.0, do_not_use=dq.DO_NOT_USE)
    assert out.sci[0, 0] == 6.0 and out.err[0, 0] == 3.0 and out.var_poisson[0, 0] == 9.0
    assert out.var_flat[0, 0] == 0.0 and out.sci.dtype == np.float32
    assert out.dq[0, 1] == dq.DO_NOT_USE and np.isnan(out.var_rnoise[0, 1])
    back = photom_kernel(out.sci, out.err, out.dq, out.var_poisson, out.var_rnoise, conversion=3.0,
                         do_not_use=dq.DO_NOT_USE, inverse=True)  # fmt: skip
    assert back.sci[0, 0] == 2.0


def test_time_laws() -> None:
    t0 = np.array([59000.0])
    lin = time_correction(59365.0, {"linear": {"t0": t0, "lossperyear": np.array([0.02])}})
    np.testing.assert_allclose(lin, [0.98])
    exp = {"t0": t0, "amplitude": np.array([0.1]), "tau": np.array([365.0]), "const": np.array([0.9])}
    np.testing.assert_allclose(time_correction(59365.0, {"exponential": exp}), [0.1 / np.e + 0.9])
    powl = {"t0": t0, "year1value": np.array([0.97]), "tsoft": np.array([10.0]), "alpha": np.array([-0.1])}
    np.testing.assert_allclose(time_correction(59365.0, {"powerlaw": powl}), [0.97])  # one year after t0


@pytest.mark.parametrize("detector", ["NRCA1", "NRCBLONG", "NIS", "GUIDER2"])
def test_default_photom_reference(detector: str) -> None:
    path = default_reference("photom", detector)
    det = get_detector(detector)
    rows = combinations(det)
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    with datamodels.open(str(path)) as model:
        model.validate()
        assert len(model.phot_table) == len(rows)
        pixar = model.meta.photometry.pixelarea_steradians
        fil, pup = rows[-1]
        info = fluxcal.filter_info(det.instrument, fil or None, pup or None)
        # PHOTMJSR * PIXAR_SR is the flux density (MJy) of 1 DN/s = gain e-/s
        flux_1dn = 3631e-6 * 10 ** (-0.4 * info.zeropoint_ab) * det.gain
        np.testing.assert_allclose(model.phot_table["photmjsr"][-1] * pixar, flux_1dn, rtol=1e-6)


def test_step_lazy_tiling_invariant_and_meta() -> None:
    outs = []
    for chunks in (None, (5, 4)):
        rate = make_rate(chunks=chunks)
        outs.append(build_lazily(PhotomStep(), rate, _refs(rate)))
    one, many = (computed(o) for o in outs)
    for name in one:
        np.testing.assert_array_equal(one[name], many[name], err_msg=name)
    rate = make_rate()
    expected = fluxcal.filter_info("NIRCAM", "F200W", "CLEAR")
    meta = outs[0].attrs["meta"]["photometry"]
    conv = meta["conversion_megajanskys"]
    np.testing.assert_allclose(
        conv, expected.photmjsr * expected.pixel_area_sr * 2.07 / meta_pixar("NRCA1"), rtol=1e-5
    )
    assert meta["conversion_microjanskys"] == pytest.approx(conv * MJSR_TO_UJA2)
    assert meta["pixelarea_steradians"] == 2.0e-14 and meta["pixelarea_arcsecsq"] == 0.00085
    assert outs[0].attrs["meta"]["bunit_data"] == "MJy/sr"
    np.testing.assert_allclose(one["sci"], rate["sci"].values * np.float32(conv), rtol=1e-7)
    np.testing.assert_allclose(
        one["var_rnoise_ints"], rate["var_rnoise_ints"].values * np.float32(conv) ** 2, rtol=1e-6
    )
    np.testing.assert_array_equal(one["area"], np.float32(1.01))


def meta_pixar(detector: str) -> float:
    from astropy.io import fits

    return float(fits.getheader(default_reference("photom", detector))["PIXAR_SR"])


def test_missing_row_is_a_clear_error() -> None:
    rate = make_rate(meta={"instrument": {"filter": "F444W"}})
    with pytest.raises(ReferenceFileError, match=r"no row for FILTER=F444W PUPIL=CLEAR.*PHOTOM"):
        PhotomStep().build(rate, _refs(rate))


def test_step_without_area_uses_photom_keywords() -> None:
    rate = make_rate()
    refs = _refs(rate)
    out = PhotomStep()(rate, FakeResolver({"photom": refs["photom"], "area": None}))
    assert "area" not in out
    assert out.attrs["meta"]["photometry"]["pixelarea_steradians"] == pytest.approx(meta_pixar("NRCA1"))
    assert out.attrs["meta"]["ref_file"]["area"]["name"] == "N/A"


@pytest.mark.oracle
def test_oracle_jwst_photom(tmp_path: Path) -> None:
    pytest.importorskip("jwst.photom")
    from webbflow.io.fits_reader import open_product

    path = write_rate(make_rate(64, 80, chunks=(32, 40)).drop_dims("integration"), tmp_path / "t_rate.fits")
    rate = open_product(path)
    files = {r: str(default_reference(r, "NRCA1")) for r in ("photom", "area")}
    overrides = {f"override_{r}": f for r, f in files.items()}
    out = PhotomStep(**overrides)(rate, ReferenceResolver(use_crds=False))
    run_jwst_step("PhotomStep", path, tmp_path / "jwst_cal.fits", overrides, tmp_path / "crds")
    diffs = compare(
        computed(out), tmp_path / "jwst_cal.fits", ("sci", "err", "dq", "var_poisson", "var_rnoise", "area")
    )
    print("photom vs jwst, max relative difference:", diffs)
    assert max(diffs.values()) <= 1e-6
    from astropy.io import fits

    header = fits.getheader(tmp_path / "jwst_cal.fits", "SCI")
    meta = out.attrs["meta"]["photometry"]
    assert meta["conversion_megajanskys"] == pytest.approx(header["PHOTMJSR"], rel=1e-7)
    assert meta["pixelarea_steradians"] == pytest.approx(header["PIXAR_SR"], rel=1e-12)
