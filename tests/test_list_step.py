"""The ListStep contract: lists in, lists out, cal_step bookkeeping, skip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import xarray as xr

from webbflow.engine.list_step import ListStep
from webbflow.engine.step import STEPS, SkipStep
from webbflow.errors import UsageError


class _Offset(ListStep):
    """Subtract the first exposure's mean from every exposure (a cross-exposure statistic)."""

    name = "_test_offset"

    def build_list(self, inputs: Sequence[xr.Dataset]) -> list[xr.Dataset]:
        if len(inputs) < 2:
            raise SkipStep("needs two exposures")
        level = float(inputs[0]["sci"].mean())
        return [ds.assign(sci=ds["sci"] - level) for ds in inputs]


def _exposure(value: float) -> xr.Dataset:
    return xr.Dataset(
        {"sci": (("y", "x"), np.full((3, 4), value, np.float32))}, attrs={"meta": {"filename": "a"}}
    )


def test_list_in_list_out_with_cal_step():
    a, b = _exposure(2.0), _exposure(5.0)
    out = _Offset()([a, b])
    assert [float(ds["sci"].mean()) for ds in out] == [0.0, 3.0]
    assert all(ds.attrs["meta"]["cal_step"]["_test_offset"] == "COMPLETE" for ds in out)
    assert "cal_step" not in a.attrs["meta"]  # inputs untouched
    assert STEPS["_test_offset"] is _Offset


def test_skip_and_skipstep_mark_every_output():
    a, b = _exposure(2.0), _exposure(5.0)
    for out in (_Offset(skip=True)([a, b]), [_Offset()(a)]):
        assert all(ds.attrs["meta"]["cal_step"]["_test_offset"] == "SKIPPED" for ds in out)
        assert float(out[0]["sci"].mean()) == 2.0


def test_empty_list_is_an_error():
    with pytest.raises(UsageError, match="no exposures"):
        _Offset()([])
