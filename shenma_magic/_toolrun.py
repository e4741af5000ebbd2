"""Running the model's tool calls: reading its arguments, fitting them to the function, calling it, and the
messages that record the round. Not pure: :func:`run_tool` runs the user's function.

Running a call never raises into the notebook: whatever goes wrong (bad arguments, an exception in the
tool) becomes text that goes back to the model, which can then correct itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import json
import typing
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Annotated, Any, NamedTuple, Optional, Union

from ._annotations import EMPTY, parameter_hints
from ._errors import ShenmaError
from ._schema import MAPPINGS, SEQUENCES, SETS, UNIONS, is_model_class
from ._secret import excerpt
from ._toolreg import Tool
from ._toolspec import SKIPPED_KINDS

__all__ = [
    "RESULT_LIMIT",
    "Message",
    "ToolError",
    "ToolOutcome",
    "describe_call",
    "describe_message",
    "parse_arguments",
    "run_tool",
    "tool_messages",
]

RESULT_LIMIT = 100_000
_MALFORMED_HINT = "the model sent malformed arguments; ask again, or try another model"

# A chat message as the OpenAI API has it: {"role": ..., "content": ..., "tool_calls": [...], ...}.
Message = dict[str, Any]


class ToolError(ShenmaError):
    """A tool call from the model cannot be understood (its arguments are not a JSON object)."""


class ToolOutcome(NamedTuple):
    """What a call gave: the text for the model, and whether the tool ran and returned."""

    text: str
    ok: bool


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
            f"the tool arguments are not valid JSON ({exc}): {excerpt(arguments, 200)}", _MALFORMED_HINT
        ) from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ToolError(
            f"the tool arguments are a JSON {type(value).__name__}, not an object: {excerpt(arguments, 200)}",
            _MALFORMED_HINT,
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


def _coerce(value: object, tp: object) -> object:
    """Turn JSON values into what the function's hints ask for where JSON cannot say it directly (enums,
    pydantic models, tuples, sets); everything else is passed as the model sent it."""
    if tp is EMPTY or tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _coerce(value, args[0])
    if origin in UNIONS:
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
    if origin in SEQUENCES and isinstance(value, list):
        items = [_coerce(v, args[0]) for v in value] if args else value
        return set(items) if origin in SETS else (frozenset(items) if origin is frozenset else items)
    if origin is tuple and isinstance(value, list):
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return tuple(_coerce(v, args[0]) for v in value) if args else tuple(value)
        return tuple(_coerce(v, t) for v, t in zip(value, args, strict=False)) + tuple(value[len(args) :])
    if origin in MAPPINGS and isinstance(value, dict) and len(args) == 2:
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
    if not isinstance(value, tp) and is_model_class(tp):
        return tp.model_validate(value)
    if tp in (tuple, set, frozenset) and isinstance(value, list):
        return tp(value)
    return value


def _json_default(value: object) -> object:
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


def _as_text(result: object) -> str:
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


def _failed(text: str) -> ToolOutcome:
    return ToolOutcome(_cap(text), False)


def _error_text(exc: BaseException) -> str:
    message = str(exc)
    return f"error: {type(exc).__name__}: {message}" if message else f"error: {type(exc).__name__}"


def _describe_parameters(sig: inspect.Signature) -> str:
    shown = [
        p.name if p.default is EMPTY else f"{p.name}=…"
        for p in sig.parameters.values()
        if p.kind not in SKIPPED_KINDS
    ]
    return ", ".join(shown) or "none"


def run_tool(tool: Tool, arguments: Mapping[str, object]) -> ToolOutcome:
    """Call the tool: ``(text for the model, True)`` on success, ``("error: Type: message", False)``
    otherwise.

    The result is sent as text: a ``str`` as is, anything JSON can hold as JSON, the rest as ``repr()``,
    cut at :data:`RESULT_LIMIT` characters with a note. Exceptions in the tool, and arguments that do not
    fit its signature, become the error text, so the model can see what went wrong and try again;
    ``KeyboardInterrupt`` is not caught, so the user can still stop a tool that hangs.
    """
    fn = tool.function
    positional: list[object] = []
    keywords = dict(arguments)
    try:
        sig: Optional[inspect.Signature] = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        hints = parameter_hints(fn, sig)
        for pname, value in list(keywords.items()):
            param = sig.parameters.get(pname)
            if param is None or param.kind in SKIPPED_KINDS:
                continue
            try:
                keywords[pname] = _coerce(value, hints.get(pname, EMPTY))
            except Exception as exc:  # enum and model validation failures, and anything odd in between
                return _failed(f"error: invalid value for {pname}: {exc}")
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        unknown = [k for k in keywords if k not in sig.parameters]
        if unknown and not takes_any:
            # Named first: a misspelt argument otherwise shows up only as "missing a required argument".
            listed = ", ".join(repr(k) for k in unknown)
            expected = _describe_parameters(sig)
            return _failed(f"error: TypeError: unexpected argument {listed} (parameters: {expected})")
        for param in sig.parameters.values():
            if param.kind is not inspect.Parameter.POSITIONAL_ONLY or param.name not in keywords:
                break
            positional.append(keywords.pop(param.name))
        try:
            sig.bind(*positional, **keywords)
        except TypeError as exc:
            return _failed(f"error: TypeError: {exc} (parameters: {_describe_parameters(sig)})")
    try:
        result = fn(*positional, **keywords)
    except Exception as exc:  # the model gets the error and can react; the notebook gets no traceback
        return _failed(_error_text(exc))
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # no "never awaited" warning for a coroutine that was never going to run
        return _failed("error: the tool is async, which is not supported: define it with def, not async def")
    return ToolOutcome(_cap(_as_text(result)), True)


def tool_messages(
    calls: list[dict[str, Any]], results: list[str], *, content: Optional[str] = None
) -> list[Message]:
    """The messages that record a round of tool calls: the assistant's calls, then one ``tool`` message per
    result, in order. Calls without an id (some relays drop them) get one, so each result can refer to it.

    ``content`` is any text the model wrote alongside the calls.
    """
    if len(calls) != len(results):
        raise ValueError(f"{len(calls)} tool calls but {len(results)} results")
    clean: list[dict[str, Any]] = []
    for call in calls:
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
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
    out: list[Message] = [{"role": "assistant", "content": content, "tool_calls": clean}]
    out.extend(
        {"role": "tool", "tool_call_id": call["id"], "content": result}
        for call, result in zip(clean, results, strict=True)
    )
    return out


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""  # None: an assistant message that only calls tools
    parts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            parts.append("[image]" if kind == "image_url" else f"[{kind or '?'}]")
    return " ".join(parts)


def _arguments_text(arguments: object) -> str:
    # Arguments a relay passed through as an object rather than as JSON text.
    if arguments is None:
        return "{}"
    try:
        return json.dumps(arguments, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # a circular structure
        return "…"


def describe_message(message: Mapping[str, object]) -> str:
    """A conversation message as one line for the user: its text, ``[image]`` for a picture, and an
    assistant's tool calls as ``→ get_weather({"city": "北京"})``. Never raises, whatever the dict holds."""
    text = _content_text(message.get("content"))
    calls = message.get("tool_calls")
    shown: list[str] = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = _arguments_text(arguments)
        shown.append(f"{function.get('name') or '?'}({arguments.strip() or '{}'})")
    if shown:
        text = f"{text} → {', '.join(shown)}" if text.strip() else f"→ {', '.join(shown)}"
    return " ".join(text.split())
