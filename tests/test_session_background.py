"""Session.start (background turns) and Session.start_compare (background comparisons) from plain Python,
against the local relay: order per conversation, branches, stopping, errors before anything is sent, and a
foreground turn that waits."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shenma_magic import ConfigError, Reply, Session
from shenma_magic._branches import BranchError
from shenma_magic._keys import KeyStore
from shenma_magic._models import Delta, TextDelta
from shenma_magic._session import ChatRequest, MissingKeyError
from tests.relay import Relay, Scripted, stream_of

KEY = "sk-BGSESSIONKEY0123456789abcdefQ42"


class View:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.final: Reply | None = None
        self.thread = threading.current_thread()

    def on_delta(self, delta: Delta) -> None:
        if isinstance(delta, TextDelta):
            self.text.append(delta.text)

    def refresh(self, status: str) -> None: ...

    def finish(self, reply: Reply, status: str) -> None:
        self.final = reply


class Recorder:
    def __init__(self) -> None:
        self.views: list[View] = []
        self.lines: list[str] = []

    def make_view(self) -> View:
        view = View()
        self.views.append(view)
        return view

    def ask(self, question: str) -> bool:
        return False

    def notify(self, line: str) -> None:
        self.lines.append(line)

    def show_images(self, images: list[Any]) -> None: ...


@pytest.fixture
def session(relay: Relay, tmp_path: Path) -> Session:
    return Session(base_url=relay.url, api_key=KEY, keys=KeyStore(tmp_path / "keys.json", environ={}))


def test_start_returns_at_once_and_the_turn_lands_in_the_history(session: Session, relay: Relay) -> None:
    frontend = Recorder()
    started = time.monotonic()
    job = session.start(ChatRequest("/slow 5 1"), frontend)
    assert time.monotonic() - started < 0.5 and job.in_flight
    assert frontend.views[0].thread is threading.current_thread()  # the first view is made here, now
    assert session.wait(10) == [job]
    outcome = job.result
    assert outcome is not None and outcome.reply == "word1 word2 word3 word4 word5" and outcome.reply.complete
    assert frontend.views[0].final == outcome.reply
    assert [m["role"] for m in session.history] == ["user", "assistant"]


def test_a_run_waits_for_the_background_turn_of_its_conversation(session: Session, relay: Relay) -> None:
    session.start(ChatRequest("/slow 4 0.8"), Recorder())
    frontend = Recorder()
    outcome = session.run(ChatRequest("next"), frontend)
    assert frontend.lines == ["waiting for background reply #1 in this conversation to end…"]
    sent = relay.chat_requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"] and outcome.reply == "echo: next"


def test_new_starts_a_conversation_that_does_not_wait(session: Session, relay: Relay) -> None:
    first = session.start(ChatRequest("/slow 10 2"), Recorder())
    second = session.start(ChatRequest("hello", new=True), Recorder())
    assert second.ended.wait(1.5) and first.in_flight
    session.wait(10)
    # The first turn recorded into its own conversation, not the new one.
    assert [m["content"] for m in session.history] == ["hello", "echo: hello"]


def test_stopping_a_turn_keeps_its_partial_answer_and_closes_the_connection(
    session: Session, relay: Relay
) -> None:
    frontend = Recorder()
    job = session.start(ChatRequest("/slow 100 30"), frontend)
    assert relay.wait(lambda: len(frontend.views[0].text) >= 3, 10)
    job.token.cancel("stopped by the test")
    assert job.ended.wait(2)
    assert relay.wait(lambda: relay.chat_requests[0].outcome == "client_closed", 3)
    outcome = job.result
    assert outcome is not None and outcome.interrupted and not outcome.reply.complete
    assert outcome.reply.startswith("word1 word2 word3")
    assert "incomplete" in session.history[-1]["content"]  # kept, marked as partial for the model


def test_what_is_wrong_with_a_request_raises_before_it_starts(tmp_path: Path) -> None:
    session = Session(base_url="https://api.example.com/v1", keys=KeyStore(tmp_path / "k", environ={}))
    with pytest.raises(MissingKeyError):
        session.start(ChatRequest("hi"), Recorder())
    assert session.jobs.in_flight() == []


def test_wait_with_nothing_started_returns_nothing(session: Session) -> None:
    assert session.wait() == []


# --------------------------------------------------------------------------- comparisons in the background


class Columns:
    """A comparison's view that records what the refresh loop does, and on which thread it was made."""

    def __init__(self, models: Any) -> None:
        self.models = list(models)
        self.text: list[list[str]] = [[] for _ in self.models]
        self.finished: dict[int, tuple[Reply, str]] = {}
        self.closed: list[Any] | None = None
        self.made_on = threading.current_thread()
        self.fed_on: set[threading.Thread] = set()

    def on_delta(self, index: int, delta: Delta) -> None:
        self.fed_on.add(threading.current_thread())
        if isinstance(delta, TextDelta):
            self.text[index].append(delta.text)

    def refresh(self, index: int, status: str) -> int:
        return 0

    def finish(self, index: int, reply: Reply, status: str) -> int:
        self.finished[index] = (reply, status)
        return 1

    def close(self, results: Any) -> None:
        self.closed = list(results)


