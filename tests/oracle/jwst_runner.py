"""Run jwst's ``Detector1Pipeline`` offline as a test oracle, and compare products.

The jwst pipeline runs in a fresh Python process (this file, run as a script),
so the CRDS environment variables are set before ``jwst``/``crds`` are first
imported and the calling process (pytest, a benchmark) never imports jwst.
Every reference type of every Detector1 step gets an explicit
``override_<reftype>``: the files given, ``"N/A"`` for all others. CRDS is
pointed at an empty local cache naming a context it never fetches, with a
server URL on a closed port; when ``unshare`` is available the run is also
wrapped in ``unshare -n`` (no network namespace), which proves nothing is
downloaded.

Public helpers: :func:`prepare_jwst_detector1` (the command, environment and
output paths, for callers that launch and watch the process themselves),
:func:`run_jwst_detector1`, :func:`compare_products`, :func:`format_comparison`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: CRDS context name of the offline cache (any name: it is never fetched).
OFFLINE_CONTEXT = "jwst_offline.pmap"
#: DQ bits compared one by one (standard JWST values).
DQ_BITS = {"DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4}


# -- the parent side ------------------------------------------------------------------------
def offline_crds_env(root: Path) -> dict[str, str]:
    """Create an offline CRDS cache under ``root``; the environment variables that use it."""
    config = root / "config" / "jwst"
    config.mkdir(parents=True, exist_ok=True)
    server_config = {
        "observatory": "jwst",
        "operational_context": OFFLINE_CONTEXT,
        "latest_context": OFFLINE_CONTEXT,
        "edit_context": OFFLINE_CONTEXT,
        "versions_context": OFFLINE_CONTEXT,
        "force_remote_mode": False,
        "bad_files_list": [],
        "last_synced": "2026-01-01 00:00:00",  # crds logs it while reading this cache
    }
    (config / "server_config").write_text(repr(server_config))
    return {
        "CRDS_PATH": str(root),
        "CRDS_CONTEXT": OFFLINE_CONTEXT,
        "CRDS_MODE": "local",
        "CRDS_SERVER_URL": "https://localhost:1",
        "STPIPE_DISABLE_CRDS_STEPPARS": "true",
    }


@functools.cache
def network_isolation_prefix() -> tuple[str, ...]:
    """``("unshare", "-n")`` if it works here (needs privileges), else ``()``."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    for prefix in ((exe, "-n"), (exe, "-r", "-n")):
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return prefix
    return ()


#: Reference types jwst 3.0 uses without cutting them to the exposure's subarray
#: (CRDS serves one per subarray), so the harness cuts them.
UNCROPPED_BY_JWST = ("dark",)


def _window(path: Path) -> tuple[int, int, int, int]:
    from astropy.io import fits

    h = fits.getheader(path)
    return tuple(
        int(h.get(k, d))
        for k, d in (("SUBSTRT1", 1), ("SUBSTRT2", 1), ("SUBSIZE1", 2048), ("SUBSIZE2", 2048))
    )  # type: ignore[return-value]


def crop_reference(ref_path: Path, window: tuple[int, int, int, int], out_dir: Path) -> Path:
    """A copy of a reference file cut to ``window`` = (xstart, ystart, xsize, ysize), 1-based.

    Every image extension whose last two axes cover the reference's own window
    is cut; the SUBARRAY/SUBSTRT/SUBSIZE keywords are updated. Returns
    ``ref_path`` itself when it already matches.
    """
    from astropy.io import fits

    ref_window = _window(ref_path)
    if ref_window == window:
        return ref_path
    x0 = window[0] - ref_window[0]
    y0 = window[1] - ref_window[1]
    if x0 < 0 or y0 < 0 or x0 + window[2] > ref_window[2] or y0 + window[3] > ref_window[3]:
        raise ValueError(f"{ref_path}: window {ref_window} does not contain the exposure's {window}")
    out = out_dir / f"{ref_path.stem}_x{window[0]}y{window[1]}w{window[2]}h{window[3]}.fits"
    with fits.open(ref_path) as hdul:
        for hdu in hdul:
            data = hdu.data
            if (
                isinstance(hdu, fits.ImageHDU | fits.PrimaryHDU)
                and data is not None
                and data.ndim >= 2
                and data.shape[-2:] == (ref_window[3], ref_window[2])
            ):
                hdu.data = np.ascontiguousarray(data[..., y0 : y0 + window[3], x0 : x0 + window[2]])
        h = hdul[0].header
        h["SUBARRAY"] = "GENERIC" if window[2:] != (2048, 2048) else "FULL"
        h["SUBSTRT1"], h["SUBSTRT2"], h["SUBSIZE1"], h["SUBSIZE2"] = window
        hdul.writeto(out, overwrite=True)
    return out


