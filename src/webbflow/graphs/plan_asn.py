"""The associations of a plan: which exposures Image2 calibrates and Image3 combines.

Image3 makes one product per observation × target × instrument × optical elements (filter and
pupil) × subarray, with every detector and dither of that set, named as jwst names level-3
products (``jw01234-o001_t001_nircam_clear-f200w``; :mod:`webbflow.io.asn`). NIRCam's short- and
long-wavelength channels observe through different filters, so one NIRCam exposure feeds two
products.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webbflow.io.asn import Kind, _level3_name, make_association, write_association

if TYPE_CHECKING:
    from webbflow.graphs.plan import Plan


def _group_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        str(row["program"]),
        int(row["observation"]),
        int(row["target_id"]),
        str(row["instrument"]).lower(),
        str(row["filter"]).lower(),
        str(row["pupil"]).lower(),
        str(row["subarray"]).lower(),
    )


def image3_groups(plan: Plan) -> dict[str, list[str]]:
    """Level-3 product name -> the roots (``filename``) of its members, in plan order.

    The name is ``jw<program>-o<observation>_t<target>_<instrument>_<elements>[-<subarray>]``,
    with jwst's rules for the optical elements (sorted, ``clear`` kept for NIRCam, none for FGS).
    """
    groups: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for row in plan.rows():
        groups[_group_key(row)].append(str(row["filename"]))
    out: dict[str, list[str]] = {}
    for (program, obs, target, instrument, filt, pupil, subarray), roots in groups.items():
        info = {"instrument": instrument, "filter": filt or "n/a", "pupil": pupil, "subarray": subarray}
        paths = [Path(r) for r in roots]
        name = _level3_name(paths, [info] * len(paths), program, f"o{obs:03d}", f"t{target:03d}")
        out[name] = roots
    return out


def write_associations(
    plan: Plan, directory: str | os.PathLike[str], *, overwrite: bool = True
) -> dict[str, list[Path]]:
    """Write the plan's associations into ``directory`` (where the exposures' products go).

    One ``<product>_image2_asn.json`` (members ``<root>_rate.fits``) and one
    ``<product>_image3_asn.json`` (members ``<root>_cal.fits``) per :func:`image3_groups` product.

    Returns
    -------
    dict
        ``{"image2": [paths], "image3": [paths]}``.

    Raises
    ------
    OutputError
        A file exists and not ``overwrite``, or the folder is not writable.
    """
    folder = Path(directory)
    written: dict[str, list[Path]] = {"image2": [], "image3": []}
    for name, roots in image3_groups(plan).items():
        program, acid = name[2:7], name.split("-")[1].split("_")[0]
        target = name.split("_")[1]
        kinds: tuple[tuple[Kind, str], ...] = (("image2", "rate"), ("image3", "cal"))
        for kind, suffix in kinds:
            files = [folder / f"{root}_{suffix}.fits" for root in roots]
            asn = make_association(
                files,
                kind=kind,
                product_name=name if kind == "image3" else None,
                asn_id=acid,
                program=program,
                target=target,
            )
            path = folder / f"{name}_{kind}_asn.json"
            written[kind].append(write_association(asn, path, overwrite=overwrite))
    return written
