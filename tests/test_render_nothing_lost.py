"""Nothing vanishes: every word of a reply is in the HTML a frontend shows, whatever the Markdown."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._markdown import _markdown, render_html
from tests.htmltree import parse_html


def _shown(markup: str) -> str:
    """Text content, plus what a reader reaches through attributes: alt, title, link targets."""
    root = parse_html(markup)
    parts = [root.text]
    for el in root.iter():
        for name in ("alt", "title", "href"):
            value = el.attrs.get(name)
            if not value:
                continue
            parts.append(unquote(value))
            if name == "href":
                host = urlsplit(value).hostname or ""
                with contextlib.suppress(UnicodeError, ValueError):
                    parts.append(host.encode("ascii").decode("idna"))
    return "\n".join(parts)


def _consumed_by_definitions(source: str) -> str:
    """Reference definitions are Markdown syntax that renders nothing: their words may go."""
    env: dict[str, Any] = {}
    _markdown().parse(source, env)
    refs = env.get("references", {})
    return "\n".join(
        f"{label}\n{unquote(ref.get('href', ''))}\n{ref.get('title', '')}" for label, ref in refs.items()
    )


def assert_every_word_shown(source: str, words: list[str]) -> None:
    markup = render_html(source)
    shown = _shown(markup)
    consumed = _consumed_by_definitions(source).lower()
    missing = [w for w in words if w not in shown and w.lower() not in consumed]
    assert not missing, (missing, source, markup)


# Probes: unique words (latin or CJK) that no Markdown syntax can swallow; their number suffix and the
# closing letter keep one from being a substring of another.
SYNTAX = st.sampled_from(
    ["*", "**", "_", "__", "~~", "`", "``", "```", "~~~", "[", "]", "(", ")", "](", "![", "<", ">", "</",
     "<!--", "-->", "&", "#", "\\", "|", "$", "$$", "\\(", "\\)", "\\[", "\\]", "\\begin{align}",
     "\\end{align}", "http://", "@", ":", " ", "  ", "\n", "\n\n", "\n    ", "\n- ", "\n1. ", "\n> ", "\n# ",
     "\n---\n", "\n===\n", "\n| ", " |", "\n|---|---|\n", "\t", "'", '"', "!", "-", "+", "=", ".", "{", "}",
     "%"]
)  # fmt: skip


@st.composite
def documents(draw: Any) -> tuple[str, list[str]]:
    parts = draw(st.lists(st.one_of(SYNTAX, st.sampled_from(["LAT", "CJK"])), min_size=1, max_size=60))
    words: list[str] = []
    out: list[str] = []
    for part in parts:
        if part in ("LAT", "CJK"):
            word = f"w{len(words)}k" if part == "LAT" else f"字{len(words)}文"
            words.append(word)
            out.append(word)
        else:
            out.append(part)
    return "".join(out), words


@settings(max_examples=600, deadline=None)
@given(documents())
def test_every_word_of_any_markdown_is_shown(doc: tuple[str, list[str]]) -> None:
    assert_every_word_shown(*doc)


@st.composite
def nested(draw: Any) -> tuple[str, list[str]]:
    depth = draw(st.integers(1, 70))
    form = draw(st.sampled_from(["bullets", "ordered", "quotes", "quoted-lists", "mixed"]))
    lines: list[str] = []
    words = []
    for level in range(depth):
        word = f"d{level}x" if level % 2 else f"层{level}深"
        words.append(word)
        if form == "bullets":
            lines.append("  " * level + f"- {word}")
        elif form == "ordered":
            lines.append("   " * level + f"1. {word}")
        elif form == "quotes":
            lines.append(">" * (level + 1) + f" {word}")
        elif form == "quoted-lists":
            lines.append("> " * (level + 1) + f"- {word}")
        else:
            lines.append("  " * level + ("- " if level % 3 else "* ") + f"**{word}** `c{level}c`")
            words.append(f"c{level}c")
    tail = draw(st.sampled_from(["", "\n\nafter text", "\n\n```\ncode after\n```", "\nlazy line"]))
    words.extend(w for w in tail.split() if w.isalpha())
    return "\n".join(lines) + tail, words


@settings(max_examples=200, deadline=None)
@given(nested())
def test_deep_nesting_loses_nothing(doc: tuple[str, list[str]]) -> None:
    assert_every_word_shown(*doc)


@pytest.mark.parametrize("depth", [9, 10, 12, 25, 60, 200])
def test_a_list_nested_past_markdown_its_limit_keeps_every_level_and_what_follows(depth: int) -> None:
    source = "\n".join("  " * i + f"- level{i}x" for i in range(depth)) + "\n\nThe end paragraph."
    shown = _shown(render_html(source))
    assert all(f"level{i}x" in shown for i in range(depth))
    assert "The end paragraph." in shown


CASES = [
    "```python\nunclosed fence word1\n\nmore word2",
    "stray ` backtick word1 `` and ``` word2",
    "<div>html-looking word1</div> <b>word2</b> <!-- word3 -->",
    "| a | b |\n|---|---|\n| word1 | word2 | word3 |",
    "[word1][word2] and [word3]()",
    "![word1](relative.png) ![word2](http://h.example/x.png)",
    "*unclosed **emphasis word1",
    "$unclosed math word1 and \\(word2",
    "\\begin{align}\nword1 &= 1\n\nword2",
    "> quote word1\nlazy word2\n- list word3",
    "Setext word1\n===\n\nword2\n---",
]


@pytest.mark.parametrize("source", CASES)
def test_awkward_markdown_keeps_its_words(source: str) -> None:
    words = [w for w in source.replace("\n", " ").split() if w.startswith("word")]
    assert_every_word_shown(source, [w.strip("*`<>/()[]!") for w in words])
