"""Plans: plan rows -> SimConfig, Mirage YAML round trip, options, reduced subarrays, ECSV, associations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from webbflow.errors import InputError, UsageError
from webbflow.graphs._plan_options import (
    aperture_radec,
    background_lookup,
    catalog_lookup,
    reduced_aperture,
)
from webbflow.graphs.plan import Plan, _reduce, plan_table, sim_config
from webbflow.graphs.plan_asn import image3_groups, write_associations
from webbflow.io.asn import read_association
from webbflow.io.mirage_yaml_writer import mirage_yaml, write_mirage_yaml
from webbflow.sim.config import load_config
from webbflow.sim.geometry import Geometry, Pointing

DATA = Path(__file__).parent / "data"

# The first exposure of tests/data/apt/example_imaging_program (NIRCam module B, F115W + F356W);
# ra/dec are what Mirage's yaml generator wrote for NRCB1_FULL and NRCB5_FULL at this pointing.
_BASE: dict[str, Any] = {
    "program": "42424", "observation": 1, "visit": 1, "visit_group": 1, "sequence": 1,
    "activity": 1, "exposure": 1, "template": "NircamImaging", "prime": True,
    "pointing_aperture": "NRCBS_FULL", "subarray": "FULL", "readpatt": "RAPID", "ngroups": 4, "nints": 1,
    "target_id": 1, "target_name": "GOODS-S-FIELD", "target_ra": 53.1, "target_dec": -27.8,
    "v3pa": 0.0, "v2": -82.287, "v3": -496.206, "idl_x": 0.0, "idl_y": 0.0,
    "primary_dither_type": "INTRASCA", "total_primary_dither_positions": 2, "primary_dither_position": 1,
    "subpix_dither_type": "STANDARD", "total_subpix_dither_positions": 2, "subpix_dither_position": 1,
    "date_obs": "2022-10-04", "time_obs": "00:00:00.000",
    "catalog_point": "", "catalog_galaxy": "", "catalog_extended": "", "background": "low",
}  # fmt: skip
MIRAGE_RADEC = {
    "NRCB1_FULL": (53.08739866986869, -27.789302847807907),
    "NRCB5_FULL": (53.097765830773064, -27.798653489747206),
}


def nircam_row(detector: str = "nrcb1", exposure: int = 1, **changes: Any) -> dict[str, Any]:
    lw = detector.endswith("long")
    aperture = "NRCB5_FULL" if lw else f"{detector.upper()}_FULL"
    row = {
        **_BASE,
        "filename": f"jw42424001001_01101_{exposure:05d}_{detector}",
        "exposure": exposure,
        "instrument": "NIRCAM",
        "detector": detector.upper(),
        "aperture": aperture,
        "filter": "F356W" if lw else "F115W",
        "pupil": "CLEAR",
        "ra": MIRAGE_RADEC.get(aperture, (53.1, -27.8))[0],
        "dec": MIRAGE_RADEC.get(aperture, (53.1, -27.8))[1],
    }
    row.update(changes)
    return row


def niriss_row(**changes: Any) -> dict[str, Any]:
    row = {
        **_BASE,
        "filename": "jw01087001001_01101_00001_nis", "program": "01087", "template": "NirissImaging",
        "instrument": "NIRISS", "detector": "NIS", "aperture": "NIS_CEN", "pointing_aperture": "NIS_CEN",
        "filter": "CLEAR", "pupil": "F150W", "readpatt": "NIS", "ngroups": 5, "nints": 2,
        "target_ra": 12.0, "target_dec": 12.0, "v2": -291.219, "v3": -698.181,
    }  # fmt: skip
    row.update(changes)
    row["ra"], row["dec"] = aperture_radec(row["aperture"], row)  # tests/data/apt/niriss_img, obs 2
    return row


def fgs_row(**changes: Any) -> dict[str, Any]:
    row = {
        **_BASE,
        "filename": "jw00999001001_01101_00001_guider1", "program": "00999",
        "template": "FgsExternalCalibration", "instrument": "FGS", "detector": "GUIDER1",
        "aperture": "FGS1_FULL", "pointing_aperture": "FGS1_FULL", "filter": "", "pupil": "",
        "readpatt": "FGSRAPID", "ngroups": 3, "target_ra": 90.97204, "target_dec": -67.35822,
        "v2": 207.19, "v3": -697.5, "ra": 90.97147548598363, "dec": -67.3582941379639,
        "primary_dither_type": "NONE", "subpix_dither_type": "",
    }  # fmt: skip
    row.update(changes)
    return row


ROWS = {
    "nircam_sw": nircam_row("nrcb1"),
    "nircam_lw": nircam_row("nrcblong"),
    "niriss": niriss_row(),
    "fgs": fgs_row(),
}


# ---------------------------------------------------------------- rows -> SimConfig


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_sim_config_of_each_instrument(kind: str, tmp_path: Path) -> None:
    row = ROWS[kind]
    cfg = sim_config(row, seed=7, output_dir=tmp_path)
    assert cfg.uncal_name == row["filename"] + "_uncal.fits"
    assert cfg.detector == row["detector"] and cfg.instrument == row["instrument"]
    assert (cfg.pointing.ra, cfg.pointing.dec, cfg.pointing.v3pa) == (row["ra"], row["dec"], row["v3pa"])
    assert (cfg.readout.readpatt, cfg.readout.ngroups, cfg.readout.nints) == (
        row["readpatt"],
        row["ngroups"],
        row["nints"],
    )
    assert (cfg.filter, cfg.pupil) == (row["filter"], row["pupil"])  # already jwst's keyword values
    assert cfg.background.level == "low" and cfg.seed == 7 and cfg.output.directory == tmp_path
    assert (cfg.date_obs, cfg.time_obs) == (row["date_obs"], row["time_obs"])
    d = cfg.observation.dither
    assert d.total_primary_dither_positions == row["total_primary_dither_positions"]
    assert (d.primary_dither_type or "NONE") == (row["primary_dither_type"] or "NONE")


def test_sim_config_catalogs_background_and_bad_rows(tmp_path: Path) -> None:
    cat = tmp_path / "stars.cat"
    cat.write_text("# abmag\nindex x_or_RA y_or_Dec nircam_f115w_magnitude\n1 53.09 -27.79 20.0\n")
    cfg = sim_config(nircam_row(catalog_point=str(cat), background="0.25"), output_dir=tmp_path)
    assert cfg.catalogs.point == (cat,) and cfg.catalogs.galaxy == () and cfg.background.level == 0.25
    with pytest.raises(InputError, match=r"plan row jw42424001001_01101_00001_nrcb1: readout.readpatt"):
        sim_config(nircam_row(readpatt="FAST"), output_dir=tmp_path)
    with pytest.raises(InputError, match=r"not jw42424001001_01101_00001_nrcb2_uncal\.fits"):
        sim_config(nircam_row(filename="jw42424001001_01101_00001_nrcb2"), output_dir=tmp_path)


# ---------------------------------------------------------------- Mirage YAML


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_mirage_yaml_round_trip(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What we write for Mirage, our Mirage reader reads back as the same SimConfig."""
    monkeypatch.delenv("MIRAGE_DATA", raising=False)
    cat = tmp_path / "gal.cat"
    cat.write_text("index x_or_RA y_or_Dec radius ellipticity pos_angle sersic_index magnitude\n")
    row = {**ROWS[kind], "catalog_galaxy": str(cat)}
    seed = 2**40 + 12345  # needs both of Mirage's seeds
    cfg = sim_config(row, seed=seed, output_dir=tmp_path / "out", products=("uncal", "seed"))
    path = write_mirage_yaml(cfg, tmp_path / f"{row['filename']}.yaml", row)
    back = load_config(path)
    assert back.model_dump(exclude={"notes"}) == cfg.model_dump(exclude={"notes"})
    assert back.seed == seed and back.uncal_name == row["filename"] + "_uncal.fits"
    assert not [n for n in back.notes if n.startswith("unknown keys")]  # every key is Mirage's
    doc = mirage_yaml(cfg, row)
    assert doc["Readout"]["PPS_aperture"] == row["pointing_aperture"]
    assert doc["Telescope"] == {"ra": row["ra"], "dec": row["dec"], "rotation": 0.0, "tracking": "sidereal"}


