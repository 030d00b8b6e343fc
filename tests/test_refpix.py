"""Tests of the refpix step: hand-computed corrections, laziness, tiling, purity, graph shape."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

from _step_checks import assert_inputs_unchanged, assert_kernel_pure, assert_tiling_invariant, build_lazily
from webbflow import dq
from webbflow.errors import UsageError
from webbflow.model import meta_value
from webbflow.steps.refpix.kernel import apply_refpix, clipped_mean, median_filter_rows, refpix_statistics
from webbflow.steps.refpix.step import RefPixStep
from webbflow.testing import make_exposure

PARITY_OFFSETS = {0: (5.0, 7.0), 3: (-3.0, 2.0)}  # amplifier -> (even, odd) offsets, DN
ROW_SLOPE = 0.5  # DN per row: a drift every row shares, the 1/f stand-in


def window_case(
    ystart: int,
    xstart: int,
    size: int = 40,
    *,
    noutputs: int = 4,
    seed: int = 0,
    nint: int = 2,
    ngroup: int = 3,
    row_slope: float = ROW_SLOPE,
) -> tuple[xr.Dataset, np.ndarray]:
    """A ``size``² window at (ystart, xstart) (1-based) and the sky signal refpix should leave.

    Every pixel gets its amplifier/parity offset (varying per group) plus a row drift; science
    pixels also get sky. Reference pixels are found by position, so the windows touch edges.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(ystart - 1, ystart - 1 + size)
    x = np.arange(xstart - 1, xstart - 1 + size)
    ref = ((y < 4) | (y >= 2044))[:, None] | ((x < 4) | (x >= 2044))[None, :]
    sky = np.where(ref, 0.0, rng.uniform(0, 1000, (nint, ngroup, size, size)))
    amp = x // 512
    even, odd = np.array([PARITY_OFFSETS.get(int(a), (1.0, 1.5)) for a in amp]).T
    offset = np.where(x % 2 == 0, even, odd)
    group_drift = np.arange(nint * ngroup).reshape(nint, ngroup, 1, 1) * 0.25
    drift = row_slope * y[:, None] + group_drift
    sci = (sky + offset[None, None, None, :] + drift).astype(np.float32)
    meta = {
        "subarray": {"name": "SUBTEST", "xstart": xstart, "ystart": ystart},
        "exposure": {"noutputs": noutputs},
    }
    return make_exposure(sci, meta=meta), sky.astype(np.float32)


def interior_rows(ds: xr.Dataset, half: int = 5) -> slice:
    """Rows whose running-median window is whole and symmetric (no edge effects)."""
    return slice(half, ds.sizes["y"] - half)


@pytest.mark.parametrize(("ystart", "xstart"), [(1, 1), (2009, 2009)])
def test_offsets_and_row_drift_removed(ystart: int, xstart: int) -> None:
    ds, sky = window_case(ystart, xstart)
    out = RefPixStep()(ds).sci.values
    rows = interior_rows(ds)
    science = sky[..., rows, :] != 0
    np.testing.assert_allclose(out[..., rows, :][science], sky[..., rows, :][science], atol=2e-3)
    assert meta_value(RefPixStep()(ds), "cal_step.refpix") == "COMPLETE"


def test_do_not_use_and_outliers_excluded() -> None:
    ds, sky = window_case(1, 1, row_slope=0.0)  # identical reference values: any subset agrees
    sci = ds.sci.values.copy()
    sci[:, :, 1, 10] += 5000.0  # a hot reference pixel: sigma-clipped away
    sci[:, :, 2, 21] -= 800.0  # a bad one flagged DO_NOT_USE
    sci[:, :, 20, 2] += 300.0  # a side one flagged DO_NOT_USE
    pdq = np.zeros(sci.shape[-2:], np.uint32)
    pdq[2, 21] = pdq[20, 2] = dq.DO_NOT_USE
    bad = make_exposure(sci, pixeldq=pdq, meta=ds.attrs["meta"])
    out = RefPixStep()(bad).sci.values
    rows = interior_rows(ds)
    science = sky[..., rows, :] != 0
    np.testing.assert_allclose(out[..., rows, :][science], sky[..., rows, :][science], atol=2e-3)


def test_one_output_pools_all_reference_pixels() -> None:
    """NOUTPUTS=1: one clipped mean per parity from every reference pixel, no side signal."""
    ds, _ = window_case(1, 1, noutputs=1)
    out = RefPixStep()(ds).sci.values
    sci = ds.sci.values.astype(np.float64)
    ref = np.zeros(sci.shape[-2:], bool)
    ref[:4, :] = ref[:, :4] = True
    expected = np.empty_like(sci)
    for parity in (0, 1):
        cols = np.arange(sci.shape[-1]) % 2 == parity
        mask = ref & cols[None, :]
        mean = sci[..., mask].mean(axis=-1)  # no outliers: the clipped mean is the mean
        expected[..., cols] = sci[..., cols] - mean[..., None, None]
    np.testing.assert_allclose(out, expected, atol=2e-3)


