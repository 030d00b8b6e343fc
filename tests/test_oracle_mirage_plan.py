"""Oracle: webbflow's plan of an APT program against Mirage's yaml generator on the same files.

Mirage runs out of process (``tests/oracle/mirage_counts.py``) in the Python named by
``WEBBFLOW_MIRAGE_PYTHON``; the tests skip when it is unset or cannot import mirage. For every
(observation, instrument) that webbflow simulates, the exposure files must be the same (names
mapped with :func:`webbflow.io.apt.mirage_names`: Mirage numbers exposures across visits and
calls the LW detectors ``nrca5``/``nrcb5`` and the guiders ``g1``/``g2``); what Mirage makes
beyond that must belong to an observation webbflow reports as unsupported. Per row, the
pointing, optics and readout must agree with Mirage's YAML files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

APT = Path(__file__).parent / "data" / "apt"
ORACLE = Path(__file__).parent / "oracle" / "mirage_counts.py"
TIMEOUT = 900  # s; Mirage takes ~15-30 s per small program

#: APT exports with at least one supported template (the biggest ones, thousands of exposures,
#: are left out to keep the run short).
SUPPORTED = (
    "1071", "1087", "1087_minimal", "1088", "1164", "12345_nircam_imaging_prime_niriss_wfss_parallel",
    "MIRAGE-test", "NIRCamTest", "example_imaging_program", "extended_object_test", "fgs_external",
    "m31_field_test_observation", "m51-mosaic", "nircam_img_niriss_wfss", "niriss_img",
    "nrc_img_and_miri_img", "nrc_img_niriss_img", "skipped_obs", "targets_with_large_separation",
    "miri_img_nrc_img", "nrs_mos_and_nrc_img", "niriss_wfss_nrc_img", "nircam_wfss_niriss_img",
    "54321_niriss_wfss_prime_nircam_imaging_parallel",
)  # fmt: skip
#: Only templates webbflow does not simulate (WFSS, AMI, time series): Mirage's exposures must all
#: belong to reported observations. (1171, MIRI + FGS parallels, is left out: Mirage refuses it
#: whole, "No supported observation templates", where webbflow plans the FGS parallels.)
UNSUPPORTED_ONLY = ("niriss_wfss_example", "793_mirage_example", "wasp-79_example_TSO")
#: What CI runs (about a minute of Mirage each); ``WEBBFLOW_MIRAGE_ALL=1`` runs every file above.
QUICK = (
    "example_imaging_program", "nrc_img_niriss_img", "fgs_external", "niriss_img", "skipped_obs",
    "m51-mosaic", "1088", "nircam_img_niriss_wfss", "niriss_wfss_example", "miri_img_nrc_img",
)  # fmt: skip
CASES = SUPPORTED + UNSUPPORTED_ONLY if os.environ.get("WEBBFLOW_MIRAGE_ALL") else QUICK
_INSTRUMENT = (("nrc", "NIRCAM"), ("nis", "NIRISS"), ("g", "FGS"))


@functools.cache
def _mirage_python() -> str:
    python = os.environ.get("WEBBFLOW_MIRAGE_PYTHON", "")
    if not python:
        pytest.skip("WEBBFLOW_MIRAGE_PYTHON is not set (a Python with mirage installed)")
    probe = "import mirage.yaml.yaml_generator"
    ok = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    if ok.returncode != 0:
        last = (ok.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"{python} cannot import Mirage's yaml generator: {last}")
    return python


def run_mirage(stem: str, out: Path) -> dict[str, Any]:
    """Mirage's ``{"counts": {instrument: n}, "names": [...]}`` and its YAML files for ``stem``."""
    python = _mirage_python()
    xml, pointing = APT / f"{stem}.xml", APT / f"{stem}.pointing"
    env = {**os.environ, "MIRAGE_DATA": str(out / "mirage_data")}
    proc = subprocess.run(
        [python, str(ORACLE), str(xml), str(pointing), str(out)],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=out, env=env, check=False,
    )  # fmt: skip
    if proc.returncode != 0 and "No supported observation templates" in proc.stderr:
        return {"counts": {}, "names": [], "yaml": {}}
    line = next((x for x in proc.stdout.splitlines() if x.startswith("MIRAGE-COUNTS ")), None)
    assert line is not None, f"Mirage failed on {stem}: {proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(line.removeprefix("MIRAGE-COUNTS "))
    result["yaml"] = {p.stem: p for p in out.glob("jw*.yaml")}
    return result


