"""Hanging up a streaming HTTP response from another thread.

A reply is read by a worker thread blocked in a socket read; Ctrl-C arrives in the main thread. Closing the
response from the main thread is not safe while the worker reads it, but shutting its socket down is: the
worker's read returns at once (end of stream or an error) and the worker closes the response itself.

Which response belongs to which stream is learned through a ``requests`` response hook that reports, in the
worker thread that made the request, to the :class:`Line` that thread is serving. The hook does nothing in
threads that serve no line, so a client shared with ordinary turns is unaffected.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any, Optional

__all__ = ["Line", "watch_client"]

_current = threading.local()
_HOOKED = "_shenma_hangup_hook"


class Line:
    """One stream's connection, as far as hanging up goes: the response once it is known, and whether the
    stream has been hung up (a response that arrives after that is hung up as soon as it arrives)."""

    def __init__(self) -> None:
        self._response: Any = None
        self._hung_up = threading.Event()

    @property
    def hung_up(self) -> bool:
        return self._hung_up.is_set()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Requests made by this thread inside the block belong to this line."""
        _current.line = self
        try:
            yield
        finally:
            _current.line = None

    def attach(self, response: Any) -> None:
        # Set first, then look at the flag: with hang_up() doing the reverse, one of the two always acts.
        self._response = response
        if self._hung_up.is_set():
            _shut(response)

    def hang_up(self) -> None:
        """Stop the stream now: its socket is shut down, so a blocked read returns. Safe from any thread."""
        self._hung_up.set()
        if self._response is not None:
            _shut(self._response)


def _hook(response: Any, *args: Any, **kwargs: Any) -> Any:
    line: Optional[Line] = getattr(_current, "line", None)
    if line is not None:
        line.attach(response)
    return response


def watch_client(client: Any) -> None:
    """Make the responses of ``client`` (a :class:`~shenma_magic.ChatClient`) known to the line of the thread
    that asked for them. Idempotent; the hook is on the client's ``requests.Session``."""
    session = client.session  # created here, in one thread, before any worker uses it
    hooks: list[Any] = session.hooks.setdefault("response", [])
    if not any(getattr(h, _HOOKED, False) for h in hooks):
        setattr(_hook, _HOOKED, True)
        hooks.append(_hook)


def _socket_of(response: Any) -> Optional[socket.socket]:
    raw = getattr(response, "raw", None)
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    # urllib3 may have handed the socket to http.client's reader: raw._fp.fp.raw._sock
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(fp, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shut(response: Any) -> None:
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would unwrap the TLS object
            # under the reading thread's feet; this way that thread just sees the connection end.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
