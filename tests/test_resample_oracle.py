"""resample against jwst's ResampleStep (oracle): same inputs, same output grid, SCI/WHT compared."""

from __future__ import annotations

import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from webbflow.steps.resample import output_grid, resample

pytest.importorskip("jwst")

sys.path.insert(0, str(Path(__file__).parent))
from test_resample import DEC, NX, NY, RA, cal, scene, smooth


def _model(ds: xr.Dataset, name: str):
    from stdatamodels.jwst import datamodels

    model = datamodels.ImageModel((NY, NX))
    for var in ("sci", "dq", "err", "var_poisson", "var_rnoise", "var_flat"):
        setattr(model, "data" if var == "sci" else var, ds[var].values.copy())
    meta = ds.attrs["meta"]
    m = model.meta
    m.filename = name
    m.instrument.name, m.instrument.detector = "NIRCAM", "NRCA1"
    m.instrument.channel, m.instrument.module = "SHORT", "A"
    m.instrument.filter, m.instrument.pupil = "F200W", "CLEAR"
    m.exposure.type = "NRC_IMAGE"
    m.exposure.exposure_time = m.exposure.measurement_time = 100.0
    m.exposure.start_time, m.exposure.end_time, m.exposure.mid_time = 60000.0, 60000.01, 60000.005
    m.exposure.duration = 100.0
    m.observation.date, m.observation.time = "2026-01-01", "00:00:00"
    m.subarray.name, m.subarray.xstart, m.subarray.ystart = "SUBARRAY", 1001, 1001
    m.subarray.xsize, m.subarray.ysize = NX, NY
    for k, v in meta["wcsinfo"].items():
        setattr(m.wcsinfo, k, v)
    m.photometry.pixelarea_steradians = 2.29e-14
    m.photometry.pixelarea_arcsecsq = 2.29e-14 * (180 / np.pi * 3600) ** 2
    m.bunit_data = m.bunit_err = "MJy/sr"
    m.wcs = ds.attrs["wcs"]
    m.cal_step.assign_wcs = "COMPLETE"
    m.group_id = name
    from jwst.assign_wcs.util import update_s_region_imaging

    update_s_region_imaging(model)
    return model


@pytest.mark.slow
@pytest.mark.parametrize(("pixfrac", "weight_type", "ratio"), [(1.0, "ivm", 1.0), (0.7, "exptime", 0.8)])
def test_matches_jwst_resample(pixfrac: float, weight_type: str, ratio: float) -> None:
    from jwst.datamodels import ModelLibrary
    from jwst.resample import ResampleStep

    rng = np.random.default_rng(3)
    inputs = []
    for i, (ox, oy) in enumerate([(0.0, 0.0), (0.35, 0.2), (-0.25, 0.45)]):
        ra, dec = RA + ox / 3600 / np.cos(np.radians(DEC)), DEC + oy / 3600
        ds = cal(ra=ra, dec=dec, var_rnoise=0.003 + 0.001 * i)
        sci = scene(ds, smooth) + rng.normal(0, 0.02, (NY, NX)).astype(np.float32)
        inputs.append(ds.assign(sci=(("y", "x"), da.from_array(sci, chunks=40))))
    scale = 0.031 * ratio
    grid = output_grid(inputs, pixel_scale=scale, rotation=0.0, tile=48)
    ours = resample(inputs, grid, pixfrac=pixfrac, weight_type=weight_type).compute()
    models = [_model(ds, f"in{i}_cal.fits") for i, ds in enumerate(inputs)]
    step = ResampleStep(
        pixel_scale=scale,
        rotation=0.0,
        crval=list(grid.crval),
        crpix=list(grid.crpix),
        output_shape=[grid.shape[1], grid.shape[0]],
        pixfrac=pixfrac,
        weight_type=weight_type,
        kernel="square",
    )
    theirs = step.run(ModelLibrary(models, on_disk=False))
    report = {}
    for ours_var, their_var in (
        ("sci", "data"),
        ("wht", "wht"),
        ("err", "err"),
        ("var_rnoise", "var_rnoise"),
    ):
        a, b = ours[ours_var].values, getattr(theirs, their_var)
        both = np.isfinite(a) & np.isfinite(b) & (ours.wht.values > 0) & (theirs.wht > 0)
        rel = np.abs(a[both] - b[both]) / np.abs(b[both])
        report[ours_var] = (float(rel.max()), float(np.median(rel)), int(both.sum()))
    print(
        f"\npixfrac={pixfrac} weight_type={weight_type} ratio={ratio}: (max, median rel diff, npix)", report
    )
    assert report["sci"][0] < 1e-4 and report["wht"][0] < 1e-4
    assert report["err"][1] < 1e-3
