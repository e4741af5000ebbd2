"""Memory that outlives the kernel: the Session writes the log, resume and replay read it back; the magic's
``%chat log/forget/resume/cache/usage --since`` in real processes, one kernel after another."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from IPython.core.error import UsageError

from shenma_magic import APIStatusError, ConnectionLostError, Session
from shenma_magic._exchange import ExchangeRecord, UsageRow
from shenma_magic._keys import KeyStore
from shenma_magic._logview import log_line, usage_table
from shenma_magic._pricing import _width
from shenma_magic._session import MissingKeyError
from shenma_magic._store import Store
from shenma_magic._tools import ToolRegistry
from tests.relay import Relay, Scripted, chat_chunk, sse, stream_of

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-MEMORYTESTkey0123456789abcdefQ7x"
PNG = (
    b"\x89PNG\r\n\x1a\n"
    + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    + b"PIXELS" * 50
)


def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log" / "log.sqlite3"


def make(relay: Relay, tmp_path: Path, **settings: Any) -> Session:
    chat = Session(
        base_url=settings.pop("base_url", relay.url),
        api_key=settings.pop("api_key", KEY),
        keys=KeyStore(tmp_path / "keys.json", environ={}),
        store=log_path(tmp_path),
        **settings,
    )
    chat.notebook = settings.pop("notebook", "/work/a.ipynb")
    return chat


def records(tmp_path: Path) -> list[ExchangeRecord]:
    with Store(log_path(tmp_path)) as store:
        return store.recent(None, limit=1000)


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


# -- what the Session writes -----------------------------------------------------------------------------


def test_every_exchange_is_logged_with_its_facts(relay: Relay, tmp_path: Path) -> None:
    chat = make(relay, tmp_path, prices={"gpt-4o-mini": {"input": 1.0, "output": 2.0}}, system="be brief")
    relay.enqueue(
        Scripted(
            chunks=stream_of(["鲁迅", "是", "周树人"], usage={"prompt_tokens": 12, "completion_tokens": 3})
        )
    )
    chat.ask("鲁迅是谁？")
    chat.ask("/reason why")
    relay.enqueue(Scripted.error(500, "upstream exploded"))
    with pytest.raises(APIStatusError):
        chat.ask("this fails")
    first, second, failed = records(tmp_path)
    assert first.notebook == "/work/a.ipynb" and first.host == "127.0.0.1" and first.model == "gpt-4o-mini"
    assert first.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "鲁迅是谁？"},
    ]
    assert first.reply == "鲁迅是周树人" and first.finish_reason == "stop" and first.complete
    assert first.usage == {"prompt_tokens": 12, "completion_tokens": 3}
    assert (first.prompt_tokens, first.completion_tokens, first.cost_estimated) == (12, 3, False)
    assert first.cost == pytest.approx((12 * 1.0 + 3 * 2.0) / 1e6) and first.currency == "¥"
    assert first.answer == "鲁迅是周树人" and first.turn == 0 and first.request_key
    assert second.reasoning and second.turn == 1 and second.conversation == first.conversation
    assert second.messages[-1] == {"role": "user", "content": "/reason why"}
    assert failed.error and "upstream exploded" in failed.error and failed.answer is None
    assert (failed.prompt_tokens, failed.completion_tokens, failed.cost) == (0, 0, None)  # nothing was paid
    assert datetime.now(timezone.utc) - failed.time < timedelta(minutes=1)


def test_log_off_writes_nothing(relay: Relay, tmp_path: Path) -> None:
    chat = make(relay, tmp_path, log=False)
    chat.ask("hello")
    assert not log_path(tmp_path).exists()
    chat.configure(log=True)
    chat.ask("again")
    assert [r.prompt for r in records(tmp_path)] == ["again"]


def test_the_default_file_is_under_xdg_data_home(
    relay: Relay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    Session(base_url=relay.url, keys=KeyStore(tmp_path / "k.json", environ={})).ask("hi")
    assert (tmp_path / "xdg" / "shenma-magic" / "log.sqlite3").exists()


def test_a_broken_log_is_one_line_and_the_chat_goes_on(relay: Relay, tmp_path: Path) -> None:
    path = log_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database, just some bytes" * 20)
    chat = make(relay, tmp_path)
    first = chat.ask("one")
    second = chat.ask("two")
    assert first == "echo: one" and second == "echo: two" and len(relay.chat_requests) == 2
    warnings = [n for n in first.notices if "chat log" in n]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "damaged" in warnings[0]
    assert not [n for n in second.notices if "chat log" in n]  # said once, then logging is off
    assert chat.journal.broken is not None


def test_the_log_holds_no_key(relay: Relay, tmp_path: Path) -> None:
    chat = make(relay, tmp_path)
    relay.enqueue(Scripted.error(401, f"无效的令牌 {KEY} (request id: 1)"))
    with pytest.raises(APIStatusError):
        chat.ask("hello")
    relay.enqueue(Scripted(chunks=stream_of([f"your key is {KEY}"])))
    chat.ask("what is my key?")
    assert len(records(tmp_path)) == 2
    blob = file_bytes(log_path(tmp_path))
    for i in range(len(KEY) - 9):
        assert KEY[i : i + 10].encode() not in blob


def test_tool_rounds_are_logged_and_resume_brings_back_exact_turns(relay: Relay, tmp_path: Path) -> None:
    registry = ToolRegistry()

    @registry.tool(trusted=True)
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"{city}: 晴"

    chat = make(relay, tmp_path, tools=registry)
    chat.ask("hello")
    chat.ask('/tool weather {"city": "北京"}')
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("cut sho", role="assistant"))], drop=True))
    with pytest.raises(ConnectionLostError):  # the connection drops mid-answer: a kept partial turn
        chat.ask("a long story")
    chat.ask("images", images=[PNG])
    logged = records(tmp_path)
    assert len(logged) == 5  # one exchange per request: the tool turn made two
    assert [r.turn for r in logged] == [0, 1, 1, 2, 3]
    assert logged[1].tool_calls and logged[1].answer is None and logged[2].answer is not None

    later = make(relay, tmp_path, tools=registry)
    resumed = later.resume()
    assert resumed is not None and len(resumed) == 4
    assert later.conversation.turns == chat.conversation.turns  # tool steps, the cut note, the image
    assert "[this answer is incomplete" in later.conversation.turns[2][-1]["content"]
    assert later.conversation_id == chat.conversation_id
    later.ask("and then?")
    sent = relay.chat_requests[-1].json["messages"]
    assert sent[:-1] == [m for turn in chat.conversation.turns for m in turn]
    with Store(log_path(tmp_path)) as store:
        assert (
            store._conn().execute("SELECT count(*) FROM images").fetchone()[0] == 1
        )  # sent twice, kept once
    again = make(relay, tmp_path).resume()
    assert again is not None and len(again) == 5  # the resumed conversation went on in the log


def test_resume_sees_only_this_notebook_and_the_last_conversation(relay: Relay, tmp_path: Path) -> None:
    a = make(relay, tmp_path)
    a.ask("old conversation")
    a.reset()
    a.ask("new conversation")
    other = make(relay, tmp_path)
    other.notebook = "/work/b.ipynb"
    assert other.resume() is None and other.conversation.turns == []
    back = make(relay, tmp_path)
    record = back.resume()
    assert record is not None and [t[0]["content"] for t in record.turns] == ["new conversation"]


def test_cache_answers_from_the_log_and_sends_nothing(relay: Relay, tmp_path: Path) -> None:
    first = make(relay, tmp_path, temperature=0.3)
    answers = [first.ask("one"), first.ask("two", max_tokens=50)]
    sent = len(relay.chat_requests)
    rerun = make(relay, tmp_path, temperature=0.3, cache=True)
    replayed = [rerun.ask("one"), rerun.ask("two", max_tokens=50)]
    assert len(relay.chat_requests) == sent
    assert replayed == answers and all(r.complete for r in replayed)
    assert all("replayed from the log" in r.notices for r in replayed)
    assert len(rerun.usage) == 0  # a replay costs nothing
    # Anything that changes the answer is a new request: it is sent.
    rerun.ask("two", max_tokens=51)
    assert len(relay.chat_requests) == sent + 1
    with Store(log_path(tmp_path)) as store:
        rows = store.usage(datetime.now(timezone.utc) - timedelta(hours=1))
    assert sum(r.replies for r in rows) == 3  # the replays are logged but not counted as spending
    assert sum(r.replayed for r in records(tmp_path)) == 2


def test_cache_needs_no_key_until_something_must_be_sent(relay: Relay, tmp_path: Path) -> None:
    make(relay, tmp_path).ask("reproduce me")
    keyless = make(relay, tmp_path, base_url="https://api.whatai.cc/v1", api_key=None, cache=True)
    assert keyless.ask("reproduce me") == "echo: reproduce me"
    with pytest.raises(MissingKeyError):
        keyless.ask("something new")


def test_a_failed_or_cut_reply_is_never_replayed(relay: Relay, tmp_path: Path) -> None:
    chat = make(relay, tmp_path)
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("par", role="assistant"))], drop=True))
    with pytest.raises(ConnectionLostError):
        chat.ask("flaky")
    sent = len(relay.chat_requests)
    again = make(relay, tmp_path, cache=True)
    assert again.ask("flaky") == "echo: flaky"
    assert len(relay.chat_requests) == sent + 1


# -- text views ------------------------------------------------------------------------------------------


def record(**fields: Any) -> ExchangeRecord:
    base: dict[str, Any] = {
        "id": 7,
        "time": datetime(2026, 11, 2, 6, 3, tzinfo=timezone.utc),
        "notebook": "/work/analysis.ipynb",
        "host": "api.whatai.cc",
        "model": "gpt-4o-mini",
        "requested_model": "gpt-4o-mini",
        "messages": [],
        "prompt": "line one\nline two " + "长" * 80,
        "reply": "the answer",
        "reasoning": "",
        "tool_calls": [],
        "finish_reason": "stop",
        "usage": None,
        "prompt_tokens": 12,
        "completion_tokens": 34,
        "cost": 0.0004,
        "cost_estimated": False,
        "currency": "¥",
        "error": None,
        "complete": True,
        "request_key": "k",
        "conversation": "c",
        "branch": "",
        "turn": 0,
        "answer": "the answer",
        "replayed": False,
    }
    base.update(fields)
    return ExchangeRecord(**base)


def test_log_line_is_one_line_with_the_facts() -> None:
    line = log_line(record(), notebook=True)
    assert "\n" not in line and line.startswith("#7  ")
    assert "analysis.ipynb" in line and "gpt-4o-mini" in line and "12→34 tok" in line and "¥0.0004" in line
    assert "line one line two" in line and "…" in line and "→ the answer" in line
    assert "analysis.ipynb" not in log_line(record())
    estimated = log_line(record(cost_estimated=True, replayed=True, error="HTTP 500 boom\nmore"))
    assert "~12→~34 tok" in estimated and "replayed" in estimated and "⚠ HTTP 500 boom more" in estimated
    assert "¥" not in estimated  # a replay cost nothing
    assert "[2 tool calls]" in log_line(record(reply="", tool_calls=[{}, {}]))
    assert f"sk-…{KEY[-4:]}" in log_line(record(reply=f"key {KEY}")) and KEY not in log_line(
        record(reply=KEY)
    )


def test_usage_table_sums_and_marks() -> None:
    from datetime import date

    rows = [
        UsageRow(date(2026, 11, 1), "gpt-4o-mini", 1000, 200, 0.5, False, 3),
        UsageRow(date(2026, 11, 2), "gpt-4o-mini", 10, 20, 0.25, True, 1),
        UsageRow(date(2026, 11, 2), "深度求索-r1", 5, 5, None, False, 2, unpriced=2),
        UsageRow(date(2026, 11, 2), "mixed", 1, 1, 1.0, False, 2, unpriced=1),
    ]
    table = usage_table(rows)
    lines = table.splitlines()
    body = [line for line in lines if not line.startswith(("~", "?"))]
    assert len({_width(line) for line in body if not line.startswith("-")}) == 1  # aligned, CJK included
    total = next(line for line in lines if line.startswith("total"))
    assert re.search(r"\b8\s+1,016\s+226\s+≥ ~¥1\.75$", total), total
    assert "~¥0.25" in table and any(line.endswith("?") for line in lines if "深度求索" in line)
    assert any("~ estimated" in line for line in lines) and any("? no price" in line for line in lines)
    by_model = [line for line in lines if "gpt-4o-mini" in line and not line.startswith("2026")]
    assert by_model and re.search(r"\b4\s+1,010\s+220\s+~¥0\.75$", by_model[0])
    assert usage_table([]) == "no replies in the log for that time"


# -- the magic, in real processes, one kernel after another ----------------------------------------------

KERNEL = textwrap.dedent(
    """
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "shenma_magic")
    steps, dump = json.loads(sys.argv[1]), sys.argv[2]
    for kind, line, body in steps:
        print(f">>> {kind} {line}", flush=True)
        if kind == "cell":
            ip.run_cell_magic("chat", line, body)
        else:
            result = ip.run_line_magic("chat", line)
    magic = ip.magics_manager.registry["ChatMagics"]
    with open(dump, "w", encoding="utf-8") as fh:
        json.dump(magic.session.conversation.turns, fh, ensure_ascii=False)
    """
)


def kernel(
    tmp_path: Path, notebook: str, steps: list[tuple[str, str, str]], relay: Relay, **env: str
) -> tuple[str, list[Any]]:
    """Run one 'kernel': a fresh Python process with an IPython shell, as jupyter-server starts it for a
    notebook (JPY_SESSION_NAME), the magic loaded, and ``steps`` run; its output and conversation."""
    dump = tmp_path / f"turns-{len(list(tmp_path.glob('turns-*')))}.json"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHENMA_", "OPENAI_"))}
    full = {
        **base,
        "PYTHONPATH": str(ROOT),
        "JPY_SESSION_NAME": notebook,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "SHENMA_BASE_URL": relay.url,
        "SHENMA_API_KEY": KEY,
        **env,
    }
    for name in [k for k, v in full.items() if v == ""]:
        del full[name]
    done = subprocess.run(
        [sys.executable, "-c", KERNEL, json.dumps(steps), str(dump)],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done.stdout, json.loads(dump.read_text(encoding="utf-8"))


CELLS = [("cell", "", "周树人和鲁迅是兄弟吗？"), ("cell", "-t 0.2", "那周作人呢？ {{braces}}")]


def test_two_kernels_in_sequence(relay: Relay, tmp_path: Path) -> None:
    notebook = str(tmp_path / "work" / "a.ipynb")
    out, turns = kernel(tmp_path, notebook, CELLS, relay)
    assert len(turns) == 2 and turns[1][-1]["content"] == "echo: 那周作人呢？ {braces}"

    # A new kernel for the same notebook: resume brings back exactly those turns, and they are sent on.
    out, resumed = kernel(tmp_path, notebook, [("line", "resume", ""), ("cell", "", "再说一次")], relay)
    assert "resumed 2 turns" in out
    assert resumed[:2] == turns
    assert relay.chat_requests[-1].json["messages"][:-1] == [m for t in turns for m in t]

    # Another notebook's kernel sees none of it.
    out, none = kernel(
        tmp_path, str(tmp_path / "work" / "b.ipynb"), [("line", "resume", ""), ("line", "log", "")], relay
    )
    assert "nothing to resume" in out and "holds no exchanges of this notebook" in out and none == []

    # The log lists this notebook's exchanges, across both kernels; search finds one.
    out, _ = kernel(tmp_path, notebook, [("line", "log", ""), ("line", "log 鲁迅", "")], relay)
    listing = out.split(">>> line log 鲁迅")
    assert len(re.findall(r"^#\d+ ", listing[0], re.M)) == 3
    assert len(re.findall(r"^#\d+ ", listing[1], re.M)) == 1

    # Replay: the same cells in a new kernel with the cache on send nothing, and need no key.
    sent = len(relay.chat_requests)
    out, replayed = kernel(
        tmp_path,
        notebook,
        [("line", "cache on", ""), *CELLS],
        relay,
        SHENMA_BASE_URL="https://api.whatai.cc/v1",
        SHENMA_API_KEY="",
    )
    assert len(relay.chat_requests) == sent
    assert out.count("replayed from the log") == 2 and replayed == turns

    # Spend across processes: three paid replies in two kernels; the replays are not spending.
    out, _ = kernel(tmp_path, notebook, [("line", "usage --since today", "")], relay)
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert re.search(r"^total\s+3\s", total), out

    # forget: this notebook's exchanges leave the file; the other notebook's would stay.
    out, _ = kernel(tmp_path, notebook, [("line", "forget", ""), ("line", "resume", "")], relay)
    assert "forgot 5 exchanges of this notebook" in out and "nothing to resume" in out
    assert "周作人".encode() not in file_bytes(tmp_path / "data" / "shenma-magic" / "log.sqlite3")


def test_log_off_and_cache_per_cell_in_a_kernel(relay: Relay, tmp_path: Path) -> None:
    notebook = str(tmp_path / "c.ipynb")
    out, _ = kernel(
        tmp_path,
        notebook,
        [
            ("line", "log off", ""),
            ("cell", "", "not logged"),
            ("line", "log on", ""),
            ("cell", "--new", "logged"),
            ("cell", "--new --cache", "logged"),
            ("line", "log -o records", ""),
            ("line", "", ""),
        ],
        relay,
    )
    assert "logging off" in out and "logging on" in out
    assert out.count("replayed from the log") == 1
    db = sqlite3.connect(tmp_path / "data" / "shenma-magic" / "log.sqlite3")
    prompts = [row[0] for row in db.execute("SELECT prompt FROM exchanges ORDER BY id")]
    assert prompts == ["logged", "logged"]
    assert re.search(r"^log\s+on \(", out, re.M) and re.search(r"^cache\s+off", out, re.M)


def test_bad_log_commands_are_one_line(chat_shell: Callable[..., InteractiveShell]) -> None:
    ip = chat_shell(KEY)
    for line in ("usage --since soon", "usage --since", "forget --everything", "cache maybe", "log -o 1x"):
        with pytest.raises(UsageError) as caught:
            ip.run_line_magic("chat", line)
        assert "\n" not in str(caught.value)


def test_ask_can_use_the_cache_for_one_call(relay: Relay, tmp_path: Path) -> None:
    make(relay, tmp_path).ask("once")
    sent = len(relay.chat_requests)
    chat = make(relay, tmp_path)
    assert "replayed from the log" in chat.ask("once", cache=True).notices
    assert len(relay.chat_requests) == sent
    chat.reset()
    chat.ask("once")  # the setting is off: sent
    assert len(relay.chat_requests) == sent + 1


@pytest.mark.slow
def test_nbconvert_execute_reproduces_a_notebook_from_the_log(relay: Relay, tmp_path: Path) -> None:
    """Run All in a real Jupyter kernel, twice: the second run, with the cache on, no key and the default
    relay, shows the same answers and sends nothing."""
    import nbformat
    from nbclient import NotebookClient

    sources = ["%load_ext shenma_magic\n%chat cache on", "%%chat\n周树人是谁？", "%%chat -t 0\n他的弟弟呢？"]

    def run(**env: str) -> Any:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
        old = dict(os.environ)
        os.environ.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), "IPYTHONDIR": str(tmp_path / "ip")})
        for name in (
            "SHENMA_API_KEY",
            "SHENMA_BASE_URL",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "SHENMA_MODEL",
        ):
            os.environ.pop(name, None)
        os.environ.update(env)
        try:
            NotebookClient(
                nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
            ).execute()
        finally:
            os.environ.clear()
            os.environ.update(old)
        return nb

    def answers(nb: Any) -> list[str]:
        return [
            o["data"]["text/plain"]
            for c in nb.cells[1:]
            for o in c.outputs
            if o.output_type in ("display_data", "execute_result")
        ]

    first = run(SHENMA_BASE_URL=relay.url, SHENMA_API_KEY=KEY)
    sent = len(relay.chat_requests)
    assert sent == 2
    second = run(SHENMA_BASE_URL="https://api.whatai.cc/v1")
    assert len(relay.chat_requests) == sent
    assert answers(second) == answers(first) and len(answers(first)) == 2
    shown = json.dumps([c.outputs for c in second.cells], ensure_ascii=False)
    assert shown.count("replayed from the log") >= 2 and "error" not in [
        o.output_type for c in second.cells for o in c.outputs
    ]
