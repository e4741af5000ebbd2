"""The key never leaks: run every path with a canary key and look for it everywhere it could end up.

Where we look: stdout and stderr (at the file-descriptor level too), rich display data (the live
MarkdownView updates and the final bundles, through the display publisher), every ``repr`` a user can
print, the user namespace (``In``, ``_i*``, ``Out``), IPython's on-disk history database, every
``logging`` record (urllib3 logs each request at DEBUG), and a notebook executed by nbclient and saved
as JSON. The mask ``sk-…XYZW`` may appear; the key may not.

The relay checks that the canary really was in play: it receives ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

from shenma_magic import Reply
from tests._util import CHAT_ENV_VARS, chunk, clients_of, ending, history, run_notebook, stream_around
from tests.relay import Relay, Scripted, sse, stream_of

KEY = "sk-LEAKCANARY0123456789abcdefXYZW"
MASK = "sk-…XYZW"
HTML_401 = f"<html><head><title>401 token {KEY} rejected</title></head><body>{KEY}</body></html>".encode()


# ----------------------------------------------------------------------------- fixtures


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # the message, its args and any exception text
        self.lines.append(repr(record.__dict__))


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture
def hist_file(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite"


@pytest.fixture
def shell(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hist_file: Path
) -> Iterator[InteractiveShell]:
    """A fresh InteractiveShell with its history on disk, made the singleton so ``display()`` (which
    publishes through ``InteractiveShell.instance()``) and ``capture_output`` go through it."""
    for var in CHAT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("SHENMA_BASE_URL", relay.url)
    monkeypatch.setenv("SHENMA_API_KEY", KEY)
    config = Config()
    config.HistoryManager.hist_file = str(hist_file)
    old = InteractiveShell._instance if InteractiveShell.initialized() else None
    main_module = sys.modules.get("__main__")
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance(config=config)
    try:
        assert Path(history(sh).hist_file) == hist_file
        sh.run_line_magic("load_ext", "shenma_magic")
        yield sh
    finally:
        import atexit

        sh.run_line_magic("unload_ext", "shenma_magic")
        sh.atexit_operations()  # ends the history session, stops its thread, closes the database
        atexit.unregister(sh.atexit_operations)
        InteractiveShell.clear_instance()
        InteractiveShell._instance = old
        if main_module is not None:
            sys.modules["__main__"] = main_module


# ----------------------------------------------------------------------------- the scan


def scripted_paths(relay: Relay) -> list[tuple[str, list[Scripted]]]:
    """(cell, responses to queue first): every path a key could travel through, normal and failing."""
    echo_401 = Scripted.error(401, f"无效的令牌 Bearer {KEY} (request id: 20250101-abc)")
    return [
        ("%chat", []),
        ("%chat models", []),
        ("%config ChatMagics", []),
        ("%%chat -o r\nhello", []),
        ("%chat history", []),
        ("%chat last", []),
        ("r", []),
        ("print(repr(r), str(r), r.error, r.notices, r.usage, vars(r))", []),
        ("_m = get_ipython().magics_manager.registry['ChatMagics']\n_m", []),
        ("from tests._util import clients_of\n_m.session.keys, clients_of(get_ipython())", []),
        ("_m.session.keys.resolve(_m.session.base_url)", []),
        # The Authorization header is set at send time; even the prepared request shows only the mask.
        (
            "import requests as _rq\nfrom tests._util import clients_of\n_c = clients_of(get_ipython())[0]\n"
            "_c, vars(_c), _c._auth, _c._auth(_rq.Request('POST', _c.base_url).prepare()).headers",
            [],
        ),
        ("%chat help", []),
        # -- a server that echoes the key back
        ("%%chat -o r\nq401", [echo_401]),
        (
            "%%chat -o r\nq401html",
            [Scripted(status=401, headers={"Content-Type": "text/html"}, chunks=[HTML_401])],
        ),
        ("%chat models", [Scripted.error(401, f"invalid key {KEY}", path="/v1/models")]),
        (
            "%config ChatMagics.max_retries = 1\n",
            [],
        ),
        (
            "%%chat -o r\nretried",
            [Scripted.error(503, f"key {KEY} overloaded", headers={"Retry-After": "0"})],
        ),
        ("%config ChatMagics.max_retries = 0\n", []),
        (
            "%%chat -o r\nmid-stream error",
            [
                Scripted(
                    chunks=[
                        chunk("partial ", role="assistant"),
                        sse({"error": {"message": f"invalid key {KEY}", "type": "auth_error"}}),
                    ]
                )
            ],
        ),
        (
            "%%chat -o r\nerror event",
            [
                Scripted(
                    chunks=[
                        chunk("partial ", role="assistant"),
                        f"event: error\ndata: token {KEY}\n\n".encode(),
                    ]
                )
            ],
        ),
        (
            "%%chat -o r\nplain text event",
            [
                Scripted(
                    chunks=stream_around(
                        "partial ", f"data: error: invalid api key {KEY}\n\n".encode(), "end"
                    )
                )
            ],
        ),
        (
            "%%chat -o r\nmalformed event",
            [
                Scripted(
                    chunks=stream_around("partial ", f'data: {{"error": "bad key {KEY}\n\n'.encode(), "end")
                )
            ],
        ),
        # -- transport failures
        ("%%chat -o r\ndropped", [Scripted(chunks=[chunk("half", role="assistant")], drop=True)]),
        ("%%chat -o r --timeout 0.3\nstalled", [Scripted(chunks=[chunk("slow", role="assistant"), 3.0])]),
        ("%%chat -o r\ntruncated", [Scripted(chunks=stream_of(["cut"], finish_reason=None, done=False))]),
        (
            "%%chat -o r\nhtml",
            [Scripted(headers={"Content-Type": "text/html"}, chunks=[b"<html>home</html>"])],
        ),
        ("%%chat -o r\nbig", [Scripted(chunks=stream_of(["z" * 100_000]))]),
        # -- keys typed where they do not belong
        (f"%%chat --key {KEY}\nhello", []),
        (f"%%chat -m {KEY}\nhello", []),
        (f"%chat key {KEY}", []),
        (f"%chat model {KEY}", []),
        # -- the key entered the right way (the hidden prompt is answered by the test)
        ("%chat key", []),
        ("%chat", []),
        ("%%chat -o r\nwith the entered key", []),
        # -- rich display: the live Markdown view and the final bundles through the display publisher
        ("%chat display markdown", []),
        ("%%chat -o r\nmarkdown", [Scripted(chunks=stream_of(["# Title\n\n", "some **bold**"], delay=0.1))]),
        ("%%chat -o r\nmarkdown 401", [echo_401]),
        (
            "%%chat -o r\nmarkdown mid-stream error",
            [
                Scripted(
                    chunks=[
                        chunk("partial ", role="assistant"),
                        sse({"error": {"message": f"invalid key {KEY}", "type": "auth_error"}}),
                    ]
                )
            ],
        ),
        ("%chat display text", []),
        # -- hosts the key must not go to, and one it may go to but cannot be reached
        ("%chat base_url http://nonexistent.invalid/v1", []),
        ("%%chat\nno key for this host", []),
        ("%chat key", []),  # now a key for nonexistent.invalid: plain http is refused
        ("%%chat\nrefused over http", []),
        ("%chat base_url https://nonexistent.invalid/v1", []),
        ("%chat key", []),
        ("%%chat -o r\ncannot resolve", []),
        (f"%chat base_url {relay.url}", []),
        ("%chat key --forget", []),
    ]


def scan(text: str, where: str) -> None:
    assert KEY not in text, f"the key leaked into {where}: ...{_around(text)}..."


def _around(text: str) -> str:
    i = text.find(KEY)
    return text[max(0, i - 200) : i + len(KEY) + 50]


def test_the_key_never_leaks_from_a_shell(
    shell: InteractiveShell,
    relay: Relay,
    records: Records,
    hist_file: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shenma_magic._magic as magic_module

    monkeypatch.setattr(magic_module, "_ask_secret", lambda prompt: KEY)  # the hidden prompt's answer
    leaks: list[str] = []
    with capture_output() as captured:
        for cell, responses in scripted_paths(relay):
            relay.enqueue(*responses)
            shell.run_cell(cell, store_history=True)
    texts = {
        "stdout": captured.stdout,
        "stderr": captured.stderr,
        "display data": json.dumps([o.data for o in captured.outputs], ensure_ascii=False, default=repr)
        + json.dumps([o.metadata for o in captured.outputs], ensure_ascii=False, default=repr),
    }
    fd = capfd.readouterr()
    texts["fd stdout"], texts["fd stderr"] = fd.out, fd.err

    # The canary was in play: it reached the relay, the paths ran, and the mask was shown.
    assert relay.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert relay.pending == []
    assert MASK in captured.stdout
    assert "HTTP 401" in captured.stdout and "invalid key" in captured.stdout
    assert "cannot resolve host nonexistent.invalid" in captured.stdout
    assert any("text/markdown" in o.data for o in captured.outputs)  # the markdown run was published
    assert "Traceback" not in captured.stdout + captured.stderr

    # Every repr a user may print.
    magics = shell.magics_manager.registry["ChatMagics"]
    reprs = [repr(magics), str(magics), repr(magics.session.keys), repr(magics.last)]
    reprs.append(repr(shell.user_ns["r"]))
    for client in clients_of(shell):
        reprs += [repr(client), str(client), repr(vars(client))]
    reprs.append(repr(Reply("x", error=f"{MASK}")))
    texts["reprs"] = "\n".join(reprs)

    # The user namespace: In, _ih, _i*, Out, r, every string in it.
    ns_strings = [v for v in shell.user_ns.values() if isinstance(v, str)]
    ns_strings += [repr(shell.user_ns.get("In")), repr(shell.user_ns.get("Out"))]
    texts["user namespace"] = "\n".join(ns_strings)
    hm = history(shell)
    texts["history in memory"] = "\n".join(hm.input_hist_raw + hm.input_hist_parsed) + repr(hm.output_hist)

    # The history database on disk.
    hm.writeout_cache()
    with sqlite3.connect(hist_file) as db:
        rows = db.execute("SELECT source, source_raw FROM history").fetchall()
        outputs = db.execute("SELECT output FROM output_history").fetchall()
    assert any("%chat models" in raw for _, raw in rows)  # it is the database these cells went to
    assert any("--key sk-…XYZW" in raw for _, raw in rows)  # the pasted key was masked, the line kept
    texts["history database"] = json.dumps(rows + outputs, ensure_ascii=False)
    texts["history database bytes"] = hist_file.read_bytes().decode("utf-8", "replace")

    # Logging: urllib3 logs every request at DEBUG.
    assert any("urllib3" in line and "/v1/chat/completions" in line for line in records.lines)
    texts["logging"] = "\n".join(records.lines)

    for where, text in texts.items():
        if KEY in text:
            leaks.append(f"{where}: ...{_around(text)}...")
    assert leaks == [], "\n\n".join(leaks)


def test_a_key_pasted_into_config_is_refused_and_scrubbed(
    shell: InteractiveShell, hist_file: Path, records: Records, capfd: pytest.CaptureFixture[str]
) -> None:
    """``%config ChatMagics.model = 'sk-...'`` is refused by the trait validator like ``%chat model``;
    the key must then leave the history too, as it does for ``%chat`` and ``%%chat`` lines."""
    magics = shell.magics_manager.registry["ChatMagics"]
    for name in ("model", "base_url", "system"):
        with capture_output() as captured:
            shell.run_cell(f"%config ChatMagics.{name} = '{KEY}'", store_history=True)
        assert getattr(magics, name) == ""  # refused
        shown = captured.stdout + captured.stderr + "\n".join(records.lines)
        assert "looks like an API key" in shown and "Traceback" not in shown
        scan(shown, f"the output of %config ChatMagics.{name}")
    hm = history(shell)
    scan("\n".join(hm.input_hist_raw + hm.input_hist_parsed), "the history in memory")
    scan(repr([v for v in shell.user_ns.values() if isinstance(v, (str, list))]), "the user namespace")
    hm.writeout_cache()
    with sqlite3.connect(hist_file) as db:
        rows = db.execute("SELECT source, source_raw FROM history").fetchall()
    assert any("%config ChatMagics.model" in raw for _, raw in rows)
    scan(json.dumps(rows, ensure_ascii=False), "the history database")
    scan(capfd.readouterr().out, "stdout")


def _in_stream(payload: bytes) -> Scripted:
    return Scripted(chunks=[chunk("partial ", role="assistant"), payload, chunk("end"), *ending()])


@pytest.mark.parametrize(
    ("scripted", "partial"),
    [
        pytest.param(
            _in_stream(sse({"error": {"message": f"invalid key {KEY}"}})), "partial ", id="error-object"
        ),
        pytest.param(
            _in_stream(f"event: error\ndata: token {KEY} expired\n\n".encode()), "partial ", id="event-error"
        ),
        pytest.param(
            _in_stream(f"data: error: invalid api key {KEY}\n\n".encode()), "partial end", id="text-event"
        ),
        pytest.param(
            _in_stream(f'data: {{"error": "bad key {KEY}\n\n'.encode()), "partial end", id="malformed-event"
        ),
        pytest.param(
            Scripted.json_body({"error": {"message": f"invalid key {KEY}"}}), "", id="json-200-error"
        ),
    ],
)
def test_a_key_echoed_inside_a_200_answer_is_masked(
    shell: InteractiveShell, relay: Relay, capfd: pytest.CaptureFixture[str], scripted: Scripted, partial: str
) -> None:
    """The same check as the scan, one path at a time, so a failure names the path: the server echoes
    the key in an error (or a garbled event) after answering 200."""
    relay.enqueue(scripted)
    with capture_output() as captured:
        shell.run_cell("%%chat -o r\nq")
    r = shell.user_ns["r"]
    seen = {
        "stdout": captured.stdout + capfd.readouterr().out,
        "r.error": str(r.error),
        "r.notices": repr(r.notices),
        "repr(r)": repr(r),
    }
    leaked = [where for where, text in seen.items() if KEY in text]
    assert leaked == [], {where: _around(seen[where]) for where in leaked}
    assert r == partial
    assert MASK in seen["stdout"]  # the message is still shown, with the key masked
    assert relay.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


# ----------------------------------------------------------------------------- a saved notebook


def _apply_frontend_payloads(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
    """What JupyterLab does with ``set_next_input(text, replace=True)``: replace the cell's text.
    nbclient ignores payloads, so this stands in for the frontend."""
    for payload in execute_reply.get("content", {}).get("payload", []):
        if payload.get("source") == "set_next_input" and payload.get("replace"):
            cell.source = payload["text"]


@pytest.mark.slow
def test_the_key_never_leaks_into_a_saved_notebook(relay: Relay, tmp_path: Path) -> None:
    import nbformat

    cells = [
        "%load_ext shenma_magic",
        "%%chat -o r\nhello",
        f"%%chat --key {KEY}\nhello",  # pasted into an option: refused, and the frontend cell is cleaned
        f"%chat key {KEY}",
        "%chat",
        "%chat models",
        "%chat history",
        "r, repr(get_ipython().magics_manager.registry['ChatMagics'])",
        "%%chat -o r\nthis gets a 401 that echoes the key",
        "%%chat -o r\nthis breaks mid-stream",
        "%%chat -o r\nthis gets an error event",
        "%chat display markdown",
        "%%chat -o r\nmarkdown 401",
        "%%chat -o r\nmarkdown works",
        "print(r, r.error, r.notices)",
    ]
    relay.enqueue(
        Scripted.error(401, f"无效的令牌 {KEY}"),
        Scripted(chunks=[chunk("half", role="assistant")], drop=True),
        Scripted(chunks=[chunk("partial ", role="assistant"), sse({"error": {"message": f"bad key {KEY}"}})]),
        Scripted.error(401, f"无效的令牌 {KEY}"),
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    env = {
        "SHENMA_BASE_URL": relay.url,
        "SHENMA_API_KEY": KEY,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    run_notebook(nb, env=env, cwd=tmp_path, allow_errors=True, on_cell_executed=_apply_frontend_payloads)

    assert relay.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert relay.pending == []
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells], ensure_ascii=False)
    scan(outputs, "the cells' outputs")
    scan(json.dumps(nb.metadata, ensure_ascii=False), "the notebook metadata (widget state)")
    saved = json.dumps(nb, ensure_ascii=False)
    scan(saved, "the saved notebook")
    assert MASK in saved  # the mask is what the user sees instead
    assert "无效的令牌" in outputs and "HTTP 401" in outputs
    assert re.search(r"looks like an API key", outputs)
    # The kernel's own history database.
    for db_path in (tmp_path / "ipython").rglob("history.sqlite"):
        scan(db_path.read_bytes().decode("utf-8", "replace"), f"the kernel's history ({db_path.name})")


# ----------------------------------------------------------------------------- invisible characters

# Characters a screen draws as nothing. A model echoing the key with them inside shows the key whole
# (and a copy of the text holds it, with them), so every output must mask it as if they were not there.
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


def _interleaved(key: str, char: str, every: int) -> str:
    return "".join(c + char if i % every == every - 1 else c for i, c in enumerate(key))


def _as_read(text: str) -> str:
    """``text`` as a reader sees it: character references resolved, zero-width characters gone."""
    text = html.unescape(text)
    return "".join(c for c in text if c not in ZERO_WIDTH)


@pytest.mark.parametrize("char", ZERO_WIDTH, ids=[f"U+{ord(c):04X}" for c in ZERO_WIDTH])
@pytest.mark.parametrize("display", ["text", "markdown"])
def test_a_key_echoed_with_zero_width_characters_is_masked_everywhere(
    shell: InteractiveShell, relay: Relay, capfd: pytest.CaptureFixture[str], char: str, display: str
) -> None:
    echoed = _interleaved(KEY, char, 3)
    pieces = ["Your key is ", echoed[:7], echoed[7:19], echoed[19:], " — keep it safe."]
    relay.enqueue(Scripted(chunks=stream_of(pieces, reasoning=["It is ", echoed[:11], echoed[11:]])))
    with capture_output() as captured:
        shell.run_cell(f"%chat display {display}")
        shell.run_cell("%%chat -o r\nwhat is my key?")
        shell.run_cell("%chat history")
        shell.run_cell("%chat last")
    r = shell.user_ns["r"]
    magics = shell.magics_manager.registry["ChatMagics"]
    log = "".join(
        path.read_bytes().decode("utf-8", "replace")
        for path in Path(os.environ["XDG_DATA_HOME"]).rglob("*")
        if path.is_file()
    )
    seen = {
        "stdout": captured.stdout + capfd.readouterr().out,
        "display data (live and final)": json.dumps(
            [o.data for o in captured.outputs], ensure_ascii=False, default=repr
        ),
        "the reply": f"{r} {r.reasoning} {r!r}",
        "the conversation": json.dumps(magics.session.history, ensure_ascii=False, default=repr),
        "the chat log": log,
    }
    leaked = {where: text for where, text in seen.items() if re.search(_runs_of(KEY), _as_read(text))}
    assert leaked == {}, list(leaked)
    assert "keep it safe" in str(r) and MASK in str(r)  # the answer is kept, the key masked in it
    assert "keep it safe" in log  # the log was written (and scanned)


def _runs_of(key: str, run: int = 10) -> str:
    return "|".join(re.escape(key[i : i + run]) for i in range(len(key) - run + 1))