def test_side_and_parity_switches() -> None:
    ds, _ = window_case(1, 1)
    plain = RefPixStep(use_side_ref_pixels=False, odd_even_columns=False)(ds).sci.values
    sci = ds.sci.values.astype(np.float64)
    mean = sci[..., :4, :].mean(axis=(-2, -1))  # bottom rows, one amplifier, both parities
    np.testing.assert_allclose(plain, sci - mean[..., None, None], atol=2e-3)
    half = RefPixStep(side_gain=0.5)(ds).sci.values
    full = RefPixStep()(ds).sci.values
    no_side = RefPixStep(use_side_ref_pixels=False)(ds).sci.values
    np.testing.assert_allclose(half, (full + no_side) / 2, atol=2e-3)


def test_transposed_detector_equals_rotated_nircam() -> None:
    """NIRISS/FGS (FASTAXIS=±2): amplifiers run along y; the result is the transposed one."""
    ds, _ = window_case(1, 2009)
    out = RefPixStep()(ds).sci.values
    meta = {
        "subarray": {"name": "SUBTEST", "xstart": 2009, "ystart": 1, "fastaxis": -2, "slowaxis": -1},
        "exposure": {"noutputs": 4},
        "instrument": {"name": "NIRISS", "detector": "NIS"},
    }
    rot = make_exposure(np.swapaxes(ds.sci.values, -1, -2), meta=meta)
    rot = rot.assign_coords(y=ds.x.values, x=ds.y.values)
    np.testing.assert_array_equal(RefPixStep()(rot).sci.values, np.swapaxes(out, -1, -2))


def test_zeroframe_corrected_like_a_group() -> None:
    ds, _ = window_case(1, 1, nint=1, ngroup=2)
    zero = ds.sci.values[:, 0]
    with_zero = make_exposure(ds.sci.values, zeroframe=zero, meta=ds.attrs["meta"])
    out = RefPixStep()(with_zero)
    np.testing.assert_array_equal(out.zeroframe.values, out.sci.values[:, 0])


def test_clipped_mean_matches_iterative_definition() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, (5, 200))
    values[:, :3] = 40.0
    got = clipped_mean(values, np.ones(200, bool), 3.0)
    for row, mean in zip(values, got, strict=True):
        kept = row
        while True:
            lo, hi = kept.mean() - 3 * kept.std(), kept.mean() + 3 * kept.std()
            new = kept[(kept >= lo) & (kept <= hi)]
            if new.size == kept.size:
                break
            kept = new
        assert mean == pytest.approx(kept.mean(), rel=1e-12)
    assert np.isnan(clipped_mean(values, np.zeros(200, bool), 3.0)).all()


