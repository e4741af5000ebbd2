"""Reading a response body as it arrives, within a byte budget and a deadline.

The bytes counted are the decoded ones: gzip and deflate are inflated here a bounded slice at a time
(:class:`Inflater`), so a decompression bomb stops at the limit instead of filling memory. Each socket read
may wait no longer than the silence allowed, nor past the deadline. Reading stops with one of three
exceptions of this module, which the client turns into its errors: :class:`ReplyTooLarge`,
:class:`DeadlinePassed`, :class:`Stopped` (the client was aborted); a failing read raises what the HTTP
library raised.

I/O on the response the client got (``requests``' ``Response`` and its urllib3 ``raw``), without importing
the HTTP library: only its reading methods are used.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._errors import ProtocolError
from ._watchdog import Watchdog, socket_of

if TYPE_CHECKING:
    import requests

__all__ = [
    "READ_SIZE",
    "BodyReader",
    "DeadlinePassed",
    "Inflater",
    "ReplyTooLarge",
    "Stopped",
    "drain_quickly",
    "read_error_body",
]

READ_SIZE = 64 * 1024
# An error body is read for its message only: this much, for this long at most.
_ERROR_BODY_LIMIT = 64 * 1024
_ERROR_BODY_SECONDS = 10.0


class ReplyTooLarge(Exception):
    pass


class DeadlinePassed(Exception):
    pass


class Stopped(Exception):
    pass


class Inflater:
    """gzip / deflate decoding whose every step returns at most ``READ_SIZE`` bytes, so a few kilobytes
    that inflate to gigabytes are read, counted and stopped a slice at a time."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._members = 0
        self._raw_fallback = not self._gzip
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._obj.decompress(data, READ_SIZE)
            except zlib.error:
                if self._members:
                    return  # bytes after a whole member that are not another one: ignored, as urllib3 does
                if not self._raw_fallback:
                    raise ProtocolError(
                        "the server's compressed answer does not decompress", "try again"
                    ) from None
                # Some servers send raw deflate without the zlib header.
                self._raw_fallback = False
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._raw_fallback = False
            if out:
                yield out
            data = self._obj.unconsumed_tail
            if self._obj.eof:
                self._members += 1
                rest = self._obj.unused_data
                if not (self._gzip and rest):
                    return
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a gzip body may hold several members
                data = rest


class BodyReader:
    """The decoded body of one response as it arrives, within a byte budget and a deadline."""

    def __init__(
        self,
        response: requests.Response,
        *,
        limit: int,
        deadline: float,
        read_timeout: float,
        watchdog: Watchdog,
    ) -> None:
        self.response = response
        self.limit = limit
        self.deadline = deadline
        self.read_timeout = read_timeout
        self.total = 0
        self.watchdog = watchdog
        watchdog.attach(socket_of(response))

    def __iter__(self) -> Iterator[bytes]:
        for data in self._decoded():
            self.total += len(data)
            if self.total > self.limit:
                raise ReplyTooLarge
            yield data

    def _decoded(self) -> Iterator[bytes]:
        raw = self.response.raw
        read1 = getattr(raw, "read1", None)
        if read1 is None:  # urllib3 1.x: no incremental raw reads; its decoder's output is capped per chunk
            for data in self.response.iter_content(chunk_size=None):
                self._check_time()
                yield data
            return
        encoding = (self.response.headers.get("content-encoding") or "").strip().lower()
        inflater = Inflater(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None
        # Anything else (identity, or an encoding we did not ask for) is left to urllib3, which bounds
        # each step's output from version 2.6 on.
        decode_by_urllib3 = inflater is None and encoding not in ("", "identity")
        sock = socket_of(self.response)
        lowered = False
        while True:
            left = self._check_time()
            if sock is not None and (lowered or left < self.read_timeout):
                # A silence may not outlast the deadline: the socket's timeout is what is left of it.
                lowered = True
                try:
                    sock.settimeout(min(self.read_timeout, max(left, 0.001)))
                except OSError:
                    sock = None
            try:
                data = read1(READ_SIZE, decode_content=decode_by_urllib3)
            except BaseException:
                self._check_time()
                raise
            if not data:
                self._check_time()
                return
            if inflater is None:
                yield data
            else:
                yield from inflater.feed(data)

    def _check_time(self) -> float:
        left = self.deadline - time.monotonic()
        if self.watchdog.aborted:
            raise Stopped
        if left <= 0 or self.watchdog.fired:
            raise DeadlinePassed
        return left


def read_error_body(response: requests.Response) -> bytes:
    """The first 64 KiB of an error response's body, read within 10 s, and the response closed.

    A broken, huge or slow error body still deserves the status line: what could be read is returned."""
    parts: list[bytes] = []
    try:
        with Watchdog(time.monotonic() + _ERROR_BODY_SECONDS) as watchdog:
            reader = BodyReader(
                response,
                limit=_ERROR_BODY_LIMIT,
                deadline=time.monotonic() + _ERROR_BODY_SECONDS,
                read_timeout=_ERROR_BODY_SECONDS,
                watchdog=watchdog,
            )
            for data in reader:
                parts.append(data)
    except Exception:
        pass
    finally:
        response.close()
    return b"".join(parts)[:_ERROR_BODY_LIMIT]


def drain_quickly(response: requests.Response) -> None:
    """After [DONE], read what is left of the body if it is already here, so the connection can be reused.

    A server may keep the connection open after [DONE]; we wait at most 50 ms for the end of the body
    rather than hold the user's reply hostage.
    """
    raw = response.raw
    sock = socket_of(response)
    if sock is None or not hasattr(raw, "read1"):
        return
    try:
        old = sock.gettimeout()
        sock.settimeout(0.05)
        try:
            for _ in range(16):
                if not raw.read1(READ_SIZE, decode_content=False):
                    return
        finally:
            if not raw.closed:
                sock.settimeout(old)
    except Exception:  # anything at all: the connection is simply not reused
        return
