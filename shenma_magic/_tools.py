"""Python functions the model may call: their OpenAI tool specs, and running a call safely. Pure.

A spec is built from what the function already says about itself (signature, type hints, docstring), so a
plain, documented function is a tool with no extra work. Running a call never raises into the notebook:
whatever goes wrong (bad arguments, an exception in the tool) becomes text that goes back to the model,
which can then correct itself.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import datetime
import enum
import functools
import inspect
import json
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import PurePath
from typing import Annotated, Any, Literal, NamedTuple, Optional, TypeGuard, TypeVar, Union, overload

from ._errors import ConfigError, ShenmaError
from ._secret import excerpt

__all__ = [
    "RESULT_LIMIT",
    "Tool",
    "ToolError",
    "ToolRegistry",
    "describe_call",
    "parse_arguments",
    "run_tool",
    "tool_messages",
    "tool_spec",
]

RESULT_LIMIT = 100_000
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EMPTY = inspect.Parameter.empty
_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_SEQUENCES = {
    list,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Iterable,
    collections.abc.Collection,
    collections.abc.Set,
    collections.abc.MutableSet,
}
_MAPPINGS = {dict, collections.abc.Mapping, collections.abc.MutableMapping}
_UNIONS: tuple[Any, ...] = (Union, types.UnionType)

F = TypeVar("F", bound=Callable[..., Any])


class ToolError(ShenmaError):
    """A tool call from the model cannot be understood (its arguments are not a JSON object)."""


class Tool(NamedTuple):
    """A function the model may call.

    Attributes:
        name: the name the model calls it by.
        function: the Python callable.
        spec: the OpenAI tool spec sent with the request.
        trusted: whether it may run without asking the user first.
    """

    name: str
    function: Callable[..., Any]
    spec: dict[str, Any]
    trusted: bool

    def __repr__(self) -> str:
        params = ", ".join(self.spec.get("function", {}).get("parameters", {}).get("properties", {}))
        return f"<tool {self.name}({params}), {'trusted' if self.trusted else 'asks before each call'}>"


# -- docstrings -------------------------------------------------------------------------------------------

_GOOGLE_HEADER = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters)\s*:\s*$"
)
_GOOGLE_ENTRY = re.compile(r"^\s*\*{0,2}([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:(?:\s+(.*)|\s*$)")
# Only the known section names: a summary such as "Search the web:" must not end the summary.
_OTHER_GOOGLE_HEADER = re.compile(
    r"^\s*(Returns?|Yields?|Raises|Examples?|Notes?|Warnings?|See Also|Attributes|Todo|References|"
    r"Methods|Usage)\s*:\s*$"
)
_NUMPY_HEADER = re.compile(r"^\s*(Parameters|Other Parameters|Keyword Arguments)\s*$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}([A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?$")
_DASHES = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_PARAM = re.compile(
    r"^(\s*):(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?\*{0,2}([A-Za-z_]\w*)\s*:\s*(.*)$"
)
_SPHINX_FIELD = re.compile(r"^\s*:[A-Za-z]")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _starts_section(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _GOOGLE_HEADER.match(line) or _OTHER_GOOGLE_HEADER.match(line) or _SPHINX_FIELD.match(line):
        return True
    return i + 1 < len(lines) and bool(line.strip()) and bool(_DASHES.match(lines[i + 1]))


def _google_section(lines: list[str], i: int, header_indent: int, params: dict[str, str]) -> int:
    entry_indent: Optional[int] = None
    current: Optional[str] = None
    while i < len(lines):
        line = lines[i]
        text = line.strip()
        if not text:
            i += 1
            continue
        indent = _indent(line)
        if indent <= header_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        if indent <= entry_indent:
            found = _GOOGLE_ENTRY.match(line)
            current = found.group(1) if found else None
            if found:
                params[current or ""] = (found.group(2) or "").strip()
        elif current:
            params[current] = f"{params[current]} {text}".strip()
        i += 1
    return i


def _numpy_section(lines: list[str], i: int, params: dict[str, str]) -> int:
    base: Optional[int] = None
    current: list[str] = []
    while i < len(lines):
        line = lines[i]
        text = line.strip()
        if text and i + 1 < len(lines) and _DASHES.match(lines[i + 1]):
            break  # the next section's header
        if not text:
            i += 1
            continue
        indent = _indent(line)
        if base is None:
            base = indent
        if indent <= base:
            found = _NUMPY_ENTRY.match(text)
            current = [n.strip().lstrip("*") for n in found.group(1).split(",")] if found else []
            for name in current:
                params[name] = ""
        else:
            for name in current:
                params[name] = f"{params[name]} {text}".strip()
        i += 1
    return i


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) from a Google, NumPy or Sphinx style docstring."""
    lines = doc.expandtabs().splitlines()
    summary: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip() or _starts_section(lines, i):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        google = _GOOGLE_HEADER.match(line)
        if google:
            i = _google_section(lines, i + 1, len(google.group(1)), params)
            continue
        if _NUMPY_HEADER.match(line) and i + 1 < len(lines) and _DASHES.match(lines[i + 1]):
            i = _numpy_section(lines, i + 2, params)
            continue
        sphinx = _SPHINX_PARAM.match(line)
        if sphinx:
            base = len(sphinx.group(1))
            name, text = sphinx.group(2), sphinx.group(3).strip()
            i += 1
            while i < len(lines) and lines[i].strip() and not _SPHINX_FIELD.match(lines[i]):
                if _indent(lines[i]) <= base:
                    break
                text = f"{text} {lines[i].strip()}"
                i += 1
            params[name] = text.strip()
            continue
        i += 1
    return " ".join(summary), {k: v for k, v in params.items() if k and v}


