"""The per-row options of a plan: catalogs per target/instrument, backgrounds per observation, and
reduced-size subarrays (with the sky position of the new aperture).

Catalogs come in Mirage's proposal-level shapes (its ``yaml_generator`` ``catalogs`` argument):
one catalog file for everything, or a mapping ``{target: {instrument: {kind: file}}}``,
``{instrument: {kind: file}}``, ``{target: {kind: file}}`` or ``{kind: file}`` (or a YAML file
holding one). Kinds are ``point_source`` (also ``point``, ``pointsource``), ``galaxy``
(``galaxies``, ``galaxyListFile``) and ``extended``; the most specific entry wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Final

from webbflow.errors import InputError, UsageError, suggest
from webbflow.io.yaml_reader import expand_path, read_yaml

KINDS: Final = ("point", "galaxy", "extended")
_KIND_NAMES: Final = {
    "point_source": "point", "pointsource": "point", "point": "point", "ptsrc": "point",
    "galaxy": "galaxy", "galaxies": "galaxy", "galaxylistfile": "galaxy",
    "extended": "extended",
}  # fmt: skip
_INSTRUMENTS: Final = ("nircam", "niriss", "fgs")
_LEVELS: Final = ("none", "low", "medium", "high")

Catalogs = Callable[[str, str], dict[str, str]]
"""(target name, instrument) -> {kind: absolute path or ""}."""


# ---------------------------------------------------------------- catalogs


def catalog_lookup(catalogs: Any, targets: Collection[str]) -> Catalogs:
    """A function giving each (target, instrument) its catalog files, from the ``catalogs`` option.

    Parameters
    ----------
    catalogs
        ``None``; the path of one catalog file (its kind read from its columns: ``filename`` ->
        extended, ``sersic_index``/``radius`` -> galaxy, else point sources); the path of a YAML
        file holding a mapping; or the mapping itself (relative paths from the current folder).
    targets
        The program's target names (APT), to tell target keys from mistakes.

    Raises
    ------
    InputError
        A missing file, or a YAML file that is not a mapping.
    UsageError
        A key that is neither a target, an instrument nor a catalog kind.
    """
    if catalogs is None:
        return lambda target, instrument: dict.fromkeys(KINDS, "")
    source, base = "catalogs", Path.cwd()
    if isinstance(catalogs, str | Path):
        path = expand_path(catalogs)
        if path.suffix.lower() not in {".yaml", ".yml"}:
            kind = _catalog_kind(_existing(path, "catalogs"))
            found = {**dict.fromkeys(KINDS, ""), kind: str(path)}
            return lambda target, instrument: dict(found)
        catalogs, source, base = read_yaml(path), str(path), path.parent
    if not isinstance(catalogs, Mapping):
        raise InputError(f"{source}: expected a mapping of targets/instruments to catalogs")
    table = _normalise(catalogs, source, base, {_key(t): t for t in targets})

    def lookup(target: str, instrument: str) -> dict[str, str]:
        inst, targ = instrument.lower(), _key(target)
        layers = [table.get(("", "")), table.get(("", inst)), table.get((targ, "")), table.get((targ, inst))]
        out = dict.fromkeys(KINDS, "")
        for layer in layers:  # least to most specific
            out.update(layer or {})
        return out

    return lookup


def _key(name: str) -> str:
    return " ".join(str(name).split()).lower()


def _normalise(data: Mapping[Any, Any], source: str, base: Path, targets: Mapping[str, str]) -> dict:
    """``{(target key or "", instrument or ""): {kind: path}}`` of a Mirage-shaped mapping."""
    table: dict[tuple[str, str], dict[str, str]] = {}

    def put(where: tuple[str, str], kind: str, value: Any, dotted: str) -> None:
        if not isinstance(value, str | Path) or not str(value).strip():
            raise InputError(f"{source}: {dotted}: expected a catalog file name, got {value!r}")
        if str(value).strip().lower() == "none":
            return
        path = _existing(expand_path(str(value), base), f"{source}: {dotted}")
        table.setdefault(where, {})[kind] = str(path)

    def walk(node: Mapping[Any, Any], target: str, instrument: str, dotted: str) -> None:
        for raw, value in node.items():
            key, here = _key(raw), f"{dotted}.{raw}" if dotted else str(raw)
            if key.replace(" ", "") in _KIND_NAMES:
                put((target, instrument), _KIND_NAMES[key.replace(" ", "")], value, here)
            elif key in _INSTRUMENTS and not instrument:
                _mapping(value, source, here)
                walk(value, target, key, here)
            elif key in targets and not target and not instrument:
                _mapping(value, source, here)
                walk(value, key, instrument, here)
            else:
                known = [*_KIND_NAMES, *(_INSTRUMENTS if not instrument else ())]
                known += list(targets.values()) if not (target or instrument) else []
                raise UsageError(
                    f"{source}: {here}: not a target of the program, an instrument or a catalog kind"
                    f"{suggest(str(raw), known)} (expected one of: {', '.join(map(str, known))})"
                )

    walk(data, "", "", "")
    return table


def _mapping(value: Any, source: str, dotted: str) -> None:
    if not isinstance(value, Mapping):
        raise InputError(f"{source}: {dotted}: expected a mapping, got {value!r}")


def _existing(path: Path, where: str) -> Path:
    if not path.is_file():
        raise InputError(f"{where}: catalog file not found: {path}")
    return path


def _catalog_kind(path: Path) -> str:
    """The kind of one catalog from its column names (Mirage's formats)."""
    from webbflow.io._catalog_parse import read_table

    table, _ = read_table(path)
    names = {c.lower() for c in table.colnames}
    if "filename" in names:
        return "extended"
    return "galaxy" if names & {"sersic_index", "radius", "ellipticity"} else "point"


# ---------------------------------------------------------------- backgrounds


def background_level(value: Any, where: str = "background") -> str:
    """A background as plan text: ``none``/``low``/``medium``/``high`` or a number (MJy/sr) >= 0."""
    if isinstance(value, str) and value.strip().lower() in _LEVELS:
        return value.strip().lower()
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or isinstance(value, bool):
        raise UsageError(
            f"{where}: {value!r} is not a background level{suggest(str(value).lower(), _LEVELS)} "
            "(expected none, low, medium, high, or a number >= 0 in MJy/sr)"
        )
    return repr(number)


def background_lookup(background: Any, observations: Collection[int]) -> Callable[[int], str]:
    """Observation number -> background text, from one level or ``{observation: level}``.

    Raises
    ------
    UsageError
        A bad level, or a mapping that misses an observation of the plan or names one the
        program does not have.
    """
    if not isinstance(background, Mapping):
        level = background_level(background)
        return lambda obs: level
    levels: dict[int, str] = {}
    for key, value in background.items():
        try:
            obs = int(key)
        except (TypeError, ValueError):
            raise UsageError(f"background: {key!r} is not an observation number") from None
        levels[obs] = background_level(value, f"background[{obs}]")
    unknown = sorted(set(levels) - set(observations))
    missing = sorted(set(observations) - set(levels))
    if unknown or missing:
        what = f"observations {missing} have no level" if missing else f"no observations {unknown}"
        raise UsageError(
            f"background: {what} (the plan's observations: {', '.join(map(str, sorted(observations)))})"
        )
    return levels.__getitem__


# ---------------------------------------------------------------- reduced subarrays


def reduced_aperture(aperture: str, subarray: str) -> str | None:
    """The SIAF imaging subarray standing in for full-frame ``aperture`` at the size ``subarray`` names.

    ``NRCB1_FULL`` + ``SUB160`` -> ``NRCB1_SUB160``; a detector without that subarray gets its
    imaging subarray of the closest size (``NIS_CEN`` -> ``NIS_SUB128``, ``FGS1_FULL`` ->
    ``FGS1_SUB128CNTR``, ``MIRIM_FULL`` + ``SUB160`` -> ``MIRIM_SUB128``). ``subarray`` may carry
    an aperture prefix (``MIRIM_SUB64``, ``NRCB1_SUB160``: the prefix is dropped, so the size
    applies to every instrument) and may be a named subarray of the detector without a size
    (``BRIGHTSKY`` for MIRI). ``None`` when ``aperture`` is not a full frame (it is kept).

    Raises
    ------
    UsageError
        ``subarray`` names no size (``SUB<n>``...) and is no subarray of the detector.
    """
    from webbflow.sim._siaf_names import PREFIX, siaf

    prefix = aperture.upper().partition("_")[0]
    if prefix not in PREFIX or aperture.upper() != PREFIX[prefix][2]:
        return None
    name = subarray.strip().upper()
    head, _, tail = name.partition("_")
    if tail and head in PREFIX:  # an aperture name: keep its subarray part
        name = tail
    names = siaf(PREFIX[prefix][0]).apernames
    if f"{prefix}_{name}" in names:  # FULL names the full frame itself: nothing to reduce
        return None if f"{prefix}_{name}" == PREFIX[prefix][2] else f"{prefix}_{name}"
    size = re.search(r"(\d+)", name)
    if size is None:
        raise UsageError(
            f"--subarray {subarray!r}: expected a subarray name with a size, e.g. SUB160 "
            f"(or a subarray of {prefix})"
        )
    pattern = re.compile(rf"{prefix}_SUB(\d+)(CNTR)?")
    sizes = {int(m[1]): n for n in names if (m := pattern.fullmatch(n)) and (prefix[:3] != "FGS" or m[2])}
    if not sizes:
        raise UsageError(f"--subarray {subarray!r}: {prefix} has no imaging subarray")
    return sizes[min(sizes, key=lambda s: (abs(s - int(size[1])), s))]


def aperture_radec(aperture: str, row: Mapping[str, Any]) -> tuple[float, float]:
    """Sky position (deg) of ``aperture``'s reference point for the attitude of plan row ``row``.

    The attitude puts the target (``target_ra``, ``target_dec``) at the ``.pointing`` row's
    (``v2``, ``v3``) with V3 at position angle ``v3pa`` at V1 (the roll at (v2, v3) follows from
    it), as the observatory (and Mirage's yaml generator) does.
    """
    from pysiaf.utils import rotations

    from webbflow.sim._siaf_names import lookup

    ap, _ = lookup(aperture, None)
    v2, v3 = float(row["v2"]), float(row["v3"])
    ra, dec, pa = float(row["target_ra"]), float(row["target_dec"]), float(row["v3pa"])
    local_roll = rotations.posangle(rotations.attitude(0.0, 0.0, ra, dec, pa), v2, v3)
    attitude = rotations.attitude(v2, v3, ra, dec, local_roll)
    ra_ref, dec_ref = rotations.pointing(attitude, ap.V2Ref, ap.V3Ref)
    return float(ra_ref) % 360.0, float(dec_ref)
