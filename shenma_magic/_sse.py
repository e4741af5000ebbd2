"""Server-sent events framing: bytes -> lines -> events.

Pure and stdlib-only: nothing here knows about HTTP, OpenAI or IPython, so every rule can be tested by
feeding bytes at any split point.

The rules are the WHATWG "event stream" interpretation:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Memory is bounded: a line may hold at most :data:`MAX_LINE` bytes and an event's data (its ``data:`` lines
joined) at most :data:`MAX_EVENT` characters, so a server that never sends a line break, or ``data:`` lines
that never end in a blank line, gets a :class:`~shenma_magic.LimitExceededError` as soon as the limit is
passed instead of filling the memory. The limits are far above any real chat chunk (a few hundred bytes;
a whole non-streamed answer wrapped in one event stays well under them).
"""

from __future__ import annotations

import json
from typing import NoReturn, Optional

from ._errors import LimitExceededError

__all__ = ["MAX_EVENT", "MAX_LINE", "LineDecoder", "SSEDecoder", "ServerSentEvent"]

MAX_LINE = 16 * 1024 * 1024
"""Bytes one line may hold (without its ending) unless a decoder is given another limit: 16 MiB, room
for a relay that sends a whole answer with a base64 image in one event."""
MAX_EVENT = 32 * 1024 * 1024
"""Characters one event's data may hold (its data lines joined) unless a decoder is given another limit:
32 Mi, shown as "32 MiB" since the JSON of chat streams is mostly ASCII (a character is at most 4 bytes)."""

_BOM = b"\xef\xbb\xbf"
_HINT = "the text so far is kept; the server (or a proxy in front of it) is not sending a chat stream"


def _size(limit: int) -> str:
    """``4 MiB``, ``512 KiB``, ``100 bytes``: a limit as a person would say it."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= scale and limit % scale == 0:
            return f"{limit // scale} {unit}"
    return f"{limit:,} bytes"


def _whole_object(text: str) -> bool:
    """Whether ``text`` is one whole JSON object (a chat chunk), as a proxy's single-newline event is."""
    text = text.strip()
    if text[:1] != "{" or text[-1:] != "}":
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _limit_error(what: str, limit: int) -> LimitExceededError:
    return LimitExceededError(f"the server sent {what} longer than the {_size(limit)} limit", _HINT)


class ServerSentEvent:
    """One dispatched event. ``event`` is ``"message"`` unless the stream named it."""

    __slots__ = ("data", "event", "id")

    def __init__(self, data: str, event: str = "message", id: str = "") -> None:
        self.data = data
        self.event = event
        self.id = id

    def __repr__(self) -> str:
        return f"ServerSentEvent(event={self.event!r}, data={self.data!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.data, self.event, self.id) == (other.data, other.event, other.id)

    __hash__ = None  # type: ignore[assignment]  # unhashable, as __eq__ makes it; typeshed says a method


class LineDecoder:
    """Splits a byte stream into text lines, fed one network chunk at a time.

    Line endings are CRLF, lone CR and lone LF, matched on bytes so that a CR at the end of one chunk and
    an LF at the start of the next are one ending. UTF-8 is decoded per complete line, never per chunk, so
    a character split across chunks survives. ``str.splitlines`` is never used: it would also break on
    U+2028, U+2029 and U+0085, which are ordinary characters inside JSON payloads.

    A line longer than ``max_line`` bytes raises :class:`~shenma_magic.LimitExceededError` as soon as the
    bytes held pass the limit (at most one chunk later), and what was held is let go.
    """

    __slots__ = ("_bom_pending", "_held", "_max_line", "_parts", "_skip_lf", "_started")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._max_line = max_line
        # The unfinished last line as a list of pieces, joined once when its ending arrives: appending to a
        # growing buffer and rescanning it on every chunk is what makes naive parsers quadratic.
        self._parts: list[bytes] = []
        self._held = 0  # bytes in _parts
        self._skip_lf = False
        self._started = False
        self._bom_pending = b""

    def _overflow(self) -> NoReturn:
        self._parts = []
        self._held = 0
        raise _limit_error("a line", self._max_line)

    def _check_lines(self, data: bytes) -> None:
        """The rare path: ``data`` is long enough to complete a line that is too long (the held part of the
        line included), or to hold one."""
        limit = self._max_line
        first = True
        for piece in data.splitlines(keepends=True):
            if len(piece.rstrip(b"\r\n")) + (self._held if first else 0) > limit:
                self._overflow()
            first = False

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
                held = self._held + len(chunk)
                if held > self._max_line:
                    self._overflow()
                self._parts.append(chunk)
                self._held = held
                return []
            if self._held + cut > self._max_line:
                self._check_lines(chunk)  # rare: a line here may be too long
            head = chunk[:cut]
            if self._parts:
                self._parts.append(head)
                head = b"".join(self._parts)
                self._parts = []
            rest = len(chunk) - cut - 1
            self._held = rest
            if rest:
                self._parts.append(chunk[cut + 1 :])
            return head.decode("utf-8", "replace").split("\n")
        if self._held + len(chunk) > self._max_line:
            self._check_lines(chunk)
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
                self._held = 0
            for piece in pieces:
                end = -2 if piece.endswith(b"\r\n") else -1
                lines.append(piece[:end].decode("utf-8", "replace"))
        if tail is not None:
            self._parts.append(tail)
            self._held += len(tail)
        return lines

    def flush(self) -> list[str]:
        """End of stream: return the unfinished last line, if any."""
        self._skip_lf = False
        rest = self._bom_pending + b"".join(self._parts)
        self._parts = []
        self._held = 0
        self._bom_pending = b""
        if not self._started and rest.startswith(_BOM):
            rest = rest[len(_BOM) :]
        self._started = True
        return [rest.decode("utf-8", "replace")] if rest else []


