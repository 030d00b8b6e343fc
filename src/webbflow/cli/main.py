"""The ``webbflow`` command.

Exit codes follow ``strun``: 0 success, 1 a step or product failed, 64 a bad
command line. Errors are one line on stderr, never a traceback (``--debug``
shows it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from webbflow import __version__
from webbflow.errors import EXIT_FAILED, EXIT_OK, UsageError, WebbflowError, suggest

log = logging.getLogger("webbflow")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="webbflow", description="Simulate and calibrate JWST exposures, lazily, in tiles.")
    parser.add_argument("--version", action="version", version=f"webbflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a pipeline on files: webbflow run detector1|image2|image3 FILE...",
        epilog="Step parameters: --steps.<step>.<param>=VALUE (as strun), e.g. "
        "--steps.jump.rejection_threshold=5 --steps.dark_current.override_dark=N/A "
        "--steps.flat_field.skip=true",
    )
    run.add_argument("pipeline", help="pipeline name (detector1, image2, image3)")
    run.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="detector1: *_uncal.fits, *_ramp.fits; image2: *_rate(ints).fits or a level-2 ASN.json; "
        "image3: a level-3 ASN.json",
    )
    _add_run_options(run)
    run.add_argument(
        "--allow-outside", action="store_true", help="allow association members outside its folder"
    )

    sim = sub.add_parser(
        "simulate",
        help="simulate exposures from configuration files (webbflow or Mirage YAML)",
        epilog="Mirage YAML files run unchanged; what webbflow replaces or ignores is reported once.",
    )
    sim.add_argument("configs", nargs="+", type=Path, help="exposure configuration files (.yaml)")
    sim.add_argument("--output-dir", "-o", type=Path, help="where products go (default: the config's)")
    sim.add_argument(
        "--products",
        help="comma-separated: uncal, linear, seed (default: the config's, uncal,seed)",
    )
    sim.add_argument("--zarr", action="store_true", help="also write the whole simulation as Zarr")
    sim.add_argument("--seed", type=int, help="override the configuration's random seed")
    sim.add_argument("--calibrate", action="store_true", help="also run Detector1 on the simulated ramps")
    sim.add_argument("--scheduler", help="threads (default), sync, local:N, or a dask scheduler address")
    sim.add_argument("--tile", type=int, help="tile edge in pixels (rounded up to 256; data do not change)")
    sim.add_argument("--overwrite", action="store_true", help="replace existing products")
    sim.add_argument("--quiet", "-q", action="store_true", help="no progress or log output")

    asn = sub.add_parser("asn", help="jwst-style associations: webbflow asn make --kind image3 FILE...")
    asn_sub = asn.add_subparsers(dest="asn_command", required=True, parser_class=_Parser)
    make = asn_sub.add_parser("make", help="write an association of exposure files (as asn_from_list)")
    make.add_argument("files", nargs="+", type=Path, help="exposure files (*_rate.fits, *_cal.fits)")
    make.add_argument("--kind", choices=("image2", "image3"), required=True)
    make.add_argument("--output", "-o", type=Path, help="association file (default <product>_asn.json)")
    make.add_argument("--product-name", help="product name (default: from the files' headers)")
    make.add_argument("--asn-id", help="association id (default a3001 / o<obs>)")
    make.add_argument("--program", help="program number")
    make.add_argument("--target", help="target number")
    make.add_argument("--background", nargs="*", type=Path, default=[], help="image2: background exposures")
    make.add_argument(
        "--selfcal",
        action="store_true",
        help="image2: background from the other science files (their clipped median: self-calibration)",
    )
    make.add_argument("--allow-outside", action="store_true", help="allow members outside the file's folder")
    make.add_argument("--overwrite", action="store_true")

    steps = sub.add_parser("steps", help="list steps and their parameters")
    steps.add_argument("name", nargs="?", help="a step or pipeline name")

    info = sub.add_parser("info", help="show an exposure's dimensions and metadata")
    info.add_argument("file", type=Path)
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")

    demo = sub.add_parser(
        "demo", help="simulate a NIRCam star and galaxy field and calibrate it (offline, no setup)"
    )
    demo.add_argument("--output-dir", "-o", type=Path, default=Path("webbflow-demo"))
    demo.add_argument(
        "--miri",
        action="store_true",
        help="the MIRI imager instead (MIRIM_SUB256, F770W, FASTR1 x30 x3 integrations; then Image2)",
    )
    demo.add_argument("--aperture", help="SIAF aperture (default NRCA1_SUB640; MIRI: MIRIM_SUB256)")
    demo.add_argument("--full-frame", action="store_true", help="the detector's full frame (NRCA1_FULL)")
    demo.add_argument("--filter", help="default F200W (MIRI: F770W)")
    demo.add_argument("--readpatt", help="default RAPID (MIRI: FASTR1)")
    demo.add_argument("--ngroups", type=int, help="default 10 (MIRI: 30)")
    demo.add_argument("--nints", type=int, help="default 1 (MIRI: 3)")
    demo.add_argument("--stars", type=int, default=300, help="stars in the synthetic field")
    demo.add_argument("--galaxies", type=int, default=100, help="galaxies in the synthetic field")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--test-pattern", action="store_true", help="a synthetic test pattern instead of a simulation"
    )
    demo.add_argument("--size", type=int, default=512, help="test pattern: subarray edge in pixels")
    demo.add_argument("--detector", default="NRCA1", help="test pattern: detector")
    demo.add_argument("--scheduler")
    demo.add_argument("--overwrite", action="store_true")

    from webbflow.cli import plan, program

    plan.add_parser(sub)
    program.add_parser(sub)
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", "-o", type=Path, default=Path(), help="where products go (default: .)")
    p.add_argument("--parameter-file", "-p", type=Path, help="YAML/ASDF step parameters (jwst form accepted)")
    p.add_argument(
        "--save-intermediate",
        choices=("zarr", "fits"),
        help="also write the calibrated ramp (input of ramp_fit) as *_ramp.zarr or *_ramp.fits",
    )
    p.add_argument(
        "--scheduler",
        help="threads (default), sync, local (a cluster sized to this machine), local:N, "
        "a dask scheduler address, or a cluster spec .yaml (docs/clusters.md)",
    )
    p.add_argument("--tile", type=int, help="tile edge in pixels (default: from a memory budget)")
    p.add_argument("--overwrite", action="store_true", help="replace existing products")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or log output")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``webbflow`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return _main(argv)
    except WebbflowError as exc:
        if debug:
            raise
        print(f"webbflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("webbflow: interrupted; no partial product was kept", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug, not a user error: one line, and how to see more
        if debug:
            raise
        print(
            f"webbflow: error: unexpected {type(exc).__name__}: {exc} (rerun with --debug)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _main(argv: list[str]) -> int:
    from webbflow.cli.overrides import merge, parse_step_args, read_parameter_file

    step_tokens = _take_step_tokens(argv)
    args = _build_parser().parse_args(argv)
    if step_tokens and args.command not in ("run", "program"):
        raise UsageError("--steps.* options go with 'webbflow run' and 'webbflow program'")
    _setup_logging(getattr(args, "quiet", False))
    if args.command == "steps":
        return _cmd_steps(args.name)
    if args.command == "info":
        return _cmd_info(args.file, args.json)
    if args.command == "demo":
        return _cmd_demo(args)
    if args.command == "simulate":
        return _cmd_simulate(args)
    if args.command == "asn":
        return _cmd_asn(args)
    if args.command == "plan":
        from webbflow.cli.plan import cmd_plan

        return cmd_plan(args)
    if args.command == "program":
        from webbflow.cli.program import run as run_program

        return run_program(args, parse_step_args(step_tokens))
    from webbflow.graphs.runner import RunOptions

    runner = _pipeline_runner(args.pipeline)
    if args.save_intermediate and args.pipeline != "detector1":
        raise UsageError("--save-intermediate applies to 'webbflow run detector1' only")
    file_steps = read_parameter_file(args.parameter_file) if args.parameter_file else {}
    steps = merge(file_steps, parse_step_args(step_tokens))
    options = RunOptions(
        output_dir=args.output_dir,
        save_intermediate=args.save_intermediate,
        scheduler=args.scheduler,
        tile=args.tile,
        overwrite=args.overwrite,
        progress=not args.quiet,
        allow_outside=args.allow_outside,
    )
    if args.tile is not None and args.tile < 1:
        raise UsageError(f"--tile must be a positive number of pixels, got {args.tile}")
    paths = runner(args.inputs, steps, options)
    for path in paths:
        print(path)
    return EXIT_OK


def _pipeline_runner(name: str) -> Any:
    """``run_<name>(inputs, steps, options)`` of pipeline ``name``; UsageError if there is none."""
    from webbflow.graphs import PIPELINES
    from webbflow.graphs.runner import run_detector1, run_image2

    runners: dict[str, Any] = {"detector1": run_detector1, "image2": run_image2}
    if name == "image3":  # built separately; detector1 and image2 work without it
        try:
            module = importlib.import_module("webbflow.graphs.image3")
        except ModuleNotFoundError as exc:
            if exc.name != "webbflow.graphs.image3":
                raise
            module = None
        run_image3 = getattr(module, "run_image3", None)
        if run_image3 is None:
            raise UsageError("pipeline 'image3' is not available in this version of webbflow")
        return run_image3
    if name not in runners:
        known = sorted({*PIPELINES, *runners, "image3"})
        raise UsageError(f"unknown pipeline {name!r}{suggest(name, known)} (available: {', '.join(known)})")
    return runners[name]


def _take_step_tokens(argv: list[str]) -> list[str]:
    """Remove ``--steps.*`` tokens (and their separate values) from ``argv``; return them."""
    taken: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i].startswith("--steps."):
            taken.append(argv.pop(i))
            if "=" not in taken[-1] and i < len(argv) and not argv[i].startswith("--"):
                taken.append(argv.pop(i))
            continue
        i += 1
    return taken


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _cmd_steps(name: str | None) -> int:
    from webbflow.engine.step import STEPS, Pipeline, get_step
    from webbflow.graphs import PIPELINES

    get_step("dq_init")  # loads the built-in steps
    if name is None:
        for pname, pcls in PIPELINES.items():
            print(f"{pname}: {' → '.join(getattr(pcls, 'step_names', ()))}")
        print()
        for sname, scls in sorted(STEPS.items()):
            if not issubclass(scls, Pipeline):
                refs = ", ".join(scls.reftypes) or "-"
                print(f"{sname:18s} reference types: {refs}")
        return EXIT_OK
    cls = PIPELINES.get(name) or get_step(name)
    print(f"{name}  (meta.cal_step.{cls.cal_step}; reference types: {', '.join(cls.reftypes) or 'none'})")
    doc = (cls.__doc__ or "").strip().splitlines()
    if doc:
        print(f"  {doc[0]}")
    for pname, ptype, default, pdoc in cls.describe():
        print(f"  --steps.{name}.{pname}={default!s:<10} [{ptype}] {pdoc}")
    return EXIT_OK


def _cmd_info(path: Path, as_json: bool) -> int:
    from webbflow.io.fits_reader import read_headers

    meta, _, extensions = read_headers(path)
    if as_json:
        print(json.dumps(meta, indent=2, default=str))
        return EXIT_OK
    print(f"{path}")
    print(f"  extensions: {', '.join(extensions)}")
    for section in ("instrument", "exposure", "subarray", "observation", "cal_step"):
        values: Any = meta.get(section)
        if values:
            print(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    refs = meta.get("ref_file", {})
    if refs:
        print(
            "  ref_file: " + ", ".join(f"{k}={v.get('name')}" for k, v in refs.items() if isinstance(v, dict))
        )
    return EXIT_OK


def _cmd_asn(args: argparse.Namespace) -> int:
    from webbflow.io.asn import make_association, write_association

    asn = make_association(
        args.files,
        kind=args.kind,
        product_name=args.product_name,
        asn_id=args.asn_id,
        program=args.program,
        target=args.target,
        with_backgrounds=args.background,
        selfcal=args.selfcal,
    )
    default = f"{asn.products[0].name}_asn.json" if args.kind == "image3" else "image2_asn.json"
    path = write_association(
        asn, args.output or Path(default), overwrite=args.overwrite, allow_outside=args.allow_outside
    )
    print(path)
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from webbflow.graphs.runner import RunOptions, run_detector1, run_simulate
    from webbflow.sim.config import load_config

    if args.tile is not None and args.tile < 1:
        raise UsageError(f"--tile must be a positive number of pixels, got {args.tile}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    configs = []
    for path in args.configs:
        cfg = load_config(path)
        changes: dict[str, Any] = {}
        if args.seed is not None:
            changes["seed"] = args.seed
        output: dict[str, Any] = {}
        if args.output_dir is not None:
            output["directory"] = args.output_dir
        if args.products:
            output["products"] = [p.strip() for p in args.products.split(",") if p.strip()]
        if args.zarr:
            output["zarr"] = True
        if output:
            changes["output"] = cfg.output.model_validate({**cfg.output.model_dump(), **output})
        if changes:
            cfg = cfg.model_copy(update=changes)
        for note in cfg.notes:
            log.warning("%s: %s", path, note)
        configs.append(cfg)
    options = RunOptions(
        scheduler=args.scheduler, tile=args.tile, overwrite=args.overwrite, progress=not args.quiet
    )
    paths = run_simulate(configs, options)
    if args.calibrate:
        uncals = [p for p in paths if p.name.endswith("_uncal.fits")]
        if not uncals:
            raise UsageError("--calibrate needs the uncal product (add it to --products)")
        for uncal in uncals:
            paths += run_detector1([uncal], {}, replace(options, output_dir=uncal.parent))
    for path in paths:
        print(path)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from webbflow.graphs.runner import RunOptions, run_detector1, run_image2, run_simulate
    from webbflow.sim.config import config_from_dict
    from webbflow.sim.field import write_field

    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    options = RunOptions(output_dir=out, scheduler=args.scheduler, overwrite=args.overwrite)
    miri = bool(args.miri)
    defaults = _MIRI_DEMO if miri else _NIR_DEMO
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.test_pattern:
        return _demo_test_pattern(args, options)
    aperture = args.aperture if not args.full_frame else args.aperture.split("_")[0] + "_FULL"
    instrument = "MIRI" if miri else "NIRCAM"
    ra, dec = 53.1625, -27.7914
    print(f"Writing a synthetic field ({args.stars} stars, {args.galaxies} galaxies) as Mirage catalogs...")
    width = (150.0 if args.full_frame else 30.0) * (1.0 if not miri else 4.0)
    mags = {"bright": 14.0, "faint": 22.0} if miri else {}  # MIRI sees ~10 mag less deep in 10 s
    cats = write_field(
        out, ra=ra, dec=dec, width_arcsec=width, n_stars=args.stars, n_galaxies=args.galaxies,
        bands=((instrument, args.filter, "" if miri else "CLEAR"),), seed=args.seed, name="demo", **mags,
    )  # fmt: skip
    config = config_from_dict(
        {
            "instrument": instrument,
            "aperture": aperture,
            "filter": args.filter,
            "readout": {"readpatt": args.readpatt, "ngroups": args.ngroups, "nints": args.nints},
            "pointing": {"ra": ra, "dec": dec, "v3pa": 0.0},
            "catalogs": {"point": [cats.point], "galaxy": [cats.galaxy] if cats.galaxy else []},
            "background": {"level": "low"},
            "seed": args.seed,
            "observation": {"program": "09999", "target_name": "WEBBFLOW DEMO FIELD"},
            "output": {"directory": out, "products": ["uncal", "seed"]},
        },
        "demo",
    )
    print(
        f"Simulating {aperture} {args.filter} {args.readpatt} x{args.ngroups} groups (embedded references)..."
    )
    paths = run_simulate([config], options)
    uncal = next(p for p in paths if p.name.endswith("_uncal.fits"))
    print("Calibrating it with Detector1 (embedded default reference files, no network)...")
    # MIRI: jwst skips emicorr by default; the demo removes the simulated EMI (reset_model: the
    # fit sees the ramps without the known reset anomaly)
    steps = {"emicorr": {"skip": False, "reset_model": True}} if miri else {}
    paths += run_detector1([uncal], steps, options)
    if miri:
        print("Calibrating the rate with Image2 (WCS, flat, photom: MJy/sr)...")
        rate = next(p for p in paths if p.name.endswith("_rate.fits"))
        paths += run_image2([rate], {}, options)
    print("Products:")
    for path in paths:
        print(f"  {path}")
    return EXIT_OK


_NIR_DEMO = {"aperture": "NRCA1_SUB640", "filter": "F200W", "readpatt": "RAPID", "ngroups": 10, "nints": 1}
_MIRI_DEMO = {"aperture": "MIRIM_SUB256", "filter": "F770W", "readpatt": "FASTR1", "ngroups": 30, "nints": 3}


def _demo_test_pattern(args: argparse.Namespace, options: Any) -> int:
    from webbflow.demo import write_test_pattern
    from webbflow.graphs.runner import run_detector1

    out: Path = args.output_dir
    subarray = None if args.full_frame else (1, 1, args.size, args.size)
    uncal = out / f"webbflow_demo_{args.detector.lower()}_uncal.fits"
    print(f"Writing a synthetic TEST PATTERN exposure (not a physical simulation): {uncal}")
    write_test_pattern(
        uncal,
        detector=args.detector,
        ngroups=args.ngroups,
        nints=args.nints,
        subarray=subarray,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print("Calibrating it with Detector1 (embedded default reference files, no network)...")
    paths = run_detector1([uncal], {}, options)
    print("Products:")
    for path in [uncal, *paths]:
        print(f"  {path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
