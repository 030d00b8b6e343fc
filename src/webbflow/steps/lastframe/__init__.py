"""The MIRI ``lastframe`` Detector1 step: see :mod:`webbflow.steps.lastframe.step`."""
