"""GFM tables: per-column alignment from the delimiter row, default left, nothing dropped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._markdown import _most_cells
from shenma_magic._render import BlockSplitter, render_html
from tests.htmltree import Element, parse_html


def _cells(markup: str) -> list[list[tuple[str, str]]]:
    rows = []
    for tr in parse_html(markup).find_all("tr"):
        rows.append(
            [
                (cell.text, cell.style().get("text-align", ""))
                for cell in tr.children
                if isinstance(cell, Element) and cell.tag in ("th", "td")
            ]
        )
    return rows


@pytest.mark.parametrize(
    ("delimiter", "align"),
    [
        ("---", "left"),
        (":--", "left"),
        ("--:", "right"),
        (":-:", "center"),
        (" :---: ", "center"),
        ("-", "left"),
    ],
)
def test_every_cell_gets_its_columns_alignment(delimiter: str, align: str) -> None:
    markup = render_html(f"| name | n |\n|{delimiter}|---:|\n| alpha | 1 |\n| b | 22 |\n")
    for row in _cells(markup):
        # Explicit even for the default: JupyterLab's CSS right-aligns every cell of an output.
        assert [a for _, a in row] == [align, "right"]


def test_table_is_laid_out_left_and_the_same_wherever_it_sits() -> None:
    markup = render_html("| a | b |\n|---|---|\n| 1 | 2 |\n")
    table = parse_html(markup).find_all("table")[0]
    style = table.style()
    # JupyterLab centres tables in a widget (auto margins) but not in an output: inline margins decide.
    assert style.get("margin") == "0 0 1em 0"


def test_rows_longer_or_shorter_than_the_header_lose_nothing() -> None:
    markup = render_html("| a | b |\n|---|---|\n| 1 | 2 | extra | more |\n| only |\n")
    assert _cells(markup) == [
        [("a", "left"), ("b", "left")],
        [("1", "left"), ("2 | extra | more", "left")],
        [("only", "left"), ("", "left")],
    ]


def test_table_without_leading_pipes_and_with_inline_markup() -> None:
    markup = render_html("a | **b**\n:-- | --:\n`x|y` | [l](http://e.x)\n")
    rows = parse_html(markup).find_all("tr")
    assert len(rows) == 2
    assert [a for _, a in _cells(markup)[1]] == ["left", "right"]


def test_live_blocks_and_final_render_the_table_alike() -> None:
    table = "| k | v |\n|:-:|--:|\n" + "".join(f"| {i} | {i * i} |\n" for i in range(50))
    text = "Intro.\n\n" + table + "\nAfter.\n"
    splitter = BlockSplitter(max_tail=200)
    blocks: list[str] = []
    for i in range(0, len(text), 7):
        blocks.extend(splitter.feed(text[i : i + 7]))
    live = "".join(render_html(b) for b in blocks) + render_html(splitter.tail)
    live_cells = [row for row in _cells(live) if row and row[0][0] != "k"]
    final_cells = [row for row in _cells(render_html(text)) if row and row[0][0] != "k"]
    assert live_cells == final_cells
    assert all(len(row) == 2 and row[0][1] == "center" and row[1][1] == "right" for row in final_cells)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("|\\ a`-")), min_size=1, max_size=30))
def test_a_row_is_split_again_whenever_it_may_hold_more_cells_than_the_header(line: str) -> None:
    """Rows are split a second time (to keep cells beyond the header's) only when a pipe count says they
    may have more: the count is never below what the split finds."""
    from markdown_it.rules_block.table import escapedSplit

    line = line.strip() or "|"
    cells = escapedSplit(line)
    if cells and cells[0] == "":
        cells.pop(0)
    if cells and cells[-1] == "":
        cells.pop()
    assert _most_cells(line) >= len(cells)
