"""Issue 5 through the magic against the local relay: JSON output, images in, tool calls, usage and cost.

The relay records every request body, so each test checks what really went over the wire.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import shenma_magic
from tests._util import tool_call_stream
from tests.relay import Relay, Scripted, sse, stream_of

KEY = "sk-FEATUREKEY0123456789abcdef0000"
# A real 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def body(relay: Relay, i: int = -1) -> Any:
    return relay.chat_requests[i].json


# -- JSON ---------------------------------------------------------------------------------------------------


def test_json_mode_asks_for_json_and_binds_the_parsed_value(ip: InteractiveShell, relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=stream_of(['{"name": "鲁迅", ', '"born": 1881}'])))
    ip.run_cell_magic("chat", "--json -o data", "Who wrote 狂人日记?")
    sent = body(relay)
    assert sent["response_format"] == {"type": "json_object"}
    assert any("json" in str(m["content"]).lower() for m in sent["messages"])  # OpenAI needs the word
    assert ip.user_ns["data"] == {"name": "鲁迅", "born": 1881}
    last = ip.magics_manager.registry["ChatMagics"].last
    assert last == '{"name": "鲁迅", "born": 1881}' and last.value == {"name": "鲁迅", "born": 1881}


def test_json_in_a_fence_is_recovered(ip: InteractiveShell, relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=stream_of(["Here it is:\n```json\n", "[1, 2, 3]\n```\n"])))
    ip.run_cell_magic("chat", "--json -o data", "three numbers as JSON")
    assert ip.user_ns["data"] == [1, 2, 3]


def test_text_that_is_not_json_keeps_the_text_and_says_so(
    ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    relay.enqueue(Scripted(chunks=stream_of(["Sorry, I cannot answer in JSON."])))
    ip.run_cell_magic("chat", "--json -o data", "q")
    out = capsys.readouterr().out
    assert "not JSON" in out
    assert ip.user_ns["data"] == "Sorry, I cannot answer in JSON." and ip.user_ns["data"].value is None


def test_schema_from_a_dict(ip: InteractiveShell, relay: Relay) -> None:
    ip.user_ns["schema"] = {
        "title": "Person",
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }
    relay.enqueue(Scripted(chunks=stream_of(['{"name": "周树人"}'])))
    ip.run_cell_magic("chat", "--schema schema -o data", "q")
    fmt = body(relay)["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Person"
    assert fmt["json_schema"]["schema"]["required"] == ["name"]
    assert ip.user_ns["data"] == {"name": "周树人"}
    with pytest.raises(UsageError, match="no such variable"):
        ip.run_cell_magic("chat", "--schema nope", "q")


# -- images -------------------------------------------------------------------------------------------------


def test_local_image_and_url_become_content_parts_and_stay_in_the_conversation(
    ip: InteractiveShell, relay: Relay, tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    ip.run_cell_magic("chat", f"--image {path} --image https://example.com/cat.jpg", "What is in these?")
    content = body(relay)["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in these?"}
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert content[2]["image_url"]["url"] == "https://example.com/cat.jpg"
    assert "[image: " in capsys.readouterr().out  # the terminal shows a label, not base64
    ip.run_cell_magic("chat", "", "And the colour?")
    follow_up = body(relay)["messages"]
    assert follow_up[0]["content"][1]["type"] == "image_url"  # the image is still there for the follow-up
    assert [m["role"] for m in follow_up] == ["user", "assistant", "user"]


def test_image_from_a_variable_holding_bytes(ip: InteractiveShell, relay: Relay) -> None:
    ip.user_ns["img"] = PNG
    ip.run_cell_magic("chat", "--image img", "describe")
    assert body(relay)["messages"][-1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("source", "message"),
    [("/no/such/file.png", "no/such/file.png"), ("javascript:alert(1)", "javascript")],
)
def test_bad_images_are_one_clear_line_and_nothing_is_sent(
    ip: InteractiveShell, relay: Relay, source: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("chat", f"--image {source}", "q")
    assert relay.chat_requests == []


def test_not_an_image_is_refused(ip: InteractiveShell, relay: Relay, tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("just text")
    with pytest.raises(UsageError, match=r"notes\.png"):
        ip.run_cell_magic("chat", f"--image {path}", "q")
    assert relay.chat_requests == []


# -- tool calls ---------------------------------------------------------------------------------------------


def weather(city: str, days: int = 1) -> dict[str, Any]:
    """Weather forecast.

    Args:
        city: the city name.
        days: how many days.
    """
    return {"city": city, "days": days, "sky": "晴"}


def test_trusted_tool_runs_and_the_reply_continues(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    shenma_magic.tools().add(weather, trusted=True)
    relay.enqueue(
        Scripted(chunks=tool_call_stream("weather", '{"city": "北京", "days": 2}')),
        Scripted(chunks=stream_of(["北京明天晴。"])),
    )
    ip.run_cell_magic("chat", "-o r", "北京天气？")
    first, second = relay.chat_requests
    spec = first.json["tools"][0]["function"]
    assert spec["name"] == "weather" and spec["parameters"]["required"] == ["city"]
    assert spec["parameters"]["properties"]["days"]["type"] == "integer"
    msgs = second.json["messages"]
    assert msgs[-2]["role"] == "assistant" and msgs[-2]["tool_calls"][0]["function"]["name"] == "weather"
    assert msgs[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"city": "北京", "days": 2, "sky": "晴"}',
    }
    assert ip.user_ns["r"] == "北京明天晴。" and ip.user_ns["r"].complete
    out = capsys.readouterr().out
    assert 'ran: weather(city="北京", days=2)' in out
    # The conversation keeps the whole exchange for the next cell.
    ip.run_cell_magic("chat", "", "thanks")
    roles = [m["role"] for m in body(relay)["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]


def test_untrusted_tool_asks_and_a_no_goes_back_to_the_model(
    ip: InteractiveShell, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def run(city: str) -> str:
        ran.append(city)
        return "sunny"

    # Registered from the user's namespace as a lambda, the way a notebook would write it.
    ip.user_ns["weather"] = lambda city: run(city)
    ip.run_line_magic("chat", "tools add weather")
    questions: list[str] = []

    def answer_no(question: str) -> str:
        questions.append(question)
        return "n"

    monkeypatch.setattr("builtins.input", answer_no)
    relay.enqueue(
        Scripted(chunks=tool_call_stream("weather", '{"city": "上海"}')), Scripted(chunks=stream_of(["ok"]))
    )
    ip.run_cell_magic("chat", "", "weather?")
    assert questions == ['Run weather(city="上海")? [y/N] ']
    assert ran == []
    assert (
        relay.chat_requests[-1].json["messages"][-1]["content"] == "error: the user did not allow this call"
    )
    monkeypatch.setattr("builtins.input", lambda q: "y")
    relay.enqueue(
        Scripted(chunks=tool_call_stream("weather", '{"city": "上海"}', "call_2")),
        Scripted(chunks=stream_of(["ok"])),
    )
    ip.run_cell_magic("chat", "", "again")
    assert ran == ["上海"]


def test_failing_tool_sends_the_error_text_back_not_a_traceback(
    ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    def boom(x: int) -> int:
        raise ValueError("bad x")

    shenma_magic.tools().add(boom, trusted=True)
    relay.enqueue(
        Scripted(chunks=tool_call_stream("boom", '{"x": 1}')), Scripted(chunks=stream_of(["sorry"]))
    )
    ip.run_cell_magic("chat", "", "q")
    assert relay.chat_requests[-1].json["messages"][-1]["content"] == "error: ValueError: bad x"
    assert "Traceback" not in capsys.readouterr().out


def test_tool_rounds_are_bounded(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    shenma_magic.tools().add(weather, trusted=True)
    ip.run_line_magic("config", "ChatMagics.max_tool_rounds = 2")
    for i in range(5):
        relay.enqueue(Scripted(chunks=tool_call_stream("weather", '{"city": "x"}', f"call_{i}")))
    ip.run_cell_magic("chat", "", "loop forever")
    assert len(relay.chat_requests) == 3  # the first reply and two rounds of tool results
    assert "stopped after 2 rounds" in capsys.readouterr().out


def test_no_tools_option_and_tools_listing(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    shenma_magic.tools().add(weather)
    ip.run_cell_magic("chat", "--no-tools", "q")
    assert "tools" not in body(relay)
    ip.run_line_magic("chat", "tools")
    assert "weather(city, days)" in capsys.readouterr().out


# -- usage and cost -----------------------------------------------------------------------------------------


def test_status_line_shows_tokens_and_cost_and_usage_totals(
    ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    ip.run_line_magic("config", "ChatMagics.prices = {'gpt-4o-mini': {'input': 1.0, 'output': 4.0}}")
    relay.enqueue(Scripted(chunks=stream_of(["hi"], usage={"prompt_tokens": 1000, "completion_tokens": 500})))
    ip.run_cell_magic("chat", "", "q")
    out = capsys.readouterr().out
    assert "1000 → 500 tokens" in out and "¥0.0030" in out
    relay.enqueue(Scripted(chunks=stream_of(["没有用量"])))  # no usage reported: estimated, marked so
    ip.run_cell_magic("chat", "-m other-model", "q2")
    out = capsys.readouterr().out
    assert "(estimated)" in out and "~" in out
    ip.run_line_magic("chat", "usage")
    table = capsys.readouterr().out
    assert "gpt-4o-mini" in table and "other-model" in table and "¥0.0030" in table


def test_reply_json_accessor() -> None:
    reply = shenma_magic.Reply('noise ```json\n{"a": 1}\n``` noise')
    assert reply.json() == {"a": 1}
    assert json.loads(shenma_magic.Reply("[1]").text) == [1]


def test_a_request_that_failed_before_any_token_is_not_charged(
    ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    ip.run_line_magic("config", "ChatMagics.prices = {'gpt-4o-mini': {'input': 1000.0, 'output': 1000.0}}")
    relay.enqueue(Scripted.error(401, "无效的令牌"))
    ip.run_cell_magic("chat", "", "a long question " * 50)
    out = capsys.readouterr().out
    assert "failed" in out and "¥" not in out and "tokens" not in out
    ip.run_line_magic("chat", "usage")
    assert "no replies yet" in capsys.readouterr().out


def test_tool_repr_is_short() -> None:
    registered = shenma_magic.tools().add(weather, trusted=True)
    assert repr(registered) == "<tool weather(city, days), trusted>"
    shenma_magic.tools().clear()


def test_every_tool_round_is_counted_in_usage(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    shenma_magic.tools().add(weather, trusted=True)
    first_usage = sse({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 10}})
    relay.enqueue(
        Scripted(chunks=[*tool_call_stream("weather", '{"city": "x"}')[:-1], first_usage, sse("[DONE]")]),
        Scripted(chunks=stream_of(["done"], usage={"prompt_tokens": 200, "completion_tokens": 20})),
    )
    ip.run_cell_magic("chat", "", "q")
    capsys.readouterr()
    ip.run_line_magic("chat", "usage")
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("gpt-4o-mini"))
    assert row.split()[1:4] == ["2", "300", "30"]  # two calls: 100 + 200 prompt, 10 + 20 completion tokens
