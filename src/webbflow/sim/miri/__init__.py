"""MIRI ramp simulation: readout, detector effects and showers (see :mod:`webbflow.sim.miri.ramp`)."""

from webbflow.sim.miri.effects import EmiWave, ReadClock
from webbflow.sim.miri.ramp import MiriPlan, MiriRaw, miri_ramp_kernel

__all__ = ["EmiWave", "MiriPlan", "MiriRaw", "ReadClock", "miri_ramp_kernel"]
