"""End-to-end tests of the simulator: config → lazy exposure → products, reproducibility, CLI."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
from astropy.io import fits

from webbflow.cli.main import main
from webbflow.engine.execute import scheduler
from webbflow.graphs.runner import RunOptions, run_simulate
from webbflow.graphs.simulate import build_simulation, simulate
from webbflow.io.fits_reader import open_exposure
from webbflow.io.zarr_store import open_zarr
from webbflow.sim.config import SimConfig, config_from_dict, load_config
from webbflow.sim.field import write_field
from webbflow.testing import raise_if_dask_computes

DATA = Path(__file__).parent / "data"
RA, DEC = 53.1625, -27.7914


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_field(
        tmp_path_factory.mktemp("field"), ra=RA, dec=DEC, width_arcsec=30, n_stars=60, n_galaxies=15, seed=4
    )


def config(field: Any, **changes: Any) -> SimConfig:
    data: dict[str, Any] = {
        "instrument": "NIRCAM",
        "aperture": "NRCA1_SUB640",
        "filter": "F200W",
        "pupil": "CLEAR",
        "readout": {"readpatt": "RAPID", "ngroups": 3},
        "pointing": {"ra": RA, "dec": DEC, "v3pa": 15.0},
        "catalogs": {"point": [field.point], "galaxy": [field.galaxy]},
        "cosmic_rays": {"environment": "SUNMIN", "scale": 5.0},
        "seed": 11,
    }
    data.update(changes)
    return config_from_dict(data)


def test_simulate_is_lazy(field: Any) -> None:
    with raise_if_dask_computes():
        ds = simulate(config(field))
    assert ds.sci.dims == ("integration", "group", "y", "x")
    assert ds.sci.shape == (1, 3, 640, 640)
    assert ds.groupdq.dtype == np.uint8 and ds.pixeldq.dtype == np.uint32
    meta = ds.attrs["meta"]
    assert meta["subarray"]["name"] == "SUB640"
    assert meta["exposure"]["readpatt"] == "RAPID"
    assert meta["wcsinfo"]["ra_ref"] == pytest.approx(RA)
    assert meta["filename"].endswith("_nrca1_uncal.fits")


def test_bit_identical_on_any_tiling_and_scheduler(field: Any) -> None:
    """DESIGN §6: the same seed gives the same bytes whatever the tiles and workers."""
    cfg = config(field)
    ref = build_simulation(cfg, tile=256).exposure[["sci", "seed", "segmap"]]
    with dask.config.set(scheduler="sync"):
        whole = ref.compute()
    for tile in (512, 1024):
        other = build_simulation(cfg, tile=tile).exposure[["sci", "seed", "segmap"]]
        assert other.sci.data.numblocks != ref.sci.data.numblocks
        got = other.compute(scheduler="threads")
        for name in ("sci", "seed", "segmap"):
            np.testing.assert_array_equal(
                got[name].values, whole[name].values, err_msg=f"{name}, tile {tile}"
            )
    with scheduler("local:2", progress=False) as client:
        assert client is not None
        got = client.compute(build_simulation(cfg, tile=256).exposure.sci.data).result()
    np.testing.assert_array_equal(got, whole.sci.values)
    other_seed = build_simulation(config(field, seed=12), tile=256).exposure.sci.values
    assert not np.array_equal(other_seed, whole.sci.values)


def test_products_and_jwst_readable(field: Any, tmp_path: Path) -> None:
    cfg = config(field)
    output = cfg.output.model_validate({"products": ["uncal", "linear", "seed"], "zarr": True})
    cfg = cfg.model_copy(update={"output": output})
    paths = run_simulate([cfg], RunOptions(output_dir=tmp_path, progress=False))
    names = sorted(p.name for p in paths)
    root = cfg.uncal_name.removesuffix("_uncal.fits")
    assert names == sorted(
        [
            f"{root}_uncal.fits",
            f"{root}_linear.fits",
            f"{root}_F200W_CLEAR_final_seed_image.fits",
            f"{root}_sim.zarr",
        ]
    )
    uncal = tmp_path / f"{root}_uncal.fits"
    with fits.open(uncal) as hdul:
        assert hdul["SCI"].data.dtype.kind == "u" and hdul["SCI"].data.shape == (1, 3, 640, 640)
        assert hdul[0].header["SIMULATD"] and hdul[0].header["SUBARRAY"] == "SUB640"
        assert hdul["SCI"].header["RA_REF"] == pytest.approx(RA)
    with fits.open(tmp_path / f"{root}_F200W_CLEAR_final_seed_image.fits") as hdul:
        assert hdul[0].header["UNITS"] == "ADU/sec"
        assert hdul["SEGMAP"].data.max() > 0
        assert np.isfinite(hdul["DATA"].data).all()
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    with datamodels.open(uncal) as model:
        assert model.meta.instrument.detector == "NRCA1"
        assert model.meta.wcsinfo.v2_ref == pytest.approx(cfg_v2(cfg), abs=1e-3)
        assert model.data.shape == (1, 3, 640, 640)
    with datamodels.RampModel(str(tmp_path / f"{root}_linear.fits")) as ramp:
        assert ramp.meta.cal_step.linearity == "COMPLETE"
    reread = open_exposure(uncal)
    np.testing.assert_array_equal(reread.sci.values, build_simulation(cfg).exposure.sci.values)
    store = open_zarr(tmp_path / f"{root}_sim.zarr")  # chunks made regular for Zarr
    np.testing.assert_array_equal(store.sci.values, reread.sci.values)
    assert store.attrs["meta"]["subarray"]["name"] == "SUB640"


def cfg_v2(cfg: SimConfig) -> float:
    from webbflow.sim.geometry import Geometry, Pointing

    geo = Geometry.from_aperture(cfg.aperture, Pointing(RA, DEC, 15.0))
    return float(geo.meta()["wcsinfo"]["v2_ref"])


def test_real_dark_ramp_is_rearranged(field: Any, tmp_path: Path) -> None:
    """A RAPID dark becomes a BRIGHT2 ramp: group g is the mean of frames 2g, 2g+1."""
    dark_cfg = config(
        field,
        aperture="NRCA1_SUB160",
        readout={"readpatt": "RAPID", "ngroups": 10},
        effects={"sources": False, "background": False, "cosmic_rays": False},
        observation={"exposure": 9},
        output={"products": ["uncal"]},
    )
    [dark] = run_simulate([dark_cfg], RunOptions(output_dir=tmp_path, progress=False))
    cfg = config(
        field,
        aperture="NRCA1_SUB160",
        readout={"readpatt": "BRIGHT2", "ngroups": 5},
        effects={"sources": False, "background": False, "cosmic_rays": False},
        dark_ramp=str(dark),
    )
    ds = simulate(cfg)
    raw = open_exposure(dark).sci.values.astype(np.float64)
    expected = np.round(raw.reshape(1, 5, 2, 160, 160).mean(axis=2))
    np.testing.assert_array_equal(ds.sci.values, expected)
    with pytest.raises(Exception, match="spans 12 frames"):
        simulate(config(field, aperture="NRCA1_SUB160", readout={"readpatt": "BRIGHT2", "ngroups": 6},
                        dark_ramp=str(dark)))  # fmt: skip


def test_cli_simulate_and_calibrate(field: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "exp.yaml"
    shutil.copy(field.point, tmp_path / "stars.cat")
    cfg_path.write_text(
        "instrument: NIRCAM\naperture: NRCA1_SUB160\nfilter: F200W\n"
        "readout: {readpatt: RAPID, ngroups: 4}\n"
        f"pointing: {{ra: {RA}, dec: {DEC}}}\ncatalogs: {{point: [stars.cat]}}\n"
    )
    out = tmp_path / "out"
    assert main(["simulate", str(cfg_path), "-o", str(out), "--calibrate", "-q", "--seed", "3"]) == 0
    printed = capsys.readouterr().out.split()
    assert any(p.endswith("_uncal.fits") for p in printed)
    assert any(p.endswith("_rate.fits") for p in printed)
    assert len(list(out.glob("*.fits"))) == 4  # uncal, seed, rate, rateints
    with fits.open(next(out.glob("*_uncal.fits"))) as hdul:
        assert hdul[0].header["SIMSEED"] == 3


def test_cli_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("instrument: NIRCAM\naperture: NRCA1_FULL\nfilter: F200W\nreadout: {ngroup: 4}\n")
    assert main(["simulate", str(bad), "-o", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ngroup" in err and "ngroups" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    assert main(["simulate", str(tmp_path / "missing.yaml")]) != 0
    assert "missing.yaml" in capsys.readouterr().err


def test_existing_product_is_not_overwritten(field: Any, tmp_path: Path) -> None:
    cfg = config(field, aperture="NRCA1_SUB160")
    run_simulate([cfg], RunOptions(output_dir=tmp_path, progress=False))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(Exception, match="exists"):
        run_simulate([cfg], RunOptions(output_dir=tmp_path, progress=False))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nircam_nrcb5_f444w.yaml", "niriss_nis_f150w.yaml", "fgs_fgs1_full.yaml"])
def test_mirage_yaml_runs_unchanged(name: str, tmp_path: Path) -> None:
    """A Mirage input file of each instrument runs as it is, with no Mirage data installed."""
    src = DATA / "mirage" / name
    cfg = load_config(src)
    assert any("MIRAGE_DATA" in n or "not found" in n or "webbflow" in n for n in cfg.notes)
    paths = run_simulate([cfg], RunOptions(output_dir=tmp_path, progress=False))
    uncal = next(p for p in paths if p.name.endswith("_uncal.fits"))
    ds = open_exposure(uncal)
    assert ds.sci.shape[-2:] == (2048, 2048)
    assert ds.attrs["meta"]["instrument"]["detector"] == cfg.detector
    sci = ds.sci.isel(integration=0, group=-1).values
    assert 1000 < np.median(sci) < 40000
