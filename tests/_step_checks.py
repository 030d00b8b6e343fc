"""Shared checks for the Detector1 step tests: laziness, tiling invariance, purity, bookkeeping."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from webbflow.engine.step import RefFile, Step
from webbflow.testing import raise_if_dask_computes

#: Builds (exposure, refs) for a (y, x) tile size (None: one tile).
Builder = Callable[[Any], tuple[xr.Dataset, dict[str, xr.Dataset]]]


class FakeResolver:
    """A resolver over ready-made reference Datasets (``None`` value: N/A)."""

    def __init__(self, refs: Mapping[str, xr.Dataset | None]) -> None:
        self.refs = dict(refs)

    def resolve(self, reftype: str, ds: xr.Dataset, override: str | None) -> RefFile | None:
        ref = self.refs[reftype]
        if ref is None:
            return None
        return RefFile(reftype, Path(ref.attrs["path"]), ref.attrs["name"])

    def open(self, ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
        found = self.refs[ref.reftype]
        assert found is not None
        return found


def computed(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Every data variable of ``ds`` as numpy."""
    return {name: np.asarray(var.values) for name, var in ds.data_vars.items()}


def build_lazily(step: Step, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """``step.build(ds, refs)`` with no dask computation allowed."""
    with raise_if_dask_computes():
        return step.build(ds, refs)


def run(step: Step, ds: xr.Dataset, refs: Mapping[str, xr.Dataset]) -> dict[str, np.ndarray]:
    """Build lazily, then compute every variable."""
    return computed(build_lazily(step, ds, refs))


def assert_tiling_invariant(step: Step, builder: Builder, tiles: Any = (7, 9)) -> None:
    """Outputs with ``tiles`` equal outputs with one tile, bit for bit."""
    one = run(step, *builder(None))
    many = run(step, *builder(tiles))
    assert one.keys() == many.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], many[name], err_msg=name)


def assert_inputs_unchanged(step: Step, builder: Builder) -> None:
    """Running the step leaves the input exposure's and references' values unchanged."""
    ds, refs = builder((7, 9))
    before = computed(ds)
    before_refs = {k: computed(r) for k, r in refs.items()}
    run(step, ds, refs)
    for name, value in computed(ds).items():
        np.testing.assert_array_equal(before[name], value, err_msg=name)
    for key, ref in refs.items():
        for name, value in computed(ref).items():
            np.testing.assert_array_equal(before_refs[key][name], value, err_msg=f"{key}.{name}")


def assert_kernel_pure(func: Callable[..., Any], arrays: Mapping[str, np.ndarray], /, **kwargs: Any) -> Any:
    """Call ``func`` on read-only copies of ``arrays``; they must come back unchanged."""
    copies = {}
    for name, arr in arrays.items():
        c = np.array(arr, copy=True)
        c.flags.writeable = False
        copies[name] = c
    result = func(**copies, **kwargs)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(copies[name], arr, err_msg=name)
    return result


def assert_params_match_jwst(step_class: type[Step]) -> None:
    """Our parameter names and defaults equal jwst 3.0's for the same step (oracle)."""
    import pytest

    pipeline = pytest.importorskip("jwst.pipeline")
    configobj = pytest.importorskip("configobj")
    jwst_class = pipeline.Detector1Pipeline.step_defs[step_class.name]
    jwst_step = jwst_class()
    spec = configobj.ConfigObj(jwst_class.spec.splitlines(), list_values=False)
    ours = {name: field.default for name, field in step_class.Params.fields().items()}
    for name in [*spec, "skip"]:
        assert name in ours, f"{step_class.name}.{name} missing"
        assert ours[name] == getattr(jwst_step, name), f"{step_class.name}.{name} default"
    assert set(ours) <= {*spec, "skip"}, f"{step_class.name}: extra parameters"
    assert tuple(jwst_class.reference_file_types) == step_class.reftypes
