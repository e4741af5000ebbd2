"""The ``%chat`` sub-commands, one function each, in a dispatch table.

Each command gets the magic (for its session, the user's namespace and the shell) and the words after its
name. A new command is one function and one :func:`command` line; ``%chat help`` is built from the table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ._errors import ConfigError, ShenmaError
from ._secret import excerpt, host_of, mask
from ._termtext import terminal_safe

if TYPE_CHECKING:
    from ._magic import ChatMagics

__all__ = ["COMMANDS", "Command", "help_text", "run_command"]

NO_KEY_HINT = (
    "run %chat key to enter it (it is not echoed and not saved in the notebook), "
    "or set SHENMA_API_KEY before starting Jupyter"
)

Handler = Callable[["ChatMagics", list[str]], Any]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    handler: Handler
    aliases: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {}
_ORDER: list[Command] = []


def _say(*parts: object) -> None:
    # Every line printed here may hold server or model text (model names, history, log lines, errors):
    # control characters become visible marks, so none can write the clipboard or hide a line.
    print(terminal_safe(" ".join(str(p) for p in parts)))


def command(
    name: str, usage: str, help: str, *, aliases: tuple[str, ...] = ()
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        entry = Command(name, usage, help, handler, aliases)
        _ORDER.append(entry)
        for word in (name, *aliases):
            COMMANDS[word] = entry
        return handler

    return register


def run_command(magic: ChatMagics, words: list[str]) -> Any:
    if not words:
        return show_settings(magic, [])
    name = words[0].replace("-", "_")
    entry = COMMANDS.get(name)
    if entry is None:
        from ._settings import Settings

        if name in SETTABLE:
            return set_setting(magic, name, words[1:])
        known = set(Settings.names())
        hint = f" ({name} is set with %config ChatMagics.{name} = ...)" if name in known else ""
        raise UsageError(f"unknown %chat command {words[0]!r}{hint}: try %chat help")
    return entry.handler(magic, words[1:])


def help_text() -> str:
    """The table of commands: usage on the left, what it does on the right (or below, for a long usage)."""
    width = 32
    pad = " " * (width + 4)
    lines = ["%chat commands:"]
    for entry in _ORDER:
        first, *rest = entry.help.split("\n")
        if len(entry.usage) > width:
            lines.append(f"  {entry.usage}")
            lines.append(pad + first)
        else:
            lines.append(f"  {entry.usage:<{width}}  {first}")
        lines.extend(pad + more for more in rest)
    lines.append(f"  {'%chat NAME VALUE':<{width}}  set one of the settings:")
    lines.extend(_wrap(", ".join(sorted(SETTABLE)), pad, 110))
    return "\n".join(lines)


def _wrap(text: str, indent: str, limit: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, limit, initial_indent=indent, subsequent_indent=indent)


SETTABLE = (
    "model",
    "base_url",
    "system",
    "temperature",
    "max_tokens",
    "timeout",
    "max_time",
    "max_history",
    "display",
    "update_interval",
    "max_retries",
    "max_tool_rounds",
    "fill_vars",
    "currency",
)


def set_setting(magic: ChatMagics, name: str, rest: list[str]) -> None:
    from ._settings import parse_setting

    if not rest:
        _say(f"{name} = {getattr(magic, name)!r}")
        return
    text = " ".join(rest)
    try:
        value = parse_setting(name, text)
    except ConfigError as exc:
        # The value is quoted cut to one short line: a refused value may be a megabyte long.
        raise UsageError(f"cannot set {name} to {excerpt(text, 60)!r}: {exc}") from None
    setattr(magic, name, "" if value is None and name in ("model", "base_url", "system") else value)
    _say(f"{name} = {getattr(magic, name)!r}")


@command("settings", "%chat", "show the settings (the key is shown masked)", aliases=("config", "show"))
def show_settings(magic: ChatMagics, rest: list[str]) -> None:
    session = magic.synced_session()
    settings = session.settings
    base_url = session.base_url
    key, source = session.key_for(base_url)
    rows = [
        ("base_url", base_url),
        ("model", session.model),
        ("key", f"{mask(key.reveal())} ({source})" if key else f"none — {NO_KEY_HINT}"),
        ("system", settings.system or "(none)"),
        ("temperature", "server default" if settings.temperature is None else f"{settings.temperature:g}"),
        ("max_tokens", "server default" if settings.max_tokens is None else str(settings.max_tokens)),
        ("timeout", f"{settings.timeout:g} s of silence"),
        ("max_time", f"{settings.max_time:g} s per reply"),
        ("max_history", f"{settings.max_history} turns"),
        ("conversation", _count(len(session.conversation), "turn") + _branch_note(session.branches.models)),
        ("display", settings.display),
        ("log", f"on ({_shown_path(magic)})" if settings.log else "off (%chat log on)"),
        ("cache", "on: answers from the log when it can" if settings.cache else "off"),
    ]
    width = max(len(name) for name, _ in rows)
    _say("\n".join(f"{name:<{width}}  {value}" for name, value in rows))


def _branch_note(models: list[str]) -> str:
    return f", then a branch for each of {', '.join(models)}" if models else ""


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@command(
    "key",
    "%chat key [--save | --forget]",
    "enter the key for the current base URL at a hidden prompt;\n"
    "--save keeps it in ~/.config/shenma-magic/keys.json (mode 0600)",
)
def key_command(magic: ChatMagics, rest: list[str]) -> None:
    session = magic.synced_session()
    base_url = session.base_url
    host = host_of(base_url)
    if "--forget" in rest:
        found = session.keys.forget(base_url)
        session.forget_clients()
        _say(f"key for {host} forgotten" if found else f"no saved key for {host}")
        return
    if [w for w in rest if w != "--save"]:
        raise UsageError("usage: %chat key [--save | --forget]  (the key is asked for at a hidden prompt)")
    try:
        key = magic.ask_secret(f"API key for {host} (input hidden): ")
    except Exception as exc:  # no stdin (e.g. a headless run): say what to do instead
        raise UsageError(
            f"cannot prompt for a key here ({type(exc).__name__}); set SHENMA_API_KEY instead"
        ) from None
    save = "--save" in rest
    try:
        session.keys.set(base_url, key, save=save)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    session.forget_clients()
    where = f"saved to {session.keys.path}" if save else "for this session (add --save to keep it)"
    _say(f"key {mask(key.strip())} set for {host}, {where}")


@command("models", "%chat models", "list the server's models")
def list_models(magic: ChatMagics, rest: list[str]) -> None:
    session = magic.synced_session()
    try:
        models = session.client().models()
    except ShenmaError as exc:
        _say(f"⚠ {magic.one_line(exc)}")
        return
    _say(f"{_count(len(models), 'model')} at {session.base_url}:")
    _say("\n".join(f"  {m}" for m in models))


@command("history", "%chat history", "show the conversation (and each model's branch after a comparison)")
def show_history(magic: ChatMagics, rest: list[str]) -> None:
    from ._toolrun import describe_message

    session = magic.session
    turns = session.conversation.turns
    branches = session.branches
    if not turns and not branches:
        _say("the conversation is empty")
        return
    for turn in turns:
        for message in turn:
            _say(f"{message['role']:>9}: {excerpt(describe_message(message), 100)}")
    for model in branches:
        _say(f"── branch {model} ──")
        branch = branches.branch(model).turns
        if not branch:
            _say("           (no answer yet)")
        for turn in branch:
            for message in turn:
                _say(f"  {message['role']:>9}: {excerpt(describe_message(message), 98)}")


@command("reset", "%chat reset", "forget the conversation (same as %%chat --new)", aliases=("new", "clear"))
def reset(magic: ChatMagics, rest: list[str]) -> None:
    magic.session.reset()
    _say("conversation cleared")


@command("last", "%chat last", "the last reply, or model → reply after a comparison (also bound by -o NAME)")
def last(magic: ChatMagics, rest: list[str]) -> Any:
    session = magic.session
    return session.last_comparison if session.last_comparison is not None else session.last


@command(
    "tools",
    "%chat tools [add NAME [--trusted] | remove NAME]",
    "list the tools offered to the model, offer a function (asked before\n"
    "each call unless --trusted), or stop offering it",
)
def tools_command(magic: ChatMagics, rest: list[str]) -> None:
    tools = magic.session.tools
    if not rest:
        if not len(tools):
            _say("no tools: %chat tools add NAME, or decorate a function with @shenma_magic.tool")
        for tool in tools:
            fn = tool.spec.get("function", {})
            flag = "trusted" if tool.trusted else "asks first"
            _say(f"  {tool.name}({', '.join(fn.get('parameters', {}).get('properties', {}))})  [{flag}]")
        return
    action, names = rest[0], [n for n in rest[1:] if not n.startswith("--")]
    if action == "add" and names:
        trusted = "--trusted" in rest
        for name in names:
            fn = magic.user_ns.get(name)
            if not callable(fn):
                raise UsageError(f"{name} is not a function in the notebook")
            try:
                tools.add(fn, trusted=trusted, name=name)
            except ShenmaError as exc:
                raise UsageError(str(exc)) from None
            _say(f"tool {name} added" + (" (trusted: runs without asking)" if trusted else ""))
        return
    if action == "remove" and names:
        for name in names:
            _say(f"tool {name} removed" if tools.remove(name) else f"no tool named {name}")
        return
    raise UsageError("usage: %chat tools [add NAME [--trusted] | remove NAME]")


@command(
    "usage",
    "%chat usage [reset | --since WHEN]",
    "tokens and cost of this session, by model; --since 7d|today|30d|DATE:\n"
    "from the log, by day and model, of every kernel (--here: this notebook's)",
)
def usage_command(magic: ChatMagics, rest: list[str]) -> None:
    session = magic.synced_session()
    if "--since" in rest or "--here" in rest:
        return _usage_since(magic, rest)
    ledger = session.usage
    if rest[:1] == ["reset"]:
        ledger.reset()
        _say("usage totals cleared")
        return
    if not len(ledger):
        _say("no replies yet (%chat usage --since 7d: what the log holds)")
        return
    from ._pricing import parse_prices

    # Prices set after a reply still price it: the ledger keeps the tokens of unpriced replies.
    _say(ledger.table(session.settings.currency, prices=parse_prices(session.settings.prices)))
    if not session.settings.prices:
        _say("(no prices set: %config ChatMagics.prices = {'gpt-4o-mini': {'input': 1.05, 'output': 4.2}})")


def _usage_since(magic: ChatMagics, rest: list[str]) -> None:
    from ._logview import usage_table
    from ._since import parse_since

    words = [w for w in rest if w != "--here"]
    if words[:1] != ["--since"] or len(words) != 2:
        raise UsageError("usage: %chat usage --since 7d|24h|today|yesterday|30d|2026-11-01 [--here]")
    try:
        since = parse_since(words[1])
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    session = magic.session
    store = _log_store(magic)
    if store is None:
        return
    notebook = session.notebook_id if "--here" in rest else None
    rows = _or_line(lambda: store.usage(since, notebook))
    if rows is None:
        return
    where = "this notebook" if notebook else "all notebooks"
    _say(f"since {since.strftime('%Y-%m-%d %H:%M')} ({where}):")
    _say(usage_table(rows, session.settings.currency))


# -- the log ---------------------------------------------------------------------------------------------


def _log_store(magic: ChatMagics) -> Any:
    """The session's log, or None after printing the one line that says why it cannot be used."""
    from ._store import StoreError

    try:
        return magic.session.journal.store()
    except StoreError as exc:
        _say(f"⚠ {exc}")
        return None


