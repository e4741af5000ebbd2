"""Tool calls: specs from plain functions, the registry, parsing the model's arguments, running calls."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import json
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypedDict, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shenma_magic._errors import ConfigError, ShenmaError
from shenma_magic._tools import (
    RESULT_LIMIT,
    Tool,
    ToolError,
    ToolRegistry,
    describe_call,
    describe_message,
    parse_arguments,
    run_tool,
    tool_messages,
    tool_spec,
)
from tests._util import imported_by


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def params(fn: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = tool_spec(fn)["function"]["parameters"]
    return parameters


def tool(fn: Any, *, trusted: bool = False) -> Tool:
    return ToolRegistry().add(fn, trusted=trusted)


# -- specs: descriptions from docstrings ---------------------------------------------------------------------


def weather(city: str, days: int = 3, *args: Any, unit: Literal["c", "f"] = "c", **kwargs: Any) -> str:
    """Get the weather forecast
    for a city.

    A longer explanation that is not part of the summary.

    Args:
        city (str): The city, in Chinese or English,
            e.g. 北京.
        days: How many days ahead.

        unit: Celsius or Fahrenheit.

    Returns:
        The forecast as text.
    """
    return f"{city}:{days}:{unit}"


def test_google_docstring_spec() -> None:
    spec = tool_spec(weather)
    assert spec["type"] == "function"
    function = spec["function"]
    assert function["name"] == "weather"
    assert function["description"] == "Get the weather forecast for a city."
    p = function["parameters"]
    assert p["type"] == "object"
    assert p["additionalProperties"] is False
    assert p["required"] == ["city"]
    assert list(p["properties"]) == ["city", "days", "unit"]  # *args and **kwargs are left out
    assert p["properties"]["city"] == {
        "type": "string",
        "description": "The city, in Chinese or English, e.g. 北京.",
    }
    assert p["properties"]["days"] == {"type": "integer", "description": "How many days ahead.", "default": 3}
    assert p["properties"]["unit"] == {
        "type": "string",
        "enum": ["c", "f"],
        "description": "Celsius or Fahrenheit.",
        "default": "c",
    }
    json.dumps(spec)  # the whole spec is JSON


# `a` is typed by the docstring alone, on purpose.
def numpy_style(a, b: float, c: int = 0, d: str = "") -> None:  # type: ignore[no-untyped-def]
    """Add things up.

    Parameters
    ----------
    a : int
        The first one,
        over two lines.
    b, c : number
        Both of these.
    *args
        Not a parameter of this function.

    Returns
    -------
    None
        Nothing, and ``d`` is not described.
    """


def test_numpy_docstring_spec() -> None:
    p = params(numpy_style)
    assert p["properties"]["a"] == {"description": "The first one, over two lines."}  # unannotated: any
    assert p["properties"]["b"]["description"] == "Both of these."
    assert p["properties"]["c"]["description"] == "Both of these."
    assert "description" not in p["properties"]["d"]
    assert p["required"] == ["a", "b"]
    assert tool_spec(numpy_style)["function"]["description"] == "Add things up."


def sphinx_style(x: dict[str, int], y: bool, z: str = "") -> None:
    """Sphinx style.

    :param x: the mapping,
        continued here.
    :type x: dict
    :param bool y: the flag
    :returns: nothing
    :raises ValueError: never
    """


def test_sphinx_docstring_spec() -> None:
    p = params(sphinx_style)
    assert p["properties"]["x"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "description": "the mapping, continued here.",
    }
    assert p["properties"]["y"] == {"type": "boolean", "description": "the flag"}
    assert "description" not in p["properties"]["z"]
    assert tool_spec(sphinx_style)["function"]["description"] == "Sphinx style."


def test_summary_ending_in_a_colon_is_still_the_summary() -> None:
    def search(query: str) -> str:
        """Search the web:

        Args:
            query: what to look for
        """
        return query

    spec = tool_spec(search)["function"]
    assert spec["description"] == "Search the web:"
    assert spec["parameters"]["properties"]["query"]["description"] == "what to look for"


def test_docstring_of_only_sections_has_no_summary() -> None:
    def f(x: int) -> int:
        """Args:
        x: the x
        """
        return x

    assert "description" not in tool_spec(f)["function"]


def test_no_docstring_means_no_description_key() -> None:
    def bare(x: int) -> int:
        return x

    function = tool_spec(bare)["function"]
    assert "description" not in function
    assert function["parameters"]["properties"] == {"x": {"type": "integer"}}


def test_chinese_docstring() -> None:
    def 查询(城市: str) -> str:
        """查询天气。

        Args:
            城市: 城市名称
        """
        return 城市

    # Chinese identifiers are valid Python but not valid tool names: the name must be given.
    with pytest.raises(ConfigError):
        tool_spec(查询)
    spec = tool_spec(查询, name="weather_cn")["function"]
    assert spec["description"] == "查询天气。"
    # A Chinese parameter name is not matched by the docstring patterns, and nothing breaks.
    assert spec["parameters"]["properties"]["城市"]["type"] == "string"


def test_no_parameters() -> None:
    def now() -> str:
        """The time."""
        return "12:00"

    assert params(now) == {"type": "object", "properties": {}, "additionalProperties": False}


# -- specs: types --------------------------------------------------------------------------------------------


class Point(TypedDict):
    x: int
    y: int


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (Any, {}),
        (Path, {"type": "string"}),
        (list, {"type": "array"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list[Any], {"type": "array"}),
        (Sequence[str], {"type": "array", "items": {"type": "string"}}),
        (set[str], {"type": "array", "items": {"type": "string"}}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (tuple[float, float], {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "minItems": 2,
                "maxItems": 2,
                "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            },
        ),
        (dict, {"type": "object"}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (dict[str, Any], {"type": "object"}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
        (Literal[1, 2.5], {"type": "number", "enum": [1, 2.5]}),
        (Literal["a", 1], {"enum": ["a", 1]}),
        (Literal["a", None], {"enum": ["a", None]}),
        (Optional[int], {"type": ["integer", "null"]}),
        (int | None, {"type": ["integer", "null"]}),
        (Union[int, str], {"type": ["integer", "string"]}),
        (Union[int, str, None], {"type": ["integer", "string", "null"]}),
        (Optional[list[int]], {"type": ["array", "null"], "items": {"type": "integer"}}),
        (Union[int, Any], {}),
        (Color, {"type": "string", "enum": ["red", "blue"]}),
        (Level, {"type": "integer", "enum": [1, 2]}),  # an IntEnum is an enum first, not just an int
        (Optional[Color], {"type": ["string", "null"], "enum": ["red", "blue", None]}),
        (Optional[dict[str, int]], {"type": ["object", "null"], "additionalProperties": {"type": "integer"}}),
        (
            Optional[Point],
            {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                        "required": ["x", "y"],
                    },
                    {"type": "null"},
                ]
            },
        ),
        (Annotated[str, "the user's name"], {"type": "string", "description": "the user's name"}),
        (
            Point,
            {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x", "y"],
            },
        ),
        (complex, {}),  # JSON cannot say it: anything
    ],
)
def test_type_schemas(hint: Any, schema: dict[str, Any]) -> None:
    def f(value):  # type: ignore[no-untyped-def]  # annotated below, at run time, with each hint
        return value

    f.__annotations__ = {"value": hint}
    assert params(f)["properties"]["value"] == schema


def test_annotated_description_wins_over_docstring() -> None:
    def f(x: Annotated[int, "from the hint"]) -> None:
        """F.

        Args:
            x: from the docstring
        """

    assert params(f)["properties"]["x"]["description"] == "from the hint"


def test_unresolvable_string_annotation_means_any() -> None:
    def f(x: NotDefinedAnywhere, y: int) -> None:  # type: ignore[name-defined]  # noqa: F821  # the point
        pass

    p = params(f)
    assert p["properties"] == {"x": {}, "y": {"type": "integer"}}


@pytest.mark.parametrize("hint", [[int], {"a": 1}, {int}, slice(1)])
def test_annotations_that_are_not_types_mean_any(hint: Any) -> None:
    # Legal Python (an annotation is any expression); unhashable ones used to crash the registration.
    def f(x: int, y: int) -> Any:
        return y

    f.__annotations__["y"] = hint
    assert params(f)["properties"] == {"x": {"type": "integer"}, "y": {}}
    assert run_tool(tool(f), {"x": 1, "y": [2]}) == ("[2]", True)


def test_defaults_that_json_cannot_hold_are_left_out() -> None:
    def f(a: Color = Color.BLUE, b: object = object(), c: Optional[int] = None) -> None:
        pass

    p = params(f)["properties"]
    assert p["a"]["default"] == "blue"
    assert "default" not in p["b"]
    assert p["c"]["default"] is None


def test_pydantic_model_parameter_hoists_definitions() -> None:
    pytest.importorskip("pydantic")
    from tests._pydantic_models import Person

    def save(person: Person) -> str:
        return f"{person.name} in {person.home.city}"

    save.__annotations__ = {"person": Person, "return": str}  # imported here: no string to resolve

    p = params(save)
    person = p["properties"]["person"]
    assert person["type"] == "object" and set(person["properties"]) == {"name", "home"}
    assert person["properties"]["home"] == {"$ref": "#/$defs/Address"}
    assert "Address" in p["$defs"]  # the reference resolves from the root of "parameters"
    assert run_tool(tool(save), {"person": {"name": "李雷", "home": {"city": "上海"}}}) == (
        "李雷 in 上海",
        True,
    )
    text, ok = run_tool(tool(save), {"person": {"name": "x"}})
    assert not ok and text.startswith("error: invalid value for person:") and "home" in text


# -- specs: names and callables ------------------------------------------------------------------------------


def test_names() -> None:
    assert tool_spec(lambda: 1, name="ok-name_1")["function"]["name"] == "ok-name_1"
    assert tool_spec(weather, name="a" * 64)["function"]["name"] == "a" * 64
    for bad in ("a" * 65, "", "has space", "dots.not.ok", "名字"):
        with pytest.raises(ConfigError):
            tool_spec(weather, name=bad)
    with pytest.raises(ConfigError) as info:
        tool_spec(lambda: 1)
    assert "<lambda>" in info.value.message and "name=" in info.value.hint


def test_not_callable() -> None:
    with pytest.raises(ConfigError, match="not a function"):
        tool_spec(42)  # type: ignore[arg-type]  # not a function, on purpose


def test_methods_partials_and_callable_objects() -> None:
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def bump(self, by: int = 1) -> int:
            """Add to the counter."""
            self.n += by
            return self.n

        def __call__(self, text: str) -> int:
            """Count characters."""
            return len(text)

    counter = Counter()
    method = tool_spec(counter.bump)["function"]
    assert method["name"] == "bump" and list(method["parameters"]["properties"]) == ["by"]  # no self
    assert run_tool(tool(counter.bump), {"by": 5}) == ("5", True)

    obj = tool_spec(counter)["function"]
    assert obj["name"] == "Counter" and obj["description"] == "Count characters."
    assert obj["parameters"]["properties"] == {"text": {"type": "string"}}

    part = tool_spec(functools.partial(weather, "北京"))["function"]
    assert part["name"] == "weather" and part["description"].startswith("Get the weather")
    assert "city" not in part["parameters"]["properties"]
    assert run_tool(tool(functools.partial(weather, "北京")), {"days": 1}) == ("北京:1:c", True)


# -- registry ------------------------------------------------------------------------------------------------


def test_registry() -> None:
    reg = ToolRegistry()
    assert len(reg) == 0 and reg.specs() == []
    added = reg.add(weather, trusted=True)
    assert added == reg.get("weather")
    assert added.name == "weather" and added.function is weather and added.trusted is True
    assert added.spec == tool_spec(weather)
    assert "weather" in reg and weather in reg and "other" not in reg and numpy_style not in reg
    assert [t.name for t in reg] == ["weather"]
    reg.add(numpy_style, name="np")
    assert [t.name for t in reg] == ["weather", "np"]
    assert reg.remove("np") is True and reg.remove("np") is False
    assert reg.get("np") is None


def test_adding_the_same_name_replaces() -> None:
    reg = ToolRegistry()
    reg.add(weather)

    def weather2(city: str) -> str:
        return city

    reg.add(weather2, name="weather")  # a re-run cell redefines the function
    assert len(reg) == 1
    tool_ = reg.get("weather")
    assert tool_ is not None and tool_.function is weather2


def test_specs_are_copies() -> None:
    reg = ToolRegistry()
    reg.add(weather)
    specs = reg.specs()
    specs[0]["function"]["name"] = "changed"
    specs[0]["function"]["parameters"]["properties"].clear()
    assert reg.specs() == [tool_spec(weather)]


def test_decorator_forms() -> None:
    reg = ToolRegistry()

    @reg.tool
    def plain(x: int) -> int:
        return x * 2

    @reg.tool(trusted=True, name="renamed")
    def other(y: str) -> str:
        return y

    assert plain(2) == 4 and other("a") == "a"  # still ordinary functions
    p, o = reg.get("plain"), reg.get("renamed")
    assert p is not None and p.trusted is False
    assert o is not None and o.trusted is True and o.function is other


# -- arguments -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   \n", {}),
        ("null", {}),
        ('{"city": "北京", "days": 2}', {"city": "北京", "days": 2}),
        ('"{\\"a\\": 1}"', {"a": 1}),  # encoded twice by the model
        ('{"text": "line\nbreak"}', {"text": "line\nbreak"}),
    ],
)
def test_parse_arguments(text: str, expected: dict[str, Any]) -> None:
    assert parse_arguments(text) == expected


def test_parse_arguments_passes_dicts_and_none() -> None:
    original = {"a": 1}
    parsed = parse_arguments(original)
    assert parsed == original and parsed is not original
    assert parse_arguments(None) == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"city": "北京"', "not valid JSON"),
        ("{'a': 1}", "not valid JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ('"just text"', "a JSON str, not an object"),
        ("42", "a JSON int, not an object"),
    ],
)
def test_bad_arguments_raise_tool_error_quoting_them(text: str, fragment: str) -> None:
    with pytest.raises(ToolError) as info:
        parse_arguments(text)
    assert fragment in info.value.message
    assert " ".join(text.split()) in info.value.message
    assert isinstance(info.value, ShenmaError) and info.value.hint


def test_bad_arguments_excerpt_is_short() -> None:
    with pytest.raises(ToolError) as info:
        parse_arguments("{" + "x" * 10_000)
    assert len(info.value.message) < 400 and "…" in info.value.message


def test_describe_call() -> None:
    assert describe_call("weather", '{"city": "北京", "days": 2}') == 'weather(city="北京", days=2)'
    assert describe_call("now", "") == "now()"
    assert describe_call("f", '{"l": [1, "a"], "n": null, "b": true}') == 'f(l=[1, "a"], n=null, b=true)'
    assert describe_call("f", '{"s": "two\\nlines"}') == 'f(s="two\\nlines")'  # stays on one line
    assert describe_call("f", "not json\n at all") == "f(not json at all)"
    long = describe_call("f", json.dumps({"text": "字" * 500}), limit=60)
    assert len(long) == 60 and long.endswith("…)") and long.startswith('f(text="字')
    assert describe_call("a_long_function_name", '{"x": 1}', limit=5).startswith("a_long_function_name(")


# -- running -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Item:
    name: str
    when: datetime.date


@pytest.mark.parametrize(
    ("result", "text"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ({"城市": "北京", "temp": 3.5}, '{"城市": "北京", "temp": 3.5}'),
        ([1, 2, None], "[1, 2, null]"),
        (None, "null"),
        (True, "true"),
        (Color.RED, '"red"'),
        ({"when": datetime.date(2025, 1, 2)}, '{"when": "2025-01-02"}'),
        (Item("a", datetime.date(2025, 1, 2)), '{"name": "a", "when": "2025-01-02"}'),
        ({"s": {3}}, '{"s": [3]}'),
        (Path("/tmp/x"), '"/tmp/x"'),
        (b"raw", "b'raw'"),  # not JSON: repr
        (1 + 2j, "(1+2j)"),
    ],
)
def test_results_become_text(result: Any, text: str) -> None:
    def f() -> Any:
        return result

    assert run_tool(tool(f), {}) == (text, True)


def test_result_with_a_broken_repr() -> None:
    class Weird:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    def f() -> Weird:
        return Weird()

    assert run_tool(tool(f), {}) == ("<Weird object>", True)


def test_exceptions_become_error_text() -> None:
    def fails(x: int) -> int:
        raise ValueError(f"bad x: {x}")

    def silent() -> None:
        raise KeyError

    assert run_tool(tool(fails), {"x": 3}) == ("error: ValueError: bad x: 3", False)
    assert run_tool(tool(silent), {}) == ("error: KeyError", False)


def test_keyboard_interrupt_is_not_swallowed() -> None:
    def hangs() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tool(tool(hangs), {})


def test_arguments_that_do_not_fit_are_error_text() -> None:
    calls: list[Any] = []

    def f(city: str, days: int = 1) -> str:
        calls.append(city)
        return city

    text, ok = run_tool(tool(f), {"cty": "北京"})
    assert not ok and "unexpected argument 'cty'" in text and "parameters: city, days=…" in text
    text, ok = run_tool(tool(f), {})
    assert not ok and "missing a required argument: 'city'" in text
    assert calls == []  # the function never ran


def test_kwargs_take_any_extra_arguments() -> None:
    def f(**options: Any) -> dict[str, Any]:
        return options

    assert run_tool(tool(f), {"a": 1, "b": "二"}) == ('{"a": 1, "b": "二"}', True)


def test_positional_only_parameters() -> None:
    def f(a: int, /, b: int) -> int:
        return a - b

    assert run_tool(tool(f), {"a": 5, "b": 2}) == ("3", True)
    assert run_tool(tool(f), {"b": 2})[1] is False


def test_values_are_converted_to_what_the_hints_ask() -> None:
    seen: dict[str, Any] = {}

    def f(
        color: Color,
        maybe: Optional[Color] = None,
        many: list[Level] | None = None,
        pair: tuple[int, str] = (0, ""),
        tags: set[str] = frozenset(),  # type: ignore[assignment]  # an immutable default, as users write
        by_key: dict[str, Color] | None = None,
    ) -> str:
        seen.update(color=color, maybe=maybe, many=many, pair=pair, tags=tags, by_key=by_key)
        return "ok"

    args = {
        "color": "red",
        "maybe": "BLUE",  # a member name instead of a value
        "many": [1, 2],
        "pair": [1, "x"],
        "tags": ["a", "a"],
        "by_key": {"k": "blue"},
    }
    assert run_tool(tool(f), args) == ("ok", True)
    assert seen == {
        "color": Color.RED,
        "maybe": Color.BLUE,
        "many": [Level.LOW, Level.HIGH],
        "pair": (1, "x"),
        "tags": {"a"},
        "by_key": {"k": Color.BLUE},
    }
    assert run_tool(tool(f), {"color": "red", "maybe": None})[1] is True
    assert seen["maybe"] is None
    text, ok = run_tool(tool(f), {"color": "purple"})
    assert not ok and text == "error: invalid value for color: 'purple' is not one of ['red', 'blue']"


def test_long_results_are_cut_with_a_note() -> None:
    def big() -> str:
        return "数" * (RESULT_LIMIT * 3)

    text, ok = run_tool(tool(big), {})
    assert ok and len(text) == RESULT_LIMIT
    assert text.startswith("数数数") and "[truncated: the result was 300,000 characters]" in text

    def big_error() -> None:
        raise ValueError("x" * (RESULT_LIMIT * 2))

    text, ok = run_tool(tool(big_error), {})
    assert not ok and len(text) == RESULT_LIMIT


def test_async_tools_are_refused_without_a_warning() -> None:
    async def fetch() -> str:
        return "never"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would fail the test
        text, ok = run_tool(tool(fetch), {})
    assert not ok and "async" in text


def test_trusted_flag_does_not_change_running() -> None:
    def f() -> str:
        return "x"

    assert run_tool(tool(f, trusted=True), {}) == run_tool(tool(f), {}) == ("x", True)


# -- messages ------------------------------------------------------------------------------------------------


def test_tool_messages() -> None:
    calls: list[dict[str, Any]] = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "北京"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}, "index": 1},
    ]
    original = json.loads(json.dumps(calls))
    messages = tool_messages(calls, ["晴", "12:00"])
    assert messages == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "北京"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "晴"},
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
    ]
    assert calls == original  # the caller's calls are not changed


def test_tool_messages_fill_missing_ids_consistently() -> None:
    calls: list[dict[str, Any]] = [
        {"id": None, "function": {"name": "a", "arguments": "{}"}},
        {"function": {"name": "b", "arguments": {"x": 1}}},
    ]
    messages = tool_messages(calls, ["1", "2"], content="Let me check.")
    assistant = messages[0]
    assert assistant["content"] == "Let me check."
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert all(isinstance(i, str) and i.startswith("call_") for i in ids) and len(set(ids)) == 2
    assert [m["tool_call_id"] for m in messages[1:]] == ids
    assert assistant["tool_calls"][1]["function"]["arguments"] == '{"x": 1}'
    assert all(c["type"] == "function" for c in assistant["tool_calls"])


def test_tool_messages_count_mismatch() -> None:
    with pytest.raises(ValueError):
        tool_messages([{"id": "a", "function": {"name": "f", "arguments": ""}}], [])


# -- messages as %chat history shows them ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ({"role": "user", "content": "北京天气？"}, "北京天气？"),
        ({"role": "user", "content": "two\n\nlines"}, "two lines"),
        (
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url"}]},
            "what is this? [image]",
        ),
        ({"role": "user", "content": [{"type": "input_audio"}, "junk"]}, "[input_audio] [?]"),
        ({"role": "assistant", "content": None}, ""),
        ({"role": "tool", "tool_call_id": "c", "content": '{"sky": "晴"}'}, '{"sky": "晴"}'),
        ({"role": "assistant", "content": None, "tool_calls": "junk"}, ""),
        ({"tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}, '→ f({"x": 1})'),
        ({"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": ""}}]},
         "→ f({})"),
        ({"role": "assistant", "content": None, "tool_calls": [{"function": None}, "junk"]}, ""),
    ],
)  # fmt: skip
def test_describe_message(message: dict[str, Any], shown: str) -> None:
    assert describe_message(message) == shown


def test_a_tool_call_turn_is_shown_by_its_calls_not_as_an_empty_list() -> None:
    calls = [
        {"id": "a", "function": {"name": "get_weather", "arguments": '{"city": "北京"}'}},
        {"id": "b", "function": {"name": "now", "arguments": ""}},
    ]
    assistant, *_ = tool_messages(calls, ["晴", "12:00"])
    assert assistant["content"] is None  # what the API wants; the description is for people
    assert describe_message(assistant) == '→ get_weather({"city": "北京"}), now({})'
    assistant, *_ = tool_messages(calls[:1], ["晴"], content="Let me check.")
    assert describe_message(assistant) == 'Let me check. → get_weather({"city": "北京"})'


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "tool", "system"]),
            "content": json_like,
            "tool_calls": json_like
            | st.lists(st.fixed_dictionaries({}, optional={"function": json_like | st.dictionaries(
                st.sampled_from(["name", "arguments"]), json_like)})),
        },
    )
)  # fmt: skip
def test_describe_message_takes_anything_and_gives_one_line(message: dict[str, Any]) -> None:
    # What a restored or hand-edited conversation holds is not up to us: never raise, never break a line.
    shown = describe_message(message)
    assert isinstance(shown, str) and len(shown.splitlines()) <= 1 and shown == shown.strip()


# -- nothing heavy at import ---------------------------------------------------------------------------------


def test_no_optional_library_is_imported() -> None:
    code = (
        "import shenma_magic._tools as t\n"
        "def f(x: int) -> int:\n    return x\n"
        "t.run_tool(t.ToolRegistry().add(f), {'x': 1})\n"
    )
    assert imported_by(code, ["pydantic", "IPython", "requests", "PIL"]) == []


def test_typing_helpers_cover_python_310_unions() -> None:
    # ``X | None`` and ``Optional[X]`` must give the same schema on every supported Python.
    def a(x: int | None) -> None: ...
    def b(x: typing.Optional[int]) -> None: ...

    assert params(a) == params(b)