class ColumnsRecorder:
    def __init__(self) -> None:
        self.views: list[Columns] = []
        self.lines: list[str] = []

    def make_columns(self, models: Any) -> Columns:
        view = Columns(models)
        self.views.append(view)
        return view

    def notify(self, line: str) -> None:
        self.lines.append(line)

    def show_images(self, images: list[Any]) -> None: ...


def answer(model: str, words: list[str], seconds: float) -> Scripted:
    """``model``'s whole answer, spread over about ``seconds``."""
    # The words, the finish chunk and [DONE]: one gap fewer than events.
    return Scripted(chunks=stream_of(words, delay=seconds / (len(words) + 1), model=model), model=model)


def sent_to(relay: Relay, model: str) -> list[tuple[str, str]]:
    body = [r.json for r in relay.chat_requests if r.json["model"] == model][-1]
    return [(m["role"], m["content"]) for m in body["messages"]]


def test_start_compare_returns_at_once_and_every_model_streams_on_the_job_thread(
    session: Session, relay: Relay
) -> None:
    relay.enqueue(answer("alpha", ["a1 ", "a2 ", "a3"], 1.0), answer("beta", ["b1 ", "b2"], 1.5))
    frontend = ColumnsRecorder()
    started = time.monotonic()
    job = session.start_compare(ChatRequest("谁对？", models=("alpha", "beta")), frontend)
    assert time.monotonic() - started < 0.5 and job.in_flight
    view = frontend.views[0]
    assert view.made_on is threading.current_thread()  # the columns are shown before the cell returns
    assert job.label == "alpha, beta: 谁对？"
    # Until it ends, the conversation is known to be heading for these branches.
    assert session.branch_models() == ["alpha", "beta"] and not session.branches
    wall = time.monotonic()
    assert session.wait(10) == [job]
    wall = time.monotonic() - wall
    assert wall < 2.2, f"{wall:.2f} s: the models did not stream at once (one after the other: 2.5 s)"
    outcome = job.result
    assert outcome is not None and not outcome.interrupted
    assert list(outcome.replies) == ["alpha", "beta"]
    assert outcome.replies["alpha"] == "a1 a2 a3" and outcome.replies["beta"] == "b1 b2"
    assert view.fed_on == {job.thread} and view.closed is not None
    assert [r.reply for r in view.closed] == [outcome.replies["alpha"], outcome.replies["beta"]]
    # The branches are recorded when it ends, each with its own model's answer.
    assert session.branches.models == ["alpha", "beta"]
    assert session.branches.branch("beta").turns[-1][-1]["content"] == "b1 b2"


def test_a_later_turn_waits_for_the_comparison_and_takes_its_own_branch(
    session: Session, relay: Relay
) -> None:
    relay.enqueue(answer("alpha", ["alpha says ", "A"], 1.0), answer("beta", ["beta says ", "B"], 1.0))
    session.start_compare(ChatRequest("first", models=("alpha", "beta")), ColumnsRecorder())
    # Checked now against the branches the comparison will leave: gamma took no part.
    with pytest.raises(BranchError):
        session.start(ChatRequest("x", model="gamma"), Recorder())
    relay.enqueue(answer("beta", ["beta again"], 0.1))
    job = session.start(ChatRequest("second", model="beta"), Recorder())
    assert session.wait(10) and job.result is not None
    assert job.result.reply == "beta again"
    assert sent_to(relay, "beta") == [("user", "first"), ("assistant", "beta says B"), ("user", "second")]
    assert not session.branches and [m["content"] for m in session.history][1] == "beta says B"


def test_a_foreground_turn_of_one_model_waits_for_the_comparison_and_takes_its_branch(
    session: Session, relay: Relay
) -> None:
    relay.enqueue(answer("alpha", ["alpha says A"], 0.8), answer("beta", ["beta says B"], 0.8))
    session.start_compare(ChatRequest("first", models=("alpha", "beta")), ColumnsRecorder())
    relay.enqueue(answer("alpha", ["alpha again"], 0.1))
    assert session.ask("second", model="alpha") == "alpha again"
    assert sent_to(relay, "alpha") == [("user", "first"), ("assistant", "alpha says A"), ("user", "second")]
    assert not session.branches


