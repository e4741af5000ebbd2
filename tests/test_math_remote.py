"""TeX that could make MathJax load, link, style or label anything never reaches MathJax as math."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shenma_magic._markdown import parse, render_html
from shenma_magic._mdsafe import safe_markdown

E = "http://127.0.0.2:9/leak"
BODIES = [
    f"\\style{{background-image:url({E})}}{{x}}",
    "\\href{javascript:alert(1)}{x}",
    f"\\href{{{E}}}{{x}}",
    f"\\url{{{E}}}",
    "\\class{jp-Dialog}{x}",
    "\\cssId{x}{y}",
    "\\data{x=1}{y}",
    f"\\require{{{E}}}",
    "\\require{html}",
    "\\unicode[Arial]{x41}",
    f"\\mmlToken{{mi}}[href='{E}']{{x}}",
    "\\def\\h{\\hr}\\h ef{x}{y}",
    "\\newcommand{\\h}{\\href}\\h{x}{y}",
    "\\csname href\\endcsname{x}{y}",
    f"\\bbox[border:1px solid;background:url({E})]{{x}}",
    "\\bbox[\\75 rl(x)]{y}",
    f"\\text{{{E}}}",
    "\\&#104;ref{x}{y}",
    "a + \\Style{x}{y}",
]
FORMS = [
    "${}$",
    "$${}$$",
    "\\({}\\)",
    "\\[{}\\]",
    "before $${}$$ after",
    "$$\n{}\n$$",
    "\\[\n{}\n\\]",
    "\\begin{{equation}}\n{}\n\\end{{equation}}",
    "\\begin{{align}}\na &= {}\n\\end{{align}}",
    "> ${}$",
    "- $${}$$",
    "| a |\n|---|\n| ${}$ |",
]
MATH_TYPES = {"math_inline", "math_inline_double", "math_block", "math_env"}
MATH_HTML = re.compile(r'class="math|\\\(|\\\[|\\begin')


def _math_tokens(tokens: list[Any]) -> list[str]:
    out = []
    for token in tokens:
        if token.type in MATH_TYPES:
            out.append(token.content)
        out.extend(_math_tokens(token.children or []))
    return out


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("body", BODIES)
def test_denied_tex_is_shown_as_text(form: str, body: str) -> None:
    src = form.format(body)
    html = render_html(src)
    # Every "\" and "$" outside a math element is an element of its own, so MathJax can find no math.
    assert not MATH_HTML.search(html), html
    assert "<code>" in html, html  # the source stays visible, as code
    again = safe_markdown(src)
    assert not any("\\" in tex and tex.strip() for tex in _math_tokens(parse(again))), again


@pytest.mark.parametrize("form", FORMS)
def test_ordinary_tex_is_still_math(form: str) -> None:
    html = render_html(form.format("\\frac{a}{b} + \\sqrt{x^2}"))
    assert 'class="math' in html or "\\begin" in html, html
