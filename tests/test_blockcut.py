"""The live view's cutting of a growing answer (shenma_magic._blockcut): blocks that render alone exactly as
in the whole text, whatever the Markdown and however the text arrives; a bounded preview of the tail."""

from __future__ import annotations

import os
import re
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._blockcut import BlockCutter, split_blocks
from shenma_magic._layout import answer_pieces
from shenma_magic._markdown import block_tokens
from shenma_magic._render import join_markdown, render_block, render_html, safe_markdown

# Lines chosen for how they interact with blank lines and with each other: every container and fence
# opener and closer of CommonMark and GFM, with the indentations that decide whether a line continues
# a block, the math delimiters the renderer protects, table rows, lazy continuations, setext underlines.
LIST_LINES = [
    "- item",
    "* star",
    "+ plus",
    "-",
    "1.",
    "1. one",
    "2) two",
    "10. ten",
    "- [ ] task",
    "  - nested",
    "   - deeper",
    "    - four spaces",
    "  1. nested ordered",
    "  indented",
    "    code4",
    "\t tab",
    " para",
    "lazy",
]
FENCE_LINES = [
    "```",
    "```py",
    "````",
    "~~~",
    "  ```",
    "     ```",
    "$$",
    "$$ x $$",
    "$$x",
    "x$$",
    "  $$",
    "\\[",
    "\\]",
    "  \\[",
    "\\(x",
    "y\\)",
    "\\begin{align}",
    "\\end{align}",
    "\\begin{pmatrix}",
    "1 \\\\ 2",
    "\\end{pmatrix}",
]
OTHER_LINES = [
    "para text",
    "more *em* and **strong** text",
    "`code` span and a $x^2$ formula",
    "$5 and $10",
    "> quote",
    ">",
    "> - quoted item",
    "> ```",
    ">> deep",
    "# head",
    "## h2",
    "---",
    "***",
    "===",
    "-----",
    "| a | b |",
    "|---|---|",
    "| :-- | --: |",
    "| x |",
    "text | pipe",
    "<div>",
    "<!-- c -->",
    "&amp; entity",
]

# Lines where the renderer and a plain reading of Markdown part: whitespace that is no blank line to it
# (form feed, no-break space), "\r" ending a line, math openers whose closer has text after it or that may
# be a table's header row, an environment MathJax does not typeset alone, definitions in containers.
ODD_LINES = [
    "\x0c",
    "\xa0",
    "x\r",
    "\r",
    "a\r```",
    "$$$$",
    "$$ tail",
    "\\] tail",
    "$$ a | b",
    "|---|---|",
    "\\begin{document}",
    "\\end{document}",
    "\\begin{equation*}",
    "\\end{equation*}",
    "> $$",
    "- ```",
    "[x]",
    "> [x]: /u",
]

# A fifth of the lines blank (blank lines are where cuts happen), a fifth list lines, a fifth fence and
# math lines; and some arbitrary text over Markdown's special characters.
markdown_texts = st.lists(
    st.just("")
    | st.sampled_from(LIST_LINES)
    | st.sampled_from(FENCE_LINES)
    | st.sampled_from(OTHER_LINES)
    | st.sampled_from(ODD_LINES),
    min_size=1,
    max_size=30,
).map("\n".join) | st.text(alphabet=st.sampled_from(list("ab -*1.>`$|\\\n\t#[]():~=\r\x0c")), max_size=200)


def fed_in_pieces(text: str, sizes: list[int]) -> list[str]:
    cutter = BlockCutter()
    blocks: list[str] = []
    at = 0
    for size in sizes or [len(text) or 1]:
        blocks += cutter.feed(text[at : at + size])
        at += size
    blocks += cutter.feed(text[at:])
    return blocks + cutter.close()


@settings(max_examples=500, deadline=None)
@given(markdown_texts, st.lists(st.integers(min_value=1, max_value=7), max_size=60))
def test_blocks_render_alone_as_in_the_whole(text: str, sizes: list[int]) -> None:
    blocks = fed_in_pieces(text, sizes)
    assert "".join(blocks) == text  # nothing lost, nothing repeated
    if not defines_references(text):  # reference definitions tie blocks together: those render whole
        assert "".join(render_html(block) for block in blocks) == render_html(text)