class SSEDecoder:
    """Turns bytes into dispatched events: a :class:`LineDecoder` plus the spec's field rules.

    ``max_line`` bounds one line in bytes, ``max_event`` one event's data (its data lines joined) in
    characters; passing either raises :class:`~shenma_magic.LimitExceededError`.

    ``json_lines=True`` reads a stream from a proxy that ends each event with a single newline instead of
    a blank line (so, by the spec, its whole reply would be one event, dispatched only at the end, if
    ever): when a data line, an ``event:`` or an ``id:`` line arrives while the event holds exactly one
    data line that is a whole JSON object, that line is dispatched as an event of its own first (under
    the fields it came with); from then on any held line is (a broken one costs itself, not the rest); a
    held blank data line (a keep-alive) is dropped; a lone ``[DONE]`` data line is dispatched at once. A
    spec-conforming stream whose events hold one data line after their other fields is read exactly as
    without it (its blank line always dispatches before another line can arrive); a JSON object spread
    over several lines is still one event (its first line is not a whole object).
    """

    __slots__ = (
        "_data",
        "_event",
        "_has_data",
        "_json_lines",
        "_last_id",
        "_lines",
        "_max_event",
        "_single",
        "_size",
    )

    def __init__(
        self, max_line: int = MAX_LINE, max_event: int = MAX_EVENT, *, json_lines: bool = False
    ) -> None:
        if max_event < 1:
            raise ValueError("max_event must be at least 1")
        self._json_lines = json_lines
        self._single = False  # json_lines: a data line has been seen to end an event (see _held_event)
        self._lines = LineDecoder(max_line)
        self._max_event = max_event
        self._data: list[str] = []
        self._size = 0  # characters in _data, plus one per line for the newlines that will join them
        self._has_data = False
        self._event = ""
        self._last_id = ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Return the events completed by ``chunk``."""
        lines = self._lines.feed(chunk)
        return self.decode_lines(lines) if lines else []

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: reset, and return the events whose blank line never came (usually none).

        NOTE: as per the spec such an event is not dispatched (a browser discards it), nor is a last line
        without its line break a line. Both are handed back here so that a reader may still use what a
        broken proxy sent (one that never sends the blank line, or closes right after the last ``}``) rather
        than lose the end of an answer; a line that was really cut is then malformed data, which the
        reader reports as such.
        """
        events = self.decode_lines(self._lines.flush())
        self._single = False
        pending = (
            ServerSentEvent("\n".join(self._data), self._event or "message", self._last_id)
            if self._has_data
            else None
        )
        self._data = []
        self._size = 0
        self._has_data = False
        self._event = ""
        if pending is not None:
            events.append(pending)
        return events

    def decode_lines(self, lines: list[str]) -> list[ServerSentEvent]:
        """Apply the field rules to complete lines (without endings); return the events they dispatch."""
        events: list[ServerSentEvent] = []
        data = self._data
        has_data = self._has_data
        size = self._size
        # The joined data is one character shorter than size (no newline after the last line).
        limit = self._max_event + 1
        for line in lines:
            # The hot path first: nearly every line of a chat stream is "data: {...}" or blank. A bare
            # "data" (no colon) is an empty data line: the same rules, the same path.
            if line.startswith("data:") or line == "data":
                value = line[6:] if line[5:6] == " " else line[5:]
                if self._json_lines:
                    if len(data) == 1:
                        if not data[0].strip():
                            # A blank keep-alive line held: it carries nothing (nor does another one).
                            if not value.strip():
                                continue
                            data.clear()
                            size = 0
                        else:
                            held = self._held_event()
                            if held is not None:
                                events.append(held)
                                size = 0
                    if not data and value.strip() == "[DONE]":
                        events.append(ServerSentEvent(value, self._event or "message", self._last_id))
                        has_data = False
                        continue
                data.append(value)
                size += len(value) + 1
                if size > limit:
                    self._overflow()
                has_data = True
                continue
            if not line:
                if has_data:
                    events.append(ServerSentEvent("\n".join(data), self._event or "message", self._last_id))
                    data.clear()
                    size = 0
                    has_data = False
                self._event = ""
                continue
            if line[0] == ":":
                continue  # a comment: keep-alives such as ": PING" or ": OPENROUTER PROCESSING"
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "event" or (name == "id" and "\0" not in value):
                if self._json_lines and len(data) == 1 and data[0].strip():
                    # The held line is an event of its own: it goes out under the fields it came with.
                    held = self._held_event()
                    if held is not None:
                        events.append(held)
                        size = 0
                        has_data = False
                if name == "event":
                    self._event = value
                else:
                    self._last_id = value
            # Any other field is ignored, as the spec says ("retry" too: this reader never reconnects).
        self._has_data = has_data
        self._size = size
        return events

    def _held_event(self) -> Optional[ServerSentEvent]:
        """json_lines: the one held data line as an event of its own (and no longer held), if it is one: a
        whole JSON object, or any line once the stream has shown that its events end with one newline (so
        a broken line costs itself only, not the rest of the answer)."""
        line = self._data[0]
        if not (self._single or _whole_object(line)):
            return None
        self._single = True
        self._data.clear()
        return ServerSentEvent(line, self._event or "message", self._last_id)

    def _overflow(self) -> NoReturn:
        self._data.clear()
        self._size = 0
        self._has_data = False
        raise _limit_error("an event", self._max_event)

    @property
    def last_event_id(self) -> str:
        return self._last_id
