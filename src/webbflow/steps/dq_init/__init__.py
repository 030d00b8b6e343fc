"""The dq_init Detector1 step: see :mod:`webbflow.steps.dq_init.step`."""
