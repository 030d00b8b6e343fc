"""The EMICORR reference: MIRI EMI frequencies, reference waveforms and readout clocks.

A jwst ``EmiModel`` file (stdatamodels ``emi.schema``) is ASDF with two trees:

``frequencies``
    ``{name: {"frequency": Hz, "phase_amplitudes": 1-D waveform}}``; the waveform is one
    period of the interference, sampled at phases ``(i + 0.5) / n``, in DN.
``subarray_cases``
    ``{case: {"rowclocks": int, "frameclocks": int, "freqs": {"FAST": [names],
    "SLOW": {detector: [names]}}}}``; ``case`` is the ``SUBARRAY`` name, with ``_FAST`` /
    ``_SLOW`` appended for the full array (``FULL_FAST``).

:func:`open_emicorr` reads one into a small in-memory Dataset (no pixels: nothing to crop or
tile); :func:`select_case` picks what an exposure needs; :func:`write_emicorr` writes a file
jwst's ``EmiModel`` opens (tests, default set).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import asdf
import numpy as np
import xarray as xr

from webbflow.engine.step import RefFile
from webbflow.errors import ReferenceFileError
from webbflow.model import meta_value


class EmiFrequency(NamedTuple):
    """One interference frequency of an :class:`EmiCase`."""

    name: str
    frequency: float  #: Hz
    waveform: np.ndarray  #: (n,) float64 DN, one period sampled at phases (i + 0.5) / n


class EmiCase(NamedTuple):
    """What the EMICORR reference says for one readout configuration."""

    case: str  #: subarray case name (``SUB256``, ``FULL_FAST``)
    rowclocks: int  #: 10 µs pixel clocks between the starts of two rows
    frameclocks: int  #: pixel clocks of a whole frame (the extra reset frame of R1 patterns)
    frequencies: tuple[EmiFrequency, ...]


def _plain(node: Any) -> Any:
    """An ASDF tree node as plain Python (dicts, lists, numpy arrays)."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    if hasattr(node, "shape") and hasattr(node, "dtype"):
        return np.asarray(node)
    return node


def open_emicorr(ref: RefFile, ds: xr.Dataset) -> xr.Dataset:
    """An EMICORR reference as a small Dataset.

    Parameters
    ----------
    ref
        The resolved EMICORR file (jwst ``EmiModel`` ASDF).
    ds
        The exposure (its ``DETECTOR`` must be MIRI's if the file names one).

    Returns
    -------
    xarray.Dataset
        One variable ``wave_<name>`` (dim ``phase_<name>``, float64 DN) per frequency, with
        ``attrs["frequency"]`` in Hz. ``attrs``: ``subarray_cases`` (the plain tree),
        ``header`` (``meta`` flattened one level), ``meta``, ``name``, ``path``.

    Raises
    ------
    ReferenceFileError
        Not ASDF, or no ``frequencies``/``subarray_cases`` tree, or a malformed entry.
    """
    path = Path(ref.path)
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            tree = {k: _plain(af.tree[k]) for k in ("frequencies", "subarray_cases", "meta") if k in af.tree}
    except (OSError, ValueError) as exc:
        raise ReferenceFileError(f"{path}: not an ASDF file, expected an emicorr reference ({exc})") from None
    for key in ("frequencies", "subarray_cases"):
        if not isinstance(tree.get(key), dict):
            raise ReferenceFileError(f"{path}: no {key!r} tree, expected one in an emicorr (EmiModel) file")
    data: dict[str, Any] = {}
    for name, entry in tree["frequencies"].items():
        try:
            freq = float(entry["frequency"])
            wave = np.asarray(entry["phase_amplitudes"], np.float64).ravel()
        except (KeyError, TypeError, ValueError):
            raise ReferenceFileError(
                f"{path}: frequencies.{name} needs 'frequency' and 'phase_amplitudes'"
            ) from None
        if freq <= 0 or wave.size < 4 or not np.isfinite(wave).all():
            raise ReferenceFileError(
                f"{path}: frequencies.{name}: expected a positive frequency and >= 4 finite samples"
            )
        data[f"wave_{name}"] = xr.DataArray(wave, dims=(f"phase_{name}",), attrs={"frequency": freq})
    meta = tree.get("meta", {}) if isinstance(tree.get("meta"), dict) else {}
    detector = str((meta.get("instrument") or {}).get("detector", "") or "").strip().upper()
    exp_det = str(meta_value(ds, "instrument.detector", "") or "").strip().upper()
    if detector not in ("", "ANY", "N/A", "MULTIPLE") and exp_det and not exp_det.startswith("MIR"):
        raise ReferenceFileError(f"{path}: reference is for DETECTOR={detector}, exposure is {exp_det}")
    header = {str(k).upper(): v for k, v in meta.items() if not isinstance(v, (dict, list))}
    attrs = {
        "subarray_cases": tree["subarray_cases"],
        "header": header,
        "meta": meta,
        "name": ref.label,
        "path": str(path),
    }
    return xr.Dataset(data, attrs=attrs)


