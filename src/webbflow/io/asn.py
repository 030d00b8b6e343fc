"""jwst-style association files: the list of exposures an Image2 or Image3 run combines.

An association is a JSON object with a few identifying keys (``asn_type``, ``asn_rule``,
``asn_id``, ``program``, ``target``, ``asn_pool``, ``version_id``, ``code_version``,
``degraded_status``, ``constraints``) and ``products``: each product has a ``name`` (the stem of
its outputs) and ``members``, each ``{"expname": file, "exptype": "science" | "background" |
...}``. A level-2 (``image2``) association has one product per science exposure, named after
the file's root; a level-3 (``image3``) association has one product holding every exposure, named
as jwst names level-3 products: ``jw<program>-<acid>_<target>_<instrument>_<optical elements>``,
e.g. ``jw01234-o001_t001_nircam_clear-f200w``.

Member names are stored relative to the association file. When read they are resolved against
its folder and may not leave that folder's tree (``..`` or an absolute path elsewhere) unless
``allow_outside=True``: an association copied from elsewhere must not make a run read or name
files outside the data it was given. The check is lexical, so a symlink placed inside the tree
on purpose is followed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from webbflow import __version__
from webbflow.errors import InputError, UsageError, suggest
from webbflow.io import atomic
from webbflow.io.fits_reader import read_headers
from webbflow.io.keywords import get_path

Kind = Literal["image2", "image3"]

#: Member types jwst's association rules write (``exptype``), lower case.
EXPTYPES: Final = frozenset(
    {
        "science", "background", "imprint", "selfcal", "psf", "target_acquisition",
        "sourcecat", "segmap", "dark", "flat", "engineering", "autoflat", "autowave",
    }
)  # fmt: skip

#: The optional top-level string keys, in the order written; ``version_id`` may be ``null``.
_STRING_KEYS: Final = (
    "asn_type", "asn_rule", "version_id", "code_version", "degraded_status", "program",
    "constraints", "asn_id", "target", "asn_pool",
)  # fmt: skip
_RULES: Final = {"image2": "DMSLevel2bBase", "image3": "DMS_Level3_Base"}
_NOT_DEGRADED: Final = "No known degraded exposures in association."
#: File-name suffixes of jwst products, removed to get an exposure's root.
_SUFFIXES: Final = frozenset(
    {"uncal", "ramp", "rate", "rateints", "cal", "calints", "bsub", "bsubints", "crf", "crfints", "i2d"}
)
#: Values jwst treats as "no optical element" in level-3 names.
_EMPTY: Final = frozenset({"", "n/a", "none", "null", "--", "n", "f", "false"})
#: ``jw<program:5><observation:3><visit:3>_..._<detector>_<suffix>`` exposure names.
_EXPOSURE_NAME: Final = re.compile(r"^jw(?P<program>\d{5})(?P<obs>\d{3})\d{3}_\w+?_(?P<det>[a-z0-9]+)$")
_DETECTOR_INSTRUMENT: Final = (("nrc", "nircam"), ("nis", "niriss"), ("guider", "fgs"))


@dataclass(frozen=True)
class Member:
    """One exposure of a product.

    Attributes
    ----------
    path : Path
        Absolute, normalised path of the exposure file.
    exptype : str
        Its role, one of :data:`EXPTYPES` (``"science"``, ``"background"``, ...).
    extra : dict
        Other member keys of the file (kept so a read-write round trip loses nothing).
    """

    path: Path
    exptype: str = "science"
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Product:
    """One output product: its name (the stem of the output files) and its inputs."""

    name: str
    members: tuple[Member, ...]

    def by_type(self, exptype: str) -> tuple[Member, ...]:
        """The members whose ``exptype`` is ``exptype``, in file order."""
        return tuple(m for m in self.members if m.exptype == exptype)


@dataclass(frozen=True)
class Association:
    """A jwst association: identifying keys and the products to make.

    ``path`` (the file it was read from or written to) is not part of equality, so an
    association compares equal to itself after a write and a read.
    """

    products: tuple[Product, ...]
    asn_type: str | None = None
    asn_rule: str | None = None
    asn_id: str | None = None
    program: str | None = None
    target: str | None = None
    asn_pool: str | None = "none"
    version_id: str | None = None
    code_version: str | None = None
    degraded_status: str | None = _NOT_DEGRADED
    constraints: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    path: Path | None = field(default=None, compare=False)

    @property
    def kind(self) -> Kind | None:
        """``"image2"`` or ``"image3"`` from ``asn_type`` (or ``asn_rule``), else ``None``."""
        for text in (self.asn_type or "", self.asn_rule or ""):
            low = text.lower()
            if "image2" in low or "level2" in low or "lv2" in low:
                return "image2"
            if "image3" in low or "level3" in low or "lv3" in low:
                return "image3"
        return None

    def members(self, exptype: str | None = "science") -> tuple[Member, ...]:
        """Members of every product with ``exptype`` (all members when ``None``)."""
        return tuple(m for p in self.products for m in p.members if exptype in (None, m.exptype))


# ---------------------------------------------------------------- reading


def read_association(
    path: str | Path, *, allow_outside: bool = False, check_exists: bool = True
) -> Association:
    """Read and validate an association JSON file.

    Parameters
    ----------
    path : str or Path
        The ``*_asn.json`` file.
    allow_outside : bool
        Accept members outside the association file's folder tree.
    check_exists : bool
        Require every member file to exist.

    Raises
    ------
    InputError
        One line naming the file and the JSON path (``$.products[0].members[1].exptype``) of the
        first problem: not JSON, a missing key, a wrong type, no products or members, an unknown
        exptype, a member outside the tree, a missing member file, or clashing output names.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: no such file, expected an association (JSON)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read association ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    asn = _parse(data, p, allow_outside=allow_outside, check_exists=check_exists)
    check_output_names(asn)
    return asn


