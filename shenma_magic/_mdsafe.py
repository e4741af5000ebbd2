"""Markdown that is inert by construction: the ``text/markdown`` copy of an answer, and inert pieces.

A frontend that prefers ``text/markdown`` renders it with its own Markdown dialect, often with raw
HTML allowed (JupyterLab's marked, VS Code's markdown-it, GitHub). Patching the model's Markdown in
place cannot be made safe: whether a ``<`` is inside code depends on list and fence rules that
dialects read differently. So :func:`safe_markdown` parses the answer once (the same parse the HTML
is made from) and writes the Markdown again from the tokens, in a canonical form:

* text is escaped: ``<`` and ``&`` as entities, the other syntax characters with backslashes, block
  markers at a line start too, so text can never become a tag, a link, a list, a fence or math;
* the only raw ``<`` are inside code we wrote: fences at the container's column, one backtick longer
  than any run in the code, and code spans delimited the same way, on one line;
* link targets are http(s), mailto or relative, percent-encoded (no space, parenthesis, ``<``, quote
  or ``$`` left); images become links showing alt text and host, except ``data:`` raster images;
* math is written ``$…$`` / ``$$…$$`` with ``<`` and ``>`` as ``\\lt``/``\\gt`` and ``](`` broken,
  so it is inert even to a renderer that knows no math; math holding a backtick is written as code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from ._gcpause import collector_paused
from ._markdown import _DATA_IMAGE, image_label, json_display_text, parse, safe_url
from ._math import unsafe_tex
from ._secret import known_masker, mask_known

__all__ = [
    "markdown_code_span",
    "markdown_fence",
    "markdown_lines",
    "markdown_text",
    "safe_markdown",
    "tool_call_markdown",
]

_TEXT_SPECIAL = re.compile(r"[\\`*_\[\]|~$<&]")
_LINE_START = re.compile(r"([#>+=-])|(\d{1,9})([.)])")
_BACKTICKS = re.compile(r"`+")
_URL_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!*+,;=%")


def _escape(text: str, mask: Callable[[str], str] = mask_known) -> str:
    # Masked before escaping: a backslash before a key's "_" or "-" would hide it from a later mask.
    text = mask(text)
    return _TEXT_SPECIAL.sub(
        lambda m: "&lt;" if m.group(0) == "<" else "&amp;" if m.group(0) == "&" else "\\" + m.group(0), text
    )


def _line(line: str) -> str:
    """A line of escaped text made safe at a line start: no block marker, no indentation, and no
    whitespace at either end for a parser to strip (kept as character references)."""
    stripped = line.strip()
    if len(stripped) != len(line):
        start = line.index(stripped[:1]) if stripped else len(line)
        lead, tail = line[:start], line[start + len(stripped) :]
        return _references(lead) + _line(stripped) + _references(tail)
    match = _LINE_START.match(line)
    if match is None:
        return line
    if match.group(1):
        return "\\" + line
    end = match.end(2)
    return line[:end] + "\\" + line[end:]


_NEWLINE = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _references(space: str) -> str:
    # Control characters have no valid reference (a parser makes U+FFFD of one): those stay raw.
    return "".join(f"&#{ord(ch)};" if ch == "\t" or not _CONTROL.match(ch) else ch for ch in space)


def markdown_text(text: str) -> str:
    """Any text as one line of inert Markdown (status lines, errors, labels): shown exactly as given."""
    return mask_known(_line(_escape(_NEWLINE.sub(" ", text))))


def markdown_code_span(code: str, *, in_table: bool = False) -> str:
    """``code`` as a code span on one line, delimited by one backtick more than its longest run."""
    code = mask_known(_NEWLINE.sub(" ", code))
    if in_table:
        code = code.replace("|", "\\|")
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=0)
    ticks = "`" * (longest + 1)
    pad = (
        code.startswith("`") or code.endswith("`") or (code[:1] == " " and code[-1:] == " " and code.strip())
    )
    space = " " if pad else ""
    return f"{ticks}{space}{code}{space}{ticks}"


def _language(info: str) -> str:
    word = info.split(maxsplit=1)[0] if info.strip() else ""
    return "".join(ch for ch in word if ch.isalnum() or ch in "+#.-_")


def markdown_fence(code: str, language: str = "") -> list[str]:
    """``code`` as fenced-block lines: the fence is one backtick longer than any run in the code."""
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=0)
    fence = "`" * max(3, longest + 1)
    code = mask_known(code)
    body = code[:-1] if code.endswith("\n") else code
    lines = body.split("\n") if code else []
    return [fence + _language(language), *lines, fence]


def tool_call_markdown(name: str, arguments: str) -> str:
    """A model's tool call as inert Markdown: the name as code, the arguments as a JSON block."""
    head = "**tool call** " + markdown_code_span(name or "?")
    if not arguments:
        return mask_known(head)
    return mask_known(head + "\n\n" + "\n".join(markdown_fence(json_display_text(arguments), "json")))


