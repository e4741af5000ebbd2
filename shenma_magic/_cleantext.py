"""Text that can always be encoded: lone surrogates made U+FFFD. Pure.

A Python ``str`` may hold surrogate code points (from ``json.loads`` of ``"\\ud800"``, a notebook
variable, a tool's result); UTF-8 cannot encode them, so SQLite, ``hashlib`` and every stream would raise.
A pair of surrogates in order is joined into the character it stands for; any other becomes U+FFFD.
"""

from __future__ import annotations

import re

__all__ = ["clean_text"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates replaced by U+FFFD (unchanged, and
    costing one regex scan, when it holds none)."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
