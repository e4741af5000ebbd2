"""The background job policy (shenma_magic._jobs) without a kernel, ChatClient.abort against the relay,
and the small views of shenma_magic._background (also those of a comparison)."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._background import (
    ColumnsAsView,
    ColumnsReportView,
    ColumnsWithNote,
    ReportView,
    WithNote,
    describe_jobs,
    start_turn,
)
from shenma_magic._client import ChatClient
from shenma_magic._jobs import Cancelled, CancelToken, JobRegistry, cancellable
from shenma_magic._livecolumns import OUTPUT_BUDGET, ColumnsLiveView
from shenma_magic._models import Delta, Reply, TextDelta
from shenma_magic._run import run_turn
from tests.relay import Relay


def ended(registry: JobRegistry, timeout: float = 5.0) -> None:
    assert registry.wait(timeout) == [] or not registry.in_flight()


def test_a_job_runs_on_a_daemon_thread_and_keeps_its_result() -> None:
    registry = JobRegistry()
    seen: list[Any] = []
    job = registry.start(lambda token: (threading.current_thread(), 42), label="x", on_end=seen.append)
    assert registry.wait(5) == [job] or job.ended.is_set()
    assert job.result is not None
    thread, value = job.result
    assert thread is not threading.main_thread() and thread.daemon
    assert value == 42 and job.state == "done" and seen == [job]
    assert registry.in_flight() == []


def test_an_exception_stays_on_the_job() -> None:
    registry = JobRegistry()

    def boom(token: CancelToken) -> None:
        raise ValueError("broken")

    job = registry.start(boom, label="x")
    job.ended.wait(5)
    assert job.state == "failed" and isinstance(job.error, ValueError)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=8))
def test_jobs_with_one_order_key_run_one_after_another_in_start_order(keys: list[str]) -> None:
    registry = JobRegistry()
    log: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def work(key: str, n: int) -> Any:
        def run(token: CancelToken) -> None:
            with lock:
                log.append((key, n, "start"))
            time.sleep(0.002)
            with lock:
                log.append((key, n, "end"))

        return run

    for n, key in enumerate(keys):
        registry.start(work(key, n), label=str(n), order=key)
    registry.wait(10)
    for key in set(keys):
        events = [(n, what) for k, n, what in log if k == key]
        numbers = [n for n, key2 in enumerate(keys) if key2 == key]
        # Never two turns of one conversation at once, and in the order they were started.
        assert events == [(n, what) for n in numbers for what in ("start", "end")]


def test_other_order_keys_do_not_wait() -> None:
    registry = JobRegistry()
    gate = threading.Event()
    slow = registry.start(lambda token: gate.wait(5), label="slow", order="a")
    fast = registry.start(lambda token: "done", label="fast", order="b")
    assert fast.ended.wait(2) and slow.in_flight
    gate.set()
    registry.wait(5)


def test_wait_turn_blocks_until_that_conversation_is_free() -> None:
    registry = JobRegistry()
    gate = threading.Event()
    registry.start(lambda token: gate.wait(5), label="slow", order="conv")
    assert registry.busy("conv") is not None and registry.busy("other") is None
    assert registry.wait_turn("other", timeout=0.1)
    assert not registry.wait_turn("conv", timeout=0.2)
    gate.set()
    assert registry.wait_turn("conv", timeout=5)
    assert registry.busy("conv") is None


def test_stopping_a_queued_job_ends_it_without_running_it() -> None:
    registry = JobRegistry()
    gate = threading.Event()
    ran: list[str] = []
    registry.start(lambda token: gate.wait(5), label="first", order="c")
    queued = registry.start(lambda token: ran.append("ran"), label="second", order="c")
    queued.token.cancel("stopped by the test")
    assert queued.ended.wait(2)
    assert queued.state == "stopped" and isinstance(queued.error, Cancelled) and ran == []
    gate.set()
    registry.wait(5)


def test_a_job_stopped_while_queued_leaves_the_order_of_the_others() -> None:
    registry = JobRegistry()
    gate = threading.Event()
    first = registry.start(lambda token: gate.wait(5), label="first", order="c")
    queued = registry.start(lambda token: None, label="second", order="c")
    third = registry.start(lambda token: None, label="third", order="c")
    queued.token.cancel("stopped by the test")
    assert queued.ended.wait(2)
    # The first is still in flight: a later turn still waits for it, and so does the third.
    assert registry.busy("c") is third
    assert not third.ended.wait(0.3) and third.state == "queued"
    third.token.cancel("stopped by the test")
    assert third.ended.wait(2) and registry.busy("c") is first
    assert not registry.wait_turn("c", timeout=0.2)
    gate.set()
    assert registry.wait_turn("c", timeout=5)


def test_ctrl_c_on_wait_stops_every_job_and_reraises() -> None:
    registry = JobRegistry()
    stopped: list[str] = []

    def work(token: CancelToken) -> None:
        token.on_cancel(lambda: stopped.append(token.reason))
        token.wait(10)

    jobs = [registry.start(work, label=str(i)) for i in range(3)]
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        registry.wait()
    assert time.monotonic() - started < 3
    assert all(job.ended.is_set() and job.state == "stopped" for job in jobs)
    assert len(stopped) == 3 and all("Ctrl-C" in reason for reason in stopped)


def test_a_closer_registered_after_the_cancel_runs_at_once() -> None:
    token = CancelToken()
    calls: list[int] = []
    token.on_cancel(lambda: calls.append(1))
    token.cancel()
    token.cancel()  # once only
    token.on_cancel(lambda: calls.append(2))
    assert calls == [1, 2]


def test_an_unregistered_closer_does_not_run() -> None:
    token = CancelToken()
    calls: list[int] = []
    unregister = token.on_cancel(lambda: calls.append(1))
    unregister()
    token.cancel()
    assert calls == []


def _deltas(n: int) -> Iterator[Delta]:
    for i in range(n):
        yield TextDelta(f"w{i} ")


@pytest.mark.parametrize("fail_after_cancel", [False, True])
def test_cancellable_stops_a_turn_as_an_interrupt_and_keeps_the_partial_answer(
    fail_after_cancel: bool,
) -> None:
    token = CancelToken()

    def stream() -> Iterator[Delta]:
        for i in range(100):
            if i == 3:
                token.cancel()
                if fail_after_cancel:  # the cancel broke the read underneath
                    raise OSError("socket shut down")
            yield TextDelta(f"w{i} ")

    class Sink:
        final: Reply

        def on_delta(self, delta: Delta) -> None: ...

        def refresh(self, status: str) -> None: ...

        def finish(self, reply: Reply, status: str) -> None:
            self.final = reply

    sink = Sink()
    result = run_turn(cancellable(stream(), token), sink, model="m")
    assert result.interrupted and sink.final == "w0 w1 w2 " and not sink.final.complete


def test_abort_ends_a_reply_streaming_on_another_thread_at_once(relay: Relay) -> None:
    client = ChatClient(relay.url, "sk-test-abort-0123456789abcdef")
    got: list[str] = []
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for delta in client.stream([{"role": "user", "content": "/slow 100 60"}]):
                if isinstance(delta, TextDelta):
                    got.append(delta.text)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert relay.wait(lambda: len(got) >= 2, 5)
    started = time.monotonic()
    client.abort()
    thread.join(3)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    assert relay.wait(lambda: relay.chat_requests[0].outcome == "client_closed", 3)
    assert 2 <= len(got) < 100
    # An aborted client sends nothing more.
    with pytest.raises(Exception, match="stopped before it was sent"):
        list(client.stream([{"role": "user", "content": "again"}]))
    assert len(relay.chat_requests) == 1


def test_abort_cuts_a_retry_wait_short(relay: Relay) -> None:
    from tests.relay import Scripted

    relay.enqueue(Scripted.error(503, "busy", headers={"Retry-After": "20"}))
    client = ChatClient(relay.url, "sk-test-abort-0123456789abcdef", max_retry_wait=30)
    threading.Timer(0.3, client.abort).start()
    started = time.monotonic()
    with pytest.raises(Exception, match="stopped before it was sent"):
        list(client.stream([{"role": "user", "content": "hi"}]))
    assert time.monotonic() - started < 3


def test_with_note_adds_the_note_to_every_status() -> None:
    seen: list[str] = []

    class Sink:
        def on_delta(self, delta: Delta) -> None: ...

        def refresh(self, status: str) -> None:
            seen.append(status)

        def finish(self, reply: Reply, status: str) -> None:
            seen.append(status)

    view = WithNote(Sink(), "ran here")
    view.refresh("streaming")
    view.finish(Reply("x"), "")
    assert seen == ["streaming · ran here", "ran here"]


def test_report_view_writes_the_whole_reply_once_at_the_end() -> None:
    writes: list[str] = []
    view = ReportView(lambda: "[#1 m: hi]", write=writes.append)
    for piece in ("Hel", "lo"):
        view.on_delta(TextDelta(piece))
        view.refresh("streaming")
    assert writes == []
    view.finish(Reply("Hello", complete=True), "m · 1.0 s")
    assert len(writes) == 1 and writes[0] == "\n[#1 m: hi]\nHello\n[m · 1.0 s]\n"


def test_a_turn_stopped_before_it_started_says_so_in_its_cell() -> None:
    registry = JobRegistry()
    gate = threading.Event()
    registry.start(lambda token: gate.wait(5), label="first", order="c")
    finished: list[tuple[Reply, str]] = []

    class First:
        def on_delta(self, delta: Delta) -> None: ...

        def refresh(self, status: str) -> None: ...

        def finish(self, reply: Reply, status: str) -> None:
            finished.append((reply, status))

    job = start_turn(
        registry, lambda token, views: views(), label="second", first_view=First(), make_view=First, order="c"
    )
    job.token.cancel("stopped (Ctrl-C on wait)")
    assert job.ended.wait(2)
    assert len(finished) == 1 and "nothing was sent" in (finished[0][0].error or "")
    gate.set()
    registry.wait(5)


def test_describe_jobs() -> None:
    registry = JobRegistry()
    gate = threading.Event()
    assert describe_jobs([]) == "no background replies in flight"
    job = registry.start(lambda token: gate.wait(5), label="gpt-4o-mini: hello")
    text = describe_jobs(registry.in_flight(), now=job.started + 2.5)
    assert text.startswith("  #1") and "2.5 s" in text and "gpt-4o-mini: hello" in text
    gate.set()
    registry.wait(5)


class RecordingOutlet:
    def __init__(self) -> None:
        self.shown: list[tuple[str, dict[str, Any]]] = []
        self.updates: list[tuple[str, dict[str, Any]]] = []

    def display(self, bundle: dict[str, Any]) -> str:
        self.shown.append((f"id{len(self.shown)}", bundle))
        return self.shown[-1][0]

    def update(self, display_id: str, bundle: dict[str, Any]) -> None:
        self.updates.append((display_id, bundle))


def test_a_view_fed_from_another_thread_shows_and_ends_through_its_outlet() -> None:
    import shenma_magic._display as display

    outlet = RecordingOutlet()
    view = display.LiveView(
        outlet=outlet, output_budget=10_000, cell_outputs=20_000
    )  # outputs to spare: each block sent once
    assert len(outlet.shown) == 2 and all("text/html" in bundle for _, bundle in outlet.shown)  # no widget
    paragraphs = [f"Paragraph {i}.\n\n" for i in range(600)]
    for piece in paragraphs:
        view.on_delta(TextDelta(piece))
        view.refresh("streaming")
    # Each finished paragraph is sent once, in the update that gives a live output its final content.
    sealed = "".join(b["text/html"] for _, b in outlet.updates if "shenma-live-status" not in b["text/html"])
    assert all(sealed.count(f"Paragraph {i}.<") == 1 for i in range(599))
    view.finish(Reply("".join(paragraphs), complete=True), "done")
    # No clear through this outlet: the final output goes into the last live output, the others empty.
    last_id, final = outlet.updates[-1]
    assert last_id == outlet.shown[-1][0] and "Paragraph 599." in final["text/markdown"]
    emptied = {i for i, bundle in outlet.updates if bundle == {"text/plain": ""}}
    assert emptied == {i for i, _ in outlet.shown[:-1]}


class ClearingOutlet(RecordingOutlet):
    def __init__(self) -> None:
        super().__init__()
        self.cleared: list[bool] = []

    def clear(self, wait: bool = False) -> None:
        self.cleared.append(wait)
        self.shown.clear()  # what the frontend does with the next output, after clear_output(wait=True)


def test_through_an_outlet_that_clears_the_cell_keeps_its_lines_and_one_final_output() -> None:
    import shenma_magic._display as display

    outlet = ClearingOutlet()
    log = display.Extras(rich=True, outlet=outlet)
    log.line("job 1: waiting for the reply before it")
    view = log.view()
    for piece in ("Hello ", "from ", "a thread."):
        view.on_delta(TextDelta(piece))
        view.refresh("streaming")
    view.finish(Reply("Hello from a thread.", complete=True), "done")
    assert outlet.cleared == [True]
    assert [bundle["text/plain"] for _, bundle in outlet.shown] == [
        "job 1: waiting for the reply before it",
        "Hello from a thread.",
    ]


# --------------------------------------------------------------------------- the views of a comparison


class ColumnsSink:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_delta(self, index: int, delta: Delta) -> None:
        self.calls.append(("delta", index))

    def refresh(self, index: int, status: str) -> int:
        self.calls.append(("refresh", index, status))
        return 1

    def finish(self, index: int, reply: Reply, status: str) -> int:
        self.calls.append(("finish", index, str(reply), status))
        return 1

    def close(self, results: Any) -> None:
        self.calls.append(("close", [(r.model, str(r.reply), r.status) for r in results]))


def test_columns_fed_from_another_thread_show_and_end_through_the_outlet() -> None:
    from shenma_magic._compare import LaneResult

    outlet = RecordingOutlet()
    view = ColumnsLiveView(["a", "b"], outlet=outlet, waiting="waiting for #1…")
    # Plain outputs only (no widget), a fixed number shown at once: JupyterLab shows 50 outputs a cell.
    assert 4 < len(outlet.shown) <= OUTPUT_BUDGET
    assert all(set(bundle) == {"text/html", "text/plain"} for _, bundle in outlet.shown)
    assert sum("waiting for #1…" in bundle["text/html"] for _, bundle in outlet.shown) == 2
    texts = {i: [f"{m} paragraph {n}.\n\n" for n in range(600)] for i, m in enumerate("ab")}
    for n in range(600):  # both columns refreshed after each paragraph
        for index in (0, 1):
            view.on_delta(index, TextDelta(texts[index][n]))
            view.refresh(index, "streaming")
    ids = {i for i, _ in outlet.shown}
    assert outlet.updates and {i for i, _ in outlet.updates} <= ids  # every message updates an output
    replies = [Reply("".join(texts[i]), complete=True) for i in (0, 1)]
    view.finish(0, replies[0], "a done")
    view.finish(1, replies[1], "b done")
    view.close([LaneResult(m, r, f"{m} done") for m, r in zip("ab", replies, strict=True)])
    # No clear through this outlet: the final output goes into the first output, the used ones are emptied.
    first_id, final = outlet.updates[-1]
    assert first_id == outlet.shown[0][0]
    assert "### a" in final["text/markdown"] and "a paragraph 599." in final["text/markdown"]
    assert "b paragraph 599." in final["text/html"]


def test_columns_fed_from_another_thread_end_in_one_output_through_a_clearing_outlet() -> None:
    from shenma_magic._compare import LaneResult
    from shenma_magic._display import Extras

    outlet = ClearingOutlet()
    log = Extras(rich=True, outlet=outlet)
    log.line("sent 1 image")
    view = ColumnsLiveView(["a", "b"], outlet=outlet, outputs=log, waiting="waiting for #2…")
    view.on_delta(0, TextDelta("hello"))
    view.refresh(0, "streaming")
    view.finish(0, Reply("hello", complete=True), "a done")
    view.finish(1, Reply("bye", complete=True), "b done")
    view.close([LaneResult("a", Reply("hello"), "a done"), LaneResult("b", Reply("bye"), "b done")])
    assert outlet.cleared == [True]
    after = outlet.shown[-2:]  # what the cell shows after the clear: the line again, then the final output
    assert after[0][1]["text/plain"] == "sent 1 image"
    assert after[1][1]["text/plain"] == "── a ──\nhello\n[a done]\n\n── b ──\nbye\n[b done]"


def test_columns_report_view_writes_each_answer_once_as_it_ends() -> None:
    writes: list[str] = []
    view = ColumnsReportView(["a", "b"], lambda: "[#3 a, b: hi]", write=writes.append)
    for index in (0, 1):
        view.on_delta(index, TextDelta("part"))
        view.refresh(index, "streaming")
    assert writes == []
    view.finish(1, Reply("bee\x1b[2J", complete=True), "b · 1.0 s")
    view.finish(0, Reply("ay", complete=True), "a · 2.0 s")
    view.close([])
    assert writes == [
        "\n[#3 a, b: hi]\n── b ──\nbee\u241b[2J\n[b · 1.0 s]\n\n",  # the escape is shown as a mark
        "\n[#3 a, b: hi]\n── a ──\nay\n[a · 2.0 s]\n\n",
    ]


def test_columns_with_a_note_say_it_in_every_status_line() -> None:
    from shenma_magic._compare import LaneResult

    sink = ColumnsSink()
    view = ColumnsWithNote(sink, "ran here")
    view.refresh(0, "streaming")
    view.finish(1, Reply("x"), "done")
    view.close([LaneResult("a", Reply("y"), "a done"), LaneResult("b", Reply("x"), "")])
    assert sink.calls == [
        ("refresh", 0, "streaming · ran here"),
        ("finish", 1, "x", "done · ran here"),
        ("close", [("a", "y", "a done · ran here"), ("b", "x", "ran here")]),
    ]


def test_a_comparison_stopped_before_it_started_ends_every_column() -> None:
    sink = ColumnsSink()
    ColumnsAsView(sink, ["a", "b"]).finish(Reply("", error="stopped; nothing was sent"), "not sent")
    assert sink.calls == [
        ("finish", 0, "", "not sent"),
        ("finish", 1, "", "not sent"),
        ("close", [("a", "", "not sent"), ("b", "", "not sent")]),
    ]
