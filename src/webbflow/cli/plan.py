"""``webbflow plan``: an APT program's exposures as a plan table (and Mirage YAML files), no simulation.

Per-observation values are written ``OBS=VALUE,OBS=VALUE`` (``--roll 1=120,2=135``); a single
value applies to every observation.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from webbflow.errors import EXIT_OK, UsageError

T = TypeVar("T")


def add_parser(sub: Any) -> None:
    """Add the ``plan`` subcommand to ``sub`` (the ``webbflow`` subparsers)."""
    p = sub.add_parser(
        "plan",
        help="expand an APT program (.xml + .pointing) into a plan table, one row per exposure per detector",
        epilog="Per-observation values: --roll 1=120,2=135 (also --date, --background).",
    )
    p.add_argument("xml", type=Path, help="APT export (.xml)")
    p.add_argument("pointing", type=Path, help="APT pointing file (.pointing)")
    p.add_argument("--output", "-o", type=Path, help="plan file (default: <xml stem>_plan.ecsv here)")
    p.add_argument(
        "--yaml-dir",
        type=Path,
        help="also write one Mirage input YAML per row here (MIRI rows: for webbflow simulate, not Mirage)",
    )
    add_plan_options(p)
    p.add_argument("--seed", type=int, default=0, help="random seed written in the Mirage YAML files")


def add_plan_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a plan (shared by ``webbflow plan`` and ``webbflow program``)."""
    p.add_argument("--roll", help="V3 position angle, deg (default 0)")
    p.add_argument("--date", help="start date-time, ISO UTC (e.g. 2026-03-01 or 2026-03-01T12:00:00)")
    p.add_argument("--catalogs", help="a catalog file, or a YAML file of catalogs per target/instrument")
    p.add_argument("--background", default="medium", help="none, low, medium (default), high, or MJy/sr")
    p.add_argument(
        "--subarray",
        help="reduced size for tests and demos, e.g. SUB160 (MIRI: SUB64, MIRIM_SUB64, BRIGHTSKY...)",
    )
    p.add_argument("--max-groups", type=int, help="cap the groups per integration")
    p.add_argument("--max-ints", type=int, help="cap the integrations per exposure")
    p.add_argument("--detectors", help="keep only these detectors, comma list (e.g. NRCB1,NRCBLONG,MIRIMAGE)")


def per_observation(option: str, text: str | None, convert: Callable[[str], T]) -> T | dict[int, T] | None:
    """``VALUE`` or ``OBS=VALUE,...`` of option ``option`` (``None`` stays ``None``).

    Raises
    ------
    UsageError
        A value ``convert`` refuses, or an observation that is not a number.
    """
    if text is None:
        return None

    def one(value: str) -> T:
        try:
            return convert(value.strip())
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{option} {value.strip()!r}: {exc}") from None

    if "=" not in text:
        return one(text)
    out: dict[int, T] = {}
    for item in text.split(","):
        obs, _, value = item.partition("=")
        if not obs.strip().isdigit() or not value.strip():
            raise UsageError(f"{option} {item!r}: expected OBS=VALUE (e.g. 1=120)")
        out[int(obs)] = one(value)
    return out


def _iso(text: str) -> str:
    dt.datetime.fromisoformat(text)  # raises ValueError with the reason
    return text


def _level(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def cmd_plan(args: argparse.Namespace) -> int:
    """Run ``webbflow plan``: make, summarise and write the plan (and the YAML files)."""
    from webbflow.graphs.plan import sim_config
    from webbflow.io.mirage_yaml_writer import write_mirage_yaml

    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    plan = plan_from_args(args)
    out = plan.write(args.output or Path(f"{args.xml.stem}_plan.ecsv"))
    yamls = []
    if args.yaml_dir is not None:
        meta = plan.extra_meta
        for row in plan.rows():
            cfg = sim_config(
                row,
                seed=args.seed,
                output_dir=args.yaml_dir,
                title=str(meta.get("title", "")),
                pi_name=str(meta.get("pi_name", "")),
            )
            yamls.append(write_mirage_yaml(cfg, args.yaml_dir / f"{row['filename']}.yaml", row))
    for line in summary(plan):
        print(line)
    print(f"plan written to {out}")
    if args.yaml_dir is not None:
        print(f"{len(yamls)} Mirage YAML files written to {args.yaml_dir}")
    return EXIT_OK


def plan_from_args(args: argparse.Namespace) -> Any:
    """The plan the options of :func:`add_plan_options` describe for ``args.xml``, ``args.pointing``."""
    from webbflow.graphs.plan import make_plan, select_detectors

    for name in ("max_groups", "max_ints"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    # argparse's default makes --background never None
    plan = make_plan(
        args.xml,
        args.pointing,
        roll=per_observation("--roll", args.roll, float) or 0.0,
        dates=per_observation("--date", args.date, _iso),
        catalogs=args.catalogs,
        background=per_observation("--background", args.background, _level),  # type: ignore[arg-type]
        subarray=args.subarray,
        max_groups=args.max_groups,
        max_ints=args.max_ints,
    )
    if args.detectors:
        plan = select_detectors(plan, [d.strip() for d in args.detectors.split(",") if d.strip()])
    return plan


def summary(plan: Any) -> list[str]:
    """Lines: files and exposures per instrument and per observation, then the unsupported ones."""
    rows = list(plan.rows())
    exposure_ids = {
        (r["observation"], r["visit"], r["visit_group"], r["sequence"], r["activity"], r["exposure"])
        for r in rows
    }
    program = plan.extra_meta.get("program", rows[0]["program"] if rows else "?")
    title = plan.extra_meta.get("title", "")
    head = f"program {program}{f' ({title})' if title else ''}"
    lines = [f"{head}: {len(rows)} detector files, {len(exposure_ids)} exposures"]
    per_instrument = Counter(str(r["instrument"]) for r in rows)
    lines.append(
        "  per instrument: " + (", ".join(f"{k} {v}" for k, v in sorted(per_instrument.items())) or "none")
    )
    per_obs: dict[int, Counter[str]] = {}
    templates: dict[int, set[str]] = {}
    for r in rows:
        per_obs.setdefault(int(r["observation"]), Counter())[str(r["instrument"])] += 1
        templates.setdefault(int(r["observation"]), set()).add(str(r["template"]))
    for obs in sorted(per_obs):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(per_obs[obs].items()))
        lines.append(f"  observation {obs:3d} ({'+'.join(sorted(templates[obs]))}): {counts}")
    if plan.unsupported:
        lines.append(f"unsupported ({len(plan.unsupported)}, not in the plan):")
        for u in plan.unsupported:
            lines.append(f"  observation {u.observation:3d} {u.template} ({u.instrument}): {u.reason}")
    return lines