def _parse(data: Any, path: Path, *, allow_outside: bool, check_exists: bool) -> Association:
    def fail(where: str, what: str) -> InputError:
        return InputError(f"{path}: {where}: {what}")

    if not isinstance(data, dict):
        raise fail("$", f"expected a JSON object, got {_json_type(data)}")
    keys: dict[str, str | None] = {}
    for key in _STRING_KEYS:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise fail(f"$.{key}", f"expected a string, got {_json_type(value)}")
        keys[key] = value
    if "products" not in data:
        raise fail("$", "missing key 'products'")
    products = data["products"]
    if not isinstance(products, list):
        raise fail("$.products", f"expected a list, got {_json_type(products)}")
    if not products:
        raise fail("$.products", "the association has no products")
    base = _lexical(path.parent)
    parsed = []
    for i, prod in enumerate(products):
        where = f"$.products[{i}]"
        if not isinstance(prod, dict):
            raise fail(where, f"expected an object, got {_json_type(prod)}")
        if "members" not in prod:
            raise fail(where, "missing key 'members'")
        members = prod["members"]
        if not isinstance(members, list):
            raise fail(f"{where}.members", f"expected a list, got {_json_type(members)}")
        if not members:
            raise fail(f"{where}.members", "the product has no members")
        mems = tuple(
            _parse_member(m, f"{where}.members[{j}]", base, fail, allow_outside, check_exists)
            for j, m in enumerate(members)
        )
        if not any(m.exptype == "science" for m in mems):
            raise fail(f"{where}.members", "the product has no 'science' member")
        # jwst's schema does not require a name; default to the first science member's root.
        name = prod.get("name", exposure_root(next(m for m in mems if m.exptype == "science").path))
        if not isinstance(name, str):
            raise fail(f"{where}.name", f"expected a string, got {_json_type(name)}")
        parsed.append(Product(name, mems))
    extra = {k: v for k, v in data.items() if k not in _STRING_KEYS and k != "products"}
    return Association(products=tuple(parsed), extra=extra, path=path, **keys)


