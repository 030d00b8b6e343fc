"""The dark_current Detector1 step: see :mod:`webbflow.steps.dark_current.step`."""
