"""Text that is always valid Unicode. Pure.

JSON may carry any UTF-16 code unit as an escape (``"\\ud83d"``), so ``json.loads`` can return strings with
lone or reversed surrogates, which no UTF-8 encoder accepts: printing, saving or re-sending such a string
fails far from where it came in. Everything read from a server passes through here first.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["is_high_surrogate", "valid_json", "valid_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def is_high_surrogate(char: str) -> bool:
    """Whether ``char`` (one character) is the first half of a surrogate pair."""
    return "\ud800" <= char <= "\udbff"


def valid_text(text: str) -> str:
    """``text`` with each surrogate pair joined into its character and each lone surrogate as U+FFFD;
    the same object when there is nothing to change. The result always encodes as UTF-8."""
    if not _SURROGATE.search(text):
        return text
    # UTF-16 is the one codec that pairs surrogates; "replace" turns the ones without a partner into U+FFFD.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def valid_json(value: Any) -> Any:
    """A JSON value (as ``json.loads`` returns it) with :func:`valid_text` applied to every string in it,
    keys included."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_text(k) if isinstance(k, str) else k: valid_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_json(v) for v in value]
    return value
