"""shenma_magic.Session: the engine from plain Python, against the local relay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shenma_magic import (
    APIStatusError,
    ConfigError,
    ConnectionLostError,
    Reply,
    Session,
    TextDelta,
)
from shenma_magic._keys import KeyStore
from shenma_magic._session import MissingKeyError
from shenma_magic._tools import ToolRegistry
from tests.relay import Relay, Scripted, chat_chunk, sse, stream_of

KEY = "sk-SESSIONKEY0123456789abcdefXYZ9f3a"


@pytest.fixture
def session(relay: Relay, tmp_path: Path) -> Session:
    # A key store of its own: the developer's key file and environment never take part.
    return Session(base_url=relay.url, api_key=KEY, keys=KeyStore(tmp_path / "keys.json", environ={}))


def roles(relay: Relay, i: int = -1) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in relay.chat_requests[i].json["messages"]]


def test_two_turns_carry_the_history(session: Session, relay: Relay) -> None:
    first = session.ask("周树人和鲁迅是兄弟吗？")
    second = session.ask("那周作人呢？")
    assert isinstance(first, Reply) and first == "echo: 周树人和鲁迅是兄弟吗？" and first.complete
    assert second == "echo: 那周作人呢？"
    assert roles(relay) == [
        ("user", "周树人和鲁迅是兄弟吗？"),
        ("assistant", "echo: 周树人和鲁迅是兄弟吗？"),
        ("user", "那周作人呢？"),
    ]
    assert session.history == [
        {"role": "user", "content": "周树人和鲁迅是兄弟吗？"},
        {"role": "assistant", "content": "echo: 周树人和鲁迅是兄弟吗？"},
        {"role": "user", "content": "那周作人呢？"},
        {"role": "assistant", "content": "echo: 那周作人呢？"},
    ]
    assert session.last is second
    assert relay.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_on_delta_sees_every_piece(session: Session, relay: Relay) -> None:
    pieces = ["鲁", "迅", "就是", "周树人", "。"]
    relay.enqueue(Scripted(chunks=stream_of(pieces, usage={"prompt_tokens": 9, "completion_tokens": 5})))
    seen: list[Any] = []
    reply = session.ask("q", on_delta=seen.append)
    assert [d.text for d in seen if isinstance(d, TextDelta)] == pieces
    assert reply == "".join(pieces) and reply.usage == {"prompt_tokens": 9, "completion_tokens": 5}


def test_options_reach_the_request(session: Session, relay: Relay) -> None:
    session.ask("hi", model="deepseek-r1", system="be brief", temperature=0.2, max_tokens=64)
    body = relay.chat_requests[-1].json
    assert body["model"] == "deepseek-r1" and body["temperature"] == 0.2 and body["max_tokens"] == 64
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_a_failure_mid_reply_raises_with_the_partial_reply(session: Session, relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("half an ")), sse(chat_chunk("answer"))], drop=True))
    with pytest.raises(ConnectionLostError) as caught:
        session.ask("tell me")
    partial = caught.value.reply
    assert partial == "half an answer" and partial.complete is False and partial.error
    # Kept in the conversation, marked as partial for the model.
    assert session.history[-1]["content"].startswith("half an answer\n\n[this answer is incomplete: ")
    session.ask("go on")
    assert roles(relay)[-2][1].startswith("half an answer")


def test_a_failure_before_any_text_records_nothing(session: Session, relay: Relay) -> None:
    relay.enqueue(Scripted.error(401, "无效的令牌"))
    with pytest.raises(APIStatusError, match="无效的令牌") as caught:
        session.ask("hello")
    assert caught.value.reply == ""
    assert session.history == [] and session.last is not None and session.last.error


def test_reset_forgets_the_conversation(session: Session, relay: Relay) -> None:
    session.ask("a")
    session.reset()
    session.ask("b")
    assert roles(relay) == [("user", "b")]


def test_json_value(session: Session, relay: Relay) -> None:
    reply = session.ask("give me json", json=True)
    assert reply.value == {"echo": "give me json"}
    assert relay.chat_requests[-1].json["response_format"] == {"type": "json_object"}


def test_no_key_for_a_remote_host_sends_nothing(tmp_path: Path) -> None:
    chat = Session(base_url="https://api.whatai.cc/v1", keys=KeyStore(tmp_path / "k.json", environ={}))
    with pytest.raises(MissingKeyError, match=r"no API key for api\.whatai\.cc"):
        chat.ask("hi")
    assert chat.history == []


@pytest.mark.parametrize(
    "settings",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": float("nan")},
        {"timeout": float("inf")},
        {"max_time": 0},
        {"temperature": 3},
        {"temperature": float("nan")},
        {"max_tokens": 0},
        {"max_tokens": -3},
        {"max_tokens": 2.5},
        {"max_history": -1},
        {"max_retries": True},
        {"base_url": "http://[::1"},
        {"model": "two words"},
        {"frobnicate": 1},
    ],
)
def test_bad_settings_are_refused_when_given(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        Session(**settings)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "option", [{"temperature": 5}, {"max_tokens": 0}, {"timeout": float("nan")}, {"model": "a b"}]
)
def test_bad_per_call_options_send_nothing(session: Session, relay: Relay, option: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        session.ask("hi", **option)
    assert relay.chat_requests == []


def test_tools_belong_to_the_session_and_a_tool_cannot_chat_back(relay: Relay, tmp_path: Path) -> None:
    registry = ToolRegistry()
    chat = Session(base_url=relay.url, api_key=KEY, tools=registry, keys=KeyStore(tmp_path / "k", environ={}))
    inner: list[str] = []

    @registry.tool(trusted=True)
    def lookup(city: str) -> str:
        """Look a city up."""
        try:
            chat.ask("nested")
        except ConfigError as exc:
            inner.append(str(exc))
            raise
        return "never"

    reply = chat.ask('/tool lookup {"city": "北京"}')
    assert inner and "already running" in inner[0]
    assert "tool said" in reply  # the refusal went back to the model as the tool's result
    assert not any(m.get("content") == "nested" for m in chat.history)
    tool_result = relay.chat_requests[-1].json["messages"][-1]
    assert tool_result["role"] == "tool" and "already running" in tool_result["content"]


def test_usage_is_charged_per_model(session: Session, relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=stream_of(["a"], usage={"prompt_tokens": 10, "completion_tokens": 2})))
    session.configure(prices={"gpt-4o-mini": {"input": 1.0, "output": 2.0}})
    session.ask("q")
    rows = session.usage.rows()
    assert rows and rows[0][0] == "gpt-4o-mini" and rows[0][2] == 10


def test_using_a_session_imports_neither_ipython_nor_ipywidgets(relay: Relay, tmp_path: Path) -> None:
    code = f"""
import sys, json
import shenma_magic
from shenma_magic._keys import KeyStore
chat = shenma_magic.Session(base_url={relay.url!r}, api_key="sk-x", keys=KeyStore(None, environ={{}}))
reply = chat.ask("hello")
print(json.dumps([str(reply), sorted(m for m in ("IPython", "ipywidgets", "traitlets") if m in sys.modules)]))
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    text, imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert text == "echo: hello" and imported == []
