"""Detector geometry: SIAF distortion, attitude, windows, pixel area and WCS metadata."""

from __future__ import annotations

import copy
import functools
import pickle
from importlib import resources
from typing import Any

import numpy as np
import pytest

from webbflow.detectors import DETECTORS
from webbflow.errors import UsageError
from webbflow.sim.geometry import Geometry, Pointing

pysiaf = pytest.importorskip("pysiaf")
from pysiaf.utils import rotations  # noqa: E402

POINTING = Pointing(53.16, -27.78, 45.0)
SIAF_NAME = {"NIRCAM": "NIRCam", "NIRISS": "NIRISS", "FGS": "FGS"}
#: One full-frame aperture per detector.
FULL = {
    "NRCA1": "NRCA1_FULL",
    "NRCA2": "NRCA2_FULL",
    "NRCA3": "NRCA3_FULL",
    "NRCA4": "NRCA4_FULL",
    "NRCALONG": "NRCA5_FULL",
    "NRCB1": "NRCB1_FULL",
    "NRCB2": "NRCB2_FULL",
    "NRCB3": "NRCB3_FULL",
    "NRCB4": "NRCB4_FULL",
    "NRCBLONG": "NRCB5_FULL",
    "NIS": "NIS_CEN",
    "GUIDER1": "FGS1_FULL",
    "GUIDER2": "FGS2_FULL",
}


@functools.cache
def siaf(instrument: str) -> Any:
    """pysiaf's ``Siaf`` of ``instrument`` (INSTRUME spelling), built once."""
    return pysiaf.Siaf(SIAF_NAME.get(instrument, instrument))


def siaf_aperture(geometry: Geometry, name: str) -> Any:
    """A copy of pysiaf's own aperture ``name`` with the geometry's attitude."""
    ap = copy.deepcopy(siaf(geometry.instrument)[name])
    ap.set_attitude_matrix(np.array(geometry._attitude))
    return ap


def sky_sep_arcsec(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray) -> np.ndarray:
    dra = (np.asarray(ra1) - np.asarray(ra2) + 180.0) % 360.0 - 180.0
    return np.hypot(dra * np.cos(np.radians(dec2)), np.asarray(dec1) - np.asarray(dec2)) * 3600.0


def test_full_apertures_map_to_detectors() -> None:
    assert set(FULL) == set(DETECTORS)
    for detector, name in FULL.items():
        g = Geometry.from_aperture(name, POINTING)
        assert (g.detector, g.window, g.subarray_name) == (detector, (1, 1, 2048, 2048), "FULL")


@pytest.mark.parametrize("name", ["NRCA1_FULL", "NRCB5_FULL", "NIS_CEN", "FGS1_FULL", "NRCA3_SUB400P"])
def test_sky_pixel_round_trip(name: str) -> None:
    g = Geometry.from_aperture(name, Pointing(210.0, 54.3, 123.0))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-20, 2068, 2000), rng.uniform(-20, 2068, 2000)
    xb, yb = g.sky_to_pixel(*g.pixel_to_sky(x, y))
    assert np.max(np.abs(xb - x)) < 1e-4 and np.max(np.abs(yb - y)) < 1e-4


@pytest.mark.parametrize("name", ["NRCA1_FULL", "NRCB5_FULL", "NIS_CEN", "FGS2_FULL"])
def test_agrees_with_pysiaf(name: str) -> None:
    """Our polynomial/rotation chain against pysiaf's own transforms, same attitude."""
    g = Geometry.from_aperture(name, Pointing(300.0, -60.0, 250.0))
    ap = siaf_aperture(g, name)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 2047, 500), rng.uniform(0, 2047, 500)
    ra, dec = g.pixel_to_sky(x, y)
    assert np.max(sky_sep_arcsec(ra, dec, *ap.sci_to_sky(x + 1, y + 1))) < 1e-6
    xs, ys = ap.sky_to_sci(ra, dec)  # the SIAF inverse polynomial: 1e-3 (NIRCam) to 0.15 px (FGS)
    assert np.max(np.hypot(xs - 1 - x, ys - 1 - y)) < 0.2


