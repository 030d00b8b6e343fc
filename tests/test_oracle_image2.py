"""Oracle: jwst 3.0's Image2Pipeline and ours on the same rate file with the same reference files.

jwst runs offline in a subprocess (``oracle.jwst_runner.offline_crds_env``), every reference type
overridden: our embedded defaults for distortion, flat, photom and area, ``N/A`` for the rest;
``bkg_subtract`` and ``resample`` skipped. Measured (NRCA1 SUB160, F200W): see the assertions and
the printed line (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("jwst")

from oracle.jwst_runner import offline_crds_env
from test_products_cal import rate_dataset
from webbflow.engine.execute import compute_products
from webbflow.graphs.runner import RunOptions, run_image2
from webbflow.io.products import fits_product
from webbflow.io.reffiles.defaults import default_reference

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

#: cal only (Image2's per-exposure i2d is compared elsewhere)
NO_I2D = {"resample": {"skip": True}}

_CHILD = """
import json, sys
args = json.loads(sys.argv[1])
if args["what"] == "image2":
    from jwst.pipeline import Image2Pipeline
    refs = args["refs"]
    steps = {}
    for name, cls in Image2Pipeline.step_defs.items():
        params = {f"override_{r}": refs.get(r, "N/A") for r in cls.reference_file_types}
        steps[name] = params
    steps["bkg_subtract"]["skip"] = True
    steps["resample"]["skip"] = True
    Image2Pipeline.call(args["input"], steps=steps, save_results=True, output_dir=args["out"])
else:
    from jwst.resample import ResampleStep
    ResampleStep.call(args["input"]).save(args["out"] + "/resampled_i2d.fits")
"""


def run_jwst(what: str, input_path: Path, out: Path, refs: dict[str, str] | None = None) -> None:
    """Run jwst's Image2Pipeline (``what="image2"``) or ResampleStep offline on ``input_path``."""
    env = {**os.environ, **offline_crds_env(out / "crds")}
    payload = json.dumps({"what": what, "input": str(input_path), "out": str(out), "refs": refs or {}})
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, payload], env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"jwst {what} failed:\n{done.stderr[-3000:]}")


def _sky_mas(w1: Any, w2: Any, shape: tuple[int, ...]) -> float:
    ny, nx = shape[-2:]
    y, x = np.mgrid[0 : ny - 1 : 17j, 0 : nx - 1 : 17j]
    ra1, dec1 = w1(x, y)
    ra2, dec2 = w2(x, y)
    return float(np.max(np.hypot((ra1 - ra2) * np.cos(np.radians(dec2)), dec1 - dec2)) * 3.6e6)


def test_oracle_image2_matches_jwst(tmp_path: Path) -> None:
    from stdatamodels.jwst import datamodels

    rate_path = tmp_path / "jw09999001001_01101_00001_nrca1_rate.fits"
    compute_products([fits_product(rate_dataset(), rate_path, "rate")], progress=False)
    ours_dir, jwst_dir = tmp_path / "ours", tmp_path / "jwst"
    ours_dir.mkdir()
    jwst_dir.mkdir()
    (ours,) = run_image2([rate_path], NO_I2D, RunOptions(output_dir=ours_dir, progress=False))
    refs = {r: str(default_reference(r, "NRCA1")) for r in ("distortion", "flat", "photom", "area")}
    run_jwst("image2", rate_path, jwst_dir, refs)
    theirs = jwst_dir / ours.name
    with datamodels.open(str(ours)) as a, datamodels.open(str(theirs)) as b:
        diffs = {
            "sci": float(np.nanmax(np.abs(a.data - b.data))),
            "err": float(np.nanmax(np.abs(a.err - b.err))),
            "var_flat": float(np.nanmax(np.abs(a.var_flat - b.var_flat))),
        }
        dq_differ = int(np.count_nonzero(a.dq != b.dq))
        nan_mismatch = int(np.count_nonzero(np.isnan(a.data) != np.isnan(b.data)))
        wcs_mas = _sky_mas(a.meta.wcs, b.meta.wcs, a.data.shape)
        print(
            f"\nimage2 vs jwst {a.data.shape}: max|dSCI| {diffs['sci']:.3g}, max|dERR| {diffs['err']:.3g}, "
            f"max|dVAR_FLAT| {diffs['var_flat']:.3g} MJy/sr; DQ differ {dq_differ}; "
            f"NaN mismatch {nan_mismatch}; WCS {wcs_mas:.3g} mas"
        )
        assert a.meta.bunit_data == b.meta.bunit_data == "MJy/sr"
        assert a.meta.photometry.conversion_megajanskys == b.meta.photometry.conversion_megajanskys
        assert a.meta.photometry.pixelarea_steradians == pytest.approx(b.meta.photometry.pixelarea_steradians)
        assert diffs["sci"] == 0.0 and diffs["err"] == 0.0 and dq_differ == 0 and nan_mismatch == 0
        np.testing.assert_array_equal(a.area, b.area)
        assert wcs_mas < 0.01  # same distortion reference, same pointing
        assert a.meta.wcsinfo.s_region == pytest.approx(b.meta.wcsinfo.s_region) or wcs_mas < 0.01


def test_oracle_jwst_resample_takes_our_cal(tmp_path: Path) -> None:
    from stdatamodels.jwst import datamodels

    rate_path = tmp_path / "jw09999001001_01101_00001_nrca1_rate.fits"
    compute_products([fits_product(rate_dataset(), rate_path, "rate")], progress=False)
    (cal,) = run_image2([rate_path], NO_I2D, RunOptions(output_dir=tmp_path, progress=False))
    run_jwst("resample", cal, tmp_path)
    i2d = tmp_path / "resampled_i2d.fits"
    with datamodels.open(str(i2d)) as mosaic, datamodels.open(str(cal)) as exposure:
        covered = mosaic.wht > 0
        assert covered.sum() > 0.8 * exposure.data.size
        # surface brightness is conserved: the mosaic's median is the exposure's
        assert np.median(mosaic.data[covered]) == pytest.approx(np.nanmedian(exposure.data), rel=0.01)