def _parse_member(
    m: Any, where: str, base: Path, fail: Any, allow_outside: bool, check_exists: bool
) -> Member:
    if not isinstance(m, dict):
        raise fail(where, f"expected an object, got {_json_type(m)}")
    for key in ("expname", "exptype"):
        if key not in m:
            raise fail(where, f"missing key {key!r}")
        if not isinstance(m[key], str) or not m[key]:
            raise fail(f"{where}.{key}", f"expected a non-empty string, got {m[key]!r}")
    exptype = m["exptype"].lower()
    if exptype not in EXPTYPES:
        hint = suggest(exptype, EXPTYPES)
        raise fail(f"{where}.exptype", f"unknown exptype {m['exptype']!r}{hint}")
    target = Path(os.path.normpath(base / m["expname"]))
    if not allow_outside and not target.is_relative_to(base):
        raise fail(
            f"{where}.expname",
            f"member {m['expname']!r} is outside the association's folder {base}; "
            "pass allow_outside=True (--allow-outside) to use it",
        )
    if check_exists and not target.is_file():
        raise fail(f"{where}.expname", f"member file {m['expname']!r} not found ({target})")
    extra = {k: v for k, v in m.items() if k not in ("expname", "exptype")}
    return Member(target, exptype, extra)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


# ---------------------------------------------------------------- writing


def write_association(
    asn: Association, path: str | Path, *, overwrite: bool = False, allow_outside: bool = False
) -> Path:
    """Write ``asn`` as JSON to ``path`` atomically; member names relative to its folder.

    Members outside the file's folder tree are refused (the file could not be read back without
    ``allow_outside``) unless ``allow_outside=True``, when they are written as absolute paths.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    OutputError
        ``path`` exists and not ``overwrite``, or its folder is not writable.
    InputError
        A member is outside the folder tree, or two products share an output name.
    """
    out = Path(path)
    check_output_names(asn)
    base = _lexical(out.parent)
    data = _to_json(asn, base, allow_outside)
    atomic.check_writable(out, overwrite)
    tmp = atomic.temporary_name(out)
    try:
        tmp.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")
        atomic.commit(tmp, out)
    finally:
        atomic.discard(tmp)
    return out


def _to_json(asn: Association, base: Path, allow_outside: bool) -> dict[str, Any]:
    data: dict[str, Any] = {key: getattr(asn, key) for key in _STRING_KEYS}
    data.update(asn.extra)
    products = []
    for prod in asn.products:
        members = []
        for m in prod.members:
            path = _lexical(m.path)
            if path.is_relative_to(base):
                name = path.relative_to(base).as_posix()
            elif allow_outside:
                name = str(path)
            else:
                raise InputError(
                    f"{m.path}: member is outside the association's folder {base}; write the "
                    "association next to its members or pass allow_outside=True (--allow-outside)"
                )
            members.append({"expname": name, "exptype": m.exptype, **m.extra})
        products.append({"name": prod.name, "members": members})
    data["products"] = products
    return data


# ---------------------------------------------------------------- making