def _destination(url: str) -> str:
    out: list[str] = []
    for ch in url:
        if ch in _URL_KEEP:
            out.append(ch)
        elif ch == "&":
            out.append("&amp;")
        else:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _title(title: Any) -> str:
    if not title:
        return ""
    text = _NEWLINE.sub(" ", str(title))
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;").replace("<", "&lt;")
    return f' "{text}"'


def _math(content: str) -> Optional[str]:
    """TeX for ``$…$``: inert to any Markdown renderer, or None if it cannot be delimited safely."""
    if "`" in content or "$" in content.replace("\\$", "") or unsafe_tex(content):
        return None
    content = content.replace("<", "\\lt ").replace(">", "\\gt ")
    return re.sub(r"\](?=[(\[:])", "]{}", content)


# -- the token tree -------------------------------------------------------------------------------------


@dataclass(slots=True)  # one per token: a huge table makes hundreds of thousands
class _Node:
    token: Any
    children: list[_Node] = field(default_factory=list)


def _tree(tokens: list[Any]) -> _Node:
    root = _Node(None)
    stack = [root]
    for token in tokens:
        if token.nesting == 1:
            node = _Node(token)
            stack[-1].children.append(node)
            stack.append(node)
        elif token.nesting == -1:
            if len(stack) > 1:
                stack.pop()
        else:
            stack[-1].children.append(_Node(token))
    return root


