"""JWST data-quality bit values, defined once for all of webbflow.

The values are the standard JWST DQ flags (the ``dqflags`` table of the JWST
calibration software documentation): a pixel's ``pixeldq``/``dq`` is a
``uint32`` bitwise OR of these; ``groupdq`` is ``uint8`` and uses only the
low eight bits (DO_NOT_USE ... AD_FLOOR, CHARGELOSS).

Kernels take the bit values they need as arguments (see the style guide);
step wrappers pass them from here.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

DO_NOT_USE: Final = 1 << 0
SATURATED: Final = 1 << 1
JUMP_DET: Final = 1 << 2
DROPOUT: Final = 1 << 3
OUTLIER: Final = 1 << 4
PERSISTENCE: Final = 1 << 5
AD_FLOOR: Final = 1 << 6
CHARGELOSS: Final = 1 << 7
UNRELIABLE_ERROR: Final = 1 << 8
NON_SCIENCE: Final = 1 << 9
DEAD: Final = 1 << 10
HOT: Final = 1 << 11
WARM: Final = 1 << 12
LOW_QE: Final = 1 << 13
RC: Final = 1 << 14
TELEGRAPH: Final = 1 << 15
NONLINEAR: Final = 1 << 16
BAD_REF_PIXEL: Final = 1 << 17
NO_FLAT_FIELD: Final = 1 << 18
NO_GAIN_VALUE: Final = 1 << 19
NO_LIN_CORR: Final = 1 << 20
NO_SAT_CHECK: Final = 1 << 21
UNRELIABLE_BIAS: Final = 1 << 22
UNRELIABLE_DARK: Final = 1 << 23
UNRELIABLE_SLOPE: Final = 1 << 24
UNRELIABLE_FLAT: Final = 1 << 25
OPEN: Final = 1 << 26
ADJ_OPEN: Final = 1 << 27
FLUX_ESTIMATED: Final = 1 << 28
MSA_FAILED_OPEN: Final = 1 << 29
OTHER_BAD_PIXEL: Final = 1 << 30
REFERENCE_PIXEL: Final = 1 << 31

#: Name -> bit value, in bit order. Read-only.
FLAGS: Final = MappingProxyType(
    {
        name: value
        for name, value in sorted(
            ((k, v) for k, v in globals().items() if k.isupper() and isinstance(v, int)),
            key=lambda kv: kv[1],
        )
    }
)

#: The flags a ``groupdq`` (uint8) may carry.
GROUP_FLAGS: Final = MappingProxyType({k: v for k, v in FLAGS.items() if v < 256})


def decode(value: int) -> list[str]:
    """Names of the flags set in ``value``, lowest bit first.

    Examples
    --------
    >>> decode(2 | 4)
    ['SATURATED', 'JUMP_DET']
    """
    return [name for name, bit in FLAGS.items() if value & bit]


def bits_from_names(names: str | list[str]) -> int:
    """OR of the flags named in ``names`` (a list, or a comma/space separated string).

    Raises
    ------
    ValueError
        If a name is not a JWST DQ flag.
    """
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    value = 0
    for name in names:
        key = name.strip().upper()
        if key not in FLAGS:
            raise ValueError(f"unknown DQ flag {name!r}; expected one of {', '.join(FLAGS)}")
        value |= FLAGS[key]
    return value


def bad_bits(good_bits: str | int | None, where: str = "good_bits") -> int:
    """The uint32 mask of DQ bits that exclude a pixel, from jwst's "good bits" syntax.

    ``"~DO_NOT_USE"`` → DO_NOT_USE only; ``"DO_NOT_USE+SATURATED"`` or ``3`` → every other bit;
    ``0`` → every bit; ``None`` → none (DQ ignored). Flag names are this module's.

    Raises
    ------
    UsageError
        Naming ``where`` (e.g. ``"resample.good_bits"``) and the expression it cannot read.
    """
    from astropy.nddata.bitmask import interpret_bit_flags

    from webbflow.errors import UsageError

    try:
        good = interpret_bit_flags(good_bits, flag_name_map=dict(FLAGS))
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(
            f"{where} = {good_bits!r}: not a DQ bit value or '+'-joined flag names, optionally "
            f"'~'-prefixed ({exc})"
        ) from None
    return 0 if good is None else int(~int(good) & 0xFFFFFFFF)
