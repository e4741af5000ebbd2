"""A key that does not print itself, masking of keys in any text, and the rules for where a key may travel.
Pure.

Masking promise: no run of :data:`MIN_RUN` (10) or more consecutive characters of a key the package knows
appears in what it shows, raises, records or saves. A key need not appear whole to be masked: a server may
echo a cut or re-spaced key, a cut may fall through one, and a stream may split one across deltas. So
:func:`redact` masks every maximal run of at least 10 characters that is a substring of a known key (keys
with inner whitespace and very long tokens alike), then every key-shaped token (``sk-`` and the like,
for keys the package does not know); :func:`excerpt` masks before it cuts; :class:`StreamRedactor` does
the same for text that arrives in pieces, holding back only the tail that could still become a key.
Runs are found in the text as it reads too (:mod:`._invisible`): a key with zero-width characters, ``\r``
or escape sequences between its characters reads whole on a screen, so it is masked whole, with them.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional, Union

from ._invisible import ANY_INVISIBLE, INVISIBLE_CHARS, fold, strip_invisible

__all__ = [
    "MIN_RUN",
    "KeyMatcher",
    "KnownKey",
    "Secret",
    "StreamRedactor",
    "excerpt",
    "header_problem",
    "host_of",
    "is_loopback_host",
    "known_keys",
    "known_masker",
    "looks_like_key",
    "mask",
    "mask_keys",
    "mask_known",
    "redact",
    "register_key_source",
]

#: The shortest run of a key's characters that counts as showing the key.
MIN_RUN = 10
# What breaks a run that masking itself made; in no key.
_BREAK = "…"
# Keys shorter than this are not real keys; matching them would mask ordinary words.
_MIN_KEY = 8

#: A key as the matcher takes it: the key, or (key, where it came from, e.g. "$SHENMA_API_KEY").
KnownKey = Union[str, "Secret", tuple[Union[str, "Secret"], str], None]

# What pasted keys look like: OpenAI-style "sk-..." (relays issue these too), or a long opaque token; with
# invisible characters anywhere inside, as a hostile echo may put them (the key still reads whole).
_I = f"[{INVISIBLE_CHARS}]*"
_KEY_SHAPE = re.compile(rf"\b[sapr]{_I}k{_I}-{_I}(?:[A-Za-z0-9_\-]{_I}){{16,}}")


def mask(key: str) -> str:
    """``sk-…9f3a``: enough to tell two keys apart, never enough to use one."""
    if not key:
        return "(none)"
    prefix = key[:3] if key[:3] in ("sk-", "ak-", "pk-", "rk-") else ""
    return f"{prefix}…{key[-4:]}" if len(key) >= 12 else f"{prefix}…"


class KeyMatcher:
    """Finds the runs of at least :data:`MIN_RUN` characters of any of ``keys`` in a text.

    Every run of 10 characters of a key holds one of the key's 5-character pieces that start at a multiple
    of 5, so one compiled search for those pieces finds every candidate; each hit is then extended along
    its key as far as the text agrees. Cost: one regex scan of the text, plus work per hit.
    """

    __slots__ = (
        "_anchors",
        "_chars",
        "_haystack",
        "_keys",
        "_need",
        "_pattern",
        "_sources",
        "_width",
        "_widths",
        "longest",
    )

    def __init__(self, keys: Iterable[KnownKey]) -> None:
        sources: dict[str, str] = {}
        for item in keys:
            value, source = item if isinstance(item, tuple) else (item, "")
            raw = value.reveal() if isinstance(value, Secret) else value
            if raw and len(raw) >= _MIN_KEY and not sources.get(raw):
                sources[raw] = source
        self._keys = list(sources)
        self._sources = list(sources.values())
        self._need = [min(MIN_RUN, len(k)) for k in self._keys]
        # 2 * width - 1 <= need: a run of `need` characters always holds a whole aligned piece.
        self._width = [(need + 1) // 2 for need in self._need]
        self._widths = sorted(set(self._width))
        self._anchors: dict[str, list[tuple[int, int]]] = {}
        for index, key in enumerate(self._keys):
            width = self._width[index]
            for offset in range(0, len(key) - width + 1, width):
                self._anchors.setdefault(key[offset : offset + width], []).append((index, offset))
        self._pattern = (
            re.compile("|".join(re.escape(a) for a in sorted(self._anchors, key=len, reverse=True)))
            if self._anchors
            else None
        )
        self._haystack = "\x00".join(self._keys)
        self._chars = frozenset(self._haystack) - {"\x00"}
        self.longest = max((len(k) for k in self._keys), default=0)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"KeyMatcher({[mask(k) for k in self._keys]!r})"

    def runs(self, text: str) -> list[tuple[int, int, int]]:
        """``(start, end, key index)`` of every run, merged where runs overlap, in order. A run may have
        invisible characters or escape sequences inside it (see :mod:`._invisible`): a key echoed with a
        zero-width space or a ``\\r`` between its characters reads whole on screen, so it is masked whole."""
        if self._pattern is None:
            return []
        found = self._runs(text)
        folded = fold(text)
        if folded is not None:
            # The text as it reads, as well as the text as it is: a key may hide inside an escape sequence.
            found.extend((*folded.span(s, e), index) for s, e, index in self._runs(folded.text))
        return _merged(found)

    def _runs(self, text: str) -> list[tuple[int, int, int]]:
        assert self._pattern is not None
        search = self._pattern.search
        match = search(text)
        found: list[tuple[int, int, int]] = []
        reach: dict[tuple[int, int], int] = {}  # (key, diagonal) -> end already covered
        n = len(text)
        while match is not None:
            p = match.start()
            for index, offset in self._anchors_at(text, p):
                piece_len = self._width[index]
                key = self._keys[index]
                diagonal = p - offset  # where key[0] would sit in text
                if reach.get((index, diagonal), -1) >= p + piece_len:
                    continue
                s = p
                while s > 0 and s > diagonal and text[s - 1] == key[s - 1 - diagonal]:
                    s -= 1
                e = p + piece_len
                limit = min(n, diagonal + len(key))
                while e < limit and text[e] == key[e - diagonal]:
                    e += 1
                reach[(index, diagonal)] = e
                if e - s >= self._need[index]:
                    found.append((s, e, index))
            match = search(text, p + 1)
        return found

    def _anchors_at(self, text: str, p: int) -> list[tuple[int, int]]:
        # The regex reports one alternative per position; pieces of other widths may start there too.
        out: list[tuple[int, int]] = []
        for width in self._widths:
            out.extend(self._anchors.get(text[p : p + width], ()))
        return out

    def label(self, index: int) -> str:
        return mask(self._keys[index])

    def source(self, index: int) -> str:
        """Where key ``index`` came from, as it was given ("" if not given)."""
        return self._sources[index]

    def source_index(self, text: str) -> Optional[int]:
        """The index of the first key with a run in ``text``, or None."""
        runs = self.runs(text)
        return runs[0][2] if runs else None

    def mask(self, text: str) -> str:
        """``text`` with every run replaced by its key's mask."""
        runs = self.runs(text)
        return self.neutralize(self._apply(text, runs)) if runs else text

    def neutralize(self, text: str, start: int = 0) -> str:
        """Break every run that reaches past ``start`` by turning its characters from ``start`` on into
        "…". Such a run is rare and made by masking itself: a mask ends in its key's last 4 characters,
        which the text next to it may continue (a key like ``sk-1111111111a1``). "…" is in no key, so each
        pass removes key characters and the loop ends."""
        for _ in range(8):
            runs = [run for run in self.runs(text) if run[1] > start]
            if not runs:
                break
            out: list[str] = []
            last = 0
            for s, e, _ in runs:
                s = max(s, start, last)
                out.append(text[last:s])
                out.append(_BREAK)
                last = e
            out.append(text[last:])
            text = "".join(out)
        return text

    def _apply(self, text: str, runs: Sequence[tuple[int, int, int]]) -> str:
        out: list[str] = []
        last = 0
        for s, e, index in runs:
            out.append(text[last:s])
            out.append(self.label(index))
            last = e
        out.append(text[last:])
        return "".join(out)

    def tail_overlap(self, text: str) -> int:
        """The length of the longest end of ``text`` that is part of some key (what may still become a
        run when more text arrives): at most the longest key's length, plus the invisible characters and
        escape sequences inside that end and after it (a sequence not finished yet included)."""
        overlap = self._tail(text)
        folded = fold(text, open_end=True)
        if folded is not None:
            reads = self._tail(folded.text)
            if reads:
                overlap = max(overlap, len(text) - folded.original(len(folded.text) - reads))
        return overlap

    def _tail(self, text: str) -> int:
        if not text or text[-1] not in self._chars:
            return 0
        # Being part of a key is kept by every shorter end, so the longest such end is found by bisection.
        low, high = 1, min(len(text), self.longest)
        haystack = self._haystack
        while low < high:
            mid = (low + high + 1) // 2
            if text[-mid:] in haystack:
                low = mid
            else:
                high = mid - 1
        return low


