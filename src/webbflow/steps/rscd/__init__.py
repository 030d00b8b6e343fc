"""The MIRI ``rscd`` Detector1 step: see :mod:`webbflow.steps.rscd.step`."""
