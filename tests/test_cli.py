"""The webbflow command: exit codes, one-line errors, overrides, parameter files."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from webbflow.cli.main import main
from webbflow.cli.overrides import merge, parse_step_args, read_parameter_file
from webbflow.errors import EXIT_FAILED, EXIT_USAGE, UsageError


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_usage_errors_exit_64_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "run", "detector2", "x.fits")
    assert code == EXIT_USAGE and "did you mean 'detector1'" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "frobnicate")
    assert code == EXIT_USAGE and "Traceback" not in err
    code, _, err = _run(capsys, "run", "detector1", "x.fits", "--steps.jump=5")
    assert code == EXIT_USAGE and "--steps.<step>.<parameter>=VALUE" in err


def test_missing_and_non_fits_inputs_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "run", "detector1", str(tmp_path / "nope_uncal.fits"), "-o", str(tmp_path))
    assert code == EXIT_FAILED and "no such file" in err and err.count("\n") == 1
    bad = tmp_path / "bad_uncal.fits"
    bad.write_text("SIMPLE? no" * 100)
    code, _, err = _run(capsys, "run", "detector1", str(bad), "-o", str(tmp_path))
    assert code == EXIT_FAILED and "not a FITS file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_uncal.fits"]


def test_step_args_and_parameter_files(tmp_path: Path) -> None:
    assert parse_step_args(["--steps.jump.rejection_threshold=5", "--steps.superbias.skip", "true"]) == {
        "jump": {"rejection_threshold": "5"},
        "superbias": {"skip": "true"},
    }
    with pytest.raises(UsageError, match="missing value"):
        parse_step_args(["--steps.jump.rejection_threshold"])
    ours = tmp_path / "pars.yaml"
    ours.write_text(
        "steps:\n  jump:\n    rejection_threshold: 6\n  ramp_fit:\n    suppress_one_group: false\n"
    )
    jwst_style = tmp_path / "jwst.yaml"
    jwst_style.write_text(
        "class: jwst.pipeline.Detector1Pipeline\nsteps:\n"
        "- class: jwst.jump.jump_step.JumpStep\n  name: jump\n  parameters:\n"
        "    rejection_threshold: 7\n    save_results: false\n"
    )
    assert read_parameter_file(ours)["jump"] == {"rejection_threshold": 6}
    assert read_parameter_file(jwst_style) == {"jump": {"rejection_threshold": 7}}
    merged = merge(read_parameter_file(ours), {"jump": {"rejection_threshold": "9"}})
    assert merged == {
        "jump": {"rejection_threshold": "9"},
        "ramp_fit": {"suppress_one_group": False},
    }
    with pytest.raises(UsageError, match="parameter file not found"):
        read_parameter_file(tmp_path / "missing.yaml")


def test_demo_command_writes_and_calibrates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's main job, at a small size: simulate a field, then calibrate it."""
    out = tmp_path / "demo"
    args = ("demo", "-o", str(out), "--aperture", "NRCA1_SUB160", "--ngroups", "4", "--stars", "20")
    code, stdout, _ = _run(capsys, *args, "--galaxies", "5")
    assert code == 0 and "Simulating NRCA1_SUB160" in stdout
    names = sorted(p.name for p in out.iterdir())
    root = "jw09999001001_01101_00001_nrca1"
    assert names == sorted(
        [
            "demo_galaxies.cat",
            "demo_ptsrc.cat",
            f"{root}_F200W_CLEAR_final_seed_image.fits",
            f"{root}_rate.fits",
            f"{root}_rateints.fits",
            f"{root}_uncal.fits",
        ]
    )
    code, _, err = _run(capsys, *args, "--galaxies", "5")
    assert code == 1 and "exists; pass --overwrite" in err