def defines_references(text: str) -> bool:
    cutter = BlockCutter()
    cutter.feed(text)
    cutter.close()
    return cutter.references


KEY = "sk-blockcut-7Hq2Lm9Zx4Rt8Wv1"
# A key as the model may write it: whole, in code, in a link, spelled with a character reference.
KEY_LINES = [KEY, f"`{KEY}`", f"[x](https://e.example/?k={KEY})", f"&#x73;{KEY[1:]}", KEY[:14], f"| {KEY} |"]
texts_with_keys = st.lists(
    st.just("") | st.sampled_from(LIST_LINES + FENCE_LINES + OTHER_LINES) | st.sampled_from(KEY_LINES),
    min_size=1,
    max_size=30,
).map("\n".join)


@settings(max_examples=400, deadline=None)
@given(markdown_texts | texts_with_keys, st.lists(st.integers(min_value=1, max_value=7), max_size=60))
def test_one_parse_per_block_gives_the_html_and_the_markdown_copy_of_the_whole(
    text: str, sizes: list[int]
) -> None:
    """The final output parses each block once for both copies: a block's HTML is render_html's, and
    wherever the blocks render alone as in the whole (the test above), their Markdown joined is the safe
    Markdown of the whole answer (keys masked in both)."""
    with mock.patch.dict(os.environ, {"SHENMA_API_KEY": KEY}):
        blocks = fed_in_pieces(text, sizes)
        rendered = [render_block(block) for block in blocks]
        assert [r.html for r in rendered] == [render_html(block) for block in blocks]
        whole = render_block(text)
        assert (whole.markdown or "") == safe_markdown(text)
        if not defines_references(text) and "".join(r.html for r in rendered) == whole.html:
            assert join_markdown(r.markdown for r in rendered) == safe_markdown(text)
        assert KEY[:12] not in join_markdown(r.markdown for r in rendered)


@settings(max_examples=200, deadline=None)
@given(markdown_texts, st.lists(st.integers(min_value=1, max_value=7), max_size=60))
def test_cuts_do_not_depend_on_how_the_text_arrives(text: str, sizes: list[int]) -> None:
    assert fed_in_pieces(text, sizes) == split_blocks(text)


def test_cuts_where_a_block_starts_afresh_and_nowhere_else() -> None:
    text = (
        "# Title\n\nA paragraph\nover two lines.\n\n1. one\n\n2. two (a loose list goes on)\n\n"
        "- other kind of list\n\n```python\nx = 1\n\ny = 2\n```\n\n"
        "$$\na\n```\nb\n$$\n\n| a |\n|---|\n| 1 |\n\nend\n"
    )
    assert split_blocks(text) == [
        "# Title\n\n",
        "A paragraph\nover two lines.\n\n",
        "1. one\n\n2. two (a loose list goes on)\n\n",
        "- other kind of list\n\n",
        "```python\nx = 1\n\ny = 2\n```\n\n",
        "$$\na\n```\nb\n$$\n\n",  # display math holds a fence line (not a blank line: see below)
        "| a |\n|---|\n| 1 |\n\n",
        "end\n",
    ]


