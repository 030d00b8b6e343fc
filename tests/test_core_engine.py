"""Tiling, map_tiles, parameters and the Step contract."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from webbflow.engine.params import StepParams, param
from webbflow.engine.step import Step
from webbflow.engine.tiles import map_tiles
from webbflow.engine.tiling import choose_tile, tile_chunks
from webbflow.errors import UsageError
from webbflow.testing import make_exposure, raise_if_dask_computes


@given(st.integers(1, 4096), st.integers(1, 4096), st.integers(1, 2000))
def test_choose_tile_within_budget(ny: int, nx: int, planes: int) -> None:
    ty, tx = choose_tile(ny, nx, planes)
    assert 1 <= ty <= ny and 1 <= tx <= nx
    if tx == nx and ty > 1:
        assert ty * tx * planes * 4 <= 16 * 2**20, "a strip stays within the budget"
    if ny >= 32:
        assert ty < ny or tx < nx, "at least two tiles, so two workers have work"


@given(st.integers(1, 5000), st.integers(1, 600))
def test_tile_chunks_cover(size: int, tile: int) -> None:
    chunks = tile_chunks(size, tile)
    assert sum(chunks) == size
    assert all(c == tile for c in chunks[:-1]) and 0 < chunks[-1] <= tile


class _Out(NamedTuple):
    smooth: np.ndarray
    scaled: np.ndarray


def _box3(sci: np.ndarray, x: np.ndarray, factor: float) -> _Out:
    """3x3 box sum of the group-summed frame (needs a 1-pixel halo) and a scaled ramp."""
    frame = sci.sum(axis=(0, 1))
    padded = np.pad(frame, 1)
    box = sum(
        padded[1 + dy : 1 + dy + frame.shape[0], 1 + dx : 1 + dx + frame.shape[1]]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )
    return _Out(box.astype(np.float32), (sci * factor + x).astype(np.float32))


@settings(max_examples=25, deadline=None)
@given(ty=st.integers(3, 23), tx=st.integers(3, 31))
def test_map_tiles_identical_on_any_tiling(ty: int, tx: int) -> None:
    rng = np.random.default_rng(5)
    sci = rng.normal(size=(2, 3, 23, 31)).astype(np.float32)
    outputs = {
        "smooth": (("y", "x"), np.float32),
        "scaled": (("integration", "group", "y", "x"), np.float32),
    }

    def run(chunks: tuple[int, int] | None) -> dict[str, np.ndarray]:
        ds = make_exposure(sci, chunks=chunks)
        with raise_if_dask_computes():
            out = map_tiles(
                _box3, {"sci": ds.sci, "x": ds.x}, outputs, like=ds, depth=1, kwargs={"factor": 2.0}
            )
        return {k: v.values for k, v in out.items()}

    whole, tiled = run(None), run((ty, tx))
    for name in outputs:
        np.testing.assert_array_equal(whole[name], tiled[name])


@dataclasses.dataclass(frozen=True)
class _Params(StepParams):
    threshold: float = param(4.0, "A threshold.", minimum=0)
    mode: str = param("a", "A mode.", choices=("a", "b"))
    count: int | None = param(None, "An optional count.")


class _Scale(Step):
    name = "test_scale"
    Params = _Params

    def build(self, ds: xr.Dataset, refs: dict[str, xr.Dataset]) -> xr.Dataset:
        return ds.assign(sci=ds.sci * self.params.threshold)  # type: ignore[attr-defined]


def test_params_coerce_strings_and_reject_unknown() -> None:
    step = _Scale(threshold="2.5", mode="b", count="3", skip="false")
    assert step.params == _Params(skip=False, threshold=2.5, mode="b", count=3)
    assert _Scale(count="None").params.count is None  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="did you mean 'threshold'"):
        _Scale(treshold=1)
    with pytest.raises(UsageError, match="not one of a, b"):
        _Scale(mode="c")
    with pytest.raises(UsageError, match="below the minimum"):
        _Scale(threshold=-1)
    with pytest.raises(UsageError, match="expected float"):
        _Scale(threshold="high")
    with pytest.raises(UsageError, match="uses no reference files"):
        _Scale(override_dark="x.fits")


def test_step_records_cal_step_and_is_lazy() -> None:
    ds = make_exposure(np.ones((1, 2, 4, 4)), chunks=2)
    with raise_if_dask_computes():
        out = _Scale(threshold=3)(ds)
        skipped = _Scale(skip=True)(ds)
    assert out.attrs["meta"]["cal_step"]["test_scale"] == "COMPLETE"
    assert skipped.attrs["meta"]["cal_step"]["test_scale"] == "SKIPPED"
    assert "cal_step" not in ds.attrs["meta"], "the input's metadata must not change"
    np.testing.assert_array_equal(out.sci.values, 3.0)
