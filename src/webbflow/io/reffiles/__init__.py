"""Reference files: resolver (override → CRDS → embedded default), default set, opener.

Public names: :class:`ReferenceResolver`, :func:`open_reference`,
:func:`default_reference`, :func:`cache_root`.
"""

from __future__ import annotations

from webbflow.io.reffiles.defaults import cache_root, default_reference
from webbflow.io.reffiles.opener import open_reference
from webbflow.io.reffiles.resolver import ReferenceResolver

__all__ = ["ReferenceResolver", "cache_root", "default_reference", "open_reference"]
