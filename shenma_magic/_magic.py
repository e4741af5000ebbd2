"""``%%chat`` and ``%chat``: the IPython side. Parses options, resolves settings, wires the layers.

Settings precedence: a cell's options, then ``%config ChatMagics.x`` / ``%chat x value``, then the
environment (``SHENMA_BASE_URL``, ``SHENMA_MODEL``; ``OPENAI_BASE_URL`` as a fallback), then defaults.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import Any, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, TraitError, Unicode, validate

from ._chunks import text_of
from ._defaults import DEFAULT_BASE_URL, DEFAULT_MODEL
from ._errors import ConfigError, ShenmaError
from ._keys import KeyStore
from ._models import Reply
from ._prompt import Conversation, fill_variables
from ._secret import Secret, excerpt, host_of, is_loopback_host, key_tokens, looks_like_key, mask, redact

__all__ = ["ChatMagics", "register", "unregister"]


_NO_KEY_HINT = (
    "run %chat key to enter it (it is not echoed and not saved in the notebook), "
    "or set SHENMA_API_KEY before starting Jupyter"
)


class ChatInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C once the partial answer is saved: stops "Run All" without a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


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
    timeout = Float(120.0, help="Longest silence allowed from the server, in seconds.").tag(config=True)
    max_history = Int(20, help="How many earlier turns are sent with each question (0: all).").tag(
        config=True
    )
    max_retries = Int(
        2, help="Retries before any reply byte, for 429/502/503/504 and connection errors."
    ).tag(config=True)
    display = CaselessStrEnum(
        ["auto", "widget", "markdown", "text"],
        "auto",
        help="How replies stream: widgets in Jupyter, plain text in a terminal ('auto').",
    ).tag(config=True)
    update_interval = Float(0.075, help="Seconds between live updates (about 13 per second).").tag(
        config=True
    )
    fill_vars = Bool(True, help="Fill {name} in prompts from the user namespace.").tag(config=True)
    prices = Dict(
        help='Prices per model: {"gpt-4o-mini": {"input": 1.05, "output": 4.2}} per million tokens, '
        'or {"per_call": 0.1}; glob patterns such as "deepseek-*" work.'
    ).tag(config=True)
    currency = Unicode("¥", help="Currency symbol for prices.").tag(config=True)
    max_tool_rounds = Int(5, help="How many rounds of tool calls one cell may run.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.keys = KeyStore()
        self.conversation = Conversation()
        self.last: Optional[Reply] = None
        self._clients: dict[tuple[str, Optional[Secret]], Any] = {}
        self.ledger: Any = None  # a UsageLedger, made on first use

    @validate("temperature")
    def _check_temperature(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not 0 <= value <= 2:
            raise TraitError("temperature must be between 0 and 2")
        return value

    @validate("model", "base_url", "system")
    def _no_keys_in_settings(self, proposal: Any) -> Any:
        if looks_like_key(proposal["value"]):
            # %config ChatMagics.model = "sk-..." already sits in the history: take it out before refusing.
            _scrub_key_from_history(self.shell, proposal["value"])
            raise TraitError("that looks like an API key; use %chat key to enter keys")
        return proposal["value"]

    @property
    def _user_ns(self) -> dict[str, Any]:
        assert self.shell is not None, "ChatMagics is registered on a shell"
        ns: dict[str, Any] = self.shell.user_ns
        return ns

    @property
    def _in_jupyter(self) -> bool:
        """A kernel with a frontend (rich outputs), as opposed to terminal IPython."""
        return getattr(self.shell, "kernel", None) is not None

    def __repr__(self) -> str:
        return f"<ChatMagics model={self.resolved_model()!r} base_url={self._base_url_or_default()!r}>"

    # -- settings ----------------------------------------------------------------------------------------

    def resolved_model(self, option: Optional[str] = None) -> str:
        return option or self.model or os.environ.get("SHENMA_MODEL", "") or DEFAULT_MODEL

    def _base_url_or_default(self) -> str:
        return (
            self.base_url
            or os.environ.get("SHENMA_BASE_URL", "")
            or os.environ.get("OPENAI_BASE_URL", "")
            or DEFAULT_BASE_URL
        )

    def resolved_base_url(self) -> str:
        from ._client import normalize_base_url

        try:
            return normalize_base_url(self._base_url_or_default())
        except ConfigError as exc:
            raise UsageError(str(exc)) from None

    def client(self, base_url: str) -> Any:
        """The client for this base URL and its key; kept, so the connection is reused across cells."""
        from ._client import ChatClient

        key, _ = self.keys.resolve(base_url)
        if key is None and not is_loopback_host(host_of(base_url)):
            raise UsageError(f"no API key for {host_of(base_url)}: {_NO_KEY_HINT}")
        cache_key = (base_url, key)
        client = self._clients.get(cache_key)
        if client is None:
            try:
                client = ChatClient(base_url, key, max_retries=self.max_retries, timeout=self.timeout)
            except ShenmaError as exc:
                raise UsageError(str(exc)) from None
            self._clients[cache_key] = client
        client.max_retries = self.max_retries
        return client

    # -- %%chat ------------------------------------------------------------------------------------------

    @magic_arguments()
    @argument("-m", "--model", help="Model for this cell (e.g. gpt-4o-mini, deepseek-r1).")
    @argument("-s", "--system", help="System prompt for this cell (quote it).")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0 to 2.")
    @argument("--max-tokens", type=int, help="Upper bound on the answer's tokens.")
    @argument("--timeout", type=float, help="Longest silence allowed from the server, in seconds.")
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
    @cell_magic("chat")  # type: ignore[arg-type]  # IPython types the decorator too narrowly
    def chat(self, line: str, cell: str) -> None:
        """Send the cell to the model as the user message and stream the reply.

        The next %%chat cell continues the conversation (--new starts over). {name}, {name.attr} and
        {name[key]} are filled from your variables; other braces stay as written; {{ and }} are literal.
        Settings: %chat (show), %chat model NAME, %chat key, %chat models, %chat history, %chat reset.
        """
        self._refuse_keys(line)
        try:
            args = parse_argstring(self.chat, line)
        except UsageError as exc:
            raise UsageError(f"{exc} (see %%chat? for the options)") from None
        for name in ("model", "system", "out"):
            setattr(args, name, _unquote(getattr(args, name)))
        if args.temperature is not None and not 0 <= args.temperature <= 2:
            raise UsageError("--temperature must be between 0 and 2")
        if args.max_tokens is not None and args.max_tokens <= 0:
            raise UsageError("--max-tokens must be a positive number")
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a Python name, not {args.out!r}")
        if not cell.strip():
            raise UsageError("the cell is empty: write your message below the %%chat line")
        prompt = cell.strip("\n")
        if self.fill_vars and not args.no_vars:
            prompt = fill_variables(prompt, self._user_ns)
        model = self.resolved_model(args.model)
        base_url = self.resolved_base_url()
        extra = self._json_request(args)
        images = self._images(args.image)
        content: Any = prompt if not images else [{"type": "text", "text": prompt}, *(i.part for i in images)]
        client = self.client(base_url)
        if args.new:
            self.conversation.reset()
        system = args.system if args.system is not None else self.system
        if extra.get("response_format") and "json" not in f"{system} {prompt}".lower():
            # OpenAI (and relays in front of it) answer 400 to JSON mode unless a message mentions JSON.
            system = f"{system}\nReply with JSON only." if system else "Reply with JSON only."
        messages = self.conversation.messages(content, system=system or None, max_turns=self.max_history)
        tools = None if args.no_tools else _tools_or_none()
        if tools is not None:
            extra["tools"] = tools.specs()
        from ._display import Extras

        show = Extras(rich=self._in_jupyter)
        if images:
            show.images(images)
        options = {
            "model": model,
            "temperature": args.temperature if args.temperature is not None else self.temperature,
            "max_tokens": args.max_tokens if args.max_tokens is not None else self.max_tokens,
            "timeout": args.timeout if args.timeout is not None else self.timeout,
            "extra": extra or None,
        }
        from ._run import run_chat

        costing = self._costing(model, messages)
        result, steps = run_chat(
            lambda msgs: client.stream(msgs, **options),
            messages,
            make_view=lambda: self._make_view(show),
            model=model,
            tools=tools,
            ask=show.ask,
            notify=show.line,
            interval=self.update_interval,
            max_rounds=self.max_tool_rounds,
            tokens=self._token_counter(costing),
            on_round=lambda done: self._charge(model, done.reply, costing),
        )
        reply = result.reply
        if reply.text or reply.tool_calls or reply.reasoning:
            # A turn that showed text is kept, even if it was cut short; one that failed before any text
            # is not, so the conversation never holds a question without an answer.
            self.conversation.record(content, reply.text, steps)
        self.last = reply
        bound: Any = reply
        if (args.json or args.schema) and reply.text and reply.error is None:
            bound = self._parse_json(reply, args, show)
        if args.out:
            self._user_ns[args.out] = bound
        if result.interrupted:
            raise ChatInterrupted("interrupted") from None

    def _json_request(self, args: Any) -> dict[str, Any]:
        if not (args.json or args.schema):
            return {}
        from ._jsonout import response_format

        schema = self._lookup(args.schema, "--schema") if args.schema else None
        try:
            return {"response_format": response_format(schema)}
        except ShenmaError as exc:
            raise UsageError(str(exc)) from None

    def _parse_json(self, reply: Reply, args: Any, show: Any) -> Any:
        from ._jsonout import recover_json, validate_against

        try:
            value = recover_json(reply.text)
            if args.schema:
                value = validate_against(value, self._lookup(args.schema, "--schema"))
        except ShenmaError as exc:
            show.line(f"⚠ {exc} (the text is kept: -o holds the Reply)")
            return reply
        reply.value = value
        return value

    def _lookup(self, name: str, option: str) -> Any:
        if name not in self._user_ns:
            raise UsageError(f"{option} {name}: no such variable in the notebook")
        return self._user_ns[name]

    def _images(self, sources: list[str]) -> list[Any]:
        if not sources:
            return []
        from ._images import image_part

        parts = []
        for source in sources:
            try:
                parts.append(image_part(_unquote(source) or "", namespace=self._user_ns))
            except ShenmaError as exc:
                raise UsageError(str(exc)) from None
        return parts

    def _charge(self, model: str, reply: Reply, costing: Callable[[Any, str], tuple[Any, ...]]) -> None:
        """Add one round's tokens and cost to the session's usage totals."""
        if not (reply.usage or reply.text or reply.reasoning or reply.tool_calls):
            return  # a request that failed before the model produced anything is not charged
        if self.ledger is None:
            from ._pricing import UsageLedger

            self.ledger = UsageLedger()
        cost, estimated, prompt_tokens, completion_tokens = costing(reply.usage, _generated_text(reply))
        self.ledger.add(model, prompt_tokens, completion_tokens, cost, estimated)

    def _costing(self, model: str, messages: list[dict[str, Any]]) -> Callable[[Any, str], tuple[Any, ...]]:
        """(usage, answer text) -> (cost, estimated, prompt tokens, completion tokens) for this request."""
        from ._pricing import parse_prices, price_for, reply_cost

        try:
            price = price_for(parse_prices(self.prices), model) if self.prices else None
        except ShenmaError as exc:
            raise UsageError(str(exc)) from None
        prompt_text = "\n".join(text_of(m.get("content")) for m in messages)
        return lambda usage, text: reply_cost(price, usage, prompt_text=prompt_text, answer_text=text)

    def _token_counter(self, costing: Callable[[Any, str], tuple[Any, ...]]) -> Any:
        from ._pricing import format_money

        currency = self.currency

        def tokens(builder: Any) -> tuple[Optional[tuple[int, int, bool]], str]:
            cost, estimated, prompt, completion = costing(builder.usage, _generated_text(builder))
            return (prompt, completion, estimated), (format_money(cost, currency) if cost is not None else "")

        return tokens

    def _make_view(self, show: Any) -> Any:
        from ._display import LiveView, TextView

        mode = self.display
        if mode == "auto":
            mode = "widget" if self._in_jupyter else "text"
        if mode in ("widget", "markdown"):
            return LiveView(outputs=show)  # the cell's Extras: earlier outputs survive the final one
        return TextView()

    # -- %chat -------------------------------------------------------------------------------------------

    @line_magic("chat")  # type: ignore[arg-type]
    def chat_line(self, line: str) -> Any:
        """Settings and tools for %%chat.

        %chat                      show the settings (the key is shown masked)
        %chat model NAME           set the model (also: base_url, system, temperature, max_tokens,
                                   timeout, max_history, display)
        %chat key [--save|--forget] enter the key for the current base URL at a hidden prompt;
                                   --save keeps it in ~/.config/shenma-magic/keys.json (mode 0600)
        %chat models               list the server's models
        %chat history              show the conversation
        %chat reset                forget the conversation (same as %%chat --new)
        %chat last                 the last reply (also bound by %%chat -o NAME)
        %chat tools                list the tools offered to the model
        %chat tools add NAME [--trusted]   offer a function as a tool (asked before each call unless trusted)
        %chat tools remove NAME    stop offering it
        %chat usage [reset]        tokens and cost of this session, by model
        """
        self._refuse_keys(line)
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot parse {line!r}: {exc}") from None
        if not words or words[0] in ("settings", "config", "show"):
            return self._show_settings()
        command, rest = words[0].replace("-", "_"), words[1:]
        if command == "key":
            return self._key_command(rest)
        if command == "models":
            return self._list_models()
        if command == "history":
            return self._show_history()
        if command in ("reset", "new", "clear"):
            self.conversation.reset()
            print("conversation cleared")
            return None
        if command == "last":
            return self.last
        if command == "tools":
            return self._tools_command(rest)
        if command == "usage":
            return self._usage_command(rest)
        if command == "help":
            print(self.chat_line.__doc__)
            return None
        if command in _SETTABLE:
            return self._set(command, rest)
        raise UsageError(f"unknown %chat command {words[0]!r}: try %chat help")

    def _set(self, name: str, rest: list[str]) -> None:
        text = " ".join(rest)
        if not rest:
            print(f"{name} = {getattr(self, name)!r}")
            return
        try:
            value: Any = text
            trait = self.traits()[name]
            if isinstance(trait, (Int, Float)):
                if text.lower() in ("none", "default") and trait.allow_none:
                    value = None
                else:
                    value = int(text) if isinstance(trait, Int) else float(text)
            if name == "base_url" and value:
                from ._client import normalize_base_url

                value = normalize_base_url(value)
            setattr(self, name, value)
        except (ValueError, TraitError, ConfigError) as exc:
            raise UsageError(f"cannot set {name} to {text!r}: {exc}") from None
        print(f"{name} = {getattr(self, name)!r}")

    def _tools_command(self, rest: list[str]) -> None:
        from . import tools as registry

        tools = registry()
        if not rest:
            if not len(tools):
                print("no tools: %chat tools add NAME, or decorate a function with @shenma_magic.tool")
            for tool in tools:
                fn = tool.spec.get("function", {})
                flag = "trusted" if tool.trusted else "asks first"
                print(f"  {tool.name}({', '.join(fn.get('parameters', {}).get('properties', {}))})  [{flag}]")
            return
        action, names = rest[0], [n for n in rest[1:] if not n.startswith("--")]
        if action == "add" and names:
            for name in names:
                fn = self._user_ns.get(name)
                if not callable(fn):
                    raise UsageError(f"{name} is not a function in the notebook")
                try:
                    tools.add(fn, trusted="--trusted" in rest, name=name)
                except ShenmaError as exc:
                    raise UsageError(str(exc)) from None
                print(
                    f"tool {name} added" + (" (trusted: runs without asking)" if "--trusted" in rest else "")
                )
            return
        if action == "remove" and names:
            for name in names:
                print(f"tool {name} removed" if tools.remove(name) else f"no tool named {name}")
            return
        raise UsageError("usage: %chat tools [add NAME [--trusted] | remove NAME]")

    def _usage_command(self, rest: list[str]) -> None:
        from ._pricing import UsageLedger

        if self.ledger is None:
            self.ledger = UsageLedger()
        if rest[:1] == ["reset"]:
            self.ledger.reset()
            print("usage totals cleared")
            return
        if not len(self.ledger):
            print("no replies yet")
            return
        print(self.ledger.table(self.currency))
        if not self.prices:
            print(
                "(no prices set: %config ChatMagics.prices = {'gpt-4o-mini': {'input': 1.05, 'output': 4.2}})"
            )

    def _show_settings(self) -> None:
        base_url = self.resolved_base_url()
        key, source = self.keys.resolve(base_url)
        rows = [
            ("base_url", base_url),
            ("model", self.resolved_model()),
            ("key", f"{mask(key.reveal())} ({source})" if key else f"none — {_NO_KEY_HINT}"),
            ("system", self.system or "(none)"),
            ("temperature", "server default" if self.temperature is None else str(self.temperature)),
            ("max_tokens", "server default" if self.max_tokens is None else str(self.max_tokens)),
            ("timeout", f"{self.timeout:g} s"),
            ("max_history", f"{self.max_history} turns"),
            ("conversation", f"{len(self.conversation)} turns"),
            ("display", self.display),
        ]
        width = max(len(name) for name, _ in rows)
        print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))

    def _key_command(self, rest: list[str]) -> None:
        base_url = self.resolved_base_url()
        host = host_of(base_url)
        save = "--save" in rest
        if "--forget" in rest:
            found = self.keys.forget(base_url)
            self._clients.clear()
            print(f"key for {host} forgotten" if found else f"no saved key for {host}")
            return
        unknown = [w for w in rest if w not in ("--save",)]
        if unknown:
            raise UsageError(
                "usage: %chat key [--save | --forget]  (the key is asked for at a hidden prompt)"
            )
        try:
            key = _ask_secret(f"API key for {host} (input hidden): ")
        except Exception as exc:  # no stdin (e.g. a headless run): say what to do instead
            raise UsageError(
                f"cannot prompt for a key here ({type(exc).__name__}); set SHENMA_API_KEY instead"
            ) from None
        try:
            self.keys.set(base_url, key, save=save)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        self._clients.clear()
        where = f"saved to {self.keys.path}" if save else "for this session (add --save to keep it)"
        print(f"key {mask(key.strip())} set for {host}, {where}")

    def _list_models(self) -> None:
        base_url = self.resolved_base_url()
        client = self.client(base_url)
        try:
            models = client.models()
        except ShenmaError as exc:
            print(f"⚠ {exc}")
            return
        print(f"{len(models)} models at {base_url}:")
        print("\n".join(f"  {m}" for m in models))

    def _show_history(self) -> None:
        if not self.conversation.turns:
            print("the conversation is empty")
            return
        for turn in self.conversation.turns:
            for message in turn:
                content = message.get("content")
                text = (
                    content
                    if isinstance(content, str)
                    else "["
                    + ", ".join(p.get("type", "?") for p in content or [] if isinstance(p, dict))
                    + "]"
                )
                print(f"{message['role']:>9}: {excerpt(text, 100)}")

    # -- keys typed where they do not belong -------------------------------------------------------------

    def _refuse_keys(self, text: str) -> None:
        if not looks_like_key(text):
            return
        _scrub_key_from_history(self.shell, text)
        raise UsageError(
            "that looks like an API key: a key typed into a cell is saved in the notebook and the history. "
            f"It was not used. {_NO_KEY_HINT[0].upper()}{_NO_KEY_HINT[1:]}."
        )


_SETTABLE = {
    "model",
    "base_url",
    "system",
    "temperature",
    "max_tokens",
    "timeout",
    "max_history",
    "display",
    "update_interval",
    "max_retries",
}


def _tools_or_none() -> Any:
    from . import tools

    registry = tools()
    return registry if len(registry) else None


def _generated_text(reply: Any) -> str:
    """Everything the model generated (answer, reasoning, tool-call arguments), for token estimates."""
    calls = "".join(str(c.get("function", {}).get("arguments", "")) for c in reply.tool_calls)
    return f"{reply.text}{reply.reasoning}{calls}"


def _unquote(value: Optional[str]) -> Optional[str]:
    """IPython's argument splitter keeps the quotes of -s 'be brief'; the user meant the text inside."""
    if value and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _ask_secret(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)


