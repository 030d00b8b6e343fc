"""Simulation of JWST near-infrared exposures: scene, optics, detector, readout."""
