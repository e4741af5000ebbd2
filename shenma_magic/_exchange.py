"""What the log holds, apart from how it is stored: the records, the request key that lets an identical
request be answered from the log, images as references, and turning logged exchanges back into a
conversation and into usage totals. Pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Optional

from ._models import (
    Delta,
    FinishDelta,
    MetaDelta,
    ReasoningDelta,
    Reply,
    TextDelta,
    ToolCallDelta,
    UsageDelta,
)

__all__ = [
    "ConversationRecord",
    "Exchange",
    "ExchangeRecord",
    "Turn",
    "UsageRow",
    "conversation_from",
    "image_refs",
    "last_user_text",
    "replay_deltas",
    "request_key",
    "restore_images",
    "sum_usage",
]

ImageLookup = Callable[[str], Optional[tuple[str, bytes]]]
"""sha256 -> (mime, bytes) of a kept image, or None."""

# Options that change how a request travels, not what the model answers: a cached answer still fits.
_TRANSPORT_OPTIONS = frozenset(
    {
        "timeout",
        "connect_timeout",
        "read_timeout",
        "total_timeout",
        "max_time",
        "max_retries",
        "stream",
        "stream_options",
        "on_delta",
        "on_retry",
        "extra_headers",
        "interval",
        "update_interval",
        "cache",
        "progress",
    }
)
_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*),", re.IGNORECASE)

Turn = list[dict[str, Any]]
"""One turn of a conversation: the user's message, any tool-call steps, the assistant's answer."""

# -- records -------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Exchange:
    """One request and its reply, as the front door hands it to :meth:`Store.record`.

    ``messages`` are the messages sent (``data:`` image URLs are fine: the store keeps the image once and
    the message a reference). ``prompt_tokens``/``completion_tokens``/``cost`` are what the front door
    charged (server counts, or estimates with ``cost_estimated``); ``cost`` None means no price was known.
    ``conversation`` groups the turns of one chat and ``turn`` is the turn's index in it (a later exchange
    with the same index replaces an earlier one, as a re-asked turn does); ``branch`` names the model of a
    comparison ("" otherwise). ``answer`` is the assistant message the conversation kept for the turn, on
    the turn's last exchange (None when the conversation did not keep the turn, and on the earlier rounds
    of a turn with tool calls): it is what :func:`conversation_from` brings back. ``request_key`` (see
    :func:`request_key`) lets an identical request be answered from the log; ``replayed`` marks an
    exchange that was.
    """

    notebook: str
    host: str
    model: str
    messages: Sequence[Mapping[str, Any]]
    reply: str = ""
    requested_model: str = ""
    reasoning: str = ""
    tool_calls: Sequence[Mapping[str, Any]] = ()
    finish_reason: Optional[str] = None
    usage: Optional[Mapping[str, Any]] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Optional[float] = None
    cost_estimated: bool = False
    currency: str = ""
    error: Optional[str] = None
    complete: bool = False
    request_key: str = ""
    conversation: str = ""
    branch: str = ""
    turn: int = 0
    answer: Optional[str] = None
    replayed: bool = False
    time: Optional[datetime] = None

    @classmethod
    def from_reply(
        cls, reply: Reply, *, notebook: str, host: str, messages: Sequence[Mapping[str, Any]], **fields: Any
    ) -> Exchange:
        """An exchange from a finished :class:`Reply` (text, reasoning, tool calls, finish, usage, error,
        complete and the answering model); ``fields`` sets the rest (``requested_model``, ``cost``...)."""
        fields.setdefault("model", reply.model or fields.get("requested_model", ""))
        return cls(
            notebook=notebook,
            host=host,
            messages=messages,
            reply=reply.text,
            reasoning=reply.reasoning,
            tool_calls=reply.tool_calls,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            error=reply.error,
            complete=reply.complete,
            **fields,
        )


@dataclass(frozen=True, kw_only=True)
class ExchangeRecord:
    """An exchange as the log holds it (the fields of :class:`Exchange`, scrubbed of keys), with its ``id``,
    its UTC ``time``, the user's ``prompt`` (the text of the last user message), and the images in
    ``messages`` as ``{"type": "image_ref", "sha256": ..., "mime": ...}`` (:meth:`Store.image` has them)."""

    id: int
    time: datetime
    notebook: str
    host: str
    model: str
    requested_model: str
    messages: list[dict[str, Any]]
    prompt: str
    reply: str
    reasoning: str
    tool_calls: list[dict[str, Any]]
    finish_reason: Optional[str]
    usage: Optional[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    cost: Optional[float]
    cost_estimated: bool
    currency: str
    error: Optional[str]
    complete: bool
    request_key: str
    conversation: str
    branch: str
    turn: int
    answer: Optional[str]
    replayed: bool

    def to_reply(self) -> Reply:
        """The reply as the model sent it, for answering an identical request from the log."""
        return Reply(
            self.reply,
            reasoning=self.reasoning,
            finish_reason=self.finish_reason,
            usage=dict(self.usage) if self.usage is not None else None,
            error=self.error,
            complete=self.complete,
            model=self.model,
            tool_calls=[dict(c) for c in self.tool_calls],
        )


@dataclass(frozen=True)
class ConversationRecord:
    """A notebook's last conversation: its id and its turns per branch ("" for a plain chat, a model name
    for each side of a comparison)."""

    id: str
    branches: dict[str, list[Turn]]

    @property
    def turns(self) -> list[Turn]:
        """The plain conversation's turns ([] when the conversation was only a comparison)."""
        return self.branches.get("", [])

    def __len__(self) -> int:
        """The number of turns in the longest branch."""
        return max((len(t) for t in self.branches.values()), default=0)


