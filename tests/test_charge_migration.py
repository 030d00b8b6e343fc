"""Tests of the charge_migration step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from _step_checks import (
    assert_inputs_unchanged,
    assert_kernel_pure,
    assert_params_match_jwst,
    assert_tiling_invariant,
    build_lazily,
)
from webbflow import dq
from webbflow.model import meta_value
from webbflow.steps.charge_migration.kernel import charge_migration_kernel
from webbflow.steps.charge_migration.step import ChargeMigrationStep
from webbflow.testing import make_exposure, raise_if_dask_computes

CL = dq.CHARGELOSS | dq.DO_NOT_USE


def test_values_by_hand() -> None:
    sci = np.full((1, 5, 10, 10), 100, np.float32)
    sci[0, :, 4, 4] = [10000, 20000, 26000, 30000, 34000]  # above 25000 from group 3
    sci[0, :, 0, 9] = [26000, 0, 0, 0, 0]  # corner, above in group 1 only: flags persist
    sci[0, :, 8, 1] = [100, 30000, 100, 100, 100]  # group 2 is DO_NOT_USE: ignored
    gdq = np.zeros(sci.shape, np.uint8)
    gdq[0, 1, 8, 1] = dq.DO_NOT_USE
    gdq[0, 3, 4, 5] = dq.JUMP_DET
    ds = make_exposure(sci, groupdq=gdq)
    out = build_lazily(ChargeMigrationStep(skip=False), ds, {}).groupdq.values[0]
    for y, x in ((4, 4), (3, 4), (5, 4), (4, 3), (4, 5)):
        assert list(out[:2, y, x]) == [0, 0]
        assert (out[2:, y, x] & CL == CL).all(), (y, x)
    assert out[3, 4, 5] == CL | dq.JUMP_DET
    assert (out[:, 3, 3] == 0).all()  # diagonal neighbour not flagged
    for y, x in ((0, 9), (1, 9), (0, 8)):
        assert (out[:, y, x] == CL).all()
    assert out[1, 8, 1] == dq.DO_NOT_USE and (out[:, 8, 0] == 0).all()
    assert np.count_nonzero(out.any(axis=0)) == 5 + 3 + 1


def random_builder(chunks: Any) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
    rng = np.random.default_rng(11)
    sci = np.cumsum(rng.uniform(0, 9000, (2, 5, 17, 19)), axis=1).astype(np.float32)
    gdq = np.where(rng.random(sci.shape) < 0.1, dq.DO_NOT_USE, 0).astype(np.uint8)
    gdq[rng.random(sci.shape) < 0.05] |= dq.JUMP_DET
    return make_exposure(sci, groupdq=gdq, chunks=chunks), {}


def test_default_skip_and_bookkeeping() -> None:
    ds, _ = random_builder((7, 9))
    with raise_if_dask_computes():
        skipped = ChargeMigrationStep()(ds)
        done = ChargeMigrationStep(skip=False, signal_threshold=20000)(ds)
    assert meta_value(skipped, "cal_step.charge_migration") == "SKIPPED"
    assert meta_value(done, "cal_step.charge_migration") == "COMPLETE"


def test_tiling_and_inputs() -> None:
    step = ChargeMigrationStep(skip=False)
    assert_tiling_invariant(step, random_builder)
    assert_inputs_unchanged(step, random_builder)
    ds, _ = random_builder(None)
    assert_kernel_pure(
        charge_migration_kernel,
        {"sci": ds.sci.values, "groupdq": ds.groupdq.values},
        signal_threshold=25000.0,
        do_not_use=dq.DO_NOT_USE,
        chargeloss=dq.CHARGELOSS,
    )


def test_matches_jwst() -> None:
    cm = pytest.importorskip("jwst.charge_migration.charge_migration")
    dm = pytest.importorskip("stdatamodels.jwst.datamodels")
    ds, _ = random_builder((7, 9))
    model = dm.RampModel(data=ds.sci.values.copy(), groupdq=ds.groupdq.values.copy())
    expected = cm.charge_migration(model, 25000.0).groupdq
    ours = build_lazily(ChargeMigrationStep(skip=False), ds, {}).groupdq.values
    print(
        f"charge_migration vs jwst: {np.count_nonzero(expected & dq.CHARGELOSS)} CHARGELOSS "
        f"groups, identical: {np.array_equal(ours, expected)}"
    )
    np.testing.assert_array_equal(ours, expected)


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(ChargeMigrationStep)
