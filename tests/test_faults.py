"""Failures lose nothing: fault injection through ``%%chat -o r`` cells in a real InteractiveShell.

Every fault runs the same story (:func:`run_story`): a good turn, the faulty cell, then another cell.
Whatever broke, the user sees one clear ``⚠`` line (never a traceback), keeps the partial answer (on
stdout, in ``r``, and in the conversation sent with the next request), the shell goes on working, and
the next request's messages strictly alternate user/assistant with no dangling or duplicated turn.

Faults come from our relay (exact bytes, RST vs FIN, invalid UTF-8, huge events) and from llmock's
stream faults (an independent server). The load tests check memory stays flat and the connection is
reused across many cells.
"""

from __future__ import annotations

import gc
import re
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from IPython.core.interactiveshell import InteractiveShell

from shenma_magic import Reply
from tests._util import chunk, clients_of, ending, stream_around
from tests.conftest import LLMockProcess
from tests.relay import Relay, Scripted, stream_of

KEY = "sk-FAULTKEY0123456789abcdefQRST"
# No backoff waits unless a test asks for retries. (%config, not `%chat max_retries 0`: see
# test_chat_line_sets_every_numeric_setting.)
IP_MAX_RETRIES = 0
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
FIRST, FAULTY, NEXT = "first question", "the faulty question", "next question"
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def warnings_in(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("⚠")]


def run_shown(ip: InteractiveShell, cell: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    """Run ``cell``: it succeeds with no traceback (a server failure is shown, not raised). What it printed,
    and its ``⚠`` lines."""
    result = ip.run_cell(cell)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (out[-3000:], err[-3000:])
    assert result.success, result.error_in_exec
    return out, warnings_in(out)


def assert_alternates(messages: list[dict[str, Any]]) -> None:
    roles = [m["role"] for m in messages if m["role"] != "system"]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"], roles


# --------------------------------------------------------------------------- the story


@dataclass
class Fault:
    id: str
    script: Callable[[Any], None]  # given the relay or llmock: queue the fault
    partial: str  # what the user keeps ("" when the failure came before any text)
    error: Optional[str]  # regex for the one ⚠ line; None: no error, the reply just is not complete
    complete: bool
    notice: Optional[str] = None  # regex for a [notice] line the reply must show
    options: str = ""
    settings: list[str] = field(default_factory=list)  # %config lines run before the faulty cell
    after: Optional[Callable[[Any], None]] = None  # undo the fault before the next cell
    requests: Optional[int] = None  # chat requests the faulty cell must make (retries)


def _before_any_text(id: str, script: Callable[[Any], None], error: str, **options: Any) -> Fault:
    """A fault that fails the reply before any text (an error answer, no connection): nothing is kept,
    the reply is not complete, and one ⚠ line matches ``error``."""
    return Fault(id, script, "", error, complete=False, **options)


def run_story(
    ip: InteractiveShell,
    fault: Fault,
    server: Any,
    capsys: pytest.CaptureFixture[str],
    sent: Callable[[], list[dict[str, Any]]],
    count: Callable[[], int],
) -> Reply:
    ip.run_cell_magic("chat", "-o r0", FIRST)
    first = ip.user_ns["r0"]
    assert first and first.complete, repr(first)
    for setting in fault.settings:
        ip.run_line_magic("config", setting)
    fault.script(server)
    before = count()
    capsys.readouterr()

    out, shown = run_shown(ip, f"%%chat -o r {fault.options}\n{FAULTY}", capsys)
    r = ip.user_ns["r"]
    assert isinstance(r, Reply)
    assert r == fault.partial, (len(r), r[:200])
    assert r.complete is fault.complete, repr(r)[:500]
    if fault.error is None:
        assert r.error is None and shown == [], shown
    else:
        assert len(shown) == 1, shown  # one clear message...
        assert re.search(fault.error, shown[0]), shown[0]
        assert re.search(fault.error, r.error or ""), r.error
        assert "\n" not in (r.error or "")  # ...on one line
    if fault.notice is not None:
        assert re.search(fault.notice, out), out[-2000:]
        assert any(re.search(fault.notice, n) for n in r.notices), r.notices
    if fault.partial:  # the partial answer was shown (notices get lines of their own)
        assert fault.partial in re.sub(r"\n?\[[^\n]*\]\n", "", out)
    # The status line is always there, and says when the answer is not whole.
    statuses = [line for line in out.splitlines() if line.startswith("[gpt-4o-mini")]
    assert len(statuses) == 1, out[-2000:]
    if not fault.complete:
        assert "failed" in statuses[0] or "incomplete" in statuses[0], statuses
    if fault.requests is not None:
        assert count() - before == fault.requests
    if fault.after is not None:
        fault.after(server)

    # The shell is still usable, and the conversation carries exactly what the user saw.
    ip.run_cell_magic("chat", "-o r2", NEXT)
    assert ip.user_ns["r2"].complete, repr(ip.user_ns["r2"])
    messages = sent()
    expected = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": str(first)}]
    if fault.partial and not fault.complete:
        # A kept partial answer tells the model it is partial (a trailing marker): not taken as whole.
        kept = messages[3]["content"]
        assert kept.startswith(fault.partial) and "[this answer is incomplete: " in kept[len(fault.partial) :]
        messages[3] = {"role": "assistant", "content": fault.partial}
    if fault.partial:
        expected += [{"role": "user", "content": FAULTY}, {"role": "assistant", "content": fault.partial}]
    expected.append({"role": "user", "content": NEXT})
    assert messages == expected
    assert_alternates(messages)
    return r


# --------------------------------------------------------------------------- relay faults

BROKE = r"connection to 127\.0\.0\.1 broke mid-reply — the partial answer is kept"
SILENT = r"127\.0\.0\.1 went silent for more than 0\.5 s"
NO_FINISH = r"the stream ended before \[DONE\] without a finish reason"
MILLION = "x" * 1_000_000
TEN_MB = "y" * 10_000_000
MALFORMED_EVENT = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"lo\n\n'  # cut off: not JSON
INVALID_UTF8_EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"bad\xff\xfe\xc3 bytes "}}]}\n\n'