# How the renderer (markdown-it with _math's rules) reads display math and fences that interleave, and
# the blocks the cutter makes of them: each cut lies where the renderer has closed everything, and no
# later than that. Display math is tried before a fence, and holds every line up to the first closer if
# nothing follows it there and no blank line comes first; else the opener's line is text.
INTERLEAVINGS = [
    # The counterexample: math "\[```\]", then a fence that is never closed ("- item" is code).
    ("$$\n```\n$$\n```\n$$\n\n- item", ["$$\n```\n$$\n```\n$$\n\n- item"]),
    ("$$\n```\n$$\n```\n$$\n\n- item\n```\n\nafter", ["$$\n```\n$$\n```\n$$\n\n- item\n```\n\n", "after"]),
    ("$$\n```\n$$\n\nafter", ["$$\n```\n$$\n\n", "after"]),  # the fence line is math: nothing open
    ("$$\n~~~\n$$\n\nafter", ["$$\n~~~\n$$\n\n", "after"]),
    ("\\[\n```\n\\]\n\nafter", ["\\[\n```\n\\]\n\n", "after"]),
    ("\\begin{align}\n```\n\\end{align}\n\nafter", ["\\begin{align}\n```\n\\end{align}\n\n", "after"]),
    (
        "\\begin{align}\n~~~\n\\end{align}\n~~~\n\nin code\n~~~\n\nend",
        ["\\begin{align}\n~~~\n\\end{align}\n~~~\n\nin code\n~~~\n\n", "end"],
    ),
    # No closer before the blank line, or text after the first closer, or an environment that is no
    # math to the renderer: the opener is text, and the fence line opened a fence.
    ("$$\n```\n\nin code\n```\n\nend", ["$$\n```\n\nin code\n```\n\n", "end"]),
    ("$$ x\n```\n$$ tail\n\nin code\n```\n\nend", ["$$ x\n```\n$$ tail\n\nin code\n```\n\n", "end"]),
    ("\\[\n```\n\\] tail\n\nin code\n```\n\nend", ["\\[\n```\n\\] tail\n\nin code\n```\n\n", "end"]),
    (
        "\\begin{document}\n```\n\\end{document}\n\nin code\n```\n\nend",
        ["\\begin{document}\n```\n\\end{document}\n\nin code\n```\n\n", "end"],
    ),
    ("$$x$$\n```\n\nin code\n```\n\nend", ["$$x$$\n```\n\nin code\n```\n\n", "end"]),  # closed on its line
    ("$$ x $$ y\n```\n\nin code\n```\n\nend", ["$$ x $$ y\n```\n\nin code\n```\n\n", "end"]),
    # A fence first holds the math lines.
    ("```\n$$\n```\n\nafter", ["```\n$$\n```\n\n", "after"]),
    ("~~~\n$$\n~~~\n\nafter", ["~~~\n$$\n~~~\n\n", "after"]),
    ("```\n$$\n\nx\n$$\n```\n\nafter", ["```\n$$\n\nx\n$$\n```\n\n", "after"]),
    # Math openers inside math: the outer one's closer decides first.
    ("$$\n\\[\n```\n$$\n\\]\n\nafter", ["$$\n\\[\n```\n$$\n\\]\n\n", "after"]),
    ("$$\n\\[\n```\n\\]\n$$\n\nafter", ["$$\n\\[\n```\n\\]\n$$\n\n", "after"]),
    ("$$\n\\[\n```\n\\]\n\nin code\n```\n\nend", ["$$\n\\[\n```\n\\]\n\n", "in code\n```\n\nend"]),
    # Display math never holds a blank line: these are two paragraphs.
    ("$$\na\n\nb\n$$\n\nc", ["$$\na\n\n", "b\n$$\n\n", "c"]),
    # Indentation: up to 3 columns opens math or a fence, 4 is a paragraph's text or indented code.
    ("   $$\n```\n   $$\n\nafter", ["   $$\n```\n   $$\n\n", "after"]),
    ("    $$\n```\n$$\n\nin code\n```\n\nend", ["    $$\n```\n$$\n\nin code\n```\n\n", "end"]),
    ("```\ncode\n    ```\n\nin code\n```\n\nend", ["```\ncode\n    ```\n\nin code\n```\n\n", "end"]),
    ("    ```\n\nafter", ["    ```\n\n", "after"]),
    ("````\n```\n\n````\n\nafter", ["````\n```\n\n````\n\n", "after"]),
    # The table rule comes before math: "$$ a | b" over a delimiter row is a table's header.
    (
        "$$ a | b\n|---|---|\n```\n$$\n\nin code\n```\n\nend",
        ["$$ a | b\n|---|---|\n```\n$$\n\nin code\n```\n\n", "end"],
    ),
    ("$$ a | b\n|---|\n```\n$$\n\nafter", ["$$ a | b\n|---|\n```\n$$\n\n", "after"]),
    # Quotes and list items end at a blank line before a line at column 0, and what they hold with them.
    ("> $$\n> ```\n> $$\n\nafter", ["> $$\n> ```\n> $$\n\n", "after"]),
    ("> $$\n```\n$$\n\nin code\n```\n\nend", ["> $$\n```\n$$\n\nin code\n```\n\n", "end"]),
    ("- $$\n  ```\n  $$\n\nafter", ["- $$\n  ```\n  $$\n\n", "after"]),
    ("- item\n  ```\n  code\n\n  more\n\nafter", ["- item\n  ```\n  code\n\n  more\n\n", "after"]),
    ("- a\n  ```\n\nfoo\n\n```\n\nbar", ["- a\n  ```\n\n", "foo\n\n", "```\n\nbar"]),
    ("1. one\n\n   ```\n   x\n\nafter", ["1. one\n\n   ```\n   x\n\n", "after"]),
    ("- item\n```\ncode\n\nin code\n```\n\nafter", ["- item\n```\ncode\n\nin code\n```\n\n", "after"]),
    # Only spaces and tabs make a blank line; "\r\n" and a lone "\r" end lines.
    ("a\n\x0c\nb", ["a\n\x0c\nb"]),
    ("a\n\xa0\nb", ["a\n\xa0\nb"]),
    ("```\n```\x0c\n\nin code", ["```\n```\x0c\n\nin code"]),
    ("```\r\nx\r\n\r\ny\r\n```\r\n\r\nz", ["```\r\nx\r\n\r\ny\r\n```\r\n\r\n", "z"]),
    ("a\r```\n\nin code\n```\n\nend", ["a\r```\n\nin code\n```\n\n", "end"]),
]


