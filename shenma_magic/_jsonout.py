"""JSON replies (``%%chat --json [--schema NAME]``): the ``response_format`` to ask for, getting the JSON
back out of what the model actually wrote, and a light check against the schema. Pure.

Models asked for JSON still wrap it in code fences or a sentence often enough, and relays do not all pass
``response_format`` on, so recovery is tolerant. It is never a guess, though: when two different JSON values
could be the answer, that is an error rather than a coin toss.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any, NamedTuple, Optional

from ._errors import ConfigError, ShenmaError
from ._schema import JSON_TYPES, is_model_class, json_type, matches_json_type, model_schema
from ._secret import excerpt

__all__ = ["JSONRecoveryError", "JSONValidationError", "recover_json", "response_format", "validate_against"]

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# Reasoning models behind some relays put their thinking inline, ahead of the answer.
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL | re.IGNORECASE)
# A fenced block: ```json ... ``` (or ~~~); an unclosed fence runs to the end (a reply cut short).
_FENCE = re.compile(r"(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\n?(.*?)(?:\1|\Z)", re.DOTALL)
_JSON_TAGS = frozenset({"", "json", "jsonc", "json5", "jsonl"})
# Only brackets that can start JSON: "{" before a key or "}", "[" before a value or "]". Prose such as
# "{name}" or "[1]-style notes" costs no parse attempt.
_OPENERS = re.compile(r'\{\s*["}]|\[\s*[-"\d{\[\]tfn]')
# Strings (closed or not) and brackets: enough to find where a bracketed span ends, in one linear pass.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_ACCEPTED = "a JSON Schema (a dict) or a pydantic model class"
_HINT = "ask for JSON only; --json asks the server to enforce it where the model supports that"
_decoder = json.JSONDecoder(strict=False)  # literal newlines inside strings are common and harmless


class JSONRecoveryError(ShenmaError):
    """The reply does not hold exactly one JSON value."""


class JSONValidationError(JSONRecoveryError):
    """The reply holds JSON, but not of the shape the schema asks for."""


def _clean_name(raw: str) -> str:
    """OpenAI wants ``^[A-Za-z0-9_-]{1,64}$``; a title like "Person record" or "回复" is not that."""
    name = _NAME_CHARS.sub("_", raw).strip("_")[:64]
    return name or "reply"


def response_format(schema: object = None, *, name: Optional[str] = None) -> dict[str, Any]:
    """The request's ``response_format``: ``json_object`` without a schema, ``json_schema`` with one.

    ``schema`` is None, a JSON Schema dict (named by ``name``, else its ``title``, else ``"reply"``), or a
    pydantic model class (named after the class). ``strict`` is off: relays and non-OpenAI models handle
    strict schemas unevenly, and :func:`validate_against` checks the answer anyway.

    Raises:
        ConfigError: anything else, or a dict that is not JSON.
    """
    if schema is None:
        return {"type": "json_object"}
    if is_model_class(schema):
        body = model_schema(schema)
        default_name = schema.__name__
    elif isinstance(schema, dict):
        try:
            json.dumps(schema)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"the schema cannot be sent as JSON: {exc}", "use only JSON values in it"
            ) from exc
        body = copy.deepcopy(schema)  # the request must not change if the user's dict changes later
        title = schema.get("title")
        default_name = title if isinstance(title, str) else "reply"
    else:
        what = type(schema).__name__
        instance = callable(getattr(type(schema), "model_json_schema", None))
        hint = "pass the model class itself, not an instance of it" if instance else f"give {_ACCEPTED}"
        raise ConfigError(f"a {what} cannot be used as a JSON schema", hint)
    return {
        "type": "json_schema",
        "json_schema": {"name": _clean_name(name or default_name), "schema": body, "strict": False},
    }


def _key(value: object) -> str:
    # Values are compared as JSON text: in Python 1 == True and [1] == [1.0], which JSON tells apart.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _distinct(values: list[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(_key(value), value)
    return list(seen.values())


def _ambiguous(count: int) -> JSONRecoveryError:
    return JSONRecoveryError(
        f"the reply holds {count} JSON values; cannot tell which one is meant",
        "ask for exactly one JSON value; --json asks the server to enforce that where supported",
    )


def _span_end(text: str, start: int) -> Optional[int]:
    """Where the bracketed span opening at ``start`` closes (string-aware), or None if it never does."""
    depth = 0
    for token in _TOKENS.finditer(text, start):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
        elif mark in ("]", "}"):
            depth -= 1
            if depth == 0:
                return token.end()
    return None


class _ParseFailure(Exception):
    """Why and where (absolute) a value failed to parse; cheap, unlike a JSONDecodeError on a long text."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(msg)
        self.msg = msg
        self.pos = pos


class _Decoded(NamedTuple):
    value: Any  # any JSON value, as json.loads gives it
    end: int  # where it ends in the whole text


def _decode_at(text: str, start: int) -> _Decoded:
    """``raw_decode`` at ``start``, returning the absolute end.

    It decodes a window that doubles only while the window's edge could be the cause: a failed attempt
    costs the size of the window, not of the text before it (``JSONDecodeError`` counts lines from the
    start of what it was given, which made scanning long replies quadratic).
    """
    size = 4096
    while True:
        window = text[start : start + size]
        whole = start + size >= len(text)
        try:
            value, end = _decoder.raw_decode(window)
        except json.JSONDecodeError as exc:
            at_edge = exc.pos >= len(window) - 6 or exc.msg.startswith("Unterminated string")
            if whole or not at_edge:
                raise _ParseFailure(exc.msg, start + exc.pos) from None
        except ValueError as exc:  # not JSON's own errors: e.g. an integer over Python's digit limit
            raise _ParseFailure(str(exc).split(";")[0], start + 1) from None
        else:
            if whole or end < len(window):  # a number that ends at the edge may go on past it
                return _Decoded(value, start + end)
        size *= 2