# -- writing --------------------------------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self._mask = known_masker()  # a text token is masked before it is escaped: keys looked up once

    def _escape(self, text: str) -> str:
        return _escape(text, self._mask)

    def blocks(self, nodes: list[_Node], tight: bool) -> list[str]:
        out: list[str] = []
        after_table = False
        for node in nodes:
            lines = self.block(node)
            if not lines:
                continue
            if out and (not tight or after_table):
                out.append("")
            out.extend(lines)
            after_table = node.token.type == "table_open"
        return out

    def block(self, node: _Node) -> list[str]:
        token = node.token
        kind = token.type
        if kind == "paragraph_open":
            return [_line(line) for line in self.inline(node.children).split("\n")]
        if kind == "heading_open":
            text = self.inline(node.children).replace("\n", " ").strip()
            if text.endswith("#"):
                text = text[:-1] + "\\#"
            return [("#" * int(token.tag[1:]) + " " + text).rstrip()]
        if kind == "blockquote_open":
            inner = self.blocks(node.children, tight=False)
            return [">" + (" " + line if line else "") for line in inner] or [">"]
        if kind in ("bullet_list_open", "ordered_list_open"):
            return self.list_block(node)
        if kind in ("fence", "code_block"):
            return markdown_fence(token.content, _language(token.info or ""))
        if kind == "hr":
            return ["___"]
        if kind == "table_open":
            return self.table(node)
        if kind in ("math_block", "math_env"):
            tex = _math(token.content)
            if tex is None:
                # Not "math": some renderers typeset a math fence.
                return markdown_fence(token.content, "")
            return ["$$", *tex.split("\n"), "$$"]
        if kind == "overdeep":
            return [_line(self._escape(line)) for line in token.content.split("\n")]
        if node.children:
            return self.blocks(node.children, tight=False)
        return [_line(self._escape(token.content))] if getattr(token, "content", "") else []

    def list_block(self, node: _Node) -> list[str]:
        token = node.token
        items = [child for child in node.children if child.token.type == "list_item_open"]
        tight = all(
            grand.token.hidden
            for item in items
            for grand in item.children
            if grand.token.type == "paragraph_open"
        )
        ordered = token.type == "ordered_list_open"
        number = int(token.attrGet("start") or 1) if ordered else 0
        delimiter = token.markup if token.markup in (".", ")") else "."
        bullet = token.markup if token.markup in ("-", "*", "+") else "-"
        out: list[str] = []
        for item in items:
            marker = f"{number}{delimiter}" if ordered else bullet
            number += 1
            inner = self.blocks(item.children, tight)
            if out and not tight:
                out.append("")
            if not inner:
                out.append(marker)
                continue
            out.append(f"{marker} {inner[0]}" if inner[0] else marker)
            indent = " " * (len(marker) + 1)
            out.extend(indent + line if line else "" for line in inner[1:])
        return out

    def table(self, node: _Node) -> list[str]:
        rows: list[list[str]] = []
        aligns: list[str] = []
        for section in node.children:
            for row in section.children:
                cells = []
                for cell in row.children:
                    if section.token.type == "thead_open":
                        style = str(cell.token.attrGet("style") or "")
                        aligns.append(style.partition("text-align:")[2].strip())
                    cells.append(self.inline(cell.children, in_table=True).replace("\n", " ").strip())
                rows.append(cells)
        if not rows:
            return []
        marks = {"left": ":---", "right": "---:", "center": ":---:"}
        delimiter = "|" + "|".join(marks.get(a, "---") for a in aligns) + "|"
        lines = ["| " + " | ".join(cells) + " |" for cells in rows]
        return [lines[0], delimiter, *lines[1:]]

    def inline(self, nodes: list[_Node], in_table: bool = False) -> str:
        out: list[str] = []
        links: list[Optional[str]] = []  # per open link: its closing text, or None if it was dropped
        for node in nodes:
            tokens = node.token.children or [] if node.token.type == "inline" else [node.token]
            out.extend(self._inline_token(token, links, in_table) for token in tokens)
        return "".join(out)

    def _inline_token(self, token: Any, links: list[Optional[str]], in_table: bool) -> str:
        kind = token.type
        if kind == "text":
            return self._escape(token.content)
        if kind == "softbreak":
            return "\n"
        if kind == "hardbreak":
            return " " if in_table else "\\\n"
        if kind == "code_inline":
            return markdown_code_span(token.content, in_table=in_table)
        if kind in ("em_open", "em_close"):
            return "*"
        if kind in ("strong_open", "strong_close"):
            return "**"
        if kind in ("s_open", "s_close"):
            return "~~"
        if kind == "link_open":
            href = str(token.attrGet("href") or "")
            if safe_url(href) and not any(links):
                links.append(f"]({_destination(href)}{_title(token.attrGet('title'))})")
                return "["
            links.append(None)
            return ""
        if kind == "link_close":
            closing = links.pop() if links else None
            return closing or ""
        if kind == "image":
            return self._image(token, in_link=any(links))
        if kind in ("math_inline", "math_inline_double"):
            tex = _math(_NEWLINE.sub(" ", token.content.strip()))
            if tex is None or not tex.strip():
                return markdown_code_span(
                    token.markup + token.content + _closing(token.markup), in_table=in_table
                )
            tex = tex.strip().replace("|", "\\|") if in_table else tex.strip()
            dollars = "$$" if kind == "math_inline_double" else "$"
            return f"{dollars}{tex}{dollars}"
        return self._escape(getattr(token, "content", "") or "")

    def _image(self, token: Any, in_link: bool) -> str:
        from ._markdown import _plain_text

        src = str(token.attrGet("src") or "")
        alt = _plain_text(token.children)
        if _DATA_IMAGE.fullmatch(src):
            return f"![{self._escape(_NEWLINE.sub(' ', alt))}]({src})"
        label = self._escape(_NEWLINE.sub(" ", image_label(alt, src)))
        if in_link or not src or not safe_url(src):
            return label
        return f"[{label}]({_destination(src)}{_title(token.attrGet('title'))})"


def _closing(markup: str) -> str:
    return {"\\(": "\\)", "\\[": "\\]"}.get(markup, markup)


def safe_markdown(text: str) -> str:
    """The answer as Markdown that no renderer can turn into HTML, a script, a remote load or a lost
    block: the same structure as :func:`render_html` shows, written out again from the parse."""
    if not text:
        return ""
    with collector_paused():
        return mask_known("\n".join(markdown_lines(parse(mask_known(text)))))


def markdown_lines(tokens: list[Any]) -> list[str]:
    """The lines of :func:`safe_markdown` (before its last mask), written from the tokens of a parse of
    the masked text; top-level blocks are separated by one empty line."""
    return _Writer().blocks(_tree(tokens).children, tight=False)