def make_association(
    files: Sequence[str | Path],
    *,
    kind: Kind,
    product_name: str | None = None,
    asn_id: str | None = None,
    program: str | None = None,
    target: str | int | None = None,
    with_backgrounds: Iterable[str | Path] = (),
    selfcal: bool = False,
) -> Association:
    """Build an association from exposure files, as jwst's ``asn_from_list``.

    Parameters
    ----------
    files : sequence of str or Path
        The science exposures (``rate`` for image2, ``cal`` for image3), in order.
    kind : {"image2", "image3"}
        ``image2``: one product per file, named from its root (``jw..._nrca1_rate.fits`` →
        ``jw..._nrca1``). ``image3``: one product with every file.
    product_name : str, optional
        The image3 product name; by default the level-3 name built from the files' headers
        (``PROGRAM``, ``OBSERVTN``, ``INSTRUME``, ``FILTER``, ``PUPIL``, ``SUBARRAY``), or from jwst exposure
        file names when the headers cannot be read. Not allowed for image2.
    asn_id, program, target : optional
        Override the association ID (default ``o<observation>`` or ``a3001`` when the files
        span observations), the 5-digit program and the target (``3`` or ``"t003"``; default
        ``t001``: FITS headers carry the target's name, not its number).
    with_backgrounds : iterable of str or Path
        image2 only: background exposures added to every product (``exptype="background"``).
    selfcal : bool
        image2 only: add every *other* file to each product as a ``selfcal`` member, so
        ``bkg_subtract`` subtracts their sigma-clipped median (background self-calibration
        from dithered exposures, as used for MIRI imaging; give at least 4 files).

    Raises
    ------
    UsageError
        No files, an unknown ``kind``, or an option that does not apply to ``kind``.
    InputError
        The level-3 name cannot be derived (pass ``product_name``), or output names clash.
    """
    if kind not in _RULES:
        raise UsageError(f"association kind {kind!r}: expected 'image2' or 'image3'{suggest(kind, _RULES)}")
    if not files:
        raise UsageError("make an association: no input files given")
    paths = [_lexical(f) for f in files]
    backgrounds = tuple(Member(_lexical(b), "background") for b in with_backgrounds)
    info = [_name_parts(p) for p in paths]
    programs = sorted({i["program"] for i in info if i.get("program")})
    observations = sorted({i["obs"] for i in info if i.get("obs")})
    prog = _program(program) if program is not None else (programs[0] if programs else None)
    acid = asn_id or (f"o{observations[0]}" if len(observations) == 1 else "a3001")
    targ = _target(target)
    if kind == "image2":
        if product_name is not None:
            raise UsageError(
                "product_name (--product-name) applies to image3; image2 names products per file"
            )
        if selfcal and (backgrounds or len(paths) < 2):
            raise UsageError("selfcal (--selfcal) needs >= 2 science files and no --background")
        products = tuple(
            Product(
                exposure_root(p),
                (Member(p), *backgrounds, *(Member(o, "selfcal") for o in paths if selfcal and o != p)),
            )
            for p in paths
        )
        constraints = "one product per science exposure"
    else:
        if backgrounds or selfcal:
            raise UsageError(
                "backgrounds (--background, --selfcal) belong to image2 associations, not image3"
            )
        name = product_name or _level3_name(paths, info, prog, acid, targ)
        products = (Product(name, tuple(Member(p) for p in paths)),)
        constraints = _constraints(info)
    asn = Association(
        products=products,
        asn_type=kind,
        asn_rule=_RULES[kind],
        asn_id=acid,
        program=prog,
        target=targ,
        code_version=f"webbflow {__version__}",
        constraints=constraints,
    )
    check_output_names(asn)
    return asn


def exposure_root(path: str | Path) -> str:
    """A file's name without extension and known product suffix (``x_nrca1_rate.fits`` → ``x_nrca1``)."""
    stem = Path(path).name.split(".")[0]
    head, _, suffix = stem.rpartition("_")
    return head if head and suffix.lower() in _SUFFIXES else stem


def _lexical(f: str | Path) -> Path:
    """Absolute path with ``..`` folded lexically: symlinks are not followed (see module notes)."""
    return Path(os.path.normpath(Path(f).expanduser().absolute()))


def _program(value: str | int) -> str:
    text = str(value).strip()
    return text.zfill(5) if text.isdigit() else text


def _target(value: str | int | None) -> str:
    if value is None:
        return "t001"
    text = str(value).strip().lower()
    return f"t{int(text):03d}" if text.isdigit() else text


def _name_parts(path: Path) -> dict[str, str]:
    """Program, observation, instrument, filter, pupil of one file (lower case), headers first."""
    try:
        meta, _, _ = read_headers(path)
    except InputError:
        meta = None
    if meta is not None:
        paths = {
            "program": "observation.program_number",
            "obs": "observation.observation_number",
            "instrument": "instrument.name",
            "filter": "instrument.filter",
            "pupil": "instrument.pupil",
            "subarray": "subarray.name",
        }
        parts = {k: str(get_path(meta, v, "")).strip().lower() for k, v in paths.items()}
        parts["program"] = _program(parts["program"]) if parts["program"] else ""
        parts["obs"] = parts["obs"].zfill(3) if parts["obs"].isdigit() else parts["obs"]
        return {k: v for k, v in parts.items() if v}
    match = _EXPOSURE_NAME.match(exposure_root(path).lower())
    if match is None:
        return {}
    inst = next((name for prefix, name in _DETECTOR_INSTRUMENT if match["det"].startswith(prefix)), "")
    return {
        k: v for k, v in (("program", match["program"]), ("obs", match["obs"]), ("instrument", inst)) if v
    }