# -- types to JSON Schema ---------------------------------------------------------------------------------


def _json_type(value: Any) -> Optional[str]:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    elif kinds <= {"integer", "number"}:
        schema["type"] = "number"
    schema["enum"] = values
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
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


def _is_model_class(tp: Any) -> TypeGuard[Any]:
    """A pydantic (v2) model class, recognised without importing pydantic."""
    return isinstance(tp, type) and callable(getattr(tp, "model_json_schema", None))


def _schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema for a type hint; ``{}`` (anything) for what JSON cannot express."""
    if tp is _EMPTY or tp is Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        schema = dict(_schema(args[0], defs))
        text = next((m for m in args[1:] if isinstance(m, str)), None)
        if text:
            schema["description"] = text
        return schema
    if origin is Literal:
        return _enum_schema([v.value if isinstance(v, enum.Enum) else v for v in args])
    if origin in _UNIONS:
        members = [a for a in args if a is not type(None)]
        nullable = len(members) < len(args)
        if len(members) == 1:
            schema = _schema(members[0], defs)
        else:
            subs = [_schema(a, defs) for a in members]
            if any(not s for s in subs):
                return {}
            simple = all(set(s) == {"type"} and isinstance(s["type"], str) for s in subs)
            schema = {"type": [s["type"] for s in subs]} if simple else {"anyOf": subs}
        return _nullable(schema) if nullable else schema
    if origin in _SEQUENCES or tp in _SEQUENCES:
        schema = {"type": "array"}
        if args and args[0] is not Any:
            schema["items"] = _schema(args[0], defs)
        return schema
    if origin is tuple or tp is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            schema = {"type": "array"}
            if args and args[0] is not Any:
                schema["items"] = _schema(args[0], defs)
            return schema
        if args == ((),):
            return {"type": "array", "maxItems": 0}
        subs = [_schema(a, defs) for a in args]
        unique = [s for n, s in enumerate(subs) if s not in subs[:n]]
        items = unique[0] if len(unique) == 1 else ({} if any(not s for s in unique) else {"anyOf": unique})
        out: dict[str, Any] = {"type": "array", "minItems": len(args), "maxItems": len(args)}
        if items:
            out["items"] = items
        return out
    if origin in _MAPPINGS or tp in _MAPPINGS:
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = _schema(args[1], defs)
        return schema
    if not isinstance(tp, type):
        return {}
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
    if _is_model_class(tp):
        try:
            schema = copy.deepcopy(tp.model_json_schema())
        except Exception as exc:  # pydantic refuses some field types (callables, arbitrary classes)
            raise ConfigError(
                f"cannot describe {tp.__name__} as JSON Schema: {str(exc).splitlines()[0]}",
                "use JSON-friendly field types",
            ) from exc
        # Nested models refer to "#/$defs/X" from the root: hoist their definitions to the root of
        # "parameters", where those references resolve.
        defs.update(schema.pop("$defs", {}))
        return dict(schema)
    if typing.is_typeddict(tp):
        hints = _safe_hints(tp)
        required = sorted(getattr(tp, "__required_keys__", ()))
        schema = {"type": "object", "properties": {k: _schema(v, defs) for k, v in hints.items()}}
        if required:
            schema["required"] = required
        return schema
    return {}


def _safe_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception:  # unresolvable forward references in notebook code: fall back to no hints
        return {}


def _target(fn: Callable[..., Any]) -> Any:
    """The object that carries the hints, docstring and name: the function itself, a partial's function,
    or a callable object's ``__call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn) or isinstance(fn, type):
        return fn
    # A callable object: its class's __call__ carries the hints and the docstring.
    return inspect.getattr_static(type(fn), "__call__", fn)


