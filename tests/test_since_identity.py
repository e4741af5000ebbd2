"""``--since`` parsing (shenma_magic._since) and the notebook's identity (shenma_magic._identity)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._errors import ConfigError
from shenma_magic._identity import notebook_identity
from shenma_magic._since import parse_since

NOW = datetime(2026, 12, 1, 15, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "back"),
    [
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=30)),
        ("24h", timedelta(hours=24)),
        ("1h", timedelta(hours=1)),
        ("2w", timedelta(weeks=2)),
        (" 3 days ", timedelta(days=3)),
        ("12 HOURS", timedelta(hours=12)),
        ("1week", timedelta(weeks=1)),
    ],
)
def test_spans_count_back_from_now(text: str, back: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - back


def test_days_start_at_local_midnight() -> None:
    today = parse_since("today", NOW)
    assert today.tzinfo is not None and (today.hour, today.minute, today.second) == (0, 0, 0)
    assert today <= NOW < today + timedelta(days=1, hours=1)  # a DST day may be 25 hours long
    yesterday = parse_since("yesterday", NOW)
    assert (yesterday.hour, yesterday.minute) == (0, 0)
    assert timedelta(hours=23) <= today - yesterday <= timedelta(hours=25)
    date = parse_since("2026-11-01", NOW)
    assert date.date().isoformat() == "2026-11-01" and (date.hour, date.minute) == (0, 0)
    assert parse_since("Today", NOW) == today


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "7",
        "d",
        "-7d",
        "7x",
        "7 d 3h",
        "0d",
        "2026-13-01",
        "2026-02-30",
        "2027-01-01",
        "1969-01-01",
        "７d",
        "7d; drop table",
        "99999999d",
        "2026/11/01",
        "last week",
        "7d\n",
    ],
)
def test_anything_else_is_one_clear_line(text: str) -> None:
    if text == "7d\n":  # surrounding whitespace is not an error
        assert parse_since(text, NOW) == NOW - timedelta(days=7)
        return
    with pytest.raises(ConfigError) as info:
        parse_since(text, NOW)
    message = str(info.value)
    assert "\n" not in message and "7d" in message and "today" in message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_text_is_a_time_before_now_or_one_line(text: str) -> None:
    try:
        moment = parse_since(text, NOW)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert moment.tzinfo is not None and moment <= NOW


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=999_999), st.sampled_from(["d", "h", "w"]))
def test_any_span_is_exact_or_refused(count: int, unit: str) -> None:
    try:
        moment = parse_since(f"{count}{unit}", NOW)
    except ConfigError as exc:
        assert "before year 1" in str(exc)
    else:
        per = {"d": timedelta(days=1), "h": timedelta(hours=1), "w": timedelta(weeks=1)}[unit]
        assert NOW - moment == count * per


# -- identity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "user_ns", "cwd", "expected"),
    [
        ({"JPY_SESSION_NAME": "/home/u/work/a.ipynb"}, {}, "/home/u/work", "/home/u/work/a.ipynb"),
        ({"JPY_SESSION_NAME": "/home/u/work/./x/../a.ipynb"}, {}, "/", "/home/u/work/a.ipynb"),
        # relative to the server's root; the kernel runs in the notebook's folder
        ({"JPY_SESSION_NAME": "work/a.ipynb"}, {}, "/home/u/work", "/home/u/work/a.ipynb"),
        ({"JPY_SESSION_NAME": "a.ipynb"}, {}, "/home/u/work", "/home/u/work/a.ipynb"),
        ({"JPY_SESSION_NAME": "other/a.ipynb"}, {}, "/home/u/work", "/home/u/work/other/a.ipynb"),
        # jupyter-server wins over VS Code when both say something; blank says nothing
        ({"JPY_SESSION_NAME": "/srv/a.ipynb"}, {"__vsc_ipynb_file__": "/v/b.ipynb"}, "/", "/srv/a.ipynb"),
        ({"JPY_SESSION_NAME": "  "}, {"__vsc_ipynb_file__": "/v/b.ipynb"}, "/", "/v/b.ipynb"),
        ({}, {"__vsc_ipynb_file__": "/v/dir/../b.ipynb"}, "/", "/v/b.ipynb"),
        ({}, {"__vsc_ipynb_file__": 42}, "/home/u", "/home/u"),
        ({}, {}, "/home/u/project/", "/home/u/project"),
    ],
)
def test_identity(environ: dict[str, str], user_ns: dict[str, object], cwd: str, expected: str) -> None:
    assert notebook_identity(environ, user_ns, cwd) == expected


def test_identity_is_absolute_for_a_relative_cwd() -> None:
    assert notebook_identity({}, {}, ".") == os.path.normpath(os.getcwd())
    assert os.path.isabs(notebook_identity({"JPY_SESSION_NAME": "a.ipynb"}, {}, "sub"))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=40))
def test_identity_is_always_an_absolute_normal_path(name: str) -> None:
    for environ, ns in (({"JPY_SESSION_NAME": name}, {}), ({}, {"__vsc_ipynb_file__": name})):
        got = notebook_identity(environ, ns, "/home/u/work")
        assert os.path.isabs(got) and got == os.path.normpath(got)
