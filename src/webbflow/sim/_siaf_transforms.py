"""SIAF frame transforms in plain numpy: science pixels <-> ideal <-> V2/V3 <-> sky.

:class:`Frame` holds the SIAF numbers of one full-frame aperture (polynomial coefficients,
reference point, V3 angle and parity) and evaluates them without pysiaf; :func:`tel_to_sky`
applies a 3×3 attitude matrix and :func:`solve_attitude` builds one (the only pysiaf call).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

AREA_STEP: Final = 16  # px between nodes of the pixel-area grid (a power of 2: exact node maths)
ARCSEC: Final = math.pi / (180.0 * 3600.0)  # radians per arcsec
_NEWTON_STEPS: Final = 3


@dataclass(frozen=True)
class Frame:
    """SIAF numbers of a full-frame aperture: science pixels <-> ideal <-> V2/V3 (hashable)."""

    degree: int
    sci2idl_x: tuple[float, ...]
    sci2idl_y: tuple[float, ...]
    idl2sci_x: tuple[float, ...]
    idl2sci_y: tuple[float, ...]
    x_sci_ref: float  # 1-based science pixel of the reference point
    y_sci_ref: float
    v2_ref: float  # arcsec
    v3_ref: float
    v3_idl_yangle: float  # deg
    vidl_parity: int

    @classmethod
    def from_aperture(cls, ap: Any) -> Frame:
        c = {k: tuple(float(v) for v in a) for k, a in ap.get_polynomial_coefficients().items()}
        ref = (float(ap.XSciRef), float(ap.YSciRef), float(ap.V2Ref), float(ap.V3Ref), float(ap.V3IdlYAngle))
        return cls(
            int(ap.Sci2IdlDeg),
            c["Sci2IdlX"],
            c["Sci2IdlY"],
            c["Idl2SciX"],
            c["Idl2SciY"],
            *ref,
            int(ap.VIdlParity),
        )

    def sci_to_idl(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = xs - self.x_sci_ref, ys - self.y_sci_ref
        return _poly(self.sci2idl_x, self.degree, dx, dy), _poly(self.sci2idl_y, self.degree, dx, dy)

    def jacobian(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, ...]:
        """d(ideal x, ideal y)/d(sci x, sci y) as ``(dxi/dx, dxi/dy, dyi/dx, dyi/dy)``, arcsec/px."""
        dx, dy = xs - self.x_sci_ref, ys - self.y_sci_ref
        return tuple(_poly(c, self.degree, dx, dy, d) for c in (self.sci2idl_x, self.sci2idl_y) for d in "xy")

    def idl_to_sci(self, xi: np.ndarray, yi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`sci_to_idl`: SIAF inverse polynomial, then Newton on Sci2Idl."""
        xs = _poly(self.idl2sci_x, self.degree, xi, yi) + self.x_sci_ref
        ys = _poly(self.idl2sci_y, self.degree, xi, yi) + self.y_sci_ref
        for _ in range(_NEWTON_STEPS):
            a, b, c, d = self.jacobian(xs, ys)
            rx, ry = self.sci_to_idl(xs, ys)
            rx, ry, det = rx - xi, ry - yi, a * d - b * c
            xs, ys = xs - (d * rx - b * ry) / det, ys - (a * ry - c * rx) / det
        return xs, ys

    def idl_to_tel(self, xi: np.ndarray, yi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, px = math.radians(self.v3_idl_yangle), self.vidl_parity * xi
        return self.v2_ref + px * math.cos(t) + yi * math.sin(t), self.v3_ref - px * math.sin(
            t
        ) + yi * math.cos(t)

    def tel_to_idl(self, v2: np.ndarray, v3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = math.radians(self.v3_idl_yangle)
        d2, d3 = v2 - self.v2_ref, v3 - self.v3_ref
        return self.vidl_parity * (d2 * math.cos(t) - d3 * math.sin(t)), d2 * math.sin(t) + d3 * math.cos(t)

    def area(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Pixel area, arcsec², at 1-based science pixels (Jacobian determinant)."""
        a, b, c, d = self.jacobian(xs, ys)
        return np.abs(a * d - b * c)


def _poly(coef: tuple[float, ...], degree: int, x: np.ndarray, y: np.ndarray, d: str = "") -> np.ndarray:
    """SIAF polynomial ``sum coef[k] x^(i-j) y^j`` (k runs over i <= degree, j <= i), or its
    derivative along ``d`` = ``"x"``/``"y"``."""
    xp, yp = [np.ones_like(x)], [np.ones_like(y)]
    for _ in range(degree):
        xp.append(xp[-1] * x)
        yp.append(yp[-1] * y)
    out = np.zeros_like(x)
    k = 0
    for i in range(degree + 1):
        for j in range(i + 1):
            factor = coef[k] * {"": 1, "x": i - j, "y": j}[d]
            if factor:
                out += factor * xp[i - j - (d == "x")] * yp[j - (d == "y")]
            k += 1
    return out


@functools.lru_cache(maxsize=32)
def area_grid(frame: Frame, nx: int, ny: int) -> np.ndarray:
    """Relative pixel area on full-frame nodes ``0, 16, ..., >= n`` (0-based), read-only float64."""
    gy, gx = np.meshgrid(
        np.arange(0, ny + AREA_STEP, AREA_STEP, dtype=float),  # last node >= ny
        np.arange(0, nx + AREA_STEP, AREA_STEP, dtype=float),  # last node >= nx
        indexing="ij",
    )
    grid = frame.area(gx + 1.0, gy + 1.0) / frame.area(np.array(frame.x_sci_ref), np.array(frame.y_sci_ref))
    grid.setflags(write=False)
    return grid


def unit_vectors(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors (3, ...) of spherical angles in degrees."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack([np.cos(lon) * np.cos(lat), np.sin(lon) * np.cos(lat), np.sin(lat)])


def vector_angles(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spherical angles (deg; longitude in (-180, 180]) of vectors (3, ...)."""
    return np.degrees(np.arctan2(u[1], u[0])), np.degrees(np.arcsin(np.clip(u[2], -1.0, 1.0)))


def tel_to_sky(attitude: Any, v2: Any, v3: Any) -> tuple[np.ndarray, np.ndarray]:
    """(RA in [0, 360), Dec), deg, of V2/V3 positions (arcsec) under a 3×3 attitude matrix."""
    u = np.einsum(
        "ij,j...->i...", np.asarray(attitude), unit_vectors(np.asarray(v2) / 3600, np.asarray(v3) / 3600)
    )
    ra, dec = vector_angles(u)
    ra = np.mod(ra, 360.0)
    return np.where(ra >= 360.0, 0.0, ra), dec  # mod of a tiny negative rounds to 360


def offset_attitude(
    attitude: Any,
    v2_ref: float,
    v3_ref: float,
    v3_idl_yangle: float,
    vidl_parity: int,
    dx: float,
    dy: float,
    droll: float,
) -> np.ndarray:
    """The attitude under which the sky moves by ``(dx, dy)`` arcsec and ``droll`` deg in an ideal frame.

    A source that ``attitude`` puts at ideal ``(X, Y)`` (the ideal frame of an aperture whose
    reference point is ``(v2_ref, v3_ref)`` arcsec, V3IdlYAngle ``v3_idl_yangle`` deg, parity
    ``vidl_parity``) lands, under the returned attitude, at ``R(droll) (X, Y) + (dx, dy)``, ``R``
    turning +X towards +Y about the reference point. Exact at the reference point (a rotation
    about it, then the rotation carrying it to ``(dx, dy)``); elsewhere to second order.
    """
    t = math.radians(v3_idl_yangle)

    def tel(xi: float, yi: float) -> np.ndarray:  # ideal arcsec -> unit vector of the V frame
        v2 = v2_ref + vidl_parity * xi * math.cos(t) + yi * math.sin(t)
        v3 = v3_ref - vidl_parity * xi * math.sin(t) + yi * math.cos(t)
        return unit_vectors(np.array(v2 / 3600), np.array(v3 / 3600))

    ref, target = tel(0.0, 0.0), tel(dx, dy)
    sense = np.sign(np.dot(np.cross(tel(1.0, 0.0) - ref, tel(0.0, 1.0) - ref), ref))
    q = _rotation(ref, sense * math.radians(droll))
    axis = np.cross(ref, target)
    if np.linalg.norm(axis) > 0:
        angle = math.atan2(float(np.linalg.norm(axis)), float(np.dot(ref, target)))
        q = _rotation(axis / np.linalg.norm(axis), angle) @ q
    # sky = attitude @ nominal = new @ (q @ nominal)  =>  new = attitude @ q^T
    return np.asarray(attitude, float) @ q.T


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` (rad) about the unit vector ``axis`` (Rodrigues)."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def solve_attitude(v2_ref: float, v3_ref: float, ra: float, dec: float, v3pa: float) -> np.ndarray:
    """Attitude matrix putting (v2_ref, v3_ref) at (ra, dec) with the PA of V3 at V1 = ``v3pa``.

    pysiaf's attitude takes the roll at (v2_ref, v3_ref); iterate it until the roll at V1 is
    ``v3pa`` (they differ by the meridian convergence between the two points; 3-4 iterations).
    """
    from pysiaf.utils import rotations

    roll = float(v3pa)
    for _ in range(20):
        att = np.asarray(rotations.attitude(v2_ref, v3_ref, ra, dec, roll), float)
        err = (v3pa - float(rotations.posangle(att, 0.0, 0.0)) + 180.0) % 360.0 - 180.0
        if abs(err) < 1e-11:
            break
        roll += err
    return att
