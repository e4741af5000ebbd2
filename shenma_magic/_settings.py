"""The settings of a chat and the one place that checks them. Pure.

A value is checked the same way whichever door it came in by: a ``%%chat`` option, ``%chat NAME VALUE``,
``%config ChatMagics.NAME = ...``, or ``Session(NAME=...)``. A bad value is refused when it is set, with one
line that says what would be accepted, so it can never reach a request and fail every later cell.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional

from ._cleantext import clean_text
from ._defaults import DEFAULT_BASE_URL, DEFAULT_MODEL
from ._errors import ConfigError
from ._secret import known_key_in, looks_like_key

__all__ = ["DISPLAY_MODES", "Settings", "check_setting", "given_options", "parse_setting"]

DISPLAY_MODES = ("auto", "widget", "markdown", "text")


def _number(name: str, value: Any, *, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, not {value!r}")
    if integer and not float(value).is_integer():
        raise ConfigError(f"{name} must be a whole number, not {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {value!r}")
    return value


# Control characters (C0 but tab and newline, DEL, C1), BiDi controls and line separators: a setting is
# echoed to terminals and into every status line and table, where these would act, not show.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _text(name: str, value: Any, *, lines: bool = False) -> str:
    """Text a setting may hold: no key (neither key-shaped nor a run of one the package knows), no
    control character (``lines``: tab and newline allowed), lone surrogates made U+FFFD."""
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text, not {type(value).__name__}")
    text = clean_text(value)
    if looks_like_key(text) or known_key_in(text):
        raise ConfigError(
            f"{name}: that looks like an API key", "keys are entered with %chat key, never typed"
        )
    # One-line settings may end in whitespace (it is stripped), not hold it inside.
    inner = text.replace("\r\n", "\n") if lines else text.strip(" \t\r\n")
    bad = _CONTROL.search(inner)
    if bad is not None or (not lines and ("\n" in inner or "\t" in inner)):
        where = bad.group(0) if bad is not None else ("\n" if "\n" in inner else "\t")
        raise ConfigError(
            f"{name} holds the control character U+{ord(where):04X}, which is refused",
            "use plain printable text",
        )
    return text


def _system(name: str, value: Any) -> str:
    return _text(name, value, lines=True)


def _model(name: str, value: Any) -> str:
    text = _text(name, value).strip()
    if any(not ch.isprintable() or ch.isspace() for ch in text):
        raise ConfigError(f"{name} must be one model name without spaces, not {text!r}")
    return text


# A currency goes into every status line, cost and table: a symbol or a code, never a paragraph.
_CURRENCY_LENGTH = 8


def _currency(name: str, value: Any) -> str:
    text = _text(name, value)
    if len(text) > _CURRENCY_LENGTH:
        raise ConfigError(
            f"{name} must be at most {_CURRENCY_LENGTH} characters, not {len(text)}",
            "use a symbol or a code, e.g. ¥, $, € or CNY",
        )
    unseen = next((ch for ch in text if not ch.isprintable()), None)
    if unseen is not None:
        raise ConfigError(
            f"{name} holds U+{ord(unseen):04X}, which is not printable",
            "use a symbol or a code, e.g. ¥ or CNY",
        )
    return text


def _base_url(name: str, value: Any) -> str:
    text = _text(name, value).strip()
    if not text:
        return ""
    from ._urls import parse_base_url  # the one URL parser (pure: setting a URL loads no HTTP library)

    try:
        return parse_base_url(text).url
    except ValueError as exc:  # urllib's own complaint (e.g. an unclosed "[")
        raise ConfigError(
            f"{name}: not a URL ({exc}): {text!r}", "use e.g. https://api.whatai.cc/v1"
        ) from None


def _range(
    low: float, high: float, *, integer: bool = False, none: bool = False, unit: str = ""
) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value is None and none:
            return None
        number = _number(name, value, integer=integer)
        if not low <= number <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}{unit}, not {value!r}")
        return int(number) if integer else float(number)

    return check


def _choice(*options: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        text = _text(name, value).strip().lower()
        if text not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, not {value!r}")
        return text

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, not {value!r}")
    return value


def _prices(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a dict of model → price")
    from ._pricing import parse_prices

    for model, entry in value.items():
        if isinstance(model, str):
            _text(f"{name} key", model)
        numbers = (
            entry.values()
            if isinstance(entry, Mapping)
            else entry
            if isinstance(entry, (tuple, list))
            else ()
        )
        for number in numbers:
            _price_number(name, model, number)
    parse_prices(value)  # raises a one-line ConfigError naming the model
    return dict(value)


# Per million tokens (or per call). Far above any real price, low enough that no token count can make a
# cost overflow to inf.
_MAX_PRICE = 1e9


def _price_number(name: str, model: Any, number: Any) -> None:
    if number is None or isinstance(number, bool) or not isinstance(number, (int, float)):
        return  # parse_prices names what is wrong with it
    try:
        as_float = float(number)
    except OverflowError:
        as_float = math.inf
    if not math.isfinite(as_float) or not 0 <= as_float <= _MAX_PRICE:
        raise ConfigError(
            f"{name}: the price for {model!r} must be a finite number between 0 and {_MAX_PRICE:g}",
            "prices are per million tokens, e.g. {'input': 1.05, 'output': 4.2}",
        )


# name -> checker. The bounds are wide: they exist to refuse what cannot work (0, negative, nan, inf),
# not to second-guess a user.
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "model": _model,
    "base_url": _base_url,
    "system": _system,
    "temperature": _range(0, 2, none=True),
    "max_tokens": _range(1, 10_000_000, integer=True, none=True),
    "timeout": _range(0.1, 86_400, unit=" s"),
    "max_time": _range(0.1, 86_400, unit=" s"),
    "max_history": _range(0, 1_000_000, integer=True),
    "max_retries": _range(0, 10, integer=True),
    "max_tool_rounds": _range(0, 100, integer=True),
    "update_interval": _range(0.01, 10, unit=" s"),
    "display": _choice(*DISPLAY_MODES),
    "fill_vars": _flag,
    "log": _flag,
    "cache": _flag,
    "prices": _prices,
    "currency": _currency,
}


def check_setting(name: str, value: Any) -> Any:
    """``value`` as the setting ``name`` keeps it; ConfigError (one line) if it cannot work."""
    check = _CHECKS.get(name)
    if check is None:
        raise ConfigError(f"there is no setting {name!r}", f"settings: {', '.join(sorted(_CHECKS))}")
    return check(name, value)


def given_options(**values: Any) -> dict[str, Any]:
    """The options that were given: ``None`` means "not given" (the setting applies), so it is left out."""
    return {name: value for name, value in values.items() if value is not None}


def parse_setting(name: str, text: str) -> Any:
    """A setting typed as text (``%chat timeout 30``): converted to its type, then checked."""
    check = _CHECKS.get(name)
    if check is None:
        raise ConfigError(f"there is no setting {name!r}", f"settings: {', '.join(sorted(_CHECKS))}")
    text = text.strip()
    low = text.lower()
    value: Any = text
    if name in ("temperature", "max_tokens") and low in ("none", "default", ""):
        value = None
    elif name in ("max_tokens", "max_history", "max_retries", "max_tool_rounds"):
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {text!r}") from None
    elif name in ("temperature", "timeout", "max_time", "update_interval"):
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {text!r}") from None
    elif name in ("fill_vars", "log", "cache"):
        if low not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
            raise ConfigError(f"{name} must be on or off, not {text!r}")
        value = low in ("true", "on", "yes", "1")
    elif name == "prices":
        raise ConfigError("prices are a dict: set them with %config ChatMagics.prices = {...}")
    return check(name, value)


@dataclass(frozen=True)
class Settings:
    """What a request is made with, when the call itself does not say. Every field is checked on the way in
    (:meth:`with_changes`); empty ``model``/``base_url`` fall back to the environment, then the defaults."""

    model: str = ""
    base_url: str = ""
    system: str = ""
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    timeout: float = 120.0
    max_time: float = 600.0
    max_history: int = 20
    max_retries: int = 2
    max_tool_rounds: int = 5
    update_interval: float = 0.075
    display: str = "auto"
    fill_vars: bool = True
    log: bool = True  # every exchange into the local log (see _store.py)
    cache: bool = False  # answer an identical request from the log instead of sending it
    prices: dict[str, Any] = field(default_factory=dict)
    currency: str = "¥"

    def with_changes(self, **changes: Any) -> Settings:
        checked = {name: check_setting(name, value) for name, value in changes.items()}
        return replace(self, **checked)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def resolved_model(self, environ: Mapping[str, str] = os.environ) -> str:
        return self.model or environ.get("SHENMA_MODEL", "").strip() or DEFAULT_MODEL

    def resolved_base_url(self, environ: Mapping[str, str] = os.environ) -> str:
        """The base URL to use, normalised; ConfigError if the one from the environment is bad."""
        if self.base_url:
            return self.base_url
        raw = environ.get("SHENMA_BASE_URL", "").strip() or environ.get("OPENAI_BASE_URL", "").strip()
        if not raw:
            return DEFAULT_BASE_URL
        from ._urls import parse_base_url

        return parse_base_url(raw).url