def _scrub_key_from_history(shell: Any, text: str) -> None:
    """Take a pasted key out of In/_i*, the history database and (in Jupyter) the cell itself."""
    secrets = key_tokens(text)
    if not secrets:
        return

    def clean(value: str) -> str:
        return redact(value, *secrets)

    hm = getattr(shell, "history_manager", None)
    if hm is not None:
        for hist in (getattr(hm, "input_hist_parsed", None), getattr(hm, "input_hist_raw", None)):
            if isinstance(hist, list):
                hist[:] = [clean(h) if isinstance(h, str) else h for h in hist]
        cache = getattr(hm, "db_input_cache", None)
        if isinstance(cache, list):
            lock = getattr(hm, "db_input_cache_lock", None)
            if lock is not None:
                with lock:
                    cache[:] = [(n, clean(s), clean(r)) for (n, s, r) in cache]
        db = getattr(hm, "db", None)
        if db is not None and getattr(hm, "enabled", True):
            try:
                with db:
                    for secret in secrets:
                        db.execute(
                            "UPDATE history SET source = replace(source, ?, ?), "
                            "source_raw = replace(source_raw, ?, ?)",
                            (secret, mask(secret), secret, mask(secret)),
                        )
            except Exception:  # a history DB we cannot write (e.g. :memory: closed) is not worth a crash
                pass
    ns = getattr(shell, "user_ns", {})
    for name, value in list(ns.items()):
        if (name in ("_i", "_ii", "_iii") or (name.startswith("_i") and name[2:].isdigit())) and isinstance(
            value, str
        ):
            ns[name] = clean(value)
    if getattr(shell, "kernel", None) is not None:
        # Replace the cell's text in the frontend so the key is not saved with the notebook either.
        current = ns.get("_i") or ""
        try:
            cell_text = hm.input_hist_raw[-1] if hm is not None and hm.input_hist_raw else current
        except Exception:
            cell_text = current
        if cell_text:
            shell.set_next_input(clean(cell_text), replace=True)


def register(ip: Any) -> None:
    ip.register_magics(ChatMagics)


def unregister(ip: Any) -> None:
    magics = ip.magics_manager.registry.get("ChatMagics")
    if magics is not None:
        for kind in ("line", "cell"):
            ip.magics_manager.magics[kind].pop("chat", None)
        ip.magics_manager.registry.pop("ChatMagics", None)
        if magics in getattr(ip, "configurables", []):
            ip.configurables.remove(magics)