def _level3_name(
    paths: Sequence[Path], info: Sequence[Mapping[str, str]], program: str | None, acid: str, target: str
) -> str:
    """``jw<program>-<acid>_<target>_<instrument>_<optical elements>[-<subarray>]``, as jwst's."""
    for key in ("instrument", "filter"):
        missing = [p for p, i in zip(paths, info, strict=True) if not i.get(key)]
        if missing:
            raise InputError(
                f"{missing[0]}: cannot tell its {key} (no FITS header {key.upper()[:8]}); "
                "give the product name (--product-name)"
            )
    if program is None:
        raise InputError(
            f"{paths[0]}: cannot tell its program (no PROGRAM); give --program or --product-name"
        )
    instruments = "-".join(sorted({i["instrument"] for i in info}))
    # jwst sorts the values of each wheel, then the wheels, and drops "no element" values.
    wheels = ["-".join(sorted({i.get(k, "") for i in info} - _EMPTY)) for k in ("filter", "pupil")]
    optical = "-".join(sorted(w for w in wheels if w)) or "clear"
    # Full-frame products carry no subarray in their names (as on MAST); subarrays are appended.
    subarray = "-".join(sorted({i.get("subarray", "full") for i in info} - {"full"}))
    subarray = f"-{subarray}" if subarray else ""
    return f"jw{program}-{acid}_{target}_{instruments}_{optical}{subarray}".lower()


def _constraints(info: Sequence[Mapping[str, str]]) -> str:
    keys = ("instrument", "filter", "pupil")
    return " ".join(f"{k}={'|'.join(sorted({i.get(k, '?') for i in info}))}" for k in keys)


# ---------------------------------------------------------------- checks


def check_output_names(asn: Association) -> None:
    """Refuse products whose outputs would overwrite each other or leave the output folder.

    Product names must be plain file-name stems and unique (ignoring case, for case-insensitive
    file systems); science members of one product must have distinct roots, because Image3
    writes one ``<root>_<asn_id>_crf`` file per member.

    Raises
    ------
    InputError
        Naming the association file (if any), the product and the clashing names.
    """
    where = f"{asn.path}: " if asn.path is not None else ""
    seen: dict[str, str] = {}
    for prod in asn.products:
        if not prod.name or prod.name in (".", "..") or "/" in prod.name or "\\" in prod.name:
            raise InputError(f"{where}product name {prod.name!r}: expected a file-name stem without folders")
        key = prod.name.lower()
        if key in seen:
            raise InputError(f"{where}products {seen[key]!r} and {prod.name!r} would write the same outputs")
        seen[key] = prod.name
        roots: dict[str, Path] = {}
        for m in prod.by_type("science"):
            root = exposure_root(m.path).lower()
            if root in roots:
                raise InputError(
                    f"{where}product {prod.name!r}: members {roots[root]} and {m.path} "
                    "would write the same per-exposure outputs"
                )
            roots[root] = m.path


def check_image3_members(asn: Association) -> None:
    """Refuse an Image3 association whose science members differ in instrument, filter or pupil.

    Raises
    ------
    InputError
        More than one product, an unreadable member, or the first two members that differ,
        naming both files and the keyword.
    """
    where = f"{asn.path}: " if asn.path is not None else ""
    if len(asn.products) != 1:
        raise InputError(f"{where}an image3 association has one product, this one has {len(asn.products)}")
    check_output_names(asn)
    keys = (("INSTRUME", "instrument.name"), ("FILTER", "instrument.filter"), ("PUPIL", "instrument.pupil"))
    first: tuple[Path, tuple[Any, ...]] | None = None
    for m in asn.products[0].by_type("science"):
        meta, _, _ = read_headers(m.path)
        values = tuple(str(get_path(meta, k, "")).strip().upper() for _, k in keys)
        if first is None:
            first = (m.path, values)
            continue
        for (kw, _), a, b in zip(keys, first[1], values, strict=True):
            if a != b:
                raise InputError(
                    f"{m.path}: {kw}={b or '(none)'} but {first[0]} has {kw}={a or '(none)'}; "
                    "one image3 association combines one instrument, filter and pupil"
                )
