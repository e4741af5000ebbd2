"""A local OpenAI-compatible server for many concurrent streams at a fixed pace (tests and bench).

``tests/relay.py``'s :class:`Relay` is a ``ThreadingHTTPServer`` with the standard listen backlog of 5:
64 clients connecting at once get connection resets, and each stream costs a thread. This one is a single
asyncio loop (in a background thread, or a process of its own with ``python -m tests.pacedrelay``) with a
backlog of 1024, so 64 or more streams run side by side and its own CPU stays out of the client's way.

Every chat request (``POST /v1/chat/completions``) is answered, unless a rule below says otherwise, with the
echo of its last user message as an SSE stream: headers and a role chunk at once, then one content delta
per word of ``"echo: <text>"`` spread evenly over ``latency`` seconds, a finish chunk, a usage chunk (word
counts, as tests/relay.py counts them) and ``[DONE]``. With ``response_format`` the echo is the JSON object
``{"echo": "<text>"}``. Rules, checked in this order:

``refuse``      a request whose text contains one of these substrings gets that status every time
                (``relay.refuse("row 7")``: 400; ``relay.refuse("row 3", 503, retry_after=0.05)``).
``fail_next``   the next N chat requests get STATUS (e.g. 429 with ``Retry-After``).
``capacity``    a request arriving while ``capacity`` others are being answered gets 429 with
                ``Retry-After: capacity_retry_after``: a relay that limits concurrency per key.
``hold``        a request whose text contains it stalls ``hold_seconds`` after the role chunk.

``latency_for`` (a function of the text, or None) overrides ``latency`` per request.

It counts what a test asserts on: ``requests`` (chat requests received), ``current`` and ``peak`` (being
answered at once), ``by_text`` (how often each user text was sent), ``statuses``, ``completed`` and
``closed`` (the client hung up before the end), and ``arrivals``: (time.monotonic(), text, status, how many
were being answered with it) per request. ``GET /_stats`` returns them as JSON and ``POST /_reset``
zeroes them, for a server in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Optional

from tests.relay import last_user_text, serve_until_ctrl_c, wait_until

__all__ = ["PacedRelay", "main"]

_POLL = 0.02


def _words(text: str) -> list[str]:
    import re

    pieces = re.findall(r"\s*\S+\s*", text)
    return pieces if "".join(pieces) == text and pieces else [text]


def _sse(obj: Any) -> bytes:
    payload = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + payload.encode() + b"\n\n"


def _chunk(model: str, delta: dict[str, Any], finish: Optional[str] = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-paced",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _error(
    status: int, message: str, headers: Optional[dict[str, str]] = None
) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    ).encode()
    return status, dict(headers or {}), body


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


class PacedRelay:
    """See the module docstring. ``with PacedRelay(latency=0.2) as relay: ... relay.url ...``"""

    def __init__(self, host: str = "127.0.0.1", *, port: int = 0, latency: float = 0.05) -> None:
        self.host = host
        self.latency = latency
        self.refused: dict[str, tuple[int, Optional[float]]] = {}
        self.latency_for: Optional[Callable[[str], float]] = None
        self.capacity: Optional[int] = None
        self.capacity_retry_after = 0.2
        self.hold = ""
        self.hold_seconds = 30.0
        self._fail: list[tuple[int, Optional[float]]] = []
        self._port = port
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self.reset()

    # -- counters -------------------------------------------------------------------------------------

    def reset(self) -> None:
        self.requests = 0
        self.current = 0
        self.peak = 0
        self.completed = 0
        self.service_seconds = 0.0  # summed over completed streams: request in to last byte out
        self.closed = 0
        self.by_text: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.arrivals: list[tuple[float, str, int, int]] = []
        self.connections = 0

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "current": self.current,
            "peak": self.peak,
            "completed": self.completed,
            "mean_service_seconds": self.service_seconds / self.completed if self.completed else None,
            "closed": self.closed,
            "connections": self.connections,
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }

    def refuse(self, text: str, status: int = 400, *, retry_after: Optional[float] = None) -> None:
        """Every request whose text contains ``text`` gets ``status``."""
        self.refused[text] = (status, retry_after)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``condition`` until it holds or ``timeout`` passes; its last value."""
        return wait_until(condition, timeout, poll=0.005)

    def wait_closed(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` clients have hung up mid-answer."""
        return self.wait_for(lambda: self.closed >= count, timeout)

    def fail_next(self, count: int, status: int = 429, retry_after: Optional[float] = None) -> None:
        """The next ``count`` chat requests get ``status`` (with ``Retry-After`` if given)."""
        self._fail.extend([(status, retry_after)] * count)

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}/v1"

    def start(self) -> PacedRelay:
        self._thread = threading.Thread(target=self._run, name="paced-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the paced relay did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._server is not None:
            server = self._server
            loop.call_soon_threadsafe(server.close)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> PacedRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(1024)
        self._port = sock.getsockname()[1]
        self._server = loop.run_until_complete(
            asyncio.start_server(self._connection, sock=sock, backlog=1024)
        )
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    # -- HTTP -----------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                if not await self._answer(method, target.split("?")[0], body, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): end quietly (a cancelled connection task would be reported by asyncio)
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _plain(
        self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _answer(
        self, method: str, path: str, body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if path == "/_stats":
            await self._plain(writer, 200, {}, json.dumps(self.stats()).encode())
            return True
        if path == "/_reset":
            self.reset()
            await self._plain(writer, 200, {}, b"{}")
            return True
        if method != "POST" or path not in ("/v1/chat/completions", "/chat/completions"):
            status, headers, data = _error(404, f"Unknown path: {path}")
            await self._plain(writer, status, headers, data)
            return True
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            status, headers, data = _error(400, "expected a JSON object")
            await self._plain(writer, status, headers, data)
            return True
        text = last_user_text(request.get("messages"))
        self.requests += 1
        self.by_text[text] += 1
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            refusal = self._refusal(text)
            status = refusal[0] if refusal is not None else 200
            self.statuses[status] += 1
            self.arrivals.append((time.monotonic(), text, status, self.current))
            if refusal is not None:
                _, headers, data = refusal
                await self._plain(writer, status, headers, data)
                return True
            started = time.monotonic()
            kept = await self._stream(request, text, reader, writer)
            if kept:
                self.service_seconds += time.monotonic() - started
            return kept
        finally:
            self.current -= 1

    def _refusal(self, text: str) -> Optional[tuple[int, dict[str, str], bytes]]:
        for part, (status, retry_after) in self.refused.items():
            if part in text:
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                return _error(status, "this row is refused", headers)
        if self._fail:
            status, retry_after = self._fail.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return _error(status, f"scripted {status}", headers)
        if self.capacity is not None and self.current > self.capacity:
            return _error(
                429, "too many concurrent requests", {"Retry-After": f"{self.capacity_retry_after:g}"}
            )
        return None

    async def _stream(
        self, request: dict[str, Any], text: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        model = str(request.get("model") or "gpt-4o-mini")
        if isinstance(request.get("response_format"), dict):
            answer = json.dumps({"echo": text}, ensure_ascii=False)
        else:
            answer = "echo: " + text
        pieces = _words(answer)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        )

        async def send(data: bytes) -> None:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()

        try:
            writer.write(head.encode())
            await send(_sse(_chunk(model, {"role": "assistant", "content": ""})))
            if self.hold and self.hold in text:
                await self._sleep(self.hold_seconds, reader)
            latency = self.latency_for(text) if self.latency_for is not None else self.latency
            gap = latency / len(pieces)
            for piece in pieces:
                if gap > 0:
                    await self._sleep(gap, reader)
                await send(_sse(_chunk(model, {"content": piece})))
            prompt_tokens = sum(
                len(str(m.get("content", "")).split())
                for m in request.get("messages", [])
                if isinstance(m, dict)
            )
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(pieces),
                "total_tokens": prompt_tokens + len(pieces),
            }
            tail = _sse(_chunk(model, {}, "stop"))
            tail += _sse(
                {
                    "id": "chatcmpl-paced",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
            tail += _sse("[DONE]")
            await send(tail)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, _Gone):
            self.closed += 1
            return False
        self.completed += 1
        return True

    async def _sleep(self, seconds: float, reader: asyncio.StreamReader) -> None:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _POLL) if seconds > _POLL else left)
            if reader.at_eof():
                raise _Gone


class _Gone(Exception):
    """The client closed its side of the connection while its answer was pending."""


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Serve paced echo streams for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each answer takes")
    args = parser.parse_args(argv)
    serve_until_ctrl_c(PacedRelay(args.host, port=args.port, latency=args.latency).start())


if __name__ == "__main__":
    main(sys.argv[1:])