def _resolve(annotation: str, target: Any) -> Any:
    """One string annotation evaluated in the function's module; ``_EMPTY`` if it cannot be."""
    namespace = getattr(inspect.unwrap(target), "__globals__", None)
    if not isinstance(namespace, dict):
        return _EMPTY
    try:
        # The user's own annotation, in the user's own module: the evaluation get_type_hints would do.
        return eval(annotation, namespace)
    except Exception:  # a name defined nowhere (yet): say nothing rather than guess
        return _EMPTY


def _annotations(fn: Callable[..., Any], sig: inspect.Signature) -> dict[str, Any]:
    target = _target(fn)
    hints = _safe_hints(target)
    out: dict[str, Any] = {}
    for name, param in sig.parameters.items():
        if name in hints:
            out[name] = hints[name]
        elif isinstance(param.annotation, str):
            # get_type_hints fails as a whole on one bad name; the other parameters still deserve types.
            out[name] = _resolve(param.annotation, target)
        else:
            out[name] = param.annotation
    return out


def _default_json(value: Any) -> Any:
    value = value.value if isinstance(value, enum.Enum) else value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return _EMPTY
    return value


def _tool_name(fn: Callable[..., Any], name: Optional[str]) -> str:
    chosen = name if name is not None else getattr(_target(fn), "__name__", type(fn).__name__)
    if chosen == "__call__":
        chosen = type(fn).__name__
    if not isinstance(chosen, str) or not _NAME.match(chosen):
        raise ConfigError(
            f"{chosen!r} cannot be a tool name: it must be 1-64 letters, digits, '_' or '-'",
            "pass name='...' when registering it",
        )
    return chosen


def tool_spec(fn: Callable[..., Any], *, name: Optional[str] = None) -> dict[str, Any]:
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
    doc = inspect.getdoc(_target(fn)) or ""
    summary, described = _parse_docstring(doc)
    hints = _annotations(fn, sig)
    defs: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in sig.parameters.items():
        if param.kind in _SKIPPED_KINDS:
            continue
        schema = dict(_schema(hints.get(pname, _EMPTY), defs))
        if pname in described and "description" not in schema:
            schema["description"] = described[pname]
        if param.default is _EMPTY:
            required.append(pname)
        else:
            default = _default_json(param.default)
            if default is not _EMPTY:
                schema["default"] = default
        properties[pname] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    if defs:
        parameters["$defs"] = defs
    function: dict[str, Any] = {"name": tool_name}
    if summary:
        # Left out rather than sent empty: some upstream providers reject an empty description.
        function["description"] = summary
    function["parameters"] = parameters
    return {"type": "function", "function": function}


# -- the registry -----------------------------------------------------------------------------------------