@pytest.mark.parametrize(
    ("name", "reference"), [("NRCA1_FULL", None), ("NRCB5_FULL", None), ("NRCA2_FULL", "NRCALL_FULL")]
)
def test_attitude_follows_mirage_convention(name: str, reference: str | None) -> None:
    """The reference point lands at (ra, dec) and PA of V3 at V1 is v3pa (checked with pysiaf)."""
    p = Pointing(150.1, 70.5, 300.0)
    g = Geometry.from_aperture(name, p, reference=reference)
    att = np.array(g._attitude)
    ref = siaf("NIRCAM")[reference or name]
    ra, dec = (float(v.to_value("deg")) for v in rotations.tel_to_sky(att, ref.V2Ref, ref.V3Ref))
    assert sky_sep_arcsec(ra, dec, p.ra, p.dec) < 1e-6
    assert rotations.posangle(att, 0.0, 0.0) % 360.0 == pytest.approx(p.v3pa, abs=1e-9)
    if reference is None:
        assert sky_sep_arcsec(*g.pixel_to_sky(*g.reference_pixel), p.ra, p.dec) < 1e-6


@pytest.mark.parametrize("name", ["NRCA1_FULL", "NIS_CEN"])
def test_pointing_offset_moves_sources(name: str) -> None:
    """+1″ in Dec moves a fixed source 1″ south relative to the detector.

    The SIAF ideal Y axis is within ~1° of V3 and pixel axes follow the ideal axes for these
    detectors, so at v3pa 0 north is +y and at v3pa 90 (V3 pointing east) north is +x.
    """
    for v3pa, axis in ((0.0, 1), (90.0, 0)):
        g0 = Geometry.from_aperture(name, Pointing(30.0, 20.0, v3pa))
        g1 = Geometry.from_aperture(name, Pointing(30.0, 20.0 + 1 / 3600, v3pa))
        x, y = np.array([300.0, 1024.0, 1800.0]), np.array([200.0, 1024.0, 1900.0])
        moved = np.array(g1.sky_to_pixel(*g0.pixel_to_sky(x, y))) - np.array([x, y])
        scale = g0.pixel_scale()[axis]
        np.testing.assert_allclose(moved[axis], -1.0 / scale, rtol=0.03)
        assert np.all(np.abs(moved[1 - axis]) < 0.03 / scale)


@pytest.mark.parametrize(
    ("name", "detector", "subarray", "window"),
    [
        ("NRCA1_SUB160", "NRCA1", "SUB160", (1889, 1889, 160, 160)),
        ("NRCB5_SUB160", "NRCBLONG", "SUB160", None),
        ("NRCA3_SUB400P", "NRCA3", "SUB400P", None),
        ("NIS_SUB64", "NIS", "SUB64", (1985, 1985, 64, 64)),
        ("FGS2_SUB128CNTR", "GUIDER2", "SUB128CNTR", (961, 961, 128, 128)),
        ("NRCA5_GRISM256_F444W", "NRCALONG", "SUBGRISM256", None),
    ],
)
def test_subarray_windows(
    name: str, detector: str, subarray: str, window: tuple[int, int, int, int] | None
) -> None:
    g = Geometry.from_aperture(name, POINTING)
    assert (g.detector, g.subarray_name) == (detector, subarray)
    ap = siaf(g.instrument)[name]
    assert g.window[2:] == (ap.XSciSize, ap.YSciSize)
    if window is not None:
        assert g.window == window
    xs, ys = g.window[0], g.window[1]
    assert xs >= 1 and xs + g.window[2] - 1 <= 2048 and ys >= 1 and ys + g.window[3] - 1 <= 2048
    assert g.meta()["wcsinfo"]["crpix1"] == pytest.approx(ap.XSciRef, abs=0.2)
    if subarray not in ("SUB400P", "SUBGRISM256"):  # SIAF fits these apart from the full frame
        # the subarray's own SIAF distortion puts its corners and reference point where we do
        sub = siaf_aperture(g, name)
        u = np.array([1.0, ap.XSciSize, ap.XSciRef]), np.array([1.0, ap.YSciSize, ap.YSciRef])
        x, y = g.sky_to_pixel(*sub.sci_to_sky(*u))
        np.testing.assert_allclose(x, u[0] + xs - 2, atol=0.01)
        np.testing.assert_allclose(y, u[1] + ys - 2, atol=0.01)


def test_subarray_names_are_jwst_values() -> None:
    pytest.importorskip("stdatamodels")
    import yaml

    path = resources.files("stdatamodels.jwst.datamodels") / "schemas" / "subarray.schema.yaml"
    schema = yaml.safe_load(path.read_text())
    allowed = {
        v
        for alt in schema["properties"]["meta"]["properties"]["subarray"]["properties"]["name"]["anyOf"]
        for v in alt["enum"]
    }
    names = [
        "NRCA1_SUB160",
        "NRCA3_SUB400P",
        "NRCB1_SUB64P",
        "NRCA5_GRISM128_F322W2",
        "NRCB5_TAPSIMG32",
        "NIS_SUB64",
        "NIS_AMI1",
        "NIS_WFSS64R3",
        "NIS_SOSSTA",
        "FGS1_SUB8LL",
        "FGS2_SUB128CNTR",
        "NRCB1_FULLP",
    ]
    for name in names:
        assert Geometry.from_aperture(name, POINTING).subarray_name in allowed, name


