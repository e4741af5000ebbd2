"""What one turn of a chat is made of: the request a front door parsed, how it ended, what a front door
supplies to it, and what is kept of its answer. Pure.

These are the words :class:`~shenma_magic.Session` (``_session``) and its parts (``_prepare``, ``_sendturn``,
``_starts``, ``_comparison``) speak to each other and to the front doors (the ``%%chat`` magic, ``ask``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Protocol

from ._errors import ConfigError, ShenmaError
from ._models import Delta, Reply

if TYPE_CHECKING:
    from ._display import View

__all__ = [
    "REPLAYED",
    "ChatInterrupted",
    "ChatRequest",
    "Frontend",
    "MissingKeyError",
    "Outcome",
    "QuietFrontend",
    "cut_note",
    "parse_json_answer",
]


class MissingKeyError(ConfigError):
    """No key is known for the host a request would go to; nothing was sent."""


class ChatInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a reply. The partial reply is kept (in the conversation and as ``.reply``; a
    comparison's partial replies by model as ``.replies``)."""

    def __init__(
        self, message: str, reply: Optional[Reply] = None, replies: Optional[dict[str, Reply]] = None
    ) -> None:
        super().__init__(message)
        self.reply = reply
        self.replies: dict[str, Reply] = replies if replies is not None else {}

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: one line, and "Run All" still stops here.
        return [f"⚠ {self}"]


@dataclass(frozen=True)
class ChatRequest:
    """One user turn, as a front door parsed it. ``None`` means "the session's setting"."""

    prompt: str
    model: Optional[str] = None
    system: Optional[str] = None
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    timeout: Optional[float] = None
    max_time: Optional[float] = None
    json: bool = False
    schema: Any = None
    images: Sequence[Any] = ()
    new: bool = False
    tools: bool = True
    cache: Optional[bool] = None  # answer from the log if it holds this exact request (None: the setting)
    models: Sequence[str] = ()  # several: a comparison (Session.run_compare); model is then unused


REPLAYED = "replayed from the log"


@dataclass
class Outcome:
    """How a turn ended: the reply (partial on failure), and what stopped it, if anything."""

    reply: Reply
    interrupted: bool = False
    error: Optional[ShenmaError] = None
    value: Any = None  # the parsed JSON value for a JSON request (see has_value: JSON null is a value)
    has_value: bool = False
    json_error: Optional[ShenmaError] = None  # why the JSON did not parse or validate


class Frontend(Protocol):
    """What a front door supplies to a turn: where the reply is shown, and how the user is asked."""

    def make_view(self) -> View: ...

    def ask(self, question: str) -> bool: ...

    def notify(self, line: str) -> None: ...

    def show_images(self, images: list[Any]) -> None: ...


class _CallbackView:
    """The view of the Python API: each delta goes to the caller's callback, nothing is displayed."""

    def __init__(self, on_delta: Optional[Callable[[Delta], None]]) -> None:
        self._on_delta = on_delta

    def on_delta(self, delta: Delta) -> None:
        if self._on_delta is not None:
            self._on_delta(delta)

    def refresh(self, status: str) -> None:
        pass

    def finish(self, reply: Reply, status: str) -> None:
        pass


class QuietFrontend:
    """Python API: deltas to a callback; a tool that is not trusted is not run (there is nobody to ask)."""

    def __init__(self, on_delta: Optional[Callable[[Delta], None]], notices: list[str]) -> None:
        self._on_delta = on_delta
        self._notices = notices

    def make_view(self) -> View:
        return _CallbackView(self._on_delta)

    def ask(self, question: str) -> bool:
        return False

    def notify(self, line: str) -> None:
        self._notices.append(line)

    def show_images(self, images: list[Any]) -> None:
        pass


# Why a kept partial answer is partial, in the words the next request shows the model (issue: a cut
# answer must not be taken as whole by the model).
def cut_note(reply: Reply, interrupted: bool) -> str:
    if reply.complete:
        return ""
    if interrupted:
        why = "the user interrupted it"
    elif reply.finish_reason == "length":
        why = "it reached the token limit"
    elif reply.error:
        why = "the connection or the server failed"
    elif reply.lossy:
        why = "parts of it were lost in transit"
    else:
        why = "the stream ended early"
    return f"\n\n[this answer is incomplete: {why}]"


def parse_json_answer(reply: Reply, schema: Any) -> Optional[ShenmaError]:
    """Put the answer's JSON value (validated against ``schema``, if any) on ``reply.value``; the error if
    it does not parse or validate."""
    from ._jsonout import recover_json, validate_against

    try:
        value = recover_json(reply.text)
        if schema is not None:
            value = validate_against(value, schema)
    except ShenmaError as exc:
        return exc
    reply.value = value
    return None