class _Embedded(NamedTuple):
    values: list[Any]
    failure: Optional[str]  # the first parse failure, for the message


def _embedded(text: str) -> _Embedded:
    """Every top-level JSON object or array in the text, and the first parse failure (for the message).

    When a value fails to parse, scanning resumes where the parser gave up, so the objects nested inside a
    broken one are not mistaken for the answer.
    """
    found: list[Any] = []
    failure: Optional[str] = None
    i = 0
    while True:
        opener = _OPENERS.search(text, i)
        if opener is None:
            return _Embedded(found, failure)
        start = opener.start()
        try:
            value, i = _decode_at(text, start)
        except _ParseFailure as exc:
            if failure is None:
                failure = f"{exc.msg} at character {exc.pos}"
            i = max(exc.pos, start + 1)
            continue
        except RecursionError:
            # Thousands of nested brackets: skip the whole span, or every opener inside it would recurse
            # just as deep again.
            end = _span_end(text, start)
            i = end if end is not None else len(text)
            failure = failure or f"nested too deeply at character {start}"
            continue
        found.append(value)


def recover_json(text: str) -> Any:
    """The JSON value in a reply: the whole text, else its one ```json fenced block, else the one JSON
    object or array embedded in prose.

    Raises:
        JSONRecoveryError: empty text, no JSON, or more than one different JSON value.
    """
    if not text or not text.strip():
        raise JSONRecoveryError("the reply is empty, so it holds no JSON", _HINT)
    body = _THINK.sub("", text.lstrip("\ufeff"), count=1).strip()
    if not body:
        raise JSONRecoveryError("the reply holds only reasoning, no JSON", _HINT)
    try:
        return _decoder.decode(body)
    except (ValueError, RecursionError):  # ValueError also covers integers over Python's digit limit
        pass

    fenced: list[Any] = []
    fence_error: Optional[str] = None
    for block in _FENCE.finditer(body):
        if block.group(2).lower() not in _JSON_TAGS:
            continue
        content = block.group(3).strip()
        try:
            fenced.append(_decoder.decode(content))
        except json.JSONDecodeError as exc:
            if block.group(2) and fence_error is None:
                fence_error = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        except (ValueError, RecursionError) as exc:
            if block.group(2) and fence_error is None:
                fence_error = str(exc).split(";")[0] or "nested too deeply"
    if fenced:
        values = _distinct(fenced)
        if len(values) > 1:
            raise _ambiguous(len(values))
        return values[0]

    # The scan resumes past anything that failed to parse, so a broken ```json block cannot hand back
    # an object nested inside it; it does rescue a block cut short by a "```" inside one of its strings.
    found, failure = _embedded(body)
    values = _distinct(found)
    if len(values) == 1:
        return values[0]
    if len(values) > 1:
        raise _ambiguous(len(values))
    if fence_error is not None:
        raise JSONRecoveryError(f"the reply's ```json block is not valid JSON: {fence_error}", _HINT)
    if body[0] in "[{" and _span_end(body, 0) is None:
        raise JSONRecoveryError(
            "the reply is not JSON: it stops before the JSON is complete (the reply was probably cut short)",
            "allow a longer answer (max_tokens), or ask for less",
        )
    detail = f" ({failure})" if failure else ""
    raise JSONRecoveryError(f"the reply is not JSON{detail}: {excerpt(body)}", _HINT)


def _pydantic_summary(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    try:
        items = errors() if callable(errors) else None
    except Exception:  # a foreign exception with an errors attribute of another kind
        items = None
    if not items:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    parts = []
    for item in items[:3]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "(top level)"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
    return "; ".join(parts) + more


def validate_against(value: Any, schema: object) -> Any:
    """Check ``value`` against ``schema``; return it (for a pydantic model class: the model instance).

    A dict schema gets a light check only, of the top-level ``type`` and ``required`` keys (no jsonschema
    dependency); a pydantic model validates fully. ``schema=None`` accepts anything.

    Raises:
        JSONValidationError: the value does not fit.
        ConfigError: ``schema`` is neither a dict nor a pydantic model class.
    """
    if schema is None:
        return value
    if is_model_class(schema):
        try:
            return schema.model_validate(value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise JSONValidationError(
                f"the reply does not match {schema.__name__}: {_pydantic_summary(exc)}",
                "ask again, or describe the fields in the prompt",
            ) from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"a {type(schema).__name__} cannot be used as a JSON schema", f"give {_ACCEPTED}")
    wanted = schema.get("type")
    kinds = [wanted] if isinstance(wanted, str) else wanted if isinstance(wanted, list) else []
    known = [k for k in kinds if isinstance(k, str) and k in JSON_TYPES]
    if known and not any(matches_json_type(value, k) for k in known):
        actual = json_type(value) or type(value).__name__
        raise JSONValidationError(
            f"the reply is a JSON {actual}, but the schema asks for {' or '.join(known)}",
            "ask again, or say the expected shape in the prompt",
        )
    required = schema.get("required")
    if isinstance(value, dict) and isinstance(required, list):
        missing = [k for k in required if isinstance(k, str) and k not in value]
        if missing:
            listed = ", ".join(repr(k) for k in missing)
            raise JSONValidationError(
                f"the reply lacks the required key{'s' if len(missing) > 1 else ''} {listed}",
                "ask again, or list the fields in the prompt",
            )
    return value
