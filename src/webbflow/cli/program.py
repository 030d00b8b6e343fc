"""``webbflow program``: an APT program from proposal files to mosaics, resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from webbflow.cli.plan import add_plan_options as plan_options
from webbflow.errors import EXIT_FAILED, EXIT_OK, UsageError


def add_parser(sub: Any) -> None:
    """Register ``program`` on the ``webbflow`` subcommand parser ``sub``."""
    p = sub.add_parser(
        "program",
        help="an APT program end to end: webbflow program PROPOSAL.xml PROPOSAL.pointing -o DIR",
        description="Plan every exposure of an APT proposal, simulate it, calibrate it (Detector1, "
        "Image2) in one graph, then build each observation's mosaics (Image3). Rerunning the same "
        "command skips every product already complete and redoes the rest.",
        epilog="Step parameters: --steps.<step>.<param>=VALUE, e.g. --steps.jump.rejection_threshold=5 "
        "--steps.resample.skip=true (the per-exposure i2d) --steps.source_catalog.skip=true",
    )
    p.add_argument("xml", type=Path, help="the APT export (.xml), or a plan from 'webbflow plan' (.ecsv)")
    p.add_argument("pointing", type=Path, nargs="?", help="the APT pointing file (.pointing)")
    p.add_argument("--output-dir", "-o", type=Path, default=Path(), help="where products go (default: .)")
    p.add_argument(
        "--stages",
        default="simulate,detector1,image2,image3",
        help="comma list of simulate, detector1, image2, image3 (default: all)",
    )
    p.add_argument(
        "--scheduler",
        default="local",
        help="local (default: a cluster sized to this machine), local:N, a scheduler address, or a "
        "cluster spec .yaml (docs/clusters.md)",
    )
    plan_options(p)
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    p.add_argument("--checkpoint", choices=("zarr",), help="also keep Zarr checkpoints (sim, ramp, mosaic)")
    p.add_argument(
        "--verify",
        choices=("checksum", "size"),
        default="checksum",
        help="how a rerun checks products of earlier runs (default: sha256 checksum)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo every product, complete or not")
    p.add_argument("--tile", type=int, help="tile edge in pixels (default: from a memory budget)")
    p.add_argument(
        "--max-in-flight",
        type=int,
        help="exposures whose graphs are on the cluster at once (default: twice its worker threads)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or log output")


def run(args: argparse.Namespace, steps: dict[str, Any]) -> int:
    """Run ``webbflow program``; 0 when every product was written or already complete, else 1."""
    from webbflow.cli.plan import plan_from_args
    from webbflow.graphs.plan import read_plan, select_detectors
    from webbflow.graphs.program import ProgramOptions, check_stages, run_program

    stages = check_stages(args.stages.split(","))
    if args.max_in_flight is not None and args.max_in_flight < 1:
        raise UsageError(f"--max-in-flight must be >= 1, got {args.max_in_flight}")
    if args.tile is not None and args.tile < 1:
        raise UsageError(f"--tile must be a positive number of pixels, got {args.tile}")
    if args.xml.suffix.lower() == ".ecsv":
        if args.pointing is not None:
            raise UsageError("give either a plan (.ecsv) or an APT .xml and .pointing, not both")
        plan = read_plan(args.xml)  # the plan options shaped it already; only --detectors still applies
        if args.detectors:
            plan = select_detectors(plan, [d for d in args.detectors.split(",") if d.strip()])
    else:
        if args.pointing is None:
            raise UsageError(f"{args.xml}: the APT pointing file is missing (PROPOSAL.xml PROPOSAL.pointing)")
        plan = plan_from_args(args)
    out = args.output_dir
    if "simulate" in stages and not args.catalogs and not _has_catalogs(plan):
        from webbflow.graphs.program_field import with_synthetic_fields

        plan = with_synthetic_fields(plan, out / "catalogs", seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    plan.write(out / f"{_stem(args.xml)}_plan.ecsv")
    options = ProgramOptions(
        output_dir=out,
        stages=stages,
        scheduler=args.scheduler,
        steps=steps,
        seed=args.seed,
        checkpoint=args.checkpoint,
        verify=args.verify,
        overwrite=args.overwrite,
        tile=args.tile,
        progress=not args.quiet,
        window=args.max_in_flight,
    )
    report = run_program(plan, options)
    print(report.summary(), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


def _stem(path: Path) -> str:
    name = path.stem
    return name.removesuffix("_plan")


def _has_catalogs(plan: Any) -> bool:
    table = plan.table
    return any(
        col in table.colnames and any(str(v).strip() for v in table[col])
        for col in ("catalog_point", "catalog_galaxy", "catalog_extended")
    )
