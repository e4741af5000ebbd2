"""shenma-magic: a ``%%chat`` cell magic that streams chat replies from 神马中转API or any OpenAI-compatible
server into the notebook.

    %load_ext shenma_magic

The public Python API (usable outside IPython) is re-exported here: :class:`Session` (the chat engine),
:class:`ChatClient` (one request), :class:`Reply`, the deltas a stream yields, and the error family. The
decoders stay importable from their modules (``shenma_magic._sse``...). Heavy modules (``requests``, the
display, the tools) are imported on first use, so ``%load_ext`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    APIStatusError,
    APITimeoutError,
    ConfigError,
    ConnectError,
    ConnectionLostError,
    InsecureTransportError,
    KeyInRequestError,
    LimitExceededError,
    ProtocolError,
    ShenmaError,
    StreamError,
)
from ._models import (
    Delta,
    FinishDelta,
    MetaDelta,
    NoticeDelta,
    ReasoningDelta,
    Reply,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)
from ._session import ChatInterrupted, Session

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ._client import ChatClient
    from ._tools import ToolRegistry

__version__ = "0.1.0"

__all__ = [
    "APIStatusError",
    "APITimeoutError",
    "ChatClient",
    "ChatInterrupted",
    "ConfigError",
    "ConnectError",
    "ConnectionLostError",
    "Delta",
    "FinishDelta",
    "InsecureTransportError",
    "JSONRecoveryError",
    "JSONValidationError",
    "KeyInRequestError",
    "LimitExceededError",
    "MetaDelta",
    "NoticeDelta",
    "ProtocolError",
    "ReasoningDelta",
    "Reply",
    "Session",
    "ShenmaError",
    "StreamError",
    "TextDelta",
    "ToolCallDelta",
    "ToolError",
    "ToolRegistry",
    "UsageDelta",
    "__version__",
    "last_reply",
    "load_ipython_extension",
    "tool",
    "tools",
    "unload_ipython_extension",
    "wait",
]


def tools() -> ToolRegistry:
    """The default tool registry: what ``%%chat`` (and every Session made without ``tools=``) offers the
    model (``add``, ``remove``...)."""
    from ._session import default_tools

    return default_tools()


def tool(fn: Any = None, *, trusted: bool = False, name: Any = None) -> Any:
    """Register a function as a tool the model may call: ``@tool`` or ``@tool(trusted=True)``.

    A tool runs only after you allow each call, unless it is registered as trusted. Its JSON Schema comes
    from the signature, the type hints and the docstring.
    """
    return tools().tool(fn, trusted=trusted, name=name)


# Public names whose modules are only imported when used (``%load_ext`` stays light).
_LAZY = {
    "JSONRecoveryError": "._jsonout",
    "JSONValidationError": "._jsonout",
    "ToolError": "._tools",
    "ToolRegistry": "._tools",
}
_DEPRECATED = {"TimeoutError": "APITimeoutError", "ConnectionLost": "ConnectionLostError"}


def __getattr__(name: str) -> Any:
    # ChatClient pulls in requests (~0.1 s); only pay for it when a request is actually made.
    if name == "ChatClient":
        from ._client import ChatClient

        return ChatClient
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _DEPRECATED:
        import warnings

        from . import _errors

        new = _DEPRECATED[name]
        warnings.warn(f"shenma_magic.{name} is now {new}", DeprecationWarning, stacklevel=2)
        return getattr(_errors, new)
    raise AttributeError(f"module 'shenma_magic' has no attribute {name!r}")


def last_reply() -> Reply | None:
    """The last ``%%chat`` reply in this IPython session (also bound by ``%%chat -o NAME``), or None."""
    from ._session import current_session

    session = current_session()
    return session.last if session is not None else None


def wait(timeout: float | None = None) -> list[Any]:
    """Block until every background reply (``%%chat --bg``) of the notebook's session has ended.

    Returns the jobs waited for (with ``timeout``, those still running when it passed). Ctrl-C stops them
    all, keeping their partial answers, and raises KeyboardInterrupt.
    """
    from ._session import current_session

    session = current_session()
    return session.wait(timeout) if session is not None else []


def load_ipython_extension(ip: InteractiveShell) -> None:
    """``%load_ext shenma_magic``: register ``%%chat`` and ``%chat``."""
    from ._magic import register

    register(ip)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    from ._magic import unregister

    unregister(ip)
