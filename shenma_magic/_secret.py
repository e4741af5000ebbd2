"""A key that does not print itself, and the rules for where a key may travel. Pure."""

from __future__ import annotations

import ipaddress
import re
from typing import Optional
from urllib.parse import urlsplit

__all__ = ["Secret", "excerpt", "is_loopback_host", "looks_like_key", "mask", "redact"]

# What pasted keys look like: OpenAI-style "sk-..." (relays issue these too), or a long opaque token.
_KEY_SHAPE = re.compile(r"\b(sk|ak|pk|rk)-[A-Za-z0-9_\-]{16,}")


def mask(key: str) -> str:
    """``sk-…9f3a``: enough to tell two keys apart, never enough to use one."""
    if not key:
        return "(none)"
    prefix = key[:3] if key[:3] in ("sk-", "ak-", "pk-", "rk-") else ""
    return f"{prefix}…{key[-4:]}" if len(key) >= 12 else f"{prefix}…"


def redact(text: str, *keys: Optional[str]) -> str:
    """Replace every full occurrence of a key in ``text`` by its mask."""
    for key in keys:
        if key and len(key) >= 6 and key in text:
            text = text.replace(key, mask(key))
    return text


def mask_keys(text: str) -> str:
    """Mask every key-shaped token in ``text`` (for excerpts of what a server sent)."""
    return _KEY_SHAPE.sub(lambda m: mask(m.group(0)), text)


def excerpt(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` with "…", for quoting what a server or a tool sent.

    Key-shaped tokens are masked before cutting: a cut through a key would defeat later redaction.
    """
    text = mask_keys(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def key_tokens(text: str) -> set[str]:
    """The key-shaped tokens in ``text``."""
    return {m.group(0) for m in _KEY_SHAPE.finditer(text)}


def looks_like_key(text: str) -> bool:
    """True if ``text`` holds something shaped like an API key (used to refuse keys typed into cells)."""
    return bool(_KEY_SHAPE.search(text))


class Secret:
    """Holds a key. ``str()``, ``repr()`` and f-strings show only the mask; :meth:`reveal` gives the key.

    Keeping keys in this wrapper means a traceback in verbose mode, a ``repr`` of a settings object or an
    accidental print shows ``sk-…9f3a`` instead of the key.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    def __str__(self) -> str:
        return mask(self._value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # Pickling must not be a way to get the key into a notebook or a cache by accident.
        raise TypeError("a Secret cannot be pickled")


def is_loopback_host(host: Optional[str]) -> bool:
    """127.0.0.0/8, ::1 and localhost: the only hosts a key may reach over plain HTTP."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(url: str) -> str:
    """The host (lower-cased, no port) a key is scoped to."""
    return (urlsplit(url).hostname or "").lower().rstrip(".")
