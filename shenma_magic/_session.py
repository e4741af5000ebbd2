"""The chat engine: a conversation with a model, usable from plain Python.

A :class:`Session` owns everything a chat needs (the settings, the conversation, a client per host and key,
the key store, the tools, the usage ledger, the last reply, the background jobs) and runs turns through
:meth:`Session.run` (here and now) or :meth:`Session.start` (on a worker thread, ``%%chat --bg``), and
comparisons through :meth:`Session.run_compare` or :meth:`Session.start_compare`. Front
doors only wire it: the ``%%chat`` magic parses a cell into a :class:`ChatRequest` and supplies views,
``Session.ask`` supplies a callback. Nothing here imports IPython or ipywidgets, and ``requests`` only when
the first request is made.

Turns of one conversation never overlap and keep their order: a turn started while a background turn of
the same conversation is in flight waits for it (saying so through its frontend), so each is sent with
the history before it. ``new`` and :meth:`Session.reset` start a new conversation object, so a turn still
in flight records into the conversation it was asked in. A comparison in flight records its branches when
it ends; until then a later turn is checked against the branches it will leave (:meth:`branch_models`)
and takes up its branch only when its own turn comes.
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from ._branches import Branches, check_models
from ._errors import ConfigError, ShenmaError
from ._jobs import CancelToken, Job, JobRegistry, cancellable
from ._journal import Journal, Round
from ._keys import KeyStore
from ._models import Delta, Reply, ReplyBuilder
from ._prompt import Conversation
from ._secret import Secret, excerpt, host_of, is_loopback_host
from ._settings import Settings

if TYPE_CHECKING:
    from ._client import ChatClient
    from ._columns import ColumnsFrontend
    from ._comparison import ComparisonOutcome
    from ._costing import Costing
    from ._display import View
    from ._exchange import ConversationRecord
    from ._pricing import UsageLedger
    from ._store import Store
    from ._tools import ToolRegistry

__all__ = [
    "ChatInterrupted",
    "ChatRequest",
    "Frontend",
    "MissingKeyError",
    "Outcome",
    "Session",
    "current_session",
    "default_tools",
    "set_current_session",
]

Message = dict[str, Any]


class MissingKeyError(ConfigError):
    """No key is known for the host a request would go to; nothing was sent."""


class ChatInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a reply. The partial reply is kept (in the conversation and as ``.reply``)."""

    def __init__(self, message: str, reply: Optional[Reply] = None) -> None:
        super().__init__(message)
        self.reply = reply

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


@dataclass(frozen=True)
class _Prepared:
    """A turn's parts that do not depend on the model (see Session._prepare_shared)."""

    client: Optional[ChatClient]  # None when the cache may answer (a key is then needed only to send)
    base_url: str
    content: Any  # the user's message: text, or text and image parts
    system: Optional[str]
    extra: dict[str, Any]  # response_format for JSON
    options: dict[str, Any]  # temperature, max_tokens, timeout
    images: list[Any]
    use_cache: bool


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


class _QuietFrontend:
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


_default_registry: Optional[ToolRegistry] = None
_current: Optional[Session] = None
_current_sync: Optional[Callable[[], Session]] = None


def current_session(*, synced: bool = False) -> Optional[Session]:
    """The session the notebook's ``%%chat`` cells use (set when the extension loads), or None.

    ``synced=True``: with the settings as the notebook last set them (``%config ChatMagics.x``, ``%chat x
    value``), for code that uses the session outside a ``%%chat`` cell (``shenma_magic.map``)."""
    if synced and _current is not None and _current_sync is not None:
        return _current_sync()
    return _current


def set_current_session(session: Optional[Session], sync: Optional[Callable[[], Session]] = None) -> None:
    """Set the notebook's session; ``sync`` brings its settings up to date with the front door's."""
    global _current, _current_sync
    _current = session
    _current_sync = sync if session is not None else None


def default_tools() -> ToolRegistry:
    """The registry ``@shenma_magic.tool`` adds to; sessions made without ``tools=`` share it."""
    global _default_registry
    if _default_registry is None:
        from ._tools import ToolRegistry

        _default_registry = ToolRegistry()
    return _default_registry