def _serve(**scripted: Any) -> Callable[[Relay], None]:
    """The fault: the relay answers the faulty question with ``Scripted(**scripted)``."""
    return lambda relay: relay.enqueue(Scripted(**scripted))


def _serve_error(status: int, message: str, **options: Any) -> Callable[[Relay], None]:
    """The fault: the relay answers the faulty question with an HTTP error (``Scripted.error``)."""
    return lambda relay: relay.enqueue(Scripted.error(status, message, **options))


def _retried_once(id: str, script: Callable[[Any], None], notice: str) -> Fault:
    """A passing failure, retried once (``max_retries = 1``): the retry gets the whole echo, and a notice
    matching ``notice`` says it was retried."""
    settings = ["ChatMagics.max_retries = 1"]
    return Fault(
        id, script, "echo: " + FAULTY, None, complete=True, notice=notice, settings=settings, requests=2
    )


def _stop(relay: Relay) -> None:
    relay.stop()


def _start(relay: Relay) -> None:
    relay.start()


RELAY_FAULTS = [
    Fault(
        "rst-mid-stream",
        _serve(chunks=[chunk("half an ", role="assistant"), chunk("answer")], drop=True),
        "half an answer",
        BROKE,
        complete=False,
    ),
    Fault(
        "fin-mid-stream",
        _serve(chunks=[chunk("half an ", role="assistant"), chunk("answer")], drop=True, drop_mode="fin"),
        "half an answer",
        BROKE,
        complete=False,
    ),
    Fault(
        "fin-mid-event",  # the connection closes in the middle of an event: its half is not text
        _serve(
            chunks=[chunk("kept ", role="assistant"), chunk("lost")[:30]],
            framing="close",
            drop=True,
            drop_mode="fin",
        ),
        "kept ",
        None,
        complete=False,
        notice=NO_FINISH,
    ),
    Fault(
        "stall-past-read-timeout",
        _serve(chunks=[chunk("slow ", role="assistant"), 5.0, chunk("never"), *ending()]),
        "slow ",
        SILENT + r" — the partial answer is kept",
        complete=False,
        options="--timeout 0.5",
    ),
    Fault(
        "truncated-no-finish-reason",
        _serve(chunks=stream_of(["cut ", "short"], finish_reason=None, done=False)),
        "cut short",
        None,
        complete=False,
        notice=NO_FINISH,
    ),
    Fault(
        "done-without-finish-reason",
        _serve(chunks=stream_of(["cut ", "short"], finish_reason=None)),
        "cut short",
        None,
        complete=False,
        notice=r"the stream ended after \[DONE\] without a finish reason",
    ),
    Fault(
        "malformed-json-event",
        _serve(chunks=stream_around("good ", MALFORMED_EVENT, "end")),
        "good end",
        None,
        complete=False,  # a skipped malformed event is lossy: part of the answer ("lo") is missing
        notice=r"skipped a malformed event",
    ),
    Fault(
        "invalid-utf8",
        _serve(chunks=stream_around("ok ", INVALID_UTF8_EVENT, "end")),
        "ok bad\ufffd\ufffd\ufffd bytes end",
        None,
        complete=True,
    ),
    Fault("one-megabyte-event", _serve(chunks=stream_of([MILLION])), MILLION, None, complete=True),
    Fault(
        "ten-megabyte-line",
        _serve(chunks=stream_of(["start ", TEN_MB, " end"])),
        "start " + TEN_MB + " end",
        None,
        complete=True,
    ),
    _before_any_text(
        "html-instead-of-stream",
        _serve(headers={"Content-Type": "text/html"}, chunks=[b"<!doctype html><title>Home</title>"]),
        r"127\.0\.0\.1 answered an HTML page instead of a chat stream — check the base URL",
    ),
    _before_any_text(
        "connection-refused",
        _stop,
        r"connection refused by 127\.0\.0\.1 — is the server running",
        after=_start,
        requests=0,
    ),
    _before_any_text(
        "401",
        _serve_error(401, "无效的令牌", type_="new_api_error"),
        r"HTTP 401 Unauthorized: 无效的令牌 — check the API key \(令牌\) in \$SHENMA_API_KEY, "
        r"or enter another with %chat key",
        requests=1,
    ),
    _before_any_text(
        "403",
        _serve_error(403, "该令牌无权访问模型 o1"),
        r"HTTP 403 Forbidden: 该令牌无权访问模型 o1 — this key or its group",
        requests=1,
    ),
    _before_any_text(
        "429-no-retry-after",
        _serve_error(429, "slow down", type_="rate_limit_error"),
        r"HTTP 429 Too Many Requests: slow down — rate limit or quota",
        requests=1,
    ),
    _before_any_text(
        "429-retry-after",
        _serve_error(429, "slow down", headers={"Retry-After": "1"}),
        r"HTTP 429 Too Many Requests: slow down — .*the server asks to retry after 1 s",
        requests=1,
    ),
    _retried_once(
        "429-no-retry-after-then-retried",
        _serve_error(429, "slow down"),
        # the server's message is not repeated in retry notices, only in a final error
        r"HTTP 429 from 127\.0\.0\.1: retrying in 0\.5 s \(1/1\)",
    ),
    _retried_once(
        "429-retry-after-then-retried",
        _serve_error(429, "slow down", headers={"Retry-After": "1"}),
        r"retrying in 1\.0 s \(1/1\)",
    ),
    _before_any_text(
        "500",
        _serve_error(500, "upstream exploded", type_="server_error"),
        r"HTTP 500 Internal Server Error: upstream exploded — the server failed",
    ),
    _before_any_text(
        "502-html",
        _serve(status=502, headers={"Content-Type": "text/html"}, chunks=[HTML_502], framing="length"),
        r"HTTP 502 Bad Gateway: HTML error page from a gateway: 502 Bad Gateway — the gateway",
    ),
    _before_any_text(
        "503",
        _serve_error(503, "overloaded", headers={"Retry-After": "1"}),
        r"HTTP 503 Service Unavailable: overloaded — .*retry after 1 s",
    ),
    _before_any_text(
        "503-no-channel-not-retried",
        _serve_error(503, "当前分组 default 下对于模型 gpt-4o-mini 无可用渠道"),
        r"HTTP 503 Service Unavailable: 当前分组 default 下对于模型 gpt-4o-mini 无可用渠道 — no channel",
        settings=["ChatMagics.max_retries = 2"],
        requests=1,
    ),
    _before_any_text(
        "504",
        _serve_error(504, "Gateway timeout."),
        r"HTTP 504 Gateway Timeout: Gateway timeout\. — the gateway timed out",
    ),
]


