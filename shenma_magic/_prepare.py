"""A turn checked and put together before it waits for its turn: raises ConfigError, sends nothing.

What every model of a turn gets (:func:`prepare_shared`: the checked options, the user's message with its
images, the system prompt, JSON mode, whether the log may answer) is made once, also for a comparison; a
single turn then adds its model and the tools (:func:`prepare`). A missing key is said here, before
anything waits, unless the log may answer (then a key is needed only if a request is really sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ._errors import ConfigError
from ._settings import Settings, given_options

if TYPE_CHECKING:
    from ._client import ChatClient
    from ._session import Session
    from ._tools import ToolRegistry
    from ._turn import ChatRequest

__all__ = ["Prepared", "Turn", "prepare", "prepare_shared"]


@dataclass(frozen=True)
class Prepared:
    """A turn's parts that do not depend on the model (see :func:`prepare_shared`)."""

    client: Optional[ChatClient]  # None when the cache may answer (a key is then needed only to send)
    base_url: str
    content: Any  # the user's message: text, or text and image parts
    system: Optional[str]
    extra: dict[str, Any]  # response_format for JSON
    options: dict[str, Any]  # temperature, max_tokens, timeout
    images: list[Any]
    use_cache: bool


@dataclass(frozen=True)
class Turn:
    """A checked request, ready to be sent once it is its turn."""

    request: ChatRequest
    settings: Settings
    model: str
    base_url: str
    content: Any
    system: Optional[str]
    tools: Optional[ToolRegistry]
    options: dict[str, Any]
    images: list[Any]
    use_cache: bool = False


def prepare_shared(session: Session, request: ChatRequest) -> Prepared:
    """What every model of a turn gets: the checked options, the user's message, the system prompt.
    Raises ConfigError before anything is sent."""
    settings = session.settings
    checked = Settings().with_changes(
        **given_options(
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            timeout=request.timeout,
            max_time=request.max_time,
        )
    )
    if not request.prompt.strip() and not request.images:
        raise ConfigError("the message is empty", "write the question")
    base_url = settings.resolved_base_url()
    use_cache = bool(request.cache if request.cache is not None else settings.cache)
    # With the cache on, a key is needed only if a request is really sent (a notebook re-run from the
    # log needs none); otherwise a missing key is said before anything happens.
    client = None if use_cache else session.client(base_url)
    extra: dict[str, Any] = {}
    if request.json or request.schema is not None:
        from ._jsonout import response_format

        extra["response_format"] = response_format(request.schema)
    images = _images(request.images)
    content: Any = (
        request.prompt
        if not images
        else [{"type": "text", "text": request.prompt}, *(image.part for image in images)]
    )
    system = request.system if request.system is not None else settings.system
    if extra.get("response_format") and "json" not in f"{system} {request.prompt}".lower():
        # OpenAI (and relays in front of it) answer 400 to JSON mode unless a message mentions JSON.
        system = f"{system}\nReply with JSON only." if system else "Reply with JSON only."
    options: dict[str, Any] = {
        "temperature": request.temperature if request.temperature is not None else settings.temperature,
        "max_tokens": request.max_tokens if request.max_tokens is not None else settings.max_tokens,
        "timeout": checked.timeout if request.timeout is not None else settings.timeout,
        "max_time": checked.max_time if request.max_time is not None else settings.max_time,
    }
    return Prepared(client, base_url, content, system or None, extra, options, images, use_cache)


def prepare(session: Session, request: ChatRequest) -> Turn:
    """Everything about a turn of one model that can be checked before it waits for its turn: raises
    ConfigError."""
    settings = session.settings
    model = Settings().with_changes(model=request.model).model if request.model else settings.resolved_model()
    shared = prepare_shared(session, request)
    extra = dict(shared.extra)
    tools = session.tools if request.tools and len(session.tools) else None
    if tools is not None:
        extra["tools"] = tools.specs()
    options: dict[str, Any] = {"model": model, **shared.options, "extra": extra or None}
    return Turn(
        request,
        settings,
        model,
        shared.base_url,
        shared.content,
        shared.system,
        tools,
        options,
        shared.images,
        shared.use_cache,
    )


def _images(sources: Sequence[Any]) -> list[Any]:
    if not sources:
        return []
    from ._images import image_part

    return [image_part(source) for source in sources]