def _key(name: str) -> tuple[int, str]:
    """(observation, instrument) of a jwst/Mirage exposure name."""
    det = name.rsplit("_", 1)[1]
    return int(name[7:10]), next(inst for prefix, inst in _INSTRUMENT if det.startswith(prefix))


def _ours(stem: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    from webbflow.graphs.plan import make_plan
    from webbflow.io.apt import PlannedExposure, mirage_names

    plan = make_plan(APT / f"{stem}.xml", APT / f"{stem}.pointing")
    rows = list(plan.rows())
    fields = [f.name for f in dataclasses.fields(PlannedExposure)]
    names = mirage_names([PlannedExposure(**{f: r[f] for f in fields}) for r in rows])
    return plan, dict(zip(names, rows, strict=True))


@pytest.mark.parametrize("stem", CASES)
def test_same_exposures_as_mirage(stem: str, tmp_path: Path) -> None:
    mirage = run_mirage(stem, tmp_path)
    plan, ours = _ours(stem)
    ours = {n: r for n, r in ours.items() if r["instrument"] != "MIRI"}  # Mirage stops at FGS/NIR
    theirs = set(mirage["names"])
    unsupported = {(u.observation, u.instrument) for u in plan.unsupported}
    ours_keys = {_key(n) for n in ours}
    # Mirage's exposures of (observation, instrument)s we do not plan at all must be reported
    dropped = sorted(n for n in theirs if _key(n) not in ours_keys and _key(n) not in unsupported)
    assert not dropped, f"{stem}: Mirage makes {len(dropped)} exposures we neither plan nor report"
    compared = {n for n in theirs if _key(n) in ours_keys}
    assert set(ours) == compared
    per_instrument = Counter(_key(n)[1] for n in compared)
    assert Counter(r["instrument"] for r in ours.values()) == per_instrument
    if stem in UNSUPPORTED_ONLY:
        assert not ours and theirs and all(u.reason for u in plan.unsupported)


@pytest.mark.parametrize("stem", ["example_imaging_program", "nrc_img_niriss_img", "1088"])
def test_rows_agree_with_mirage_yaml(stem: str, tmp_path: Path) -> None:
    """Pointing, optics and readout of every row, against Mirage's YAML for that exposure."""
    mirage = run_mirage(stem, tmp_path)
    _, ours = _ours(stem)
    offsets = []
    for name, row in ours.items():
        with mirage["yaml"][name].open() as fh:
            doc = yaml.safe_load(fh)
        tel, readout = doc["Telescope"], doc["Readout"]
        assert str(doc["Inst"]["instrument"]).upper() == row["instrument"]
        assert readout["array_name"] == row["aperture"]
        assert (readout["readpatt"], readout["ngroup"], readout["nint"]) == (
            row["readpatt"],
            row["ngroups"],
            row["nints"],
        )
        optics = {str(readout["filter"]).upper(), str(readout["pupil"]).upper()} - {"NONE", "N/A", "CLEAR"}
        assert optics == {row["filter"], row["pupil"]} - {"", "CLEAR", "CLEARP"}, name
        assert float(tel["rotation"]) == pytest.approx(row["v3pa"], abs=1e-9)
        dra = (float(tel["ra"]) - row["ra"] + 180.0) % 360.0 - 180.0
        offsets.append(np.hypot(dra * np.cos(np.radians(row["dec"])), float(tel["dec"]) - row["dec"]) * 3600)
    worst = max(offsets)
    print(
        f"{stem}: {len(offsets)} rows, max RA/Dec difference from Mirage {worst * 1000:.2f} mas",
        file=sys.stderr,
    )
    assert worst < 0.05  # arcsec: well below a pixel (31 mas for NIRCam SW)
