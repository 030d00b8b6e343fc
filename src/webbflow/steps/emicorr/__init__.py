"""The MIRI ``emicorr`` Detector1 step: see :mod:`webbflow.steps.emicorr.step`."""