def test_mirage_yaml_rejects_what_mirage_cannot_say(tmp_path: Path) -> None:
    cfg = sim_config(nircam_row(background="1.5"), output_dir=tmp_path)
    with pytest.raises(InputError, match=r"background 1.5 MJy/sr has no Mirage equivalent"):
        mirage_yaml(cfg)


# ---------------------------------------------------------------- options


def _catalog(path: Path, columns: str) -> Path:
    path.write_text(f"index x_or_RA y_or_Dec {columns}\n")
    return path


def test_catalog_option_shapes(tmp_path: Path) -> None:
    point = _catalog(tmp_path / "p.cat", "magnitude")
    gal = _catalog(tmp_path / "g.cat", "radius ellipticity pos_angle sersic_index magnitude")
    ext = _catalog(tmp_path / "e.cat", "filename pos_angle magnitude")
    assert catalog_lookup(None, ["A"])("A", "NIRCAM") == {"point": "", "galaxy": "", "extended": ""}
    for path, kind in ((point, "point"), (gal, "galaxy"), (ext, "extended")):
        assert catalog_lookup(path, ["A"])("A", "NIRISS")[kind] == str(path)
    other = _catalog(tmp_path / "p2.cat", "magnitude")
    mapping = {
        "point_source": str(point),  # everything
        "niriss": {"galaxy": str(gal)},  # NIRISS, every target
        "NGC 1234": {"nircam": {"point_source": str(other)}, "extended": str(ext)},
    }
    look = catalog_lookup(mapping, ["NGC  1234", "M31"])
    assert look("NGC 1234", "NIRCAM") == {"point": str(other), "galaxy": "", "extended": str(ext)}
    assert look("NGC 1234", "NIRISS") == {"point": str(point), "galaxy": str(gal), "extended": str(ext)}
    assert look("M31", "FGS") == {"point": str(point), "galaxy": "", "extended": ""}
    # a YAML file: paths relative to it
    (tmp_path / "cats.yaml").write_text("M31:\n  nircam:\n    galaxy: g.cat\n")
    assert catalog_lookup(tmp_path / "cats.yaml", ["M31"])("M31", "NIRCAM")["galaxy"] == str(gal)
    with pytest.raises(UsageError, match=r"M32: not a target .*did you mean 'M31'"):
        catalog_lookup({"M32": {"galaxy": str(gal)}}, ["M31"])
    with pytest.raises(InputError, match=r"catalogs: nircam.point_source: catalog file not found"):
        catalog_lookup({"nircam": {"point_source": str(tmp_path / "nope.cat")}}, [])


