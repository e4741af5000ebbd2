"""Variables in prompts, and the conversation kept between cells."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

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