@pytest.mark.parametrize("fault", RELAY_FAULTS, ids=[f.id for f in RELAY_FAULTS])
def test_relay_fault_loses_nothing(
    ip: InteractiveShell, relay: Relay, capsys: pytest.CaptureFixture[str], fault: Fault
) -> None:
    def sent() -> list[dict[str, Any]]:
        return list(relay.chat_requests[-1].json["messages"])

    run_story(ip, fault, relay, capsys, sent, lambda: len(relay.chat_requests))
    assert relay.pending == []  # every scripted answer was used


# --------------------------------------------------------------------------- llmock faults

WORDS = "alpha beta gamma delta"


def _reply_then(kind: str, **params: Any) -> Callable[[LLMockProcess], None]:
    def script(llmock: LLMockProcess) -> None:
        llmock.reply(WORDS)
        llmock.scenario(kind, **params)

    return script


def _fail(status: int, **params: Any) -> Callable[[LLMockProcess], None]:
    def script(llmock: LLMockProcess) -> None:
        llmock.reply(WORDS)  # used by the retry, if there is one
        llmock.add({"type": "fail", "status": status, "match": {"path": "/v1/chat/completions"}, **params})

    return script


# after_chunks counts the role chunk as event 0: 3 events are the role, "alpha " and "beta ".
LLMOCK_FAULTS = [
    Fault("disconnect", _reply_then("disconnect", after_chunks=3), "alpha beta ", BROKE, complete=False),
    Fault(
        "truncate",
        _reply_then("truncate", after_chunks=3),
        "alpha beta ",
        None,
        complete=False,
        notice=NO_FINISH,
    ),
    Fault(
        "truncate-before-text",
        _reply_then("truncate", after_chunks=1),
        "",
        None,
        complete=False,
        notice=NO_FINISH,
    ),
    Fault(
        "malformed",
        _reply_then("malformed", after_chunks=2),
        "alpha gamma delta",
        None,
        complete=False,  # lossy: "beta" was in the malformed event
        notice="skipped a malformed event",
    ),
    Fault(
        "stall",
        _reply_then("stall", after_chunks=2, stall_seconds=3),
        "alpha ",
        SILENT,
        complete=False,
        options="--timeout 0.5",
    ),
    _before_any_text(
        "delay-before-headers",
        _reply_then("delay", seconds=1.5),
        r"127\.0\.0\.1 sent no reply within 0\.5 s",
        options="--timeout 0.5",
    ),
    _before_any_text("fail-500", _fail(500), r"HTTP 500 Internal Server Error"),
    Fault(
        "fail-429-retried",
        _fail(429, retry_after=0.2),
        WORDS,
        None,
        complete=True,
        settings=["ChatMagics.max_retries = 1"],
        # Retry-After is rounded up to whole seconds
        notice=r"HTTP 429 from 127\.0\.0\.1: retrying in 1\.0 s \(1/1\)",
        requests=2,
    ),
]