def test_background_option() -> None:
    assert background_lookup("Medium", [1, 2])(2) == "medium"
    assert background_lookup(0.3, [1])(1) == "0.3"
    per_obs = background_lookup({1: "low", "2": 1.5}, [1, 2])
    assert (per_obs(1), per_obs(2)) == ("low", "1.5")
    with pytest.raises(UsageError, match=r"observations \[2\] have no level"):
        background_lookup({1: "low"}, [1, 2])
    with pytest.raises(UsageError, match="did you mean 'high'"):
        background_lookup("hihg", [1])
    with pytest.raises(UsageError, match="number >= 0"):
        background_lookup(-1, [1])


# ---------------------------------------------------------------- reduced subarrays


def test_aperture_radec_matches_mirage() -> None:
    """Mirage's yaml generator put NRCB1/NRCB5 (and FGS1 of MIRAGE-test) here for these .pointing rows."""
    cases = [(_BASE, aperture, radec) for aperture, radec in MIRAGE_RADEC.items()]
    cases.append((fgs_row(), "FGS1_FULL", (90.97147548598363, -67.3582941379639)))
    for row, aperture, (ra, dec) in cases:
        got = aperture_radec(aperture, row)
        assert abs(got[0] - ra) * 3600 * np.cos(np.radians(dec)) < 1e-4 and abs(got[1] - dec) * 3600 < 1e-4


