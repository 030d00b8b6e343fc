"""The superbias Detector1 step: see :mod:`webbflow.steps.superbias.step`."""