@pytest.mark.parametrize("fault", LLMOCK_FAULTS, ids=[f.id for f in LLMOCK_FAULTS])
def test_llmock_fault_loses_nothing(
    ip: InteractiveShell,
    llmock: LLMockProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fault: Fault,
) -> None:
    monkeypatch.setenv("SHENMA_BASE_URL", llmock.url)

    def chats() -> list[dict[str, Any]]:
        return [j for j in llmock.journal() if j["path"] == "/v1/chat/completions"]

    def sent() -> list[dict[str, Any]]:
        # The journal is llmock's, in its own order: take the request that asked the NEXT question.
        asked = [c for c in chats() if c["body"]["messages"][-1]["content"] == NEXT]
        assert len(asked) == 1, chats()
        return list(asked[0]["body"]["messages"])

    run_story(ip, fault, llmock, capsys, sent, lambda: len(chats()))
    assert llmock.pending() == []


# --------------------------------------------------------------------------- bad input and hosts


@pytest.mark.parametrize(("name", "value"), [("max_retries", 0), ("update_interval", 0.25)])
def test_chat_line_sets_every_numeric_setting(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], name: str, value: Any
) -> None:
    # `%chat help` lists max_retries and update_interval as settable like the others.
    ip.run_line_magic("chat", f"{name} {value}")
    assert getattr(ip.magics_manager.registry["ChatMagics"], name) == value
    assert capsys.readouterr().out == f"{name} = {value!r}\n"