def _or_line(action: Callable[[], Any]) -> Any:
    from ._store import StoreError

    try:
        return action()
    except StoreError as exc:
        _say(f"⚠ {exc}")
        return None


def _shown_path(magic: ChatMagics) -> str:
    path = str(magic.session.journal.path)
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if home not in ("", "/") and path.startswith(home + os.sep) else path


@command(
    "log",
    "%chat log [N] [--all] [-o NAME] [WORDS]",
    "this notebook's last N (20) exchanges from the log, one line each;\n"
    "--all: every notebook's; WORDS: those containing them; -o: the records\n"
    "%chat log off / on: stop or resume writing the log",
)
def log_command(magic: ChatMagics, rest: list[str]) -> None:
    if rest in (["on"], ["off"]):
        magic.log = rest[0] == "on"
        if magic.log:
            magic.session.journal.retry()
            _say(f"logging on: exchanges go to {_shown_path(magic)}")
        else:
            _say("logging off: nothing more is written to the log (%chat log on to resume)")
        return
    limit, every, out = 20, False, None
    words: list[str] = []
    items = iter(rest)
    for word in items:
        if word == "--all":
            every = True
        elif word in ("-o", "--out"):
            out = next(items, None)
            if out is None or not out.isidentifier():
                raise UsageError(f"-o needs a Python name, not {out!r}")
        elif word.isdigit() and not words:
            limit = int(word)
        else:
            words.append(word)
    session = magic.synced_session()
    store = _log_store(magic)
    if store is None:
        return
    notebook = None if every else session.notebook_id
    records = _or_line(lambda: store.recent(notebook, limit, " ".join(words) or None))
    if records is None:
        return
    if out:
        magic.user_ns[out] = records
    if not records:
        what = "" if every else " of this notebook"
        found = f" containing {' '.join(words)!r}" if words else ""
        _say(f"the log holds no exchanges{what}{found} ({_shown_path(magic)})")
        return
    from ._logview import log_line

    currency = session.settings.currency
    _say("\n".join(log_line(r, currency=currency, notebook=every) for r in records))
    if not session.settings.log:
        _say("(logging is off: %chat log on)")


