"""The OpenAI tool spec of a Python function, from what it already says about itself: signature, type hints,
docstring. Pure, but for the annotation evaluation :mod:`._annotations` does.

So a plain, documented function is a tool with no extra work.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
from collections.abc import Callable
from typing import Any, Optional

from ._annotations import EMPTY, hint_target, parameter_hints
from ._docstrings import parse_docstring
from ._errors import ConfigError
from ._schema import JSONSchema, schema_for

__all__ = ["SKIPPED_KINDS", "ToolSpec", "tool_spec"]

# An OpenAI tool spec: {"type": "function", "function": {"name", "description", "parameters"}}.
ToolSpec = dict[str, Any]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# *args and **kwargs: a JSON object of arguments cannot fill them by name.
SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _default_json(value: object) -> object:
    """The default as JSON can send it, or EMPTY (left out of the spec) if it cannot."""
    value = value.value if isinstance(value, enum.Enum) else value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return EMPTY
    return value


def _tool_name(fn: Callable[..., object], name: Optional[str]) -> str:
    chosen = name if name is not None else getattr(hint_target(fn), "__name__", type(fn).__name__)
    if chosen == "__call__":
        chosen = type(fn).__name__
    if not isinstance(chosen, str) or not _NAME.match(chosen):
        raise ConfigError(
            f"{chosen!r} cannot be a tool name: it must be 1-64 letters, digits, '_' or '-'",
            "pass name='...' when registering it",
        )
    return chosen


def tool_spec(fn: Callable[..., object], *, name: Optional[str] = None) -> ToolSpec:
    """The OpenAI tool spec for ``fn``, from its signature, type hints and docstring.

    The docstring's summary becomes the description and Google (``Args:``), NumPy (``Parameters``) or
    Sphinx (``:param x:``) entries describe the parameters. Parameters without defaults are required;
    ``*args``/``**kwargs`` are left out; unannotated parameters accept anything.

    Raises:
        ConfigError: ``fn`` is not callable, or the name is not a valid tool name.
    """
    if not callable(fn):
        raise ConfigError(f"a {type(fn).__name__} is not a function", "register a function as a tool")
    tool_name = _tool_name(fn, name)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the parameters of {tool_name}: {exc}", "wrap it in a def with named parameters"
        ) from exc
    doc = parse_docstring(inspect.getdoc(hint_target(fn)) or "")
    hints = parameter_hints(fn, sig)
    defs: JSONSchema = {}
    properties: JSONSchema = {}
    required: list[str] = []
    for pname, param in sig.parameters.items():
        if param.kind in SKIPPED_KINDS:
            continue
        schema = dict(schema_for(hints.get(pname, EMPTY), defs))
        if pname in doc.params and "description" not in schema:
            schema["description"] = doc.params[pname]
        if param.default is EMPTY:
            required.append(pname)
        else:
            default = _default_json(param.default)
            if default is not EMPTY:
                schema["default"] = default
        properties[pname] = schema
    parameters: JSONSchema = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    if defs:
        parameters["$defs"] = defs
    function: dict[str, Any] = {"name": tool_name}
    if doc.summary:
        # Left out rather than sent empty: some upstream providers reject an empty description.
        function["description"] = doc.summary
    function["parameters"] = parameters
    return {"type": "function", "function": function}
