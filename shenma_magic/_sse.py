"""Server-sent events framing: bytes -> lines -> events.

Pure and stdlib-only: nothing here knows about HTTP, OpenAI or IPython, so every rule can be tested by
feeding bytes at any split point.

The rules are the WHATWG "event stream" interpretation:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

from typing import Optional

__all__ = ["LineDecoder", "SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"


class ServerSentEvent:
    """One dispatched event. ``event`` is ``"message"`` unless the stream named it."""

    __slots__ = ("data", "event", "id", "retry")

    def __init__(self, data: str, event: str = "message", id: str = "", retry: Optional[int] = None) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry

    def __repr__(self) -> str:
        return (
            f"ServerSentEvent(event={self.event!r}, data={self.data!r}, id={self.id!r}, retry={self.retry!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.data, self.event, self.id, self.retry) == (
            other.data,
            other.event,
            other.id,
            other.retry,
        )

    __hash__ = None  # type: ignore[assignment]


class LineDecoder:
    """Splits a byte stream into text lines, fed one network chunk at a time.

    Line endings are CRLF, lone CR and lone LF, matched on bytes so that a CR at the end of one chunk and
    an LF at the start of the next are one ending. UTF-8 is decoded per complete line, never per chunk, so
    a character split across chunks survives. ``str.splitlines`` is never used: it would also break on
    U+2028, U+2029 and U+0085, which are ordinary characters inside JSON payloads.
    """

    __slots__ = ("_bom_pending", "_parts", "_skip_lf", "_started")

    def __init__(self) -> None:
        # The unfinished last line as a list of pieces, joined once when its ending arrives: appending to a
        # growing buffer and rescanning it on every chunk is what makes naive parsers quadratic.
        self._parts: list[bytes] = []
        self._skip_lf = False
        self._started = False
        self._bom_pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        """Return the lines completed by ``chunk`` (without their endings)."""
        if not self._started:
            # NOTE: as per the SSE spec, one leading BOM is dropped; it may itself be split across chunks.
            head = self._bom_pending + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._bom_pending = head
                return []
            self._started = True
            self._bom_pending = b""
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if b"\r" not in chunk:
            # The common case (LF only): decode every complete line in one call and split once, both in C.
            # Cutting at an LF byte never splits a UTF-8 sequence, and str.split("\n") (unlike
            # str.splitlines) breaks on nothing else.
            cut = chunk.rfind(b"\n")
            if cut == -1:
                self._parts.append(chunk)
                return []
            head = chunk[:cut]
            if self._parts:
                self._parts.append(head)
                head = b"".join(self._parts)
                self._parts = []
            if cut + 1 < len(chunk):
                self._parts.append(chunk[cut + 1 :])
            return head.decode("utf-8", "replace").split("\n")
        # bytes.splitlines breaks on exactly \r\n, \r and \n (unlike str.splitlines), in C.
        pieces = chunk.splitlines(keepends=True)
        last = pieces[-1]
        tail: Optional[bytes]
        if last.endswith(b"\r"):
            # The LF of a CRLF may be the first byte of the next chunk.
            self._skip_lf = True
            tail = None
        elif last.endswith(b"\n"):
            tail = None
        else:
            tail = last
            pieces.pop()
        lines: list[str] = []
        if pieces:
            if self._parts:
                self._parts.append(pieces[0])
                pieces[0] = b"".join(self._parts)
                self._parts = []
            for piece in pieces:
                end = -2 if piece.endswith(b"\r\n") else -1
                lines.append(piece[:end].decode("utf-8", "replace"))
        if tail is not None:
            self._parts.append(tail)
        return lines

    def flush(self) -> list[str]:
        """End of stream: return the unfinished last line, if any."""
        self._skip_lf = False
        rest = self._bom_pending + b"".join(self._parts)
        self._parts = []
        self._bom_pending = b""
        if not self._started and rest.startswith(_BOM):
            rest = rest[len(_BOM) :]
        self._started = True
        return [rest.decode("utf-8", "replace")] if rest else []


class SSEDecoder:
    """Turns bytes into dispatched events: a :class:`LineDecoder` plus the spec's field rules."""

    __slots__ = ("_data", "_event", "_has_data", "_last_id", "_lines", "_retry")

    def __init__(self) -> None:
        self._lines = LineDecoder()
        self._data: list[str] = []
        self._has_data = False
        self._event = ""
        self._last_id = ""
        self._retry: Optional[int] = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Return the events completed by ``chunk``."""
        lines = self._lines.feed(chunk)
        return self.decode_lines(lines) if lines else []

    def flush(self) -> list[ServerSentEvent]:
        """End of stream. NOTE: as per the spec, an event without its closing blank line is discarded."""
        self.decode_lines(self._lines.flush())
        self._data = []
        self._has_data = False
        self._event = ""
        return []

    def decode_lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        has_data = self._has_data
        for line in lines:
            # The hot path first: nearly every line of a chat stream is "data: {...}" or blank.
            if line.startswith("data:"):
                data.append(line[6:] if line[5:6] == " " else line[5:])
                has_data = True
                continue
            if not line:
                if has_data:
                    events.append(ServerSentEvent("\n".join(data), self._event or "message", self._last_id))
                    data.clear()
                    has_data = False
                self._event = ""
                continue
            if line[0] == ":":
                continue  # a comment: keep-alives such as ": PING" or ": OPENROUTER PROCESSING"
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":  # "data" with no colon at all: an empty data line
                data.append(value)
                has_data = True
            elif name == "event":
                self._event = value
            elif name == "id" and "\0" not in value:
                self._last_id = value
            elif name == "retry" and value.isdigit() and value.isascii():
                self._retry = int(value)
            # Any other field is ignored, as the spec says.
        self._has_data = has_data
        return events

    @property
    def last_event_id(self) -> str:
        return self._last_id

    @property
    def retry(self) -> Optional[int]:
        return self._retry
