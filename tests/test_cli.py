"""The webbflow command: exit codes, one-line errors, overrides, parameter files."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_demo_test_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    code, stdout, _ = _run(capsys, "demo", "--test-pattern", "-o", str(out), "--size", "64", "--ngroups", "4")
    assert code == 0 and "TEST PATTERN" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "webbflow_demo_nrca1_rate.fits",
        "webbflow_demo_nrca1_rateints.fits",
        "webbflow_demo_nrca1_uncal.fits",
    ]
