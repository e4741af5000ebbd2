"""Session.start (background turns) from plain Python, against the local relay: order per conversation,
stopping, errors before anything is sent, and a foreground turn that waits."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shenma_magic import Reply, Session
from shenma_magic._keys import KeyStore
from shenma_magic._models import Delta, TextDelta
from shenma_magic._session import ChatRequest, MissingKeyError
from tests.relay import Relay

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
