"""%%chat and %chat through a real IPython InteractiveShell, against the local relay."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from shenma_magic import Reply
from tests._util import history, magics
from tests.relay import Relay, Scripted, chat_chunk, sse, stream_of

KEY = "sk-TESTKEY0123456789abcdefSECRET9f3a"


def sent_messages(relay: Relay, i: int = -1) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in relay.chat_requests[i].json["messages"]]


def test_cell_streams_to_stdout_and_status_line(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    relay.enqueue(
        Scripted(
            chunks=stream_of(["鲁迅", "就是周树人。"], usage={"prompt_tokens": 12, "completion_tokens": 7})
        )
    )
    ip.run_cell_magic("chat", "", "周树人和鲁迅是兄弟吗？")
    out = capsys.readouterr().out
    assert out.startswith("鲁迅就是周树人。\n[gpt-4o-mini · first token")
    assert "12 → 7 tokens" in out
    assert "Reply(" not in out and "Delta" not in out  # no internal reprs in the terminal
    assert sent_messages(relay) == [("user", "周树人和鲁迅是兄弟吗？")]


def test_options_reach_the_request(ip: InteractiveShell, relay: Relay) -> None:
    ip.run_cell_magic("chat", "-m deepseek-r1 -s 'be brief' -t 0.2 --max-tokens 64 --timeout 9", "hi")
    body = relay.chat_requests[-1].json
    assert body["model"] == "deepseek-r1" and body["temperature"] == 0.2 and body["max_tokens"] == 64
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_settings_precedence(ip: InteractiveShell, relay: Relay, monkeypatch: pytest.MonkeyPatch) -> None:
    ip.run_cell_magic("chat", "", "a")
    assert relay.chat_requests[-1].json["model"] == "gpt-4o-mini"  # the default
    monkeypatch.setenv("SHENMA_MODEL", "env-model")
    ip.run_cell_magic("chat", "", "b")
    assert relay.chat_requests[-1].json["model"] == "env-model"
    ip.run_line_magic("config", 'ChatMagics.model = "config-model"')
    ip.run_cell_magic("chat", "", "c")
    assert relay.chat_requests[-1].json["model"] == "config-model"
    ip.run_line_magic("chat", "model line-model")
    ip.run_cell_magic("chat", "", "d")
    assert relay.chat_requests[-1].json["model"] == "line-model"
    ip.run_cell_magic("chat", "-m cell-model", "e")
    assert relay.chat_requests[-1].json["model"] == "cell-model"


def test_out_binds_reply_with_every_attribute(ip: InteractiveShell, relay: Relay) -> None:
    relay.enqueue(
        Scripted(
            chunks=stream_of(
                ["answer"], reasoning=["think"], usage={"prompt_tokens": 1, "completion_tokens": 2}
            )
        )
    )
    ip.run_cell_magic("chat", "-o r", "q")
    r = ip.user_ns["r"]
    assert isinstance(r, Reply) and isinstance(r, str) and r == "answer"
    assert (r.reasoning, r.finish_reason, r.usage, r.error, r.complete) == (
        "think",
        "stop",
        {"prompt_tokens": 1, "completion_tokens": 2},
        None,
        True,
    )
    assert magics(ip).last is r
    import shenma_magic

    assert shenma_magic.last_reply() is r


def test_out_bound_on_failure_with_the_partial_text(ip: InteractiveShell, relay: Relay) -> None:
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("half an ")), sse(chat_chunk("answer"))], drop=True))
    ip.run_cell_magic("chat", "-o r", "q")
    r = ip.user_ns["r"]
    assert r == "half an answer" and r.complete is False and "connection" in (r.error or "")


def test_conversation_carries_on_and_resets(ip: InteractiveShell, relay: Relay) -> None:
    ip.run_line_magic("chat", "system you are terse")
    ip.run_cell_magic("chat", "", "one")
    ip.run_cell_magic("chat", "-m other-model", "two")  # changing the model keeps the conversation
    assert sent_messages(relay) == [
        ("system", "you are terse"),
        ("user", "one"),
        ("assistant", "echo: one"),
        ("user", "two"),
    ]
    ip.run_cell_magic("chat", "--new", "three")
    assert sent_messages(relay) == [("system", "you are terse"), ("user", "three")]
    ip.run_line_magic("chat", "reset")
    ip.run_cell_magic("chat", "", "four")
    assert sent_messages(relay) == [("system", "you are terse"), ("user", "four")]


def test_failed_turn_before_text_is_not_recorded_but_partial_is(ip: InteractiveShell, relay: Relay) -> None:
    ip.run_cell_magic("chat", "", "first")
    relay.enqueue(Scripted.error(401, "无效的令牌"))
    ip.run_cell_magic("chat", "-o r", "fails")
    assert "无效的令牌" in (ip.user_ns["r"].error or "")
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("partial"))], drop=True))
    ip.run_cell_magic("chat", "", "cut")
    ip.run_cell_magic("chat", "", "next")
    assert sent_messages(relay) == [
        ("user", "first"),
        ("assistant", "echo: first"),
        ("user", "cut"),
        ("assistant", "partial\n\n[this answer is incomplete: the connection or the server failed]"),
        ("user", "next"),
    ]


def test_max_history_bounds_the_turns_sent(ip: InteractiveShell, relay: Relay) -> None:
    ip.run_line_magic("chat", "max_history 1")
    for q in ("a", "b", "c"):
        ip.run_cell_magic("chat", "", q)
    assert sent_messages(relay) == [("user", "b"), ("assistant", "echo: b"), ("user", "c")]


def test_variables_filled_and_braces_kept(ip: InteractiveShell, relay: Relay) -> None:
    ip.user_ns["x"] = {"name": "鲁迅"}
    ip.run_cell_magic("chat", "", 'who is {x[name]}? code: {"a": 1} {{literal}}')
    assert sent_messages(relay)[-1] == ("user", 'who is 鲁迅? code: {"a": 1} {literal}')
    ip.run_cell_magic("chat", "--no-vars --new", "who is {x[name]}?")
    assert sent_messages(relay)[-1] == ("user", "who is {x[name]}?")


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("", "   \n ", "the cell is empty"),
        ("--bogus", "hi", "unrecognized arguments"),
        ("-t hot", "hi", "invalid float value"),
        ("-t 5", "hi", "between 0 and 2"),
        ("-o 1x", "hi", "Python name"),
    ],
)
def test_bad_input_is_one_usage_error(
    ip: InteractiveShell, relay: Relay, line: str, cell: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("chat", line, cell)
    assert relay.chat_requests == []


def test_bad_input_through_run_cell_prints_one_line_no_traceback(ip: InteractiveShell, capsys: Any) -> None:
    result = ip.run_cell("%%chat -t hot\nhi")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "UsageError" in text and "Traceback" not in text
    assert not result.success


def test_server_error_is_shown_not_raised(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    relay.enqueue(Scripted.error(403, "该令牌无权访问模型 o1"))
    result = ip.run_cell("%%chat -m o1\nhi")
    out = capsys.readouterr()
    assert result.success
    assert "无权访问模型 o1" in out.out and "Traceback" not in out.out + out.err
    assert "%chat key" not in out.out  # 403 is not a key problem: the hint talks about the model/group


def test_no_key_for_a_remote_host_says_what_to_do(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHENMA_API_KEY")
    ip.run_line_magic("chat", "base_url https://relay.example.com/v1")
    with pytest.raises(UsageError, match="%chat key"):
        ip.run_cell_magic("chat", "", "hi")


def test_key_in_options_is_refused_and_scrubbed_from_history(ip: InteractiveShell, relay: Relay) -> None:
    ip.run_cell(f"%%chat --key {KEY}\nhello")
    assert relay.chat_requests == []
    hm = history(ip)
    assert not any(KEY in h for h in hm.input_hist_raw + hm.input_hist_parsed)
    assert KEY not in str(ip.user_ns.get("_i", "")) and KEY not in str(ip.user_ns.get("In", ""))
    with pytest.raises(UsageError, match="looks like an API key"):
        ip.run_line_magic("chat", f"key {KEY}")


def test_ctrl_c_keeps_the_partial_answer(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    relay.enqueue(Scripted(chunks=[sse(chat_chunk("partial ")), sse(chat_chunk("answer")), 30.0]))

    def interrupt() -> None:
        relay.wait(lambda: bool(relay.chat_requests), timeout=5)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    start = time.monotonic()
    result = ip.run_cell("%%chat -o r\nlong question")
    assert time.monotonic() - start < 5
    captured = capsys.readouterr()
    r = ip.user_ns["r"]
    assert r == "partial answer" and r.complete is False and "interrupted" in (r.error or "")
    assert "Traceback" not in captured.out + captured.err
    # One line says it was interrupted (the cell's own), not one from the view and another from the cell.
    assert (captured.out + captured.err).count("interrupted (Ctrl-C)") == 1, captured
    assert not result.success  # "Run All" stops here
    assert relay.wait(lambda: relay.chat_requests[0].outcome != "pending", timeout=5)  # connection closed
    ip.run_cell_magic("chat", "", "next")  # the kernel is still usable, and the partial answer was recorded
    assert sent_messages(relay)[-3:] == [
        ("user", "long question"),
        ("assistant", "partial answer\n\n[this answer is incomplete: the user interrupted it]"),
        ("user", "next"),
    ]


def test_line_magic_settings_models_history(ip: InteractiveShell, relay: Relay, capsys: Any) -> None:
    ip.run_line_magic("chat", "")
    out = capsys.readouterr().out
    assert relay.url in out and "sk-…9f3a" in out and KEY not in out
    ip.run_line_magic("chat", "models")
    assert "gpt-4o-mini" in capsys.readouterr().out
    ip.run_cell_magic("chat", "", "hello")
    capsys.readouterr()
    ip.run_line_magic("chat", "history")
    out = capsys.readouterr().out
    assert "user: hello" in out and "assistant: echo: hello" in out
    with pytest.raises(UsageError, match="unknown %chat command"):
        ip.run_line_magic("chat", "frobnicate")
    with pytest.raises(UsageError, match="temperature"):
        ip.run_line_magic("chat", "temperature warm")
    assert KEY not in repr(magics(ip)) and KEY not in repr(magics(ip).session.keys)


def test_load_ext_registers_config_and_help(ip: InteractiveShell) -> None:
    assert "chat" in ip.magics_manager.magics["cell"] and "chat" in ip.magics_manager.magics["line"]
    doc = ip.magics_manager.magics["cell"]["chat"].__doc__
    assert "--model" in doc and "--out" in doc and "--new" in doc and "--no-vars" in doc
    assert magics(ip) in ip.configurables


def test_inline_think_reasoning_is_folded_away_and_not_sent_back(ip: InteractiveShell, relay: Relay) -> None:
    """A model that writes its thinking inside the answer (<think>…</think>, R1 distills on some relays):
    the answer is what follows, the thinking is the reply's reasoning, and the next request carries only
    the answer, as with reasoning_content."""
    relay.enqueue(Scripted(chunks=stream_of(["<thi", "nk>先算", "一下</th", "ink>\n\n答案是", " 42"])))
    ip.run_cell_magic("chat", "-o r", "q")
    r = ip.user_ns["r"]
    assert (str(r), r.reasoning, r.complete) == ("答案是 42", "先算一下", True)
    ip.run_cell_magic("chat", "", "again")
    assert relay.chat_requests[-1].json["messages"][1] == {"role": "assistant", "content": "答案是 42"}
