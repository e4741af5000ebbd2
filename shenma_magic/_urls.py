"""One strict parse of a base URL: the host a key is scoped to is the host that is connected to. Pure.

A URL that two parsers could read two ways is refused rather than guessed at. ``requests`` (urllib3), the
stdlib's ``urlsplit`` and browsers disagree on backslashes, ``@`` in odd places, percent-encoded
delimiters, whitespace and control characters, and on hosts such as ``2130706433`` or ``0x7f.1``; a key
chosen from one reading and sent along another is a key sent to a stranger. So:

* surrounding spaces and newlines (a paste) are dropped; any other whitespace or control character,
  anywhere, is refused;
* no userinfo (``@`` anywhere), no backslash, no ``%`` (a base URL never needs percent-encoding), no query
  and no fragment;
* the scheme is ``http`` or ``https`` (``https://`` is added to a bare host);
* the host is a DNS name (letters, digits, ``-``, ``_``; labels of 1-63 characters), a dotted-quad IPv4
  address in canonical form (``127.0.0.1``; not ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` or ``127.1``),
  or a bracketed IPv6 address without a zone id. One trailing dot is dropped (``api.whatai.cc.`` is
  ``api.whatai.cc``). A non-ASCII name is accepted only if every label is a valid IDNA 2008 label, and
  is then used in its ``xn--`` form for both the key scope and the connection (full-width letters,
  full-width dots and other look-alikes are refused);
* the port, if any, is a number from 1 to 65535 (the scheme's default port is dropped);
* the path is ASCII letters, digits and ``-._~!$&'()*+,;=:`` in non-empty segments, no ``.`` or ``..``.

The URL handed to ``requests`` is rebuilt from the parsed parts (:attr:`BaseURL.url`), so whatever reads it
next sees one canonical form.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple, Optional

from ._errors import ConfigError

__all__ = ["BaseURL", "parse_base_url"]

_HINT = "use a plain URL such as https://api.whatai.cc/v1"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?$")
_SEGMENT = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:]+$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What a user may paste around a URL; everything else that is not visible is refused.
_SURROUNDING = " \t\r\n"
_SUFFIXES = ("/chat/completions", "/completions", "/models")


class BaseURL(NamedTuple):
    """A parsed, canonical base URL.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: lower case; an IDNA name in its ``xn--`` form; an IPv6 address compressed, without brackets.
        port: the port if it is not the scheme's default, else None.
        path: the API base path, e.g. ``"/v1"`` (never empty, no trailing slash).
    """

    scheme: str
    host: str
    port: Optional[int]
    path: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else host

    @property
    def url(self) -> str:
        """The canonical URL: what is sent to, and what is shown."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    def __str__(self) -> str:
        return self.url


def _refuse(what: str, shown: str) -> ConfigError:
    return ConfigError(f"refusing the base URL {shown}: {what}; nothing was sent", _HINT)


def _show(url: str) -> str:
    """The URL for an error line: user info hidden (it may be a password or a key), key-shaped tokens
    masked, control characters made visible, long URLs cut."""
    from ._secret import mask_keys  # _secret imports this module

    if "@" in url:
        head, _, tail = url.rpartition("@")
        scheme = _SCHEME.match(head)
        url = (scheme.group(0) if scheme else "") + "…@" + tail
    out = "".join(c if (c.isprintable() and not c.isspace()) or c == " " else f"\\u{ord(c):04x}" for c in url)
    out = mask_keys(out)
    return repr(out if len(out) <= 100 else out[:99] + "…")


