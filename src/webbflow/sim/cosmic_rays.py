"""Cosmic-ray hits: events drawn per fixed pixel block, tracked through the absorber, deposited in pixels.

Environment
    Event rates at L2 behind the spacecraft shielding, events cm⁻² s⁻¹
    (:data:`RATES`), are the fluxes of the Robberto (2009, JWST-STScI-001928,
    "A library of simulated cosmic ray events impacting JWST HgCdTe
    detectors"; 100 mil Al-equivalent shielding, H, He, C, N, O, Fe nuclei)
    libraries, the numbers behind Mirage's per-pixel rates (1.587e-5,
    5.762e-6 and 9.873e-3 pixel⁻¹ s⁻¹ at 18 µm pitch). Galactic cosmic rays are
    more numerous at solar minimum, when the heliospheric field screens less.
    In flight, NIRSpec measured 4.3 falling to 2.3 ions cm⁻² s⁻¹ from 2022 to
    the 2025 solar maximum (Rauscher & Fixsen 2025, PASP 137, 095003), bracketed
    by SUNMAX and SUNMIN. ``scale`` multiplies the rate.

Events
    In each 256-px block (:mod:`webbflow.sim.rng`) and integration, the number
    of events is Poisson with mean ``rate × scale × block area ×
    nframes_total × frame_time``. Each event has a uniform arrival frame, a
    uniform track midpoint in the block, a uniform azimuth and an isotropic
    direction onto the plane of the detector (``cos θ`` weighted:
    ``cos θ = sqrt(1 - u)``). The particle crosses an absorber
    :data:`ABSORBER_THICKNESS_UM` thick (the substrate-removed HgCdTe layer of
    a λco ≈ 2.5-5.4 µm H2RG, 5-7 µm); its path is ``t / cos θ`` and its
    projected track ``t tan θ / pitch`` pixels long, capped at
    :data:`MAX_TRACK_PX` (only 0.04 % of events would be longer) so a block's
    deposits reach at most its 8 neighbouring blocks.

Charge
    The charge per µm of path is a Landau-like (Moyal) draw with most
    probable value :data:`CHARGE_MPV_E_PER_UM` and width
    :data:`CHARGE_WIDTH_E_PER_UM`, times ``Z²`` of the nucleus (:data:`SPECIES`,
    the galactic cosmic-ray mix by number: about 87 % H, 12 % He and 1 %
    heavier nuclei, represented by CNO and Fe). HgCdTe is dense (7.6 g cm⁻³)
    and needs only ~1.2 eV per electron-hole pair, so a singly charged
    particle frees ~10 times more charge per µm than in silicon (~80 e⁻ µm⁻¹):
    the most probable value is set so the median proton or helium hit carries
    ≈ 5200 e⁻, the typical in-flight hit (6 keV, 0.86 keV µm⁻¹; Rauscher &
    Fixsen 2025). The charge is spread evenly along the track and by lateral
    diffusion (Gaussian, :data:`DIFFUSION_SIGMA_PX`), integrated over each pixel;
    deposits below :data:`MIN_DEPOSIT_E` are dropped. Interpixel capacitance is
    not included here: the ramp simulation adds it to the whole signal.

Reproducibility
    A block's events and deposits are computed whole from its own random
    stream, whatever the tile; a tile collects the deposits of its blocks and
    of their neighbours that fall inside it, so a pixel gets the same hits on
    any tiling. Deposits land only in light-sensitive pixels of the exposure
    window (not in the 4-px reference border).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

import numpy as np
from astropy.table import Table
from scipy.special import ndtr

from webbflow.errors import UsageError, suggest
from webbflow.sim.rng import BLOCK, Effect, blocks, rng

#: Cosmic-ray event rates at L2, events cm⁻² s⁻¹ (Robberto 2009; see the module docstring).
RATES: Final[Mapping[str, float]] = MappingProxyType({"SUNMIN": 4.898, "SUNMAX": 1.778, "FLARES": 3047.0})
#: Other accepted spellings of the environments (``FLARE`` appears in Mirage's documentation).
_ALIASES: Final = MappingProxyType({"FLARE": "FLARES", "NONE": "NONE"})

#: Thickness of the charge-generating HgCdTe layer, µm.
ABSORBER_THICKNESS_UM: Final = 6.0
#: Longest projected track, pixels (keeps a block's deposits within its 8 neighbours).
MAX_TRACK_PX: Final = 16.0
#: Most probable charge per µm of path of a singly charged particle, e⁻/µm.
CHARGE_MPV_E_PER_UM: Final = 480.0
#: Width (Moyal scale) of the charge per µm, e⁻/µm (Landau FWHM ≈ 3.6 × scale ≈ 46 % of the MPV).
CHARGE_WIDTH_E_PER_UM: Final = 62.0
#: Nuclear charge Z and fraction by number of the simulated nuclei (CNO stand for Z = 3-25).
SPECIES: Final[Mapping[int, float]] = MappingProxyType({1: 0.870, 2: 0.120, 7: 0.009, 26: 0.001})
#: rms lateral charge diffusion, pixels.
DIFFUSION_SIGMA_PX: Final = 0.4
#: Smallest deposit kept, e⁻.
MIN_DEPOSIT_E: Final = 1.0

#: Full-frame size and reference-pixel border of every JWST near-infrared detector, pixels.
_FULL: Final = 2048
_REFPIX: Final = 4
#: Track sampling step, pixels (well below the diffusion sigma).
_STEP_PX: Final = 0.25
#: Half width of the diffusion stencil around each track sample, pixels (>= 5 sigma from the sample).
_STENCIL: Final = 2
#: Farthest a deposit can lie from its block edge, pixels (half track + rounding + stencil, +1 margin).
_HALO: Final = math.ceil(MAX_TRACK_PX / 2) + 1 + _STENCIL + 1
#: Events deposited together (bounds memory in flare environments; results do not depend on it).
_BATCH: Final = 20_000


class CosmicRayHits(NamedTuple):
    """Pixel deposits of cosmic rays in a tile, sorted by integration, frame, y, x.

    A pixel hit by several events has one row per event.

    Attributes
    ----------
    integration : ndarray, shape (n,), int32
        0-based integration.
    frame : ndarray, shape (n,), int32
        0-based frame after the reset in which the charge arrives (present in that read and after).
    y, x : ndarray, shape (n,), int32
        Full-frame 0-based pixel, inside the tile.
    electrons : ndarray, shape (n,), float32
        Charge deposited, e⁻.
    """

    integration: np.ndarray
    frame: np.ndarray
    y: np.ndarray
    x: np.ndarray
    electrons: np.ndarray


class CosmicRayEvents(NamedTuple):
    """Cosmic-ray events (the truth behind the hits), one row per particle.

    Attributes
    ----------
    integration, frame : ndarray, shape (n,), int32
        0-based integration and arrival frame.
    y, x : ndarray, shape (n,), float64
        Full-frame position of the track midpoint, pixels.
    theta, phi : ndarray, shape (n,), float64
        Incidence angle from the detector normal and azimuth from +x towards +y, degrees.
    z : ndarray, shape (n,), int32
        Charge number of the nucleus.
    path : ndarray, shape (n,), float64
        Path length in the absorber, µm.
    electrons : ndarray, shape (n,), float64
        Total charge freed, e⁻ (before dropping deposits outside the window or below the floor).
    """

    integration: np.ndarray
    frame: np.ndarray
    y: np.ndarray
    x: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    z: np.ndarray
    path: np.ndarray
    electrons: np.ndarray


def environment_rate(environment: str) -> float:
    """Event rate of ``environment`` (case-insensitive; ``FLARE`` = ``FLARES``, ``NONE`` = 0), cm⁻² s⁻¹."""
    name = str(environment).strip().upper()
    name = _ALIASES.get(name, name)
    if name == "NONE":
        return 0.0
    if name not in RATES:
        choices = [*RATES, "NONE"]
        raise UsageError(
            f"cosmic-ray environment {environment!r}: expected one of {', '.join(choices)}"
            + suggest(name, choices)
        )
    return RATES[name]


def cosmic_ray_events(
    environment: str,
    scale: float,
    seed: int,
    exposure: int,
    nints: int,
    nframes_total: int,
    frame_time: float,
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    pixel_pitch_um: float = 18.0,
) -> CosmicRayEvents:
    """The events whose track midpoint lies in rows ``[y0, y1)``, columns ``[x0, x1)``.

    Parameters are those of :func:`cosmic_ray_hits` (without the window: events are
    physical, the window only limits where their charge is read). Events come in block
    order, then integration, then draw order; :func:`events_table` makes a table of them.
    """
    _check_region(y0, y1, x0, x1)
    mean = _events_per_block(environment, scale, nints, nframes_total, frame_time, pixel_pitch_um)
    parts = [_empty_events()]
    for by, bx in _block_ids(y0, y1, x0, x1, halo=0):
        for i in range(nints):
            ev = _draw_block(seed, exposure, by, bx, i, mean, nframes_total, pixel_pitch_um).events
            py, px = np.floor(ev.y + 0.5), np.floor(ev.x + 0.5)
            inside = (py >= y0) & (py < y1) & (px >= x0) & (px < x1)
            parts.append(CosmicRayEvents(*(col[inside] for col in ev)))
    return CosmicRayEvents(*(np.concatenate(col) for col in zip(*parts, strict=True)))


def cosmic_ray_hits(
    environment: str,
    scale: float,
    seed: int,
    exposure: int,
    nints: int,
    nframes_total: int,
    frame_time: float,
    window: tuple[int, int, int, int],
    y0: int,
    y1: int,
    x0: int,
    x1: int,
    pixel_pitch_um: float = 18.0,
    sensitive: tuple[int, int, int, int] | None = None,
) -> CosmicRayHits:
    """Cosmic-ray charge deposited in the tile rows ``[y0, y1)``, columns ``[x0, x1)``.

    Parameters
    ----------
    environment
        ``SUNMIN``, ``SUNMAX``, ``FLARES`` (or ``FLARE``) or ``NONE``, any case.
    scale
        Factor on the environment's rate, >= 0.
    seed, exposure
        Program seed and :func:`webbflow.sim.rng.exposure_key` of the exposure.
    nints
        Number of integrations.
    nframes_total
        Frames from the reset to the last read of an integration; arrival frames are ``0 … nframes_total-1``.
    frame_time
        Frame time, s.
    window
        ``(xstart, ystart, xsize, ysize)`` of the exposure, 1-based full-frame pixels.
    y0, y1, x0, x1
        Tile, full-frame 0-based pixels.
    pixel_pitch_um
        Pixel pitch, µm.
    sensitive
        Light-sensitive full-frame rows ``[y0, y1)`` and columns ``[x0, x1)`` as
        ``(y0, y1, x0, x1)``; default the near-infrared 2048² array less its 4-px
        reference border (MIRI: ``(0, 1024, 4, 1028)``).

    Returns
    -------
    CosmicRayHits
        Deposits in light-sensitive pixels of the window inside the tile, sorted by
        (integration, frame, y, x), ties in block and event order.

    Examples
    --------
    >>> hits = cosmic_ray_hits("SUNMIN", 1.0, 1, 2, 1, 10, 10.737, (1, 1, 2048, 2048), 0, 256, 0, 256)
    >>> bool((hits.y >= 4).all() and (hits.electrons >= 1).all())
    True
    """
    _check_region(y0, y1, x0, x1)
    mean = _events_per_block(environment, scale, nints, nframes_total, frame_time, pixel_pitch_um)
    wy0, wy1, wx0, wx1 = _sensitive(window, sensitive)
    ty0, ty1, tx0, tx1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
    if mean == 0.0 or ty0 >= ty1 or tx0 >= tx1:
        return _no_hits()
    parts: list[tuple[np.ndarray, ...]] = []
    for by, bx in _block_ids(ty0, ty1, tx0, tx1, halo=_HALO):
        for i in range(nints):
            drawn = _draw_block(seed, exposure, by, bx, i, mean, nframes_total, pixel_pitch_um)
            ev, y, x, q = drawn.deposits()
            keep = (y >= ty0) & (y < ty1) & (x >= tx0) & (x < tx1)
            ev = ev[keep]
            meta = (drawn.events.integration[ev], drawn.events.frame[ev])
            parts.append((*meta, y[keep], x[keep], q[keep]))
    integ, frame, y, x, q = (np.concatenate(c) for c in zip(*parts, strict=True))
    # Parts come in block order and each block's deposits in event order, so a stable sort
    # on (integration, frame, y, x) leaves ties in (block, event) order on any tiling.
    key = ((integ.astype(np.int64) * nframes_total + frame) * _FULL + y) * _FULL + x
    order = np.argsort(key, kind="stable")
    return CosmicRayHits(
        integ[order].astype(np.int32),
        frame[order].astype(np.int32),
        y[order].astype(np.int32),
        x[order].astype(np.int32),
        q[order].astype(np.float32),
    )


def events_table(events: CosmicRayEvents) -> Table:
    """An astropy table of ``events`` with units, for an ECSV ``*_cosmicrays`` list.

    Write it with ``table.write(path, format="ascii.ecsv")``.
    """
    table = Table(
        {
            "integration": events.integration,
            "frame": events.frame,
            "x": events.x,
            "y": events.y,
            "theta": events.theta,
            "phi": events.phi,
            "z": events.z,
            "path": events.path,
            "electrons": events.electrons,
        },
        units={"x": "pix", "y": "pix", "theta": "deg", "phi": "deg", "path": "um", "electrons": "electron"},
    )
    table.meta["comments"] = [
        "Cosmic-ray events simulated by webbflow: frame = 0-based frame after the reset in which the "
        "charge arrives; x, y = 0-based full-frame track midpoint; theta from the detector normal, "
        "phi from +x towards +y; z = nuclear charge; electrons = total charge freed."
    ]
    return table


class _Drawn(NamedTuple):
    """One block-integration's events and the pixel pitch their tracks are drawn with."""

    events: CosmicRayEvents
    pitch_um: float

    def deposits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(event index int64, y int64, x int64, electrons float64) of every pixel deposit ≥ the floor.

        Sorted by event, then y, then x; computed per batch of whole events, so the
        values do not depend on the batching.
        """
        n = self.events.x.size
        out = [_deposit(self.events, self.pitch_um, s, min(s + _BATCH, n)) for s in range(0, n, _BATCH)]
        if not out:
            z = np.zeros(0, np.int64)
            return z, z, z, np.zeros(0)
        ev, y, x, q = (np.concatenate(c) for c in zip(*out, strict=True))
        return ev, y, x, q


def _deposit(events: CosmicRayEvents, pitch_um: float, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """Deposits of events ``[start, stop)``: samples along each track, Gaussian pixel integrals."""
    sl = slice(start, stop)
    theta, phi = np.deg2rad(events.theta[sl]), np.deg2rad(events.phi[sl])
    length = ABSORBER_THICKNESS_UM * np.tan(theta) / pitch_um
    nsamp = np.maximum(1, np.ceil(length / _STEP_PX)).astype(np.int64)
    # One sample per track segment, at the segment centre; `e` is the batch-local event of each sample.
    e = np.repeat(np.arange(stop - start), nsamp)
    k = np.arange(e.size) - np.repeat(np.cumsum(nsamp) - nsamp, nsamp)
    along = ((k + 0.5) / nsamp[e] - 0.5) * length[e]
    iy, wy = _pixel_weights(events.y[sl][e] + along * np.sin(phi[e]))
    ix, wx = _pixel_weights(events.x[sl][e] + along * np.cos(phi[e]))
    charge = events.electrons[sl][e] / nsamp[e]
    w = charge[:, None, None] * wy[:, :, None] * wx[:, None, :]
    # Each event owns a dense box of pixels around its samples; the deposits of all boxes
    # are one bincount (input order fixes the float sums), the boxes row-major, one after another.
    starts = np.cumsum(nsamp) - nsamp
    ylo, xlo = np.minimum.reduceat(iy[:, 0], starts), np.minimum.reduceat(ix[:, 0], starts)
    height = np.maximum.reduceat(iy[:, -1], starts) - ylo + 1
    width = np.maximum.reduceat(ix[:, -1], starts) - xlo + 1
    box = np.cumsum(height * width) - height * width
    key = (
        box[e, None, None]
        + (iy - ylo[e, None])[:, :, None] * width[e, None, None]
        + (ix - xlo[e, None])[:, None, :]
    )
    q = np.bincount(key.ravel(), weights=w.ravel(), minlength=int(box[-1] + height[-1] * width[-1]))
    pix = np.flatnonzero(q >= MIN_DEPOSIT_E)
    ev = np.searchsorted(box, pix, side="right") - 1
    dy, dx = np.divmod(pix - box[ev], width[ev])
    return ev + start, ylo[ev] + dy, xlo[ev] + dx, q[pix]


def _pixel_weights(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(n, 2*_STENCIL+1)`` around positions ``p`` and the Gaussian fraction in each (sums to 1)."""
    centre = np.rint(p).astype(np.int64)
    pix = centre[:, None] + np.arange(-_STENCIL, _STENCIL + 1)
    edges = (np.arange(-_STENCIL, _STENCIL + 2) - 0.5)[None, :] + (centre - p)[:, None]
    cdf = ndtr(edges / DIFFUSION_SIGMA_PX)
    frac = np.diff(cdf, axis=1)
    return pix, frac / frac.sum(axis=1, keepdims=True)