def case_name(subarray: str, readpatt: str) -> str:
    """The ``subarray_cases`` key of a configuration: the full array gets ``_FAST``/``_SLOW``."""
    sub = str(subarray).strip().upper()
    speed = "SLOW" if "SLOW" in str(readpatt).upper() else "FAST"
    return f"{sub}_{speed}" if "FULL" in sub else sub


def select_case(ref: xr.Dataset, subarray: str, readpatt: str, detector: str) -> EmiCase | None:
    """The clocks and frequencies for ``subarray``/``readpatt``/``detector``, or ``None``.

    ``None`` when the file has no case for the configuration (jwst then skips the step).

    Raises
    ------
    ReferenceFileError
        If the case names a frequency the file does not define, or lacks its clocks.
    """
    rp = str(readpatt).strip().upper()
    if "FAST" not in rp and "SLOW" not in rp:
        return None
    key = case_name(subarray, rp)
    entry = ref.attrs["subarray_cases"].get(key)
    if not isinstance(entry, dict):
        return None
    freqs = (entry.get("freqs") or {}).get("SLOW" if "SLOW" in rp else "FAST")
    if isinstance(freqs, dict):  # SLOW lists frequencies per detector
        freqs = freqs.get(str(detector).strip().upper())
    if not freqs:
        return None
    where = ref.attrs.get("path", "emicorr")
    try:
        rowclocks, frameclocks = int(entry["rowclocks"]), int(entry["frameclocks"])
    except (KeyError, TypeError, ValueError):
        raise ReferenceFileError(
            f"{where}: subarray_cases.{key} needs integer rowclocks and frameclocks"
        ) from None
    found = []
    for name in freqs:
        var = f"wave_{name}"
        if var not in ref:
            raise ReferenceFileError(
                f"{where}: subarray_cases.{key} names frequency {name!r}, not in frequencies"
            )
        found.append(EmiFrequency(str(name), float(ref[var].attrs["frequency"]), ref[var].values))
    return EmiCase(key, rowclocks, frameclocks, tuple(found))


def write_emicorr(
    path: str | Path,
    frequencies: Mapping[str, tuple[float, Sequence[float] | np.ndarray]],
    subarray_cases: Mapping[str, Mapping[str, Any]],
    *,
    description: str = "webbflow EMICORR reference",
) -> Path:
    """Write a jwst ``EmiModel`` ASDF file.

    Parameters
    ----------
    path
        Output file (``.asdf``).
    frequencies
        ``name -> (Hz, waveform)``.
    subarray_cases
        ``case -> {"rowclocks", "frameclocks", "freqs"}`` as in the module docstring.
    description
        ``meta.description``.
    """
    tree = {
        "meta": {
            "model_type": "EmiModel",
            "telescope": "JWST",
            "reftype": "EMICORR",
            "author": "webbflow",
            "description": description,
            "pedigree": "DUMMY",
            "useafter": "2000-01-01T00:00:00",
            "instrument": {"name": "MIRI", "detector": "MIRIMAGE"},
        },
        "frequencies": {
            name: {"frequency": float(hz), "phase_amplitudes": np.asarray(wave, np.float64)}
            for name, (hz, wave) in frequencies.items()
        },
        "subarray_cases": {k: dict(v) for k, v in subarray_cases.items()},
    }
    out = Path(path)
    asdf.AsdfFile(tree).write_to(out, all_array_storage="inline")
    return out