@command(
    "forget",
    "%chat forget [--all]",
    "delete this notebook's exchanges from the log (--all: every notebook's):\nthe text leaves the file",
)
def forget_command(magic: ChatMagics, rest: list[str]) -> None:
    if rest not in ([], ["--all"]):
        raise UsageError("usage: %chat forget [--all]")
    session = magic.synced_session()
    store = _log_store(magic)
    if store is None:
        return
    every = rest == ["--all"]
    done = _or_line(lambda: store.forget(None if every else session.notebook_id))
    if done is None:
        return
    what = "from every notebook" if every else "of this notebook"
    _say(
        f"forgot {_count(done.exchanges, 'exchange')} {what}"
        + ("" if done.exchanges else " (there were none)")
    )
    if not done.wiped:
        _say("(another kernel is reading the log: the text leaves the file when it lets go)")


@command(
    "resume",
    "%chat resume",
    "bring back this notebook's last conversation from the log (after a restart)",
)
def resume_command(magic: ChatMagics, rest: list[str]) -> None:
    if rest:
        raise UsageError("usage: %chat resume")
    session = magic.synced_session()
    from ._store import StoreError

    try:
        record = session.resume()
    except StoreError as exc:
        _say(f"⚠ {exc}")
        return
    if record is None:
        _say(f"nothing to resume: the log holds no conversation of this notebook ({session.notebook_id})")
        return
    sides = {name: turns for name, turns in record.branches.items() if name}
    if record.turns or not sides:
        _say(f"resumed {_count(len(record.turns), 'turn')} of this notebook's last conversation")
    if sides:
        shown = ", ".join(f"{name} {_count(len(turns), 'turn')}" for name, turns in sides.items())
        _say(f"resumed the comparison: {shown}")