def parse_base_url(url: str) -> BaseURL:
    """Parse ``url`` strictly into its canonical :class:`BaseURL`, or raise one :class:`ConfigError` line.

    ``https://api.whatai.cc``, ``.../v1``, ``.../v1/`` and ``.../v1/chat/completions`` are one base; a bare
    host gets ``https://``; a URL with no path gets ``/v1`` (what OpenAI-compatible relays serve). See the
    module docstring for what is refused and why.
    """
    if not isinstance(url, str):
        raise ConfigError(f"the base URL must be a string, not {type(url).__name__}", _HINT)
    text = url.strip(_SURROUNDING)
    shown = _show(text)
    if not text:
        raise ConfigError("the base URL is empty", "set it to e.g. https://api.whatai.cc/v1")
    for ch in text:
        if ch.isspace() or not ch.isprintable() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            raise _refuse(f"it holds a whitespace or control character (U+{ord(ch):04X})", shown)
    for ch, what in (
        ("@", "it holds '@' (user info, or a host hidden after it)"),
        ("\\", "it holds a backslash"),
        ("%", "it holds percent-encoding, which a base URL never needs"),
        ("?", "a base URL has no query ('?')"),
        ("#", "a base URL has no fragment ('#')"),
    ):
        if ch in text:
            raise _refuse(what, shown)
    found = _SCHEME.match(text)
    if found:
        scheme = found.group(1).lower()
        rest = text[found.end() :]
    elif "://" in text:
        raise _refuse("its scheme is malformed", shown)
    else:
        scheme, rest = "https", text
    if scheme not in _DEFAULT_PORTS:
        raise _refuse(f"the scheme is {scheme}: (only http and https)", shown)
    authority, slash, path = rest.partition("/")
    host, port = _authority(authority, shown)
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return BaseURL(scheme, host, port, _path(slash + path, shown))


def _authority(authority: str, shown: str) -> tuple[str, Optional[int]]:
    if not authority:
        raise _refuse("it has no host", shown)
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _refuse("the IPv6 address has no closing ']'", shown)
        literal, after = authority[1:end], authority[end + 1 :]
        if after and not after.startswith(":"):
            raise _refuse("something follows the IPv6 address", shown)
        try:
            host = ipaddress.IPv6Address(literal).compressed
        except ValueError:
            raise _refuse("the IPv6 address is malformed", shown) from None
        port_text = after[1:] if after else None
    else:
        if "[" in authority or "]" in authority:
            raise _refuse("a bracket outside an IPv6 address", shown)
        name, colon, port_text_raw = authority.partition(":")
        port_text = port_text_raw if colon else None
        host = _host(name, shown)
    port: Optional[int] = None
    if port_text is not None:
        if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
            raise _refuse("the port must be a number from 1 to 65535", shown)
        port = int(port_text)
    return host, port


def _host(name: str, shown: str) -> str:
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]  # the root label: "api.whatai.cc." is the same host
    if not name:
        raise _refuse("it has no host", shown)
    if not name.isascii():
        name = _idna(name, shown)
    name = name.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _refuse("the host name is malformed", shown)
    last = labels[-1]
    # WHATWG: a host whose last label is a number is an IPv4 address; parsers then accept octal, hex and
    # short forms, and disagree about which. Only the canonical dotted quad is accepted.
    numeric = last.isdigit() or re.fullmatch(r"0x[0-9a-f]*", last)
    if numeric and (
        len(labels) != 4 or not all(p.isdigit() and str(int(p)) == p and int(p) <= 255 for p in labels)
    ):
        raise _refuse("an IPv4 address must be written as four decimal numbers, e.g. 127.0.0.1", shown)
    return name


def _idna(name: str, shown: str) -> str:
    try:
        import idna  # a dependency of requests; only needed for the rare non-ASCII host
    except ImportError:  # pragma: no cover - requests always brings it
        raise _refuse("a non-ASCII host name (write it in its xn-- form)", shown) from None
    out: list[str] = []
    for label in name.split("."):
        try:
            alabel = idna.alabel(label).decode("ascii") if not label.isascii() else label
            if not label.isascii() and idna.ulabel(alabel) != label.lower():
                raise idna.IDNAError("not a round trip")
        except (idna.IDNAError, UnicodeError, ValueError):
            raise _refuse(
                "the host name holds characters that are not a valid international name", shown
            ) from None
        out.append(alabel)
    return ".".join(out)


def _path(path: str, shown: str) -> str:
    path = path.rstrip("/")
    stripped = True
    while stripped:  # until none is left, so that the canonical form parses to itself
        stripped = False
        for suffix in _SUFFIXES:
            if path.endswith(suffix):
                path = path[: -len(suffix)].rstrip("/")
                stripped = True
    if not path:
        return "/v1"
    segments = path.split("/")[1:]
    for segment in segments:
        if segment in (".", ".."):
            raise _refuse("the path holds a '.' or '..' segment", shown)
        if not segment:
            raise _refuse("the path holds an empty segment ('//')", shown)
        if not _SEGMENT.match(segment):
            raise _refuse("the path holds characters a base URL does not need", shown)
    return path
