"""Tests of the static detector table."""

from __future__ import annotations

import pytest

from webbflow.detectors import DETECTORS, get_detector
from webbflow.errors import UsageError

NIRCAM = [f"NRC{m}{i}" for m in "AB" for i in (1, 2, 3, 4)] + ["NRCALONG", "NRCBLONG"]


def test_every_detector_is_known() -> None:
    assert set(DETECTORS) == {*NIRCAM, "NIS", "GUIDER1", "GUIDER2"}


@pytest.mark.parametrize("name", list(DETECTORS))
def test_geometry_and_ranges(name: str) -> None:
    det = DETECTORS[name]
    assert (det.ny, det.nx, det.refpix, det.namps, det.amp_width) == (2048, 2048, 4, 4, 512)
    axis_len = det.nx if det.amp_axis == "x" else det.ny
    assert det.amplifiers[0][0] == 0 and det.amplifiers[-1][1] == axis_len
    assert 1.4 < det.gain < 2.3
    assert 0.001 <= det.dark_current <= 0.035
    assert 55000 < det.saturation < 63000
    assert 11000 < det.bias < 13500 and len(det.amp_bias_offsets) == 4
    assert 0 < det.ipc_alpha < 0.01 and 0 < det.nonlinearity < 0.2
    assert {abs(det.fastaxis), abs(det.slowaxis)} == {1, 2}
    assert det.exp_types and all("|" not in t for t in det.exp_types)


def test_instrument_specific_values() -> None:
    assert get_detector("NRCA1").frame_time_full == 10.73677
    assert get_detector("NIS").frame_time_full == 10.73676
    assert get_detector("GUIDER1").frame_time_full == 10.73676
    assert get_detector("NRCALONG").channel == "LONG" and get_detector("NRCB3").module == "B"
    assert get_detector("NRCALONG").gain < get_detector("NRCA1").gain
    assert get_detector("NRCA1").amp_axis == "x"
    assert get_detector("NIS").instrument == "NIRISS" and get_detector("GUIDER2").instrument == "FGS"


def test_lookup_is_case_insensitive() -> None:
    assert get_detector(" nrcb1 ") is DETECTORS["NRCB1"]


def test_unknown_detector_suggests() -> None:
    with pytest.raises(UsageError, match=r"unknown DETECTOR 'NRCA7'.*did you mean"):
        get_detector("NRCA7")


def test_detector_is_frozen() -> None:
    det = get_detector("NRCA1")
    with pytest.raises(AttributeError):
        det.gain = 3.0  # type: ignore[misc]