def test_demo_miri_simulates_and_calibrates_to_cal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``webbflow demo --miri``: a MIRI imager field through Detector1 (MIRI order) and Image2."""
    out = tmp_path / "demo"
    args = ("demo", "--miri", "-o", str(out), "--aperture", "MIRIM_SUB64", "--ngroups", "8", "--nints", "2")
    code, stdout, _ = _run(capsys, *args, "--stars", "300", "--galaxies", "0")
    assert code == 0 and "Simulating MIRIM_SUB64 F770W FASTR1" in stdout
    root = out / "jw09999001001_01101_00001_mirimage"
    for suffix in ("uncal", "rate", "rateints", "cal", "i2d"):
        assert Path(f"{root}_{suffix}.fits").exists(), suffix
    header = fits.getheader(f"{root}_cal.fits")
    assert (header["INSTRUME"], header["DETECTOR"], header["SUBARRAY"]) == ("MIRI", "MIRIMAGE", "SUB64")
    assert (
        header["S_MIREMI"] == "COMPLETE"
        and header["S_RESET"] == "COMPLETE"
        and header["S_PHOTOM"] == "COMPLETE"
    )
    assert fits.getheader(f"{root}_cal.fits", "SCI")["BUNIT"] == "MJy/sr"
    assert fits.getheader(f"{root}_uncal.fits", "SCI")["NAXIS4"] == 2


def test_demo_test_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    code, stdout, _ = _run(capsys, "demo", "--test-pattern", "-o", str(out), "--size", "64", "--ngroups", "4")
    assert code == 0 and "TEST PATTERN" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "webbflow_demo_nrca1_rate.fits",
        "webbflow_demo_nrca1_rateints.fits",
        "webbflow_demo_nrca1_uncal.fits",
    ]


# -- image2 / image3 -----------------------------------------------------------------------------
def _rate_file(tmp_path: Path) -> Path:
    from test_products_cal import rate_dataset
    from webbflow.engine.execute import compute_products
    from webbflow.io.products import fits_product

    path = tmp_path / "data" / "jw09999001001_01101_00001_nrca1_rate.fits"
    path.parent.mkdir()
    return compute_products([fits_product(rate_dataset(), path, "rate")], progress=False)[0]


def test_run_image2_files_and_association(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from astropy.io import fits

    from webbflow.io.asn import make_association, write_association

    rate = _rate_file(tmp_path)
    out = tmp_path / "out"
    code, stdout, _ = _run(
        capsys, "run", "image2", str(rate), "-o", str(out), "-q", "--steps.flat_field.skip=true"
    )
    cal = out / "jw09999001001_01101_00001_nrca1_cal.fits"
    i2d = out / "jw09999001001_01101_00001_nrca1_i2d.fits"  # jwst's Image2 resamples by default
    assert code == 0 and stdout.split() == [str(cal), str(i2d)]
    assert fits.getheader(i2d, "SCI")["BUNIT"] == "MJy/sr"
    assert fits.getheader(cal)["S_FLAT"] == "SKIPPED" and fits.getheader(cal, "SCI")["BUNIT"] == "MJy/sr"
    # an association elsewhere pointing into data/: refused unless --allow-outside
    asn = make_association([rate], kind="image2")
    asn_path = write_association(asn, tmp_path / "asn" / "l2_asn.json", allow_outside=True)
    code, _, err = _run(capsys, "run", "image2", str(asn_path), "-o", str(out), "-q", "--overwrite")
    assert code == EXIT_FAILED and err.count("\n") == 1 and "outside" in err
    code, _, _ = _run(
        capsys, "run", "image2", str(asn_path), "-o", str(out), "-q", "--overwrite", "--allow-outside"
    )
    assert code == 0 and (out / f"{asn.products[0].name}_cal.fits").exists()


def test_run_image2_errors_and_steps_listing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "run", "image2", str(tmp_path / "nope_rate.fits"), "-o", str(tmp_path))
    assert code == EXIT_FAILED and "no such file" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "run", "image2", "x_rate.fits", "--save-intermediate", "zarr")
    assert code == EXIT_USAGE and "detector1' only" in err
    code, _, err = _run(capsys, "run", "imag2", "x_rate.fits")
    assert code == EXIT_USAGE and "did you mean 'image2'" in err
    code, out, _ = _run(capsys, "steps")
    assert code == 0 and "image2: assign_wcs → bkg_subtract → flat_field → photom" in out
    code, out, _ = _run(capsys, "steps", "bkg_subtract")
    assert code == 0 and "--steps.bkg_subtract.sigma=3.0" in out


def test_run_image3_dispatch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    try:
        from webbflow.graphs.image3 import run_image3  # noqa: F401
    except ImportError:
        code, _, err = _run(capsys, "run", "image3", str(tmp_path / "x_asn.json"))
        assert code == EXIT_USAGE and "image3" in err and err.count("\n") == 1
    else:  # built: a missing association is a one-line input error
        code, _, err = _run(capsys, "run", "image3", str(tmp_path / "x_asn.json"), "-o", str(tmp_path))
        assert code in (EXIT_FAILED, EXIT_USAGE) and err.count("\n") == 1
