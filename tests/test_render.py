"""Safe rendering of untrusted model text and the live block splitter (the status line: test_status.py)."""

from __future__ import annotations

import random
import re

import pytest

from shenma_magic._render import BlockSplitter, render_html, safe_markdown
from tests.htmltree import parse_html

HOSTILE = """Here you go.

<script>window.__pwned=1</script>

<img src=x onerror="window.__pwned2=1">

<iframe src="javascript:window.__pwned3=1"></iframe>

[click](javascript:window.__pwned4=1) and [ok](https://example.com) and [x]( JaVaScRiPt:alert(1))

[ref]: javascript:alert(2)

<!-- a comment -->

inline <b onclick="x()">bold</b> `code with <tag> & amp` end
"""

SAMPLE = """# Title

Some prose with `a < b` inline and **bold**.

```python
if a < b and c & d:
    print("<ok>")
```

| col | val |
|-----|-----|
| a   | 1   |

1. one
2. two
"""


def _tags(html: str) -> set[str]:
    return {t.lower() for t in re.findall(r"<\s*([a-zA-Z][a-zA-Z0-9]*)", html)}


def test_render_html_shows_hostile_html_as_text() -> None:
    html = render_html(HOSTILE)
    root = parse_html(html)
    assert {el.tag for el in root.iter()} <= {"#root", "p", "a", "code", "br", "span"}
    assert 'href="javascript' not in html.lower()
    # Attributes are ours only: nothing from the text becomes one (onerror= stays escaped text).
    assert all(not name.startswith("on") for el in root.iter() for name in el.attrs)
    assert "onerror=" in root.text
    assert "&lt;script&gt;" in html
    assert "&lt;!-- a comment --&gt;" in html
    links = [(a.attrs.get("href"), a.text) for a in root.find_all("a")]
    assert links == [("https://example.com", "ok")]
    assert root.find_all("a")[0].attrs.get("rel") == "noopener noreferrer nofollow"


def test_render_html_keeps_ordinary_markdown() -> None:
    root = parse_html(render_html(SAMPLE))
    assert [h.text for h in root.find_all("h1")] == ["Title"]
    assert root.find_all("code")[0].text == "a < b"
    pre = root.find_all("pre")[0]
    assert pre.text == 'if a < b and c & d:\n    print("<ok>")\n'
    assert pre.find_all("code")[0].attrs.get("class") == "language-python"
    assert [th.text for th in root.find_all("th")] == ["col", "val"]
    assert [li.text for li in root.find_all("li")] == ["one", "two"]
    assert [b.text for b in root.find_all("strong")] == ["bold"]


def test_safe_markdown_neutralizes_html_and_scripts_in_links() -> None:
    md = safe_markdown(HOSTILE)
    # No raw '<' survives outside code: no tag, comment or autolink can form in any Markdown renderer.
    outside_code = re.sub(r"`[^`]*`", "", md)
    assert "<" not in outside_code
    # A link to javascript: is not a link any more: its brackets are escaped text.
    assert not re.search(r"(?<!\\)\]\(\s*javascript", md, re.IGNORECASE)
    assert "\\[ref\\]: javascript" in md
    assert "[ok](https://example.com)" in md
    # Rendering the safe Markdown with a renderer that allows raw HTML still yields no active tag.
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": True}).render(md)
    assert not (_tags(html) & {"script", "img", "iframe", "b"})
    assert 'href="javascript' not in html.lower()


def test_safe_markdown_leaves_code_fences_and_plain_code_spans_alone() -> None:
    md = safe_markdown(SAMPLE)
    assert 'if a < b and c & d:\n    print("<ok>")' in md
    assert "| col | val |" in md


def _reassemble(pieces: list[str]) -> str:
    return "".join(pieces)


@pytest.mark.parametrize("seed", range(8))
def test_block_splitter_never_loses_or_reorders_text(seed: int) -> None:
    rng = random.Random(seed)
    text = (SAMPLE + "\n" + HOSTILE + "\n") * 3 + "word. " * 800 + "\n\n```\n" + "x = 1\n" * 600 + "```\n"
    splitter = BlockSplitter(max_tail=300)
    blocks: list[str] = []
    i = 0
    while i < len(text):
        n = rng.randint(1, 40)
        blocks.extend(splitter.feed(text[i : i + n]))
        i += n
    # Every finished block renders on its own; stripping the fence/table headers the splitter adds back,
    # the blocks and the tail hold exactly the answer's words in order.
    words = re.findall(r"\w+", text)
    got = re.findall(r"\w+", "\n".join(blocks) + "\n" + splitter.tail)
    added = {"col", "val", "python"}  # header words a cut table or fence carries into the next piece
    assert [w for w in got if w not in added] == [w for w in words if w not in added]
    assert len(splitter.tail) < 300 + 120  # the tail stays small, whatever the answer
    for block in blocks:
        assert block.count("```") % 2 == 0  # a cut code block is closed, and reopened in the next piece


def test_block_splitter_keeps_list_continuations_together() -> None:
    splitter = BlockSplitter()
    blocks = splitter.feed("- a\n\n  still a\n- b\n\nNext paragraph\n")
    assert blocks == ["- a\n\n  still a\n- b\n"]
    assert splitter.tail == "Next paragraph\n"


def test_block_splitter_waits_for_the_next_line_before_finishing_a_block() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("para one\n\n") == []
    assert splitter.feed("par") == []
    assert splitter.feed("a two\n") == ["para one\n"]


def test_block_splitter_blank_lines_inside_fence_do_not_split() -> None:
    splitter = BlockSplitter()
    blocks = splitter.feed("```\na\n\nb\n```\n\nafter\n")
    assert blocks == ["```\na\n\nb\n```\n"]


def test_block_splitter_exact_text_without_long_cuts() -> None:
    splitter = BlockSplitter(max_tail=10**9)
    text = SAMPLE + "\n" + HOSTILE
    blocks = []
    for ch in text:
        blocks.extend(splitter.feed(ch))
    # Blocks are the answer cut at blank lines: joined back with one blank line each, plus the tail.
    assert "\n".join(blocks) + "\n" + splitter.tail == text
