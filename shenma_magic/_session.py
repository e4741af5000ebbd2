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
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

from ._branches import Branches, check_models
from ._current import current_session, default_tools, set_current_session
from ._errors import ShenmaError
from ._jobs import Job, JobRegistry
from ._journal import Journal
from ._keys import KeyStore
from ._models import Delta, Reply
from ._prepare import prepare
from ._prompt import Conversation
from ._secret import Secret, host_of, is_loopback_host, register_key_source
from ._sendturn import send_turn
from ._settings import Settings
from ._turn import ChatInterrupted, ChatRequest, Frontend, MissingKeyError, Outcome, QuietFrontend
from ._turnorder import TurnOrder, take_branch, wait_for_background

if TYPE_CHECKING:
    from ._client import ChatClient
    from ._columns import ColumnsFrontend
    from ._comparison import ComparisonOutcome
    from ._exchange import ConversationRecord
    from ._pricing import UsageLedger
    from ._store import Store
    from ._tools import ToolRegistry

# current_session and set_current_session live in _current, the turn's types in _turn: all are still
# importable from here.
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


def _add_notices(replies: Iterable[Reply], notices: list[str]) -> None:
    """The Python door's notices (a wait, an answer from the log) go on each reply, once: the reply may
    carry the same line already."""
    for reply in replies:
        reply.notices.extend(n for n in notices if n not in reply.notices)


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
        self._order = TurnOrder()  # turns of one conversation never overlap and keep their order
        self._jobs: Optional[JobRegistry] = None
        self.journal = Journal(store, self.known_keys)
        # Whose words the advice in an error uses: "python" (api_key=, model=) or "magic" (%chat key, -m).
        self.door: str = "python"
        # What any view shows is masked with this session's keys too (see _secret.mask_known).
        register_key_source(self.known_keys)
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
        return self._order.branch_models(self._jobs, self.conversation, self.branches)

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
        from ._hints import describe

        key, source = (
            (None, "") if isinstance(err, MissingKeyError) else self.key_for(base_url or self.base_url)
        )
        return describe(
            err, "magic" if self.door == "magic" else "python", source if key is not None else None
        )

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
        outcome = self.run(request, QuietFrontend(on_delta, notices))
        reply = outcome.reply
        _add_notices([reply], notices)
        if outcome.interrupted:
            raise ChatInterrupted("interrupted: the partial answer is kept in .reply", reply)
        if outcome.error is not None:
            outcome.error.reply = reply
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
        turn = prepare(self, request)
        conversation = self._conversation_for(request, turn.model)
        branches, conversation_id = self.branches, self.conversation_id
        wait_for_background(self._jobs, conversation, frontend)
        with self._order.one_turn(conversation):
            take_branch(branches, turn.model, conversation)
            return send_turn(self, turn, conversation, conversation_id, frontend)

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
        from ._starts import start_single

        return start_single(self, request, frontend, label=label, runner=runner, on_end=on_end)

    def _conversation_for(self, request: ChatRequest, model: str) -> Conversation:
        """The conversation a turn of one model continues; BranchError now if the branches it will find
        have none for ``model`` (it takes up its branch when its turn comes: ``_turnorder.take_branch``)."""
        if request.new:
            self.reset()
        check_models(self.branch_models(), [model])
        return self.conversation

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
        _add_notices(outcome.replies.values(), notices)
        if outcome.interrupted:
            raise ChatInterrupted(
                "interrupted: the partial answers are kept in .replies", replies=outcome.replies
            )
        return outcome.replies

    def run_compare(self, request: ChatRequest, frontend: ColumnsFrontend) -> ComparisonOutcome:
        """Run one user turn on several models at once (``request.models``; none: the models of the
        conversation's branches) through ``frontend``'s columns. Raises like :meth:`run`."""
        from ._comparison import run_comparison

        if request.new:
            self.reset()
        conversation = self.conversation
        wait_for_background(self._jobs, conversation, frontend)
        with self._order.one_turn(conversation):
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
        from ._starts import start_comparison

        return start_comparison(self, request, frontend, label=label, runner=runner, on_end=on_end)

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
