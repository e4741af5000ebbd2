"""Several models at once (``%%chat -m a,b,c``, ``Session.compare``) against the local relay.

The relay serves a script per model (``Scripted(model=...)``), so models of different speeds and failing
models answer whatever order their concurrent requests arrive in.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from shenma_magic import ChatInterrupted, ConfigError, Reply, Session, TextDelta
from shenma_magic._columns import ColumnsTextView, columns_bundle, grid_columns, printable
from shenma_magic._compare import Lane, LaneResult, Pacer, run_lanes
from shenma_magic._keys import KeyStore
from shenma_magic._models import Delta, FinishDelta
from tests._util import approx
from tests.relay import HOSTILE_SAMPLE, Relay, Scripted, chat_chunk, sse, stream_of

KEY = "sk-COMPAREKEY0123456789abcdefXYZ4d2c"


@pytest.fixture
def session(relay: Relay, tmp_path: Path) -> Session:
    return Session(
        base_url=relay.url, api_key=KEY, keys=KeyStore(tmp_path / "keys.json", environ={}), max_retries=0
    )


@pytest.fixture
def ip(chat_shell: Callable[..., InteractiveShell]) -> InteractiveShell:
    return chat_shell(KEY, max_retries=0)


def paced(model: str, words: Sequence[str], seconds: float) -> Scripted:
    """A whole answer from ``model`` spread over about ``seconds``."""
    events = stream_of(list(words), model=model, usage={"prompt_tokens": 3, "completion_tokens": len(words)})
    gap = seconds / max(len(events) - 1, 1)
    chunks: list[Any] = []
    for i, event in enumerate(events):
        chunks.extend([gap, event] if i else [event])
    return Scripted(chunks=chunks, model=model)


def for_model(scripted: Scripted, model: str) -> Scripted:
    scripted.model = model
    return scripted


def sent(relay: Relay, model: str, i: int = -1) -> list[tuple[str, Any]]:
    bodies = [r.json for r in relay.chat_requests if r.json["model"] == model]
    return [(m["role"], m["content"]) for m in bodies[i]["messages"]]


# --------------------------------------------------------------------------- concurrency


def test_models_stream_at_once_total_time_is_the_slowest(session: Session, relay: Relay) -> None:
    speeds = {"fast": 0.3, "medium": 0.8, "slow": 1.5}
    for model, seconds in speeds.items():
        relay.enqueue(paced(model, [f"{model}-1 ", f"{model}-2"], seconds))
    start = time.monotonic()
    replies = session.compare("谁更快？", list(speeds))
    wall = time.monotonic() - start
    assert list(replies) == list(speeds)  # in the order given
    for model in speeds:
        assert replies[model] == f"{model}-1 {model}-2" and replies[model].complete
    assert wall < speeds["slow"] + 0.8, wall  # about the slowest, nowhere near the sum (2.6 s)
    arrived = [r.at for r in relay.chat_requests]
    assert max(arrived) - min(arrived) < 0.3  # the requests went out together, not one after another


def test_one_shared_client_serves_concurrent_streams_on_separate_connections(
    session: Session, relay: Relay
) -> None:
    models = [f"m{i}" for i in range(4)]
    for round_ in range(2):
        for model in models:
            relay.enqueue(paced(model, [f"{model}/{round_} ", "done"], 0.4))
        replies = session.compare("q", models, new=True)
        assert {m: str(r) for m, r in replies.items()} == {m: f"{m}/{round_} done" for m in models}
    first = {r.connection for r in relay.chat_requests[:4]}
    assert len(first) == 4  # each stream had its own connection...
    assert relay.connections == 4  # ...and the second comparison reused them
    assert len(session._clients) == 1  # one client for the host


def test_on_delta_sees_every_piece_tagged_with_its_model(session: Session, relay: Relay) -> None:
    relay.enqueue(paced("a", ["鲁", "迅"], 0.2), paced("b", ["周", "树", "人"], 0.3))
    seen: dict[str, list[str]] = {}
    threads: set[int] = set()

    def on_delta(model: str, delta: Delta) -> None:
        threads.add(threading.get_ident())
        if isinstance(delta, TextDelta):
            seen.setdefault(model, []).append(delta.text)

    session.compare("q", ["a", "b"], on_delta=on_delta)
    assert seen == {"a": ["鲁", "迅"], "b": ["周", "树", "人"]}
    assert threads == {threading.get_ident()}  # callbacks run in the caller's thread


# --------------------------------------------------------------------------- failures per column


def _fail_503(model: str) -> Scripted:
    return for_model(Scripted.error(503, "upstream busy", type_="server_error"), model)


def _fail_drop(model: str) -> Scripted:
    return Scripted(chunks=[sse(chat_chunk("half an ", model=model)), 0.1], drop=True, model=model)


def _fail_silent(model: str) -> Scripted:
    return Scripted(chunks=[sse(chat_chunk("then ", model=model)), 5.0], model=model)


def _fail_html(model: str) -> Scripted:
    return Scripted(chunks=[b"<html><body>502 Bad Gateway</body></html>"], framing="length", model=model)


def _fail_garbage(model: str) -> Scripted:
    return Scripted(status=500, chunks=[b"\xff\xfe not json"], framing="length", model=model)


FAILURES: dict[str, tuple[Callable[[str], Scripted], str, str]] = {
    # kind: (script, text kept, words in the error)
    "503": (_fail_503, "", "503"),
    "dropped stream": (_fail_drop, "half an ", "connection"),
    "timeout": (_fail_silent, "then ", "silent"),
    "html page": (_fail_html, "", "HTML"),
    "garbage 500": (_fail_garbage, "", "500"),
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_failure_stays_in_its_column(session: Session, relay: Relay, kind: str) -> None:
    script, kept, words = FAILURES[kind]
    relay.enqueue(paced("good", ["still ", "streaming"], 1.2), script("bad"), paced("quick", ["ok"], 0.1))
    replies = session.compare("q", ["good", "bad", "quick"], timeout=0.6)
    bad = replies["bad"]
    assert bad == kept and bad.complete is False and words.lower() in (bad.error or "").lower()
    assert replies["good"] == "still streaming" and replies["good"].complete and replies["good"].error is None
    assert replies["quick"] == "ok" and replies["quick"].complete
    # The failed model's partial text (if any) is kept in its branch, marked; a failure without text is not.
    branch = session.branches.branch("bad").turns
    assert (
        branch[0][-1]["content"].startswith(kept + "\n\n[this answer is incomplete") if kept else branch == []
    )


def test_every_model_failing_still_returns_every_reply(session: Session, relay: Relay) -> None:
    relay.enqueue(_fail_503("a"), _fail_html("b"))
    replies = session.compare("q", ["a", "b"])
    assert all(r.error for r in replies.values()) and not session.branches.branch("a").turns


# --------------------------------------------------------------------------- branches


def test_follow_ups_continue_each_models_own_branch(session: Session, relay: Relay) -> None:
    session.ask("trunk question", model="a")  # a turn before the comparison: every branch shares it
    relay.enqueue(paced("a", ["A says hi"], 0.1), paced("b", ["B says hi"], 0.2))
    session.compare("first", ["a", "b"])
    session.compare("second")  # no models: the comparison continues, each with its own answers
    trunk = [("user", "trunk question"), ("assistant", "echo: trunk question")]
    assert sent(relay, "a") == [*trunk, ("user", "first"), ("assistant", "A says hi"), ("user", "second")]
    assert sent(relay, "b") == [*trunk, ("user", "first"), ("assistant", "B says hi"), ("user", "second")]
    assert session.history == [{"role": r, "content": c} for r, c in trunk]  # the trunk is untouched
    assert session.branches.models == ["a", "b"]

    session.ask("b, go on", model="b")  # one model: b's answer is the assistant turn, not a's
    assert sent(relay, "b") == [
        *trunk,
        ("user", "first"),
        ("assistant", "B says hi"),
        ("user", "second"),
        ("assistant", "echo: second"),
        ("user", "b, go on"),
    ]
    assert not session.branches  # b's branch became the conversation
    session.ask("and then", model="a")  # later single turns carry b's line, whatever the model
    assert ("assistant", "B says hi") in sent(relay, "a") and ("assistant", "A says hi") not in sent(
        relay, "a"
    )


def test_a_model_outside_the_branches_is_refused_before_sending(session: Session, relay: Relay) -> None:
    session.compare("q", ["a", "b"])
    count = len(relay.chat_requests)
    with pytest.raises(ConfigError, match="took no part"):
        session.ask("hello", model="c")
    with pytest.raises(ConfigError, match="took no part"):
        session.compare("hello", ["a", "c"])
    with pytest.raises(ConfigError, match="took no part"):
        session.ask("hello")  # the default model has no branch either
    assert len(relay.chat_requests) == count and session.branches.models == ["a", "b"]
    session.compare("only a now", ["a"])  # a subset continues; the others drop out
    assert session.branches.models == ["a"]
    session.compare("fresh", ["c", "d"], new=True)  # new: forgets the trunk and every branch
    assert sent(relay, "c") == [("user", "fresh")] and session.branches.models == ["c", "d"]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["a", "a"], "named twice"),
        (["a", ""], "empty model name"),
        (["a", "b c"], "without spaces"),
        ([], "needs"),
    ],
)
def test_bad_model_lists_send_nothing(
    session: Session, relay: Relay, models: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        session.compare("q", models)
    assert relay.chat_requests == []


def test_usage_and_cost_are_charged_per_model(session: Session, relay: Relay) -> None:
    session.configure(prices={"a": {"input": 1.0, "output": 2.0}, "b": {"per_call": 0.5}})
    relay.enqueue(
        Scripted(chunks=stream_of(["x"], usage={"prompt_tokens": 1000, "completion_tokens": 500}), model="a"),
        Scripted(chunks=stream_of(["y"], usage={"prompt_tokens": 7, "completion_tokens": 3}), model="b"),
        _fail_503("c"),
    )
    session.compare("q", ["a", "b", "c"])
    rows = {row[0]: row for row in session.usage.rows()}
    assert set(rows) == {"a", "b"}  # c produced nothing and is not charged
    assert rows["a"][1:5] == (1, 1000, 500, approx(0.002))
    assert rows["b"][1:5] == (1, 7, 3, approx(0.5))


# --------------------------------------------------------------------------- the magic


def test_cell_with_several_models_prints_each_answer_under_its_name(
    ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    relay.enqueue(paced("slow-model", ["慢慢来"], 0.6), paced("fast-model", ["**fast**"], 0.1))
    ip.run_cell_magic("chat", "-m slow-model,fast-model -o r", "q")
    out = capsys.readouterr().out
    r = ip.user_ns["r"]
    assert list(r) == ["slow-model", "fast-model"] and all(isinstance(v, Reply) for v in r.values())
    assert r["slow-model"] == "慢慢来" and r["fast-model"] == "**fast**"
    # Each answer in full under its name as it finishes: the fast one first.
    assert out.index("── fast-model ──\n**fast**\n[fast-model · first token") < out.index(
        "── slow-model ──\n慢慢来"
    )
    assert ip.run_line_magic("chat", "last") == r


def test_plain_cell_continues_the_comparison_and_history_shows_branches(
    ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    ip.run_cell_magic("chat", "-m a,b", "one")
    ip.run_cell_magic("chat", "-o r", "two")  # plain: both models again, each with its branch
    assert set(ip.user_ns["r"]) == {"a", "b"}
    assert sent(relay, "a") == [("user", "one"), ("assistant", "echo: one"), ("user", "two")]
    capsys.readouterr()
    ip.run_line_magic("chat", "history")
    out = capsys.readouterr().out
    assert "── branch a ──" in out and "── branch b ──" in out and out.count("assistant: echo: two") == 2
    with pytest.raises(UsageError, match=r"took no part.*-m NAME.*--new"):
        ip.run_cell_magic("chat", "-m zzz", "three")
    ip.run_cell_magic("chat", "-m b", "three")  # picks b; from now on plain cells are single again
    ip.run_cell_magic("chat", "-o single", "four")
    assert isinstance(ip.user_ns["single"], Reply)
    assert sent(relay, "gpt-4o-mini")[-3:] == [
        ("user", "three"),
        ("assistant", "echo: three"),
        ("user", "four"),
    ]
    ip.run_cell_magic("chat", "--new -o fresh", "five")
    assert sent(relay, "gpt-4o-mini") == [("user", "five")]


@pytest.mark.parametrize(
    ("line", "message"), [("-m a,a", "named twice"), ("-m a,", "empty"), ("-m ,", "empty")]
)
def test_bad_model_lists_in_a_cell_are_one_usage_error(
    ip: InteractiveShell, relay: Relay, line: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("chat", line, "q")
    assert relay.chat_requests == []


def test_ctrl_c_stops_every_stream_and_keeps_every_partial_answer(ip: InteractiveShell, relay: Relay) -> None:
    for model in ("a", "b", "c"):
        relay.enqueue(Scripted(chunks=[sse(chat_chunk(f"{model} partial ", model=model)), 30.0], model=model))

    def interrupt() -> None:
        relay.wait(lambda: len(relay.chat_requests) == 3, timeout=5)
        time.sleep(0.6)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    start = time.monotonic()
    result = ip.run_cell("%%chat -m a,b,c -o r\nlong question")
    assert time.monotonic() - start < 5
    assert not result.success  # "Run All" stops here
    r = ip.user_ns["r"]
    for model in ("a", "b", "c"):
        assert r[model] == f"{model} partial " and r[model].complete is False
        assert "interrupted" in (r[model].error or "")
    # Every HTTP response was closed at once (the scripted sleep would hold it for 30 s).
    assert relay.wait(lambda: all(q.outcome == "client_closed" for q in relay.chat_requests), timeout=2)
    ip.run_cell_magic("chat", "", "next")  # the partial answers were kept, each in its branch
    assert sent(relay, "b")[-2:] == [
        ("assistant", "b partial \n\n[this answer is incomplete: the user interrupted it]"),
        ("user", "next"),
    ]


def test_ctrl_c_from_python_raises_with_the_partial_replies(session: Session, relay: Relay) -> None:
    relay.enqueue(
        Scripted(chunks=[sse(chat_chunk("x ", model="x")), 30.0], model="x"),
        paced("y", ["done"], 0.1),
    )

    def interrupt() -> None:
        relay.wait(lambda: len(relay.chat_requests) == 2, timeout=5)
        time.sleep(0.6)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(ChatInterrupted) as caught:
        session.compare("q", ["x", "y"])
    replies = caught.value.replies
    assert replies["x"] == "x " and "interrupted" in (replies["x"].error or "")
    assert replies["y"] == "done" and replies["y"].complete  # it had finished: not marked interrupted


# --------------------------------------------------------------------------- the lanes and the pacer


class RecordingView:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str, int]] = []
        self.texts: dict[int, list[str]] = {}
        self.closed: list[LaneResult] = []

    def on_delta(self, index: int, delta: Delta) -> None:
        if isinstance(delta, TextDelta):
            self.texts.setdefault(index, []).append(delta.text)

    def refresh(self, index: int, status: str) -> int:
        assert not any(kind == "finish" and i == index for _, kind, i in self.calls), "refresh after finish"
        self.calls.append((time.monotonic(), "refresh", index))
        return 1

    def finish(self, index: int, reply: Reply, status: str) -> int:
        self.calls.append((time.monotonic(), "finish", index))
        return 1

    def close(self, results: Sequence[LaneResult]) -> None:
        self.closed = list(results)


def _ticking(pieces: int, gap: float) -> Callable[[], Iterator[Delta]]:
    def stream() -> Iterator[Delta]:
        for i in range(pieces):
            time.sleep(gap)
            yield TextDelta(f"{i} ")
        yield FinishDelta("stop")

    return stream


def test_lanes_refresh_at_most_twenty_times_a_second_in_total() -> None:
    view = RecordingView()
    lanes = [Lane(f"m{i}", _ticking(400, 0.003)) for i in range(4)]  # ~330 deltas/s each, 1.2 s
    results, interrupted = run_lanes(lanes, view, interval=0.02)
    assert not interrupted and [r.model for r in results] == ["m0", "m1", "m2", "m3"]
    assert all(r.reply.complete and r.reply == "".join(f"{i} " for i in range(400)) for r in results)
    refreshes = [t for t, _, _ in view.calls]
    start = refreshes[0]
    per_second = [
        sum(1 for t in refreshes if k <= t - start < k + 1) for k in range(int(refreshes[-1] - start) + 1)
    ]
    assert max(per_second) <= 20, per_second  # refreshes and finishes together
    assert len({i for _, kind, i in view.calls if kind == "refresh"}) == 4  # every column got its turn
    assert sorted(i for _, kind, i in view.calls if kind == "finish") == [0, 1, 2, 3]  # once each
    assert view.closed == results


def test_a_lane_that_raises_a_bug_ends_as_a_failed_column() -> None:
    def broken() -> Iterator[Delta]:
        yield TextDelta("before ")
        raise RuntimeError("boom")

    results, _ = run_lanes([Lane("ok", _ticking(3, 0.01)), Lane("bug", broken)], RecordingView())
    assert results[0].reply.complete
    assert results[1].reply == "before " and "boom" in (results[1].reply.error or "")


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.lists(st.tuples(st.floats(0.0, 0.05), st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=300),
)
def test_pacer_bounds_the_rate_and_each_columns_interval(
    columns: int, steps: list[tuple[float, int, int]]
) -> None:
    rate, interval = 20.0, 0.075
    pacer = Pacer(columns, interval=interval, rate=rate)
    now = 0.0
    sends: list[tuple[float, int, int]] = []
    for advance, column, messages in steps:
        now += advance
        pacer.mark(column % columns, f"status {now}")
        due = pacer.due(now)
        if due is not None:
            pacer.sent(due[0], now, messages)
            sends.append((now, due[0], messages))
    for t, _, _ in sends:  # messages started in any 1-s window: the rate, plus the last send's own
        assert sum(m for s, _, m in sends if t <= s < t + 1.0) <= rate + 3
    for column in range(columns):
        times = [t for t, c, _ in sends if c == column]
        assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(times))


# --------------------------------------------------------------------------- what is shown and saved


def test_the_final_output_has_every_answer_as_html_markdown_and_text() -> None:
    results = [
        ("gpt-4o-mini", Reply("# 标题\n\n**粗体**", finish_reason="stop"), "gpt-4o-mini · 1.0 s"),
        ("evil*model_", Reply(HOSTILE_SAMPLE, finish_reason="stop"), "evil · 2.0 s"),
        ("broken", Reply("half", error="the connection broke"), "broken · failed"),
    ]
    bundle = columns_bundle(results)
    html, md, plain = bundle["text/html"], bundle["text/markdown"], bundle["text/plain"]
    assert "grid-template-columns: repeat(3, minmax(0, 1fr))" in html
    assert re.search(r"<h1[^>]*>标题</h1>", html) and "<strong>粗体</strong>" in html
    assert "the connection broke" in html
    assert md.count("\n### ") + md.startswith("### ") == 3 and "### evil\\*model\\_" in md
    for text in (html, md):
        assert "<script" not in text and "<img" not in text and "<iframe" not in text
    assert "── broken ──\nhalf\n\n⚠ the connection broke\n[broken · failed]" in plain


@pytest.mark.parametrize(
    ("count", "columns"), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 3), (6, 3), (7, 4), (9, 3)]
)
def test_two_to_four_side_by_side_more_wrap_into_even_rows(count: int, columns: int) -> None:
    assert grid_columns(count) == columns


@given(st.text())
def test_terminal_text_never_carries_control_characters(text: str) -> None:
    shown = printable(text)
    assert all(ch in "\n\t" or not (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0) for ch in shown)
    assert not BIDI_AND_SEPARATORS & set(shown)


# Characters that reorder or break what a terminal shows: BiDi embeddings, overrides and isolates, and
# the line and paragraph separators (some terminals start a new line at them).
BIDI = {
    "LRE U+202A": "\u202a",
    "RLE U+202B": "\u202b",
    "PDF U+202C": "\u202c",
    "LRO U+202D": "\u202d",
    "RLO U+202E": "\u202e",
    "LRI U+2066": "\u2066",
    "RLI U+2067": "\u2067",
    "FSI U+2068": "\u2068",
    "PDI U+2069": "\u2069",
    "LINE SEPARATOR U+2028": "\u2028",
    "PARAGRAPH SEPARATOR U+2029": "\u2029",
}
BIDI_AND_SEPARATORS = set(BIDI.values())


@pytest.mark.parametrize("tty", [True, False], ids=["tty", "pipe"])
@pytest.mark.parametrize("name", list(BIDI))
def test_the_comparison_terminal_view_shows_bidi_controls_and_separators_as_marks(
    name: str, tty: bool
) -> None:
    ch = BIDI[name]
    out = FakeTTY() if tty else io.StringIO()
    view = ColumnsTextView([f"evil{ch}model", "b"], out, redraw=0.0)
    view.refresh(0, f"evil{ch}model · streaming{ch}…")
    reply = Reply(f"answer {ch}txt.exe", reasoning=f"think{ch}ing", error=f"broke{ch}n", finish_reason="stop")
    view.finish(0, reply, f"evil{ch}model · 1.0 s")
    view.finish(1, Reply("fine", finish_reason="stop"), "b · 1.0 s")
    view.close([])
    text = out.getvalue()
    assert ch not in text
    mark = f"<U+{ord(ch):04X}>"  # what the single reply's terminal view shows (shenma_magic._termtext)
    assert f"── evil{mark}model ──" in text and f"answer {mark}txt.exe" in text
    assert f"think{mark}ing" in text and f"broke{mark}n" in text and f"[evil{mark}model · 1.0 s]" in text
    if tty:
        assert f"streaming{mark}…" in text  # the progress line too


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_lines_are_redrawn_in_place_on_a_tty() -> None:
    out = FakeTTY()
    view = ColumnsTextView(["a", "b"], out, redraw=0.0)
    view.refresh(0, "a · 0.5 s · streaming…")
    view.finish(1, Reply("B's answer\x1b[2J", finish_reason="stop"), "b · 0.7 s")
    view.refresh(0, "a · 0.9 s · streaming…")
    view.finish(0, Reply("A's answer", finish_reason="stop"), "a · 1.0 s")
    view.close([])
    text = out.getvalue()
    assert "\x1b[2F\x1b[J" in text  # two progress lines, redrawn in place
    # The model's escape is shown as a mark, as the single reply's terminal view shows it.
    assert "── b ──\nB's answer\u241b[2J\n" in text and "\x1b[2J" not in text
    assert text.index("── b ──") < text.index("── a ──")


def test_terminal_progress_on_a_pipe_is_plain_lines() -> None:
    out = io.StringIO()
    view = ColumnsTextView(["a", "b"], out)
    for _ in range(5):
        view.refresh(0, "a · streaming…")
    view.finish(0, Reply("done", finish_reason="stop"), "a · 1.0 s")
    text = out.getvalue()
    assert "\x1b" not in text and text.count("[a · streaming…]") == 1 and "── a ──\ndone\n[a · 1.0 s]" in text


@pytest.mark.slow
def test_saved_notebook_shows_every_answer(relay: Relay, tmp_path: Path) -> None:
    import nbformat

    from tests.test_notebook import WIDGET_MIME, execute

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext shenma_magic\n%chat max_retries 0"),
        nbformat.v4.new_code_cell("%%chat -m alpha,beta,gamma -o r\n比较一下"),
        nbformat.v4.new_code_cell("%%chat\n再来"),
        nbformat.v4.new_code_cell("print(sorted(r))"),
    ]
    relay.enqueue(
        paced("alpha", ["# Alpha\n\n", "*one*"], 0.5),
        paced("beta", ["Beta ", "two"], 1.0),
        _fail_503("gamma"),
    )
    execute(nb, relay, tmp_path)
    first, second, printed = (c.outputs for c in nb.cells[1:])
    rich = [o for o in first if o.output_type in ("display_data", "execute_result")]
    assert len(rich) == 1, first
    data = rich[0]["data"]
    assert WIDGET_MIME not in data and set(data) == {"text/html", "text/markdown", "text/plain"}
    assert (
        re.search(r"<h1[^>]*>Alpha</h1>", data["text/html"])
        and "Beta two" in data["text/html"]
        and "503" in data["text/html"]
    )
    assert "### alpha" in data["text/markdown"] and "### gamma" in data["text/markdown"]
    assert "── beta ──\nBeta two" in data["text/plain"]
    assert "echo: 再来" in json.dumps(second, ensure_ascii=False)
    assert "['alpha', 'beta', 'gamma']" in printed[0]["text"]
    # No widget was made (nbclient would keep the state of every one in the notebook).
    assert "widgets" not in nb.metadata
