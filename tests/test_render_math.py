"""TeX math reaches MathJax verbatim, normalised to \\(…\\) / \\[…\\], and money stays text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._render import render_html
from tests.htmltree import MATH_START, mathjax_strings, parse_html


def _math(markup: str) -> list[str]:
    root = parse_html(markup)
    return [el.text for el in root.iter() if "math" in (el.attrs.get("class") or "").split()]


def _assert_mathjax_sees_only_our_math(markup: str) -> None:
    for string, in_math in mathjax_strings(markup):
        if in_math:
            assert string.startswith(("\\(", "\\[", "\\begin")), string
        else:
            # Outside our math elements no string can hold a pair of delimiters: every "$" and "\"
            # of ordinary text is a string of its own.
            assert "\\" not in string or string == "\\", string
            assert string.count("$") <= 1, string


MATH_CASES = [
    ("$x^*$ and $y^*$", ["\\(x^*\\)", "\\(y^*\\)"]),
    ("area $\\int_0^1 x\\,dx$ here", ["\\(\\int_0^1 x\\,dx\\)"]),
    ("the set $\\{1,2,3\\}$.", ["\\(\\{1,2,3\\}\\)"]),
    ("escaped $a\\_b + c\\_d$", ["\\(a\\_b + c\\_d\\)"]),
    ("compare $a<b$ and $c>d$", ["\\(a<b\\)", "\\(c>d\\)"]),
    (
        "$$\\begin{pmatrix}a & b \\\\ c & d\\end{pmatrix}$$",
        ["\\[\\begin{pmatrix}a & b \\\\ c & d\\end{pmatrix}\\]"],
    ),
    ("$$\na & b \\\\\nc & d\n$$", ["\\[a & b \\\\\nc & d\\]"]),
    ("Solve:\n$$\nx^2 = 1\n$$\nthen", ["\\[x^2 = 1\\]"]),
    ("inline \\(a_1 * b_2 * c\\) paren", ["\\(a_1 * b_2 * c\\)"]),
    ("spans \\(a\nb\\) lines", ["\\(a\nb\\)"]),
    ("\\[\nx = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}\n\\]", ["\\[x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}\\]"]),
    ("Formula:\n\\[\n- a\n+ b\n\\]", ["\\[- a\n+ b\\]"]),
    ("mid-line \\[E = mc^2\\] display", ["\\[E = mc^2\\]"]),
    (
        "\\begin{align}\na &= b \\\\\n- c &= d\n\\end{align}",
        ["\\begin{align}\na &= b \\\\\n- c &= d\n\\end{align}"],
    ),
    ("\\begin{cases} 1 & x>0 \\\\ 0 \\end{cases}", ["\\begin{cases} 1 & x>0 \\\\ 0 \\end{cases}"]),
    ("- item $x_1$ and $x_2$", ["\\(x_1\\)", "\\(x_2\\)"]),
    ("> quoted\n> \\[\n> y\n> \\]", ["\\[y\\]"]),
    ("1. step\n\n   $$\n   z\n   $$", ["\\[z\\]"]),
    ("| a | b |\n|---|---|\n| $x^2$ | \\(y\\) |", ["\\(x^2\\)", "\\(y\\)"]),
    ("**bold $x*y$ math**", ["\\(x*y\\)"]),
]


@pytest.mark.parametrize(("source", "expected"), MATH_CASES)
def test_math_reaches_mathjax_verbatim(source: str, expected: list[str]) -> None:
    markup = render_html(source)
    assert _math(markup) == expected
    _assert_mathjax_sees_only_our_math(markup)


MONEY = [
    "It costs $5 and $10.",
    "US$5 to US$10",
    "from $100k-$200k a year",
    "$5/$10 per month",
    "between $ 5 and $ 10",
    "just $5.",
    "\\$x\\$ is not math",
    "price: $3.50, or $4",
    "costs $$5 in total",
]


@pytest.mark.parametrize("source", MONEY)
def test_money_stays_text(source: str) -> None:
    markup = render_html(source)
    assert _math(markup) == []
    _assert_mathjax_sees_only_our_math(markup)
    assert parse_html(markup).text.count("$") == source.replace("\\$", "$").count("$")


def test_math_is_html_escaped_text() -> None:
    markup = render_html("$a<b>c$ and \\(x<img src=y onerror=z>\\)")
    assert "<img" not in markup and "<b>" not in markup
    assert _math(markup) == ["\\(a<b>c\\)", "\\(x<img src=y onerror=z>\\)"]


def test_latex_text_outside_math_is_not_typeset() -> None:
    # Not a math environment, and unclosed ones: MathJax must not see a \begin in the prose.
    for source in (
        "\\begin{itemize} \\item a \\end{itemize}",
        "\\begin{align} a &= b",
        "\\(open only",
        "\\[x",
    ):
        markup = render_html(source)
        assert _math(markup) == []
        _assert_mathjax_sees_only_our_math(markup)


def test_code_keeps_dollars_and_backslashes_untypeset() -> None:
    markup = render_html("`$x$` and\n\n```\n$$y$$ \\(z\\)\n```")
    assert _math(markup) == []
    assert parse_html(markup).find_all("pre")[0].text == "$$y$$ \\(z\\)\n"


_MATHY = st.lists(
    st.sampled_from(
        [
            "$",
            "$$",
            "\\(",
            "\\)",
            "\\[",
            "\\]",
            "\\begin{align}",
            "\\end{align}",
            "\\",
            "x",
            " ",
            "\n",
            "5",
            "&",
            "<",
            "`",
            "*",
            "_",
            "{",
            "}",
            "\n\n",
            "- ",
            "> ",
            "|",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_MATHY)
def test_mathjax_never_sees_math_we_did_not_mark(source: str) -> None:
    markup = render_html(source)
    _assert_mathjax_sees_only_our_math(markup)
    for string, in_math in mathjax_strings(markup):
        if not in_math:
            assert MATH_START.search(string) is None or string == "$", string


@pytest.mark.parametrize(
    "math",
    [
        "$$\n" + "x_{i} + y_{i} \\\\\n" * 200 + "$$\n",
        "\\begin{align}\n" + "a &= b \\\\\n" * 200 + "\\end{align}\n",
        "\\[\n" + "x + y \\\\\n" * 200 + "\\]\n",
    ],
)
def test_live_blocks_never_cut_a_long_display_math_block(math: str) -> None:
    from shenma_magic._render import BlockSplitter

    text = "Intro.\n\n" + math + "\nAfter.\n"
    splitter = BlockSplitter(max_tail=300)
    blocks: list[str] = []
    for i in range(0, len(text), 11):
        blocks.extend(splitter.feed(text[i : i + 11]))
    pieces = [*blocks, splitter.tail]
    live = [m for piece in pieces for m in _math(render_html(piece))]
    assert live == _math(render_html(text)) and len(live) == 1
