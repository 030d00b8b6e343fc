"""SimConfig validation, webbflow YAML files and Mirage YAML translation."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from webbflow.detectors import get_detector
from webbflow.errors import InputError
from webbflow.sim.config import (
    SimConfig,
    config_from_dict,
    detector_for_aperture,
    dump_config,
    load_config,
    read_yaml,
)

DATA = Path(__file__).parent / "data"
MIRAGE = DATA / "mirage"
CATALOGS = ("point_radec_abmag.cat", "galaxies_radec.cat", "extended.cat")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of tests/data/{mirage,sim} next to empty stand-in catalogs."""
    (tmp_path / "catalogs").mkdir()
    for name in CATALOGS:
        (tmp_path / "catalogs" / name).write_text("# stand-in\n")
    shutil.copytree(MIRAGE, tmp_path / "mirage")
    shutil.copytree(DATA / "sim", tmp_path / "sim")
    return tmp_path


def _mirage(tree: Path, name: str, **changes: dict[str, Any]) -> Path:
    """A copy of a shipped Mirage YAML with some section keys changed."""
    data = read_yaml(MIRAGE / name)
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    path = tree / "mirage" / f"changed_{name}"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _basic(**changes: Any) -> dict[str, Any]:
    return {"instrument": "NIRCAM", "aperture": "NRCA1_FULL", "filter": "F200W", **changes}


def _one(notes: tuple[str, ...], *words: str) -> str:
    """The one note that contains all ``words``."""
    found = [n for n in notes if all(w in n for w in words)]
    assert len(found) == 1, (words, notes)
    return found[0]


# --- Mirage YAML files ---------------------------------------------------------------------


def test_mirage_nircam(tree: Path) -> None:
    path = tree / "mirage" / "nircam_nrcb5_f444w.yaml"
    cfg = load_config(path)
    assert (cfg.instrument, cfg.aperture, cfg.detector) == ("NIRCAM", "NRCB5_FULL", "NRCBLONG")
    assert (cfg.filter, cfg.pupil) == ("F444W", "CLEAR")
    assert (cfg.readout.readpatt, cfg.readout.ngroups, cfg.readout.nints) == ("BRIGHT2", 5, 1)
    assert (cfg.pointing.ra, cfg.pointing.dec, cfg.pointing.v3pa) == (53.1625, -27.7914, 12.5)
    here = tree / "mirage"
    assert cfg.catalogs.point == (here / "example_ptsrc.cat",)
    assert cfg.catalogs.galaxy == (here / "example_galaxies.cat",)
    assert cfg.catalogs.extended == (here / "example_extended.cat",)
    assert cfg.background.level == "medium" and cfg.background.rate is None
    assert (cfg.cosmic_rays.environment, cfg.cosmic_rays.scale) == ("SUNMAX", 1.0)
    # pixelflat None -> no flat, as in Mirage; everything else stays on
    assert not cfg.effects.flat
    assert all(v for k, v in cfg.effects.model_dump().items() if k != "flat")
    assert cfg.segmap_threshold == pytest.approx(0.031 * get_detector("NRCBLONG").gain)
    assert cfg.seed == (3921004157 * 2**32 + 1417893452) % 2**63
    assert cfg.reffiles == {} and cfg.dark_ramp is None and cfg.psf_library is None
    assert cfg.output.products == ("uncal", "linear", "seed")
    assert cfg.output.directory == path.parent
    assert cfg.uncal_name == "jw01345002001_02101_00001_nrcb5_uncal.fits"
    obs = cfg.observation
    assert (obs.program, obs.observation, obs.visit, obs.visit_group) == ("01345", 2, 1, 2)
    assert (obs.sequence, obs.activity, obs.exposure) == (1, 1, 1)
    assert (obs.target_name, obs.pi_name) == ("GOODS-S", "A. Observer")
    assert obs.dither.primary_dither_type == "INTRAMODULEBOX"
    assert (obs.dither.total_primary_dither_positions, obs.dither.xoffset) == (4, -2.112)
    assert (cfg.date_obs, cfg.time_obs) == ("2023-01-15", "11:42:07.310")
    notes = cfg.notes
    assert len(set(notes)) == len(notes)
    assert "not found" in _one(notes, "dark ramp", "$MIRAGE_DATA/nircam/darks/raw/B5/")
    _one(notes, "dark-current and HxRG noise model")
    _one(notes, "PSF library path $MIRAGE_DATA/nircam/gridded_psf_library/ not found", "poppy")
    _one(notes, "cosmic-ray library", "not found", "library SUNMAX, scale 1.0")
    crds = _one(notes, "crds/config")
    assert all(k in crds for k in ("badpixmask", "superbias", "linearity", "saturation", "ipc"))
    _one(notes, "turn off: flat")
    _one(notes, "crosstalk")
    ignored = _one(notes, "ignored Mirage keys")
    assert "Output.obs_id" in ignored and "simSignals.add_ghosts" not in ignored
    assert not any("unknown keys" in n for n in notes)