def test_pixel_area_against_sky_corners() -> None:
    """Relative area from the distortion Jacobian = solid angle of the pixel's sky corners."""
    g = Geometry.from_aperture("NRCA1_FULL", POINTING)
    area = g.pixel_area(0, 2048, 0, 2048)
    assert area.dtype == np.float32 and area.shape == (2048, 2048)
    xr, yr = g.reference_pixel
    assert area[int(yr), int(xr)] == pytest.approx(1.0, abs=2e-4)
    assert area.min() < 0.99 and area.max() > 1.01 and area.min() > 0.95 and area.max() < 1.05
    ys, xs = np.array([3, 700, 1500, 2044]), np.array([2040, 10, 1200, 800])
    ra, dec = g.pixel_to_sky(
        xs[:, None] + np.array([-0.5, 0.5, 0.5, -0.5]), ys[:, None] + np.array([-0.5, -0.5, 0.5, 0.5])
    )
    east = ((ra - ra[:, :1] + 180) % 360 - 180) * np.cos(np.radians(dec[:, :1])) * 3600
    north = (dec - dec[:, :1]) * 3600
    quad = 0.5 * np.abs(
        (east[:, 2] * north[:, 1] - east[:, 1] * north[:, 2])
        + (east[:, 3] * north[:, 2] - east[:, 2] * north[:, 3])
    )
    nominal = g.nominal_pixel_area_sr / (np.pi / 180 / 3600) ** 2
    np.testing.assert_allclose(area[ys, xs], quad / nominal, rtol=2e-4)
    sx, sy = g.pixel_scale()
    assert nominal == pytest.approx(sx * sy, rel=2e-3)  # nearly square pixels, tiny skew


def test_pixel_area_is_tile_independent() -> None:
    g = Geometry.from_aperture("NIS_CEN", POINTING)
    whole = g.pixel_area(100, 400, 1700, 2048)
    rows = [(100, 137), (137, 256), (256, 400)]
    cols = [(1700, 1753), (1753, 2048)]
    pieces = np.block([[g.pixel_area(a, b, c, d) for c, d in cols] for a, b in rows])
    assert np.array_equal(whole, pieces)
    with pytest.raises(UsageError, match="pixel_area"):
        g.pixel_area(0, 2049, 0, 10)


def test_north_angle_and_parity() -> None:
    """North along +y at v3pa 0, along +x at v3pa 90; East 90° counter-clockwise of North."""
    for v3pa, expected in ((0.0, 0.0), (90.0, 90.0)):
        g = Geometry.from_aperture("NRCA1_FULL", Pointing(30.0, 20.0, v3pa))
        assert float(g.north_angle(1024.0, 1024.0)) == pytest.approx(expected, abs=1.5)
    for name in FULL.values():
        g = Geometry.from_aperture(name, Pointing(200.0, -45.0, 77.0))
        x, y = np.array([10.0, 1024.0, 2000.0]), np.array([2000.0, 1024.0, 30.0])
        north = g.north_angle(x, y)
        skew = 5.0 if name.startswith("FGS") else 1.0  # the pixel grid is not square on the sky
        for pa in (0.0, 90.0, 210.0):
            diff = g.pixel_angle(pa, x, y) - (90.0 - north + pa)
            assert np.all(np.abs((diff + 180) % 360 - 180) < skew), (name, pa)


def test_pixel_angle_follows_sky_offsets() -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    g = Geometry.from_aperture("NRCB2_FULL", Pointing(10.0, 80.0, 200.0))
    x, y = np.array([500.0, 1600.0]), np.array([1500.0, 400.0])
    start = SkyCoord(*g.pixel_to_sky(x, y), unit="deg")
    for pa in (30.0, 135.0):
        end = start.directional_offset_by(pa * u.deg, 2 * u.arcsec)
        x2, y2 = g.sky_to_pixel(end.ra.deg, end.dec.deg)
        angle = np.degrees(np.arctan2(y2 - y, x2 - x))
        np.testing.assert_allclose(angle, g.pixel_angle(pa, x, y), atol=0.05)


