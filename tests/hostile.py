"""Hostile HTTP servers on loopback: raw sockets, so a script can send what no well-behaved server library
would (endless bodies, trickled framing, compression bombs, keep-alives forever).

    with RawServer(endless(b"x" * 65536)) as server:
        ChatClient(server.url, KEY).complete(...)

A script is called once per connection, after the request (head and Content-Length body) was read, with a
:class:`Conn` to write to; it returns when it is done or when the client went away.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Optional

__all__ = [
    "Conn",
    "RawServer",
    "chunk_extension_trickle",
    "endless",
    "endless_header_line",
    "endless_headers",
    "gzip_bomb",
    "hang_up",
    "header_trickle",
    "never_answer",
    "not_http",
    "pings",
    "trickle",
]


class ClientGone(Exception):
    pass


class Conn:
    """One accepted connection: write bytes, or HTTP chunks, until the client goes or the server stops."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self.stopping = stopping

    def send(self, data: bytes) -> None:
        if self.stopping.is_set():
            raise ClientGone
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ClientGone from exc

    def chunk(self, data: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def sleep(self, seconds: float) -> None:
        if self.stopping.wait(seconds):
            raise ClientGone

    def head(self, headers: dict[str, str], status: str = "200 OK") -> None:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        self.send("\r\n".join(lines).encode())


Script = Callable[[Conn], None]


class RawServer:
    """A threaded TCP server on ``host`` running ``script`` for each connection. ``requests`` holds each
    request's raw bytes (head and body), recorded before the script runs."""

    def __init__(self, script: Script, host: str = "127.0.0.1") -> None:
        self.script = script
        self.host = host
        self.requests: list[bytes] = []
        self._stopping = threading.Event()
        self._sock: Optional[socket.socket] = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> RawServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(16)
        sock.settimeout(0.05)
        self._sock = sock
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                piece = conn.recv(65536)
                if not piece:
                    break
                body += piece
            self.requests.append(head + b"\r\n\r\n" + body)
            conn.settimeout(None)
            with contextlib.suppress(ClientGone):
                self.script(Conn(conn, self._stopping))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()


# -- scripts ---------------------------------------------------------------------------------------------

SSE = {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"}
FIRST = b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"partial "}}]}\n\n'


def endless(piece: bytes, *, first: bytes = FIRST, headers: Optional[dict[str, str]] = None) -> Script:
    """``first``, then ``piece`` as HTTP chunks, as fast as the client reads, forever."""

    def script(conn: Conn) -> None:
        conn.head(headers or SSE)
        if first:
            conn.chunk(first)
        while True:
            conn.chunk(piece)

    return script


def _bomb_member(size: int) -> bytes:
    gz = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"a" * (1024 * 1024)
    out = [gz.compress(block) for _ in range(size // len(block))]
    out.append(gz.flush())
    return b"".join(out)


def gzip_bomb(size: int = 1024 * 1024 * 1024, *, first: bytes = FIRST) -> Script:
    """A gzip body whose first member is ``first`` and whose next ones inflate to ``size`` bytes of "a" with
    no newline, members repeated forever (a few kilobytes on the wire for each gigabyte)."""
    member = _bomb_member(size)
    head = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    opening = head.compress(first) + head.flush()

    def script(conn: Conn) -> None:
        conn.head({**SSE, "Content-Encoding": "gzip"})
        conn.chunk(opening)
        while True:
            conn.chunk(member)

    return script


def pings(every: float, *, first: bytes = FIRST) -> Script:
    """``first``, then an SSE comment every ``every`` seconds, forever (a keep-alive that never ends)."""

    def script(conn: Conn) -> None:
        conn.head(SSE)
        conn.chunk(first)
        while True:
            conn.sleep(every)
            conn.chunk(b": PING\n\n")

    return script


def trickle(body: bytes, *, per_second: int = 2, framing: str = "close") -> Script:
    """``body`` at ``per_second`` bytes a second, one write per byte pair."""

    def script(conn: Conn) -> None:
        if framing == "close":
            conn.head({"Content-Type": "text/event-stream", "Connection": "close"})
        else:
            conn.head(SSE)
        for i in range(0, len(body), per_second):
            part = body[i : i + per_second]
            conn.send(part) if framing == "close" else conn.chunk(part)
            conn.sleep(1.0)

    return script


def chunk_extension_trickle(*, first: bytes = FIRST) -> Script:
    """A chunk-size line that never ends: ``1;`` then a byte of chunk extension every 0.2 s. One read of
    the body never returns, however short the socket timeout, unless something closes the socket."""

    def script(conn: Conn) -> None:
        conn.head(SSE)
        conn.chunk(first)
        conn.send(b"1;")
        while True:
            conn.sleep(0.2)
            conn.send(b"x")

    return script


def never_answer(conn: Conn) -> None:
    """Read the request, then say nothing until the client leaves."""
    while True:
        conn.sleep(0.1)


def header_trickle(conn: Conn) -> None:
    """Response headers that never end: one header byte every 0.2 s."""
    conn.send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while True:
        conn.sleep(0.2)
        conn.send(b"a")


def endless_headers(conn: Conn) -> None:
    """A status line, then header lines as fast as the client reads them, never the blank line."""
    conn.send(b"HTTP/1.1 200 OK\r\n")
    number = 0
    while True:
        conn.send(b"".join(b"X-Header-%d: value\r\n" % (number + i) for i in range(64)))
        number += 64


def endless_header_line(conn: Conn) -> None:
    """One header line that never ends, sent as fast as the client reads it."""
    conn.send(b"HTTP/1.1 200 OK\r\nX-Long: ")
    while True:
        conn.send(b"a" * 16384)


def not_http(conn: Conn) -> None:
    """An answer that is not HTTP at all (another protocol on the port)."""
    conn.send(b"SSH-2.0-OpenSSH_9.6\r\n")


def hang_up(conn: Conn) -> None:
    """Read the request, then close the connection without a word."""


def pieces(stream: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(stream), size):
        yield stream[i : i + size]


def now() -> float:
    return time.monotonic()
