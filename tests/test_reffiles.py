"""Tests of the embedded default reference set, the resolver and the reference opener.

The full-frame NRCA1 default set is generated once per session (into a tmp
``WEBBFLOW_CACHE``), plus once more in a second folder for the determinism test.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from webbflow import dq
from webbflow.detectors import get_detector
from webbflow.engine.step import RefFile, default_resolver
from webbflow.errors import ReferenceFileError
from webbflow.io.reffiles import ReferenceResolver, cache_root, default_reference, open_reference
from webbflow.io.reffiles.arrays import GENERATOR_VERSION
from webbflow.io.reffiles.defaults import DATAMODELS, dark_frames_needed
from webbflow.io.reffiles.opener import TABLE_REFTYPES
from webbflow.testing import make_exposure, raise_if_dask_computes

REFTYPES = tuple(DATAMODELS)
SUB_META = {"subarray": {"xstart": 1025, "ystart": 1, "name": "SUB64"}}


def _generate_all(detector: str = "NRCA1") -> dict[str, Path]:
    return {r: default_reference(r, detector) for r in REFTYPES}


@pytest.fixture(scope="session")
def default_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The NRCA1 default set, generated once, with ``WEBBFLOW_CACHE`` pointing at it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WEBBFLOW_CACHE", str(tmp_path_factory.mktemp("wfcache")))
        mp.delenv("CRDS_PATH", raising=False)
        start = time.perf_counter()
        paths = _generate_all()
        print(f"\nNRCA1 default set generated in {time.perf_counter() - start:.2f} s")
        yield paths


@pytest.fixture
def resolver(default_set: dict[str, Path]) -> ReferenceResolver:
    return ReferenceResolver(use_crds=False)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sub_exposure(**meta: Any) -> Any:
    merged = {**SUB_META, **meta}
    return make_exposure(np.zeros((1, 3, 64, 96), np.float32), meta=merged, chunks=(32, 48))


def _write_ref(path: Path, header: dict[str, Any], exts: dict[str, np.ndarray]) -> Path:
    primary = fits.PrimaryHDU()
    for key, value in header.items():
        primary.header[key] = value
    hdus = [fits.ImageHDU(arr, name=name) for name, arr in exts.items()]
    fits.HDUList([primary, *hdus]).writeto(path)
    return path


# -- the default set -----------------------------------------------------------------------
def test_files_are_in_the_versioned_cache(default_set: dict[str, Path]) -> None:
    root = cache_root()
    assert root.name.startswith("defaults-v") and str(root).startswith(os.environ["WEBBFLOW_CACHE"])
    assert sorted(p.name for p in root.iterdir()) == ["NRCA1"]  # only the detector asked for
    assert default_set["dark"].name.endswith(f"_dark_10f_v{GENERATOR_VERSION}.fits")
    assert not list(root.rglob("*.partial"))


def test_generation_is_deterministic(
    default_set: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBBFLOW_CACHE", str(tmp_path))
    again = _generate_all()
    for reftype, path in default_set.items():
        assert again[reftype] != path and again[reftype].name == path.name
        assert _sha(again[reftype]) == _sha(path), reftype


def test_cached_file_is_reused(default_set: dict[str, Path]) -> None:
    before = default_set["gain"].stat().st_mtime_ns
    assert default_reference("gain", "nrca1") == default_set["gain"]
    assert default_set["gain"].stat().st_mtime_ns == before


@pytest.mark.parametrize("reftype", REFTYPES)
def test_stdatamodels_opens_and_validates(default_set: dict[str, Path], reftype: str) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with datamodels.open(default_set[reftype]) as model:
            model.validate()
            assert type(model).__name__ == DATAMODELS[reftype]
            assert model.meta.instrument.detector == "NRCA1"
            assert model.meta.pedigree == "DUMMY" and model.meta.author == "webbflow"


def test_mask_translation_matches_stdatamodels(
    default_set: dict[str, Path], resolver: ReferenceResolver
) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    ds = make_exposure(np.zeros((1, 2, 2048, 2048), np.float32), chunks=1024)
    mask = resolver.open(resolver.resolve("mask", ds, None), ds).dq.values
    with datamodels.open(default_set["mask"]) as model:
        np.testing.assert_array_equal(mask, model.dq)
    ref = dq.REFERENCE_PIXEL  # not DO_NOT_USE: refpix uses only reference pixels without it
    assert (mask[:4] == ref).all() and (mask[:, -4:] == ref).all() and (mask[4:-4, 4:-4] != ref).all()
    for flag in (dq.DEAD, dq.HOT, dq.WARM, dq.LOW_QE):
        assert 0 < np.count_nonzero(mask & flag) < 0.01 * mask.size


def test_array_contents(default_set: dict[str, Path]) -> None:
    det = get_detector("NRCA1")
    with fits.open(default_set["dark"]) as h:
        assert (h[0].header["NFRAMES"], h[0].header["GROUPGAP"], h[0].header["NGROUPS"]) == (1, 0, 10)
        assert "ERR" not in h
        sci = h["SCI"].data
        np.testing.assert_allclose(sci[9, 100:200, 100:200], 10 * sci[0, 100:200, 100:200], rtol=1e-5)
        hot = (h["DQ"].data & dq.HOT) != 0
        assert np.median(sci[0][hot]) > 100 * np.median(sci[0][~hot])
    with fits.open(default_set["linearity"]) as h:
        c = h["COEFFS"].data.astype(np.float64)
        assert (c[0] == 0).all() and (c[1] == 1).all()
        s = det.saturation - det.bias
        boost = (c[0] + c[1] * s + c[2] * s**2 + c[3] * s**3) / s
        assert 1.0 <= np.median(boost) < 1.2
        no_lin = (h["DQ"].data & dq.NO_LIN_CORR) != 0
        assert no_lin.any() and (c[2][no_lin] == 0).all()
    with fits.open(default_set["saturation"]) as h:
        assert 55000 < np.median(h["SCI"].data) < 63000 and ((h["DQ"].data & dq.NO_SAT_CHECK) != 0).any()
    with fits.open(default_set["ipc"]) as h:
        assert h["SCI"].data.shape == (3, 3) and abs(float(h["SCI"].data.sum()) - 1) < 1e-6
    for reftype in ("gain", "readnoise", "superbias"):
        with fits.open(default_set[reftype]) as h:
            assert np.isfinite(h["SCI"].data).all()
            assert h[0].header["SUBARRAY"] == "FULL"


def test_dark_frames_needed() -> None:
    assert dark_frames_needed(3, 1, 0) == 10
    assert dark_frames_needed(8, 4, 1) == 40


def test_unknown_detector_or_reftype(default_set: dict[str, Path]) -> None:
    with pytest.raises(ReferenceFileError, match=r"DETECTOR='NRS1'.*override_gain"):
        default_reference("gain", "NRS1")
    with pytest.raises(ReferenceFileError, match=r"no embedded default trapdensity"):
        default_reference("trapdensity", "NRCA1")


# -- the resolver --------------------------------------------------------------------------
def test_resolver_order(resolver: ReferenceResolver, default_set: dict[str, Path], tmp_path: Path) -> None:
    ds = _sub_exposure()
    ref = resolver.resolve("gain", ds, None)
    assert ref == RefFile("gain", default_set["gain"], f"webbflow://{default_set['gain'].name}")
    assert resolver.resolve("gain", ds, None) is ref  # cached
    assert resolver.resolve("gain", ds, "n/a") is None
    override = resolver.resolve("gain", ds, str(default_set["readnoise"]))
    assert override == RefFile("gain", default_set["readnoise"], str(default_set["readnoise"]))
    with pytest.raises(ReferenceFileError, match=r"override_gain: .*nothere.fits: no such"):
        resolver.resolve("gain", ds, str(tmp_path / "nothere.fits"))
    dark = resolver.resolve("dark", ds, None)
    assert dark is not None and dark.path == default_set["dark"]


def test_crds_is_off_without_crds_path(default_set: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRDS_PATH", raising=False)
    ref = ReferenceResolver().resolve("ipc", _sub_exposure(), None)
    assert ref is not None and ref.label.startswith("webbflow://")


def test_default_resolver_is_process_wide() -> None:
    assert ReferenceResolver.default() is ReferenceResolver.default()
    assert default_resolver() is ReferenceResolver.default()


# -- the opener ----------------------------------------------------------------------------
@pytest.mark.parametrize("reftype", REFTYPES)
def test_open_subarray_window(
    resolver: ReferenceResolver, default_set: dict[str, Path], reftype: str
) -> None:
    ds = _sub_exposure()
    ref = resolver.resolve(reftype, ds, None)
    assert ref is not None
    with raise_if_dask_computes():
        out = resolver.open(ref, ds)
    assert out.attrs["name"] == ref.label and out.attrs["path"] == str(ref.path)
    assert out.attrs["header"]["REFTYPE"] == reftype.upper()
    assert out.attrs["meta"]["instrument"]["detector"] == "NRCA1"
    if reftype in TABLE_REFTYPES:  # a table, not cropped to the window
        assert out.sizes["row"] > 0
        return
    if reftype == "ipc":
        assert out.kernel.dims == ("ky", "kx") and out.kernel.shape == (3, 3)
        return
    np.testing.assert_array_equal(out.y.values, ds.y.values)
    np.testing.assert_array_equal(out.x.values, ds.x.values)
    with fits.open(ref.path) as h:
        for name, var in out.data_vars.items():
            assert var.chunks[-2:] == ds.sci.chunks[-2:], name
            assert var.dims[-2:] == ("y", "x")
            ext = {"coeffs": "COEFFS"}.get(name, name.upper())
            if reftype == "mask":
                continue  # translated bits: checked against stdatamodels above
            expected = h[ext].data[..., 0:64, 1024:1120]
            np.testing.assert_array_equal(var.values, expected)
    if reftype == "dark":
        assert out.sci.dims == ("dark_group", "y", "x") and out.attrs["header"]["NFRAMES"] == 1


def test_detector_mismatch(resolver: ReferenceResolver, default_set: dict[str, Path]) -> None:
    ds = _sub_exposure(instrument={"detector": "NRCB1"})
    ref = resolver.resolve("gain", ds, str(default_set["gain"]))
    with pytest.raises(ReferenceFileError, match="reference is for DETECTOR=NRCA1, exposure is NRCB1"):
        resolver.open(ref, ds)


def _small(tmp_path: Path, **header: Any) -> Path:
    base = {
        "REFTYPE": "GAIN",
        "DETECTOR": "NRCA1",
        "SUBARRAY": "SUB64",
        "SUBSTRT1": 1025,
        "SUBSTRT2": 1,
        "SUBSIZE1": 96,
        "SUBSIZE2": 64,
    }
    sci = np.full((64, 96), 2.0, np.float32)
    sci[3, 5] = np.nan
    return _write_ref(tmp_path / "small_gain.fits", {**base, **header}, {"SCI": sci})


def test_subarray_reference_and_nan_passthrough(tmp_path: Path) -> None:
    ds = _sub_exposure()
    out = open_reference(RefFile("gain", _small(tmp_path), "x"), ds)
    values = out.sci.values
    assert np.isnan(values[3, 5]) and np.nansum(values) == 2.0 * (64 * 96 - 1)


def test_subarray_not_covered(tmp_path: Path) -> None:
    ds = _sub_exposure(subarray={"xstart": 1, "ystart": 1, "name": "SUB64"})
    with pytest.raises(ReferenceFileError, match=r"does not contain the exposure's x 1-96"):
        open_reference(RefFile("gain", _small(tmp_path), "x"), ds)


def test_readpatt_mismatch(tmp_path: Path) -> None:
    ds = _sub_exposure()
    path = _small(tmp_path, READPATT="BRIGHT2")
    with pytest.raises(ReferenceFileError, match="READPATT=BRIGHT2, exposure is RAPID"):
        open_reference(RefFile("gain", path, "x"), ds)
    path.unlink()
    assert "sci" in open_reference(RefFile("gain", _small(tmp_path, READPATT="ANY"), "x"), ds)


def test_not_fits_or_missing_extension(tmp_path: Path) -> None:
    ds = _sub_exposure()
    text = tmp_path / "notes.fits"
    text.write_text("hello")
    with pytest.raises(ReferenceFileError, match=r"notes.fits: not a FITS file, expected a gain"):
        open_reference(RefFile("gain", text, "x"), ds)
    nosci = _write_ref(tmp_path / "nosci.fits", {"DETECTOR": "NRCA1"}, {"DQ": np.zeros((4, 4), np.uint32)})
    with pytest.raises(ReferenceFileError, match=r"nosci.fits: no SCI extension, expected one in a gain"):
        open_reference(RefFile("gain", nosci, "x"), ds)
