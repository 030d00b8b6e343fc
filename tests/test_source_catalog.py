"""The Image3 source_catalog step on a synthetic NIRCam F200W mosaic with known sources."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy import units as u
from astropy.modeling import models
from astropy.table import QTable
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs

from webbflow.sim.psf import get_psf
from webbflow.sim.render import render_points, render_sersic
from webbflow.steps.source_catalog import (
    SourceCatalogStep,
    psf_aperture_params,
    source_catalog,
    to_abmag,
    write_catalog,
)
from webbflow.steps.source_catalog.background import Mesh, box_edges, make_mesh
from webbflow.steps.source_catalog.step import wcs_pixel_area_sr
from webbflow.testing import raise_if_dask_computes

SCALE = 0.0311  # arcsec / pixel
PIXAR_SR = (SCALE / 206264.80624709636) ** 2
NY = NX = 600
SKY, NOISE = 0.3, 0.02  # MJy/sr
RA0, DEC0 = 53.16, -27.78


def tan_wcs(ny: int, nx: int) -> gwcs_wcs.WCS:
    """A north-up TAN gwcs: 0-based pixel (x, y) -> (ra, dec) deg."""
    deg = SCALE / 3600.0
    shift = models.Shift(-(nx - 1) / 2.0) & models.Shift(-(ny - 1) / 2.0)
    scale = models.Scale(-deg) & models.Scale(deg)  # RA increases to the left
    sky = models.Pix2Sky_TAN() | models.RotateNative2Celestial(RA0, DEC0, 180.0)
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    world = cf.CelestialFrame(
        reference_frame=__import__("astropy.coordinates").coordinates.ICRS(), name="world"
    )
    w = gwcs_wcs.WCS([(detector, shift | scale | sky), (world, None)])
    w.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return w


@pytest.fixture(scope="module")
def psf():
    return get_psf("NIRCAM", "NRCA1", "F200W", "CLEAR")


@pytest.fixture(scope="module")
def truth(psf):
    """Point sources on a jittered grid (Jy) and one extended galaxy."""
    rng = np.random.default_rng(42)
    gy, gx = np.mgrid[50:560:72, 50:560:72]
    x = gx.ravel() + rng.uniform(-8, 8, gx.size)
    y = gy.ravel() + rng.uniform(-8, 8, gx.size)
    # one grid point is replaced by the galaxy
    gal = (x.size // 2) + 1
    gal_xy = (x[gal], y[gal])
    x, y = np.delete(x, gal), np.delete(y, gal)
    flux_jy = 10 ** rng.uniform(-6.3, -5.0, x.size)  # ~ 2e-7 (ABmag ~25.4) to 1e-5 Jy
    return {"x": x, "y": y, "flux_jy": flux_jy, "gal": gal_xy}


def render(truth, psf, ny=NY, nx=NX, seed=1) -> xr.Dataset:
    to_jy = 1e6 * PIXAR_SR
    image = np.zeros((ny, nx))
    seg = np.zeros((ny, nx), np.int32)
    n = truth["x"].size
    render_points(
        image, seg, 0, 0, truth["x"], truth["y"], truth["flux_jy"] / to_jy, np.arange(1, n + 1), psf, 1e30
    )
    gx, gy = truth["gal"]
    render_sersic(
        image, seg, 0, 0, [gx], [gy], [2e-5 / to_jy], [8.0], [0.3], [30.0], [1.0], [n + 1], psf, 1e30
    )
    rng = np.random.default_rng(seed)
    sci = image + SKY + rng.normal(0.0, NOISE, image.shape)
    err = np.full(image.shape, NOISE)
    meta = {
        "instrument": {"name": "NIRCAM", "detector": "NRCA1", "filter": "F200W", "pupil": "CLEAR"},
        "photometry": {"pixelarea_steradians": PIXAR_SR},
        "filename": "test_i2d.fits",
    }
    ds = xr.Dataset(
        {
            "sci": (("y", "x"), sci.astype(np.float32)),
            "err": (("y", "x"), err.astype(np.float32)),
            "wht": (("y", "x"), np.ones(image.shape, np.float32)),
        },
        coords={"y": np.arange(ny), "x": np.arange(nx)},
    )
    ds.attrs = {"meta": meta, "wcs": tan_wcs(ny, nx)}
    return ds.chunk({"y": 150, "x": 150})


@pytest.fixture(scope="module")
def mosaic(truth, psf):
    return render(truth, psf)


@pytest.fixture(scope="module")
def catalog(mosaic):
    with dask.config.set(scheduler="sync"):
        return source_catalog(mosaic, tile=256, bkg_boxsize=150)


def match(table, truth, tol=1.5):
    """Index of the truth source of each catalogue row (-1 if none within tol px)."""
    x, y = np.asarray(table["xcentroid"]), np.asarray(table["ycentroid"])
    d = np.hypot(x[:, None] - truth["x"][None], y[:, None] - truth["y"][None])
    best = d.argmin(axis=1)
    return np.where(d[np.arange(len(x)), best] < tol, best, -1)


def test_background_mesh_is_position_only():
    ye, xe = box_edges(100, 40), box_edges(70, 40)
    stats = np.stack(np.meshgrid(np.arange(len(ye) - 1.0), np.arange(len(xe) - 1.0), indexing="ij"), -1)
    mesh = make_mesh(stats, ye, xe, filter_size=1)
    whole, _ = mesh.evaluate(0, 0, (100, 70))
    part, _ = mesh.evaluate(37, 11, (20, 30))
    np.testing.assert_array_equal(part, whole[37:57, 11:41])  # bit-identical in any window
    assert isinstance(mesh, Mesh) and whole.min() == 0.0 and whole.max() == len(ye) - 2


def test_apertures_from_psf(psf):
    ap = psf_aperture_params("NIRCAM", "NRCA1", "F200W", "CLEAR", SCALE, (30, 50, 70))
    assert 0.5 < ap.radii[0] < ap.radii[1] < ap.radii[2] < 5.0
    # the correction of the EE aperture is ~ 1 / EE (pixel sampling moves it by a few per cent)
    for e, c in zip(ap.ee, ap.corrections, strict=True):
        assert c == pytest.approx(100 / e, rel=0.1)
    assert ap.scatter[-1] < 0.005  # the total flux hardly depends on the sub-pixel position
    assert ap.bkg_outer < 64 - 4  # fits in the default halo


def test_positions_fluxes_mags(catalog, truth):
    t = catalog.table
    assert isinstance(t, QTable) and list(t["label"]) == list(range(1, len(t) + 1))
    idx = match(t, truth)
    found = idx >= 0
    assert np.unique(idx[found]).size == found.sum() == truth["x"].size  # every star once
    ti = idx[found]
    flux = t["aper_total_flux"].to_value(u.Jy)[found]
    err = t["aper_total_flux_err"].to_value(u.Jy)[found]
    snr = flux / err
    dx = np.asarray(t["xcentroid"])[found] - truth["x"][ti]
    dy = np.asarray(t["ycentroid"])[found] - truth["y"][ti]
    bright = snr > 50
    assert bright.sum() >= 20
    assert np.abs(dx[bright]).max() < 0.05 and np.abs(dy[bright]).max() < 0.05
    pull = (flux - truth["flux_jy"][ti]) / err
    assert np.mean(np.abs(pull) < 3) >= 0.95, pull
    abmag = np.asarray(t["aper_total_abmag"])[found]
    np.testing.assert_allclose(abmag, -2.5 * np.log10(flux / 3631.0), atol=1e-9)
    np.testing.assert_allclose(abmag, to_abmag(flux, err)[0])
    # sky positions through the gwcs; stars are not extended
    ra, dec = tan_wcs(NY, NX)(truth["x"][ti], truth["y"][ti])
    sep = t["sky_centroid"][found].separation(
        __import__("astropy.coordinates").coordinates.SkyCoord(ra * u.deg, dec * u.deg)
    )
    assert sep.to_value(u.arcsec).max() < 0.05 * SCALE
    assert not np.any(np.asarray(t["is_extended"])[found][bright])


def test_galaxy_is_extended(catalog, truth):
    t = catalog.table
    gx, gy = truth["gal"]
    d = np.hypot(np.asarray(t["xcentroid"]) - gx, np.asarray(t["ycentroid"]) - gy)
    row = int(d.argmin())
    assert d[row] < 1.0
    assert bool(t["is_extended"][row])
    assert t["semimajor_sigma"][row] > 3 * u.pix


def test_tiling_independent(mosaic, catalog):
    with dask.config.set(scheduler="sync"):
        other = source_catalog(mosaic.chunk({"y": 200, "x": 300}), tile=0, bkg_boxsize=150)
    a, b = catalog.table, other.table
    assert len(a) == len(b)
    np.testing.assert_array_equal(a["label"], b["label"])
    np.testing.assert_allclose(a["xcentroid"], b["xcentroid"], rtol=0, atol=1e-9)
    for col in ("aper_total_flux", "aper30_flux", "isophotal_flux", "aper_bkg_flux"):
        np.testing.assert_allclose(a[col].value, b[col].value, rtol=1e-6)
    np.testing.assert_array_equal(a["nn_label"], b["nn_label"])
    sa, sb = dask.compute(catalog.segm.data, other.segm.data, scheduler="sync")
    np.testing.assert_array_equal(sa, sb)
    # the map's labels are the catalogue's: each source's centroid pixel carries its label
    iy = np.floor(np.asarray(a["ycentroid"]) + 0.5).astype(int)
    ix = np.floor(np.asarray(a["xcentroid"]) + 0.5).astype(int)
    assert np.mean(sa[iy, ix] == np.asarray(a["label"])) > 0.95
    assert set(np.unique(sa)) - {0} <= set(np.asarray(a["label"]))


def test_lazy_build_and_ecsv(mosaic, catalog, tmp_path):
    with raise_if_dask_computes():
        out = SourceCatalogStep(tile=256, bkg_boxsize=150)(mosaic)
    assert out.segm.dtype == np.int32 and out.segm.chunks[0][0] == 256
    table, segm = dask.compute(out.attrs["catalog"], out.segm.data, scheduler="sync")
    assert len(table) == len(catalog.table) and segm.shape == (NY, NX) and segm.max() <= len(table)
    path = write_catalog(table, tmp_path / "test_cat.ecsv")
    back = QTable.read(path, format="ascii.ecsv")
    assert back["aper_total_flux"].unit == u.Jy and back.meta["filter"] == "F200W"
    assert back.meta["aperture_ee"] == [30, 50, 70] and "photutils" in back.meta["versions"]
    np.testing.assert_allclose(back["aper70_flux"].value, table["aper70_flux"].value, rtol=1e-6)
    assert not list(tmp_path.glob(".*partial"))


def test_pixel_area_from_wcs():
    assert wcs_pixel_area_sr(tan_wcs(NY, NX), NY, NX) == pytest.approx(PIXAR_SR, rel=1e-6)


_ORACLE = """
import json, sys
import numpy as np
from astropy.table import Table
from stdatamodels.jwst import datamodels
from jwst.source_catalog import SourceCatalogStep
sys.path.insert(0, sys.argv[2])
from test_source_catalog import NX, NY, PIXAR_SR, tan_wcs
work = sys.argv[1]
arrays, ap = np.load(work + "/in.npz"), json.load(open(work + "/ap.json"))
m = datamodels.ImageModel(data=arrays["sci"], err=arrays["err"], wht=arrays["wht"])
ins = m.meta.instrument
ins.name, ins.detector, ins.filter, ins.pupil = "NIRCAM", "NRCA1", "F200W", "CLEAR"
m.meta.exposure.type = "NRC_IMAGE"
m.meta.photometry.pixelarea_steradians = PIXAR_SR
m.meta.bunit_data = m.meta.bunit_err = "MJy/sr"
m.meta.wcs = tan_wcs(NY, NX)
m.meta.wcsinfo.crpix1, m.meta.wcsinfo.crpix2 = (NX + 1) / 2, (NY + 1) / 2
m.meta.resample.pixel_scale_ratio = 1.0
dtype = [("filter", "S12"), ("pupil", "S15"), ("eefraction", "f4"), ("radius", "f4"), ("apcorr", "f4"),
         ("skyin", "f4"), ("skyout", "f4")]
