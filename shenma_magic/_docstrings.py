"""What a docstring says about a function: its summary line and a description per parameter. Pure.

Google (``Args:``), NumPy (``Parameters`` over dashes) and Sphinx (``:param x:``) styles are read; anything
else leaves the parameters undescribed rather than guessing.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

__all__ = ["Docstring", "parse_docstring"]


class Docstring(NamedTuple):
    """What :func:`parse_docstring` found.

    Attributes:
        summary: the first paragraph, joined into one line ("" when the docstring starts with a section).
        params: a description per parameter name, for the parameters that have one.
    """

    summary: str
    params: dict[str, str]


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


def parse_docstring(doc: str) -> Docstring:
    """The summary and the parameter descriptions of a Google, NumPy or Sphinx style docstring."""
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
    return Docstring(" ".join(summary), {k: v for k, v in params.items() if k and v})
