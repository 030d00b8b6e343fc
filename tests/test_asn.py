"""Association JSON: model, read/write round trips, path safety, level-3 names, Image3 checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from webbflow.errors import InputError, OutputError, UsageError
from webbflow.io.asn import (
    Association,
    Member,
    Product,
    check_image3_members,
    check_output_names,
    exposure_root,
    make_association,
    read_association,
    write_association,
)


def _fits(path: Path, **cards: Any) -> Path:
    """A tiny FITS file whose primary header carries ``cards`` (NIRCam F200W by default)."""
    header = fits.Header()
    defaults = {"PROGRAM": "01234", "OBSERVTN": "001", "TARGPROP": "FIELD", "INSTRUME": "NIRCAM"}
    for key, value in {**defaults, "FILTER": "F200W", "PUPIL": "CLEAR", **cards}.items():
        if value is not None:
            header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(name="SCI")]).writeto(path)
    return path


def _dithers(folder: Path, n: int = 3, **cards: Any) -> list[Path]:
    return [_fits(folder / f"jw01234001001_01101_0000{i + 1}_nrca1_cal.fits", **cards) for i in range(n)]


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _minimal(tmp_path: Path) -> dict[str, Any]:
    _fits(tmp_path / "a_cal.fits")
    return {"products": [{"name": "p", "members": [{"expname": "a_cal.fits", "exptype": "science"}]}]}


# ---------------------------------------------------------------- round trips


def test_image3_round_trip_and_relative_paths(tmp_path: Path) -> None:
    files = _dithers(tmp_path / "data" / "cal")
    asn = make_association(files, kind="image3")
    out = write_association(asn, tmp_path / "data" / "image3_asn.json")
    text = json.loads(out.read_text())
    assert [m["expname"] for m in text["products"][0]["members"]] == [f"cal/{f.name}" for f in files]
    assert {m["exptype"] for m in text["products"][0]["members"]} == {"science"}
    back = read_association(out)
    assert back == asn
    assert back.path == out
    assert back.kind == "image3"
    assert [m.path for m in back.members()] == files
    check_image3_members(back)


def test_image2_one_product_per_file_with_backgrounds(tmp_path: Path) -> None:
    files = [_fits(tmp_path / f"jw01234001001_01101_0000{i}_nrcb1_rate.fits") for i in (1, 2)]
    bkg = _fits(tmp_path / "bkg" / "jw01234002001_01101_00001_nrcb1_rate.fits")
    asn = make_association(files, kind="image2", with_backgrounds=[bkg])
    assert [p.name for p in asn.products] == [f.name.removesuffix("_rate.fits") for f in files]
    for prod, f in zip(asn.products, files, strict=True):
        assert [m.path for m in prod.by_type("science")] == [f]
        assert [m.path for m in prod.by_type("background")] == [bkg]
    out = write_association(asn, tmp_path / "image2_asn.json")
    back = read_association(out)
    assert back == asn and back.kind == "image2"
    assert json.loads(out.read_text())["products"][0]["members"][1]["expname"] == f"bkg/{bkg.name}"


def test_extra_keys_survive_a_round_trip(tmp_path: Path) -> None:
    data = _minimal(tmp_path)
    data["products"][0]["members"][0]["group_id"] = "g1"
    data["custom"] = [1, 2]
    data["version_id"] = None
    back = read_association(_write_json(tmp_path / "in_asn.json", data))
    again = read_association(write_association(back, tmp_path / "out_asn.json"))
    assert again == back
    assert again.products[0].members[0].extra == {"group_id": "g1"}
    assert again.extra == {"custom": [1, 2]}


def test_missing_name_defaults_to_science_root_and_exptype_case(tmp_path: Path) -> None:
    _fits(tmp_path / "x_rate.fits")
    data = {"products": [{"members": [{"expname": "x_rate.fits", "exptype": "SCIENCE"}]}]}
    asn = read_association(_write_json(tmp_path / "a_asn.json", data))
    assert asn.products[0].name == "x"
    assert asn.products[0].members[0].exptype == "science"


def test_exposure_root() -> None:
    assert exposure_root("d/jw01234001001_01101_00001_nrca1_rateints.fits") == (
        "jw01234001001_01101_00001_nrca1"
    )
    assert exposure_root("x_cal.fits.gz") == "x"
    assert exposure_root("plain.fits") == "plain"
    assert exposure_root("keep_this.fits") == "keep_this"


# ---------------------------------------------------------------- path safety


@pytest.mark.parametrize("expname", ["../outside_cal.fits", "sub/../../outside_cal.fits", "ABS"])
def test_member_escaping_the_tree_is_refused(tmp_path: Path, expname: str) -> None:
    outside = _fits(tmp_path / "outside_cal.fits")
    folder = tmp_path / "asn"
    folder.mkdir()
    name = str(outside) if expname == "ABS" else expname
    data = {"products": [{"name": "p", "members": [{"expname": name, "exptype": "science"}]}]}
    path = _write_json(folder / "x_asn.json", data)
    with pytest.raises(InputError, match=r"x_asn\.json: \$\.products\[0\]\.members\[0\]\.expname") as exc:
        read_association(path)
    assert "outside_cal.fits" in str(exc.value) and "allow_outside" in str(exc.value)
    asn = read_association(path, allow_outside=True)
    assert asn.products[0].members[0].path == outside


def test_dotdot_staying_inside_is_fine(tmp_path: Path) -> None:
    _fits(tmp_path / "a_cal.fits")
    data = {"products": [{"name": "p", "members": [{"expname": "sub/../a_cal.fits", "exptype": "science"}]}]}
    asn = read_association(_write_json(tmp_path / "x_asn.json", data))
    assert asn.products[0].members[0].path == tmp_path / "a_cal.fits"


def test_writing_a_member_outside_the_tree(tmp_path: Path) -> None:
    files = _dithers(tmp_path / "data", 2)
    asn = make_association(files, kind="image3")
    target = tmp_path / "elsewhere" / "x_asn.json"
    with pytest.raises(InputError, match="outside the association's folder"):
        write_association(asn, target)
    assert not target.exists()
    write_association(asn, target, allow_outside=True)
    names = [m["expname"] for m in json.loads(target.read_text())["products"][0]["members"]]
    assert names == [str(f) for f in files]
    with pytest.raises(InputError, match="outside"):
        read_association(target)
    assert read_association(target, allow_outside=True) == asn


def test_overwrite_and_no_partial_files(tmp_path: Path) -> None:
    asn = make_association(_dithers(tmp_path, 2), kind="image3")
    out = write_association(asn, tmp_path / "x_asn.json")
    with pytest.raises(OutputError, match="exists"):
        write_association(asn, out)
    write_association(asn, out, overwrite=True)
    assert not list(tmp_path.glob(".*partial"))


# ---------------------------------------------------------------- error paths


_BAD: list[tuple[str, Any, str]] = [
    ("not-json", '{"products": [', r"not JSON \(line 1"),
    ("top-list", [], r"\$: expected a JSON object, got a list"),
    ("no-products", {"asn_id": "o001"}, r"\$: missing key 'products'"),
    ("products-type", {"products": {}}, r"\$\.products: expected a list, got an object"),
    ("empty", {"products": []}, r"\$\.products: the association has no products"),
    ("product-type", {"products": [3]}, r"\$\.products\[0\]: expected an object, got a number"),
    ("no-members", {"products": [{"name": "p"}]}, r"\$\.products\[0\]: missing key 'members'"),
    ("members-empty", {"products": [{"name": "p", "members": []}]}, r"members: the product has no members"),
    ("member-type", {"products": [{"name": "p", "members": ["a"]}]}, r"members\[0\]: expected an object"),
    (
        "no-expname",
        {"products": [{"name": "p", "members": [{"exptype": "science"}]}]},
        r"members\[0\]: missing key 'expname'",
    ),
    (
        "expname-type",
        {"products": [{"name": "p", "members": [{"expname": 5, "exptype": "science"}]}]},
        r"members\[0\]\.expname: expected a non-empty string",
    ),
    (
        "exptype-unknown",
        {"products": [{"name": "p", "members": [{"expname": "a_cal.fits", "exptype": "scince"}]}]},
        r"members\[0\]\.exptype: unknown exptype 'scince'; did you mean 'science'\?",
    ),
    (
        "no-science",
        {"products": [{"name": "p", "members": [{"expname": "a_cal.fits", "exptype": "background"}]}]},
        r"\$\.products\[0\]\.members: the product has no 'science' member",
    ),
    (
        "name-type",
        {"products": [{"name": 1, "members": [{"expname": "a_cal.fits", "exptype": "science"}]}]},
        r"\$\.products\[0\]\.name: expected a string, got a number",
    ),
    (
        "key-type",
        {"asn_id": 7, "products": [{"members": [{"expname": "a_cal.fits", "exptype": "science"}]}]},
        r"\$\.asn_id: expected a string, got a number",
    ),
    (
        "missing-file",
        {"products": [{"name": "p", "members": [{"expname": "b_cal.fits", "exptype": "science"}]}]},
        r"members\[0\]\.expname: member file 'b_cal\.fits' not found",
    ),
    (
        "same-products",
        {
            "products": [
                {"name": "P", "members": [{"expname": "a_cal.fits", "exptype": "science"}]},
                {"name": "p", "members": [{"expname": "a_cal.fits", "exptype": "science"}]},
            ]
        },
        r"products 'P' and 'p' would write the same outputs",
    ),
    (
        "name-with-folder",
        {"products": [{"name": "../p", "members": [{"expname": "a_cal.fits", "exptype": "science"}]}]},
        r"product name '\.\./p': expected a file-name stem without folders",
    ),
]


@pytest.mark.parametrize(("case", "data", "pattern"), _BAD, ids=[b[0] for b in _BAD])
def test_bad_associations(tmp_path: Path, case: str, data: Any, pattern: str) -> None:
    _fits(tmp_path / "a_cal.fits")
    path = _write_json(tmp_path / f"{case}_asn.json", data)
    with pytest.raises(InputError, match=pattern) as exc:
        read_association(path)
    message = str(exc.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_association(tmp_path / "none_asn.json")
    (tmp_path / "bin_asn.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="cannot read association"):
        read_association(tmp_path / "bin_asn.json")


def test_check_exists_off(tmp_path: Path) -> None:
    data = {"products": [{"name": "p", "members": [{"expname": "later_cal.fits", "exptype": "science"}]}]}
    asn = read_association(_write_json(tmp_path / "x_asn.json", data), check_exists=False)
    assert asn.products[0].members[0].path == tmp_path / "later_cal.fits"


def test_members_with_the_same_root_clash(tmp_path: Path) -> None:
    a = _fits(tmp_path / "v1" / "x_cal.fits")
    b = _fits(tmp_path / "v2" / "x_cal.fits")
    with pytest.raises(InputError, match="would write the same per-exposure outputs") as exc:
        make_association([a, b], kind="image3")
    assert str(a) in str(exc.value) and str(b) in str(exc.value)
    with pytest.raises(InputError, match="would write the same outputs"):
        make_association([a, b], kind="image2")


def test_make_usage_errors(tmp_path: Path) -> None:
    files = _dithers(tmp_path, 2)
    with pytest.raises(UsageError, match="expected 'image2' or 'image3'; did you mean 'image3'"):
        make_association(files, kind="imag3")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="no input files"):
        make_association([], kind="image3")
    with pytest.raises(UsageError, match="backgrounds"):
        make_association(files, kind="image3", with_backgrounds=files[:1])
    with pytest.raises(UsageError, match="product_name"):
        make_association(files, kind="image2", product_name="x")


# ---------------------------------------------------------------- level-3 names


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        # CEERS's F200W mosaic on MAST: jw01345-o001_t022_nircam_clear-f200w.
        ({"PROGRAM": "1345", "OBSERVTN": "1"}, "jw01345-o001_t001_nircam_clear-f200w"),
        ({"SUBARRAY": "FULL"}, "jw01234-o001_t001_nircam_clear-f200w"),
        ({"SUBARRAY": "SUB160P"}, "jw01234-o001_t001_nircam_clear-f200w-sub160p"),
        ({"INSTRUME": "NIRISS", "FILTER": "CLEAR", "PUPIL": "F150W"}, "jw01234-o001_t001_niriss_clear-f150w"),
        ({"FILTER": "F444W", "PUPIL": "F405N"}, "jw01234-o001_t001_nircam_f405n-f444w"),
        ({"INSTRUME": "FGS", "FILTER": None, "PUPIL": None}, None),
        ({"FILTER": "F150W2", "PUPIL": "N/A"}, "jw01234-o001_t001_nircam_f150w2"),
    ],
)  # fmt: skip
def test_level3_name_from_headers(tmp_path: Path, cards: dict[str, Any], expected: str | None) -> None:
    files = _dithers(tmp_path, 2, **cards)
    if expected is None:
        with pytest.raises(InputError, match=r"cannot tell its filter.*--product-name"):
            make_association(files, kind="image3")
        return
    asn = make_association(files, kind="image3")
    assert asn.products[0].name == expected
    assert asn.program == expected[2:7] and asn.asn_id == "o001" and asn.target == "t001"


def test_level3_name_options_and_many_observations(tmp_path: Path) -> None:
    a = _fits(tmp_path / "a_cal.fits", OBSERVTN="1")
    b = _fits(tmp_path / "b_cal.fits", OBSERVTN="2")
    asn = make_association([a, b], kind="image3")
    assert asn.products[0].name == "jw01234-a3001_t001_nircam_clear-f200w"
    asn = make_association([a, b], kind="image3", asn_id="c1000", program=42, target=7)
    assert asn.products[0].name == "jw00042-c1000_t007_nircam_clear-f200w"
    assert make_association([a, b], kind="image3", product_name="mine").products[0].name == "mine"


def test_level3_name_from_file_names_needs_a_filter(tmp_path: Path) -> None:
    files = [tmp_path / f"jw01234003001_01101_0000{i}_nrcb1_cal.fits" for i in (1, 2)]
    for f in files:
        f.write_text("not fits")
    with pytest.raises(InputError, match=r"nrcb1_cal\.fits: cannot tell its filter"):
        make_association(files, kind="image3")
    asn = make_association(files, kind="image3", product_name="p")
    assert (asn.program, asn.asn_id) == ("01234", "o003")
    assert make_association(files, kind="image2").products[1].name == files[1].name[:-9]


# ---------------------------------------------------------------- Image3 checks


@pytest.mark.parametrize(("key", "value"), [("FILTER", "F444W"), ("PUPIL", "F162M"), ("INSTRUME", "NIRISS")])
def test_image3_members_must_share_instrument_filter_pupil(tmp_path: Path, key: str, value: str) -> None:
    a, b = _dithers(tmp_path, 2)
    c = _fits(tmp_path / "odd_cal.fits", **{key: value})
    asn = make_association([a, b, c], kind="image3", product_name="p")
    with pytest.raises(InputError, match=rf"odd_cal\.fits: {key}={value} but .*{a.name} has {key}=") as exc:
        check_image3_members(asn)
    assert "\n" not in str(exc.value)


def test_image3_needs_one_product(tmp_path: Path) -> None:
    asn = make_association(_dithers(tmp_path, 2), kind="image2")
    with pytest.raises(InputError, match="one product, this one has 2"):
        check_image3_members(asn)


def test_check_output_names_on_a_built_model(tmp_path: Path) -> None:
    m = Member(tmp_path / "a_cal.fits")
    check_output_names(Association(products=(Product("a", (m,)), Product("b", (m,)))))
    with pytest.raises(InputError, match="'a' and 'A'"):
        check_output_names(Association(products=(Product("a", (m,)), Product("A", (m,)))))


# ---------------------------------------------------------------- oracle


# jwst warns that member names with folders ("cal/x_cal.fits") make files harder to share.
@pytest.mark.filterwarnings("ignore:Input association file contains path information")
@pytest.mark.parametrize("kind", ["image2", "image3"])
def test_jwst_reads_our_association(tmp_path: Path, kind: str) -> None:
    load_asn = pytest.importorskip("jwst.associations").load_asn
    files = _dithers(tmp_path / "cal", 3)
    asn = make_association(files, kind=kind)  # type: ignore[arg-type]
    out = write_association(asn, tmp_path / f"{kind}_asn.json")
    with out.open() as f:
        theirs = load_asn(f)
    assert [p["name"] for p in theirs["products"]] == [p.name for p in asn.products]
    for prod, ours in zip(theirs["products"], asn.products, strict=True):
        # jwst resolves expname against the association's folder, as we do.
        assert [out.parent / m["expname"] for m in prod["members"]] == [m.path for m in ours.members]
        assert [m["exptype"] for m in prod["members"]] == [m.exptype for m in ours.members]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    ("instrument", "detector", "filt", "pupil"),
    [
        ("NIRCAM", "NRCALONG", "F444W", "F405N"),
        ("NIRCAM", "NRCA1", "F200W", "CLEAR"),
        ("NIRISS", "NIS", "CLEAR", "F150W"),
    ],
)
def test_level3_name_matches_jwst_rules(
    tmp_path: Path, instrument: str, detector: str, filt: str, pupil: str
) -> None:
    """jwst's own rules (a pool made from the headers, then Asn_Lv3Image) name the same product."""
    asn_lib = pytest.importorskip("jwst.associations")
    mkpool = pytest.importorskip("jwst.associations.mkpool").mkpool
    exp_type = {"NIRCAM": "NRC_IMAGE", "NIRISS": "NIS_IMAGE"}[instrument]
    cards = {"INSTRUME": instrument, "DETECTOR": detector, "FILTER": filt, "PUPIL": pupil}
    cards |= {"EXP_TYPE": exp_type, "TARGNAME": "FIELD", "VISIT": "001", "SUBARRAY": "FULL"}
    cards["PNTGTYPE"] = "science"
    stem = f"jw01234001001_01101_0000{{}}_{detector.lower()}_cal.fits"
    files = [_fits(tmp_path / stem.format(i), EXPOSURE=f"{i:05d}", **cards) for i in (1, 2)]
    theirs = [
        a
        for a in asn_lib.generate(mkpool([str(f) for f in files]), asn_lib.AssociationRegistry())
        if a["asn_type"] == "image3"
    ]
    assert len(theirs) == 1 and len(theirs[0]["products"]) == 1
    # A pool made from files has no observation candidates, so jwst discovers one: "a3001".
    ours = make_association(files, kind="image3", asn_id=theirs[0]["asn_id"])
    # jwst 3.0 keeps "-full" when the pool's SUBARRAY is upper case; MAST names omit it.
    assert ours.products[0].name == theirs[0]["products"][0]["name"].removesuffix("-full")


def test_cli_asn_make(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``webbflow asn make`` writes what make_association builds; an existing file is kept."""
    from webbflow.cli.main import main

    files = []
    for i in (1, 2):
        path = tmp_path / f"jw01234001001_01101_0000{i}_nrca1_cal.fits"
        fits.PrimaryHDU(
            header=fits.Header(
                [
                    ("PROGRAM", "01234"),
                    ("OBSERVTN", "001"),
                    ("INSTRUME", "NIRCAM"),
                    ("FILTER", "F200W"),
                    ("PUPIL", "CLEAR"),
                    ("SUBARRAY", "FULL"),
                ]
            )
        ).writeto(path)
        files.append(str(path))
    out = tmp_path / "mosaic_asn.json"
    assert main(["asn", "make", "--kind", "image3", "-o", str(out), *files]) == 0
    asn = read_association(out)
    assert asn.kind == "image3" and len(asn.members()) == 2
    assert main(["asn", "make", "--kind", "image3", "-o", str(out), *files]) == 1
    assert "exists" in capsys.readouterr().err
