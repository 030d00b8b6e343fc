"""The Image3 ``skymatch`` step: sky levels of a list of cal exposures, recorded or subtracted.

As jwst's ``SkyMatchStep`` (``skymethod`` ``local`` / ``global`` / ``match`` / ``global+match``,
``match_down``, ``subtract``, ``skystat`` with ``nclip``, ``lsigma``, ``usigma``, ``binwidth``,
``lower``, ``upper``, ``dqbits``), written over tiles:

- ``local``: each exposure's sky statistic (:mod:`webbflow.steps.skymatch.stats`); ``global``:
  the smallest of them, for every exposure;
- ``match``: offsets between overlapping exposures from block skies on the sky
  (:mod:`webbflow.steps.skymatch.match`), zero for the lowest (``match_down``) or highest;
- ``global+match``: the match offsets plus the smallest local sky of the matched data.

Exposures of one jwst exposure group (same program, observation, visit, visit group, sequence,
activity and exposure number: the detectors of one exposure) get one sky, as in jwst: their
blocks are matched together and their local sky is the smallest of theirs.

The level goes to ``meta.background.level`` (``BKGLEVEL``) with ``subtracted`` (``BKGSUB``) and
``method`` (``BKGMETH``); with ``subtract=True`` it is also taken off ``sci`` (lazily). Data are
MJy/sr (surface brightness), so levels compare across exposures without pixel-area scaling.
Levels are computed eagerly in ``build_list`` from small per-tile reductions (a few passes over
the tiles); the pixels stay lazy. Unlike jwst, ``match`` compares sigma-clipped block medians
rather than ``skystat`` in exact polygon overlaps, each set of mutually overlapping exposures is
matched on its own, and ``stepsize`` (jwst's footprint-polygon vertex spacing) has no use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import dask
import dask.array as da
import numpy as np
import xarray as xr

from webbflow import dq
from webbflow.engine.list_step import ListStep
from webbflow.engine.params import StepParams, param
from webbflow.engine.step import SkipStep
from webbflow.errors import InputError, UsageError
from webbflow.model import get_meta, meta_value, with_meta
from webbflow.steps.skymatch import kernel, match
from webbflow.steps.skymatch.stats import SkyStat, Source, sky_values

log = logging.getLogger("webbflow")

SKYMETHODS: Final = ("local", "global", "match", "global+match")
SKYSTATS: Final = ("median", "midpt", "mean", "mode")
#: meta.observation fields that make jwst's exposure group id.
GROUP_FIELDS: Final = (
    "program_number",
    "observation_number",
    "visit_number",
    "visit_group",
    "sequence_id",
    "activity_id",
    "exposure_number",
)
_BLOCK_CLIP: Final = (3, 3.0)  # rounds, robust sigma, of the block medians
_BLOCK_MIN_FRACTION: Final = 0.5


@dataclass(frozen=True)
class Params(StepParams):
    """Parameters of :class:`SkyMatchStep` (jwst 3.0 ``SkyMatchStep.spec``, plus ``block_size``)."""

    skymethod: str = param("match", "Sky computation method.", choices=SKYMETHODS)
    match_down: bool = param(True, "Match to the lowest sky (else to the highest).")
    subtract: bool = param(False, "Subtract the sky from the data (else only record it).")
    stepsize: int | None = param(None, "jwst footprint vertex spacing; accepted, no effect here.")
    skystat: str = param("mode", "Sky statistic.", choices=SKYSTATS)
    dqbits: str | None = param(
        "~DO_NOT_USE+NON_SCIENCE", "Good DQ bits (astropy bit-flag syntax); None: ignore DQ."
    )
    lower: float | None = param(None, "Lowest usable pixel value, MJy/sr.")
    upper: float | None = param(None, "Highest usable pixel value, MJy/sr.")
    nclip: int = param(5, "Number of sky clipping iterations.", minimum=0)
    lsigma: float = param(4.0, "Lower clipping limit, sigma.", minimum=0.0)
    usigma: float = param(4.0, "Upper clipping limit, sigma.", minimum=0.0)
    binwidth: float = param(0.1, "Histogram bin width for mode/midpt, sigma.", minimum=0.0)
    block_size: int = param(32, "Block side (px) of the sky grid used by 'match'.", minimum=4)


class SkyMatchStep(ListStep):
    """Compute (and optionally subtract) the sky of a list of cal exposures."""

    name = "skymatch"
    Params = Params

    def __init__(self, params: StepParams | None = None, /, **values: Any) -> None:
        super().__init__(params, **values)
        p: Any = self.params
        for key in ("lsigma", "usigma", "binwidth"):
            if not getattr(p, key) > 0:
                raise UsageError(f"skymatch.{key}: {getattr(p, key)!r} must be > 0")
        if p.lower is not None and p.upper is not None and not p.lower < p.upper:
            raise UsageError(f"skymatch.lower ({p.lower}) must be below skymatch.upper ({p.upper})")
        self.bad_bits = bad_bits(p.dqbits)

    def build_list(self, inputs: Sequence[xr.Dataset]) -> list[xr.Dataset]:
        """The exposures with ``meta.background`` set (and ``sci`` sky-subtracted if asked)."""
        p: Any = self.params
        for ds in inputs:
            _require_image(ds, p.skymethod)
        base = [_previous_level(ds, p.subtract) for ds in inputs]
        groups, members = exposure_groups(inputs)
        ngroups = len(members)
        deltas = np.zeros(ngroups)
        if "match" in p.skymethod:
            deltas = self._match(inputs, members)
        levels: list[float | None] = [None if math.isnan(d) else float(d) for d in deltas]
        if p.skymethod != "match":
            local = self._local(inputs, members, np.nan_to_num(deltas))
            if p.skymethod == "local":
                levels = local
            else:
                valid = [v for v in local if v is not None]
                floor = min(valid) if valid else None
                if floor is None:
                    log.warning("skymatch: no usable pixels in any exposure; no global sky")
                add = np.nan_to_num(deltas) if p.skymethod == "global+match" else np.zeros(ngroups)
                levels = [None if floor is None else float(floor + a) for a in add]
        if all(level is None for level in levels):
            raise SkipStep(f"no sky could be computed ({p.skymethod}: no usable pixels or no overlaps)")
        out = []
        for k, ds in enumerate(inputs):
            level = levels[groups[k]]
            if level is None:
                log.warning("skymatch: %s: unable to compute the sky; left unchanged", _label(ds))
                out.append(ds.copy())
                continue
            log.info("skymatch: %s: sky %.6g MJy/sr (%s)", _label(ds), level, p.skymethod)
            if p.subtract:
                sci = ds["sci"]
                ds = ds.assign(sci=sci.copy(data=sci.data - np.float32(level)))
            updates = {
                "background.level": base[k] + level,
                "background.subtracted": bool(p.subtract),
                "background.method": p.skymethod,
            }
            out.append(with_meta(ds, updates))
        return out

    def _match(self, inputs: Sequence[xr.Dataset], members: Sequence[Sequence[int]]) -> np.ndarray:
        """Per-group offsets (NaN for groups overlapping no other) from block skies."""
        p: Any = self.params
        lazy = [block_medians(ds, p.block_size, self.bad_bits) for ds in inputs]
        medians = dask.compute(*lazy)
        blocks = [
            match.block_sky(m, ds.attrs["wcs"], ds.sizes["y"], ds.sizes["x"], p.block_size)
            for m, ds in zip(medians, inputs, strict=True)
        ]
        grouped = [match.merge_blocks([blocks[k] for k in g]) for g in members]
        pairs = match.pair_differences(grouped)
        for pair in pairs:
            log.debug(
                "skymatch: groups %d-%d: delta %.6g MJy/sr from %d blocks (scatter %.3g)",
                pair.i,
                pair.j,
                pair.delta,
                pair.weight,
                pair.scatter,
            )
        return match.solve_offsets(pairs, len(members), match_down=p.match_down)

    def _local(
        self, inputs: Sequence[xr.Dataset], members: Sequence[Sequence[int]], deltas: np.ndarray
    ) -> list[float | None]:
        """Per-group local sky of the data minus the group's offset: the smallest of its members'."""
        p: Any = self.params
        stat = SkyStat(p.skystat, p.lower, p.upper, p.nclip, p.lsigma, p.usigma, p.binwidth)
        offset = {k: float(deltas[g]) for g, ks in enumerate(members) for k in ks}
        sources = [
            Source(_dask(ds["sci"]), _dask(ds["dq"]), self.bad_bits, offset[k]) for k, ds in enumerate(inputs)
        ]
        values = sky_values(sources, stat)
        out: list[float | None] = []
        for ks in members:
            found = [v for k in ks if (v := values[k].value) is not None]
            out.append(float(min(found)) if found else None)
        return out


def bad_bits(dqbits: str | int | None) -> int:
    """DQ bits that make a pixel unusable, from jwst's good-bits ``dqbits`` (:func:`webbflow.dq.bad_bits`)."""
    return dq.bad_bits(dqbits, "skymatch.dqbits")