# Why a kept partial answer is partial, in the words the next request shows the model (issue: a cut
# answer must not be taken as whole by the model).
def _cut_note(reply: Reply, interrupted: bool) -> str:
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


class Session:
    """A chat with any OpenAI-compatible server (神马中转API by default), from plain Python.

    >>> chat = Session(model="gpt-4o-mini")            # key: %chat key / key file / $SHENMA_API_KEY
    >>> reply = chat.ask("周树人和鲁迅是兄弟吗？", on_delta=lambda d: print(getattr(d, "text", ""), end=""))
    >>> chat.ask("那他的弟弟呢？")                       # carries the conversation on
    >>> chat.history                                   # OpenAI-shaped message dicts

    Settings (``temperature``, ``max_tokens``, ``timeout``, ``max_time``, ``max_history``, ``max_retries``,
    ``prices``, ``currency``, ``max_tool_rounds``, ``log``, ``cache``) are checked when given.
    ``api_key=None`` resolves the key exactly as ``%%chat`` does, and a key only ever goes to the host it
    belongs to.

    Every exchange goes into the local log (``log=False`` turns that off; ``store=`` names another file or
    :class:`~shenma_magic._store.Store`), under ``notebook`` (set by the magic; else the working
    directory). ``cache=True`` answers a request identical to a logged one from the log, sending nothing.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Union[str, Secret, None] = None,
        model: Optional[str] = None,
        system: Optional[str] = None,
        *,
        tools: Optional[ToolRegistry] = None,
        keys: Optional[KeyStore] = None,
        store: Union[Store, str, os.PathLike[str], None] = None,
        **settings: Any,
    ) -> None:
        given = {k: v for k, v in (("base_url", base_url), ("model", model), ("system", system)) if v}
        self.settings = Settings().with_changes(**given, **settings)
        self.keys = keys if keys is not None else KeyStore()
        self._api_key = (
            Secret(api_key.reveal() if isinstance(api_key, Secret) else api_key.strip())
            if (api_key)
            else None
        )
        self.conversation = Conversation()
        self.last: Optional[Reply] = None
        self._tools = tools
        self._ledger: Optional[UsageLedger] = None
        self._clients: dict[tuple[str, Optional[Secret]], ChatClient] = {}
        self._turns_lock = threading.Lock()
        # One lock per conversation, and the thread running a turn in it (a tool may not chat back).
        self._turn_locks: weakref.WeakKeyDictionary[Conversation, threading.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._turn_owners: weakref.WeakKeyDictionary[Conversation, int] = weakref.WeakKeyDictionary()
        self._jobs: Optional[JobRegistry] = None
        # The branch models a conversation will have once this background turn (and those before it) ended.
        self._planned: weakref.WeakKeyDictionary[Job[Any], list[str]] = weakref.WeakKeyDictionary()
        self.journal = Journal(store, self.known_keys)
        # Whose words the advice in an error uses: "python" (api_key=, model=) or "magic" (%chat key, -m).
        self.door: str = "python"
        self.notebook: Optional[str] = None
        self.conversation_id = uuid.uuid4().hex
        # The other sides of a resumed comparison, by model (the plain conversation is ``conversation``).
        self.branches = Branches()
        self.last_comparison: Optional[dict[str, Reply]] = None  # set by a comparison, cleared by a turn

    def __repr__(self) -> str:
        return (
            f"Session(model={self.settings.resolved_model()!r}, base_url={self.base_url!r}, "
            f"turns={len(self.conversation)})"
        )

    # -- what the session owns ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.settings.resolved_base_url()

    @property
    def model(self) -> str:
        return self.settings.resolved_model()

    @property
    def tools(self) -> ToolRegistry:
        return self._tools if self._tools is not None else default_tools()

    @property
    def usage(self) -> UsageLedger:
        """Tokens and cost of this session's replies, by model."""
        if self._ledger is None:
            from ._pricing import UsageLedger

            self._ledger = UsageLedger()
        return self._ledger

    @property
    def history(self) -> list[Message]:
        """The conversation as the OpenAI-shaped messages the next request will carry (copies)."""
        return [dict(m) for turn in self.conversation.turns for m in turn]

    def configure(self, **changes: Any) -> None:
        """Change settings (checked; ConfigError names a bad one). ``None`` for model/base_url/system
        restores the default."""
        fixed = {
            k: ("" if v is None and k in ("model", "base_url", "system") else v) for k, v in changes.items()
        }
        self.settings = self.settings.with_changes(**fixed)

    def reset(self) -> None:
        """Forget the conversation (the settings, tools and usage stay; the log keeps what it has).

        A new conversation object: a background turn still in flight records into the one it was asked in.
        """
        self.conversation = Conversation()
        self.branches = Branches()
        self.conversation_id = uuid.uuid4().hex

    @property
    def notebook_id(self) -> str:
        """What the log files this session's exchanges under: ``notebook``, else the notebook or folder
        the environment names (see :func:`~shenma_magic._identity.notebook_identity`)."""
        if self.notebook:
            return self.notebook
        from ._identity import notebook_identity

        return notebook_identity(os.environ, {}, os.getcwd())

    def known_keys(self) -> list[str]:
        """Every key this session could send (for masking; the log never holds one)."""
        keys = self.keys.known_keys()
        if self._api_key is not None:
            keys.append(self._api_key.reveal())
        return keys

    def resume(self) -> Optional[ConversationRecord]:
        """Bring back this notebook's last conversation from the log (and the sides of a comparison, in
        ``branches``), in place of the current one; None when the log holds none for this notebook. Later
        turns continue that conversation in the log. Raises StoreError (one line) if the log is unusable."""
        record = self.journal.store().conversation(self.notebook_id)
        if record is None:
            return None
        self.conversation = Conversation()
        self.conversation.turns = [[dict(m) for m in turn] for turn in record.turns]
        self.branches = Branches()
        for name, turns in record.branches.items():
            if name:
                side = Conversation()
                side.turns = [[dict(m) for m in turn] for turn in turns]
                self.branches[name] = side
        self.conversation_id = record.id
        return record

    @property
    def jobs(self) -> JobRegistry:
        """The background turns (:meth:`start`): ``in_flight()``, ``wait()``, ``stop_all()``."""
        if self._jobs is None:
            from ._background import new_registry

            self._jobs = new_registry()
        return self._jobs

    def branch_models(self) -> list[str]:
        """The models of the conversation's branches, as they will be once the background turns in flight
        in it have ended (a comparison records its branches when it ends; one model's turn drops them)."""
        busy = self._jobs.busy(self.conversation) if self._jobs is not None else None
        if busy is None:
            return self.branches.models
        return list(self._planned.get(busy, self.branches.models))

    def wait(self, timeout: Optional[float] = None) -> list[Job[Any]]:
        """Block until every background turn has ended; returns those waited for.

        Ctrl-C stops them all (each keeps its partial answer) and raises KeyboardInterrupt.
        """
        if self._jobs is None:
            return []
        return self._jobs.wait(timeout)

    def key_for(self, base_url: str) -> tuple[Optional[Secret], str]:
        """The key that would be sent to ``base_url`` and where it comes from."""
        if self._api_key is not None and host_of(base_url) == host_of(self.base_url):
            return self._api_key, "api_key="
        return self.keys.resolve(base_url)

    def client(self, base_url: Optional[str] = None) -> ChatClient:
        """The client for a base URL and its key; kept, so the connection is reused across turns."""

        url = base_url or self.base_url
        key, _ = self.key_for(url)
        if key is None and not is_loopback_host(host_of(url)):
            raise MissingKeyError(f"no API key for {host_of(url)}")
        client = self._clients.get((url, key))
        if client is None:
            client = self._new_client(url, key)
            self._clients[(url, key)] = client
        client.max_retries = self.settings.max_retries
        client.max_time = self.settings.max_time
        return client

    def _new_client(self, url: str, key: Optional[Secret]) -> ChatClient:
        from ._client import ChatClient

        return ChatClient(
            url,
            key,
            max_retries=self.settings.max_retries,
            timeout=self.settings.timeout,
            max_time=self.settings.max_time,
            # Every key the package knows: none may leave in a request body, all are masked in replies.
            known_keys=self._key_sources,
        )

    def describe_error(self, err: ShenmaError, base_url: Optional[str] = None) -> str:
        """The error on one line, with advice in the words of this session's front door."""
        from ._hints import front_door_hint

        key, source = (
            self.key_for(base_url or self.base_url)
            if not isinstance(err, MissingKeyError)
            else (
                None,
                "",
            )
        )
        key_source: Any = None
        key_env = ""
        if key is not None:
            if source.startswith("$"):
                key_source, key_env = "env", source[1:]
            elif source.startswith("key file"):
                key_source = "saved"
            elif source == "api_key=":
                key_source = "argument"
            else:
                key_source = "entered"
        door: Any = "magic" if self.door == "magic" else "python"
        try:
            hint = front_door_hint(err, door, key_source=key_source, key_env=key_env)
        except Exception:  # advice must never hide the error itself
            hint = err.hint
        return f"{err.message} — {hint}" if hint else err.message

    def _key_sources(self) -> list[tuple[Secret, str]]:
        sources = self.keys.key_sources()
        if self._api_key is not None:
            sources.append((self._api_key, "api_key="))
        return sources

    def _own_client(self, base_url: str) -> ChatClient:
        """A client for one background turn alone: stopping the turn aborts it without touching others."""

        key, _ = self.key_for(base_url)
        return self._new_client(base_url, key)

    def forget_clients(self) -> None:
        """Close kept connections (after a key changed)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    # -- one turn ----------------------------------------------------------------------------------------

    def ask(
        self,
        prompt: str,
        *,
        model: Optional[str] = None,
        system: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        json: bool = False,
        schema: Any = None,
        images: Sequence[Any] = (),
        on_delta: Optional[Callable[[Delta], None]] = None,
        timeout: Optional[float] = None,
        max_time: Optional[float] = None,
        new: bool = False,
        cache: Optional[bool] = None,
    ) -> Reply:
        """Send ``prompt`` as the next user message, stream the reply (each delta to ``on_delta``), record
        the turn, and return the :class:`Reply`. ``json``/``schema`` ask for JSON (the parsed value is
        ``reply.value``); ``images`` are paths, URLs, bytes, PIL images or matplotlib figures; ``cache``
        overrides the ``cache`` setting for this call (an answer from the log says so in ``reply.notices``).

        Raises the :class:`~shenma_magic.ShenmaError` subclass on failure, with ``.reply`` holding the
        partial reply (also kept in the conversation when it has text), and :class:`ChatInterrupted` on
        Ctrl-C. Tools that are not trusted are not run (the model is told so).
        """
        request = ChatRequest(
            prompt=prompt,
            model=model,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout=timeout,
            max_time=max_time,
            json=json,
            schema=schema,
            images=tuple(images),
            new=new,
            cache=cache,
        )
        notices: list[str] = []
        outcome = self.run(request, _QuietFrontend(on_delta, notices))
        reply = outcome.reply
        reply.notices.extend(n for n in notices if n not in reply.notices)
        if outcome.interrupted:
            raise ChatInterrupted("interrupted: the partial answer is kept in .reply", reply)
        if outcome.error is not None:
            outcome.error.reply = reply  # type: ignore[attr-defined]
            raise outcome.error
        return reply

    def run(self, request: ChatRequest, frontend: Frontend) -> Outcome:
        """Run one user turn through ``frontend``'s views: stream, run allowed tools, record, charge.

        Raises ConfigError (one line) for what is wrong before anything is sent: a bad option, no key, an
        unreadable image, a turn started while another is running in the same thread (a tool that chats).
        Server and transport failures do not raise: they are in ``Outcome.error``, the partial reply kept.
        If a background turn of the same conversation is in flight, waits for it first (saying so through
        ``frontend.notify``; Ctrl-C then raises ChatInterrupted and nothing is sent).
        """
        turn = self._prepare(request)
        conversation = self._conversation_for(request, turn.model)
        branches, conversation_id = self.branches, self.conversation_id
        self._wait_for_background(conversation, frontend)
        with self._one_turn(conversation):
            _take_branch(branches, turn.model, conversation)
            return self._send(turn, conversation, conversation_id, frontend)

    def start(
        self,
        request: ChatRequest,
        frontend: Frontend,
        *,
        label: Optional[str] = None,
        runner: Optional[Callable[[Callable[[], None]], None]] = None,
        on_end: Callable[[Job[Outcome]], None] = lambda job: None,
    ) -> Job[Outcome]:
        """Start the turn on a background thread and return its :class:`~._jobs.Job` at once.

        What is wrong with the request raises here, as in :meth:`run`. The first view is made now (so a
        cell shows it before it returns); the frontend's later views, lines and questions come from the
        worker thread, so they must be safe there (``ask`` should refuse: nobody can answer). The turn
        waits for earlier turns of the same conversation; ``new=True`` starts a conversation that does not.
        ``job.result`` is the :class:`Outcome`; ``on_end(job)`` runs on the worker thread when it has ended.
        """
        from ._background import start_turn

        turn = self._prepare(request)
        conversation = self._conversation_for(request, turn.model)
        branches, conversation_id = self.branches, self.conversation_id
        if turn.images:
            frontend.show_images(turn.images)
        first = frontend.make_view()
        shown = label or f"{turn.model}: {excerpt(request.prompt, 40)}"

        def work(token: CancelToken, views: Callable[[], View]) -> Outcome:
            with self._one_turn(conversation):
                try:
                    _take_branch(branches, turn.model, conversation)
                except ShenmaError as exc:  # a turn before it left other branches than it was checked for
                    views().finish(ReplyBuilder().build(error=f"{exc}; nothing was sent"), "not sent")
                    raise
                return self._send(
                    turn, conversation, conversation_id, _WithViews(frontend, views), token=token, shown=True
                )

        job = start_turn(
            self.jobs,
            work,
            label=shown,
            first_view=first,
            make_view=frontend.make_view,
            order=conversation,
            runner=runner,
            on_end=on_end,
        )
        self._planned[job] = []  # one model's turn leaves no branches
        return job

    def _conversation_for(self, request: ChatRequest, model: str) -> Conversation:
        """The conversation a turn of one model continues; BranchError now if the branches it will find
        have none for ``model`` (it takes up its branch when its turn comes: :func:`_take_branch`)."""
        if request.new:
            self.reset()
        check_models(self.branch_models(), [model])
        return self.conversation

    def _wait_for_background(
        self, conversation: Conversation, frontend: Union[Frontend, ColumnsFrontend]
    ) -> None:
        if self._jobs is None:
            return
        busy = self._jobs.busy(conversation)
        if busy is None or busy.thread is threading.current_thread():
            return
        frontend.notify(f"waiting for background reply #{busy.number} in this conversation to end…")
        try:
            self._jobs.wait_turn(conversation)
        except KeyboardInterrupt:
            raise ChatInterrupted(
                "interrupted while waiting for the background reply: nothing was sent"
            ) from None

    @contextmanager
    def _one_turn(self, conversation: Conversation) -> Iterator[None]:
        me = threading.get_ident()
        with self._turns_lock:
            if self._turn_owners.get(conversation) == me:
                raise ConfigError(
                    "a chat turn is already running here (a tool cannot start another chat in the same "
                    "conversation)",
                    "nothing was sent; use another Session inside the tool",
                )
            lock = self._turn_locks.setdefault(conversation, threading.Lock())
        # Turns of one conversation from several threads (the caller's own) take turns.
        with lock:
            self._turn_owners[conversation] = me
            try:
                yield
            finally:
                self._turn_owners.pop(conversation, None)

    def _prepare_shared(self, request: ChatRequest) -> _Prepared:
        """What every model of a turn gets: the checked options, the user's message, the system prompt.
        Raises ConfigError before anything is sent."""
        settings = self.settings
        checked = Settings().with_changes(
            **{
                name: value
                for name, value in (
                    ("temperature", request.temperature),
                    ("max_tokens", request.max_tokens),
                    ("timeout", request.timeout),
                    ("max_time", request.max_time),
                )
                if value is not None
            }
        )
        if not request.prompt.strip() and not request.images:
            raise ConfigError("the message is empty", "write the question")
        base_url = settings.resolved_base_url()
        use_cache = bool(request.cache if request.cache is not None else settings.cache)
        # With the cache on, a key is needed only if a request is really sent (a notebook re-run from the
        # log needs none); otherwise a missing key is said before anything happens.
        client = None if use_cache else self.client(base_url)
        extra: dict[str, Any] = {}
        if request.json or request.schema is not None:
            from ._jsonout import response_format

            extra["response_format"] = response_format(request.schema)
        images = self._images(request.images)
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
        return _Prepared(client, base_url, content, system or None, extra, options, images, use_cache)

    def _prepare(self, request: ChatRequest) -> _Turn:
        """Everything about a turn that can be checked before it waits for its turn: raises ConfigError."""
        settings = self.settings
        model = (
            Settings().with_changes(model=request.model).model if request.model else settings.resolved_model()
        )
        shared = self._prepare_shared(request)
        extra = dict(shared.extra)
        tools = self.tools if request.tools and len(self.tools) else None
        if tools is not None:
            extra["tools"] = tools.specs()
        options: dict[str, Any] = {"model": model, **shared.options, "extra": extra or None}
        return _Turn(
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

    def _send(
        self,
        turn: _Turn,
        conversation: Conversation,
        conversation_id: str,
        frontend: Frontend,
        *,
        token: Optional[CancelToken] = None,
        shown: bool = False,
    ) -> Outcome:
        """Build the messages from the history as it is now, stream, run tools, record, charge."""
        request, settings, model, options = turn.request, turn.settings, turn.model, turn.options
        messages = conversation.messages(turn.content, system=turn.system, max_turns=settings.max_history)
        turn_index = len(conversation)
        if turn.images and not shown:
            frontend.show_images(turn.images)
        from ._costing import Costing
        from ._run import Measure, run_chat

        own = token is not None
        clients: list[ChatClient] = []

        def client() -> ChatClient:
            # Made when a request is really sent: a turn answered from the log needs no key.
            if not clients:
                clients.append(self._own_client(turn.base_url) if own else self.client(turn.base_url))
                if token is not None:
                    token.on_cancel(clients[0].abort)
            return clients[0]

        costing = Costing.for_request(
            settings.prices, settings.currency, model, messages, options["max_tokens"]
        )
        rounds: list[Round] = []
        keyed = settings.log or turn.use_cache

        def send(msgs: list[Message]) -> Iterator[Delta]:
            from ._exchange import replay_deltas, request_key

            key = request_key(model, msgs, options) if keyed else ""
            hit = self.journal.lookup(key, frontend.notify) if turn.use_cache else None
            rounds.append(Round(list(msgs), key, hit is not None))
            if hit is not None:
                return iter(replay_deltas(hit))
            stream = client().stream(msgs, **options)
            return cancellable(stream, token) if token is not None else stream

        def measure(builder: ReplyBuilder) -> Measure:
            used = costing.measure(builder)
            # A replayed answer cost nothing now: the status line says where it came from instead.
            return Measure(used.tokens, 0.0) if rounds and rounds[-1].replayed else used

        def money(amount: float) -> str:
            return REPLAYED if rounds and all(r.replayed for r in rounds) else costing.money(amount)

        def round_done(done: Any) -> None:
            rounds[-1].reply = done.reply
            if not rounds[-1].replayed:
                costing.charge(self.usage, model, done.reply)

        try:
            result, steps = run_chat(
                send,
                messages,
                make_view=frontend.make_view,
                model=model,
                tools=turn.tools,
                ask=frontend.ask,
                notify=frontend.notify,
                interval=settings.update_interval,
                max_rounds=settings.max_tool_rounds,
                measure=measure,
                money=money,
                on_round=round_done,
                describe=lambda err: self.describe_error(err, turn.base_url),
            )
        finally:
            if own and clients:
                clients[0].close()
        reply = result.reply
        answer: Optional[str] = None
        if reply.text or steps:
            # A turn that showed text is kept, even if it was cut short (marked so, for the model's sake);
            # one that produced no answer text is not: the conversation never holds an empty answer.
            answer = reply.text + _cut_note(reply, result.interrupted)
            conversation.record(turn.content, answer, steps)
        if any(r.replayed for r in rounds):
            reply.notices.append(REPLAYED)
        if settings.log:
            self._log_turn(
                rounds, costing, turn.base_url, model, conversation_id, turn_index, answer, frontend.notify
            )
        self.last = reply
        self.last_comparison = None
        outcome = Outcome(reply, interrupted=result.interrupted, error=result.exception)
        if (request.json or request.schema is not None) and reply.text and reply.error is None:
            from ._jsonout import recover_json, validate_against

            try:
                value = recover_json(reply.text)
                if request.schema is not None:
                    value = validate_against(value, request.schema)
            except ShenmaError as exc:
                outcome.json_error = exc
            else:
                reply.value = value
                outcome.value = value
                outcome.has_value = True
        return outcome

    # -- several models at once -------------------------------------------------------------------------

    def compare(
        self,
        prompt: str,
        models: Optional[Sequence[str]] = None,
        *,
        system: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        json: bool = False,
        schema: Any = None,
        images: Sequence[Any] = (),
        on_delta: Optional[Callable[[str, Delta], None]] = None,
        timeout: Optional[float] = None,
        max_time: Optional[float] = None,
        new: bool = False,
    ) -> dict[str, Reply]:
        """Send ``prompt`` to each of ``models`` at once and stream the answers concurrently; return
        model → :class:`Reply` in the order given (``on_delta(model, delta)`` sees each piece).

        Each model continues its own branch of the conversation: after a comparison, ``compare()`` again
        (``models=None``: the same models) goes on with every branch, ``ask(model=m)`` picks ``m``'s.
        One model's failure is in its reply's ``.error`` and leaves the others alone. Raises ConfigError
        for what is wrong before anything is sent, and :class:`ChatInterrupted` on Ctrl-C, with every
        partial reply in ``.replies`` (also kept in the branches). Tools are not offered.
        """
        from ._columns import QuietColumns

        request = ChatRequest(
            prompt=prompt,
            models=tuple(models or ()),
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout=timeout,
            max_time=max_time,
            json=json,
            schema=schema,
            images=tuple(images),
            new=new,
            tools=False,
            cache=False,
        )
        notices: list[str] = []
        outcome = self.run_compare(request, QuietColumns(on_delta, notices))
        for reply in outcome.replies.values():
            reply.notices.extend(n for n in notices if n not in reply.notices)
        if outcome.interrupted:
            stop = ChatInterrupted("interrupted: the partial answers are kept in .replies")
            stop.replies = outcome.replies  # type: ignore[attr-defined]
            raise stop
        return outcome.replies

    def run_compare(self, request: ChatRequest, frontend: ColumnsFrontend) -> ComparisonOutcome:
        """Run one user turn on several models at once (``request.models``; none: the models of the
        conversation's branches) through ``frontend``'s columns. Raises like :meth:`run`."""
        from ._comparison import run_comparison

        if request.new:
            self.reset()
        conversation = self.conversation
        self._wait_for_background(conversation, frontend)
        with self._one_turn(conversation):
            return run_comparison(self, request, frontend)

    def start_compare(
        self,
        request: ChatRequest,
        frontend: ColumnsFrontend,
        *,
        label: Optional[str] = None,
        runner: Optional[Callable[[Callable[[], None]], None]] = None,
        on_end: Callable[[Job[ComparisonOutcome]], None] = lambda job: None,
    ) -> Job[ComparisonOutcome]:
        """Start the comparison (as :meth:`run_compare` runs it) on a background thread; return its
        :class:`~._jobs.Job` at once.

        What is wrong with the request raises here. The columns are made now (so a cell shows them before
        it returns); the refresh loop then runs on the worker thread, so the columns view and the
        frontend's lines must be safe there. The comparison waits for earlier turns of the same
        conversation, and later ones wait for it; its branches are recorded when it ends. Stopping the job
        (``job.token.cancel``, ``wait()`` on Ctrl-C, ``%chat stop``) stops every stream and keeps every
        partial answer. ``job.result`` is the :class:`~._comparison.ComparisonOutcome`; ``on_end(job)``
        runs on the worker thread when it has ended.
        """
        from ._background import ColumnsAsView, start_turn
        from ._comparison import plan_comparison, run_comparison

        if request.new:
            self.reset()
        plan = plan_comparison(self, request)
        conversation = plan.conversation
        if plan.prepared.images:
            frontend.show_images(plan.prepared.images)
        columns = frontend.make_columns(plan.models)
        shown = label or f"{', '.join(plan.models)}: {excerpt(request.prompt, 40)}"

        def work(token: CancelToken, views: Callable[[], View]) -> ComparisonOutcome:
            with self._one_turn(conversation):
                return run_comparison(
                    self, request, frontend, plan, columns=columns, stop=lambda: token.cancelled
                )

        first = ColumnsAsView(columns, plan.models)  # ends the columns if the job stops before it starts
        job = start_turn(
            self.jobs,
            work,
            label=shown,
            first_view=first,
            make_view=lambda: first,
            order=conversation,
            runner=runner,
            on_end=on_end,
        )
        self._planned[job] = list(plan.models)
        return job

    def _log_turn(
        self,
        rounds: list[Round],
        costing: Costing,
        base_url: str,
        model: str,
        conversation_id: str,
        turn: int,
        answer: Optional[str],
        notify: Callable[[str], None],
    ) -> None:
        """Write the turn's requests to the log; the last one carries the answer the conversation kept."""
        from ._exchange import Exchange

        done = [r for r in rounds if r.reply is not None]
        exchanges = []
        for index, sent in enumerate(done):
            assert sent.reply is not None
            figures = costing.counted(sent.reply)
            cost, estimated, prompt_tokens, completion_tokens = figures or (None, False, 0, 0)
            exchanges.append(
                Exchange.from_reply(
                    sent.reply,
                    notebook=self.notebook_id,
                    host=host_of(base_url),
                    messages=sent.messages,
                    requested_model=model,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost=cost,
                    cost_estimated=estimated,
                    currency=costing.currency,
                    request_key=sent.key,
                    conversation=conversation_id,
                    turn=turn,
                    answer=answer if index == len(done) - 1 else None,
                    replayed=sent.replayed,
                )
            )
        self.journal.write(exchanges, notify)

    # -- a table of prompts ------------------------------------------------------------------------------

    def map(
        self,
        template: Union[str, Callable[[Any], Any]],
        data: Any,
        *,
        model: Optional[str] = None,
        concurrency: int = 8,
        json: bool = False,
        schema: Any = None,
        max_cost: Optional[float] = None,
        cache: bool = True,
        progress: bool = True,
        **options: Any,
    ) -> Any:
        """The template over every row of ``data``, each row an independent request with this session's
        settings (not part of the conversation). See :func:`shenma_magic.map`."""
        from ._batch import run_map

        return run_map(
            self,
            template,
            data,
            model=model,
            concurrency=concurrency,
            json=json,
            schema=schema,
            max_cost=max_cost,
            cache=cache,
            progress=progress,
            **options,
        )

    def _images(self, sources: Sequence[Any]) -> list[Any]:
        if not sources:
            return []
        from ._images import image_part

        return [image_part(source) for source in sources]


def _take_branch(branches: Branches, model: str, trunk: Conversation) -> None:
    """One model after a comparison, once its turn has come: it continues its own branch, which becomes
    the conversation (BranchError if the comparison left none for it)."""
    if branches:
        branches.check([model])
        branches.adopt(model, trunk)


@dataclass(frozen=True)
class _Turn:
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


class _WithViews:
    """A frontend whose views come from a job's ``views()`` (the first was made on the caller's thread)."""

    def __init__(self, frontend: Frontend, views: Callable[[], View]) -> None:
        self._frontend = frontend
        self.make_view = views

    def ask(self, question: str) -> bool:
        return self._frontend.ask(question)

    def notify(self, line: str) -> None:
        self._frontend.notify(line)

    def show_images(self, images: list[Any]) -> None:
        self._frontend.show_images(images)
