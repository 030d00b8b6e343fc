"""The ipc Detector1 step: see :mod:`webbflow.steps.ipc.step`."""
