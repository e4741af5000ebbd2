"""Variables in prompts, and the conversation kept between cells."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from shenma_magic._errors import ConfigError
from shenma_magic._prompt import Conversation, fill_variables

NS = {
    "name": "鲁迅",
    "df": SimpleNamespace(shape=(3, 4), columns=["a", "b"]),
    "cfg": {"lang": "zh", 1: "one", "nested": {"k": "v"}},
    "items": ["x", "y"],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("who is {name}?", "who is 鲁迅?"),
        ("shape {df.shape}", "shape (3, 4)"),
        ("cols {df.columns[0]}", "cols a"),
        ("lang {cfg[lang]} {cfg['lang']} {cfg[\"lang\"]}", "lang zh zh zh"),
        ("int key {cfg[1]} list {items[1]}", "int key one list y"),
        ("nested {cfg[nested][k]}", "nested v"),
        # Anything that does not resolve stays exactly as written.
        ("unknown {nope} and {name.nope} and {items[9]}", "unknown {nope} and {name.nope} and {items[9]}"),
        ('code {"a": 1} and {x: 1} and f"{name!r}"', 'code {"a": 1} and {x: 1} and f"{name!r}"'),
        ("latex \\frac{1}{2} and set {1, 2}", "latex \\frac{1}{2} and set {1, 2}"),
        ("escaped {{name}} and }} and {{", "escaped {name} and } and {"),
        ("", ""),
    ],
)
def test_fill_variables(text: str, expected: str) -> None:
    assert fill_variables(text, NS) == expected


def test_fill_does_not_evaluate_calls_or_expressions() -> None:
    calls = []
    ns = {"f": lambda: calls.append(1)}
    assert fill_variables("{f()} {1+1}", ns) == "{f()} {1+1}"
    assert calls == []


def test_conversation_alternates_and_system_goes_first_once() -> None:
    conv = Conversation()
    conv.record("q1", "a1")
    conv.record("q2", "a2")
    msgs = conv.messages("q3", system="be brief")
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("system", "be brief"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
    ]
    assert [m["role"] for m in conv.messages("q3", system="be brief", max_turns=1)] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert conv.messages("q", system=None)[0]["role"] == "user"
    conv.reset()
    assert conv.messages("q") == [{"role": "user", "content": "q"}]


class _Boom:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __str__(self) -> str:
        raise self.exc


class _BadProperty:
    @property
    def value(self) -> str:
        raise RuntimeError("the database is down")

    def __getitem__(self, key: object) -> str:
        raise ValueError("no such row")


class _NotText:
    def __str__(self) -> Any:
        return 42


class _Recursive:
    def __str__(self) -> str:
        return str(self)


@pytest.mark.parametrize(
    ("text", "ns", "named", "raised"),
    [
        ("see {obj}", {"obj": _Boom(ValueError("nope"))}, "{obj}", "ValueError"),
        ("see {obj}", {"obj": _Boom(KeyError("k"))}, "{obj}", "KeyError"),  # from str(), not a lookup
        ("see {obj}", {"obj": _NotText()}, "{obj}", "TypeError"),
        ("see {obj}", {"obj": _Recursive()}, "{obj}", "RecursionError"),
        ("see {row.value}", {"row": _BadProperty()}, "{row.value}", "RuntimeError"),
        ("see {row[1]}", {"row": _BadProperty()}, "{row[1]}", "ValueError"),
        ("a {name} then {obj}", {"name": "x", "obj": _Boom(OSError("disk"))}, "{obj}", "OSError"),
    ],
)
def test_a_variable_that_cannot_be_filled_gives_one_line_naming_it(
    text: str, ns: dict[str, Any], named: str, raised: str
) -> None:
    with pytest.raises(ConfigError) as info:
        fill_variables(text, ns)
    line = str(info.value)
    assert named in line and raised in line and "\n" not in line
    assert "nothing was sent" in line


def test_lookups_that_simply_miss_still_leave_the_text_as_written() -> None:
    ns = {"row": _BadProperty(), "items": [1], "d": {}}
    assert (
        fill_variables("{row.nope} {items[5]} {d[k]} {items[x]}", ns)
        == "{row.nope} {items[5]} {d[k]} {items[x]}"
    )


@pytest.mark.parametrize(
    ("answer", "extra", "recorded", "roles"),
    [
        ("", None, False, []),
        ("   \n\t", None, False, []),
        ("the answer", None, True, ["user", "assistant"]),
        (
            "",
            [
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            True,
            ["user", "assistant", "tool"],
        ),
    ],
)
def test_the_conversation_never_holds_an_empty_assistant_message(
    answer: str, extra: list[dict[str, Any]] | None, recorded: bool, roles: list[str]
) -> None:
    conv = Conversation()
    assert conv.record("q", answer, extra) is recorded
    assert [m["role"] for turn in conv.turns for m in turn] == roles
    for turn in conv.turns:
        for message in turn:
            if message["role"] == "assistant" and not message.get("tool_calls"):
                assert (message["content"] or "").strip()