def test_a_foreground_comparison_waits_for_the_background_one_and_continues_each_branch(
    session: Session, relay: Relay
) -> None:
    relay.enqueue(answer("alpha", ["alpha one"], 0.8), answer("beta", ["beta one"], 0.8))
    session.start_compare(ChatRequest("q1", models=("alpha", "beta")), ColumnsRecorder())
    relay.enqueue(answer("alpha", ["alpha two"], 0.1), answer("beta", ["beta two"], 0.1))
    frontend = ColumnsRecorder()
    # No models named: those of the branches, once the comparison in flight has left them.
    outcome = session.run_compare(ChatRequest("q2"), frontend)
    assert frontend.lines == ["waiting for background reply #1 in this conversation to end…"]
    assert list(outcome.replies) == ["alpha", "beta"]
    for model in ("alpha", "beta"):
        assert sent_to(relay, model) == [("user", "q1"), ("assistant", f"{model} one"), ("user", "q2")]


def test_stopping_a_background_comparison_stops_every_stream_and_keeps_partial_answers(
    session: Session, relay: Relay
) -> None:
    words = [f"w{i} " for i in range(100)]
    relay.enqueue(answer("alpha", words, 30), answer("beta", words, 30))
    frontend = ColumnsRecorder()
    job = session.start_compare(ChatRequest("long", models=("alpha", "beta")), frontend)
    view = frontend.views[0]
    assert relay.wait(lambda: all(len(t) >= 3 for t in view.text), 10), view.text
    job.token.cancel("stopped by the test")
    assert job.ended.wait(3), "the comparison did not stop"
    assert relay.wait(lambda: all(r.outcome == "client_closed" for r in relay.chat_requests), 3)
    outcome = job.result
    assert outcome is not None and outcome.interrupted and job.state == "stopped"
    for model in ("alpha", "beta"):
        reply = outcome.replies[model]
        assert reply.startswith("w0 w1 w2") and not reply.complete
        assert "incomplete" in session.branches.branch(model).turns[-1][-1]["content"]
    assert view.closed is not None and len(view.closed) == 2


def test_a_comparison_stopped_while_waiting_its_turn_says_so_in_every_column(
    session: Session, relay: Relay
) -> None:
    relay.enqueue(answer("alpha", ["alpha one"], 1.5), answer("beta", ["beta one"], 1.5))
    first = session.start_compare(ChatRequest("q1", models=("alpha", "beta")), ColumnsRecorder())
    frontend = ColumnsRecorder()
    job = session.start_compare(ChatRequest("later", models=("beta",)), frontend)
    assert session.branch_models() == ["beta"]  # what the conversation is heading for
    job.token.cancel("stopped (%chat stop)")
    assert job.ended.wait(2) and first.in_flight
    view = frontend.views[0]
    assert sorted(view.finished) == [0] and view.closed is not None
    reply, status = view.finished[0]
    assert status == "not sent" and reply.error == "stopped (%chat stop); nothing was sent"
    # The first comparison still runs, and it alone now says what the branches will be.
    assert session.jobs.busy(session.conversation) is first and session.branch_models() == ["alpha", "beta"]
    session.wait(10)
    assert session.branches.models == ["alpha", "beta"] and len(relay.chat_requests) == 2


def test_a_comparison_asked_before_new_records_in_its_own_conversation(
    session: Session, relay: Relay
) -> None:
    relay.enqueue(answer("alpha", ["old alpha"], 0.8), answer("beta", ["old beta"], 0.8))
    session.start_compare(ChatRequest("old", models=("alpha", "beta")), ColumnsRecorder())
    session.ask("fresh", new=True)  # does not wait for the comparison of the other conversation
    session.wait(10)
    assert [m["content"] for m in session.history] == ["fresh", "echo: fresh"] and not session.branches


def test_what_is_wrong_with_a_comparison_raises_before_it_starts(session: Session) -> None:
    frontend = ColumnsRecorder()
    with pytest.raises(ConfigError):
        session.start_compare(ChatRequest("hi", models=("alpha", "alpha")), frontend)
    with pytest.raises(ConfigError):
        session.start_compare(ChatRequest("hi"), frontend)  # no models, no branches
    assert frontend.views == [] and session.jobs.in_flight() == []
