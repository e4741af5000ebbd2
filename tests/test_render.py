"""Safe rendering of untrusted model text and the live block splitter (the status line: test_status.py)."""

from __future__ import annotations

import random
import re

import pytest

from shenma_magic._render import BlockSplitter, render_html, safe_markdown

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
    assert _tags(html) <= {"p", "a", "code", "br"}
    assert 'href="javascript' not in html.lower()
    assert "onerror=" not in html.replace("onerror=&quot;", "")  # only ever as escaped text
    assert "&lt;script&gt;" in html
    assert "&lt;!-- a comment --&gt;" in html
    assert '<a href="https://example.com">ok</a>' in html


def test_render_html_keeps_ordinary_markdown() -> None:
    html = render_html(SAMPLE)
    assert "<h1>Title</h1>" in html
    assert "<code>a &lt; b</code>" in html
    assert '<code class="language-python">if a &lt; b and c &amp; d:' in html
    assert "<table>" in html and "<th>col</th>" in html
    assert "<ol>" in html and "<strong>bold</strong>" in html


def test_safe_markdown_neutralizes_html_and_scripts_in_links() -> None:
    md = safe_markdown(HOSTILE)
    # No raw '<' survives outside code: no tag, comment or autolink can form in any Markdown renderer.
    outside_code = re.sub(r"`[^`]*`", "", md)
    assert "<" not in outside_code
    assert "](javascript" not in md.lower().replace(" ", "")
    assert "[ref]: #" in md
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