def exposure_groups(inputs: Sequence[xr.Dataset]) -> tuple[list[int], list[list[int]]]:
    """Group index of each exposure and the members of each group (jwst exposure groups).

    An exposure's group is ``meta.group_id``, else the jwst id built from :data:`GROUP_FIELDS`
    when all are known, else it is alone.
    """
    keys: dict[Any, int] = {}
    groups = []
    for k, ds in enumerate(inputs):
        meta = get_meta(ds)
        key: Any = meta.get("group_id")
        if key is None:
            fields = [meta_value(ds, f"observation.{f}") for f in GROUP_FIELDS]
            key = tuple(str(f) for f in fields) if all(f is not None for f in fields) else ("alone", k)
        groups.append(keys.setdefault(key, len(keys)))
    members: list[list[int]] = [[] for _ in keys]
    for k, g in enumerate(groups):
        members[g].append(k)
    return groups, members


def block_medians(ds: xr.Dataset, block: int, bad: int) -> da.Array:
    """Lazy (nby, nbx, 2) block medians and counts of an exposure, on tiles aligned to the blocks."""
    sci = _dask(ds["sci"])
    tiles = tuple(-(-max(c) // block) * block for c in sci.chunks)
    sci = sci.rechunk(tiles)
    dqa = _dask(ds["dq"]).rechunk(tiles)
    chunks = tuple(tuple(-(-c // block) for c in axis) for axis in sci.chunks)
    return da.map_blocks(
        kernel.block_medians,
        sci,
        dqa,
        bad_bits=bad,
        block=block,
        nclip=_BLOCK_CLIP[0],
        sigma=_BLOCK_CLIP[1],
        min_fraction=_BLOCK_MIN_FRACTION,
        new_axis=2,
        chunks=(*chunks, (2,)),
        dtype=np.float64,
        meta=np.empty((0, 0, 0), np.float64),
    )


def _dask(var: xr.DataArray) -> da.Array:
    return var.data if isinstance(var.data, da.Array) else da.from_array(np.asarray(var.data))


def _label(ds: xr.Dataset) -> str:
    return str(meta_value(ds, "filename", "") or "exposure")


def _require_image(ds: xr.Dataset, method: str) -> None:
    """One-line InputError unless ``ds`` is a 2-D cal exposure (with a WCS for matching)."""
    for var in ("sci", "dq"):
        if var not in ds:
            raise InputError(f"{_label(ds)}: skymatch needs variable {var!r} (a cal exposure)")
        if tuple(ds[var].dims) != ("y", "x"):
            raise InputError(f"{_label(ds)}: skymatch needs {var} with dims ('y', 'x'), got {ds[var].dims}")
    if "match" in method and ds.attrs.get("wcs") is None:
        raise InputError(f"{_label(ds)}: skymethod={method!r} needs attrs['wcs'] (run assign_wcs first)")


def _previous_level(ds: xr.Dataset, subtract: bool) -> float:
    """The level already subtracted by an earlier skymatch (jwst's consistency rules)."""
    background: Mapping[str, Any] = get_meta(ds).get("background") or {}
    subtracted, level = background.get("subtracted"), background.get("level")
    if subtracted is None:
        if level is not None:
            raise InputError(f"{_label(ds)}: meta.background.level is set but background.subtracted is not")
        return 0.0
    if bool(subtracted) != subtract:
        raise InputError(
            f"{_label(ds)}: meta.background.subtracted={bool(subtracted)} but skymatch.subtract={subtract}"
        )
    if level is None:
        raise InputError(f"{_label(ds)}: meta.background.subtracted is set but background.level is not")
    return float(level) if subtract else 0.0
