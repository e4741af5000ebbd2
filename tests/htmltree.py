"""A small HTML tree for tests: what a browser would build from our output (tags, attributes, text)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Optional, Union

VOID = {"br", "img", "hr", "input", "meta", "link", "wbr", "source", "area", "base", "col", "embed"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, Optional[str]]
    children: list[Union[Element, str]] = field(default_factory=list)
    parent: Optional[Element] = None

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def style(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in (self.attrs.get("style") or "").split(";"):
            if ":" in part:
                key, value = part.split(":", 1)
                out[key.strip().lower()] = value.strip()
        return out

    def find_all(self, tag: str) -> list[Element]:
        return [e for e in self.iter() if e.tag == tag]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        el = Element(tag, dict(attrs), parent=self.cur)
        self.cur.children.append(el)
        if tag not in VOID:
            self.cur = el

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        self.cur.children.append(Element(tag, dict(attrs), parent=self.cur))

    def handle_endtag(self, tag: str) -> None:
        node: Optional[Element] = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse_html(markup: str) -> Element:
    builder = _Builder()
    builder.feed(markup)
    builder.close()
    return builder.root


def visible_text(markup: str) -> str:
    """Text content plus the attribute texts a reader can reach (alt, title, link targets)."""
    root = parse_html(markup)
    parts = [root.text]
    for el in root.iter():
        for name in ("alt", "title", "href"):
            value = el.attrs.get(name)
            if value:
                parts.append(value)
    return "\n".join(parts)


_SKIP = {"script", "noscript", "style", "textarea", "pre", "code", "annotation", "annotation-xml"}


def mathjax_strings(markup: str) -> list[tuple[str, bool]]:
    """The strings MathJax 3's HTMLDomStrings hands to FindTeX: text joined across ``<br>`` only, broken
    at every other element, skipping code. Each with whether it lies in one of our math elements."""
    root = parse_html(markup)
    out: list[tuple[str, bool]] = []

    def walk(el: Element, in_math: bool) -> None:
        current: list[str] = []

        def push() -> None:
            if current:
                out.append(("".join(current), in_math))
                current.clear()

        for child in el.children:
            if isinstance(child, str):
                current.append(child)
            elif child.tag == "br":
                current.append("\n")
            else:
                push()
                if child.tag not in _SKIP:
                    math = "math" in (child.attrs.get("class") or "").split()
                    walk(child, in_math or math)
        push()

    walk(root, False)
    return out


MATH_START = re.compile(r"\$|\\\(|\\\[|\\begin\s*\{")
