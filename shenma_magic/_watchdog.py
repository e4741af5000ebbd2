"""The deadline of a reply, kept by shutting its socket: ``max_time`` and ``ChatClient.abort()``.

A socket timeout bounds one silence, not a reply: a hostile server that keeps each read alive byte by byte
(response headers that never end, a chunk-size line that never ends) would hold a reply forever. A timer
thread shuts the connection's socket when the deadline passes (or when the client is aborted), so the read
blocked on it returns at once, whatever phase the reply is in.

Threads and sockets, no HTTP library: the connection classes of ``_http`` hand the socket over through
:data:`inflight` before the response headers are read, and the body reader from the response.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

__all__ = ["Flights", "Watchdog", "WatchedConnection", "inflight", "socket_of"]


def socket_of(response: Any) -> Optional[socket.socket]:
    """The socket under a ``requests`` response, or None when it cannot be reached."""
    raw = response.raw
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    return sock if hasattr(sock, "settimeout") else None


class Watchdog:
    """Shuts the connection's socket when the deadline passes, so a reply ends on time even when a hostile
    server keeps each read alive byte by byte: response headers that never end, or a chunk-size line that
    never ends, where no socket timeout helps.

    The socket is attached as soon as it is known: by the connection classes of the client's own session
    when they start reading the response headers (see :class:`WatchedConnection`), and from the response
    when the body is read.
    """

    def __init__(self, deadline: float) -> None:
        self.fired = False  # the deadline passed
        self.aborted = False  # ChatClient.abort() ended it
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            late = self.fired or self.aborted
        if late:
            self._shut(sock)

    def _fire(self) -> None:
        self._end(fired=True)

    def abort(self) -> None:
        """End the reply now, from any thread (whatever phase it is in)."""
        self._end(aborted=True)

    def _end(self, *, fired: bool = False, aborted: bool = False) -> None:
        # The flag is set and the socket read under one lock: attach() shuts a socket that comes later.
        with self._lock:
            self.fired = self.fired or fired
            self.aborted = self.aborted or aborted
            sock = self._sock
        if sock is not None:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sock = None

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


# The watchdog of the request this thread is sending, for the connection classes to attach to.
inflight = threading.local()


class WatchedConnection:
    """Mixed into urllib3's connection classes: the socket is handed to this thread's watchdog just before
    the response headers are read (new and reused connections alike)."""

    sock: Any

    def getresponse(self) -> Any:
        watchdog = getattr(inflight, "watchdog", None)
        if watchdog is not None:
            watchdog.attach(self.sock)
        return super().getresponse()  # type: ignore[misc]


class Flights:
    """The replies one client has in flight, so that :meth:`abort` ends them all from any thread and no
    new one starts afterwards."""

    def __init__(self) -> None:
        self.aborted = threading.Event()
        self._live: set[Watchdog] = set()
        self._lock = threading.Lock()

    def abort(self) -> None:
        self.aborted.set()
        with self._lock:
            live = list(self._live)
        for watchdog in live:
            watchdog.abort()

    @contextlib.contextmanager
    def guard(self, deadline: float) -> Iterator[Watchdog]:
        """The watchdog of one reply, known to :meth:`abort` while the reply is in flight."""
        with Watchdog(deadline) as watchdog:
            with self._lock:
                self._live.add(watchdog)
            if self.aborted.is_set():
                watchdog.abort()
            try:
                yield watchdog
            finally:
                with self._lock:
                    self._live.discard(watchdog)
