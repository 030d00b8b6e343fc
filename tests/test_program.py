"""``webbflow program``: a real APT proposal through simulate → detector1 → image2 → image3.

The proposal is Mirage's example NIRCam imaging program (module B, 2 × 2 dithers, F115W +
F356W), reduced to the 160-px subarrays of NRCB1 and NRCBLONG and 3 groups: 8 exposures and
2 mosaics. Products carry a fixed ``DATE`` (``SOURCE_DATE_EPOCH``) so runs can be compared byte
for byte.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from webbflow.cli.main import main
from webbflow.errors import UsageError
from webbflow.graphs.plan import make_plan, select_detectors
from webbflow.graphs.program import ProgramOptions, check_stages, run_program, split_steps
from webbflow.graphs.program_field import with_synthetic_fields

APT = Path(__file__).parent / "data" / "apt"
XML, POINTING = APT / "example_imaging_program.xml", APT / "example_imaging_program.pointing"
ARGS = ["--subarray", "SUB160", "--max-groups", "3", "--detectors", "NRCB1,NRCBLONG", "--seed", "7"]
EPOCH = "1750000000"
MOSAICS = ("jw42424-o001_t001_nircam_clear-f115w-sub160", "jw42424-o001_t001_nircam_clear-f356w-sub160")


def _plan(tmp: Path) -> Any:
    plan = make_plan(XML, POINTING, subarray="SUB160", max_groups=3)
    return with_synthetic_fields(select_detectors(plan, ["NRCB1", "NRCBLONG"]), tmp / "catalogs", seed=7)


def _options(out: Path, **changes: Any) -> ProgramOptions:
    return ProgramOptions(output_dir=out, scheduler="threads", seed=7, progress=False, **changes)


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every product (FITS, ECSV), by name."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.suffix in (".fits", ".ecsv") and not p.name.endswith("_plan.ecsv")
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    out = tmp_path_factory.mktemp("program")
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        plan = _plan(out)
        report = run_program(plan, _options(out))
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old
    return out, plan, report


@pytest.mark.slow
def test_program_writes_every_product(first_run: tuple[Path, Any, Any]) -> None:
    out, plan, report = first_run
    assert report.ok, report.summary()
    roots = [str(r["filename"]) for r in plan.rows()]
    assert len(roots) == 8
    for root in roots:
        for suffix in ("uncal", "rate", "rateints", "cal", "i2d"):
            assert (out / f"{root}_{suffix}.fits").is_file(), f"{root}_{suffix}"
    assert len(report.exposures.written) == 40 and not report.exposures.skipped
    for product in MOSAICS:
        for suffix in ("_i2d.fits", "_cat.ecsv", "_segm.fits", "_image3_asn.json"):
            assert (out / f"{product}{suffix}").is_file(), product + suffix
    assert len(list(out.glob("*_crf.fits"))) == 8
    # each product is the jwst one: calibrated, from its own simulated exposure
    with fits.open(out / f"{roots[0]}_cal.fits") as hdul:
        assert hdul[0].header["S_PHOTOM"] == "COMPLETE" and hdul[0].header["SUBARRAY"] == "SUB160"
        assert hdul[0].header["FILENAME"] == f"{roots[0]}_cal.fits"
    with fits.open(out / f"{MOSAICS[0]}_i2d.fits") as hdul:
        assert hdul[0].header["FILTER"] == "F115W" and hdul["SCI"].data.size > 0
    # no temporary file anywhere, every product has its marker
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
    markers = {p.stem for p in (out / ".webbflow" / "done").glob("*.json")}
    assert {p.name for p in report.exposures.written} <= markers


@pytest.mark.slow
def test_rerun_skips_every_complete_product(first_run: tuple[Path, Any, Any]) -> None:
    out, plan, _ = first_run
    before = _digests(out)
    report = run_program(plan, _options(out))
    assert report.ok
    assert not report.exposures.written and len(report.exposures.skipped) == 40
    assert sorted(report.mosaics_skipped) == sorted(MOSAICS) and not report.mosaics_written
    assert _digests(out) == before


@pytest.mark.slow
def test_killed_run_resumes_to_identical_products(first_run: tuple[Path, Any, Any], tmp_path: Path) -> None:
    """Kill ``webbflow program`` halfway (SIGKILL, whole process group), rerun: same bytes, less work."""
    reference, _, _ = first_run
    out = tmp_path / "resumed"
    argv = [sys.executable, "-m", "webbflow", "program", str(XML), str(POINTING), "-o", str(out), *ARGS]
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    done = out / ".webbflow" / "done"
    proc = subprocess.Popen(
        [*argv, "--scheduler", "local:2", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        if done.is_dir() and len(list(done.glob("*.json"))) >= 12:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    marked = len(list(done.glob("*.json")))
    assert 12 <= marked < 40 + 14
    # whatever the kill left: only complete products under their own names, maybe temporaries
    for path in out.glob("*.fits"):
        with fits.open(path) as hdul:  # readable, not truncated
            hdul.verify("exception")

    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        plan = _plan(out)
        report = run_program(
            plan, ProgramOptions(output_dir=out, scheduler="threads", seed=7, progress=False)
        )
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    assert report.ok, report.summary()
    redone = len(report.exposures.written)
    print(f"killed after {marked} markers; the rerun wrote {redone} products and skipped {40 - redone}")
    assert 0 < redone < 40 and len(report.exposures.skipped) == 40 - redone
    assert _digests(out) == _digests(reference)


def test_bad_exposure_fails_alone(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    rows = plan.table
    keep = [i for i, d in enumerate(rows["detector"]) if d == "NRCBLONG"][:2]
    small = replace(plan, table=rows[keep])
    bad = tmp_path / "broken.cat"
    bad.write_text("this is not a catalog\n1 2 3\n")
    small.table["catalog_point"][0] = str(bad)
    options = ProgramOptions(
        output_dir=tmp_path / "out", stages=("simulate",), scheduler="threads", progress=False
    )
    report = run_program(small, options)
    assert not report.ok
    (failure,) = report.exposures.failed
    assert failure.group == small.table["filename"][0] and "broken.cat" in failure.message
    good = tmp_path / "out" / f"{small.table['filename'][1]}_uncal.fits"
    assert good.is_file() and str(good.name) in {p.name for p in report.exposures.written}
    assert "FAILED" in report.summary() and "broken.cat" in report.summary()


def test_stages_without_simulate_need_the_files(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    small = replace(plan, table=plan.table[:1])
    options = ProgramOptions(
        output_dir=tmp_path / "out", stages=("detector1",), scheduler="threads", progress=False
    )
    report = run_program(small, options)
    (failure,) = report.exposures.failed
    assert "_uncal.fits: no such file, and simulate is not in --stages" in failure.message


def test_cli_exit_codes(tmp_path: Path, capsys: Any) -> None:
    assert main(["program", str(XML), "-o", str(tmp_path)]) == 64  # no pointing file
    assert "pointing file is missing" in capsys.readouterr().err
    assert main(["program", str(XML), str(POINTING), "--stages", "simulate,calibrate"]) == 64
    assert main(["program", str(XML), str(POINTING), "--detectors", "NRCA9"]) == 64
    plan_path = tmp_path / "p.ecsv"
    plan = _plan(tmp_path)
    bad = replace(plan, table=plan.table[:1])
    bad.table["catalog_point"][0] = str(tmp_path / "missing.cat")
    bad.write(plan_path)
    rc = main(
        [
            "program",
            str(plan_path),
            "-o",
            str(tmp_path / "o"),
            "--stages",
            "simulate",
            "--scheduler",
            "threads",
        ]
    )
    assert rc == 1
    assert "FAILED" in capsys.readouterr().err


def test_stage_and_step_options() -> None:
    assert check_stages(["image3", "simulate"]) == ("simulate", "image3")
    with pytest.raises(UsageError, match="--stages"):
        check_stages(["simulate", "calibrate"])
    d1, i2, i3 = split_steps(
        {
            "jump": {"rejection_threshold": 5},
            "photom": {"skip": True},
            "resample": {"pixfrac": 0.8},
            "tweakreg": {},
        }
    )
    assert d1 == {"jump": {"rejection_threshold": 5}} and i2["photom"] == {"skip": True}
    assert i2["resample"] == i3["resample"] == {"pixfrac": 0.8} and "tweakreg" in i3
    with pytest.raises(UsageError, match="no such step"):
        split_steps({"jmup": {}})
