"""The synthetic test-pattern exposure: a valid jwst uncal, lazy, deterministic, chunk-free."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from webbflow.demo import BLOCK, build_test_pattern, frame_time, write_test_pattern
from webbflow.detectors import get_detector
from webbflow.engine.tiling import choose_tile
from webbflow.errors import OutputError, UsageError
from webbflow.io.fits_reader import open_exposure
from webbflow.testing import raise_if_dask_computes

SUB = (1, 1, 64, 64)  # xstart, ystart, xsize, ysize: the detector corner, with reference pixels


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "jw09999001001_01101_00001_nrca1_uncal.fits"
    return write_test_pattern(path, ngroups=5, nints=2, subarray=SUB, seed=7, tile=32)


def _sci(path: Path) -> np.ndarray:
    with fits.open(path) as hdul:
        return np.array(hdul["SCI"].data)


def test_file_is_a_level1b_model_with_the_right_meta(small: Path) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # ValidationWarning is a UserWarning
        model = datamodels.open(small)
    with model:
        assert type(model).__name__ == "Level1bModel"
        model.validate()
        assert model.data.shape == (2, 5, 64, 64) and model.data.dtype == np.uint16
        m = model.meta
        assert (m.telescope, m.instrument.name, m.instrument.detector) == ("JWST", "NIRCAM", "NRCA1")
        assert (m.instrument.module, m.instrument.channel) == ("A", "SHORT")
        assert m.exposure.type == "NRC_IMAGE" and m.exposure.readpatt == "RAPID"
        assert (m.exposure.nints, m.exposure.ngroups, m.exposure.nframes) == (2, 5, 1)
        assert m.exposure.groupgap == 0 and m.exposure.frame_divisor == 1
        assert m.exposure.group_time == pytest.approx(m.exposure.frame_time)
        assert m.exposure.start_time < m.exposure.mid_time < m.exposure.end_time
        assert m.exposure.zero_frame is False
        assert (m.subarray.xstart, m.subarray.ystart, m.subarray.xsize, m.subarray.ysize) == SUB
        assert (m.subarray.fastaxis, m.subarray.slowaxis) == (-1, 2)
        assert m.subarray.name == "GENERIC"
    header = fits.getheader(small)
    assert header["TESTPATT"] is True and "not a simulation" in header.comments["TESTPATT"]
    assert header["NOUTPUTS"] == 1


def test_open_exposure_reads_the_same_data(small: Path) -> None:
    ds = open_exposure(small, tile=32)
    np.testing.assert_array_equal(ds.sci.values, _sci(small).astype(np.float32))
    assert int(ds.x[0]) == 0 and int(ds.y[-1]) == 63
    assert ds.attrs["meta"]["exposure"]["ngroups"] == 5


def test_values_look_like_a_raw_ramp(small: Path) -> None:
    sci = _sci(small).astype(np.float64)
    det = get_detector("NRCA1")
    assert 0.9 * det.bias < np.median(sci) < 1.1 * det.bias
    # reference pixels (4-pixel border at the detector corner) collect no charge
    ref = sci[:, :, :4, :].reshape(2, 5, -1)
    assert np.abs(np.median(ref[:, -1] - ref[:, 0])) < 20
    # light pixels ramp up; nothing exceeds the saturation ceiling by much
    assert (sci[:, -1] - sci[:, 0]).max() > 1000
    assert sci.max() < det.saturation * 1.05


def test_every_block_has_a_star_saturating_partway() -> None:
    det = get_detector("NRCA1")
    sci = build_test_pattern(ngroups=6, subarray=(1, 1, BLOCK, BLOCK), seed=2).sci.values[0]
    saturated = sci[-1] > det.saturation - 1500
    assert 0 < saturated.sum() < 200
    assert (sci[0][saturated] < det.saturation - 1500).any()


def test_chunking_does_not_change_the_bytes(tmp_path: Path, small: Path) -> None:
    other = write_test_pattern(tmp_path / "b_uncal.fits", ngroups=5, nints=2, subarray=SUB, seed=7, tile=48)
    assert np.array_equal(_sci(other), _sci(small))


def test_windows_of_one_size_see_the_same_scene() -> None:
    # same size -> same frame time -> same ramps where two windows overlap (across blocks too)
    a = build_test_pattern(ngroups=3, subarray=(241, 231, 40, 30), seed=1, tile=16)
    b = build_test_pattern(ngroups=3, subarray=(251, 246, 40, 30), seed=1, tile=64)
    np.testing.assert_array_equal(a.sci.values[:, :, 15:, 10:], b.sci.values[:, :, :15, :30])


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path, small: Path) -> None:
    again = write_test_pattern(tmp_path / "c_uncal.fits", ngroups=5, nints=2, subarray=SUB, seed=7)
    other = write_test_pattern(tmp_path / "d_uncal.fits", ngroups=5, nints=2, subarray=SUB, seed=8)
    assert np.array_equal(_sci(again), _sci(small))
    assert np.mean(_sci(other) != _sci(small)) > 0.5


def test_building_is_lazy() -> None:
    with raise_if_dask_computes():
        ds = build_test_pattern(ngroups=10, seed=3)
    assert ds.sci.shape == (1, 10, 2048, 2048)
    assert ds.sci.chunks[2][0] == choose_tile(2048, 2048, 10)[0]  # the default tiling
    assert (ds.sci.dtype, ds.groupdq.dtype, ds.pixeldq.dtype) == (np.float32, np.uint8, np.uint32)
    assert ds.sci.nbytes > 100 * 2**20  # never materialised whole when written


@pytest.mark.parametrize(
    ("detector", "fast", "pattern"),
    [("NRCB1", 1, "BRIGHT2"), ("NIS", -2, "NIS"), ("GUIDER1", -2, "FGSRAPID")],
)
def test_other_detectors(tmp_path: Path, detector: str, fast: int, pattern: str) -> None:
    path = write_test_pattern(
        tmp_path / f"{detector}_uncal.fits",
        detector=detector,
        ngroups=3,
        readpatt=pattern,
        subarray=(1, 1, 32, 32),
    )
    header = fits.getheader(path)
    assert header["FASTAXIS"] == fast and header["READPATT"] == pattern
    assert header["EXP_TYPE"].endswith("_IMAGE")
    assert header["TGROUP"] == pytest.approx(header["TFRAME"] * (header["NFRAMES"] + header["GROUPGAP"]))
    ds = open_exposure(path)
    assert ds.sci.shape == (1, 3, 32, 32)


def test_full_frame_time_and_outputs() -> None:
    det = get_detector("NRCA1")
    assert frame_time(det, 2048, 2048) == (det.frame_time_full, 4)
    assert frame_time(det, 64, 64)[1] == 1
    assert BLOCK == 256


def test_bad_arguments_are_usage_errors(tmp_path: Path, small: Path) -> None:
    with pytest.raises(UsageError, match="readpatt"):
        build_test_pattern(readpatt="NISRAPID")
    with pytest.raises(UsageError, match="subarray"):
        build_test_pattern(subarray=(2000, 1, 100, 100))
    with pytest.raises(UsageError, match="DETECTOR"):
        build_test_pattern(detector="NRCC1")
    with pytest.raises(OutputError):
        write_test_pattern(small, ngroups=5, nints=2, subarray=SUB, seed=7)
