"""The Image3 ``tweakreg`` step: source lists per exposure, tweakwcs alignment of their WCSs."""

from webbflow.steps.tweakreg.step import Params, TweakRegStep

__all__ = ["Params", "TweakRegStep"]