@dataclass(frozen=True)
class JwstRun:
    """A prepared jwst Detector1 run: command line, environment, expected outputs, log."""

    argv: list[str]
    env: dict[str, str]
    rate_path: Path
    rateints_path: Path
    log_path: Path
    isolated: bool


def product_paths(uncal_path: Path, output_dir: Path) -> tuple[Path, Path]:
    """Where jwst writes ``rate`` and ``rateints`` for ``uncal_path``."""
    stem = uncal_path.name.removesuffix(".fits")
    root = stem.rsplit("_", 1)[0] if stem.endswith("_uncal") else stem
    return output_dir / f"{root}_rate.fits", output_dir / f"{root}_rateints.fits"


def prepare_jwst_detector1(
    uncal_path: str | Path,
    refs: Mapping[str, str | Path],
    output_dir: str | Path,
    steps_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    isolate_network: bool = True,
    python: str = sys.executable,
) -> JwstRun:
    """Write the run's configuration and offline CRDS cache; return how to launch it.

    Parameters
    ----------
    uncal_path
        The raw exposure.
    refs
        ``{reftype: path}`` for the reference types to use; every other type is ``"N/A"``.
    output_dir
        Where jwst writes its products (created); the configuration, log, CRDS
        cache and cut references go to ``output_dir/.jwst_oracle``. References of
        :data:`UNCROPPED_BY_JWST` are cut to the exposure's window first.
    steps_overrides
        Extra step parameters, ``{"jump": {"maximum_cores": "all"}}`` (jwst names).
    isolate_network
        Wrap the run in ``unshare -n`` when available.
    """
    uncal = Path(uncal_path).resolve()
    out = Path(output_dir).resolve()
    work = out / ".jwst_oracle"
    work.mkdir(parents=True, exist_ok=True)
    window = _window(uncal)
    jwst_refs = {k: Path(v).resolve() for k, v in refs.items()}
    for reftype in UNCROPPED_BY_JWST:
        if reftype in jwst_refs:
            jwst_refs[reftype] = crop_reference(jwst_refs[reftype], window, work)
    config = {
        "uncal": str(uncal),
        "output_dir": str(out),
        "refs": {k: str(v) for k, v in jwst_refs.items()},
        "steps": {k: dict(v) for k, v in (steps_overrides or {}).items()},
    }
    cfg_path = work / f"{uncal.stem}.json"
    cfg_path.write_text(json.dumps(config, indent=1))
    env = {**os.environ, **offline_crds_env(work / "crds")}
    prefix = network_isolation_prefix() if isolate_network else ()
    rate, rateints = product_paths(uncal, out)
    return JwstRun(
        [*prefix, python, str(Path(__file__).resolve()), str(cfg_path)],
        env,
        rate,
        rateints,
        work / f"{uncal.stem}.log",
        bool(prefix),
    )