def _merged(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    if len(found) <= 1:
        return found
    found.sort()
    merged = [found[0]]
    for s, e, index in found[1:]:
        ps, pe, pi = merged[-1]
        if s < pe:
            merged[-1] = (ps, max(pe, e), pi)
        else:
            merged.append((s, e, index))
    return merged


@functools.lru_cache(maxsize=32)
def _matcher(keys: tuple[str, ...]) -> KeyMatcher:
    return KeyMatcher(keys)


def redact(text: str, *keys: Optional[str]) -> str:
    """``text`` with every run of 10+ characters of any of ``keys`` masked, then every key-shaped token."""
    known = tuple(k for k in keys if k)
    if known:
        text = _matcher(known).mask(text)
    return mask_keys(text)


def mask_keys(text: str) -> str:
    """Mask every key-shaped token in ``text`` (for keys the package does not know)."""
    return _KEY_SHAPE.sub(lambda m: mask(strip_invisible(m.group(0))), text)


# -- the keys of every live session ---------------------------------------------------------------------
#
# Masking at the source (the client's redactor on what a server sends) misses keys that only appear once
# text is rendered: character references, percent-encoded autolinks, a ``\r`` every few characters that a
# terminal view drops. So the last steps before a screen (the HTML and Markdown renderers, the terminal
# text) mask again with every key any live session knows. Sessions register a bound method; it is held
# weakly, so registering never keeps a session alive.

_sources: list[Callable[[], Optional[Callable[[], Iterable[Any]]]]] = []
_sources_lock = threading.Lock()


def register_key_source(source: Callable[[], Iterable[Any]]) -> None:
    """Add ``source`` (returning keys as ``str``, :class:`Secret` or ``(key, where)`` pairs) to the keys
    :func:`mask_known` masks. A bound method is held weakly (it goes when its object does); any other
    callable is held for the life of the process."""
    ref: Callable[[], Optional[Callable[[], Iterable[Any]]]]
    if hasattr(source, "__self__") and hasattr(source, "__func__"):
        ref = weakref.WeakMethod(source)
    else:

        def ref() -> Callable[[], Iterable[Any]]:
            return source

    with _sources_lock:
        _sources[:] = [r for r in _sources if r() is not None]
        _sources.append(ref)


def _environment_keys() -> list[str]:
    # The key variables are known keys even before any session exists (a bare render, a probe).
    return [v.strip() for v in (os.environ.get(n) for n in _KEY_VARIABLES) if v and v.strip()]


_KEY_VARIABLES = ("SHENMA_API_KEY", "OPENAI_API_KEY")


def known_keys() -> tuple[str, ...]:
    """Every key a live registered source knows (never show the result). A source that fails is skipped:
    masking must not break a view."""
    with _sources_lock:
        refs = list(_sources)
    keys: dict[str, None] = dict.fromkeys(k for k in _environment_keys() if len(k) >= _MIN_KEY)
    for ref in refs:
        source = ref()
        if source is None:
            continue
        try:
            items = list(source())
        except Exception:  # a broken key file must not stop masking the other keys
            continue
        for item in items:
            value = item[0] if isinstance(item, tuple) else item
            raw = value.reveal() if isinstance(value, Secret) else value
            if isinstance(raw, str) and len(raw) >= _MIN_KEY:
                keys[raw] = None
    return tuple(keys)


def mask_known(text: str) -> str:
    """``text`` with every run of 10+ characters of any key a live session knows masked (see
    :func:`redact`) or in the key environment variables. For the last step before a screen; with no key
    known it costs two environment look-ups."""
    if not text:
        return text
    keys = known_keys()
    return _matcher(keys).mask(text) if keys else text


def known_masker() -> Callable[[str], str]:
    """:func:`mask_known` for many small texts in a row (the pieces of one rendering), with the keys known
    now looked up once rather than for every piece."""
    keys = known_keys()
    return _matcher(keys).mask if keys else _unchanged


def _unchanged(text: str) -> str:
    return text


def known_key_in(text: str) -> bool:
    """True if ``text`` holds a run of 10+ characters of a key a live session knows."""
    keys = known_keys() if text else ()
    return bool(keys) and bool(_matcher(keys).runs(text))


# C0 controls but tab and newline, DEL, C1, BiDi embeddings/overrides/isolates, line/paragraph separators.
_QUOTE_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


_SURROGATE = re.compile("[\ud800-\udfff]")


def excerpt(text: str, limit: int = 80, *, keys: Iterable[Optional[str]] = ()) -> str:
    """``text`` on one line, cut to ``limit`` with "…", for quoting what a server or a tool sent.

    Keys are masked first (the known ``keys``, the keys of live sessions, then key-shaped tokens), then
    control characters become spaces and whitespace is collapsed, then the text is cut: a cut through a
    key, or a key with whitespace in it, would defeat later masking.
    """
    text = redact(text, *keys, *known_keys())
    text = _SURROGATE.sub("\ufffd", _QUOTE_UNSAFE.sub(" ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def key_tokens(text: str) -> set[str]:
    """The key-shaped tokens in ``text``."""
    return {m.group(0) for m in _KEY_SHAPE.finditer(text)}


def looks_like_key(text: str) -> bool:
    """True if ``text`` holds something shaped like an API key (used to refuse keys typed into cells)."""
    return bool(_KEY_SHAPE.search(text))


def header_problem(key: str) -> Optional[str]:
    """Why ``key`` cannot travel in an HTTP header, or None if it can. Never quotes the key: the answer
    names the offending character by code point and position only."""
    for position, ch in enumerate(key, 1):
        if "!" <= ch <= "~":
            continue
        if ch in " \t":
            what = "a space"
        elif ch in "\r\n":
            what = "a line break"
        elif ord(ch) > 0x7F and ch.isprintable() and not ch.isspace():
            what = "a non-ASCII character"
        else:
            what = "an invisible character"
        return f"{what} (U+{ord(ch):04X}) at position {position}"
    return None


class StreamRedactor:
    """Masks keys in text that arrives in pieces (the deltas of one field of a reply). Pure.

    ``feed`` returns what is safe to show now; it holds back only the end of the text that is part of some
    known key (a key split across two deltas is masked whole), which for ordinary text is a few characters
    at most and never more than the longest key, plus the invisible characters between them (at most
    :data:`_HOLD_SLACK` more). ``flush`` returns the rest when the stream ends.
    """

    __slots__ = ("_held", "_masked", "_matcher", "_shown")

    def __init__(self, matcher: KeyMatcher) -> None:
        self._matcher = matcher
        self._held = ""
        self._shown = ""  # the end of what was let go, to check what follows a mask against
        self._masked = False  # whether that end holds a mask

    def feed(self, text: str) -> str:
        matcher = self._matcher
        pattern = matcher._pattern
        if pattern is None or not text:
            return text
        if (
            not self._held
            and not self._masked
            and text[-1] not in matcher._chars
            and pattern.search(text) is None
            and ANY_INVISIBLE.search(text) is None
        ):
            # The common case, about a microsecond: nothing to mask, nothing to hold.
            self._shown = (self._shown + text)[-matcher.longest :]
            return text
        buf = self._held + text if self._held else text
        runs = matcher.runs(buf)
        cut = len(buf) - matcher.tail_overlap(buf)
        for s, e, _ in runs:
            if s < cut < e:
                # A finished run is shown (masked) whole; one that reaches the end may still grow.
                cut = e if e < len(buf) else s
                break
        if len(buf) - cut > matcher.longest + _HOLD_SLACK:
            # Invisible characters piling up after a key's first characters: let the front go (masked as
            # it stands), so one delta's work stays bounded however many such characters come.
            cut = len(buf) - matcher.longest - _HOLD_SLACK
            runs = matcher.runs(buf[:cut])
        self._held = buf[cut:]
        shown = [r for r in runs if r[1] <= cut]
        return self._let_go(matcher._apply(buf[:cut], shown) if shown else buf[:cut], bool(shown))

    def flush(self) -> str:
        rest, self._held = self._held, ""
        if not rest:
            return ""
        masked = self._matcher.mask(rest)
        return self._let_go(masked, masked != rest)

    def _let_go(self, out: str, masked: bool) -> str:
        reach = self._matcher.longest + _HOLD_SLACK
        if masked or self._masked:
            # A mask's last characters and the text next to it (now or in a later piece) must not make a
            # run together.
            context = self._shown
            out = self._matcher.neutralize(context + out, len(context))[len(context) :]
        self._shown = (self._shown + out)[-reach:]
        # Checked until a whole key's length of text has followed the last mask.
        self._masked = masked or (self._masked and _BREAK in self._shown)
        return out

    @property
    def pending(self) -> bool:
        return bool(self._held)


# Invisible characters a held key prefix may carry besides the key's own characters.
_HOLD_SLACK = 256


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
    """127.0.0.0/8, ::1 and ``localhost``: the only hosts a key may reach over plain HTTP.

    Only literal loopback addresses and the name ``localhost`` itself are trusted: ``*.localhost`` names
    would be looked up by this machine's resolver, which may ask DNS. ``host`` is expected in the canonical
    form :func:`~shenma_magic._urls.parse_base_url` gives (lower case, no trailing dot).
    """
    if not host:
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in _LOOPBACK_V4
    return address == _LOOPBACK_V6


_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


def host_of(url: str) -> str:
    """The host a key is scoped to: the one :func:`~shenma_magic._urls.parse_base_url` connects to.
    Raises ``ConfigError`` for a URL that is refused."""
    from ._urls import parse_base_url

    return parse_base_url(url).host
