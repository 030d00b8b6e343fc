"""The MIRI ``firstframe`` Detector1 step: see :mod:`webbflow.steps.firstframe.step`."""
