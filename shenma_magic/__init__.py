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

    from ._batch import BatchInterrupted
    from ._client import ChatClient
    from ._tools import ToolRegistry

__version__ = "0.1.0"

__all__ = [
    "APIStatusError",
    "APITimeoutError",
    "BatchInterrupted",
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
    "map",
    "tool",
    "tools",
    "unload_ipython_extension",
    "wait",
]


def tools() -> ToolRegistry:
    """The default tool registry: what ``%%chat`` (and every Session made without ``tools=``) offers the
    model (``add``, ``remove``...)."""
    from ._current import default_tools

    return default_tools()


def tool(fn: Any = None, *, trusted: bool = False, name: Any = None) -> Any:
    """Register a function as a tool the model may call: ``@tool`` or ``@tool(trusted=True)``.

    A tool runs only after you allow each call, unless it is registered as trusted. Its JSON Schema comes
    from the signature, the type hints and the docstring.
    """
    return tools().tool(fn, trusted=trusted, name=name)


# Public names whose modules are only imported when used (``%load_ext`` stays light).
_LAZY = {
    "BatchInterrupted": "._batch",
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


_fallback: Session | None = None


def map(  # the name is the API (shenma_magic.map); it shadows the builtin only in this module
    template: Any,
    data: Any,
    *,
    model: str | None = None,
    concurrency: int = 8,
    json: bool = False,
    schema: Any = None,
    max_cost: float | None = None,
    cache: bool = True,
    progress: bool = True,
    session: Session | None = None,
    **options: Any,
) -> Any:
    """Send ``template`` filled with each row of ``data`` as its own request; the answers in the data's shape.

    >>> labels = shenma_magic.map("Positive or negative? {}", reviews, concurrency=16)
    >>> df["label"] = shenma_magic.map("Label this review: {text}", df, json=True)

    ``template`` is a string, with ``{}`` for the row (a list of values or a Series) or ``{column}`` for
    a row's fields (a list of dicts or a DataFrame; ``{row[first name]}`` for a column whose name is not
    a Python name), following ``%%chat``'s brace rules; or a function of the row returning the prompt or a
    list of messages. ``data`` is a list or any iterable, a pandas Series or DataFrame.

    Returns a list for a list (or iterable), a Series with the data's index for pandas input. Each element
    is the row's :class:`Reply`, or its parsed JSON value with ``json=True``/``schema=``. A row that failed
    is a Reply with ``.error`` (failures never raise); one summary line at the end says how many and why.

    Each row is an independent request (no conversation) with the session's settings: system prompt,
    temperature, max_tokens, prices (``options`` may set ``system``, ``temperature``, ``max_tokens``,
    ``timeout``, ``max_attempts`` (4) and request fields such as ``top_p`` or ``seed`` for all rows).
    At most ``concurrency`` requests are in flight, fewer while the relay answers 429/503; those and
    other passing failures are retried with backoff, honouring ``Retry-After``.

    ``cache=True`` keeps every answer in the local store and answers a row from it when the same request
    (model, messages, options) was answered before: a re-run, or a run after Ctrl-C or a crash, sends only
    the rows not answered yet. ``max_cost`` (with prices set) stops sending before spent money plus the
    estimate of what is in flight would pass it. ``progress=False`` shows nothing.

    ``session`` defaults to the notebook's (``%load_ext shenma_magic``), else one made with ``Session()``.
    Raises ConfigError, before anything is sent, for a template or option that cannot work;
    ``BatchInterrupted`` (with ``.results``) on Ctrl-C.
    """
    from ._batch import run_map
    from ._current import current_session

    global _fallback
    chosen = session if session is not None else current_session(synced=True)
    if chosen is None:
        if _fallback is None:
            _fallback = Session()
        chosen = _fallback
    return run_map(
        chosen,
        template,
        data,
        model=model,
        concurrency=concurrency,
        json=json,
        schema=schema,
        max_cost=max_cost,
        cache=cache,
        progress=progress,
        **options,
    )


def last_reply() -> Reply | None:
    """The last ``%%chat`` reply in this IPython session (also bound by ``%%chat -o NAME``), or None."""
    from ._current import current_session

    session = current_session()
    return session.last if session is not None else None


def wait(timeout: float | None = None) -> list[Any]:
    """Block until every background reply (``%%chat --bg``) of the notebook's session has ended.

    Returns the jobs waited for (with ``timeout``, those still running when it passed). Ctrl-C stops them
    all, keeping their partial answers, and raises KeyboardInterrupt.
    """
    from ._current import current_session

    session = current_session()
    return session.wait(timeout) if session is not None else []


def load_ipython_extension(ip: InteractiveShell) -> None:
    """``%load_ext shenma_magic``: register ``%%chat`` and ``%chat``."""
    from ._magic import register

    register(ip)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    from ._magic import unregister

    unregister(ip)