def _draw_block(
    seed: int, exposure: int, by: int, bx: int, integration: int, mean: float, nframes: int, pitch_um: float
) -> _Drawn:
    """The events of block ``(by, bx)`` in one integration, from the block's own stream (fixed draw order)."""
    gen = rng(seed, exposure, Effect.COSMIC_RAYS, by, bx, integration)
    n = int(gen.poisson(mean))
    yc = by * BLOCK - 0.5 + BLOCK * gen.random(n)
    xc = bx * BLOCK - 0.5 + BLOCK * gen.random(n)
    cos_t = np.sqrt(1.0 - gen.random(n))  # isotropic flux onto a plane: p(cos θ) ∝ cos θ
    phi = 2.0 * np.pi * gen.random(n)
    frame = gen.integers(0, nframes, n)
    zs = np.fromiter(SPECIES, np.int64)
    cum = np.cumsum(np.fromiter(SPECIES.values(), np.float64))
    z = zs[np.minimum(np.searchsorted(cum / cum[-1], gen.random(n), side="right"), zs.size - 1)]
    moyal = -2.0 * np.log(np.abs(gen.standard_normal(n)))  # standard Moyal: -ln of a χ²(1) variate
    # Cap the projected track at MAX_TRACK_PX by steepening the rare grazing events.
    cos_min = math.cos(math.atan(MAX_TRACK_PX * pitch_um / ABSORBER_THICKNESS_UM))
    cos_t = np.maximum(cos_t, cos_min)
    path = ABSORBER_THICKNESS_UM / cos_t
    per_um = np.maximum(CHARGE_MPV_E_PER_UM + CHARGE_WIDTH_E_PER_UM * moyal, 0.0)
    electrons = z.astype(np.float64) ** 2 * per_um * path
    events = CosmicRayEvents(
        np.full(n, integration, np.int32),
        frame.astype(np.int32),
        yc,
        xc,
        np.rad2deg(np.arccos(cos_t)),
        np.rad2deg(phi),
        z.astype(np.int32),
        path,
        electrons,
    )
    return _Drawn(events, float(pitch_um))


