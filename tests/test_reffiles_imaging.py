"""Tests of the embedded default FLAT and AREA references (imaging calibration).

Generated once per module for a long-wavelength NIRCam detector (amplifiers are column
stripes, the largest NIRCam area range) and for NIRISS (amplifiers are row stripes). The
area map is checked against pysiaf directly: the ideal-frame area of each pixel's corner
polygon, relative to that at the aperture's reference point.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from webbflow import dq
from webbflow.detectors import get_detector
from webbflow.io.reffiles import ReferenceResolver, default_reference
from webbflow.io.reffiles.arrays import defect_classes, refpix_border
from webbflow.testing import make_exposure, raise_if_dask_computes

DETECTORS = ("NRCALONG", "NIS")
REFTYPES = ("flat", "area")
SIAF = {"NRCALONG": ("NIRCam", "NRCA5_FULL"), "NIS": ("NIRISS", "NIS_CEN")}


def _generate() -> dict[tuple[str, str], Path]:
    return {(d, r): default_reference(r, d) for d in DETECTORS for r in REFTYPES}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Path]]:
    """The flat and area defaults of :data:`DETECTORS`, in a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WEBBFLOW_CACHE", str(tmp_path_factory.mktemp("wfcache-imaging")))
        mp.delenv("CRDS_PATH", raising=False)
        yield _generate()


def _read(path: Path) -> dict[str, np.ndarray]:
    with fits.open(path) as h:
        return {hdu.name: np.asarray(hdu.data) for hdu in h[1:] if hdu.is_image}


def _science(det_name: str) -> np.ndarray:
    """Pixels that carry a flat value: not reference, dead or low-QE."""
    d = defect_classes(get_detector(det_name))
    return ~(refpix_border(get_detector(det_name)) | d.dead | d.low_qe)


# -- format ----------------------------------------------------------------------------------
@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("reftype", REFTYPES)
def test_stdatamodels_validates(files: dict[tuple[str, str], Path], detector: str, reftype: str) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    path = files[detector, reftype]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with datamodels.open(path) as model:
            model.validate()
            expected = {"flat": datamodels.FlatModel, "area": datamodels.PixelAreaModel}[reftype]
            assert isinstance(model, expected)
            assert model.meta.instrument.detector == detector
            assert (model.meta.instrument.filter, model.meta.instrument.pupil) == ("ANY", "ANY")
            assert model.data.shape == (2048, 2048) and model.data.dtype.name == "float32"
            if reftype == "flat":
                # stdatamodels maps the DQ through DQ_DEF itself: same bits as the file's
                np.testing.assert_array_equal(model.dq, _read(path)["DQ"])
                assert model.err.shape == model.data.shape
            else:
                assert model.meta.photometry.pixelarea_steradians > 0


