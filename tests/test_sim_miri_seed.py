"""MIRI imaging seed: configuration, SIAF geometry, poppy PSF, thermal background and seed image."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from webbflow.detectors import MIRI_SUBARRAYS, MIRIMAGE, miri_frame_time
from webbflow.errors import InputError
from webbflow.sim import psf as psf_mod
from webbflow.sim.background import background_rate, band_background
from webbflow.sim.config import config_from_dict, dump_config, load_config
from webbflow.sim.fluxcal import countrate, filter_info, known_elements
from webbflow.sim.geometry import Geometry, Pointing
from webbflow.sim.meta import Identity, miri_exposure_meta
from webbflow.sim.scene import build_scene, scene_kernel

pysiaf = pytest.importorskip("pysiaf")

MIRI_FILTERS = ("F560W", "F770W", "F1000W", "F1130W", "F1280W", "F1500W", "F1800W", "F2100W", "F2550W")
POINTING = Pointing(202.47, 47.19, 250.0)


@functools.cache
def miri_siaf() -> Any:
    return pysiaf.Siaf("MIRI")


def sky_sep_mas(ra1: Any, dec1: Any, ra2: Any, dec2: Any) -> np.ndarray:
    dra = (np.asarray(ra1) - np.asarray(ra2) + 180.0) % 360.0 - 180.0
    return np.hypot(dra * np.cos(np.radians(dec2)), np.asarray(dec1) - np.asarray(dec2)) * 3.6e6


# --- configuration ---------------------------------------------------------------------------


def test_config_accepts_miri_detector_and_subarray() -> None:
    cfg = config_from_dict(
        {
            "instrument": "miri",
            "detector": "MIRIM",
            "subarray": "sub256",
            "filter": "f770w",
            "readout": {"ngroups": 50, "nints": 5},
        }
    )
    assert (cfg.aperture, cfg.detector, cfg.subarray) == ("MIRIM_SUB256", "MIRIMAGE", "SUB256")
    assert (cfg.filter, cfg.pupil, cfg.readout.readpatt) == ("F770W", "", "FASTR1")  # JDox default
    assert (cfg.readout.ngroups, cfg.readout.nints) == (50, 5)
    assert cfg.uncal_name.endswith("_mirimage_uncal.fits")
    full = config_from_dict(
        {
            "instrument": "MIRI",
            "aperture": "MIRIM_FULL",
            "filter": "F2550W",
            "readout": {"readpatt": "SLOWR1"},
        }
    )
    assert (full.subarray, full.readout.readpatt) == ("FULL", "SLOWR1")
    again = config_from_dict(yaml.safe_load(dump_config(cfg)))  # what `dump_config` writes reads back
    assert again.model_dump(exclude={"notes"}) == cfg.model_dump(exclude={"notes"})


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"filter": "F444W"}, "filter", "not a MIRI imager filter"),
        (
            {"filter": "F770W", "subarray": "SUB128", "readout": {"readpatt": "SLOWR1"}},
            "readout.readpatt",
            "full",
        ),
        ({"filter": "F770W", "readout": {"readpatt": "RAPID"}}, "readout.readpatt", "MIRI readout"),
        ({"filter": "F770W", "subarray": "ILLUM"}, "aperture", "MIRI imager subarray"),
        ({"filter": "F770W", "pupil": "F200W"}, "pupil", "no pupil wheel"),
        ({"filter": "F770W", "detector": "NRCA1"}, "detector", "MIRIMAGE"),
        ({"filter": "F770W", "reffiles": {"superbias": "__file__"}}, "reffiles.superbias", "near-infrared"),
    ],
)
def test_config_rejects_bad_miri_combinations(data: dict[str, Any], key: str, words: str) -> None:
    data = {"instrument": "MIRI", "detector": "MIRIMAGE", **data}
    if "reffiles" in data:
        data["reffiles"] = {k: __file__ for k in data["reffiles"]}
    with pytest.raises(InputError) as err:
        config_from_dict(data, "m.yaml")
    message = str(err.value)
    assert message.startswith(f"m.yaml: {key}: ") and words in message and "\n" not in message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"aperture": "NRCA5_FULL", "filter": "F770W"}, "filter"),
        ({"aperture": "NRCA5_FULL", "filter": "F444W", "detector": "NRCALONG"}, "detector"),
        ({"aperture": "MIRIM_FULL", "filter": "F444W"}, "aperture"),
        ({"aperture": "NRCA5_FULL", "filter": "F444W", "reffiles": {"rscd": __file__}}, "reffiles.rscd"),
    ],
)
def test_config_rejects_miri_things_on_nircam(data: dict[str, Any], key: str) -> None:
    with pytest.raises(InputError, match=rf"^n\.yaml: {key}: "):
        config_from_dict({"instrument": "NIRCAM", **data}, "n.yaml")


def test_mirage_style_yaml_reads_miri(tmp_path: Path) -> None:
    path = tmp_path / "miri.yaml"
    path.write_text(
        "Inst: {instrument: MIRI, mode: imaging}\n"
        "Readout: {readpatt: FASTR1, ngroup: 20, nint: 3, array_name: MIRIMAGE,\n"
        "          filter: F1000W, pupil: CLEAR}\n"
        "Telescope: {ra: 10.0, dec: 20.0, rotation: 30.0}\n"
        "simSignals: {bkgdrate: medium}\n"
    )
    cfg = load_config(path)
    assert (cfg.instrument, cfg.aperture, cfg.filter, cfg.pupil) == ("MIRI", "MIRIM_FULL", "F1000W", "")
    assert (cfg.readout.readpatt, cfg.readout.ngroups, cfg.readout.nints) == ("FASTR1", 20, 3)
    assert cfg.background.level == "medium"


# --- geometry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["MIRIM_FULL", "MIRIM_SUB256", "MIRIM_BRIGHTSKY", "MIRIM_SUB64", "MIRIM_MASK1065"]
)
def test_geometry_agrees_with_pysiaf(name: str) -> None:
    """Sky positions of full-frame pixels (incl. the 4 left reference columns) vs pysiaf, same attitude."""
    g = Geometry.from_aperture(name, POINTING)
    sub = MIRI_SUBARRAYS[name.removeprefix("MIRIM_")]
    assert (g.instrument, g.detector, g.subarray_name) == ("MIRI", "MIRIMAGE", sub.name)
    assert g.window == (sub.xstart, sub.ystart, sub.xsize, sub.ysize)
    full = copy.deepcopy(miri_siaf()["MIRIM_FULL"])
    full.set_attitude_matrix(np.array(g._attitude))
    assert (full.XSciSize, full.YSciSize) == (MIRIMAGE.nx, MIRIMAGE.ny) == (1032, 1024)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 1031, 300), rng.uniform(0, 1023, 300)
    assert np.max(sky_sep_mas(*g.pixel_to_sky(x, y), *full.sci_to_sky(x + 1, y + 1))) < 1.0
    # the exposure aperture's reference point is at the pointing (PA_V3 convention of Mirage)
    assert sky_sep_mas(*g.pixel_to_sky(*g.reference_pixel), POINTING.ra, POINTING.dec) < 1.0
    # and the subarray's own SIAF frame maps its pixels where the full frame does
    ap = copy.deepcopy(miri_siaf()[name])
    ap.set_attitude_matrix(np.array(g._attitude))
    xs, ys = np.array([1.0, sub.xsize / 2, sub.xsize]), np.array([1.0, sub.ysize / 3, sub.ysize])
    ra, dec = ap.sci_to_sky(xs, ys)
    xf, yf = g.sky_to_pixel(ra, dec)
    np.testing.assert_allclose(xf, xs - 1 + sub.xstart - 1, atol=0.02)
    np.testing.assert_allclose(yf, ys - 1 + sub.ystart - 1, atol=0.02)
    sx, sy = g.pixel_scale()
    assert 0.108 < sx < 0.113 and 0.108 < sy < 0.113  # ~0.11"/px


def test_miri_exposure_meta() -> None:
    ident = Identity("01234", 2, 3)
    m = miri_exposure_meta(
        readpatt="FASTR1", nints=5, ngroups=50, subarray="SUB256", identity=ident,
        date_obs="2026-02-01", time_obs="01:02:03", filter="F770W",
    )  # fmt: skip
    e = m["exposure"]
    assert (m["instrument"]["name"], m["instrument"]["detector"], m["instrument"]["filter"]) == (
        "MIRI", "MIRIMAGE", "F770W",
    )  # fmt: skip
    assert "pupil" not in m["instrument"]
    assert (e["type"], e["readpatt"], e["nframes"], e["groupgap"], e["nsamples"]) == (
        "MIR_IMAGE",
        "FASTR1",
        1,
        0,
        1,
    )
    assert e["frame_time"] == e["group_time"] == pytest.approx(miri_frame_time("SUB256"))
    assert e["integration_time"] == pytest.approx(49 * 0.29952, rel=1e-5)
    window = {"xstart": 413, "ystart": 51, "xsize": 256, "ysize": 256}
    assert m["subarray"] == {"name": "SUB256", **window, "fastaxis": 1, "slowaxis": 2}
    slow = miri_exposure_meta(
        readpatt="SLOWR1", nints=1, ngroups=5, subarray="FULL", identity=ident,
        date_obs="2026-02-01", time_obs="01:02:03", filter="F2550W",
    )  # fmt: skip
    assert slow["exposure"]["nsamples"] == 9 and slow["exposure"]["frame_time"] == pytest.approx(23.88992)


# --- PSF --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def miri_psfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, psf_mod.PSF]:
    pytest.importorskip("poppy")
    mp = pytest.MonkeyPatch()
    mp.setenv("WEBBFLOW_CACHE", str(tmp_path_factory.mktemp("psfcache")))
    try:
        return {f: psf_mod.get_psf("MIRI", "MIRIMAGE", f, "") for f in ("F770W", "F2100W")}
    finally:
        mp.undo()


def _fwhm_px(p: psf_mod.PSF) -> float:
    """FWHM of the ePSF core, detector pixels: diameter of the circle whose area is above half peak."""
    above = np.count_nonzero(p.data >= p.data.max() / 2) / p.oversample**2  # px^2
    return float(2.0 * np.sqrt(above / np.pi))


def _encircled(p: psf_mod.PSF, radius_px: float) -> float:
    n = p.data.shape[0]
    yy, xx = np.indices(p.data.shape)
    r = np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2) / p.oversample
    return float(p.data[r <= radius_px].sum() / p.oversample**2)


@pytest.mark.parametrize("filt", ["F770W", "F2100W"])
def test_psf_fwhm_is_diffraction_limited(filt: str, miri_psfs: dict[str, psf_mod.PSF]) -> None:
    p = miri_psfs[filt]
    info = filter_info("MIRI", filt)
    lam_over_d = info.pivot_um * 1e-6 / 6.5 * 206264.806 / p.pixel_scale  # px
    assert p.pixel_scale == pytest.approx(0.1108) and p.meta["source"] == "poppy"
    assert _fwhm_px(p) == pytest.approx(1.03 * lam_over_d, rel=0.15)
    # first dark ring of the (hexagonal, obscured) aperture: ~70-84 % inside, most of the flux in the field
    ee = _encircled(p, 1.22 * lam_over_d)
    assert 0.6 < ee < 0.86
    assert 0.9 < p.enclosed <= 1.0
    assert np.all(np.diff([_encircled(p, r) for r in (1, 2, 4, 8, 16)]) > 0)


def test_psf_widens_with_wavelength(miri_psfs: dict[str, psf_mod.PSF]) -> None:
    short, long = miri_psfs["F770W"], miri_psfs["F2100W"]
    ratio = _fwhm_px(long) / _fwhm_px(short)
    pivots = filter_info("MIRI", "F2100W").pivot_um / filter_info("MIRI", "F770W").pivot_um
    assert ratio == pytest.approx(pivots, rel=0.15)
    assert _encircled(short, 3.0) > _encircled(long, 3.0) + 0.2


# --- background -------------------------------------------------------------------------------


def test_background_rises_with_wavelength_and_is_in_documented_range() -> None:
    assert known_elements("MIRI") == MIRI_FILTERS
    infos = [filter_info("MIRI", f) for f in MIRI_FILTERS]
    mjysr = np.array([band_background("low", i) for i in infos])
    assert np.all(np.diff(mjysr) > 0)  # surface brightness: zodi rising to ~12 um, then the telescope
    rate = {f: background_rate("low", i, i.pixel_area_sr) for f, i in zip(MIRI_FILTERS, infos, strict=True)}
    assert 10 < rate["F770W"] < 100  # tens of e-/s/pix
    assert 1000 < rate["F2550W"] < 10000  # thousands
    assert rate["F560W"] < rate["F770W"] < rate["F1500W"] < rate["F2100W"] < rate["F2550W"]
    # zodiacal light scales with the level; the telescope's own emission (F2550W) does not
    f770, f2550 = infos[1], infos[-1]
    hi770 = background_rate("high", f770, f770.pixel_area_sr) / rate["F770W"]
    hi2550 = background_rate("high", f2550, f2550.pixel_area_sr) / rate["F2550W"]
    assert hi770 == pytest.approx(3.31, rel=0.01)
    assert 1.0 < hi2550 < 1.1
    assert background_rate(12.0, f770, f770.pixel_area_sr) == pytest.approx(
        rate["F770W"] * 12.0 / band_background("low", f770), rel=1e-9
    )


# --- seed image -------------------------------------------------------------------------------


def test_seed_of_a_few_stars_sums_to_catalog_rates(tmp_path: Path, miri_psfs: dict[str, psf_mod.PSF]) -> None:
    g = Geometry.from_aperture("MIRIM_FULL", POINTING)
    xs, ys = np.array([500.0, 700.3, 850.6, 950.2]), np.array([200.0, 512.4, 800.7, 90.1])
    ra, dec = g.pixel_to_sky(xs, ys)
    mags = np.array([18.0, 19.0, 20.0, 21.5])
    lines = "".join(
        f"{i + 1} {a:.9f} {d:.9f} {m}\n" for i, (a, d, m) in enumerate(zip(ra, dec, mags, strict=True))
    )
    cat = tmp_path / "stars.cat"
    cat.write_text("# position_RA_Dec\n# abmag\nindex x_or_RA y_or_Dec miri_f770w_magnitude\n" + lines)
    psf = miri_psfs["F770W"]
    info = filter_info("MIRI", "F770W")
    scene = build_scene(
        {"point": [cat]}, geometry=g, det=MIRIMAGE, instrument="MIRI", filter="F770W", pupil="",
        psf=psf, background=0.0, threshold=1e-3,
    )  # fmt: skip
    assert len(scene.points) == 4
    y, x = np.arange(MIRIMAGE.ny), np.arange(MIRIMAGE.nx)
    tile = scene_kernel(y=y, x=x, scene=scene)
    assert tile.seed.shape == (1024, 1032)
    expected = countrate(mags, "abmag", info) * psf.enclosed
    for k in range(4):
        cy, cx = round(ys[k]), round(xs[k])
        box = tile.seed[cy - 50 : cy + 51, cx - 50 : cx + 51].astype(np.float64)
        assert box.sum() == pytest.approx(expected[k], rel=2e-3)
        assert tile.segmap[cy, cx] == k + 1
        # the star's peak is where the catalogue's sky position lands
        py, px = np.unravel_index(np.argmax(box), box.shape)
        assert abs(py - 50 + cy - ys[k]) <= 0.5 + 1e-6 and abs(px - 50 + cx - xs[k]) <= 0.5 + 1e-6
    assert tile.seed.sum() == pytest.approx(expected.sum(), rel=2e-3)
    # sky everywhere but MIRI's reference columns (no reference rows on MIRI)
    sky = scene_kernel(y=y[:8], x=x, scene=build_scene(
        {}, geometry=g, det=MIRIMAGE, instrument="MIRI", filter="F770W", pupil="",
        psf=psf, background=30.0, threshold=1e-3, pixel_area=False,
    )).seed  # fmt: skip
    assert np.all(sky[:, :4] == 0) and np.all(sky[:, 1028:] == 0)
    np.testing.assert_allclose(sky[:, 4:1028], 30.0)