def test_mirage_niriss(tree: Path) -> None:
    cfg = load_config(tree / "mirage" / "niriss_nis_f150w.yaml")
    assert (cfg.instrument, cfg.detector, cfg.filter, cfg.pupil) == ("NIRISS", "NIS", "CLEAR", "F150W")
    assert (cfg.readout.readpatt, cfg.readout.nints) == ("NISRAPID", 2)
    # '03:32:39.000' hours and '-27:47:29.04' degrees
    assert cfg.pointing.ra == pytest.approx((3 + 32 / 60 + 39 / 3600) * 15)
    assert cfg.pointing.dec == pytest.approx(-(27 + 47 / 60 + 29.04 / 3600))
    assert cfg.observation.program == "01111"  # unquoted 01111 is not octal 585
    assert (cfg.observation.activity, cfg.observation.act_id) == (2 * 36 + 24, "2o")
    assert cfg.uncal_name == "jw01111024002_0112o_00001_nis_uncal.fits"
    assert cfg.date_obs == "2022-11-03"  # an unquoted YAML date
    assert cfg.segmap_threshold == 0.05  # given in e/sec
    assert (cfg.background.level, cfg.cosmic_rays.environment, cfg.cosmic_rays.scale) == (
        "low",
        "SUNMIN",
        1.5,
    )
    assert cfg.catalogs.extended == () and len(cfg.catalogs.galaxy) == 1
    assert cfg.output.products == ("uncal", "seed")
    assert cfg.effects.flat  # a flat was named (not installed): the resolver's flat is used
    missing = _one(cfg.notes, "reference files not found")
    keys = ("badpixmask", "superbias", "linearity", "saturation", "gain", "pixelflat", "astrometric")
    assert all(missing.count(f"{k} $MIRAGE_DATA/niriss/") == 1 for k in (*keys, "photom", "ipc"))
    _one(cfg.notes, "cosmic-ray library", "library SUNMIN, scale 1.5")


def test_mirage_fgs(tree: Path) -> None:
    cfg = load_config(tree / "mirage" / "fgs_fgs1_full.yaml")
    assert (cfg.instrument, cfg.detector, cfg.filter, cfg.pupil) == ("FGS", "GUIDER1", "", "")
    assert cfg.cosmic_rays.environment == "FLARES"  # Mirage's docs spell it FLARE
    assert cfg.background.rate == pytest.approx(1.5 * get_detector("GUIDER1").gain)
    _one(cfg.notes, "bkgdrate 1.5 ADU/s/pixel")
    assert cfg.seed == 815 and not any(n.startswith("seed") for n in cfg.notes)
    assert cfg.time_obs == "06:29:11.852"  # unquoted: not the base-60 number 23351.852
    assert (cfg.observation.program, cfg.observation.exposure) == ("01141", 3)
    assert cfg.observation.dither.subpix_dither_type is None
    assert cfg.uncal_name == "jw01141001001_01101_00003_guider1_uncal.fits"
    assert not cfg.effects.flat


@pytest.mark.skipif(
    not all((DATA / "catalogs" / n).is_file() for n in CATALOGS), reason="tests/data/catalogs not there"
)
@pytest.mark.parametrize("name", sorted(p.name for p in MIRAGE.glob("*.yaml")))
def test_shipped_mirage_files_load(name: str) -> None:
    cfg = load_config(MIRAGE / name)
    assert cfg.catalogs.point and all(p.is_file() for p in cfg.catalogs.point)