class ToolRegistry:
    """The tools on offer to the model, by name, in the order they were added."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, fn: Callable[..., Any], *, trusted: bool = False, name: Optional[str] = None) -> Tool:
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

    def specs(self) -> list[dict[str, Any]]:
        """The ``tools`` list for a request (copies: the request may be changed without harm)."""
        return [copy.deepcopy(t.spec) for t in self._tools.values()]

    def clear(self) -> None:
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


# -- calls ------------------------------------------------------------------------------------------------


def parse_arguments(arguments: Union[str, Mapping[str, Any], None]) -> dict[str, Any]:
    """A tool call's ``arguments`` string as a dict; ``""`` (and ``null``) mean no arguments.

    Raises:
        ToolError: the text is not JSON, or not a JSON object; the message quotes it.
    """
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)  # some relays pass the object through instead of its JSON text
    if not arguments.strip():
        return {}
    try:
        # strict=False: raw newlines inside strings are common when the arguments carry code.
        value = json.loads(arguments, strict=False)
        if isinstance(value, str) and value.strip().startswith("{"):
            # Some models encode the object twice ("{\"x\": 1}"): undo the extra layer.
            value = json.loads(value, strict=False)
    except (ValueError, RecursionError) as exc:
        raise ToolError(
            f"the tool arguments are not valid JSON ({exc}): {excerpt(arguments, 200)}",
            "the model sent malformed arguments; ask again, or try another model",
        ) from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ToolError(
            f"the tool arguments are a JSON {type(value).__name__}, not an object: {excerpt(arguments, 200)}",
            "the model sent malformed arguments; ask again, or try another model",
        )
    return value


def describe_call(name: str, arguments: str, limit: int = 120) -> str:
    """A one-line picture of a call for the user, e.g. ``f(x=1, s="a")``, shortened with "…"."""
    try:
        parsed = parse_arguments(arguments)
    except ToolError:
        inner = " ".join(str(arguments).split())
    else:
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parsed.items())
    text = f"{name}({inner})"
    if len(text) > limit:
        text = text[: max(limit - 2, len(name) + 1)] + "…)"
    return text


def _coerce(value: Any, tp: Any) -> Any:
    """Turn JSON values into what the function's hints ask for where JSON cannot say it directly (enums,
    pydantic models, tuples, sets); everything else is passed as the model sent it."""
    if tp is _EMPTY or tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _coerce(value, args[0])
    if origin in _UNIONS:
        if value is None and type(None) in args:
            return None
        failures: list[Exception] = []
        for member in args:
            if member is type(None):
                continue
            try:
                return _coerce(value, member)
            except (ValueError, TypeError) as exc:
                failures.append(exc)
        if failures and len(failures) == len([a for a in args if a is not type(None)]):
            raise failures[0]
        return value
    if origin in _SEQUENCES and isinstance(value, list):
        items = [_coerce(v, args[0]) for v in value] if args else value
        return (
            set(items)
            if origin in (set, collections.abc.Set, collections.abc.MutableSet)
            else (frozenset(items) if origin is frozenset else items)
        )
    if origin is tuple and isinstance(value, list):
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return tuple(_coerce(v, args[0]) for v in value) if args else tuple(value)
        return tuple(_coerce(v, t) for v, t in zip(value, args, strict=False)) + tuple(value[len(args) :])
    if origin in _MAPPINGS and isinstance(value, dict) and len(args) == 2:
        return {k: _coerce(v, args[1]) for k, v in value.items()}
    if not isinstance(tp, type):
        return value
    if issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            # The model may send the member's name rather than its value.
            if isinstance(value, str) and value in tp.__members__:
                return tp.__members__[value]
            raise ValueError(f"{value!r} is not one of {[m.value for m in tp]}") from None
    if _is_model_class(tp) and not isinstance(value, tp):
        return tp.model_validate(value)
    if tp in (tuple, set, frozenset) and isinstance(value, list):
        return tp(value)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return repr(result)
    except Exception:  # a broken __repr__ must not turn a successful call into a crash
        return f"<{type(result).__name__} object>"


def _cap(text: str, limit: int = RESULT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    note = f"\n…[truncated: the result was {len(text):,} characters]"
    return text[: max(0, limit - len(note))] + note


def _error_text(exc: BaseException) -> str:
    message = str(exc)
    return _cap(f"error: {type(exc).__name__}: {message}" if message else f"error: {type(exc).__name__}")


def _describe_parameters(sig: inspect.Signature) -> str:
    shown = [
        p.name if p.default is _EMPTY else f"{p.name}=…"
        for p in sig.parameters.values()
        if p.kind not in _SKIPPED_KINDS
    ]
    return ", ".join(shown) or "none"


def run_tool(tool: Tool, arguments: Mapping[str, Any]) -> tuple[str, bool]:
    """Call the tool; (text for the model, True) on success, ("error: Type: message", False) otherwise.

    The result is sent as text: a ``str`` as is, anything JSON can hold as JSON, the rest as ``repr()``,
    cut at :data:`RESULT_LIMIT` characters with a note. Exceptions in the tool, and arguments that do not
    fit its signature, become the error text, so the model can see what went wrong and try again;
    ``KeyboardInterrupt`` is not caught, so the user can still stop a tool that hangs.
    """
    fn = tool.function
    positional: list[Any] = []
    keywords = dict(arguments)
    try:
        sig: Optional[inspect.Signature] = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        hints = _annotations(fn, sig)
        for pname, value in list(keywords.items()):
            param = sig.parameters.get(pname)
            if param is None or param.kind in _SKIPPED_KINDS:
                continue
            try:
                keywords[pname] = _coerce(value, hints.get(pname, _EMPTY))
            except Exception as exc:  # enum and model validation failures, and anything odd in between
                return _cap(f"error: invalid value for {pname}: {exc}"), False
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        unknown = [k for k in keywords if k not in sig.parameters]
        if unknown and not takes_any:
            # Named first: a misspelt argument otherwise shows up only as "missing a required argument".
            listed = ", ".join(repr(k) for k in unknown)
            expected = _describe_parameters(sig)
            return _cap(f"error: TypeError: unexpected argument {listed} (parameters: {expected})"), False
        for param in sig.parameters.values():
            if param.kind is not inspect.Parameter.POSITIONAL_ONLY or param.name not in keywords:
                break
            positional.append(keywords.pop(param.name))
        try:
            sig.bind(*positional, **keywords)
        except TypeError as exc:
            return _cap(f"error: TypeError: {exc} (parameters: {_describe_parameters(sig)})"), False
    try:
        result = fn(*positional, **keywords)
    except Exception as exc:  # the model gets the error and can react; the notebook gets no traceback
        return _error_text(exc), False
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # no "never awaited" warning for a coroutine that was never going to run
        return "error: the tool is async, which is not supported: define it with def, not async def", False
    return _cap(_as_text(result)), True


def tool_messages(
    calls: list[dict[str, Any]], results: list[str], *, content: Optional[str] = None
) -> list[dict[str, Any]]:
    """The messages that record a round of tool calls: the assistant's calls, then one ``tool`` message per
    result, in order. Calls without an id (some relays drop them) get one, so each result can refer to it.

    ``content`` is any text the model wrote alongside the calls.
    """
    if len(calls) != len(results):
        raise ValueError(f"{len(calls)} tool calls but {len(results)} results")
    clean: list[dict[str, Any]] = []
    for call in calls:
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        assert isinstance(function, dict)
        args = function.get("arguments")
        if not isinstance(args, str):
            args = json.dumps(args if args is not None else {}, ensure_ascii=False)
        clean.append(
            {
                "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                # "index" from the stream is left out: some servers reject unknown keys in requests.
                # Empty arguments become "{}", which every upstream accepts.
                "function": {"name": function.get("name") or "", "arguments": args or "{}"},
            }
        )
    out: list[dict[str, Any]] = [{"role": "assistant", "content": content, "tool_calls": clean}]
    out.extend(
        {"role": "tool", "tool_call_id": call["id"], "content": result}
        for call, result in zip(clean, results, strict=True)
    )
    return out
