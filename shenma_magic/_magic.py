"""``%%chat`` and ``%chat``: the IPython front door. It parses a cell into a :class:`ChatRequest`, hands it to
the notebook's :class:`~shenma_magic.Session` with the views to stream into, and binds the result.

Settings precedence: a cell's options, then ``%config ChatMagics.x`` / ``%chat x value``, then the
environment (``SHENMA_BASE_URL``, ``SHENMA_MODEL``; ``OPENAI_BASE_URL`` as a fallback), then defaults.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, TraitError, Unicode, validate

from ._branches import BranchError
from ._commands import NO_KEY_HINT, run_command
from ._current import set_current_session
from ._errors import ConfigError, ShenmaError
from ._identity import notebook_identity
from ._jobs import Cancelled, Job
from ._prompt import fill_variables
from ._scrub import scrub_key_from_history
from ._secret import known_key_in, looks_like_key
from ._session import ChatInterrupted, ChatRequest, MissingKeyError, Outcome, Session
from ._settings import DISPLAY_MODES, Settings, check_setting, given_options

if TYPE_CHECKING:
    from ._comparison import ComparisonOutcome

__all__ = ["ChatMagics", "register", "unregister"]

_DEFAULTS = Settings()


@magics_class
class ChatMagics(Magics):
    """Chat with 神马中转API or any OpenAI-compatible server from a notebook cell."""

    model = Unicode("", help="Model name (default: $SHENMA_MODEL, else gpt-4o-mini).").tag(config=True)
    base_url = Unicode(
        "", help="API base URL (default: $SHENMA_BASE_URL, $OPENAI_BASE_URL, else https://api.whatai.cc/v1)."
    ).tag(config=True)
    system = Unicode("", help="System prompt sent first in every request.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature (server default if None).").tag(
        config=True
    )
    max_tokens = Int(None, allow_none=True, help="Upper bound on the answer's tokens.").tag(config=True)
    timeout = Float(_DEFAULTS.timeout, help="Longest silence allowed from the server, in seconds.").tag(
        config=True
    )
    max_time = Float(
        _DEFAULTS.max_time, help="Longest time one reply may take in all, in seconds (keep-alives included)."
    ).tag(config=True)
    max_history = Int(
        _DEFAULTS.max_history, help="How many earlier turns are sent with each question (0: all)."
    ).tag(config=True)
    max_retries = Int(
        _DEFAULTS.max_retries,
        help="Retries before any reply byte, for 429/502/503/504 and connection errors.",
    ).tag(config=True)
    display = CaselessStrEnum(
        list(DISPLAY_MODES),
        "auto",
        help="How replies stream: widgets in Jupyter, plain text in a terminal ('auto').",
    ).tag(config=True)
    update_interval = Float(
        _DEFAULTS.update_interval, help="Seconds between live updates (about 13 per second)."
    ).tag(config=True)
    fill_vars = Bool(True, help="Fill {name} in prompts from the user namespace.").tag(config=True)
    log = Bool(
        True, help="Keep every exchange in the local log (~/.local/share/shenma-magic/log.sqlite3)."
    ).tag(config=True)
    cache = Bool(
        False, help="Answer a request identical to one in the log from the log, without sending it."
    ).tag(config=True)
    prices = Dict(
        help='Prices per model: {"gpt-4o-mini": {"input": 1.05, "output": 4.2}} per million tokens, '
        'or {"per_call": 0.1}; glob patterns such as "deepseek-*" work.'
    ).tag(config=True)
    currency = Unicode(_DEFAULTS.currency, help="Currency symbol for prices.").tag(config=True)
    max_tool_rounds = Int(
        _DEFAULTS.max_tool_rounds, help="How many rounds of tool calls one cell may run."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        # The engine; everything the chat owns (conversation, clients, keys, usage, last reply) lives there.
        self.session = Session()
        self.session.door = "magic"  # errors advise %chat key, -m, --timeout

    @validate(*Settings.names())
    def _check(self, proposal: Any) -> Any:
        name = proposal["trait"].name
        value = proposal["value"]
        text = value if isinstance(value, str) else ""
        if name in ("model", "base_url", "system", "currency") and (
            looks_like_key(text) or known_key_in(text)
        ):
            # %config ChatMagics.model = "sk-..." already sits in the history: take it out before refusing.
            scrub_key_from_history(self.shell, text)
            raise TraitError("that looks like an API key; use %chat key to enter keys")
        try:
            return check_setting(name, value)
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    def synced_session(self) -> Session:
        """The session, with the settings as ``%config`` / ``%chat NAME`` last set them."""
        try:
            self.session.settings = Settings().with_changes(**{n: getattr(self, n) for n in Settings.names()})
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        # The log files this kernel's exchanges under its notebook (the environment can say so only here,
        # where the user namespace is: VS Code puts the notebook's path there).
        self.session.notebook = notebook_identity(os.environ, self.user_ns, os.getcwd())
        return self.session

    @property
    def last(self) -> Any:
        return self.session.last

    @property
    def user_ns(self) -> dict[str, Any]:
        assert self.shell is not None, "ChatMagics is registered on a shell"
        ns: dict[str, Any] = self.shell.user_ns
        return ns

    @property
    def in_jupyter(self) -> bool:
        """A kernel with a frontend (rich outputs), as opposed to terminal IPython."""
        return getattr(self.shell, "kernel", None) is not None

    def __repr__(self) -> str:
        return f"<ChatMagics {self.session!r}>"

    def one_line(self, exc: ShenmaError) -> str:
        """The error as the magic shows it: what happened, and what to do in this notebook."""
        if isinstance(exc, MissingKeyError):
            return f"{exc.message}: {NO_KEY_HINT}"
        if isinstance(exc, BranchError):
            return (
                f"{exc.message}: continue one with -m NAME, all of them with a plain %%chat, "
                "or start over with --new"
            )
        return self.session.describe_error(exc)

    def ask_secret(self, prompt: str) -> str:
        return _ask_secret(prompt)

    # -- %%chat ------------------------------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "-m",
        "--model",
        help="Model for this cell (e.g. gpt-4o-mini), or several separated by commas to compare their "
        "answers side by side (e.g. gpt-4o-mini,deepseek-r1).",
    )
    @argument("-s", "--system", help="System prompt for this cell (quote it).")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0 to 2.")
    @argument("--max-tokens", type=int, help="Upper bound on the answer's tokens.")
    @argument("--timeout", type=float, help="Longest silence allowed from the server, in seconds.")
    @argument("--max-time", type=float, help="Longest time the whole reply may take, in seconds.")
    @argument("--new", action="store_true", help="Start a new conversation with this cell.")
    @argument(
        "-o", "--out", help="Bind the reply (a str with .reasoning, .usage, .complete...) to this name."
    )
    @argument("--no-vars", action="store_true", help="Send {braces} as written, without filling variables.")
    @argument("--json", action="store_true", help="Ask for a JSON answer; -o then gets the parsed value.")
    @argument("--schema", help="A JSON Schema dict or pydantic model (a variable name) the JSON must follow.")
    @argument(
        "--image",
        action="append",
        default=[],
        help="An image to ask about (repeatable): a path, an http(s) or data: URL, or a variable holding "
        "bytes, a PIL image or a matplotlib figure.",
    )
    @argument("--no-tools", action="store_true", help="Do not offer the registered tools for this cell.")
    @argument(
        "--over",
        help="Run the cell once per row of this variable (a list, pandas Series or DataFrame): {} is the "
        "row's value, {column} its field; each row is its own request, kept in the local store. "
        "-o gets the answers (a list, or a Series with the data's index).",
    )
    @argument("--concurrency", type=int, help="With --over: requests in flight at most (default 8).")
    @argument("--max-cost", type=float, help="With --over: stop sending before the cost passes this amount.")
    @argument(
        "--cache",
        action="store_true",
        default=None,
        help="Answer from the log if it holds this exact request (sends nothing, needs no key).",
    )
    @argument(
        "--no-cache", dest="cache", action="store_false", help="Send the request even if %%chat cache is on."
    )
    @argument(
        "--bg",
        action="store_true",
        help="Stream in the background: the cell returns at once and the reply fills it while other cells "
        "run (%%chat wait, %%chat jobs).",
    )
    @cell_magic("chat")  # type: ignore[arg-type]  # IPython types the decorator too narrowly
    def chat(self, line: str, cell: str) -> None:
        """Send the cell to the model as the user message and stream the reply.

        The next %%chat cell continues the conversation (--new starts over). With -m a,b,c every model
        answers at once, side by side; the next plain %%chat continues each model's own side of the
        conversation, -m b continues b's alone (and from then on only b's). {name}, {name.attr} and
        {name[key]} are filled from your variables; other braces stay as written; {{ and }} are literal.
        Settings: %chat (show), %chat model NAME, %chat key, %chat models, %chat history, %chat reset.
        """
        self._refuse_keys(line)
        try:
            args = parse_argstring(self.chat, line)
        except UsageError as exc:
            raise UsageError(f"{exc} (see %%chat? for the options)") from None
        if args.over is not None:
            return self._chat_over(args, cell)
        for flag, given in (("--concurrency", args.concurrency), ("--max-cost", args.max_cost)):
            if given is not None:
                raise UsageError(f"{flag} goes with --over NAME (a prompt over the rows of a table)")
        request = self._request(args, cell)
        session = self.synced_session()
        from ._frontend import NotebookFrontend, NotedFrontend

        if request.models or (request.model is None and session.branch_models() and not request.new):
            self._compare(session, request, args.out, background=bool(args.bg))
            return
        frontend: Any = NotebookFrontend(rich=self.in_jupyter, display=session.settings.display)
        if args.bg:
            from ._background import FOREGROUND_NOTE, placement

            where = placement(self.shell)
            if where.threaded:
                self._start_in_background(session, request, where, args.out)
                return
            # A headless runner keeps only what a cell shows before it returns: run it here, and say so.
            frontend = NotedFrontend(frontend, FOREGROUND_NOTE)
        try:
            outcome = session.run(request, frontend)
        except ShenmaError as exc:
            raise UsageError(self.one_line(exc)) from None
        self._bind(outcome, args.out, frontend)
        if outcome.interrupted:
            from ._run import INTERRUPTED, INTERRUPTED_EARLY

            said = INTERRUPTED if outcome.reply.text else INTERRUPTED_EARLY
            raise ChatInterrupted(said, outcome.reply) from None

    def _bind(self, outcome: Outcome, out: Optional[str], frontend: Any) -> None:
        """``-o NAME``: the parsed JSON value when there is one, else the Reply."""
        bound: Any = outcome.reply
        if outcome.json_error is not None:
            frontend.notify(f"⚠ {outcome.json_error} (the text is kept: -o holds the Reply)")
        elif outcome.has_value:
            bound = outcome.value
        if out:
            self.user_ns[out] = bound

    def _start_in_background(
        self, session: Session, request: ChatRequest, where: Any, out: Optional[str]
    ) -> None:
        from ._background import thread_runner
        from ._frontend import BackgroundFrontend, TerminalBackgroundFrontend

        frontend: Any
        if where.outlet is not None:
            waiting = _waiting_line(session, request)
            frontend = BackgroundFrontend(
                where.outlet, display=session.settings.display, **({"waiting": waiting} if waiting else {})
            )
        else:
            frontend = TerminalBackgroundFrontend("")

        def ended(job: Job[Outcome]) -> None:
            # On the job's thread, once the reply has ended: -o is bound now, not when the cell returned.
            if job.result is not None:
                self._bind(job.result, out, frontend)
            elif job.error is not None and not isinstance(job.error, Cancelled):
                frontend.notify(f"⚠ the background reply failed: {self._describe(job.error)}")

        try:
            job = session.start(request, frontend, runner=thread_runner(), on_end=ended)
        except ShenmaError as exc:
            raise UsageError(self.one_line(exc)) from None
        if isinstance(frontend, TerminalBackgroundFrontend):
            frontend.header = f"[#{job.number} {job.label}]"
            print(f"[#{job.number} in the background: %chat wait, %chat jobs]")

    def _describe(self, exc: BaseException) -> str:
        return self.one_line(exc) if isinstance(exc, ShenmaError) else f"{type(exc).__name__}: {exc}"

    def _compare(
        self, session: Session, request: ChatRequest, out: Optional[str], *, background: bool
    ) -> None:
        """A comparison cell: the models' answers side by side; -o gets model → Reply."""
        from ._columns import NotebookColumns

        frontend: Any = NotebookColumns(rich=self.in_jupyter, display=session.settings.display)
        if background:
            from ._background import FOREGROUND_NOTE, placement
            from ._frontend import NotedColumns

            where = placement(self.shell)
            if where.threaded:
                self._start_compare_in_background(session, request, where, out)
                return
            # A headless runner keeps only what a cell shows before it returns: run it here, and say so.
            frontend = NotedColumns(frontend, FOREGROUND_NOTE)
        try:
            outcome = session.run_compare(request, frontend)
        except ShenmaError as exc:
            raise UsageError(self.one_line(exc)) from None
        self._bind_comparison(outcome, out, frontend)
        if outcome.interrupted:
            kept = (
                "the partial answers are kept" if any(outcome.replies.values()) else "no answer had arrived"
            )
            raise ChatInterrupted(f"interrupted (Ctrl-C): {kept}", replies=outcome.replies) from None

    def _bind_comparison(self, outcome: ComparisonOutcome, out: Optional[str], frontend: Any) -> None:
        for model, error in outcome.json_errors.items():
            frontend.notify(f"⚠ {model}: {error} (the text is kept in its Reply)")
        if out:
            self.user_ns[out] = outcome.replies

    def _start_compare_in_background(
        self, session: Session, request: ChatRequest, where: Any, out: Optional[str]
    ) -> None:
        from ._background import thread_runner
        from ._frontend import BackgroundColumns, TerminalBackgroundColumns

        frontend: Any
        if where.outlet is not None:
            waiting = _waiting_line(session, request)
            frontend = BackgroundColumns(
                where.outlet, display=session.settings.display, **({"waiting": waiting} if waiting else {})
            )
        else:
            frontend = TerminalBackgroundColumns("")

        def ended(job: Job[ComparisonOutcome]) -> None:
            # On the job's thread, once every model has ended: -o is bound now, not when the cell returned.
            if job.result is not None:
                self._bind_comparison(job.result, out, frontend)
            elif job.error is not None and not isinstance(job.error, Cancelled):
                frontend.notify(f"⚠ the background comparison failed: {self._describe(job.error)}")

        try:
            job = session.start_compare(request, frontend, runner=thread_runner(), on_end=ended)
        except ShenmaError as exc:
            raise UsageError(self.one_line(exc)) from None
        if isinstance(frontend, TerminalBackgroundColumns):
            frontend.header = f"[#{job.number} {job.label}]"
            print(f"[#{job.number} in the background: %chat wait, %chat jobs]")

    def _chat_over(self, args: Any, cell: str) -> None:
        """``%%chat --over NAME``: the cell is the template, filled per row (row fields win over the
        notebook's variables); the answers are bound to -o."""
        if self._check_options(args, cell):
            raise UsageError("--over takes one model: -m NAME")
        for flag, given in (("--image", args.image), ("--new", args.new), ("--bg", args.bg)):
            if given:
                raise UsageError(f"{flag} does not combine with --over (every row is a request of its own)")
        if args.no_vars or not self.fill_vars:
            raise UsageError("--over fills the cell with each row: it cannot be used with --no-vars")
        over = _unquote(args.over) or ""
        data = self._lookup(over, "--over")
        schema = self._lookup(args.schema, "--schema") if args.schema else None
        session = self.synced_session()
        from ._batch import BatchInterrupted, run_map

        options = given_options(
            system=args.system, temperature=args.temperature, max_tokens=args.max_tokens, timeout=args.timeout
        )
        try:
            answers = run_map(
                session,
                cell.strip("\n"),
                data,
                namespace=self.user_ns,
                model=args.model,
                concurrency=args.concurrency if args.concurrency is not None else 8,
                json=bool(args.json),
                schema=schema,
                max_cost=args.max_cost,
                cache=args.cache is not False,
                **options,
            )
        except BatchInterrupted as exc:
            if args.out:
                self.user_ns[args.out] = exc.results
            raise
        except ShenmaError as exc:
            raise UsageError(self.one_line(exc)) from None
        if args.out:
            self.user_ns[args.out] = answers
        else:
            from ._frontend import NotebookFrontend

            again = " (run it again: the answers come from the store)" if args.cache is not False else ""
            NotebookFrontend(rich=self.in_jupyter).notify(f"the answers are not bound: add -o NAME{again}")

    def _check_options(self, args: Any, cell: str) -> tuple[str, ...]:
        """Check the cell's options (one UsageError line); the models of a comparison, if -m names several."""
        for name in ("model", "system", "out", "schema"):
            setattr(args, name, _unquote(getattr(args, name)))
        models: tuple[str, ...] = ()
        if args.model and "," in args.model:
            from ._comparison import compare_models

            try:
                models = tuple(compare_models(args.model.split(","), self.session))
            except ConfigError as exc:
                raise UsageError(f"-m: {exc}") from None
            args.model = None
        options = {
            "temperature": ("--temperature", args.temperature),
            "max_tokens": ("--max-tokens", args.max_tokens),
            "timeout": ("--timeout", args.timeout),
            "max_time": ("--max-time", args.max_time),
            "model": ("-m", args.model),
        }
        for name, (flag, value) in options.items():
            if value is not None:
                try:
                    check_setting(name, value)
                except ConfigError as exc:
                    raise UsageError(f"{flag}: {exc.message.replace(name, flag, 1)}") from None
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a Python name, not {args.out!r}")
        if not cell.strip():
            raise UsageError("the cell is empty: write your message below the %%chat line")
        return models

    def _request(self, args: Any, cell: str) -> ChatRequest:
        """The cell's options as one checked request (one UsageError line for anything wrong)."""
        models = self._check_options(args, cell)
        prompt = cell.strip("\n")
        if self.fill_vars and not args.no_vars:
            try:
                prompt = fill_variables(prompt, self.user_ns)
            except ShenmaError as exc:
                raise UsageError(str(exc)) from None
        schema = self._lookup(args.schema, "--schema") if args.schema else None
        images = [self.user_ns.get(s, s) for s in (_unquote(i) or "" for i in args.image)]
        return ChatRequest(
            prompt=prompt,
            model=args.model,
            system=args.system,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            timeout=args.timeout,
            max_time=args.max_time,
            json=bool(args.json),
            schema=schema,
            images=images,
            new=bool(args.new),
            tools=not args.no_tools,
            cache=args.cache,
            models=models,
        )

    def _lookup(self, name: str, option: str) -> Any:
        if name not in self.user_ns:
            raise UsageError(f"{option} {name}: no such variable in the notebook")
        return self.user_ns[name]

    # -- %chat -------------------------------------------------------------------------------------------

    @line_magic("chat")  # type: ignore[arg-type]  # IPython types the decorator too narrowly
    def chat_line(self, line: str) -> Any:
        """Settings, keys, history, tools and usage for %%chat: %chat help lists the commands."""
        self._refuse_keys(line)
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot parse {line!r}: {exc}") from None
        return run_command(self, words)

    # -- keys typed where they do not belong -------------------------------------------------------------

    def _refuse_keys(self, text: str) -> None:
        if not looks_like_key(text) and not known_key_in(text):
            return
        scrub_key_from_history(self.shell, text)
        raise UsageError(
            "that looks like an API key: a key typed into a cell is saved in the notebook and the history. "
            f"It was not used. {NO_KEY_HINT[0].upper()}{NO_KEY_HINT[1:]}."
        )


def _waiting_line(session: Session, request: ChatRequest) -> Optional[str]:
    """What a background cell shows first when an earlier turn of its conversation is still in flight."""
    busy = None if request.new else session.jobs.busy(session.conversation)
    return f"waiting for background reply #{busy.number} in this conversation to end…" if busy else None


def _unquote(value: Optional[str]) -> Optional[str]:
    """IPython's argument splitter keeps the quotes of -s 'be brief'; the user meant the text inside."""
    if value and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _ask_secret(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)


def register(ip: Any) -> None:
    magics = ChatMagics(shell=ip)
    ip.register_magics(magics)
    set_current_session(magics.session, magics.synced_session)


def unregister(ip: Any) -> None:
    magics = ip.magics_manager.registry.get("ChatMagics")
    if magics is not None:
        for kind in ("line", "cell"):
            ip.magics_manager.magics[kind].pop("chat", None)
        ip.magics_manager.registry.pop("ChatMagics", None)
        if magics in getattr(ip, "configurables", []):
            ip.configurables.remove(magics)
        set_current_session(None)
