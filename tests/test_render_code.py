"""Fenced code: coloured by language through JupyterLab's theme variables, text exactly as written."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._render import code_block_html, json_display_text, render_html, render_json_html
from tests.htmltree import Element, parse_html

PYTHON = 'def f(x: int) -> str:\n    """Doc."""\n    return f"{x}" if x < 10 else None  # note\n'
SNIPPETS = {
    "python": PYTHON,
    "py": PYTHON,
    "javascript": "const a = [1, 2];\nfunction g() { return a.map(x => x * 2); }\n",
    "js": "let s = 'str'; // c\n",
    "json": '{"a": [1, 2.5, true, null], "b": "x\\\\y"}\n',
    "bash": 'for f in *.txt; do echo "$f" | wc -l; done\n',
    "c++": "#include <vector>\nint main() { std::vector<int> v; return 0; }\n",
    "sql": "SELECT a, COUNT(*) FROM t WHERE b < 3 GROUP BY a;\n",
    "rust": 'fn main() { let x: u8 = 1; println!("{}", x); }\n',
    "go": 'package main\nfunc main() { fmt.Println("hi") }\n',
    "html": '<div class="a" onclick="x()">&amp;</div>\n',
    "diff": "--- a\n+++ b\n-old\n+new\n",
}


def _pre(markup: str) -> Element:
    pres = parse_html(markup).find_all("pre")
    assert len(pres) == 1
    return pres[0]


def _coloured(pre: Element) -> list[tuple[str, str]]:
    return [
        (el.style()["color"], el.text)
        for el in pre.iter()
        if el.tag in ("span", "b", "i") and "color" in el.style()
    ]


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_known_languages_are_coloured_and_text_is_the_code(language: str) -> None:
    code = SNIPPETS[language]
    pre = _pre(render_html(f"```{language}\n{code}```\n"))
    assert pre.text == code
    coloured = _coloured(pre)
    assert len({colour for colour, _ in coloured}) >= 2, coloured
    code_el = pre.find_all("code")[0]
    variables = code_el.style()
    # Every colour a token uses is a custom property pointing at a JupyterLab theme variable, with a
    # literal fallback for pages without JupyterLab's CSS.
    for colour, _ in coloured:
        name = re.fullmatch(r"var\((--[\w-]+)\)", colour)
        assert name, colour
        assert re.fullmatch(r"var\(--jp-mirror-editor-[\w-]+-color,[#\w.()]+\)", variables[name.group(1)])
    assert "<style" not in render_html(f"```{language}\n{code}```\n")


def test_python_keywords_strings_comments_get_their_theme_colours() -> None:
    pre = _pre(render_html(f"```python\n{PYTHON}```"))
    variables = pre.find_all("code")[0].style()
    by_text = {text.strip(): variables[colour[4:-1]] for colour, text in _coloured(pre)}
    assert "keyword" in by_text["def"]
    assert "string" in by_text['"""Doc."""']
    assert "comment" in by_text["# note"]
    assert "number" in by_text["10"]


@pytest.mark.parametrize("info", ["", "nosuchlanguage", "text", "{.weird}", "python extra words"])
def test_unknown_language_is_plain_escaped_text(info: str) -> None:
    code = "if a < b && c > d:\n    print('<b>x</b>')\n"
    markup = render_html(f"```{info}\n{code}```")
    pre = _pre(markup)
    assert pre.text == code
    if info.split()[:1] != ["python"]:
        assert _coloured(pre) == []
    assert "<b>x</b>" not in markup
    if info:
        assert pre.attrs.get("title") == info  # the info string is kept, not lost


def test_indented_code_and_unclosed_fence_are_code_blocks() -> None:
    assert _pre(render_html("para\n\n    x = 1\n    y < 2\n")).text == "x = 1\ny < 2\n"
    assert _pre(render_html("```python\nx = 1\nnever closed")).text == "x = 1\nnever closed"


@settings(max_examples=200, deadline=None)
@given(
    code=st.text(st.characters(exclude_categories=["Cs"]), max_size=300),
    language=st.sampled_from(["python", "js", "json", "bash", "html", "c", "yaml", "", "zzz", "markdown"]),
)
def test_code_block_text_is_exactly_the_code(code: str, language: str) -> None:
    pre = _pre(code_block_html(code, language))
    assert pre.text == code
    assert "<script" not in code_block_html(code, language).replace("&lt;script", "")


def test_long_code_falls_back_to_plain_text() -> None:
    from shenma_magic._highlight import MAX_HIGHLIGHT

    code = "x = 1\n" * (MAX_HIGHLIGHT // 6 + 1)
    pre = _pre(code_block_html(code, "python"))
    assert pre.text == code and _coloured(pre) == []


JSON_CASES = [
    ('{"a": 1}', '{\n  "a": 1\n}'),
    ('{"path": "C:\\\\dir\\\\x", "u": "\\u00e9\\n", "n": 1.50e3}', None),
    ("[1, [2, []], {}]", "[\n  1,\n  [\n    2,\n    []\n  ],\n  {}\n]"),
    ('{"a": 1,}', '{"a": 1,}'),  # not JSON: shown exactly as received
    ("plain words", "plain words"),
    ('{\n    "kept": "as sent"\n}', '{\n    "kept": "as sent"\n}'),
]


@pytest.mark.parametrize(("text", "expected"), JSON_CASES)
def test_json_is_shown_as_received_or_reindented(text: str, expected: str | None) -> None:
    shown = json_display_text(text)
    if expected is not None:
        assert shown == expected
    # Only whitespace outside strings may differ: every string, escape and number is byte for byte.
    assert re.sub(r'\s+(?=(?:[^"\\]|\\.|"(?:[^"\\]|\\.)*")*$)', "", shown) == re.sub(
        r'\s+(?=(?:[^"\\]|\\.|"(?:[^"\\]|\\.)*")*$)', "", text
    )
    pre = _pre(render_json_html(text))
    assert pre.text == shown
    assert pre.find_all("code")[0].attrs.get("class") == "language-json"


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
        max_leaves=20,
    )
)
def test_reindented_json_parses_to_the_same_value(value: object) -> None:
    import json

    text = json.dumps(value)
    shown = json_display_text(text)
    assert json.loads(shown) == value
    assert _pre(render_json_html(text)).text == shown
