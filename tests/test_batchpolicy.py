"""The pure parts of shenma_magic.map: rows and templates, retry/concurrency/budget policy, progress text."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic import APIStatusError, ConfigError
from shenma_magic._batchpolicy import (
    Budget,
    Limiter,
    Tally,
    judge,
    retry_delay,
    row_cost,
)
from shenma_magic._errors import (
    APITimeoutError,
    ConnectError,
    ConnectionLostError,
    KeyInRequestError,
    ProtocolError,
    StreamError,
    error_from_response,
)
from shenma_magic._pricing import Price
from shenma_magic._progress import LineDisplay, Rate, Snapshot, TerminalDisplay, duration, progress_text
from shenma_magic._rows import RowError, Template, rows_of

# -- templates -------------------------------------------------------------------------------------------


@given(st.text())
def test_a_row_s_text_goes_in_verbatim_whatever_braces_it_holds(text: str) -> None:
    # One pass: braces in a row are never filled in turn, even with names the namespace knows.
    template = Template("A {} B {{literal}}", {"secret": "LEAK", "row": "no"})
    assert template.prompt(text) == f"A {text} B {{literal}}"


@given(st.dictionaries(st.sampled_from(["text", "lang", "n"]), st.text(), min_size=1))
def test_fields_go_in_verbatim(row: dict[str, str]) -> None:
    template = Template("[{text}|{lang}|{n}]")
    expected = "[" + "|".join(row.get(k, "{" + k + "}") for k in ("text", "lang", "n")) + "]"
    assert template.prompt(row) == expected


@pytest.mark.parametrize(
    ("template", "row", "namespace", "expected"),
    [
        ("Say {}", "hi", {}, "Say hi"),
        ("Say {} and {{}}", 3, {}, "Say 3 and {}"),
        ("{row}!", "x", {}, "x!"),
        ("{lang}: {}", "hi", {"lang": "fr"}, "fr: hi"),
        ("{lang}: {text}", {"text": "hi", "lang": "de"}, {"lang": "fr"}, "de: hi"),  # the row wins
        ("{lang}: {text}", {"text": "hi"}, {"lang": "fr"}, "fr: hi"),
        ('Reply {} or {"k": 1}: {text}', {"text": "t"}, {}, 'Reply {} or {"k": 1}: t'),  # {} stays for fields
        ("{row[first name]} {n.real}", {"first name": "Ann", "n": 3}, {}, "Ann 3"),
        ("{text[0]}", {"text": "xyz"}, {}, "x"),
        ("{missing} {text}", {"text": "t"}, {}, "{missing} t"),
    ],
)
def test_brace_rules(template: str, row: Any, namespace: dict[str, Any], expected: str) -> None:
    assert Template(template, namespace).prompt(row) == expected


@pytest.mark.parametrize(
    ("template", "row", "words"),
    [
        ("always the same", "x", "does not use the row"),
        ("{lang} only", "x", "does not use the row"),
        ("Translate {txt}", {"text": "a"}, "uses no field"),
        ("{}", {"text": "a"}, "uses no field"),  # {} is not a row of fields
    ],
)
def test_a_template_that_ignores_the_row_is_refused(template: str, row: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Template(template, {"lang": "fr"}).check(row)


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["a list"]])
def test_a_template_is_a_string_or_a_function(bad: Any) -> None:
    with pytest.raises(ConfigError):
        Template(bad)
    with pytest.raises(ConfigError, match="empty"):
        Template("  \n")


@pytest.mark.parametrize(
    "made", [None, 3, {"role": "user"}, [], [{"content": "no role"}], ["text"], b"bytes"]
)
def test_a_template_function_must_return_a_prompt_or_messages(made: Any) -> None:
    with pytest.raises(RowError, match="must return"):
        Template(lambda row: made).prompt("x")


def test_a_template_function_s_messages_are_copied() -> None:
    messages = [{"role": "user", "content": "hi"}]
    made = Template(lambda row: messages).prompt("x")
    assert made == messages and made[0] is not messages[0]


# -- rows ------------------------------------------------------------------------------------------------


def test_rows_of_lists_iterables_and_what_is_refused() -> None:
    assert rows_of([1, 2]).total == 2 and list(rows_of((1, 2)).items) == [1, 2]
    lazy = rows_of(x for x in "ab")
    assert lazy.total is None and lazy.kind == "list" and list(lazy.items) == ["a", "b"]
    assert rows_of([]).rebuild([]) == []
    assert rows_of([1, 2, 3]).rebuild(["a"]) == ["a", None, None]  # an interrupted run
    for bad in ("text", b"bytes", {"a": 1}, 42, None):
        with pytest.raises(ConfigError):
            rows_of(bad)


def test_rows_of_pandas_keep_the_index_and_fill_the_unanswered() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3], 5: ["x", "y", "z"]}, index=["p", "q", "r"])
    rows = rows_of(df)
    assert rows.kind == "dataframe" and rows.total == 3
    assert list(rows.items) == [{"a": 1, "5": "x"}, {"a": 2, "5": "y"}, {"a": 3, "5": "z"}]
    out = rows.rebuild(["A"])  # an interrupted run answered the first row only
    assert list(out.index) == ["p", "q", "r"] and list(out) == ["A", None, None] and out.dtype == object
    series = rows_of(pd.Series([{"k": 1}, "v"], index=[7, 8]))
    assert series.kind == "series" and list(series.items) == [{"k": 1}, "v"]


# -- policy ----------------------------------------------------------------------------------------------


def _status(status: int, message: str = "", retry_after: float | None = None) -> APIStatusError:
    body = b'{"error": {"message": "%s"}}' % message.encode() if message else b""
    return error_from_response(status, body, retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "kind", "pushback"),
    [
        (_status(429, "slow down", 2.0), "retry", True),
        (_status(503), "retry", True),
        (_status(529), "retry", True),
        (_status(500), "retry", False),
        (_status(502), "retry", False),
        (_status(504), "retry", False),
        (_status(400, "bad"), "fail", False),
        (_status(404), "fail", False),
        (_status(422), "fail", False),
        (_status(401, "invalid key"), "fatal", False),
        (_status(402), "fatal", False),
        (_status(429, "insufficient_quota"), "fatal", False),
        (_status(403, "额度已用尽"), "fatal", False),
        (_status(503, "无可用渠道"), "fatal", False),
        (_status(429, "slow", 3600.0), "fatal", True),  # an hour's wait: stop rather than sit there
        (APITimeoutError("silent"), "retry", False),
        (ConnectionLostError("broke"), "retry", False),
        (ConnectError("refused"), "retry", False),
        (ProtocolError("html"), "fail", False),
        (StreamError("in stream"), "fail", False),
        (ConfigError("no key"), "fatal", False),
        (KeyInRequestError("a key in row 3"), "fail", False),
    ],
)
def test_judge(error: Any, kind: str, pushback: bool) -> None:
    verdict = judge(error)
    assert (verdict.kind, verdict.pushback) == (kind, pushback)


def test_judge_passes_retry_after_on() -> None:
    assert judge(_status(429, "x", 1.5)).wait == 1.5
    assert retry_delay(3, 1.5) == 1.5


@given(st.integers(1, 30), st.floats(0, 1))
def test_backoff_grows_is_jittered_and_capped(attempt: int, r: float) -> None:
    delay = retry_delay(attempt, None, base=0.5, cap=30.0, rng=lambda: r)
    full = min(30.0, 0.5 * 2 ** (attempt - 1))
    assert full / 2 <= delay <= full


@settings(max_examples=200)
@given(st.integers(1, 64), st.lists(st.sampled_from(["ok", "push", "stale"]), max_size=300))
def test_the_limiter_stays_between_1_and_the_bound(bound: int, events: list[str]) -> None:
    limiter = Limiter(bound)
    for event in events:
        before, epoch = limiter.limit, limiter.epoch
        if event == "ok":
            limiter.success()
            assert limiter.limit >= before
        elif event == "push":
            assert limiter.pushback(limiter.epoch)
            assert limiter.limit == max(1, int(before / 2)) or limiter.limit <= max(1, (before + 1) // 2)
        else:
            assert not limiter.pushback(epoch - 1)  # a request from before the last lowering
            assert limiter.limit == before
        assert 1 <= limiter.limit <= bound


def test_the_limiter_halves_once_per_burst_and_comes_back() -> None:
    limiter = Limiter(64)
    epoch = limiter.epoch
    assert limiter.pushback(epoch) and limiter.limit == 32
    for _ in range(40):  # the rest of the same burst
        assert not limiter.pushback(epoch)
    assert limiter.limit == 32
    successes = 0
    while limiter.limit < 64:
        limiter.success()
        successes += 1
    # One per round at first, then (after two quiet rounds) ramping: well under 32 rounds of 32.
    assert successes < 200


def test_row_cost() -> None:
    price = Price(1.0, 2.0, None)
    assert row_cost(price, 1_000_000, 500_000) == pytest.approx(2.0)
    assert row_cost(Price(None, None, 0.3), 10, 10) == 0.3
    assert row_cost(Price(1.0, None, None), 10, 10) is None
    assert row_cost(None, 10, 10) is None


@settings(max_examples=200)
@given(
    st.floats(0.01, 5),
    st.lists(st.tuples(st.integers(1, 2000), st.floats(0, 1)), min_size=1, max_size=60),
)
def test_the_budget_never_admits_past_its_limit_when_estimates_hold(
    limit: float, requests: list[tuple[int, float]]
) -> None:
    price = Price(1000.0, 1000.0, None)
    budget = Budget(limit, price, max_tokens=50)
    for row, (prompt, share) in enumerate(requests):
        if budget.admit(row, prompt):
            # What the request really cost: at most its estimate (max_tokens bounds the answer).
            completion = int(50 * share)
            budget.settle(
                row,
                row_cost(price, prompt, completion),
                estimated_prompt=prompt,
                prompt=prompt,
                completion=completion,
                answered=True,
            )
        assert budget.spent + budget.in_flight <= limit + 1e-9


def test_the_tally_s_summary() -> None:
    tally = Tally(total=240)
    tally.done, tally.from_store, tally.retries = 238, 12, 1
    tally.fail(17, "HTTP 400 Bad Request: nope")
    tally.fail(203, "HTTP 400 Bad Request: nope")
    tally.charge(9000, 120, 0.83, False)
    assert tally.summary("¥", 48.21) == (
        "238 done, 2 failed (HTTP 400 Bad Request: nope — rows 17, 203) · 12 from the store · 1 retry · "
        "9,120 tokens · ¥0.83 · 48.2 s"
    )
    tally.stopped = "stopped before max_cost ¥1.00"
    assert tally.summary("¥").endswith("— stopped before max_cost ¥1.00")
    empty = Tally()
    assert empty.summary() == "0 done"


def test_the_summary_masks_a_key_a_server_echoed() -> None:
    tally = Tally()
    tally.fail(0, "HTTP 401: invalid key sk-abcdefghijklmnopqrstuvwxyz012345")
    assert "sk-abcdefghijklmnop" not in tally.summary()


# -- progress --------------------------------------------------------------------------------------------


def test_progress_text_says_what_is_known_and_leaves_out_the_rest() -> None:
    snap = Snapshot(
        total=5000,
        done=310,
        failed=2,
        in_flight=16,
        waiting=3,
        rate=24.1,
        eta=194,
        tokens=41200,
        money="¥0.83",
    )
    assert progress_text(snap) == (
        "312/5,000 · 24.1 rows/s · ETA 3 min 14 s · 16 in flight · 3 waiting to retry · 2 failed · "
        "41,200 tokens · ¥0.83"
    )
    assert progress_text(Snapshot(total=None, done=7)) == "7 rows"
    assert duration(5) == "5 s" and duration(3600 + 5 * 60) == "1 h 05 min"


def test_the_rate_is_recent_and_gives_an_eta() -> None:
    rate = Rate(window=10)
    assert rate.per_second() is None and rate.eta(10) is None
    for second in range(31):
        rate.add(float(second), second if second <= 20 else 20 + 10 * (second - 20))  # faster after 20 s
    per_second = rate.per_second()
    assert per_second is not None and 9 < per_second <= 10  # the recent pace, not the average
    eta = rate.eta(100)
    assert eta is not None and 9 < eta < 12


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_plain_stream_gets_a_line_now_and_then_and_the_summary() -> None:
    out, clock = io.StringIO(), Clock()
    display = LineDisplay(out, every=10, clock=clock)
    display.note("estimate: ~¥1")
    for tick in range(100):  # 30 s of updates, 0.3 s apart
        clock.now = tick * 0.3
        display.update(Snapshot(total=100, done=tick))
    display.close("100 done")
    lines = out.getvalue().splitlines()
    assert lines[0] == "estimate: ~¥1" and lines[-1] == "100 done"
    assert 2 <= len(lines) - 2 <= 3 and all("\r" not in line and "\x1b" not in line for line in lines)


def test_a_terminal_gets_one_line_redrawn_in_place() -> None:
    out, clock = io.StringIO(), Clock()
    display = TerminalDisplay(out, every=0.2, clock=clock)
    for tick in range(50):
        clock.now = tick * 0.1
        display.update(Snapshot(total=50, done=tick, tokens=10 * tick))
    display.note("⚠ something")
    display.close("50 done")
    text = out.getvalue()
    assert text.count("\n") == 2  # the note and the summary: the bar itself never scrolls
    assert 20 <= text.count("\r\x1b[K") <= 27
    assert text.endswith("⚠ something\n" + "50 done\n") or text.endswith("50 done\n")