def one_line_usage_error(ip: InteractiveShell, cell: str, capsys: pytest.CaptureFixture[str]) -> str:
    result = ip.run_cell(cell)
    out, err = capsys.readouterr()
    text = (out + err).strip()
    assert not result.success
    assert "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    assert text.startswith("UsageError: ")
    return text


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (404, "The model `gpt-9` does not exist or you do not have access to it.", "model_not_found"),
        (400, "invalid model: gpt-9", None),
        (503, "当前分组 default 下对于模型 gpt-9 无可用渠道", None),
    ],
)
def test_unknown_model_from_a_4xx_is_one_line(
    ip: InteractiveShell,
    relay: Relay,
    capsys: pytest.CaptureFixture[str],
    status: int,
    message: str,
    code: Optional[str],
) -> None:
    # Retries allowed, yet none made: the model will not appear by waiting.
    ip.run_line_magic("config", "ChatMagics.max_retries = 2")
    relay.enqueue(Scripted.error(status, message, code=code))
    _, shown = run_shown(ip, "%%chat -m gpt-9 -o r\nhi", capsys)
    assert len(shown) == 1 and "gpt-9" in shown[0] and f"HTTP {status}" in shown[0], shown
    assert "-m" in shown[0] or "model" in shown[0].split("—", 1)[1]  # the hint says what to change
    assert len(relay.chat_requests) == 1 and relay.chat_requests[0].json["model"] == "gpt-9"
    assert ip.user_ns["r"] == "" and ip.user_ns["r"].complete is False
    ip.run_cell_magic("chat", "", "again")  # nothing dangling: the failed question was not recorded
    assert relay.chat_requests[-1].json["messages"] == [{"role": "user", "content": "again"}]


def test_unresolvable_host_without_key_is_one_line(
    ip: InteractiveShell, relay: Relay, capsys: pytest.CaptureFixture[str]
) -> None:
    # The environment key belongs to SHENMA_BASE_URL's host (the relay), so it is not offered here.
    ip.run_line_magic("chat", "base_url http://nonexistent.invalid/v1")
    capsys.readouterr()
    text = one_line_usage_error(ip, "%%chat\nhi", capsys)
    assert "no API key for nonexistent.invalid" in text and "%chat key" in text
    ip.run_line_magic("chat", f"base_url {relay.url}")
    ip.run_cell_magic("chat", "-o r", "still works")
    assert ip.user_ns["r"] == "echo: still works"