@pytest.mark.parametrize(("text", "blocks"), INTERLEAVINGS)
def test_math_and_fences_are_open_where_the_renderer_has_them_open(text: str, blocks: list[str]) -> None:
    assert split_blocks(text) == blocks
    assert fed_in_pieces(text, [1] * len(text)) == blocks
    assert "".join(render_html(block) for block in blocks) == render_html(text)


def renderer_cuts(before: str, line: str) -> bool:
    """Whether the renderer's block parse has every top-level block before ``line`` closed."""
    index = before.count("\n")
    for token in block_tokens(before + line + "\n"):
        if token.level == 0 and token.nesting != -1 and token.map and token.map[0] < index < token.map[1]:
            return False
    return True


_CONTAINER_LINE = re.compile(r" {0,3}(?:>|[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$))")
TOP_LEVEL_LINES = [
    line
    for line in LIST_LINES + FENCE_LINES + OTHER_LINES + ODD_LINES
    if not _CONTAINER_LINE.match(line) and "\r" not in line
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.just("") | st.sampled_from(TOP_LEVEL_LINES), min_size=1, max_size=40).map("\n".join))
def test_top_level_blocks_are_cut_wherever_the_renderer_starts_afresh(text: str) -> None:
    """Without lists and quotes the cutter's reading is the renderer's: a cut at every line at column 0
    after a blank line where nothing is open, and nowhere else (nothing is held back)."""
    blocks = split_blocks(text)
    for number, block in enumerate(blocks):
        lines = block.split("\n")
        at = 0
        for i, line in enumerate(lines):
            after_blank = i > 0 and not lines[i - 1].strip(" \t") and block[:at].strip(" \t\n")
            if after_blank and line and line[0] not in " \t":
                assert not renderer_cuts(block[:at], line), (block[:at], line)
            at += len(line) + 1
        if number < len(blocks) - 1:
            following = blocks[number + 1].split("\n", 1)[0]
            assert renderer_cuts(block, following), (block, following)


def test_a_definition_on_the_last_line_makes_the_answer_render_whole() -> None:
    text = "See [x].\n\n[x]: https://example.com/x"  # the usual end of a reply: no "\n" after it
    cutter = BlockCutter()
    cutter.feed(text)
    cutter.close()
    assert cutter.references
    pieces, _ = answer_pieces(text)
    assert len(pieces) == 1 and 'href="https://example.com/x"' in pieces[0]