@dataclass(frozen=True)
class UsageRow:
    """Tokens and cost of one model on one local day. ``cost`` is the sum of the known costs (None when no
    reply had a price); ``unpriced`` counts replies without one; ``estimated`` is True if any count is an
    estimate (the server sent none)."""

    day: date
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: Optional[float]
    estimated: bool
    replies: int
    unpriced: int = 0


# -- images as references ----------------------------------------------------------------------------


def _parse_data_url(url: str) -> Optional[tuple[str, bytes]]:
    """(mime, bytes) of a base64 ``data:`` URL, else None."""
    head = _DATA_URL.match(url)
    if head is None or ";base64" not in head.group(2).lower():
        return None
    try:
        data = base64.b64decode(url[head.end() :], validate=False)
    except (binascii.Error, ValueError):
        return None
    return head.group(1).strip().lower(), data


def image_refs(
    messages: Iterable[Mapping[str, Any]], images: Optional[dict[str, tuple[str, bytes]]] = None
) -> list[dict[str, Any]]:
    """Messages with each base64 image part replaced by ``{"type": "image_ref", "sha256", "mime"}``;
    the images found go into ``images`` (by hash)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        message = dict(message)
        content = message.get("content")
        if isinstance(content, list):
            parts: list[Any] = []
            for part in content:
                ref = _image_ref(part, images)
                parts.append(ref if ref is not None else part)
            message["content"] = parts
        out.append(message)
    return out


def _image_ref(part: Any, images: Optional[dict[str, tuple[str, bytes]]]) -> Optional[dict[str, Any]]:
    if not isinstance(part, Mapping) or part.get("type") != "image_url":
        return None
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    if not isinstance(url, str):
        return None
    parsed = _parse_data_url(url)
    if parsed is None:
        return None
    mime, data = parsed
    digest = hashlib.sha256(data).hexdigest()
    if images is not None:
        images[digest] = (mime, data)
    ref: dict[str, Any] = {"type": "image_ref", "sha256": digest, "mime": mime}
    if isinstance(image_url, Mapping) and image_url.get("detail") is not None:
        ref["detail"] = image_url["detail"]
    return ref


def _canonical(value: Any) -> Any:
    """A JSON-ready copy where equal requests look equal: integral floats as ints, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return repr(value)