def test_generation_is_deterministic(
    files: dict[tuple[str, str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path))
    again = _generate()
    for key, path in files.items():
        assert again[key] != path
        assert hashlib.sha256(again[key].read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()


# -- flat --------------------------------------------------------------------------------------
@pytest.mark.parametrize("detector", DETECTORS)
def test_flat_statistics(files: dict[tuple[str, str], Path], detector: str) -> None:
    sci = _read(files[detector, "flat"])["SCI"].astype(np.float64)
    good = _science(detector)
    assert abs(sci[good].mean() - 1.0) < 1e-4
    # pixel-to-pixel scatter from neighbour differences (the smooth parts cancel)
    pairs = good[4:-4, 5:-4] & good[4:-4, 4:-5]
    diff = (sci[4:-4, 5:-4] - sci[4:-4, 4:-5])[pairs]
    assert 0.018 < diff.std() / math.sqrt(2) < 0.022
    # large-scale structure: medians of 128×128 boxes span a few per cent
    boxes = np.median(sci[:, :].reshape(16, 128, 16, 128).transpose(0, 2, 1, 3).reshape(256, -1), axis=1)
    assert 0.01 < boxes.max() / boxes.min() - 1.0 < 0.08


@pytest.mark.parametrize("detector", DETECTORS)
def test_flat_amplifier_steps_follow_the_readout(files: dict[tuple[str, str], Path], detector: str) -> None:
    det = get_detector(detector)
    sci = _read(files[detector, "flat"])["SCI"].astype(np.float64)[4:-4, 4:-4]
    edges = [b - 4 for b in (512, 1024, 1536)]

    def steps(a: np.ndarray) -> np.ndarray:  # jump across each boundary column of ``a``, 8-column means
        return np.array([a[:, e : e + 8].mean() - a[:, e - 8 : e].mean() for e in edges])

    along, across = (steps(sci), steps(sci.T)) if det.amp_axis == "x" else (steps(sci.T), steps(sci))
    assert 0.002 < np.abs(along).max() < 0.03  # per-amplifier level differences
    assert np.abs(across).max() < 0.001  # nothing at the same positions on the other axis


@pytest.mark.parametrize("detector", DETECTORS)
def test_flat_flags_and_special_pixels(files: dict[tuple[str, str], Path], detector: str) -> None:
    det = get_detector(detector)
    ext = _read(files[detector, "flat"])
    sci, err, flags = ext["SCI"], ext["ERR"], ext["DQ"]
    d, border = defect_classes(det), refpix_border(det)
    no_flat = border | d.dead
    # no flat value: 1 (no correction), no error, NO_FLAT_FIELD + DO_NOT_USE
    assert (sci[no_flat] == 1.0).all() and (err[no_flat] == 0.0).all()
    np.testing.assert_array_equal((flags & dq.NO_FLAT_FIELD) != 0, no_flat)
    np.testing.assert_array_equal((flags & dq.DO_NOT_USE) != 0, no_flat)
    np.testing.assert_array_equal((flags & dq.REFERENCE_PIXEL) != 0, border)
    np.testing.assert_array_equal((flags & dq.DEAD) != 0, d.dead)
    # low-QE pixels: flagged, usable, about half their neighbours' response
    np.testing.assert_array_equal((flags & dq.LOW_QE) != 0, d.low_qe)
    assert not (flags[d.low_qe] & dq.DO_NOT_USE).any()
    good = _science(detector)
    y, x = np.nonzero(d.low_qe & np.roll(good, 1, axis=1) & np.roll(good, -1, axis=1))
    ratio = sci[y, x] / (0.5 * (sci[y, x - 1] + sci[y, x + 1]))
    assert ratio.min() > 0.35 and ratio.max() < 0.7 and abs(np.median(ratio) - 0.5) < 0.02
    np.testing.assert_allclose(err[good], 0.005 * sci[good], rtol=1e-6)
    assert (flags[good] == 0).all()


# -- area --------------------------------------------------------------------------------------
def _siaf_area(aperture: object, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ideal-frame area (arcsec²) of the pixels centred at 0-based (x, y): shoelace on corners."""
    dx, dy = np.array([-0.5, 0.5, 0.5, -0.5]), np.array([-0.5, -0.5, 0.5, 0.5])
    xs, ys = x[:, None] + 1.0 + dx, y[:, None] + 1.0 + dy  # SIAF science pixels are 1-based
    xi, yi = aperture.sci_to_idl(xs.ravel(), ys.ravel())  # type: ignore[attr-defined]
    xi, yi = np.reshape(xi, xs.shape), np.reshape(yi, ys.shape)
    return 0.5 * np.abs(np.sum(xi * np.roll(yi, -1, axis=1) - yi * np.roll(xi, -1, axis=1), axis=1))


@pytest.mark.parametrize("detector", DETECTORS)
def test_area_matches_pysiaf(files: dict[tuple[str, str], Path], detector: str) -> None:
    pysiaf = pytest.importorskip("pysiaf")
    instrument, name = SIAF[detector]
    aperture = pysiaf.Siaf(instrument)[name]
    with fits.open(files[detector, "area"]) as h:
        sci, header = h["SCI"].data.astype(np.float64), h[0].header
    ref = _siaf_area(aperture, np.array([aperture.XSciRef - 1.0]), np.array([aperture.YSciRef - 1.0]))[0]
    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 2048, 200), rng.integers(0, 2048, 200)
    np.testing.assert_allclose(sci[y, x], _siaf_area(aperture, x, y) / ref, rtol=1e-4)
    arcsec = math.pi / 648000.0
    assert header["PIXAR_SR"] == pytest.approx(ref * arcsec**2, rel=1e-6)
    assert header["PIXAR_A2"] == pytest.approx(ref, rel=1e-6)
    assert header["PIXAR_A2"] == pytest.approx(aperture.XSciScale * aperture.YSciScale, rel=0.01)
    assert sci[1023:1025, 1023:1025] == pytest.approx(1.0, abs=2e-3)


def test_area_range_nircam_long(files: dict[tuple[str, str], Path]) -> None:
    sci = _read(files["NRCALONG", "area"])["SCI"]
    assert 0.95 < sci.min() < 0.99 and 1.02 < sci.max() < 1.08  # a few per cent over the frame
    assert np.isfinite(sci).all()


# -- resolver and opener -----------------------------------------------------------------------
@pytest.mark.parametrize("reftype", REFTYPES)
def test_resolver_opens_for_a_subarray(files: dict[tuple[str, str], Path], reftype: str) -> None:
    meta = {
        "instrument": {"detector": "NRCALONG", "channel": "LONG", "filter": "F444W", "pupil": "CLEAR"},
        "subarray": {"xstart": 1025, "ystart": 201, "name": "SUB64"},
    }
    ds = make_exposure(np.zeros((1, 2, 64, 96), np.float32), meta=meta, chunks=(32, 48))
    resolver = ReferenceResolver(use_crds=False)
    ref = resolver.resolve(reftype, ds, None)
    assert ref is not None and ref.path == files["NRCALONG", reftype]
    assert ref.label == f"webbflow://{ref.path.name}"
    with raise_if_dask_computes():
        out = resolver.open(ref, ds)
    expected = {"flat": {"sci", "err", "dq"}, "area": {"sci"}}[reftype]
    assert set(out.data_vars) == expected
    assert out.attrs["header"]["REFTYPE"] == reftype.upper()
    np.testing.assert_array_equal(out.x.values, ds.x.values)
    np.testing.assert_array_equal(out.y.values, ds.y.values)
    full = _read(ref.path)
    for name, var in out.data_vars.items():
        assert var.dims == ("y", "x") and var.chunks == ds.sci.chunks[-2:], name
        np.testing.assert_array_equal(var.values, full[str(name).upper()][200:264, 1024:1120])
