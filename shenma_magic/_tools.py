"""Python functions the model may call: the names the rest of the package and its users import.

The work is done in modules with one job each: :mod:`._docstrings` (what a docstring says),
:mod:`._annotations` (a function's type hints), :mod:`._schema` (type hints to JSON Schema),
:mod:`._toolspec` (a function's OpenAI tool spec), :mod:`._toolreg` (:class:`Tool`, :class:`ToolRegistry`)
and :mod:`._toolrun` (running the model's calls).
"""

from __future__ import annotations

from ._toolreg import Tool, ToolRegistry
from ._toolrun import (
    RESULT_LIMIT,
    ToolError,
    ToolOutcome,
    describe_call,
    describe_message,
    parse_arguments,
    run_tool,
    tool_messages,
)
from ._toolspec import tool_spec

__all__ = [
    "RESULT_LIMIT",
    "Tool",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "describe_call",
    "describe_message",
    "parse_arguments",
    "run_tool",
    "tool_messages",
    "tool_spec",
]