def test_mirage_existing_files_are_used(tree: Path) -> None:
    files = tree / "mirage_data"
    (files / "psf").mkdir(parents=True)
    for name in ("dark_uncal.fits", "mask.fits", "kernel.fits", "nircam_nrcb5_f444w_clear_predicted.fits"):
        (files / ("psf" if "predicted" in name else "") / name).write_bytes(b"")
    (files / "psf" / "nircam_nrcb1_f200w_clear_predicted.fits").write_bytes(b"")
    cfg = load_config(
        _mirage(
            tree,
            "nircam_nrcb5_f444w.yaml",
            Reffiles={"dark": str(files / "dark_uncal.fits"), "badpixmask": "../mirage_data/mask.fits"},
            simSignals={"psfpath": str(files / "psf")},
        )
    )
    assert cfg.dark_ramp == files / "dark_uncal.fits"
    assert cfg.reffiles == {"mask": files / "mask.fits"}
    assert cfg.psf_library == files / "psf" / "nircam_nrcb5_f444w_clear_predicted.fits"
    assert not any("dark ramp" in n or "PSF library" in n for n in cfg.notes)
    # a Mirage kernel that adds IPC is not a jwst IPC reference
    cfg = load_config(
        _mirage(tree, "fgs_fgs1_full.yaml", Reffiles={"ipc": str(files / "kernel.fits"), "invertIPC": False})
    )
    assert "ipc" not in cfg.reffiles
    _one(cfg.notes, "Reffiles.ipc", "adds IPC")


def test_mirage_ignored_unknown_and_units(tree: Path) -> None:
    cfg = load_config(
        _mirage(
            tree,
            "nircam_nrcb5_f444w.yaml",
            simSignals={
                "zodiacal": "zodi.fits",
                "mystery": 3,
                "signal_low_limit_for_segmap": 2.0,
                "signal_low_limit_for_segmap_units": "MJy/sr",
            },
            Extra={"a": 1},
        )
    )
    assert "simSignals.zodiacal" in _one(cfg.notes, "ignored Mirage keys")
    unknown = _one(cfg.notes, "unknown keys")
    assert "simSignals.mystery" in unknown and "Extra" in unknown
    assert cfg.segmap_threshold == 0.031
    _one(cfg.notes, "mjy/sr", "0.031 e-/s")


@pytest.mark.parametrize(
    ("section", "values", "key"),
    [
        ("simSignals", {"movingTargetList": "asteroids.cat"}, "simSignals.movingTargetList"),
        ("simSignals", {"tso_imaging_catalog": "tso.cat"}, "simSignals.tso_imaging_catalog"),
        ("Inst", {"mode": "wfss"}, "Inst.mode"),
        ("Telescope", {"tracking": "non-sidereal"}, "Telescope.tracking"),
        ("simSignals", {"expand_catalog_for_segments": True}, "simSignals.expand_catalog_for_segments"),
    ],
)
def test_mirage_unsupported_settings_fail(tree: Path, section: str, values: dict, key: str) -> None:
    path = _mirage(tree, "nircam_nrcb5_f444w.yaml", **{section: values})
    with pytest.raises(InputError, match=rf"^{path}: {key}: .*not supported"):
        load_config(path)


def test_mirage_ghosts_fail_only_where_mirage_adds_them(tree: Path) -> None:
    with pytest.raises(InputError, match=r"simSignals\.add_ghosts"):
        load_config(_mirage(tree, "niriss_nis_f150w.yaml", simSignals={"add_ghosts": True}))
    assert load_config(tree / "mirage" / "nircam_nrcb5_f444w.yaml")  # add_ghosts True on NIRCam


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("Readout", {"ngroup": -1}, "Readout.ngroup: input should be greater than or equal to 1"),
        ("Readout", {"readpatt": "NISRAPID"}, "Readout.readpatt: 'NISRAPID' is not a NIRCAM readout"),
        ("Readout", {"array_name": "NIS_CEN"}, "Readout.array_name: NIS_CEN is a NIRISS aperture"),
        ("simSignals", {"pointsource": "nowhere.cat"}, "simSignals.pointsource: no such file"),
        ("simSignals", {"bkgdrate": "hihg"}, "simSignals.bkgdrate: 'hihg' .*did you mean 'high'"),
        ("Output", {"datatype": "cooked"}, "Output.datatype: 'cooked'"),
    ],
)
def test_mirage_errors_name_mirage_keys(tree: Path, section: str, values: dict, expected: str) -> None:
    path = _mirage(tree, "nircam_nrcb5_f444w.yaml", **{section: values})
    with pytest.raises(InputError, match=rf"^{path}: {expected}"):
        load_config(path)