rows = [("F200W", "CLEAR", e / 100, r, c, ap["bkg_aperture_inner_radius"], ap["bkg_aperture_outer_radius"])
        for e, r, c in zip(ap["aperture_ee"], ap["aperture_radii"], ap["aperture_corrections"])]
ref = dict(author="webbflow test", pedigree="DUMMY", useafter="2000-01-01T00:00:00", description="oracle")
apc = datamodels.NrcImgApcorrModel()
apc.apcorr_table = np.array(rows, dtype=dtype)
ab = datamodels.ABVegaOffsetModel()
ab.abvega_offset = Table({"filter": ["F200W"], "pupil": ["CLEAR"], "abvega_offset": [ap["abvega_offset"]]})
for model, reftype, name in ((apc, "APCORR", "apcorr.fits"), (ab, "ABVEGAOFFSET", "abvega.asdf")):
    model.meta.instrument.name, model.meta.reftype = "NIRCAM", reftype
    for k, v in ref.items():
        setattr(model.meta, k, v)
    model.save(work + "/" + name)
step = SourceCatalogStep(override_apcorr=work + "/apcorr.fits", override_abvegaoffset=work + "/abvega.asdf",
                         bkg_boxsize=int(sys.argv[3]))
step.run(m).write(work + "/jwst_cat.ecsv", format="ascii.ecsv")
"""


@pytest.mark.slow
def test_oracle_jwst(mosaic, catalog, tmp_path):
    """jwst's SourceCatalogStep with APCORR/ABVEGAOFFSET files holding our apertures."""
    pytest.importorskip("jwst")
    import json
    import subprocess
    import sys
    from pathlib import Path

    from oracle.jwst_runner import offline_crds_env

    env = {**__import__("os").environ, **offline_crds_env(tmp_path / "crds")}
    np.savez(tmp_path / "in.npz", **{v: mosaic[v].values for v in ("sci", "err", "wht")})
    meta = catalog.table.meta
    apertures = {k: meta[k] for k in meta if "ap" in k or k == "abvega_offset"}
    (tmp_path / "ap.json").write_text(json.dumps(apertures))
    tests = str(Path(__file__).parent)
    run = subprocess.run(
        [sys.executable, "-c", _ORACLE, str(tmp_path), tests, "150"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    theirs, ours = QTable.read(tmp_path / "jwst_cat.ecsv"), catalog.table
    assert len(theirs) == len(ours)
    d = np.hypot(
        np.asarray(ours["xcentroid"])[:, None] - np.asarray(theirs["xcentroid"])[None],
        np.asarray(ours["ycentroid"])[:, None] - np.asarray(theirs["ycentroid"])[None],
    )
    j = d.argmin(axis=1)
    assert np.unique(j).size == len(ours) and d[np.arange(len(ours)), j].max() < 0.2  # moment vs windowed
    for col, tol in (("aper70_flux", 2e-3), ("aper_total_flux", 2e-3), ("isophotal_flux", 1e-2)):
        np.testing.assert_allclose(ours[col].value, theirs[col].value[j], rtol=tol, err_msg=col)
    np.testing.assert_array_equal(ours["is_extended"], theirs["is_extended"][j])


def test_chunked_input_never_whole(mosaic):
    """Every task reads a window of at most (tile + 2 halo)^2 pixels."""
    sizes = []

    def spy(sci, *args, **kwargs):
        sizes.append(sci.shape)
        return {}

    import webbflow.steps.source_catalog.step as step_mod

    original = step_mod.tile_sources
    step_mod.tile_sources = spy
    try:
        with dask.config.set(scheduler="sync"):
            SourceCatalogStep(tile=128, halo=64, bkg_boxsize=150).run(mosaic)
    finally:
        step_mod.tile_sources = original
    assert len(sizes) == 25 and max(max(s) for s in sizes) <= 128 + 2 * 64
    assert isinstance(mosaic.sci.data, da.Array)