def test_far_positions_are_nan() -> None:
    g = Geometry.from_aperture("NRCA1_FULL", POINTING)
    x, y = g.sky_to_pixel([POINTING.ra, POINTING.ra + 180.0, POINTING.ra], [POINTING.dec, -POINTING.dec, 0.0])
    assert np.isfinite(x[0]) and np.isnan(x[1:]).all() and np.isnan(y[1:]).all()


def test_pickles_small_and_identical() -> None:
    g = Geometry.from_aperture("NRCB5_FULL", POINTING)
    blob = pickle.dumps(g)
    assert len(blob) < 10_000
    h = pickle.loads(blob)
    assert np.array_equal(h.pixel_area(0, 64, 0, 64), g.pixel_area(0, 64, 0, 64))
    assert np.array_equal(h.pixel_to_sky([1.0, 2.0], [3.0, 4.0]), g.pixel_to_sky([1.0, 2.0], [3.0, 4.0]))


def test_errors() -> None:
    with pytest.raises(UsageError, match="did you mean 'NRCA1_FULL'"):
        Geometry.from_aperture("NRCA1_FUL", POINTING)
    with pytest.raises(UsageError, match="not on one"):
        Geometry.from_aperture("NRCALL_FULL", POINTING)
    with pytest.raises(UsageError, match="no pixel window"):
        Geometry.from_aperture("NRCA5_GRISMR_WFSS_F444W_PS", POINTING)
    with pytest.raises(UsageError, match="pointing"):
        Pointing(10.0, 95.0, 0.0)
    with pytest.raises(UsageError, match="pointing"):
        Pointing(float("nan"), 0.0, 0.0)


def test_meta_fits_wcs_matches_near_reference() -> None:
    """The basic FITS WCS in meta agrees with the distortion model near the reference pixel."""
    from astropy.wcs import WCS

    for name in ("NRCA1_FULL", "NRCA3_SUB400P", "NIS_SUB64", "FGS2_SUB128CNTR"):
        g = Geometry.from_aperture(name, Pointing(270.0, 66.0, 200.0))
        meta = g.meta()
        w = meta["wcsinfo"]
        sub = meta["subarray"]
        assert (sub["name"], sub["xstart"], sub["ystart"], sub["xsize"], sub["ysize"]) == (
            g.subarray_name,
            *g.window,
        )
        keys = ("wcsaxes", "crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2", "ctype1", "ctype2")
        keys += ("cunit1", "cunit2", "pc1_1", "pc1_2", "pc2_1", "pc2_2")
        wcs = WCS({k.upper(): w[k] for k in keys})
        xr, yr = g.reference_pixel
        dx, dy = np.array([0.0, 25.0, -25.0, 0.0]), np.array([0.0, 0.0, 25.0, -25.0])
        ra, dec = wcs.wcs_pix2world(xr + dx - g.window[0] + 1, yr + dy - g.window[1] + 1, 0)
        sep = sky_sep_arcsec(ra, dec, *g.pixel_to_sky(xr + dx, yr + dy)) / g.pixel_scale()[0]
        assert sep[0] < 1e-6 and np.all(sep < 0.04 * 25), (name, sep)  # distortion-level only
        assert w["s_region"].startswith("POLYGON ICRS ") and len(w["s_region"].split()) == 10


@pytest.mark.oracle
def test_meta_matches_jwst_v23tosky() -> None:
    """jwst's V2/V3 -> sky model built from our wcsinfo gives our sky positions."""
    pointing_mod = pytest.importorskip("jwst.assign_wcs.pointing")
    from types import SimpleNamespace

    for name, full in (
        ("NRCA1_FULL", "NRCA1_FULL"),
        ("NIS_SUB64", "NIS_CEN"),
        ("FGS2_SUB128CNTR", "FGS2_FULL"),
    ):
        g = Geometry.from_aperture(name, Pointing(5.0, -80.0, 10.0))
        model = SimpleNamespace(meta=SimpleNamespace(wcsinfo=SimpleNamespace(**g.meta()["wcsinfo"])))
        x, y = np.array([0.0, 2047.0, 500.0]), np.array([0.0, 2047.0, 1500.0])
        v2, v3 = siaf(g.instrument)[full].sci_to_tel(x + 1, y + 1)
        ra, dec = pointing_mod.v23tosky(model)(v2, v3)
        assert np.max(sky_sep_arcsec(ra, dec, *g.pixel_to_sky(x, y))) < 1e-6
