"""The persistence Detector1 step: see :mod:`webbflow.steps.persistence.step`."""