@pytest.mark.parametrize(
    ("row", "aperture", "subarray", "size"),
    [
        (nircam_row("nrcb1"), "NRCB1_SUB160", "SUB160", 160),
        (nircam_row("nrcblong"), "NRCB5_SUB160", "SUB160", 160),
        (niriss_row(), "NIS_SUB128", "SUB128", 128),
        (fgs_row(), "FGS1_SUB128CNTR", "SUB128CNTR", 128),
    ],
)
def test_reduced_rows_keep_the_sky_and_build(
    row: dict[str, Any], aperture: str, subarray: str, size: int, tmp_path: Path
) -> None:
    from webbflow.graphs.simulate import build_simulation

    reduced = dict(row)
    _reduce(reduced, "SUB160")
    assert (reduced["aperture"], reduced["subarray"]) == (aperture, subarray)
    assert reduced["filename"] == row["filename"]
    # the attitude is unchanged: every pixel of the subarray sees the sky it saw in full frame
    full = Geometry.from_aperture(row["aperture"], Pointing(row["ra"], row["dec"], row["v3pa"]))
    sub = Geometry.from_aperture(aperture, Pointing(reduced["ra"], reduced["dec"], reduced["v3pa"]))
    x0, y0, nx, ny = sub.window
    x, y = np.array([x0 - 1, x0 - 1 + nx - 1, x0 + nx // 2]), np.array([y0 - 1, y0 + ny - 2, y0 + ny // 2])
    ra_f, dec_f = full.pixel_to_sky(x, y)
    ra_s, dec_s = sub.pixel_to_sky(x, y)
    assert np.max(np.hypot((ra_f - ra_s) * np.cos(np.radians(dec_f)), dec_f - dec_s)) * 3600 < 1e-3
    if aperture == "NRCB1_SUB160":  # a corner subarray: its reference point is far from the centre
        assert np.hypot(reduced["ra"] - row["ra"], reduced["dec"] - row["dec"]) * 3600 > 30.0
    sim = build_simulation(sim_config(reduced, output_dir=tmp_path))  # lazy: nothing computed
    assert sim.exposure["sci"].shape == (row["nints"], row["ngroups"], size, size)
    assert hasattr(sim.exposure["sci"].data, "dask")
    assert sim.geometry.subarray_name == subarray


def test_reduced_aperture_choices() -> None:
    assert reduced_aperture("NRCA3_FULL", "SUB640") == "NRCA3_SUB640"
    assert reduced_aperture("NIS_CEN", "SUB64") == "NIS_SUB64"
    assert reduced_aperture("FGS2_FULL", "SUB32") == "FGS2_SUB32CNTR"
    assert reduced_aperture("NRCA1_SUB400P", "SUB160") is None  # not a full frame: kept
    with pytest.raises(UsageError, match="expected a subarray name with a size"):
        reduced_aperture("NRCA1_FULL", "SUBX")


# ---------------------------------------------------------------- table, associations


def _program_rows() -> list[dict[str, Any]]:
    """Two dithers of NIRCam module B (4 SW + LW), plus a NIRISS parallel and an FGS observation."""
    rows = [
        nircam_row(det, exposure=e)
        for e in (1, 2)
        for det in ("nrcb1", "nrcb2", "nrcb3", "nrcb4", "nrcblong")
    ]
    for e in (1, 2):
        rows.append(niriss_row(filename=f"jw42424001001_01102_{e:05d}_nis", program="42424", exposure=e,
                               sequence=2, prime=False))  # fmt: skip
    rows.append(fgs_row(filename="jw42424002001_01101_00001_guider1", program="42424", observation=2,
                        target_id=2))  # fmt: skip
    return rows


def test_plan_ecsv_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("webbflow.io.apt")
    from webbflow.graphs.plan import read_plan
    from webbflow.io.apt import Unsupported

    rows = _program_rows()
    gone = (Unsupported(3, "NircamWfss", "NIRCAM", "WFSS is not simulated"),)
    plan = Plan(plan_table(rows), gone, ("p.xml", "p.pointing"), {"title": "T"})
    path = plan.write(tmp_path / "plan.ecsv")
    back = read_plan(path)
    assert list(back.rows()) == rows  # FGS's empty filter/pupil come back as "" (not masked)
    assert back.unsupported == gone and back.source == ("p.xml", "p.pointing")
    assert back.extra_meta["title"] == "T"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.ecsv"]  # no temporary left
    with pytest.raises(InputError, match="missing columns"):
        plan.table[["filename"]].write(tmp_path / "bad.ecsv", format="ascii.ecsv")
        read_plan(tmp_path / "bad.ecsv")


def test_image3_groups_and_association_files(tmp_path: Path) -> None:
    plan = Plan(plan_table(_program_rows()))
    groups = image3_groups(plan)
    assert {k: len(v) for k, v in groups.items()} == {
        "jw42424-o001_t001_nircam_clear-f115w": 8,  # 4 SW detectors x 2 dithers
        "jw42424-o001_t001_nircam_clear-f356w": 2,
        "jw42424-o001_t001_niriss_clear-f150w": 2,
        "jw42424-o002_t002_fgs_clear": 1,
    }
    assert groups["jw42424-o001_t001_nircam_clear-f356w"] == [
        "jw42424001001_01101_00001_nrcblong",
        "jw42424001001_01101_00002_nrcblong",
    ]
    reduced = [dict(r) for r in _program_rows()[:5]]
    for r in reduced:
        _reduce(r, "SUB160")
    assert "jw42424-o001_t001_nircam_clear-f115w-sub160" in image3_groups(Plan(plan_table(reduced)))
    written = write_associations(plan, tmp_path)
    assert len(written["image2"]) == len(written["image3"]) == 4
    asn3 = read_association(
        tmp_path / "jw42424-o001_t001_nircam_clear-f115w_image3_asn.json", check_exists=False
    )
    assert asn3.products[0].name == "jw42424-o001_t001_nircam_clear-f115w" and asn3.asn_id == "o001"
    members = [m.path.name for m in asn3.members()]
    assert members == [f"{root}_cal.fits" for root in groups["jw42424-o001_t001_nircam_clear-f115w"]]
    asn2 = read_association(
        tmp_path / "jw42424-o001_t001_nircam_clear-f115w_image2_asn.json", check_exists=False
    )
    assert [p.name for p in asn2.products] == groups["jw42424-o001_t001_nircam_clear-f115w"]


# ---------------------------------------------------------------- make_plan and the command (real APT files)

APT = DATA / "apt"


def test_make_plan_options_on_a_real_program(tmp_path: Path) -> None:
    pytest.importorskip("webbflow.io.apt")
    from webbflow.graphs.plan import make_plan

    cat = _catalog(tmp_path / "goods.cat", "nircam_f115w_magnitude nircam_f356w_magnitude")
    xml, pointing = APT / "example_imaging_program.xml", APT / "example_imaging_program.pointing"
    plan = make_plan(
        xml, pointing, catalogs={"GOODS-S-FIELD": {"nircam": {"point_source": str(cat)}}},
        background={1: "high"}, max_groups=2, max_ints=1,
    )  # fmt: skip
    rows = list(plan.rows())
    assert len(rows) == 20 and plan.unsupported == ()
    assert {(r["catalog_point"], r["catalog_galaxy"], r["background"]) for r in rows} == {
        (str(cat), "", "high")
    }
    assert max(r["ngroups"] for r in rows) == 2
    with pytest.raises(UsageError, match="no observations"):
        make_plan(xml, pointing, background={1: "low", 7: "high"})
    with pytest.raises(UsageError, match="max_groups: must be >= 1"):
        make_plan(xml, pointing, max_groups=0)


def test_plan_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("webbflow.io.apt")
    from webbflow.cli.main import main
    from webbflow.graphs.plan import read_plan

    monkeypatch.delenv("MIRAGE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    xml, pointing = str(APT / "nrc_img_niriss_img.xml"), str(APT / "nrc_img_niriss_img.pointing")
    args = ["plan", xml, pointing, "--yaml-dir", "y", "--subarray", "SUB160", "--max-groups", "2"]
    code = main([*args, "--background", "1=low", "--roll", "30"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "36 detector files, 12 exposures" in out and "NIRCAM 30, NIRISS 6" in out
    plan = read_plan(tmp_path / "nrc_img_niriss_img_plan.ecsv")  # the default name, here
    rows = list(plan.rows())
    assert len(rows) == 36 and {r["subarray"] for r in rows} == {"SUB160", "SUB128"}
    assert {r["background"] for r in rows} == {"low"} and {r["v3pa"] for r in rows} == {30.0}
    assert max(r["ngroups"] for r in rows) <= 2
    yamls = sorted((tmp_path / "y").glob("*.yaml"))
    assert [p.stem for p in yamls] == sorted(r["filename"] for r in rows)
    row = next(r for r in rows if r["instrument"] == "NIRISS")
    back = load_config(tmp_path / "y" / f"{row['filename']}.yaml")
    ours = sim_config(row, output_dir=tmp_path / "y", products=("uncal", "seed"))
    exclude = {"notes": True, "observation": {"title", "pi_name"}}
    assert back.model_dump(exclude=exclude) == ours.model_dump(exclude=exclude)

    code = main(["plan", str(APT / "skipped_obs.xml"), str(APT / "skipped_obs.pointing"), "-o", "s.ecsv"])
    out, _ = capsys.readouterr()
    assert code == 0 and "unsupported (2, not in the plan)" in out and "MiriMRS (MIRI)" in out
    assert "MIRI 2, NIRCAM 20, NIRISS 1" in out  # MIRI imaging is planned
    assert len(read_plan(tmp_path / "s.ecsv").unsupported) == 2


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--max-groups", "0"], 64, "--max-groups must be >= 1"),
        (["--date", "2026-13-01"], 64, "--date '2026-13-01'"),
        (["--roll", "1=x"], 64, "--roll 'x'"),
        (["--subarray", "TINY"], 64, "expected a subarray name with a size"),
    ],
)
def test_plan_command_errors(
    extra: list[str], code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("webbflow.io.apt")
    from webbflow.cli.main import main

    xml, pointing = str(APT / "niriss_img.xml"), str(APT / "niriss_img.pointing")
    assert main(["plan", xml, pointing, "-o", str(tmp_path / "p.ecsv"), *extra]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert main(["plan", str(tmp_path / "nope.xml"), pointing]) == 1
    err = capsys.readouterr().err
    assert "nope.xml" in err and err.count("\n") == 1 and "Traceback" not in err


# ---------------------------------------------------------------- MIRI imaging


def miri_row(**changes: Any) -> dict[str, Any]:
    """The first MIRI exposure of tests/data/apt/miri_img_nrc_img (full frame, SLOWR1, F1000W)."""
    row = {
        **_BASE,
        "filename": "jw24242001001_01101_00001_mirimage", "program": "24242", "template": "MiriImaging",
        "instrument": "MIRI", "detector": "MIRIMAGE", "aperture": "MIRIM_FULL",
        "pointing_aperture": "MIRIM_ILLUM", "filter": "F1000W", "pupil": "", "readpatt": "SLOWR1",
        "ngroups": 10, "target_ra": 12.0, "target_dec": 12.0, "v2": -455.583, "v3": -392.609,
        "primary_dither_type": "4-POINT-SETS", "total_primary_dither_positions": 12,
        "subpix_dither_type": "NONE", "total_subpix_dither_positions": 1,
    }  # fmt: skip
    row.update(changes)
    row["ra"], row["dec"] = aperture_radec(row["aperture"], row)
    return row


@pytest.mark.parametrize("name", ["SUB64", "MIRIM_SUB64", "sub64"])
def test_reduced_miri_row_keeps_the_sky(name: str) -> None:
    row = miri_row()
    reduced = dict(row)
    _reduce(reduced, name)
    assert (reduced["aperture"], reduced["subarray"]) == ("MIRIM_SUB64", "SUB64")
    assert reduced["readpatt"] == "FASTR1"  # SLOW reads the full array only
    full = Geometry.from_aperture("MIRIM_FULL", Pointing(row["ra"], row["dec"], row["v3pa"]))
    sub = Geometry.from_aperture("MIRIM_SUB64", Pointing(reduced["ra"], reduced["dec"], reduced["v3pa"]))
    x0, y0, nx, ny = sub.window
    x, y = np.array([x0 - 1, x0 + nx - 2, x0 + nx // 2]), np.array([y0 - 1, y0 + ny - 2, y0 + ny // 2])
    ra_f, dec_f = full.pixel_to_sky(x, y)
    ra_s, dec_s = sub.pixel_to_sky(x, y)
    assert np.max(np.hypot((ra_f - ra_s) * np.cos(np.radians(dec_f)), dec_f - dec_s)) * 3600 < 1e-3
    # SUB64 sits at the imager's edge, far from the full frame's reference point
    dra = (reduced["ra"] - row["ra"]) * np.cos(np.radians(row["dec"]))
    assert np.hypot(dra, reduced["dec"] - row["dec"]) * 3600 > 30


def test_reduced_miri_aperture_choices() -> None:
    assert reduced_aperture("MIRIM_FULL", "BRIGHTSKY") == "MIRIM_BRIGHTSKY"  # a named subarray
    assert reduced_aperture("MIRIM_FULL", "SUB160") == "MIRIM_SUB128"  # the closest size
    assert reduced_aperture("MIRIM_FULL", "NRCB1_SUB256") == "MIRIM_SUB256"  # prefix dropped
    assert reduced_aperture("NIS_CEN", "MIRIM_SUB64") == "NIS_SUB64"
    assert reduced_aperture("MIRIM_SUB128", "SUB64") is None  # not a full frame: kept
    assert reduced_aperture("MIRIM_FULL", "FULL") is None


def test_mirage_yaml_round_trip_miri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MIRI row (no Mirage equivalent) is written in the Mirage shape our reader reads back."""
    monkeypatch.delenv("MIRAGE_DATA", raising=False)
    row = miri_row()
    _reduce(row, "SUB64")
    row["ngroups"] = 5
    cfg = sim_config(row, seed=2**40 + 3, output_dir=tmp_path / "out", products=("uncal", "seed"))
    assert (cfg.instrument, cfg.detector, cfg.subarray, cfg.pupil) == ("MIRI", "MIRIMAGE", "SUB64", "")
    doc = mirage_yaml(cfg, row)
    assert doc["Readout"]["array_name"] == "MIRIM_SUB64" and doc["Readout"]["readpatt"] == "FASTR1"
    assert doc["Readout"]["pupil"] == "N/A" and doc["Readout"]["filter"] == "F1000W"
    assert {"reset", "rscd", "emicorr"} <= set(doc["Reffiles"]) and "superbias" not in doc["Reffiles"]
    path = write_mirage_yaml(cfg, tmp_path / f"{row['filename']}.yaml", row)
    back = load_config(path)
    assert back.model_dump(exclude={"notes"}) == cfg.model_dump(exclude={"notes"})
    assert not [n for n in back.notes if n.startswith("unknown keys")]


def test_plan_command_miri_imaging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MIRI prime + NIRCam parallel, reduced to SUB64: MIRI rows and their YAML files read back."""
    from webbflow.cli.main import main
    from webbflow.graphs.plan import read_plan

    monkeypatch.delenv("MIRAGE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    xml, pointing = str(APT / "miri_img_nrc_img.xml"), str(APT / "miri_img_nrc_img.pointing")
    args = ["plan", xml, pointing, "--subarray", "SUB64", "--max-groups", "5", "--detectors", "MIRIMAGE"]
    code = main([*args, "--yaml-dir", "y", "-o", "p.ecsv"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "MIRI 15" in out and "15 Mirage YAML files" in out
    rows = list(read_plan(tmp_path / "p.ecsv").rows())
    assert len(rows) == 15 and {r["instrument"] for r in rows} == {"MIRI"}
    assert {(r["aperture"], r["subarray"], r["readpatt"]) for r in rows} == {
        ("MIRIM_SUB64", "SUB64", "FASTR1")
    }
    assert {r["filter"] for r in rows} == {"F770W", "F1000W"} and max(r["ngroups"] for r in rows) == 5
    row = rows[0]
    assert (row["ra"], row["dec"]) == pytest.approx(aperture_radec("MIRIM_SUB64", row), abs=1e-9)
    back = load_config(tmp_path / "y" / f"{row['filename']}.yaml")
    ours = sim_config(row, output_dir=tmp_path / "y", products=("uncal", "seed"))
    exclude = {"notes": True, "observation": {"title", "pi_name"}}
    assert back.model_dump(exclude=exclude) == ours.model_dump(exclude=exclude)
    assert back.aperture == "MIRIM_SUB64" and back.detector == "MIRIMAGE"
