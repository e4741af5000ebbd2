"""Values no server, notebook or tool should send, sent anyway: numbers past int64 or float, lone
surrogates, control characters, keys in settings, tools that raise SystemExit or KeyboardInterrupt.
Each gives one line or a clean value, never a traceback, and breaks no later turn."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from shenma_magic._cleantext import clean_text
from shenma_magic._errors import ConfigError
from shenma_magic._exchange import Exchange, request_key
from shenma_magic._prompt import fill_variables
from shenma_magic._secret import register_key_source
from shenma_magic._settings import check_setting
from shenma_magic._store import Store
from shenma_magic._tools import Tool, describe_call, run_tool
from tests.relay import Relay, Scripted, stream_of, tool_call_stream

KEY = "sk-HOSTILEV0123456789abcdefghijklmn"
SURROGATES = ["\ud800", "a\ud83d", "\ude00b", "a\ud83d\ude00b", "\udfff\ud800", "x\udc80y"]
HUGE = [10**30, -(10**30), 10**300, 2**63, -(2**63) - 1, math.inf, -math.inf, math.nan, 1e308, "12", None]


class _Keys:
    def keys(self) -> list[str]:
        return [KEY]


_HOLDER = _Keys()
register_key_source(_HOLDER.keys)


def shows_run(text: str, key: str = KEY) -> bool:
    return any(key[i : i + 10] in text for i in range(len(key) - 9))


# -- the store ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", HUGE)
def test_store_takes_any_usage_number(tmp_path: Path, count: Any) -> None:
    store = Store(tmp_path / "log.db")
    store.record(
        Exchange(
            notebook="n",
            host="h",
            model="m",
            messages=[],
            usage={"prompt_tokens": count},
            prompt_tokens=count,
            completion_tokens=count,
            cost=count if not isinstance(count, str) else None,
        )
    )
    (record,) = store.recent(None)
    assert 0 <= record.prompt_tokens < 2**63 and 0 <= record.completion_tokens < 2**63
    assert record.cost is None or math.isfinite(record.cost)


@pytest.mark.parametrize("text", SURROGATES)
def test_store_and_request_key_take_lone_surrogates(tmp_path: Path, text: str) -> None:
    store = Store(tmp_path / "log.db")
    messages = [{"role": "user", "content": text}]
    key = request_key(text, messages, {"temperature": 0.5, "stop": [text]})
    assert key == request_key(
        clean_text(text),
        [{"role": "user", "content": clean_text(text)}],
        {
            "temperature": 0.5,
            "stop": [clean_text(text)],
        },
    )
    store.record(
        Exchange(
            notebook=text,
            host="h",
            model=text,
            messages=messages,
            reply=text,
            reasoning=text,
            tool_calls=[{"function": {"name": text, "arguments": text}}],
            error=text,
            request_key=key,
        )
    )
    store.record(Exchange(notebook="n", host="h", model="m", messages=messages))  # a later write too
    records = store.recent(None)
    assert len(records) == 2 and records[0].reply == clean_text(text)
    assert records[0].request_key == key
    assert clean_text("a\ud83d" + "\ude00b") == "a😀b"


# -- settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [10**400, 1e308 * 10, 1e308, math.inf, math.nan, -1, 1e10])
@pytest.mark.parametrize("shape", ["input", "output", "per_call", "pair"])
def test_prices_that_cannot_cost_are_refused(number: Any, shape: str) -> None:
    table = {"m": (number, 1) if shape == "pair" else {shape: number}}
    with pytest.raises(ConfigError):
        check_setting("prices", table)


@settings(max_examples=200)
@given(st.floats(min_value=0, max_value=1e9), st.integers(0, 2**62))
def test_any_accepted_price_gives_a_finite_cost(price: float, tokens: int) -> None:
    check_setting("prices", {"m": {"input": price, "output": price}})
    assert math.isfinite(price * tokens / 1e6)


CONTROL = [
    "\x1b]52;c;aGk=\x07",
    "\x1b[8m",
    "\x9b2J",
    "a\x00b",
    "\u202e",
    "\u2066x",
    "a\u2028b",
    "\x7f",
    "\x85",
]


@pytest.mark.parametrize("bad", CONTROL)
@pytest.mark.parametrize("name", ["currency", "model", "system", "base_url"])
def test_text_settings_refuse_control_characters(name: str, bad: str) -> None:
    value = f"http://127.0.0.1:9/v1{bad}" if name == "base_url" else f"x{bad}y"
    with pytest.raises(ConfigError):
        check_setting(name, value)


def test_system_keeps_lines_and_tabs_and_cleans_surrogates() -> None:
    assert check_setting("system", "a\n\tb\r\nc\ud800") == "a\n\tb\r\nc\ufffd"


@pytest.mark.parametrize("name", ["currency", "model", "system", "base_url"])
@pytest.mark.parametrize("start", [0, 3, 10, 20])
def test_text_settings_refuse_a_known_key_without_its_prefix(name: str, start: int) -> None:
    run = KEY[start : start + 12]
    value = f"http://127.0.0.1:9/{run}" if name == "base_url" else run
    with pytest.raises(ConfigError) as info:
        check_setting(name, value)
    assert not shows_run(str(info.value))


@pytest.mark.parametrize("currency", ["¥", "$", "€", "CNY", "US$ ", "人民币元", "", "12345678"])
def test_a_short_printable_currency_is_kept(currency: str) -> None:
    assert check_setting("currency", currency) == currency


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("123456789", "at most 8 characters, not 9"),
        ("¥" * 1_000_000, "at most 8 characters, not 1000000"),
        ("x" * 50 + "\x1b[8m", "U+001B"),
        ("€\u200b", "U+200B"),
        ("\ufeff$", "U+FEFF"),
        ("\u00ad¥", "U+00AD"),
        ("\u00a0€", "U+00A0"),
        ("$\x1b[8m", "U+001B"),
        ("¥\n", "U+000A"),
    ],
)
def test_a_currency_that_would_flood_or_hide_in_every_status_line_is_refused(value: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_setting("currency", value)
    message = str(info.value)
    assert said in message and "\n" not in message and len(message) < 200, message


def test_a_long_currency_is_refused_at_every_door(
    ip: InteractiveShell, capsys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from shenma_magic import Session

    with pytest.raises(ConfigError):
        Session(currency="€" * 100_000, log=False)
    # A long magic line is slow in IPython itself (its variable expansion), so that one is shorter.
    for cell in ("%config ChatMagics.currency = '€' * 100_000", "%chat currency " + "€" * 2_000):
        caplog.clear()
        ip.run_cell(cell)
        captured = capsys.readouterr()
        shown = captured.out + captured.err + caplog.text  # %config reports through logging
        assert "at most 8 characters" in shown and "Traceback" not in shown, shown[:300]
        assert len(shown) < 500
    assert ip.magics_manager.registry["ChatMagics"].session.settings.currency == "¥"


# -- prompts and tools --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", SURROGATES)
def test_a_variable_with_surrogates_fills_encodable_text(value: str) -> None:
    fill_variables("say {v}", {"v": value}).encode("utf-8")


def _tool(fn: Callable[..., Any]) -> Tool:
    return Tool(name=fn.__name__, function=fn, spec={}, trusted=True)


@pytest.mark.parametrize("exc", [SystemExit(3), SystemExit(), GeneratorExit(), BaseException("odd")])
def test_a_tool_raising_base_exceptions_gives_error_text(exc: BaseException) -> None:
    def boom() -> str:
        raise exc

    text, ok = run_tool(_tool(boom), {})
    assert not ok and text.startswith(f"error: {type(exc).__name__}")


def test_keyboard_interrupt_in_a_tool_is_not_swallowed() -> None:
    def stop() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tool(_tool(stop), {})


@pytest.mark.parametrize("value", SURROGATES)
def test_tool_results_are_encodable(value: str) -> None:
    def give() -> str:
        return value

    text, ok = run_tool(_tool(give), {})
    assert ok
    text.encode("utf-8")


@pytest.mark.parametrize("limit", range(12, 80, 3))
@pytest.mark.parametrize("start", [0, 3, 7])
def test_describe_call_masks_known_keys_at_every_cut(limit: int, start: int) -> None:
    shown = describe_call("f", '{"q": "token=' + KEY[start:] + '"}', limit=limit)
    assert not shows_run(shown), shown


# -- through the magic --------------------------------------------------------------------------------


@pytest.fixture
def ip(chat_shell: Callable[..., InteractiveShell]) -> InteractiveShell:
    return chat_shell(KEY)


def test_a_tool_raising_keyboard_interrupt_stops_the_turn_in_one_line(
    ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    ip.run_cell(
        "import shenma_magic\n"
        "@shenma_magic.tool(trusted=True)\n"
        "def kb(q: str) -> str:\n"
        '    "stops"\n'
        "    raise KeyboardInterrupt\n"
    )
    relay.enqueue(Scripted(chunks=tool_call_stream("kb", '{"q": "x"}')))
    result = ip.run_cell("%%chat\nuse the tool")
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "interrupted" in captured.out
    assert result.error_in_exec is None or type(result.error_in_exec).__name__ == "ChatInterrupted"
    relay.enqueue(Scripted(chunks=stream_of(["next turn works"])))
    ip.run_cell("%%chat\nagain")
    assert "next turn works" in capsys.readouterr().out


# -- what the user typed, shown back ----------------------------------------------------------------------


def test_an_image_label_masks_a_known_key_in_the_url() -> None:
    from shenma_magic._images import image_part

    part = image_part(f"https://x.example/a.png?token={KEY[3:]}&x=1")
    assert not shows_run(part.label), part.label


@pytest.mark.parametrize(
    "cell",
    [
        "%chat model {bare}",
        "%%chat -m {bare}\nhello",
        "%config ChatMagics.model = '{bare}'",
        "%config ChatMagics.currency = '{bare}'",
        "%config ChatMagics.system = 'use {bare}'",
        "%config ChatMagics.base_url = 'http://127.0.0.1:9/{bare}'",
    ],
)
def test_a_known_key_without_its_prefix_is_refused_and_scrubbed(
    cell: str, ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    before = len(relay.chat_requests)
    ip.run_cell(cell.format(bare=KEY[3:]))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert not shows_run(captured.out + captured.err)
    assert len(relay.chat_requests) == before
    assert not shows_run(str(ip.user_ns.get("In", [""])[-1])), "the key stays in the history"


# -- cosmetic: absurd waits and doubled endpoints ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/v1/chat/completions/chat/completions",
        "http://127.0.0.1:9/v1/completions/completions",
        "http://127.0.0.1:9/v1/models/chat/completions",
        "http://127.0.0.1:9/v1/chat/completions/models/",
    ],
)
def test_a_path_naming_an_endpoint_twice_is_refused(url: str) -> None:
    from shenma_magic._urls import parse_base_url

    with pytest.raises(ConfigError):
        parse_base_url(url)


@pytest.mark.parametrize("suffix", ["", "/", "/chat/completions", "/completions", "/models"])
def test_one_endpoint_is_still_stripped(suffix: str) -> None:
    from shenma_magic._urls import parse_base_url

    assert parse_base_url(f"http://127.0.0.1:9/v1{suffix}").path == "/v1"


@pytest.mark.parametrize("header", ["251606131195", "1e400", "inf", "nan", "-5", "86401"])
def test_an_absurd_retry_after_is_not_shown(
    header: str, ip: InteractiveShell, relay: Relay, capsys: Any
) -> None:
    ip.run_line_magic("config", "ChatMagics.max_retries = 0")
    relay.enqueue(Scripted.error(429, "slow down", headers={"Retry-After": header}))
    ip.run_cell("%%chat\nhello")
    out = capsys.readouterr().out
    assert "HTTP 429" in out or "429" in out, out
    assert header not in out.replace("HTTP 429", "") and " inf s" not in out and "nan s" not in out, out
