"""The notebook's session, and the tool registry sessions share by default.

``%load_ext shenma_magic`` sets the session its ``%%chat`` cells use; code outside a cell
(``shenma_magic.map``, ``wait``, ``last_reply``) finds it here. ``@shenma_magic.tool`` adds to the default
registry, which every session made without ``tools=`` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ._session import Session
    from ._tools import ToolRegistry

__all__ = ["current_session", "default_tools", "set_current_session"]

_default_registry: Optional[ToolRegistry] = None
_current: Optional[Session] = None
_current_sync: Optional[Callable[[], Session]] = None


def current_session(*, synced: bool = False) -> Optional[Session]:
    """The session the notebook's ``%%chat`` cells use (set when the extension loads), or None.

    ``synced=True``: with the settings as the notebook last set them (``%config ChatMagics.x``, ``%chat x
    value``), for code that uses the session outside a ``%%chat`` cell (``shenma_magic.map``)."""
    if synced and _current is not None and _current_sync is not None:
        return _current_sync()
    return _current


def set_current_session(session: Optional[Session], sync: Optional[Callable[[], Session]] = None) -> None:
    """Set the notebook's session; ``sync`` brings its settings up to date with the front door's."""
    global _current, _current_sync
    _current = session
    _current_sync = sync if session is not None else None


def default_tools() -> ToolRegistry:
    """The registry ``@shenma_magic.tool`` adds to; sessions made without ``tools=`` share it."""
    global _default_registry
    if _default_registry is None:
        from ._tools import ToolRegistry

        _default_registry = ToolRegistry()
    return _default_registry
