"""Source catalogs (webbflow.io.catalogs): Mirage ASCII formats, astropy tables, every error case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from webbflow.errors import InputError, UsageError
from webbflow.io.catalogs import SourceCatalog, check_unique_indices, magnitude_columns, read_catalog
from webbflow.sim.fluxcal import ab_minus_vega, countrate, filter_info

DATA = Path(__file__).parent / "data" / "catalogs"
F200W = {"instrument": "NIRCAM", "filter": "F200W", "pupil": "CLEAR", "detector": "NRCA1"}


def _write(tmp_path: Path, text: str, name: str = "cat.cat") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rates(mags: list[float], system: str, **band: str | None) -> np.ndarray:
    info = filter_info(band["instrument"], band["filter"], band["pupil"])  # type: ignore[arg-type]
    return countrate(np.array(mags), system, info)


# ------------------------------------------------------------------ the example catalogs


def test_point_sources_in_decimal_degrees() -> None:
    cat = read_catalog(DATA / "point_radec_abmag.cat", "point", **F200W)
    assert isinstance(cat, SourceCatalog) and len(cat) == 3 and cat.kind == "point"
    np.testing.assert_array_equal(cat.index, [1, 2, 3])
    assert cat.index.dtype == np.int64
    np.testing.assert_allclose(cat.ra, [53.0886395, 53.0985009, 53.09])
    np.testing.assert_allclose(cat.dec, [-27.8399952, -27.8398137, -27.835])
    assert np.isnan(cat.x).all() and np.isnan(cat.y).all() and not cat.position_pixels
    assert cat.brightness_column == "nircam_f200w_clear_magnitude" and cat.magnitude_system == "abmag"
    np.testing.assert_allclose(cat.countrate, _rates([20.0, 19.2, 24.5], "abmag", **F200W))
    # a brighter magnitude is a proportionally larger rate
    assert cat.countrate[1] / cat.countrate[0] == pytest.approx(10 ** (0.4 * 0.8))
    assert not cat.index.flags.writeable and not cat.countrate.flags.writeable


def test_point_sources_in_sexagesimal_hms_and_vegamag() -> None:
    band = {"instrument": "NIRCAM", "filter": "F150W2", "pupil": "F162M"}
    cat = read_catalog(DATA / "point_sexagesimal.cat", "point", **band)
    # 03h32m21.273s = 53.0886375 deg; -27d50m23.983s = -27.83999528 deg
    np.testing.assert_allclose(cat.ra[0], (3 + 32 / 60 + 21.273 / 3600) * 15, rtol=1e-12)
    np.testing.assert_allclose(cat.dec[0], -(27 + 50 / 60 + 23.983 / 3600), rtol=1e-12)
    assert cat.brightness_column == "nircam_f150w2_f162m_magnitude" and cat.magnitude_system == "vegamag"
    np.testing.assert_allclose(cat.countrate, _rates([18.0, 21.25], "vegamag", **band))


def test_colon_sexagesimal(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "index x_or_RA y_or_Dec magnitude\n1 03:32:21.273 -27:50:23.983 20\n2 00:00:00 +00:30:00 21\n",
    )
    cat = read_catalog(path, "point", **F200W)
    np.testing.assert_allclose(cat.ra, [53.0886375, 0.0], atol=1e-12)
    np.testing.assert_allclose(cat.dec, [-27.839995277777778, 0.5], atol=1e-12)
    assert cat.brightness_column == "magnitude"


def test_point_sources_in_pixels_with_vegamag() -> None:
    cat = read_catalog(DATA / "point_pixels_vegamag.cat", "point", **F200W)
    assert cat.position_pixels and np.isnan(cat.ra).all() and np.isnan(cat.dec).all()
    np.testing.assert_array_equal(cat.x, [1023.5, 10.0, -40.0])  # off-detector positions are kept
    np.testing.assert_array_equal(cat.y, [1023.5, 2000.25, 512.0])
    assert cat.brightness_column == "nircam_f200w_magnitude"  # the filter-only fallback of a CLEAR pupil
    vega = _rates([17.5, 22.0, 16.0], "vegamag", **F200W)
    np.testing.assert_allclose(cat.countrate, vega)
    info = filter_info("NIRCAM", "F200W", "CLEAR")
    np.testing.assert_allclose(
        vega, _rates([17.5, 22.0, 16.0], "abmag", **F200W) / 10 ** (0.4 * ab_minus_vega(info))
    )


def test_pixel_positions_to_full_frame() -> None:
    cat = read_catalog(DATA / "point_pixels_vegamag.cat", "point", **F200W)
    x, y = cat.full_frame_xy((1025, 1, 1024, 2048))  # a subarray starting at column 1025 (1-based)
    np.testing.assert_array_equal(x, cat.x + 1024)
    np.testing.assert_array_equal(y, cat.y)
    x, y = cat.full_frame_xy((1, 1, 2048, 2048))
    np.testing.assert_array_equal(x, cat.x)


def test_galaxies_read_by_name_in_any_column_order() -> None:
    cat = read_catalog(DATA / "galaxies_radec.cat", "galaxy", **F200W)
    np.testing.assert_array_equal(cat.radius, [0.17, 0.73])
    np.testing.assert_array_equal(cat.ellipticity, [0.46, 0.01])
    np.testing.assert_array_equal(cat.pos_angle, [104.35, 195.50])
    np.testing.assert_array_equal(cat.sersic_index, [3.3, 2.7])
    assert not cat.radius_in_pixels
    np.testing.assert_allclose(cat.countrate, _rates([18.06, 16.86], "abmag", **F200W))


def test_galaxies_in_pixels_with_stmag() -> None:
    band = {"instrument": "NIRCAM", "filter": "F444W", "pupil": "CLEAR"}
    cat = read_catalog(DATA / "galaxies_pixels.cat", "galaxy", **band, detector="NRCALONG")
    assert cat.position_pixels and cat.radius_in_pixels and cat.magnitude_system == "stmag"
    np.testing.assert_array_equal(cat.radius, [4.5, 12.0])
    np.testing.assert_allclose(cat.countrate, _rates([23.0, 21.5], "stmag", **band))


def test_extended_sources() -> None:
    cat = read_catalog(DATA / "extended.cat", "extended", **F200W)
    assert cat.filename == (DATA / "stamp.fits", DATA / "stamp.fits")
    assert all(f.is_file() for f in cat.filename)
    np.testing.assert_allclose(cat.countrate[0], _rates([16.0], "abmag", **F200W)[0])
    assert np.isnan(cat.countrate[1])  # magnitude None: keep the stamp's own values
    assert cat.pos_angle[0] == 20.0 and np.isnan(cat.pos_angle[1])  # None: no rotation


def test_countrate_column_in_an_ecsv_table() -> None:
    cat = read_catalog(DATA / "point_countrate.ecsv", "point", **F200W)
    np.testing.assert_array_equal(cat.countrate, [1500.0, 25.5])
    assert cat.magnitude_system == "countrate" and cat.brightness_column == "countrate_e_per_s"
    np.testing.assert_array_equal(cat.ra, [53.09, 53.091])


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".csv", ".vot"])
def test_astropy_tables(tmp_path: Path, suffix: str) -> None:
    fmt = {".fits": "fits", ".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".vot": "votable"}[suffix]
    if suffix in (".fits", ".ecsv"):  # these keep comments: Mirage's flag
        table = Table(
            {"index": [7, 8], "x_or_RA": [10.0, 20.0], "y_or_Dec": [30.0, 40.0], "countrate": [5.0, 6.0]}
        )
        table.meta["comments"] = ["position_pixels"]
    else:  # csv and VOTable keep no metadata: columns named x and y are pixels
        table = Table({"index": [7, 8], "x": [10.0, 20.0], "y": [30.0, 40.0], "countrate": [5.0, 6.0]})
    table.write(tmp_path / f"cat{suffix}", format=fmt)
    cat = read_catalog(tmp_path / f"cat{suffix}", "point", **F200W)
    assert cat.position_pixels
    np.testing.assert_array_equal(cat.x, [10.0, 20.0])
    np.testing.assert_array_equal(cat.countrate, [5.0, 6.0])


def test_ecsv_magnitude_system_meta_key(tmp_path: Path) -> None:
    table = Table({"index": [1], "ra": [10.0], "dec": [-5.0], "nircam_f200w_clear_magnitude": [20.0]})
    table.meta["magnitude_system"] = "vegamag"
    table.write(tmp_path / "c.ecsv")
    cat = read_catalog(tmp_path / "c.ecsv", "point", **F200W)
    assert cat.magnitude_system == "vegamag"
    np.testing.assert_allclose(cat.countrate, _rates([20.0], "vegamag", **F200W))


# ------------------------------------------------------------------ which magnitude column


@pytest.mark.parametrize(
    ("band", "detector", "expected"),
    [
        (("NIRCAM", "F200W", "CLEAR"), None, ["nircam_f200w_clear_magnitude", "nircam_f200w_magnitude"]),
        (("NIRCAM", "F444W", "GRISMR"), None, ["nircam_f444w_clear_magnitude", "nircam_f444w_magnitude"]),
        (("NIRCAM", "F150W2", "F162M"), None, ["nircam_f150w2_f162m_magnitude", "nircam_f162m_magnitude"]),
        (("NIRCAM", "F200W", "WLP8"), None, ["nircam_f200w_wlp8_magnitude"]),
        (("NIRISS", "CLEAR", "F200W"), "NIS", ["niriss_f200w_magnitude"]),
        (("NIRISS", "F444W", "CLEARP"), "NIS", ["niriss_f444w_magnitude"]),
        (
            ("FGS", None, None),
            "GUIDER2",
            ["fgs_guider2_magnitude", "guider2_magnitude", "fgs2_magnitude", "fgs_magnitude"],
        ),
    ],
)
def test_magnitude_column_names(
    band: tuple[str, str | None, str | None], detector: str | None, expected: list[str]
) -> None:
    assert magnitude_columns(*band, detector) == expected


def test_each_instrument_picks_its_column() -> None:
    path = DATA / "point_radec_abmag.cat"
    niriss = read_catalog(path, "point", instrument="NIRISS", filter="CLEAR", pupil="F200W", detector="NIS")
    fgs = read_catalog(path, "point", instrument="FGS", filter=None, pupil=None, detector="GUIDER1")
    lw = read_catalog(path, "point", instrument="NIRCAM", filter="F444W", pupil="GRISMR", detector="NRCALONG")
    assert niriss.brightness_column == "niriss_f200w_magnitude"
    assert fgs.brightness_column == "fgs_guider1_magnitude"
    assert lw.brightness_column == "nircam_f444w_clear_magnitude"


def test_specific_column_beats_generic_magnitude() -> None:
    cat = read_catalog(
        DATA / "point_sexagesimal.cat", "point", instrument="NIRCAM", filter="F150W2", pupil="F162M"
    )
    assert cat.brightness_column == "nircam_f150w2_f162m_magnitude"


def test_tab_separated_and_astropy_written_mirage_files(tmp_path: Path) -> None:
    tabs = _write(tmp_path, "# vegamag\nindex\tx_or_RA\ty_or_Dec\tmagnitude\n1\t10.5\t20.5\t20\n", "tabs.cat")
    cat = read_catalog(tabs, "point", **F200W)
    assert cat.ra[0] == 10.5 and cat.magnitude_system == "vegamag"
    # what Mirage's catalog generator writes: astropy 'ascii' with padded comment lines
    table = Table(
        {"index": [1], "x_or_RA": [53.1], "y_or_Dec": [-27.1], "nircam_f200w_clear_magnitude": [20.0]}
    )
    table.meta["comments"] = ["position_RA_Dec", "stmag", "", ""]
    table.write(tmp_path / "gen.cat", format="ascii")
    cat = read_catalog(tmp_path / "gen.cat", "point", **F200W)
    assert cat.magnitude_system == "stmag" and cat.ra[0] == 53.1


def test_flags_after_the_fourth_comment_line_are_ignored(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "#\n#\n#\n#\n# vegamag\n# position_pixels\nindex x_or_RA y_or_Dec magnitude\n1 10 20 20\n"
    )
    cat = read_catalog(path, "point", **F200W)
    assert cat.magnitude_system == "abmag" and not cat.position_pixels
    assert cat.ra[0] == 10.0


def test_masked_magnitude_is_missing(tmp_path: Path) -> None:
    mags = MaskedColumn([20.0, 21.0], mask=[False, True], name="magnitude")
    Table([[1, 2], [1.0, 2.0], [3.0, 4.0], mags], names=["index", "ra", "dec", "magnitude"]).write(
        tmp_path / "m.ecsv"
    )
    with pytest.raises(InputError, match=r"m\.ecsv: row 2 \(index 2\): magnitude"):
        read_catalog(tmp_path / "m.ecsv", "point", **F200W)


def test_empty_catalog(tmp_path: Path) -> None:
    cat = read_catalog(_write(tmp_path, "# abmag\nindex x_or_RA y_or_Dec magnitude\n"), "point", **F200W)
    assert len(cat) == 0 and cat.countrate.shape == (0,)


# ------------------------------------------------------------------ errors

HEADER = "index x_or_RA y_or_Dec nircam_f200w_clear_magnitude\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (HEADER + "1 10.0 20.0 20\n2 nan 20.0 20\n", r"row 2 \(index 2\): x_or_RA is nan"),
        (HEADER + "1 10.0 20.0 20\n2 abc 20.0 20\n", r"row 2 \(index 2\): x_or_RA is 'abc'"),
        (
            HEADER + "1 10.0 20.0 20\n2 03:00:00 20.0 20\n",
            r"row 1 \(index 1\): x_or_RA is '10.0' but other rows are sexagesimal",
        ),
        (HEADER + "1 03:61:00 20.0 20\n", r"row 1 \(index 1\): x_or_RA is '03:61:00'"),
        (HEADER + "1 400.0 20.0 20\n", r"row 1 \(index 1\): x_or_RA is 400.0; expected 0 <= RA < 360"),
        (HEADER + "1 10.0 -95.0 20\n", r"row 1 \(index 1\): y_or_Dec is -95.0"),
        (
            HEADER + "1 10.0 20.0 20\n2 11.0 21.0 None\n",
            r"row 2 \(index 2\): nircam_f200w_clear_magnitude is 'None'",
        ),
        (HEADER + "1 10.0 20.0 20\n1 11.0 21.0 20\n", r"index 1 appears twice \(rows 1 and 2\)"),
        (HEADER + "1.5 10.0 20.0 20\n", r"row 1: index is 1.5; expected a positive integer"),
        (HEADER + "0 10.0 20.0 20\n", r"index is 0\.0; expected a positive integer"),
        ("x_or_RA y_or_Dec magnitude\n10.0 20.0 20\n", r"no column 'index'"),
        (
            "index x_or_RA y_or_Dec nircam_f444w_clear_magnitude\n1 10 20 20\n",
            r"no brightness column for NIRCAM F200W/CLEAR \(looked for nircam_f200w_clear_magnitude, "
            r"nircam_f200w_magnitude, countrate_e_per_s, countrate, magnitude\)",
        ),
        ("# jymag\n" + HEADER + "1 10 20 20\n", r"comment line 1: unknown magnitude system 'jymag'"),
        ("# vegamags\n" + HEADER + "1 10 20 20\n", r"'vegamags'; did you mean 'vegamag'"),
        ("# vegamag\n# stmag\n" + HEADER + "1 10 20 20\n", r"two magnitude systems"),
        (
            "# position_pixels\n" + HEADER + "1 10 inf 20\n",
            r"row 1 \(index 1\): y_or_Dec is inf; expected a pixel position",
        ),
        ("index x_or_RA y_or_Dec countrate\n1 10 20 -5\n", r"row 1 \(index 1\): countrate is -5.0"),
        ("index ra\n1 10 20\n", r"cannot read as a ascii.basic table"),
    ],
)
def test_bad_point_catalogs(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=match) as err:
        read_catalog(path, "point", **F200W)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


GALAXY = "index x_or_RA y_or_Dec radius ellipticity pos_angle sersic_index magnitude\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "index x_or_RA y_or_Dec radius ellipticity pos_angle magnitude\n1 1 2 0.5 0.1 0 20\n",
            "no column 'sersic_index'",
        ),
        (
            GALAXY + "1 1 2 0.5 1.0 0 1 20\n",
            r"row 1 \(index 1\): ellipticity is 1.0; expected 0 <= ellipticity < 1",
        ),
        (GALAXY + "1 1 2 -0.5 0.1 0 1 20\n", r"row 1 \(index 1\): radius is -0.5"),
        (GALAXY + "1 1 2 0.5 0.1 0 0 20\n", r"sersic_index is 0.0"),
        (GALAXY + "1 1 2 0.5 0.1 x 1 20\n", r"pos_angle is 'x'"),
    ],
)
def test_bad_galaxy_catalogs(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        read_catalog(_write(tmp_path, text), "galaxy", **F200W)


def test_missing_stamp_file(tmp_path: Path) -> None:
    text = (
        "# position_pixels\nindex x_or_RA y_or_Dec pos_angle magnitude filename\n5 1 2 0 None nothere.fits\n"
    )
    with pytest.raises(InputError, match=r"row 1 \(index 5\): stamp file 'nothere.fits' not found"):
        read_catalog(_write(tmp_path, text), "extended", **F200W)


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="catalog file not found"):
        read_catalog(tmp_path / "none.cat", "point", **F200W)
    (tmp_path / "bad.fits").write_bytes(b"not a fits file at all")
    with pytest.raises(InputError, match=r"bad\.fits: cannot read as a fits table"):
        read_catalog(tmp_path / "bad.fits", "point", **F200W)


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown catalog kind 'points'; did you mean 'point'"):
        read_catalog(DATA / "point_radec_abmag.cat", "points", **F200W)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown NIRCam filter"):
        read_catalog(
            DATA / "point_radec_abmag.cat", "point", instrument="NIRCAM", filter="F999W", pupil="CLEAR"
        )


# ------------------------------------------------------------------ indices across catalogs


def test_unique_indices_across_catalogs() -> None:
    point = read_catalog(DATA / "point_radec_abmag.cat", "point", **F200W)
    galaxy = read_catalog(DATA / "galaxies_radec.cat", "galaxy", **F200W)
    extended = read_catalog(DATA / "extended.cat", "extended", **F200W)
    check_unique_indices([point, galaxy, extended])
    check_unique_indices([])
    with pytest.raises(InputError, match=r"source index 1 appears in .*point_radec_abmag\.cat twice"):
        check_unique_indices([point, point])


def test_duplicate_index_names_both_files(tmp_path: Path) -> None:
    a = read_catalog(
        _write(tmp_path, "index ra dec magnitude\n1 1 1 20\n9 2 2 20\n", "a.cat"), "point", **F200W
    )
    b = read_catalog(
        _write(tmp_path, "index ra dec magnitude\n3 1 1 20\n9 2 2 20\n", "b.cat"), "point", **F200W
    )
    with pytest.raises(InputError, match=r"source index 9 appears in both .*a\.cat and .*b\.cat"):
        check_unique_indices([a, b])
