"""Python types and JSON Schema: the schema for a type hint (tool parameters), for a pydantic model (tool
parameters and ``--schema``), and the JSON type of a value (both checks). Pure.

pydantic is recognised by its API, never imported here, so people who do not use it never load it.
"""

from __future__ import annotations

import collections.abc
import copy
import enum
import types
import typing
from pathlib import PurePath
from typing import Annotated, Any, Literal, Optional, Protocol, TypeGuard, Union

from ._annotations import EMPTY, safe_hints
from ._errors import ConfigError

__all__ = [
    "JSON_TYPES",
    "MAPPINGS",
    "SEQUENCES",
    "SETS",
    "UNIONS",
    "JSONSchema",
    "ModelClass",
    "is_model_class",
    "is_one_of",
    "json_type",
    "matches_json_type",
    "model_schema",
    "schema_for",
]

# A JSON Schema, or any piece of one: a JSON object, so its values are any JSON.
JSONSchema = dict[str, Any]

SETS: frozenset[object] = frozenset({set, collections.abc.Set, collections.abc.MutableSet})
SEQUENCES: frozenset[object] = frozenset(
    {
        list,
        frozenset,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Iterable,
        collections.abc.Collection,
        *SETS,
    }
)
MAPPINGS: frozenset[object] = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})
# Optional[X] / Union[X, Y] and X | Y are different objects at run time.
UNIONS: tuple[object, ...] = (Union, types.UnionType)
JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


class ModelClass(Protocol):
    """A pydantic (v2) model class, as much of it as this package uses."""

    __name__: str

    def model_json_schema(self) -> JSONSchema: ...

    def model_validate(self, obj: Any, /) -> object: ...


def is_model_class(tp: object) -> TypeGuard[ModelClass]:
    """A pydantic (v2) model class (not an instance), recognised without importing pydantic."""
    return isinstance(tp, type) and callable(getattr(tp, "model_json_schema", None))


def model_schema(model: ModelClass) -> JSONSchema:
    """The JSON Schema of a pydantic model class (a fresh copy).

    Raises:
        ConfigError: pydantic cannot describe one of its fields (callables, arbitrary classes).
    """
    try:
        return copy.deepcopy(model.model_json_schema())
    except Exception as exc:  # pydantic's own errors, of several classes
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"cannot describe {model.__name__} as JSON Schema: {first}", "use JSON-friendly field types"
        ) from exc


# In this order: a bool is an int to isinstance, but a "boolean" to JSON.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type(value: object) -> Optional[str]:
    """The JSON type of a decoded JSON value by its Python type (``3.0`` is a ``"number"``), or None for a
    value JSON does not hold."""
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return None


def matches_json_type(value: object, kind: str) -> bool:
    """Whether ``value`` is of the JSON Schema ``type`` ``kind``: as the spec counts, ``3.0`` is an
    ``"integer"`` and every integer a ``"number"``; an unknown ``kind`` matches nothing."""
    actual = json_type(value)
    if kind == "number":
        return actual in ("integer", "number")
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return actual == kind


def is_one_of(tp: object, group: frozenset[object]) -> bool:
    """``tp in group``, False for an unhashable hint (``def f(x: [int])`` is legal Python)."""
    try:
        return tp in group
    except TypeError:
        return False


def _enum_schema(values: list[object]) -> JSONSchema:
    schema: JSONSchema = {}
    kinds = {json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    elif kinds <= {"integer", "number"}:
        schema["type"] = "number"
    schema["enum"] = values
    return schema


def _nullable(schema: JSONSchema) -> JSONSchema:
    if not schema:
        return schema  # "anything" already includes null
    kind = schema.get("type")
    if isinstance(kind, (str, list)) and set(schema) <= {"type", "enum", "items", "additionalProperties"}:
        out = dict(schema)
        kinds = [kind] if isinstance(kind, str) else list(kind)
        out["type"] = [*kinds, "null"] if "null" not in kinds else kinds
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if "enum" in schema and set(schema) == {"enum"}:
        return {"enum": [*schema["enum"], None]} if None not in schema["enum"] else schema
    return {"anyOf": [schema, {"type": "null"}]}


def _array(args: tuple[object, ...], defs: JSONSchema) -> JSONSchema:
    schema: JSONSchema = {"type": "array"}
    if args and args[0] is not Any:
        schema["items"] = schema_for(args[0], defs)
    return schema


def _tuple(args: tuple[object, ...], defs: JSONSchema) -> JSONSchema:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        return _array(args, defs)
    if args == ((),):
        return {"type": "array", "maxItems": 0}
    subs = [schema_for(a, defs) for a in args]
    unique = [s for n, s in enumerate(subs) if s not in subs[:n]]
    items = unique[0] if len(unique) == 1 else ({} if any(not s for s in unique) else {"anyOf": unique})
    out: JSONSchema = {"type": "array", "minItems": len(args), "maxItems": len(args)}
    if items:
        out["items"] = items
    return out


def _union(args: tuple[object, ...], defs: JSONSchema) -> JSONSchema:
    members = [a for a in args if a is not type(None)]
    nullable = len(members) < len(args)
    if len(members) == 1:
        schema = schema_for(members[0], defs)
    else:
        subs = [schema_for(a, defs) for a in members]
        if any(not s for s in subs):
            return {}
        simple = all(set(s) == {"type"} and isinstance(s["type"], str) for s in subs)
        schema = {"type": [s["type"] for s in subs]} if simple else {"anyOf": subs}
    return _nullable(schema) if nullable else schema


def _class_schema(tp: type, defs: JSONSchema) -> JSONSchema:
    if issubclass(tp, enum.Enum):
        return _enum_schema([m.value for m in tp])
    if issubclass(tp, bool):
        return {"type": "boolean"}
    if issubclass(tp, int):
        return {"type": "integer"}
    if issubclass(tp, float):
        return {"type": "number"}
    if issubclass(tp, (str, PurePath)):
        return {"type": "string"}
    if is_model_class(tp):
        schema = model_schema(tp)
        # Nested models refer to "#/$defs/X" from the root: hoist their definitions to the root of
        # "parameters", where those references resolve.
        defs.update(schema.pop("$defs", {}))
        return schema
    if typing.is_typeddict(tp):
        hints = safe_hints(tp)
        required = sorted(getattr(tp, "__required_keys__", ()))
        schema = {"type": "object", "properties": {k: schema_for(v, defs) for k, v in hints.items()}}
        if required:
            schema["required"] = required
        return schema
    return {}


def schema_for(tp: object, defs: JSONSchema) -> JSONSchema:
    """The JSON Schema for a type hint; ``{}`` (anything) for what JSON cannot express.

    Definitions that nested pydantic models refer to (``#/$defs/X``) are added to ``defs``, for the caller
    to put at the root of the schema it builds.
    """
    if tp is EMPTY or tp is Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        schema = dict(schema_for(args[0], defs))
        text = next((m for m in args[1:] if isinstance(m, str)), None)
        if text:
            schema["description"] = text
        return schema
    if origin is Literal:
        return _enum_schema([v.value if isinstance(v, enum.Enum) else v for v in args])
    if origin in UNIONS:
        return _union(args, defs)
    if origin in SEQUENCES or is_one_of(tp, SEQUENCES):
        return _array(args, defs)
    if origin is tuple or tp is tuple:
        return _tuple(args, defs)
    if origin in MAPPINGS or is_one_of(tp, MAPPINGS):
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = schema_for(args[1], defs)
        return schema
    if isinstance(tp, type):
        return _class_schema(tp, defs)
    return {}