def test_running_median_reflects_at_detector_edge_only() -> None:
    signal = np.arange(12, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    ok = np.ones((12, 2), bool)
    at_edge = median_filter_rows(signal, ok, np.arange(12), 5)  # rows 0..11: reflected at row 0
    assert at_edge[0] == np.median([2, 1, 0, 1, 2])
    assert at_edge[1] == np.median([1, 0, 1, 2, 3])
    assert at_edge[11] == np.median([9, 10, 11])  # row 11 is not an edge: the window is cut
    inside = median_filter_rows(signal, ok, np.arange(100, 112), 5)
    assert inside[0] == np.median([0, 1, 2])
    top = median_filter_rows(signal, ok, np.arange(2036, 2048), 5)
    assert top[11] == np.median([9, 10, 11, 10, 9])  # reflected at the last detector row


def test_kernels_are_pure() -> None:
    ds, _ = window_case(1, 1, nint=1, ngroup=2)
    sci = ds.sci.values
    stats = assert_kernel_pure(
        refpix_statistics,
        {
            "rowref": sci[:, :, :4, :],
            "rowref_dq": np.zeros((4, 40), np.uint32),
            "rowref_rows": np.arange(4),
            "cols": np.arange(40),
            "side": sci[..., :4],
            "side_dq": np.zeros((40, 4), np.uint32),
            "side_rows": np.arange(40),
            "side_cols": np.arange(4),
        },
        noutputs=4,
        odd_even_columns=True,
        use_side_ref_pixels=True,
        side_smoothing_length=11,
        siglimit=3.0,
        do_not_use=dq.DO_NOT_USE,
    )
    assert stats.offsets.shape == (1, 2, 4, 2) and stats.side.shape == (1, 2, 40)
    assert_kernel_pure(
        apply_refpix,
        {"sci": sci, "y": np.arange(40), "x": np.arange(40), "offsets": stats.offsets, "side": stats.side},
        rows_are_y=True,
        first_row=0,
        side_gain=1.0,
    )


def _builder(ystart: int, xstart: int) -> Any:
    def build(tiles: Any) -> tuple[xr.Dataset, dict[str, xr.Dataset]]:
        ds, _ = window_case(ystart, xstart, size=48)
        return make_exposure(ds.sci.values, meta=ds.attrs["meta"], chunks=tiles), {}

    return build


@pytest.mark.parametrize(("ystart", "xstart"), [(1, 1), (2001, 2001)])
def test_tiling_invariant_lazy_and_pure(ystart: int, xstart: int) -> None:
    assert_tiling_invariant(RefPixStep(), _builder(ystart, xstart), tiles=(7, 9))
    assert_tiling_invariant(RefPixStep(), _builder(ystart, xstart), tiles=(16, 5))
    assert_inputs_unchanged(RefPixStep(), _builder(ystart, xstart))
    ds, _ = _builder(ystart, xstart)((8, 8))
    out = build_lazily(RefPixStep(), ds, {})
    assert out.sci.chunks == ds.sci.chunks


def test_skips_and_errors() -> None:
    ds = make_exposure(
        np.zeros((1, 2, 16, 16), np.float32), meta={"subarray": {"xstart": 900, "ystart": 900}}
    )
    assert meta_value(RefPixStep()(ds), "cal_step.refpix") == "SKIPPED"  # no reference pixel
    edge, _ = window_case(1, 1)
    miri = edge.copy()
    miri.attrs = {"meta": {**edge.attrs["meta"], "instrument": {"name": "MIRI"}}}
    assert meta_value(RefPixStep()(miri), "cal_step.refpix") == "SKIPPED"
    with pytest.raises(UsageError, match="sirs"):
        RefPixStep(refpix_algorithm="sirs")(edge)
    with pytest.raises(UsageError):
        RefPixStep(refpix_algorithm="fft")
    with pytest.raises(UsageError, match="no reference files"):
        RefPixStep(override_refpix="N/A")


def test_parameters_match_jwst_spec() -> None:
    refpix = pytest.importorskip("jwst.refpix")
    spec = refpix.RefPixStep.spec
    for name, _, default, _ in RefPixStep.describe():
        if name == "skip":
            continue
        line = next(line for line in spec.splitlines() if line.strip().startswith(f"{name} ="))
        assert f"default={default!r}".replace("'", '"') in line.replace(" ", ""), (name, line)


class _Sizes(Callback):
    """Records the largest numpy result of any graph task and the number of tasks run."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.ntasks = 0

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
        self.ntasks += 1
        name = key[0] if isinstance(key, tuple) else str(key)
        if isinstance(result, np.ndarray) and not name.startswith("finalize"):  # not the final gather
            self.largest = max(self.largest, result.nbytes)


@pytest.mark.slow
def test_full_frame_two_phase_graph() -> None:
    """Full frame, 2 groups, 256² tiles: hand values exact and no task result above one tile."""
    nint, ngroup, n = 1, 2, 2048
    rng = np.random.default_rng(5)
    y = np.arange(n)
    sky = np.zeros((nint, ngroup, n, n), np.float32)
    sky[..., 4:-4, 4:-4] = rng.uniform(0, 100, (nint, ngroup, n - 8, n - 8))
    amp_offsets = np.array([3.0, -2.0, 10.0, 4.0])
    offset = amp_offsets[y // 512] + np.where(y % 2 == 0, 0.0, 1.5)
    drift = ROW_SLOPE * y[:, None] + 0 * y[None, :]
    sci = (sky + offset[None, None, None, :] + drift).astype(np.float32)
    ds = make_exposure(sci, chunks=256)
    out = build_lazily(RefPixStep(), ds, {})
    graph = dict(out.sci.data.__dask_graph__())
    with _Sizes() as sizes, dask.config.set(scheduler="sync"):
        got = out.sci.values
    tile_bytes = nint * ngroup * 256 * 256 * 4
    assert out.sci.chunks == ds.sci.chunks
    assert sizes.largest <= tile_bytes, (sizes.largest, tile_bytes)
    assert len(graph) < 8 * 64, len(graph)
    rows = slice(5, n - 5)
    np.testing.assert_allclose(got[..., rows, 4:-4], sky[..., rows, 4:-4], atol=2e-3)
