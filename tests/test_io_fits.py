"""FITS writing and reading: layouts, unsigned types, atomicity, keywords, the xarray backend."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from webbflow.engine.execute import compute_products
from webbflow.errors import InputError, OutputError, StepError
from webbflow.io.fits_reader import open_exposure, open_product, read_headers
from webbflow.io.keywords import KEYWORDS, header_to_meta, meta_to_cards
from webbflow.io.products import fits_product, product_name
from webbflow.io.zarr_store import ZarrProduct, open_zarr
from webbflow.testing import make_exposure


def _uncal(tmp_path: Path, name: str = "jw01_nrca1_uncal.fits", chunks: int = 5) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    sci = rng.integers(0, 65536, size=(2, 3, 12, 17)).astype(np.float32)
    sci[0, 0, 0, 0], sci[0, 0, 0, 1] = 65535, 0
    ds = make_exposure(sci, chunks=chunks, meta={"subarray": {"xstart": 1025, "ystart": 9}})
    path = tmp_path / name
    compute_products([fits_product(ds, path, "uncal")], progress=False)
    return path, sci


def test_uncal_round_trip_is_exact_and_lazy(tmp_path: Path) -> None:
    path, sci = _uncal(tmp_path)
    hdr = fits.getheader(path, "SCI")
    assert (hdr["BITPIX"], hdr["BZERO"]) == (16, 32768)
    np.testing.assert_array_equal(fits.getdata(path, "SCI"), sci.astype(np.uint16))
    ds = open_exposure(path, tile=4)
    assert ds.sci.chunks == ((2,), (3,), (4, 4, 4), (4, 4, 4, 4, 1))
    assert int(ds.x[0]) == 1024 and int(ds.y[0]) == 8
    np.testing.assert_array_equal(ds.sci.values, sci)
    assert ds.attrs["meta"]["exposure"]["ngroups"] == 3
    assert ds.attrs["meta"]["model_type"] == "Level1bModel"


def test_products_open_with_stdatamodels(tmp_path: Path) -> None:
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    path, sci = _uncal(tmp_path)
    with datamodels.open(path) as model:
        assert type(model).__name__ == "Level1bModel"
        assert model.meta.instrument.detector == "NRCA1"
        assert model.meta.subarray.xstart == 1025
        np.testing.assert_array_equal(model.data, sci.astype(np.uint16))
    rate = xr.Dataset(
        {
            name: (("y", "x"), da.full((12, 17), i, dtype, chunks=5))
            for i, (name, dtype) in enumerate(
                [
                    ("sci", np.float32),
                    ("err", np.float32),
                    ("dq", np.uint32),
                    ("var_poisson", np.float32),
                    ("var_rnoise", np.float32),
                ]
            )
        },
        attrs=open_exposure(path).attrs,
    )
    rate = rate.assign(dq=rate.dq | np.uint32(2**31))
    out = tmp_path / product_name(rate.attrs["meta"], "rate")
    compute_products([fits_product(rate, out, "rate")], progress=False)
    assert out.name == "jw01_nrca1_rate.fits"
    with datamodels.open(out) as model:
        assert type(model).__name__ == "ImageModel"
        assert model.data.shape == (12, 17) and np.all(model.dq == 2**31 + 2)
    util = pytest.importorskip("stdatamodels.jwst.datamodels.util")
    flat = util.read_metadata(out)  # what jwst 3 reads first from a pipeline input
    assert flat["meta.instrument.detector"] == "NRCA1" and flat["meta.exposure.ngroups"] == 3
    back = open_product(out)
    assert back.dq.dtype == np.uint32 and int(back.dq.values[0, 0]) == 2**31 + 2


def test_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    path, _ = _uncal(tmp_path)
    before = path.read_bytes()
    ds = open_exposure(path)
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        compute_products([fits_product(ds, path, "uncal")], progress=False)
    assert path.read_bytes() == before


def test_failed_compute_leaves_no_partial_file(tmp_path: Path) -> None:
    def boom(block: np.ndarray) -> np.ndarray:
        raise RuntimeError("tile failed")

    ds = make_exposure(np.zeros((1, 2, 8, 8)), chunks=4)
    ds = ds.assign(sci=ds.sci.copy(data=ds.sci.data.map_blocks(boom, dtype=np.float32)))
    with pytest.raises(StepError, match="tile failed"):
        compute_products([fits_product(ds, tmp_path / "x_uncal.fits", "uncal")], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    ds = make_exposure(np.zeros((1, 2, 4, 4)))
    with pytest.raises(OutputError, match="cannot create output directory"):
        compute_products([fits_product(ds, blocker / "out" / "x_uncal.fits", "uncal")], progress=False)
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"hello, not fits" * 300, "not a FITS file"),
    ],
)
def test_bad_input_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad_uncal.fits"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_exposure(path)


def test_missing_keyword_and_wrong_dims(tmp_path: Path) -> None:
    path, _ = _uncal(tmp_path)
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["READPATT"]
    with pytest.raises(InputError, match="missing required keyword READPATT"):
        open_exposure(path)
    flat = tmp_path / "flat_uncal.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 4), np.uint16), name="SCI")]).writeto(flat)
    with fits.open(path) as hdul:
        hdr = hdul[0].header.copy()
    hdr["READPATT"] = "RAPID"
    fits.HDUList(
        [fits.PrimaryHDU(header=hdr), fits.ImageHDU(np.zeros((4, 4), np.uint16), name="SCI")]
    ).writeto(flat, overwrite=True)
    with pytest.raises(InputError, match="SCI has 2 dimensions, expected 4"):
        open_exposure(flat)
    hdr["NGROUPS"], hdr["NINTS"] = 1, 1
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(np.zeros((1, 1, 4, 4)), name="SCI")]).writeto(
        flat, overwrite=True
    )
    with pytest.raises(InputError, match="BITPIX = -64, expected 16"):
        open_exposure(flat)


def test_keyword_table_round_trip() -> None:
    meta = {
        "instrument": {"name": "NIRCAM", "detector": "NRCB3"},
        "exposure": {"ngroups": 7, "zero_frame": True},
        "wcsinfo": {"ra_ref": 10.5},
        "cal_step": {"jump": "COMPLETE"},
        "ref_file": {"gain": {"name": "crds://jwst_nircam_gain_0001.fits"}},
    }
    primary = fits.Header([(k, v, c) for k, v, c in meta_to_cards(meta, "PRIMARY")])
    sci = fits.Header([(k, v, c) for k, v, c in meta_to_cards(meta, "SCI")])
    assert primary["S_JUMP"] == "COMPLETE" and sci["RA_REF"] == 10.5 and "RA_REF" not in primary
    back, extra = header_to_meta(primary, sci)
    assert back == meta and extra == []
    assert len({k.keyword for k in KEYWORDS}) == len(KEYWORDS)


def test_zarr_round_trip_keeps_data_and_meta(tmp_path: Path) -> None:
    path, _ = _uncal(tmp_path)
    ds = open_exposure(path, tile=6)
    store = tmp_path / "x_ramp.zarr"
    compute_products([ZarrProduct(ds, store)], progress=False)
    back = open_zarr(store)
    assert back.attrs["meta"] == ds.attrs["meta"]
    xr.testing.assert_identical(back.drop_attrs(), ds.drop_attrs())
    assert back.sci.chunks == ds.sci.chunks


def test_xarray_backend_matches_reader(tmp_path: Path) -> None:
    path, _ = _uncal(tmp_path)
    other, _ = _uncal(tmp_path, "jw02_nrca1_uncal.fits")
    ds = xr.open_dataset(path, engine="webbflow", chunks={}, tile=6)
    ours = open_exposure(path, tile=6)
    xr.testing.assert_identical(ds.drop_attrs(), ours.drop_attrs())
    assert ds.sci.chunks == ours.sci.chunks
    both = xr.open_mfdataset(
        [path, other], engine="webbflow", combine="nested", concat_dim="exposure", tile=6
    )
    assert both.sci.shape == (2, 2, 3, 12, 17)
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(both.sci[0].values, ours.sci.values)


def test_read_headers_without_data(tmp_path: Path) -> None:
    path, _ = _uncal(tmp_path)
    meta, _, extensions = read_headers(path)
    assert extensions[:2] == ["PRIMARY", "SCI"] and meta["instrument"]["name"] == "NIRCAM"
