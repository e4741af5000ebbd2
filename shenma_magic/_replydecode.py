"""The body of a chat reply, bytes in, typed deltas out; and the body of a model list. Pure.

A reply is a server-sent event stream (``_sse`` → ``_chunks``), unless its first bytes say otherwise
whatever its Content-Type: ``{`` is one JSON completion from a server that ignored ``"stream"`` (or an
error object), ``<`` an HTML page (a wrong base URL). A body without a byte, and a stream that ends
without a finish reason, are said in words. The bytes come from the client's bounded reader, so a whole
JSON answer is bounded too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

from ._chunks import ChunkDecoder, deltas_from_completion
from ._errors import ProtocolError, one_line
from ._httperrors import empty_reply_error
from ._models import Delta, NoticeDelta
from ._reqbody import Body
from ._sse import SSEDecoder

__all__ = ["decode_reply", "model_ids"]


def decode_reply(
    body_bytes: Iterable[bytes], host: str, body: Body, on_done: Callable[[], None]
) -> Iterator[Delta]:
    """The deltas of the reply to ``body`` from ``host``; ``on_done()`` is called when ``[DONE]`` arrives
    (to read what is left of the body while it is cheap). Raises ProtocolError for what is no reply."""
    chunks = iter(body_bytes)
    sse = SSEDecoder(json_lines=True)  # some proxies end each event with a single newline
    decoder = ChunkDecoder()
    first = True
    for raw in chunks:
        if first:
            head = raw.lstrip()[:1]
            if not head:
                continue  # blank space before the body says what it is (a JSON answer after "\n" too)
            first = False
            if head == b"{":
                # No SSE stream starts with "{": the server ignored "stream" and sent one JSON
                # completion (or an error object), whatever its Content-Type says.
                yield from _whole_json(raw, chunks)
                return
            if head == b"<":
                raise ProtocolError(
                    f"{host} answered an HTML page instead of a chat stream",
                    "check the base URL (it should be the API address, ending in /v1)",
                )
        for event in sse.feed(raw):
            yield from decoder.decode(event)
            if decoder.done:
                on_done()
                break
        if decoder.done:
            break
    else:
        # The body ended: an event whose blank line never came (a proxy that closes right after the last
        # chunk) still holds the end of the answer.
        for event in sse.flush():
            yield from decoder.decode(event)
            if decoder.done:
                break
    if first:
        raise empty_reply_error(host, body.chars, body.messages)
    if decoder.finish_reason is None:
        why = "after [DONE]" if decoder.done else "before [DONE]"
        yield NoticeDelta(f"the stream ended {why} without a finish reason: the answer may be cut off")


def _whole_json(first: bytes, rest: Iterator[bytes]) -> Iterator[Delta]:
    parts = [first]
    parts.extend(rest)  # the reader stops at the reply limit
    text = b"".join(parts).decode("utf-8", "replace")
    del parts
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("the server answered JSON that does not parse", "try again") from None
    yield from deltas_from_completion(obj)


def model_ids(data: bytes, clean: Callable[[str], str]) -> list[str]:
    """The sorted, distinct model ids of a ``GET /models`` body, each passed through ``clean``."""
    try:
        obj = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise ProtocolError("the model list is not JSON", "check the base URL") from None
    items = obj.get("data") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        raise ProtocolError("the server did not send a model list", "check the base URL")
    ids = [str(m.get("id")) if isinstance(m, dict) else str(m) for m in items]
    return sorted({clean(one_line(i)) for i in ids if i and i != "None"})
