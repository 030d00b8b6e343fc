"""The saturation Detector1 step: see :mod:`webbflow.steps.saturation.step`."""
