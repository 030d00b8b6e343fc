"""Tests of the persistence step (a documented pass-through: not built)."""

from __future__ import annotations

import numpy as np
import pytest

from _step_checks import assert_params_match_jwst
from webbflow.engine.step import SkipStep
from webbflow.model import meta_value
from webbflow.steps.persistence.step import PersistenceStep
from webbflow.testing import make_exposure, raise_if_dask_computes


def test_skipped_by_default_and_not_built() -> None:
    ds = make_exposure(np.ones((1, 3, 8, 8), np.float32), chunks=4)
    assert PersistenceStep().params.skip is True
    with raise_if_dask_computes():
        out = PersistenceStep()(ds)
        forced = PersistenceStep(skip=False, persistence_dnu=True, dn_threshold=100)(ds)
    assert meta_value(out, "cal_step.persistence") == "SKIPPED"
    assert meta_value(forced, "cal_step.persistence") == "SKIPPED"
    assert forced.sci.data is ds.sci.data and forced.groupdq.data is ds.groupdq.data
    with pytest.raises(SkipStep, match="not built"):
        PersistenceStep(skip=False).build(ds, {})


def test_jwst_parameters_accepted() -> None:
    jwst_step = pytest.importorskip("jwst.persistence.persistence_step")
    from configobj import ConfigObj

    spec = ConfigObj(jwst_step.PersistenceStep.spec.splitlines(), list_values=False)
    ours = set(PersistenceStep.Params.fields())
    assert set(spec) <= ours | {"pre_hooks", "post_hooks"}


def test_parameters_as_jwst() -> None:
    assert_params_match_jwst(PersistenceStep)
