"""Counter-based random streams keyed by exposure, effect and a fixed pixel-block grid.

Every random draw of a simulation comes from a ``numpy.random.Philox``
generator whose key is derived from ``(seed, exposure, effect, block_y,
block_x, *extra)`` through ``numpy.random.SeedSequence``. Blocks are the cells
of a fixed :data:`BLOCK` × :data:`BLOCK` grid in full-frame detector pixels,
independent of the dask chunks, so a pixel's values depend only on the seed,
the exposure and the pixel: the same on any tiling and any number of workers.

Streams that are not tied to pixels (per-integration time series of the
correlated read noise, say) use block indices :data:`WHOLE`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from enum import IntEnum
from typing import Final

import numpy as np

#: Edge of the fixed pixel blocks that carry the random streams, pixels.
BLOCK: Final = 256
#: Block index of streams that belong to the whole detector, not to one block.
WHOLE: Final = 1 << 20


class Effect(IntEnum):
    """The random effects of a simulation; each has its own streams."""

    POISSON = 1
    COSMIC_RAYS = 2
    WHITE_NOISE = 3
    PINK_CORRELATED = 4
    PINK_UNCORRELATED = 5
    ACN = 6
    PEDESTAL = 7
    RESET = 8
    PINK_ROW = 9
    SHOWERS = 10
    EMI = 11
    FLICKER = 12


def exposure_key(name: str) -> int:
    """A stable 32-bit integer for an exposure name (CRC-32 of its UTF-8 text).

    Two exposures with different names (``jw..._nrca1`` and ``jw..._nrca2``)
    get independent streams from one program seed.
    """
    return zlib.crc32(name.encode("utf-8"))


def rng(seed: int, exposure: int, effect: Effect, by: int, bx: int, *extra: int) -> np.random.Generator:
    """The generator of ``effect`` in block ``(by, bx)`` of ``exposure``.

    Parameters
    ----------
    seed
        Non-negative program seed.
    exposure
        :func:`exposure_key` of the exposure.
    effect
        Which effect draws.
    by, bx
        Block indices (``y // BLOCK``, ``x // BLOCK``), or :data:`WHOLE`.
    extra
        More non-negative integers in the key (integration number, frame, amplifier…).
    """
    entropy = (int(seed), int(exposure), int(effect), int(by), int(bx), *(int(e) for e in extra))
    key = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


def blocks(y0: int, y1: int, x0: int, x1: int) -> Iterator[tuple[int, int, slice, slice]]:
    """Blocks overlapping full-frame rows ``[y0, y1)`` and columns ``[x0, x1)``.

    Yields
    ------
    (by, bx, ys, xs)
        Block indices and the full-frame slices of the block's overlap with the region.
    """
    for by in range(y0 // BLOCK, (y1 - 1) // BLOCK + 1):
        for bx in range(x0 // BLOCK, (x1 - 1) // BLOCK + 1):
            ys = slice(max(y0, by * BLOCK), min(y1, (by + 1) * BLOCK))
            xs = slice(max(x0, bx * BLOCK), min(x1, (bx + 1) * BLOCK))
            yield by, bx, ys, xs