def _events_per_block(
    environment: str, scale: float, nints: int, nframes_total: int, frame_time: float, pitch_um: float
) -> float:
    """Mean number of events per block and integration."""
    rate = environment_rate(environment)
    checks = {
        "scale": (scale, math.isfinite(scale) and scale >= 0),
        "nints": (nints, int(nints) == nints and nints >= 1),
        "nframes_total": (nframes_total, int(nframes_total) == nframes_total and nframes_total >= 1),
        "frame_time": (frame_time, math.isfinite(frame_time) and frame_time > 0),
        "pixel_pitch_um": (pitch_um, math.isfinite(pitch_um) and pitch_um > 0),
    }
    for name, (value, ok) in checks.items():
        if not ok:
            what = "a non-negative number" if name == "scale" else "a positive number"
            raise UsageError(f"cosmic rays: {name}={value!r}: expected {what}")
    area_cm2 = (BLOCK * pitch_um * 1e-4) ** 2
    return rate * float(scale) * area_cm2 * int(nframes_total) * float(frame_time)


def _sensitive(
    window: tuple[int, int, int, int], region: tuple[int, int, int, int] | None = None
) -> tuple[int, int, int, int]:
    """Rows ``[y0, y1)`` and columns ``[x0, x1)`` of light-sensitive pixels in the 1-based ``window``."""
    try:
        xstart, ystart, xsize, ysize = (int(v) for v in window)
    except (TypeError, ValueError):
        raise UsageError(f"cosmic rays: window={window!r}: expected (xstart, ystart, xsize, ysize)") from None
    if xstart < 1 or ystart < 1 or xsize < 1 or ysize < 1:
        raise UsageError(f"cosmic rays: window={window!r}: expected 1-based start and positive sizes")
    ry0, ry1, rx0, rx1 = region if region is not None else (_REFPIX, _FULL - _REFPIX) * 2
    return (
        max(ystart - 1, ry0),
        min(ystart - 1 + ysize, ry1),
        max(xstart - 1, rx0),
        min(xstart - 1 + xsize, rx1),
    )


def _check_region(y0: int, y1: int, x0: int, x1: int) -> None:
    if not (0 <= y0 < y1 <= _FULL and 0 <= x0 < x1 <= _FULL):
        raise UsageError(
            f"cosmic rays: tile rows [{y0}, {y1}), columns [{x0}, {x1}): expected a non-empty region "
            f"inside the {_FULL} × {_FULL} full frame"
        )


def _block_ids(y0: int, y1: int, x0: int, x1: int, halo: int) -> Iterator[tuple[int, int]]:
    """Blocks whose pixels lie within ``halo`` of the region, in (by, bx) order, inside the full frame."""
    region = (max(0, y0 - halo), min(_FULL, y1 + halo), max(0, x0 - halo), min(_FULL, x1 + halo))
    for by, bx, _, _ in blocks(*region):
        yield by, bx


def _empty_events() -> CosmicRayEvents:
    i32, f64 = np.zeros(0, np.int32), np.zeros(0)
    return CosmicRayEvents(i32, i32, f64, f64, f64, f64, i32, f64, f64)


def _no_hits() -> CosmicRayHits:
    i32 = np.zeros(0, np.int32)
    return CosmicRayHits(i32, i32, i32, i32, np.zeros(0, np.float32))
