"""Persistence kernel: **not built**.

Physics (for reference): charge trapped during earlier bright exposures is
released slowly and adds a decaying signal to later ramps. jwst 3.0 skips
its persistence step by default and uses no reference files; webbflow does
not model persistence at all, so this module has no kernel.
"""

from __future__ import annotations
