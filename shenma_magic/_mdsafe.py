"""Old per-line safe Markdown (replaced below)."""

from __future__ import annotations

import html
import re
from typing import Optional

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")
_SAFE_SCHEMES = ("http:", "https:", "mailto:", "ftp:")
# A link or image destination: "](" then optional "<", up to whitespace/")"/">". Also reference
# definitions "[x]: dest". Entities and control characters are stripped before the scheme is judged.
_INLINE_DEST = re.compile(r"(\]\(\s*<?)([^\s)>]*)")
_REF_DEST = re.compile(r"^( {0,3}\[[^\]]+\]:\s*<?)(\S*)", re.MULTILINE)
_ENTITY = re.compile(r"&#?[a-zA-Z0-9]+;?")


def _unsafe_destination(dest: str) -> bool:
    plain = html.unescape(dest)
    plain = "".join(ch for ch in plain if ch.isprintable() and not ch.isspace())
    plain = plain.replace("\\", "")
    if not _SCHEME.match(plain):
        return False  # relative links and anchors are harmless
    return not plain.lower().startswith(_SAFE_SCHEMES)


def _neutralize_links(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        return match.group(1) + ("#" if _unsafe_destination(match.group(2)) else match.group(2))

    return _REF_DEST.sub(fix, _INLINE_DEST.sub(fix, text))


def _escape_inline(line: str) -> str:
    """Escape '<' outside code spans of one line; links with unsafe schemes lose their target."""
    out: list[str] = []
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == "`":
            j = i
            while j < n and line[j] == "`":
                j += 1
            ticks = line[i:j]
            close = line.find(ticks, j)
            # A code span only if a run of exactly the same length closes it on this line.
            while close != -1 and (close + len(ticks) < n and line[close + len(ticks)] == "`"):
                close = line.find(ticks, close + len(ticks) + 1)
            if close != -1 and "<" not in line[j:close]:
                out.append(line[i : close + len(ticks)])
                i = close + len(ticks)
                continue
            # A code span holding '<' is escaped anyway: "&lt;" shown literally in code beats any doubt.
            out.append(ticks)
            i = j
            continue
        # '>' stays: it is blockquote syntax, and without a '<' no tag can form.
        out.append("&lt;" if ch == "<" else ch)
        i += 1
    return _neutralize_links("".join(out))


def safe_markdown(text: str) -> str:
    """Markdown with raw HTML made inert, for the ``text/markdown`` copy of an answer.

    ``<`` becomes ``&lt;`` everywhere except inside fenced code blocks, so no HTML tag, comment or
    autolink can form; link destinations with a scheme other than http(s)/mailto/ftp become ``#``.
    Fenced code keeps its text as written (Markdown never interprets HTML there).
    """
    out: list[str] = []
    fence: Optional[str] = None
    for line in text.split("\n"):
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence[0]) and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                fence = None
            out.append(line)
            continue
        opened = _FENCE_OPEN.match(line)
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            fence = opened.group(1)
            out.append(line.replace("<", "&lt;") if "<" in opened.group(2) else line)
            continue
        out.append(_escape_inline(line))
    return "\n".join(out)
