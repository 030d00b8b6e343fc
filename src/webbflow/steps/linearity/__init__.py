"""The linearity Detector1 step: see :mod:`webbflow.steps.linearity.step`."""
