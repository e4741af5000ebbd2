"""JSON replies: the response_format sent, recovering the JSON from what models really write, checking it."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from shenma_magic._errors import ConfigError, ShenmaError
from shenma_magic._jsonout import (
    JSONRecoveryError,
    JSONValidationError,
    recover_json,
    response_format,
    validate_against,
)
from tests._util import imported_by

PERSON = {
    "title": "Person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}

# -- response_format -----------------------------------------------------------------------------------------


def test_no_schema_is_json_object() -> None:
    assert response_format() == {"type": "json_object"}
    assert response_format(None, name="ignored") == {"type": "json_object"}


def test_dict_schema() -> None:
    fmt = response_format(PERSON)
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": PERSON, "strict": False},
    }


@pytest.mark.parametrize(
    ("schema", "name", "expected"),
    [
        ({"type": "object"}, None, "reply"),
        ({"type": "object", "title": "Person record"}, None, "Person_record"),
        ({"type": "object", "title": "人物"}, None, "reply"),  # nothing usable left
        ({"type": "object", "title": "人物 card"}, None, "card"),
        ({"type": "object", "title": 5}, None, "reply"),
        ({"type": "object", "title": "x" * 100}, None, "x" * 64),
        ({"type": "object", "title": "T"}, "explicit-name", "explicit-name"),
        ({"type": "object"}, "has space", "has_space"),
    ],
)
def test_schema_names_are_valid_for_openai(schema: dict[str, Any], name: str | None, expected: str) -> None:
    assert response_format(schema, name=name)["json_schema"]["name"] == expected


def test_dict_schema_is_copied() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = response_format(schema)
    schema["properties"]["a"]["type"] = "integer"
    assert fmt["json_schema"]["schema"]["properties"]["a"]["type"] == "string"


@pytest.mark.parametrize("schema", ["Person", ["a"], 42, {"a": {1, 2}}, object()])
def test_other_schemas_are_config_errors(schema: Any) -> None:
    with pytest.raises(ConfigError) as info:
        response_format(schema)
    assert info.value.hint


def test_pydantic_model_class() -> None:
    pytest.importorskip("pydantic")
    import pydantic  # the typed module: importorskip returns Any, which mypy cannot subclass

    class City(pydantic.BaseModel):
        name: str
        population: int

    fmt = response_format(City)
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "City"
    assert fmt["json_schema"]["schema"] == City.model_json_schema()
    assert fmt["json_schema"]["strict"] is False
    with pytest.raises(ConfigError) as info:
        response_format(City(name="x", population=1))
    assert "class" in info.value.hint


# -- recover_json: what works --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2, 3]\n", [1, 2, 3]),
        ("42", 42),
        ('"只是文字"', "只是文字"),
        ("null", None),
        ('\ufeff{"bom": true}', {"bom": True}),
        ('{"text": "第一行\n第二行"}', {"text": "第一行\n第二行"}),  # a raw newline inside a string
        ('Sure!\n```json\n{"城市": "北京"}\n```\nAnything else?', {"城市": "北京"}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('```JSON\n{"a": 1}\n```', {"a": 1}),
        ('~~~json\n{"a": 1}\n~~~', {"a": 1}),
        ('```json {"a": 1}```', {"a": 1}),
        ('```json\n{"a": 1}', {"a": 1}),  # fence never closed
        ('````json\n{"a": "```"}\n````', {"a": "```"}),  # a longer fence around backticks
        ('```json\n{"code": "```py\\nx\\n```"}\n```', {"code": "```py\nx\n```"}),  # fence text inside
        ('Here you go: {"a": [1, {"b": 2}]} — hope that helps.', {"a": [1, {"b": 2}]}),
        ('结果如下：{"答案": 42}。', {"答案": 42}),
        ('First {"a": 1}, and again: {"a": 1}', {"a": 1}),  # the same value twice is one value
        ('<think>maybe {"draft": 1}?</think>\n{"final": 2}', {"final": 2}),
        ('```python\nd = {"x": 1}\n```\nAnswer:\n```json\n{"y": 2}\n```', {"y": 2}),  # only json fences
        ('Here: {not json} and {"real": true}', {"real": True}),
        ("Two identical fences:\n```json\n[1]\n```\n```json\n[1]\n```", [1]),
    ],
)
def test_recover_json(text: str, value: Any) -> None:
    assert recover_json(text) == value


def test_a_fenced_block_wins_over_json_in_the_prose() -> None:
    text = 'The schema says {"type": "object"}, so:\n```json\n{"name": "张三"}\n```'
    assert recover_json(text) == {"name": "张三"}


# -- recover_json: what does not -----------------------------------------------------------------------------


def _error(text: str) -> JSONRecoveryError:
    with pytest.raises(JSONRecoveryError) as info:
        recover_json(text)
    assert isinstance(info.value, ShenmaError) and info.value.hint
    assert "\n" not in info.value.message  # one line
    return info.value


@pytest.mark.parametrize("text", ["", "   \n\t", "<think>only thinking</think>"])
def test_empty_replies(text: str) -> None:
    assert "no JSON" in _error(text).message


def test_prose_only() -> None:
    err = _error("抱歉，我无法回答这个问题。")
    assert err.message == "the reply is not JSON: 抱歉，我无法回答这个问题。"


def test_long_prose_is_excerpted() -> None:
    err = _error("word " * 1000)
    assert len(err.message) < 150 and err.message.endswith("…")


@pytest.mark.parametrize(
    "text",
    [
        'a {"a": 1} and {"b": 2}',
        'Option A:\n```json\n{"a": 1}\n```\nOption B:\n```json\n{"b": 2}\n```',
        "the list [1] and the flag [true]",  # 1 and true are different JSON values
    ],
)
def test_two_different_values_are_ambiguous(text: str) -> None:
    assert _error(text).message == "the reply holds 2 JSON values; cannot tell which one is meant"


def test_three_values() -> None:
    assert "holds 3 JSON values" in _error("[1] [2] [3]").message


def test_truncated_reply_says_it_was_cut_short() -> None:
    err = _error('{"items": [{"name": "a"}, {"name": "b"}, {"na')
    assert "cut short" in err.message and "max_tokens" in err.hint


def test_broken_object_does_not_yield_its_inner_object() -> None:
    # The outer object has a trailing comma; {"b": 1} inside it is not the answer.
    err = _error('Result: {"a": {"b": 1},}')
    assert err.message.startswith("the reply is not JSON (Expecting property name")


def test_broken_json_fence_is_reported_as_such() -> None:
    err = _error('```json\n{"a": 1,\n "b": }\n```')
    assert err.message.startswith("the reply's ```json block is not valid JSON: Expecting value at line 2")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000,
        "{" * 200_000,
        '{"a": ' * 50_000,  # nested far past Python's recursion limit
        "x {" * 100_000,
        "[1, " * 100_000,
        '{"' * 100_000,  # every opener fails a few characters in
        '[" ' * 100_000,
        'x ["a' * 60_000,
    ],
)
def test_pathological_input_is_fast(text: str) -> None:
    # Each of these took minutes when every failed attempt cost time proportional to the text before it.
    started = time.perf_counter()
    with pytest.raises(JSONRecoveryError):
        recover_json(text)
    assert time.perf_counter() - started < 5


def test_numbers_over_pythons_digit_limit_are_an_error_not_a_crash() -> None:
    for text in ("1" * 5000, "x [" + "1" * 5000 + "]", "```json\n" + "1" * 5000 + "\n```"):
        with pytest.raises(JSONRecoveryError):
            recover_json(text)


def test_a_number_at_the_edge_of_the_scan_window_is_read_whole() -> None:
    assert recover_json("x [" + "1" * 4094 + "] y") == [int("1" * 4094)]


def test_huge_valid_reply() -> None:
    value = {"rows": [{"i": i, "名": "值" * 10} for i in range(50_000)]}
    text = "Here it is:\n```json\n" + json.dumps(value, ensure_ascii=False) + "\n```"
    assert recover_json(text) == value


# -- validate_against ----------------------------------------------------------------------------------------


def test_no_schema_accepts_anything() -> None:
    value = object()
    assert validate_against(value, None) is value


def test_dict_schema_light_check() -> None:
    value = {"name": "李雷", "age": 30, "extra": True}
    assert validate_against(value, PERSON) is value


@pytest.mark.parametrize(
    ("value", "schema", "fragment"),
    [
        ([1], PERSON, "the reply is a JSON array, but the schema asks for object"),
        ("x", {"type": ["object", "array"]}, "is a JSON string, but the schema asks for object or array"),
        ({"name": "x"}, PERSON, "lacks the required key 'age'"),
        ({}, PERSON, "lacks the required keys 'name', 'age'"),
        (True, {"type": "integer"}, "is a JSON boolean"),
        (1.5, {"type": "integer"}, "is a JSON number"),
        (True, {"type": "number"}, "is a JSON boolean"),
        (None, {"type": "string"}, "is a JSON null"),
    ],
)
def test_dict_schema_mismatches(value: Any, schema: dict[str, Any], fragment: str) -> None:
    with pytest.raises(JSONValidationError) as info:
        validate_against(value, schema)
    assert fragment in info.value.message
    assert isinstance(info.value, JSONRecoveryError)  # one except clause catches both


@pytest.mark.parametrize(
    ("value", "schema"),
    [
        (3.0, {"type": "integer"}),  # JSON Schema counts 3.0 as an integer
        (3, {"type": "number"}),
        (None, {"type": ["string", "null"]}),
        ({"a": 1}, {"type": "unknown-type"}),  # types it does not know are not checked
        ([], {"required": ["a"]}),  # "required" only means something for objects
        ("anything", {}),
    ],
)
def test_dict_schema_accepts(value: Any, schema: dict[str, Any]) -> None:
    assert validate_against(value, schema) == value


def test_pydantic_validation() -> None:
    pytest.importorskip("pydantic")
    import pydantic  # the typed module: importorskip returns Any, which mypy cannot subclass

    class Person(pydantic.BaseModel):
        name: str
        age: int

    person = validate_against({"name": "韩梅梅", "age": "30"}, Person)
    assert isinstance(person, Person) and person.age == 30
    with pytest.raises(JSONValidationError) as info:
        validate_against({"name": "x", "age": "old"}, Person)
    assert info.value.message.startswith("the reply does not match Person: age: ")
    with pytest.raises(JSONValidationError) as info:
        validate_against([], Person)
    assert "(top level)" in info.value.message


def test_validate_against_bad_schema() -> None:
    with pytest.raises(ConfigError):
        validate_against({}, "Person")


# -- nothing heavy at import ---------------------------------------------------------------------------------


def test_pydantic_is_never_imported_for_dict_schemas() -> None:
    code = (
        "import shenma_magic._jsonout as j\n"
        "fmt = j.response_format({'type': 'object'})\n"
        "j.validate_against(j.recover_json('{\"a\": 1}'), fmt['json_schema']['schema'])\n"
    )
    assert imported_by(code, ["pydantic", "IPython", "requests"]) == []


def test_dict_schemas_work_without_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)
    assert response_format(PERSON)["json_schema"]["name"] == "Person"
    assert validate_against({"name": "a", "age": 1}, PERSON) == {"name": "a", "age": 1}
