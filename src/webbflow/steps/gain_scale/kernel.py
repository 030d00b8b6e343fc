"""Pure gain-scale arithmetic on rate-level planes."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GainScaled(NamedTuple):
    """Rescaled planes, same shapes and dtypes (float32) as the inputs."""

    sci: np.ndarray
    err: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray


def gain_scale_kernel(
    sci: np.ndarray, err: np.ndarray, var_poisson: np.ndarray, var_rnoise: np.ndarray, *, gain_factor: float
) -> GainScaled:
    """Multiply rates and errors (DN/s) by ``gain_factor`` and variances ((DN/s)**2) by its square.

    Arrays of any shape (``(y, x)`` or ``(integration, y, x)``), float32; the
    arithmetic is float32 as in jwst. Inputs are not modified.
    """
    factor = np.float32(gain_factor)
    square = np.float32(gain_factor**2)
    return GainScaled(sci * factor, err * factor, var_poisson * square, var_rnoise * square)
