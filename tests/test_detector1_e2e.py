"""Detector1 end to end: CLI, products jwst can open, identical bits on any tiling or scheduler."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from webbflow.cli.main import main
from webbflow.demo import write_test_pattern
from webbflow.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from webbflow.graphs.runner import RunOptions, run_detector1


@pytest.fixture(scope="module")
def uncal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96×96 NRCA1 corner subarray (reference pixels on two sides), 6 groups, 2 integrations."""
    path = tmp_path_factory.mktemp("e2e") / "jw09999001001_01101_00001_nrca1_uncal.fits"
    return write_test_pattern(path, detector="NRCA1", ngroups=6, nints=2, subarray=(1, 1, 96, 96), seed=7)


def _data_digest(path: Path) -> str:
    """Hash of every image extension's data (headers carry a creation date)."""
    h = hashlib.sha256()
    with fits.open(path) as hdul:
        for hdu in hdul[1:]:
            if hdu.is_image and hdu.data is not None:
                h.update(hdu.name.encode())
                h.update(np.ascontiguousarray(hdu.data).tobytes())
    return h.hexdigest()


def test_cli_run_writes_rate_and_rateints(
    uncal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    code = main(
        ["run", "detector1", str(uncal), "-o", str(tmp_path), "--quiet", "--steps.jump.rejection_threshold=5"]
    )
    out = capsys.readouterr().out.split()
    assert code == EXIT_OK
    rate = tmp_path / "jw09999001001_01101_00001_nrca1_rate.fits"
    rateints = tmp_path / "jw09999001001_01101_00001_nrca1_rateints.fits"
    assert [Path(p) for p in out] == [rate, rateints]
    with datamodels.open(rate) as model:
        assert type(model).__name__ == "ImageModel" and model.data.shape == (96, 96)
        assert model.meta.cal_step.jump == "COMPLETE" and model.meta.cal_step.ramp_fit == "COMPLETE"
        assert model.meta.ref_file.dark.name.startswith("webbflow://")
        good = (model.dq & 1) == 0
        assert np.isfinite(model.data[good]).all()
        assert model.meta.cal_step.refpix == "COMPLETE"
        assert np.all(model.err[good] > 0)
    with datamodels.open(rateints) as model:
        assert type(model).__name__ == "CubeModel" and model.data.shape == (2, 96, 96)
    # an existing product is never replaced without --overwrite
    before = rate.read_bytes()
    assert main(["run", "detector1", str(uncal), "-o", str(tmp_path), "--quiet"]) == EXIT_FAILED
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert rate.read_bytes() == before


def test_identical_bits_on_any_tiling_and_scheduler(uncal: Path, tmp_path: Path) -> None:
    digests = {}
    for label, tile, sched in (
        ("t96", 96, "threads"),
        ("t32", 32, "threads"),
        ("t40-sync", 40, "sync"),
        ("local2", 32, "local:2"),
    ):
        out = tmp_path / label
        paths = run_detector1(
            [uncal], {}, RunOptions(output_dir=out, tile=tile, scheduler=sched, progress=False)
        )
        digests[label] = [_data_digest(p) for p in paths]
    first = digests["t96"]
    assert all(d == first for d in digests.values()), digests


def test_save_intermediate_ramp(uncal: Path, tmp_path: Path) -> None:
    from webbflow.io.fits_reader import open_exposure
    from webbflow.io.zarr_store import open_zarr

    paths = run_detector1(
        [uncal], {}, RunOptions(output_dir=tmp_path, save_intermediate="zarr", progress=False)
    )
    zarr_ramp = tmp_path / "jw09999001001_01101_00001_nrca1_ramp.zarr"
    assert zarr_ramp in paths
    ramp = open_zarr(zarr_ramp)
    assert (
        ramp.attrs["meta"]["cal_step"]["jump"] == "COMPLETE"
        and "ramp_fit" not in ramp.attrs["meta"]["cal_step"]
    )
    paths = run_detector1(
        [uncal], {}, RunOptions(output_dir=tmp_path / "f", save_intermediate="fits", progress=False)
    )
    fits_ramp = open_exposure(tmp_path / "f" / "jw09999001001_01101_00001_nrca1_ramp.fits")
    np.testing.assert_array_equal(fits_ramp.sci.values, ramp.sci.values)
    np.testing.assert_array_equal(fits_ramp.groupdq.values, ramp.groupdq.values)


def test_cli_bad_parameters_and_references(
    uncal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "detector1", str(uncal), "-o", str(tmp_path), "--steps.jump.rejection_treshold=5"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "did you mean 'rejection_threshold'" in err
    code = main(["run", "detector1", str(uncal), "-o", str(tmp_path), "--steps.jmp.skip=true"])
    assert code == EXIT_USAGE and "did you mean 'jump'" in capsys.readouterr().err
    code = main(
        [
            "run",
            "detector1",
            str(uncal),
            "-o",
            str(tmp_path),
            "--quiet",
            "--steps.dark_current.override_dark=" + str(tmp_path / "missing_dark.fits"),
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_FAILED and "override_dark" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_reference_for_another_detector_is_refused(
    uncal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from webbflow.io.fits_reader import open_exposure
    from webbflow.io.reffiles import ReferenceResolver

    other = write_test_pattern(
        tmp_path / "b2_uncal.fits", detector="NRCB2", ngroups=3, subarray=(1, 1, 16, 16)
    )
    ref = ReferenceResolver.default().resolve("gain", open_exposure(other), None)
    assert ref is not None
    code = main(
        [
            "run",
            "detector1",
            str(uncal),
            "-o",
            str(tmp_path / "out"),
            "--quiet",
            f"--steps.jump.override_gain={ref.path}",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_FAILED and "NRCB2" in err and "NRCA1" in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_nan_in_reference_is_flagged_not_fatal(uncal: Path, tmp_path: Path) -> None:
    from webbflow.io.fits_reader import open_exposure
    from webbflow.io.reffiles import ReferenceResolver

    ref = ReferenceResolver.default().resolve("linearity", open_exposure(uncal), None)
    assert ref is not None
    bad = tmp_path / "nan_linearity.fits"
    with fits.open(ref.path) as hdul:
        hdul["COEFFS"].data[:, 50, 50] = np.nan
        hdul.writeto(bad)
    paths = run_detector1(
        [uncal],
        {"linearity": {"override_linearity": str(bad)}},
        RunOptions(output_dir=tmp_path / "out", progress=False),
    )
    with fits.open(paths[0]) as hdul:
        from webbflow import dq

        assert hdul["DQ"].data[50, 50] & dq.NO_LIN_CORR
        assert np.isfinite(hdul["SCI"].data[50, 50])


@pytest.mark.slow
def test_full_frame_nircam_with_default_references(tmp_path: Path) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    uncal = write_test_pattern(
        tmp_path / "jw09999001001_01101_00001_nrcb1_uncal.fits",
        detector="NRCB1",
        ngroups=10,
        subarray=None,
        seed=2,
    )
    rate, _ = run_detector1([uncal], {}, RunOptions(output_dir=tmp_path, progress=False))
    with datamodels.open(rate) as model:
        assert model.data.shape == (2048, 2048)
        assert model.meta.instrument.detector == "NRCB1"
        inner = model.data[4:-4, 4:-4]
        assert np.isfinite(inner).mean() > 0.99