@command(
    "cache",
    "%chat cache [on | off]",
    "answer a request the log has answered before from the log, sending\n"
    "nothing (a re-run needs no money and no key); %%chat --cache: one cell",
)
def cache_command(magic: ChatMagics, rest: list[str]) -> None:
    if rest in (["on"], ["off"]):
        magic.cache = rest[0] == "on"
    elif rest:
        raise UsageError("usage: %chat cache [on | off]")
    if magic.cache:
        _say("cache on: a request the log has answered before is answered from the log")
    else:
        _say("cache off: every request is sent (%chat cache on, or %%chat --cache for one cell)")


@command("jobs", "%chat jobs", "the background replies in flight (%%chat --bg)")
def jobs_command(magic: ChatMagics, rest: list[str]) -> None:
    from ._background import describe_jobs

    _say(describe_jobs(magic.session.jobs.in_flight()))


@command(
    "wait",
    "%chat wait",
    "wait until every background reply has ended; Ctrl-C stops them\n(their partial answers are kept)",
)
def wait_command(magic: ChatMagics, rest: list[str]) -> None:
    from ._session import ChatInterrupted

    jobs = magic.session.jobs.in_flight()
    if not jobs:
        _say("no background replies in flight")
        return
    try:
        waited = magic.session.wait()
    except KeyboardInterrupt:
        raise ChatInterrupted(
            f"stopped {_count(len(magic.session.jobs.in_flight()) or len(jobs), 'background reply')}: "
            "the partial answers are kept"
        ) from None
    _say(f"{_count(len(waited), 'background reply')} ended")


@command("stop", "%chat stop", "stop every background reply (their partial answers are kept)")
def stop_command(magic: ChatMagics, rest: list[str]) -> None:
    stopped = magic.session.jobs.stop_all("stopped (%chat stop): the partial answer is kept")
    _say(
        f"stopped {_count(len(stopped), 'background reply')}"
        if stopped
        else "no background replies in flight"
    )


@command("help", "%chat help", "this list")
def show_help(magic: ChatMagics, rest: list[str]) -> None:
    _say(help_text())
