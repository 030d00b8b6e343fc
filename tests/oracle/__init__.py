"""Test-time oracle helpers: run the jwst pipeline offline and compare its products with ours.

jwst is never imported by webbflow itself; these helpers run it in a separate
Python process (see :mod:`tests.oracle.jwst_runner`).
"""
