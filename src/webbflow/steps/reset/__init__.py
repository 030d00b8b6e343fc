"""The MIRI ``reset`` Detector1 step: see :mod:`webbflow.steps.reset.step`."""