# --- webbflow's own format -----------------------------------------------------------------


def test_own_format_loads_and_round_trips(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path / "mirage")  # relative paths follow the file, not the current directory
    cfg = load_config(tree / "sim" / "nircam_basic.yaml")
    assert (cfg.detector, cfg.filter, cfg.readout.ngroups, cfg.seed) == ("NRCA1", "F200W", 5, 42)
    assert cfg.catalogs.point == (tree / "catalogs" / "point_radec_abmag.cat",)
    assert cfg.output.directory == tree / "sim" and cfg.notes == ()
    assert cfg.uncal_name == "jw01234001001_01101_00001_nrca1_uncal.fits"
    again = tmp_path / "elsewhere" / "again.yaml"
    again.parent.mkdir()
    dump_config(cfg, again)
    assert load_config(again) == cfg
    # a translated Mirage file written in webbflow's format reads back the same, without notes
    mirage = load_config(tree / "mirage" / "niriss_nis_f150w.yaml")
    dump_config(mirage, again)
    assert load_config(again) == mirage.model_copy(update={"notes": ()})


def test_paths_expand_environment_and_home(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBBFLOW_TEST_CATS", str(tree / "catalogs"))
    monkeypatch.setenv("HOME", str(tree))
    cfg = config_from_dict(
        _basic(
            catalogs={
                "point": "$WEBBFLOW_TEST_CATS/point_radec_abmag.cat",
                "galaxy": ["~/catalogs/galaxies_radec.cat"],
            }
        )
    )
    assert cfg.catalogs.point == (tree / "catalogs" / "point_radec_abmag.cat",)
    assert cfg.catalogs.galaxy == (tree / "catalogs" / "galaxies_radec.cat",)
    with pytest.raises(
        InputError, match=r"catalogs\.point\.0: .*environment variable NOT_SET_ANYWHERE is not set"
    ):
        config_from_dict(_basic(catalogs={"point": ["$NOT_SET_ANYWHERE/x.cat"]}))


def test_yaml_leading_zeros_and_times_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = "instrument: nircam\naperture: nrca1_full\nfilter: f200w\ntime_obs: 12:30:00\n"
    path.write_text(text + "observation: {program: 01234, observation: 010}\n")
    cfg = load_config(path)
    assert (cfg.observation.program, cfg.observation.observation, cfg.time_obs) == ("01234", 10, "12:30:00")


def test_niriss_pupil_wheel_filter_is_moved(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {"instrument": "NIRISS", "aperture": "NIS_CEN", "filter": "F150W", "readout": {"readpatt": "NIS"}}
    )
    assert (cfg.filter, cfg.pupil) == ("CLEAR", "F150W")
    _one(cfg.notes, "pupil-wheel filter")
    cfg = config_from_dict(
        {"instrument": "NIRISS", "aperture": "NIS_CEN", "filter": "F277W", "readout": {"readpatt": "NIS"}}
    )
    assert (cfg.filter, cfg.pupil, cfg.notes) == ("F277W", "CLEARP", ())


@pytest.mark.parametrize(
    ("aperture", "detector"),
    [
        ("NRCA1_FULL", "NRCA1"),
        ("NRCB4_SUB160", "NRCB4"),
        ("NRCA5_FULL", "NRCALONG"),
        ("nrcb5_full", "NRCBLONG"),
        ("NIS_CEN", "NIS"),
        ("FGS1_FULL", "GUIDER1"),
        ("FGS2_SUB128CNTR", "GUIDER2"),
    ],
)
def test_detector_from_aperture(aperture: str, detector: str) -> None:
    assert detector_for_aperture(aperture) == detector


def test_uncal_name() -> None:
    obs = {"program": 1345, "observation": 2, "visit": "003", "visit_group": 4, "sequence": 2, "exposure": 7}
    cfg = config_from_dict(_basic(aperture="NRCB5_FULL", filter="F444W", observation={**obs, "activity": 10}))
    assert cfg.uncal_name == "jw01345002003_0420a_00007_nrcblong_uncal.fits"  # ACT_ID is base 36
    named = config_from_dict(_basic(output={"name": "mine_uncal.fits"}))
    assert named.uncal_name == "mine_uncal.fits"


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"readout": {"ngroup": 3}}, r"readout.ngroup: unknown key 'ngroup'; did you mean 'ngroups'\?"),
        ({"aperature": "NRCA1_FULL"}, r"aperature: unknown key 'aperature'; did you mean 'aperture'\?"),
        ({"readout": {"ngroups": -2}}, r"readout.ngroups: input should be greater than or equal to 1"),
        (
            {"instrument": "NIRISS", "aperture": "NIS_CEN", "readout": {"readpatt": "RAPID"}},
            r"readout.readpatt: 'RAPID' is not a NIRISS",
        ),
        ({"instrument": "NIRISS"}, r"aperture: NRCA1_FULL is a NIRCAM aperture, not NIRISS"),
        ({"aperture": "NRCALL_FULL"}, r"aperture: 'NRCALL_FULL' does not name one detector"),
        ({"filter": "F444W"}, r"filter: F444W is a long-wavelength filter"),
        ({"pupil": "GRISMR"}, r"pupil: GRISMR is not an imaging element"),
        ({"filter": ""}, r"filter: required for NIRCAM"),
        (
            {"reffiles": {"maks": "x.fits"}},
            r"reffiles.maks: unknown reference type 'maks'; did you mean 'mask'\?",
        ),
        ({"reffiles": {"mask": "nowhere.fits"}}, r"reffiles.mask: no such file"),
        ({"cosmic_rays": {"environment": "solar"}}, r"cosmic_rays.environment: input should be"),
        ({"observation": {"program": "1234567"}}, r"observation.program: '1234567' is not a program ID"),
        (
            {"output": {"name": "out.fits"}},
            r"output.name: 'out.fits' must be a file name ending in '_uncal.fits'",
        ),
        ({"date_obs": "15/01/2023"}, r"date_obs: '15/01/2023' is not a date"),
        ({"pointing": {"dec": 95}}, r"pointing.dec: input should be less than or equal to 90"),
    ],
)
def test_errors_are_one_line_with_dotted_key(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(InputError, match=rf"^cfg.yaml: {expected}") as info:
        config_from_dict(_basic(**changes), "cfg.yaml")
    assert "\n" not in str(info.value)


def test_fgs_has_no_filter() -> None:
    base = {"instrument": "FGS", "aperture": "FGS2_FULL", "readout": {"readpatt": "FGS"}}
    assert config_from_dict({**base, "filter": "N/A"}).filter == ""
    with pytest.raises(InputError, match="filter: 'F200W': FGS has no filter wheel"):
        config_from_dict({**base, "filter": "F200W"})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such configuration file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("instrument: NIRCAM\nreadout:\n  ngroups: 3\n nints: 2\n")
    with pytest.raises(InputError, match=rf"^{bad}: line 4, column 2: YAML syntax error"):
        load_config(bad)
    bad.write_text("instrument: NIRCAM\naperture: NRCA1_FULL\ninstrument: NIRISS\n")
    with pytest.raises(InputError, match=r"line 3, column 1: YAML syntax error: duplicate key 'instrument'"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_config(bad)


def test_config_is_frozen() -> None:
    cfg = config_from_dict(_basic())
    with pytest.raises(pydantic.ValidationError):
        cfg.seed = 3  # type: ignore[misc]
    assert isinstance(cfg, SimConfig) and cfg.readout.readpatt == "RAPID"