def request_key(model: str, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of a request's canonical JSON: the model, the messages (images by the hash of
    their bytes) and the options that change the answer. Options set to None (the server's default) are
    left out; an ``extra`` mapping is merged in (``response_format``, ``tools``...); transport options
    (``timeout``, ``max_retries``, ``stream``...) do not count. Pure."""
    flat: dict[str, Any] = {}
    for name, value in options.items():
        if name == "extra" and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[name] = value
    chosen = {k: v for k, v in flat.items() if v is not None and k not in _TRANSPORT_OPTIONS and k != "model"}
    body = {"model": model, "messages": image_refs(messages), "options": chosen}
    text = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    str(p.get("text") or "")
                    for p in content
                    if isinstance(p, Mapping) and p.get("type") == "text"
                )
            return ""
    return ""


def restore_images(messages: Iterable[Mapping[str, Any]], lookup: ImageLookup) -> list[dict[str, Any]]:
    """Image references back into ``image_url`` parts with ``data:`` URLs, ready to send again; an image
    ``lookup`` does not have becomes a short text part saying so."""
    out: list[dict[str, Any]] = []
    for message in messages:
        message = dict(message)
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = [_restore_part(part, lookup) for part in content]
        out.append(message)
    return out


def _restore_part(part: Any, lookup: ImageLookup) -> Any:
    if not isinstance(part, Mapping) or part.get("type") != "image_ref":
        return part
    stored = lookup(str(part.get("sha256", "")))
    if stored is None:
        return {"type": "text", "text": "[an image that the log does not hold]"}
    mime, data = stored
    url: dict[str, Any] = {
        "url": f"data:{mime or 'application/octet-stream'};base64," + base64.b64encode(data).decode("ascii")
    }
    if part.get("detail") is not None:
        url["detail"] = part["detail"]
    return {"type": "image_url", "image_url": url}


# -- from exchanges back to a conversation, and to totals ----------------------------------------------


def conversation_from(
    conversation_id: str, records: Iterable[ExchangeRecord], lookup: ImageLookup
) -> ConversationRecord:
    """A conversation's turns per branch from its exchanges (in the order they were logged).

    The last exchange of each turn index stands for the turn (a re-asked turn replaces the earlier try; in
    a turn with tool calls, the last round's messages hold the calls and their results). A turn is kept
    when the conversation kept it (``answer`` is set); its messages are the last user message onwards,
    then the answer, exactly as the conversation held them.
    """
    last: dict[str, dict[int, ExchangeRecord]] = {}
    for record in records:
        last.setdefault(record.branch, {})[record.turn] = record
    branches: dict[str, list[Turn]] = {}
    for branch, by_turn in last.items():
        turns: list[Turn] = []
        for index in sorted(by_turn):
            record = by_turn[index]
            starts = [i for i, m in enumerate(record.messages) if m.get("role") == "user"]
            if record.answer is None or not starts:
                continue
            messages = restore_images(record.messages[starts[-1] :], lookup)
            turns.append([*messages, {"role": "assistant", "content": record.answer}])
        branches[branch] = turns
    return ConversationRecord(conversation_id, branches)


def replay_deltas(record: ExchangeRecord) -> list[Delta]:
    """The deltas that rebuild ``record``'s reply, for answering an identical request from the log."""
    deltas: list[Delta] = [MetaDelta(record.model, "")]
    if record.reasoning:
        deltas.append(ReasoningDelta(record.reasoning))
    if record.reply:
        deltas.append(TextDelta(record.reply))
    for index, call in enumerate(record.tool_calls):
        function = call.get("function") or {}
        deltas.append(
            ToolCallDelta(
                index,
                call.get("id"),
                str(function.get("name") or "") or None,
                str(function.get("arguments") or ""),
            )
        )
    if record.usage is not None:
        deltas.append(UsageDelta(dict(record.usage)))
    if record.finish_reason is not None:
        deltas.append(FinishDelta(record.finish_reason))
    return deltas


def sum_usage(
    rows: Iterable[tuple[datetime, str, int, int, Optional[float], bool]],
) -> list[UsageRow]:
    """(time, model, prompt tokens, completion tokens, cost or None, estimated) per reply → totals by local
    day and model, oldest day first."""
    sums: dict[tuple[date, str], list[Any]] = {}
    for moment, model, prompt, completion, cost, estimated in rows:
        acc = sums.setdefault((moment.astimezone().date(), model), [0, 0, None, False, 0, 0])
        acc[0] += prompt
        acc[1] += completion
        if cost is None:
            acc[5] += 1
        else:
            acc[2] = (acc[2] or 0.0) + cost
        acc[3] = acc[3] or bool(estimated)
        acc[4] += 1
    return [
        UsageRow(day, model, p, c, cost, est, n, unpriced)
        for (day, model), (p, c, cost, est, n, unpriced) in sorted(sums.items())
    ]