def test_the_parser_is_asked_a_bounded_number_of_times_per_character() -> None:
    """Blocks the parser must judge (a list, then a fence the rules cannot place) are parsed a bounded
    number of times each: the refused cuts ask again only once the block has doubled."""
    from shenma_magic import _markdown

    parsed: list[int] = []
    original = _markdown.block_tokens

    def counting(text: str) -> list[object]:
        parsed.append(len(text))
        return original(text)

    text = "".join(f"- item {i}\n```\ncode {i}\n\nmore {i}\n```\n" for i in range(400))
    with mock.patch.object(_markdown, "block_tokens", counting):
        blocks = split_blocks(text)
    assert "".join(blocks) == text
    assert sum(parsed) <= 12 * len(text), (len(parsed), sum(parsed), len(text))


def test_a_finished_block_is_handed_out_as_soon_as_the_next_one_starts() -> None:
    cutter = BlockCutter()
    assert cutter.feed("First paragraph.\n\n") == []
    assert cutter.feed("S") == ["First paragraph.\n\n"]
    # A list marker could go on with the same list: wait until the line says which.
    cutter = BlockCutter()
    cutter.feed("- a\n\n")
    assert cutter.feed("-") == []
    assert cutter.feed("--\n") == ["- a\n\n"]  # a thematic break, not an item


def test_an_enormous_line_and_a_million_tiny_deltas_are_fed_linearly() -> None:
    cutter = BlockCutter()
    for _ in range(200_000):
        cutter.feed("ab ")
    assert cutter.tail_chars == 600_000
    preview = cutter.preview(1000)
    assert preview.markdown == "" and len(preview.plain) == 1000 and preview.skipped == 599_000
    assert cutter.close() == ["ab " * 200_000]


def _shown_after_context(preview_markdown: str, context: str) -> str:
    assert preview_markdown.startswith(context)
    return preview_markdown[len(context) :]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["code", "table", "list", "prose"]),
    st.integers(min_value=1, max_value=400),
    st.integers(min_value=50, max_value=400),
)
def test_preview_of_a_long_tail_is_bounded_and_keeps_its_context(kind: str, rows: int, limit: int) -> None:
    head = {"code": "```python\n", "table": "| a | b |\n| --- | ---: |\n", "list": "", "prose": ""}[kind]
    row = {"code": "x = {i}  # <{i}>", "table": "| {i} | v{i} |", "list": "- item {i}", "prose": "word{i}"}[
        kind
    ]
    tail = head + "\n".join(row.format(i=i) for i in range(rows)) + "\n"
    cutter = BlockCutter()
    assert cutter.feed("Intro.\n\n" + tail) == ["Intro.\n\n"]
    preview = cutter.preview(limit)
    shown = preview.markdown
    if preview.skipped == 0:
        assert shown == tail
        return
    context = head if kind in ("code", "table") else ""
    body = _shown_after_context(shown, context)
    assert len(body) <= limit
    assert tail.endswith(body) and preview.skipped == len(tail) - len(body)
    assert body == "" or body.startswith(row.format(i=0)[:1]) or kind == "prose"
    if kind in ("code", "table"):
        assert render_html(shown).count("<pre" if kind == "code" else "<table") == 1


def test_rows_that_may_become_a_table_wait_for_the_delimiter_row() -> None:
    cutter = BlockCutter()
    cutter.feed("Before.\n| Name | Value |\n")
    assert cutter.preview(1000).markdown == "Before.\n"
    cutter.feed("| --- | -")
    assert cutter.preview(1000).markdown == "Before.\n"
    cutter.feed("--: |\n| a | 1 |\n| b")
    shown = render_html(cutter.preview(1000).markdown)
    assert "<table" in shown and "| Name" not in shown


def test_an_open_display_formula_is_held_back_until_it_closes() -> None:
    cutter = BlockCutter()
    cutter.feed("The matrix:\n$$\n\\begin{pmatrix} 1 & 2 \\\\\n")
    preview = cutter.preview(1000)
    assert preview.held and preview.markdown == "The matrix:\n"
    cutter.feed("3 & 4 \\end{pmatrix}\n$$\n")
    preview = cutter.preview(1000)
    assert not preview.held and re.search(r"pmatrix", preview.markdown)
