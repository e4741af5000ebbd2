"""Python types and JSON Schema, shared by tool specs and JSON mode: the JSON type of a value, the
``type`` keyword's rules, and one pydantic path for both."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shenma_magic._errors import ConfigError
from shenma_magic._jsonout import response_format
from shenma_magic._schema import JSON_TYPES, is_model_class, json_type, matches_json_type
from shenma_magic._toolspec import tool_spec

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(json_values)
def test_every_decoded_value_has_exactly_its_own_json_type(value: Any) -> None:
    # Decoded from JSON text, as replies are: the Python type alone must tell the JSON type.
    decoded = json.loads(json.dumps(value))
    kind = json_type(decoded)
    assert kind in JSON_TYPES
    assert matches_json_type(decoded, kind)
    others = {k for k in JSON_TYPES if k != kind and matches_json_type(decoded, k)}
    # The only overlaps JSON Schema allows: an integer is a number, and 3.0 is an integer.
    if kind == "integer":
        assert others == {"number"}
    elif kind == "number":
        assert others == ({"integer"} if decoded.is_integer() else set())
    else:
        assert others == set()


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (True, "integer", False),
        (True, "number", False),
        (True, "boolean", True),
        (0, "boolean", False),
        (3.0, "integer", True),
        (3.5, "integer", False),
        (3, "number", True),
        ((1, 2), "array", False),  # only what JSON decodes to
        (None, "object", False),
        ("x", "no-such-type", False),
    ],
)
def test_type_keyword_rules(value: Any, kind: str, expected: bool) -> None:
    assert matches_json_type(value, kind) is expected


def test_not_json_values_have_no_json_type() -> None:
    assert [json_type(v) for v in ((1,), {1}, b"x", object())] == [None] * 4


def tool_taking(model: object) -> dict[str, Any]:
    """The spec of a tool whose one parameter ``p`` is of the class ``model``."""

    def register(p: Any) -> None:
        pass

    register.__annotations__["p"] = model  # a class given at run time: no string annotation to resolve
    return tool_spec(register)


def test_tool_parameters_and_json_mode_describe_a_pydantic_model_the_same_way() -> None:
    pytest.importorskip("pydantic")
    from tests._pydantic_models import Address, Person

    instance = Person(name="a", home=Address(city="b"))
    assert is_model_class(Person) and not is_model_class(instance)
    parameters = tool_taking(Person)["function"]["parameters"]
    sent = response_format(Person)["json_schema"]["schema"]
    assert parameters["properties"]["p"] == {k: v for k, v in sent.items() if k != "$defs"}
    assert parameters["$defs"] == sent["$defs"]  # nested models' definitions hoisted to the root


@pytest.mark.parametrize("describe", [response_format, tool_taking], ids=["json-mode", "tool-parameter"])
def test_a_pydantic_model_that_cannot_be_described_is_one_line(describe: Callable[[object], Any]) -> None:
    pytest.importorskip("pydantic")
    from tests._pydantic_models import Holder

    with pytest.raises(ConfigError, match="cannot describe Holder as JSON Schema") as info:
        describe(Holder)
    assert "\n" not in info.value.message