def test_unresolvable_host_with_key_over_http_is_refused_before_sending(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHENMA_BASE_URL", "http://nonexistent.invalid/v1")  # the env key now belongs there
    text = one_line_usage_error(ip, "%%chat\nhi", capsys)
    assert "refusing to send the API key over plain http:// to nonexistent.invalid" in text


def test_unresolvable_host_over_https_is_one_clear_message(
    ip: InteractiveShell, relay: Relay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SHENMA_BASE_URL", "https://nonexistent.invalid/v1")
    out, shown = run_shown(ip, "%%chat -o r\nhi", capsys)
    assert len(shown) == 1 and "cannot resolve host nonexistent.invalid (DNS)" in shown[0], out
    r = ip.user_ns["r"]
    assert r == "" and r.complete is False
    monkeypatch.setenv("SHENMA_BASE_URL", relay.url)
    ip.run_cell_magic("chat", "", "back")
    assert relay.chat_requests[-1].json["messages"] == [{"role": "user", "content": "back"}]


# --------------------------------------------------------------------------- under load


def _traced_total(snapshot: tracemalloc.Snapshot) -> int:
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_twenty_cells_in_a_row_flat_memory_one_connection(
    ip: InteractiveShell, relay: Relay, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("chat", "max_history 0")  # send everything: the conversation is what grows
    pad = "lorem ipsum " * 100  # ~1.2 KB per question, echoed back: the text the conversation keeps
    per_turn_text = 2 * len(pad) + 64

    def ask(i: int) -> None:
        ip.run_cell_magic("chat", "-o r", f"question {i:02d} {pad}")
        assert ip.user_ns["r"].complete
        relay.clear()  # the relay's own records would otherwise grow in this process
        capsys.readouterr()

    tracemalloc.start(1)
    try:
        for i in range(5):  # warm-up: imports, the session, the pool, caches
            ask(i)
        gc.collect()
        before = _traced_total(tracemalloc.take_snapshot())
        for i in range(5, 20):
            ask(i)
        gc.collect()
        after = _traced_total(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    per_call = (after - before) / 15
    assert per_call <= per_turn_text + 4096, f"{per_call:.0f} bytes per call for {per_turn_text} of text"
    assert relay.connections == 1  # one keep-alive connection for all twenty cells
    magics = ip.magics_manager.registry["ChatMagics"]
    assert len(magics.session.conversation) == 20 and len(clients_of(ip)) == 1


@pytest.mark.slow
def test_hundred_thousand_deltas_flat_memory(
    ip: InteractiveShell, relay: Relay, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell_magic("chat", "-o r", "warm up")
    pieces = [f"{i % 10}," for i in range(100_000)]
    text = "".join(pieces)
    events = stream_of(pieces)
    body = b"".join(e for e in events if isinstance(e, bytes))  # ~18 MB of SSE
    raw_size = len(body)
    size = 1 << 20  # written as 1 MB network chunks, each carrying thousands of events
    relay.enqueue(Scripted(chunks=[body[i : i + size] for i in range(0, len(body), size)]))
    del events, body
    capsys.readouterr()
    gc.collect()
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        ip.run_cell_magic("chat", "-o r", "count to a hundred thousand")
        _, peak = tracemalloc.get_traced_memory()
        r = ip.user_ns["r"]
        out = capsys.readouterr().out
        assert r == text and r.complete and out.startswith(text)
        del out  # the captured stdout is pytest's memory, not the package's
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # Kept: the Reply bound to r (and magics.last, the same object) and the conversation's copy.
    assert grown <= 2 * len(text) + 64 * 1024, f"{grown} bytes kept for {len(text)} chars of answer"
    # While streaming, the raw stream is never buffered, nor a delta object kept per event (either
    # would be 10 MB or more). The builder's list of 100,000 small str is ~6 MB of this peak.
    assert peak <= raw_size // 2, f"peak {peak} bytes for {raw_size} bytes of stream"
    assert relay.connections == 1
    ip.run_cell_magic("chat", "", "after")
    messages = relay.chat_requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[3]["content"] == text
