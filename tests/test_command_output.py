"""What %chat commands print: server and model text with every control character made visible."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from shenma_magic._secret import excerpt
from tests.relay import Relay, Scripted, stream_of

KEY = "sk-TESTKEY0123456789abcdefSECRET9f3a"
# What must never reach a terminal raw: C0 but tab/newline, DEL, C1, BiDi controls, line separators.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
HOSTILE = {
    "OSC 52": "\x1b]52;c;aGk=\x07",
    "OSC 8": "\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\",
    "CSI": "\x1b[2J\x1b[8m",
    "DCS": "\x1bP1$r\x1b\\",
    "C1 CSI": "\x9b2J",
    "C1 OSC": "\x9d0;title\x9c",
    "BEL BS DEL NUL": "a\x07b\x08c\x7fd\x00",
    "RLO LRE": "\u202eabc\u202a",
    "LS PS": "x\u2028y\u2029z",
    "NEL FF VT": "\x85\x0c\x0b",
}


@pytest.fixture
def ip(chat_shell: Callable[..., InteractiveShell]) -> InteractiveShell:
    return chat_shell(KEY)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_models_history_and_log_print_no_control_character(
    name: str, ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    bad = HOSTILE[name]
    relay.enqueue(Scripted.json_body({"data": [{"id": f"m{bad}1"}, {"id": "m2"}]}, path="/v1/models"))
    ip.run_line_magic("chat", "models")
    relay.enqueue(Scripted(chunks=stream_of([f"answer {bad} end"], model=f"gpt{bad}")))
    ip.run_cell_magic("chat", "", f"question {bad}")
    capsys.readouterr()
    for line in ("models", "history", "log", "usage"):
        if line == "models":
            relay.enqueue(Scripted.json_body({"data": [{"id": f"m{bad}1"}]}, path="/v1/models"))
        ip.run_line_magic("chat", line)
        out = capsys.readouterr().out
        assert not RAW.search(out), (line, out)
    relay.enqueue(Scripted.error(400, f"bad {bad} request", path="/v1/models"))
    ip.run_line_magic("chat", "models")
    out = capsys.readouterr().out
    assert out.startswith("⚠") and not RAW.search(out), out


@given(st.text())
def test_excerpt_is_one_line_without_control_characters(text: str) -> None:
    out = excerpt(text, 60)
    assert not RAW.search(out) and "\n" not in out and "\t" not in out
    out.encode("utf-8")  # no lone surrogate either
