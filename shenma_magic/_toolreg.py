"""The tools on offer to the model: :class:`Tool` records in a :class:`ToolRegistry`, and its ``@tool``
decorator. Pure (registering reads the function's signature, see :mod:`._toolspec`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import NamedTuple, Optional, TypeVar, Union, overload

from ._toolspec import ToolSpec, tool_spec

__all__ = ["Tool", "ToolRegistry"]

F = TypeVar("F", bound=Callable[..., object])


class Tool(NamedTuple):
    """A function the model may call.

    Attributes:
        name: the name the model calls it by.
        function: the Python callable.
        spec: the OpenAI tool spec sent with the request.
        trusted: whether it may run without asking the user first.
    """

    name: str
    function: Callable[..., object]
    spec: ToolSpec
    trusted: bool

    def __repr__(self) -> str:
        params = ", ".join(self.spec.get("function", {}).get("parameters", {}).get("properties", {}))
        return f"<tool {self.name}({params}), {'trusted' if self.trusted else 'asks before each call'}>"


class ToolRegistry:
    """The tools on offer to the model, by name, in the order they were added."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, fn: Callable[..., object], *, trusted: bool = False, name: Optional[str] = None) -> Tool:
        """Offer ``fn`` to the model (replacing any tool of the same name: re-running a notebook cell
        redefines the function). ``trusted`` tools may run without asking first.

        Raises:
            ConfigError: not callable, or the name is not 1-64 of ``A-Za-z0-9_-``.
        """
        spec = tool_spec(fn, name=name)
        tool = Tool(spec["function"]["name"], fn, spec, trusted)
        self._tools[tool.name] = tool
        return tool

    def remove(self, name: str) -> bool:
        """Withdraw a tool; False if there was none of that name."""
        return self._tools.pop(name, None) is not None

    def get(self, name: str) -> Optional[Tool]:
        """The tool the model called by ``name``, or None."""
        return self._tools.get(name)

    def specs(self) -> list[ToolSpec]:
        """The ``tools`` list for a request (copies: the request may be changed without harm)."""
        return [copy.deepcopy(t.spec) for t in self._tools.values()]

    def clear(self) -> None:
        """Withdraw every tool."""
        self._tools.clear()

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __contains__(self, item: object) -> bool:
        """A tool name, or the function itself."""
        if isinstance(item, str):
            return item in self._tools
        return any(t.function is item for t in self._tools.values())

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self._tools) or 'empty'})"

    @overload
    def tool(self, fn: F, *, trusted: bool = ..., name: Optional[str] = ...) -> F: ...

    @overload
    def tool(self, fn: None = ..., *, trusted: bool = ..., name: Optional[str] = ...) -> Callable[[F], F]: ...

    def tool(
        self, fn: Optional[F] = None, *, trusted: bool = False, name: Optional[str] = None
    ) -> Union[F, Callable[[F], F]]:
        """Decorator: ``@registry.tool`` or ``@registry.tool(trusted=True, name=...)``. The function is
        returned unchanged, so it can still be called directly."""

        def register(func: F) -> F:
            self.add(func, trusted=trusted, name=name)
            return func

        return register(fn) if fn is not None else register