def run_jwst_detector1(
    uncal_path: str | Path,
    refs: Mapping[str, str | Path],
    output_dir: str | Path,
    steps_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    isolate_network: bool = True,
    timeout: float | None = 3600,
) -> tuple[Path, Path]:
    """Run jwst's Detector1Pipeline offline in a subprocess; ``(rate_path, rateints_path)``.

    Raises
    ------
    RuntimeError
        If the run fails; the message ends with the last lines of its log.
    """
    run = prepare_jwst_detector1(
        uncal_path, refs, output_dir, steps_overrides, isolate_network=isolate_network
    )
    for path in (run.rate_path, run.rateints_path):
        path.unlink(missing_ok=True)
    with run.log_path.open("w") as log:
        proc = subprocess.run(
            run.argv, env=run.env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if proc.returncode != 0 or not run.rate_path.exists():
        tail = "\n".join(run.log_path.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"jwst Detector1 failed (exit {proc.returncode}); log {run.log_path}:\n{tail}")
    return run.rate_path, run.rateints_path


# -- comparison ---------------------------------------------------------------------------------
def _arrays(product: Any) -> dict[str, np.ndarray]:
    """``sci``/``err``/``dq`` numpy arrays of a FITS path, a Dataset or a mapping."""
    if isinstance(product, str | Path):
        from astropy.io import fits

        with fits.open(product) as hdul:
            return {k.lower(): np.array(hdul[k].data) for k in ("SCI", "ERR", "DQ")}
    return {k: np.asarray(product[k]) for k in ("sci", "err", "dq")}


def agree(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4, atol: float = 1e-6) -> np.ndarray:
    """Element-wise agreement: ``|a - b| <= rtol * max(|a|, |b|) + atol``, or both NaN.

    ``atol`` (same units as the data, DN/s for rates) keeps values that are both
    essentially zero from counting as disagreements. Infinite values agree only
    when equal.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + atol
    return (close & np.isfinite(a) & np.isfinite(b)) | (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))


def compare_products(ours: Any, theirs: Any, *, rtol: float = 1e-4, atol: float = 1e-6) -> dict[str, Any]:
    """Compare two ``rate`` (or two ``rateints``) products pixel by pixel.

    Parameters
    ----------
    ours, theirs
        FITS paths, xarray Datasets or mappings with ``sci``, ``err`` and ``dq``.
    rtol, atol
        Agreement criterion of :func:`agree`.

    Returns
    -------
    dict
        ``n``: elements compared; ``sci_agree``, ``err_agree``: fractions of elements
        agreeing; ``dq_identical``: fraction with the same DQ value;
        ``<FLAG>_identical`` for each of :data:`DQ_BITS`: fraction with the same bit;
        ``<flag>_ours``/``<flag>_theirs``: how many elements carry it;
        ``sci_max_rel_diff``: the largest relative difference among finite pairs;
        ``sci_nan_mismatch``: elements NaN in one and not the other.
    """
    a, b = _arrays(ours), _arrays(theirs)
    if a["sci"].shape != b["sci"].shape:
        raise ValueError(f"shapes differ: ours {a['sci'].shape}, theirs {b['sci'].shape}")
    n = int(a["sci"].size)
    out: dict[str, Any] = {"n": n, "shape": list(a["sci"].shape), "rtol": rtol, "atol": atol}
    out["sci_agree"] = float(agree(a["sci"], b["sci"], rtol, atol).mean())
    out["err_agree"] = float(agree(a["err"], b["err"], rtol, atol).mean())
    dqa, dqb = a["dq"].astype(np.uint32), b["dq"].astype(np.uint32)
    out["dq_identical"] = float((dqa == dqb).mean())
    for name, bit in DQ_BITS.items():
        out[f"{name}_identical"] = float(((dqa & bit) == (dqb & bit)).mean())
        out[f"{name}_ours"] = int(((dqa & bit) != 0).sum())
        out[f"{name}_theirs"] = int(((dqb & bit) != 0).sum())
    sa, sb = a["sci"].astype(np.float64), b["sci"].astype(np.float64)
    finite = np.isfinite(sa) & np.isfinite(sb)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(sa - sb) / np.maximum(np.maximum(np.abs(sa), np.abs(sb)), atol)
    out["sci_max_rel_diff"] = float(rel[finite].max()) if finite.any() else 0.0
    out["sci_median_rel_diff"] = float(np.median(rel[finite])) if finite.any() else 0.0
    out["sci_nan_mismatch"] = int((np.isnan(sa) != np.isnan(sb)).sum())
    return out


def format_comparison(name: str, result: Mapping[str, Any]) -> str:
    """One readable line per metric group for logs and reports."""
    flags = ", ".join(
        f"{f} {result[f'{f}_identical']:.4%} (ours {result[f'{f}_ours']}, jwst {result[f'{f}_theirs']})"
        for f in DQ_BITS
    )
    return (
        f"{name} {tuple(result['shape'])}: sci agree {result['sci_agree']:.4%} "
        f"(rtol {result['rtol']:g}, atol {result['atol']:g}; max rel diff "
        f"{result['sci_max_rel_diff']:.3g}, NaN mismatches {result['sci_nan_mismatch']}); "
        f"err agree {result['err_agree']:.4%}; dq identical {result['dq_identical']:.4%}; {flags}"
    )


# -- the child side (a fresh interpreter) ------------------------------------------------------
def _child(cfg_path: str) -> int:
    config = json.loads(Path(cfg_path).read_text())
    for key in ("CRDS_PATH", "CRDS_MODE", "CRDS_SERVER_URL", "STPIPE_DISABLE_CRDS_STEPPARS"):
        if key not in os.environ:
            raise SystemExit(f"{key} must be set before jwst is imported")
    from jwst.pipeline import Detector1Pipeline

    refs: dict[str, str] = config["refs"]
    steps: dict[str, dict[str, Any]] = {}
    for name, cls in Detector1Pipeline.step_defs.items():
        params = {f"override_{r}": refs.get(r, "N/A") for r in cls.reference_file_types}
        params.update(config["steps"].get(name, {}))
        steps[name] = params
    unknown = set(config["steps"]) - set(steps)
    if unknown:
        raise SystemExit(f"unknown Detector1 steps: {sorted(unknown)}")
    # the path itself, as a user would give it to strun: jwst reads our uncal directly
    Detector1Pipeline.call(config["uncal"], steps=steps, save_results=True, output_dir=config["output_dir"])
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: jwst_runner.py CONFIG.json")
    sys.exit(_child(sys.argv[1]))
