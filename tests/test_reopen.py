"""The lazy read-back stand-in (``io/reopen.py``) equals reading the written product.

This is what makes a fused program run (simulate → detector1 → image2 in one graph) and a
run resumed from the ``uncal`` or ``rate`` file give byte-identical products.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from webbflow.engine.execute import compute_products
from webbflow.graphs.detector1 import Detector1
from webbflow.graphs.runner import RunOptions, detector1_products
from webbflow.graphs.simulate import build_simulation
from webbflow.io.fits_reader import open_exposure, open_product
from webbflow.io.products import fits_product
from webbflow.io.reopen import reopened
from webbflow.model import split_rate
from webbflow.sim.config import config_from_dict
from webbflow.sim.field import write_field
from webbflow.testing import raise_if_dask_computes

RA, DEC = 53.1625, -27.7914


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Any:
    field = write_field(tmp_path_factory.mktemp("field"), ra=RA, dec=DEC, width_arcsec=20, n_stars=20, seed=3)
    cfg = config_from_dict(
        {
            "instrument": "NIRCAM",
            "aperture": "NRCA1_SUB160",
            "filter": "F200W",
            "readout": {"readpatt": "RAPID", "ngroups": 4, "nints": 2},
            "pointing": {"ra": RA, "dec": DEC, "v3pa": 30.0},
            "catalogs": {"point": [str(field.point)]},
            "seed": 5,
        }
    )
    return build_simulation(cfg)


def _same(a: Any, b: Any) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].dims == b[name].dims, name
        assert a[name].data.chunks == b[name].data.chunks, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    meta_a, meta_b = dict(a.attrs["meta"]), dict(b.attrs["meta"])
    meta_a.pop("date"), meta_b.pop("date")  # the write time
    assert meta_a == meta_b
    assert a.attrs["fits_extra"] == b.attrs["fits_extra"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reopened_uncal_and_rate_equal_the_files(sim: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    uncal = tmp_path / sim.exposure.attrs["meta"]["filename"]
    compute_products([fits_product(sim.exposure, uncal, "uncal")], progress=False)
    with raise_if_dask_computes():
        lazy = reopened(sim.exposure, uncal, "uncal")
    _same(lazy, open_exposure(uncal))

    # Detector1 from the lazy stand-in and from the file: byte-identical products
    fused, from_file = tmp_path / "fused", tmp_path / "file"
    for out, ds in ((fused, lazy), (from_file, open_exposure(uncal))):
        out.mkdir()
        compute_products(detector1_products(ds, {}, RunOptions(output_dir=out)), progress=False)
    names = sorted(p.name for p in fused.iterdir())
    assert names == sorted(p.name for p in from_file.iterdir()) and len(names) == 2
    for name in names:
        assert _sha(fused / name) == _sha(from_file / name), name

    (rate_path,) = (from_file / n for n in names if n.endswith("_rate.fits"))
    final = list(Detector1().stages(open_exposure(uncal)))[-1][1]
    rate, _ = split_rate(final)
    _same(reopened(rate, rate_path, "rate"), open_product(rate_path))


_WCS_DIGEST = """
import hashlib
import astropy.units as u
from astropy.coordinates import ICRS
from astropy.modeling import models
from gwcs import coordinate_frames as cf, wcs
from webbflow.io.wcs_asdf import wcs_tree_bytes

det = cf.Frame2D(name="detector")
sky = cf.CelestialFrame(reference_frame=ICRS(), name="world", unit=(u.deg, u.deg))
tan = (models.Shift(-10) & models.Shift(-10)) | (models.Scale(1e-5) & models.Scale(1e-5))
tan = tan | models.Pix2Sky_TAN() | models.RotateNative2Celestial(53.1, -27.8, 180.0)
print(hashlib.sha256(wcs_tree_bytes(wcs.WCS([(det, tan), (sky, None)]))).hexdigest())
"""


def test_wcs_bytes_do_not_depend_on_the_process() -> None:
    """The ASDF WCS of a product is the same bytes in any process (asdf's extension order is not)."""
    digests = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        argv = [sys.executable, "-c", _WCS_DIGEST]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip().splitlines()[-1])
    assert len(digests) == 1
