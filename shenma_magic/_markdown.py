"""Markdown to HTML that is safe to put in a trusted notebook output, and stands on its own.

Model output is untrusted text, and outputs made in a running Jupyter session are trusted: raw HTML in
them would run ``<script>`` and ``onerror`` in the page. So:

* raw HTML is off (shown as text); links keep only http(s), mailto and relative targets, and open in a
  new tab with ``rel="noopener noreferrer nofollow"``;
* nothing loads by itself: an image becomes a link showing its alt text and host, except ``data:``
  raster images (png, jpeg, gif, webp), which cannot reach the network;
* every style attribute is ours (no CSS from the text); the layout is in inline styles, so the live
  view and the final output, nested differently, look the same, with or without JupyterLab's CSS;
* TeX math (see :mod:`._math`) reaches MathJax as ``\\(…\\)``, ``\\[…\\]`` or a bare environment, and
  every ``$`` or ``\\`` of ordinary text is an element of its own, which MathJax (it matches delimiters
  only within one text node) can never pair into math;
* nothing vanishes: markdown-it drops everything below its nesting limit, so past a depth the rest of
  that container is shown as plain text instead; table cells beyond the header's count are kept.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Optional
from urllib.parse import urlsplit

from ._gcpause import collector_paused
from ._highlight import highlight_html
from ._math import unsafe_tex
from ._secret import mask_known

__all__ = [
    "block_tokens",
    "code_block_html",
    "escape_text",
    "json_display_text",
    "parse",
    "render_html",
    "render_json_html",
    "safe_url",
    "tool_call_html",
]

# Deeper than any real answer; below MAX_DEPTH the rest of a container is shown as plain text.
_MAX_NESTING = 48
MAX_DEPTH = 40

_MARGIN = "margin:0 0 1em 0"
_PRE = (
    "margin:0 0 1em 0;padding:6px 8px;border-radius:3px;overflow-x:auto;"
    "background:var(--jp-cell-editor-background,#f5f5f5);"
    "color:var(--jp-content-font-color1,rgba(0,0,0,.87))"
)
_CODE_IN_PRE = "background:transparent;padding:0;white-space:inherit"
_HEADING = (
    "margin:var(--jp-content-heading-margin-top,1.2em) 0 var(--jp-content-heading-margin-bottom,0.8em) 0"
)
_BLOCK_STYLES = {
    "paragraph_open": _MARGIN,
    "table_open": _MARGIN,
    "heading_open": _HEADING,
}
_QUOTE = "margin:0 0 1em 0;padding:0 1em;border-left:4px solid var(--jp-border-color2,#e0e0e0)"
_LIST_OPEN = ("bullet_list_open", "ordered_list_open")
_REL = "noopener noreferrer nofollow"
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]*={0,2}", re.ASCII)
_SAFE_SCHEMES = ("http", "https", "mailto")
_MATH_TEXT = re.compile(r"[$\\]")

_md: Any = None
_block_md: Any = None


def escape_text(text: str) -> str:
    """Text for an HTML text node: escaped, and with ``$`` and ``\\`` set apart so MathJax never
    reads math into it (``$5 and $10`` stays money wherever MathJax typesets the page); no known key."""
    return mask_known(_escape_text(mask_known(text)))


def _escape_text(text: str) -> str:
    # Unmasked: for the pieces of a render that is masked as a whole.
    escaped = html.escape(text, quote=False)
    if "$" not in text and "\\" not in text:
        return escaped
    return _MATH_TEXT.sub(lambda m: f"<span>{m.group(0)}</span>", escaped)


def safe_url(url: str) -> bool:
    """A link target the user may follow: http(s), mailto, or relative (no scheme)."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return False
    return scheme in _SAFE_SCHEMES or (scheme == "" and not url.startswith("\\"))


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _plain_text(tokens: Optional[list[Any]]) -> str:
    """The text of inline tokens, as a reader would see it (alt text, link text)."""
    out: list[str] = []
    for token in tokens or []:
        if token.type in ("text", "code_inline", "math_inline", "math_inline_double"):
            out.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif token.children:
            out.append(_plain_text(token.children))
    return "".join(out)


def image_label(alt: str, src: str) -> str:
    """What a remote image shows instead of itself: ``🖼 alt (host)``."""
    host = _host(src)
    alt = alt.strip() or "image"
    return f"🖼 {alt} ({host})" if host else f"🖼 {alt}"


# -- render rules ---------------------------------------------------------------------------------------


def _render_text(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    return _escape_text(tokens[idx].content)


def _inside_link(tokens: list[Any], idx: int, env: Any) -> bool:
    # Link depth before each token of this inline run, computed once per run (a paragraph of many
    # images must not cost a scan per image).
    cache = env.setdefault("_link_depth", {}) if isinstance(env, dict) else {}
    key = id(tokens)
    depths = cache.get(key)
    if depths is None or depths[0] is not tokens:
        running = 0
        levels = []
        for token in tokens:
            levels.append(running)
            running += (token.type == "link_open") - (token.type == "link_close")
        depths = cache[key] = (tokens, levels)
    return bool(depths[1][idx] > 0)


def _render_image(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = _plain_text(token.children)
    title = token.attrGet("title")
    title_attr = f' title="{html.escape(str(title))}"' if title else ""
    if _DATA_IMAGE.fullmatch(src):
        return f'<img src="{src}" alt="{html.escape(alt)}"{title_attr} style="max-width:100%">'
    label = _escape_text(image_label(alt, src))
    if not src or not safe_url(src) or _inside_link(tokens, idx, env):
        return f"<span>{label}</span>"  # a link inside a link is no HTML: the outer link wins
    return f'<a href="{html.escape(src)}" rel="{_REL}" target="_blank"{title_attr}>{label}</a>'


def _render_link_open(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if not safe_url(href):
        # markdown-it already refuses javascript: and friends; anything else odd (ftp:, data:, tel:)
        # is not followed: its text shows, its target only as a tooltip.
        token.meta["dropped"] = True
        return f'<span title="{html.escape(href)}">'
    title = token.attrGet("title")
    title_attr = f' title="{html.escape(str(title))}"' if title else ""
    return f'<a href="{html.escape(href)}" rel="{_REL}" target="_blank"{title_attr}>'


def _render_link_close(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    # The matching open is the nearest unmatched link_open before this one (links do not nest).
    for back in range(idx - 1, -1, -1):
        if tokens[back].type == "link_open":
            return "</span>" if tokens[back].meta.get("dropped") else "</a>"
    return "</a>"


def code_block_html(code: str, language: str = "", info: str = "") -> str:
    """A ``<pre><code>`` block: coloured by ``language`` when Pygments knows it, text exactly ``code``
    (but for known keys, masked)."""
    return mask_known(_code_block_html(mask_known(code), language, info))


def _code_block_html(code: str, language: str = "", info: str = "") -> str:
    inner, variables = highlight_html(code, language)
    lang_class = f' class="language-{html.escape(language)}"' if language else ""
    title = f' title="{html.escape(info)}"' if info else ""
    style = f"{_CODE_IN_PRE};{variables}" if variables else _CODE_IN_PRE
    return f'<pre style="{_PRE}"{title}><code{lang_class} style="{style}">{inner}</code></pre>\n'


def _render_fence(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    from markdown_it.common.utils import unescapeAll

    info = unescapeAll(token.info).strip() if token.info else ""
    language = info.split(maxsplit=1)[0] if info else ""
    return _code_block_html(token.content, language, info)


def _render_code_block(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    return _code_block_html(tokens[idx].content)


def _math_source(content: str) -> str:
    return html.escape(content.strip(), quote=False)


_CLOSERS = {"\\(": "\\)", "\\[": "\\]"}


def _tex_as_code(token: Any, block: bool) -> str:
    """Math holding a denied macro (see :func:`._math.unsafe_tex`), shown as its source in a code element
    (which MathJax never reads), delimiters and all."""
    content = token.content
    source = (
        content
        if token.type == "math_env"
        else token.markup + content + _CLOSERS.get(token.markup, token.markup)
    )
    code = f"<code>{_escape_text(source)}</code>"
    return f'<p style="{_MARGIN};white-space:pre-wrap">{code}</p>\n' if block else code


def _render_math_inline(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    if unsafe_tex(tokens[idx].content):
        return _tex_as_code(tokens[idx], block=False)
    return f'<span class="math inline">\\({_math_source(tokens[idx].content)}\\)</span>'


def _render_math_display_inline(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    if unsafe_tex(tokens[idx].content):
        return _tex_as_code(tokens[idx], block=False)
    return f'<span class="math display">\\[{_math_source(tokens[idx].content)}\\]</span>'


def _render_math_block(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    if unsafe_tex(tokens[idx].content):
        return _tex_as_code(tokens[idx], block=True)
    return f'<div class="math display" style="{_MARGIN}">\\[{_math_source(tokens[idx].content)}\\]</div>\n'


def _render_math_env(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    if unsafe_tex(tokens[idx].content):
        return _tex_as_code(tokens[idx], block=True)
    # MathJax (processEnvironments, on in JupyterLab, Notebook 7 and nbconvert) typesets it bare.
    return f'<div class="math display" style="{_MARGIN}">{_math_source(tokens[idx].content)}</div>\n'


def _render_overdeep(self: Any, tokens: list[Any], idx: int, options: Any, env: Any) -> str:
    return f'<p style="{_MARGIN};white-space:pre-wrap">{_escape_text(tokens[idx].content)}</p>\n'


# -- rules ----------------------------------------------------------------------------------------------


def _overdeep(state: Any, start_line: int, end_line: int, silent: bool) -> bool:
    """Below MAX_DEPTH, the rest of this container as one plain-text block (markdown-it would drop it)."""
    if state.level < MAX_DEPTH:
        return False
    line = start_line
    while line < end_line and (state.isEmpty(line) or state.sCount[line] >= state.blkIndent):
        line += 1
    if silent:
        return True
    token = state.push("overdeep", "p", 0)
    token.block = True
    token.content = state.getLines(start_line, line, state.blkIndent, False).strip("\n")
    token.map = [start_line, line]
    state.line = line
    return True


def _table_keeping_cells(original: Any) -> Any:
    """The GFM table rule, except that cells beyond the header's count are kept (in the last cell)."""
    from markdown_it.rules_block.table import escapedSplit, getLine

    def rule(state: Any, start_line: int, end_line: int, silent: bool) -> bool:
        first = len(state.tokens)
        if not original(state, start_line, end_line, silent):
            return False
        if silent:
            return True
        columns = 0
        row: list[Any] = []
        row_line: Optional[int] = None
        for token in state.tokens[first:]:
            if token.type == "th_open":
                columns += 1
            elif token.type == "tr_open":
                row = []
                row_line = token.map[0] if token.map else None
            elif token.type == "inline":
                row.append(token)
            elif token.type == "tr_close" and row_line is not None and row and columns:
                line = getLine(state, row_line).strip()
                if _most_cells(line) <= columns:
                    continue  # the common row: splitting it again would only find what the rule found
                cells = [c.strip() for c in escapedSplit(line)]
                if cells and cells[0] == "":
                    cells.pop(0)
                if cells and cells[-1] == "":
                    cells.pop()
                if len(cells) > columns:
                    last = row[-1]
                    last.content = " | ".join([last.content, *cells[columns:]]).strip(" |") or last.content
        return True

    return rule


def _most_cells(line: str) -> int:
    """At least as many cells as markdown-it's ``escapedSplit`` finds in a stripped row, without splitting
    it: a cell after each unescaped pipe, less the empty ones before a leading and after a trailing one."""
    pipes = line.count("|")
    return pipes + 1 - line.startswith("|") - (line.endswith("|") and not line.endswith("\\|"))


def _layout(state: Any) -> None:
    """Core rule: inline layout styles on blocks (ours only; the text can carry no attributes)."""
    for token in state.tokens:
        kind = token.type
        if kind in _BLOCK_STYLES:
            token.attrSet("style", _BLOCK_STYLES[kind])
        elif kind in _LIST_OPEN and token.level == 0:
            token.attrSet("style", _MARGIN)
        elif kind in ("th_open", "td_open"):
            # JupyterLab right-aligns every cell of an output; GFM's default is left.
            if not token.attrGet("style"):
                token.attrSet("style", "text-align:left")
        elif kind == "blockquote_open":
            token.attrSet("style", _QUOTE)


def _build() -> Any:
    from markdown_it import MarkdownIt
    from markdown_it.rules_block.table import table as table_rule

    from ._math import math_plugin

    md = MarkdownIt(
        "commonmark", {"html": False, "breaks": True, "linkify": False, "maxNesting": _MAX_NESTING}
    ).enable(["table", "strikethrough"])
    math_plugin(md)
    md.block.ruler.at("table", _table_keeping_cells(table_rule), {"alt": ["paragraph", "reference"]})
    md.block.ruler.before("table", "overdeep", _overdeep)
    md.core.ruler.push("layout", _layout)
    for name, rule in (
        ("text", _render_text),
        ("image", _render_image),
        ("link_open", _render_link_open),
        ("link_close", _render_link_close),
        ("fence", _render_fence),
        ("code_block", _render_code_block),
        ("math_inline", _render_math_inline),
        ("math_inline_double", _render_math_display_inline),
        ("math_block", _render_math_block),
        ("math_env", _render_math_env),
        ("overdeep", _render_overdeep),
    ):
        md.add_render_rule(name, rule)
    return md


def _markdown() -> Any:
    global _md
    if _md is None:
        _md = _build()
    return _md


def block_tokens(text: str) -> list[Any]:
    """The block tokens of ``text`` as :func:`render_html` parses it (same rules, math and tables and all;
    inline content left unparsed): where its blocks start and end, for cutting an answer into blocks."""
    global _block_md
    if _block_md is None:
        _block_md = _build()
        _block_md.core.ruler.disable(["inline", "layout"])
    return list(_block_md.parse(text, {}))


def parse(text: str) -> list[Any]:
    """The token stream of ``text`` (the one both the HTML and the safe Markdown are made from)."""
    return list(_markdown().parse(text, {}))


def render_html(text: str) -> str:
    """Markdown to HTML: raw HTML shown as text, unsafe links dropped, nothing loaded by itself, and no
    key a live session knows, however the text spelled it (entities, percent-encoding)."""
    with collector_paused():
        return render_tokens(*parse_masked(text))


def parse_masked(text: str) -> tuple[list[Any], dict[str, Any]]:
    """The tokens of ``text`` with known keys masked first, and the parse's environment: what
    :func:`render_html` renders, and what the safe Markdown copy can be written from (one parse)."""
    env: dict[str, Any] = {}
    return _markdown().parse(mask_known(text), env), env


def render_tokens(tokens: list[Any], env: dict[str, Any]) -> str:
    """The HTML of tokens from :func:`parse_masked` (render rules may mark tokens: render them once)."""
    md = _markdown()
    return mask_known(str(md.renderer.render(tokens, md.options, env)))


# -- JSON -----------------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+', re.DOTALL)


def json_display_text(text: str) -> str:
    """A ``--json`` reply as shown: re-indented if it is valid JSON on one line, else exactly as received.

    Only whitespace between tokens changes; strings, escapes and numbers stay byte for byte.
    """
    if "\n" in text.strip():
        return text
    try:
        json.loads(text)
    except ValueError:
        return text
    out: list[str] = []
    depth = 0
    prev = ""
    for tok in _JSON_TOKEN.findall(text):
        if tok in ("}", "]"):
            depth -= 1
            if prev not in ("{", "["):
                out.append("\n" + "  " * depth)
            out.append(tok)
        elif prev in ("{", "["):
            out.append("\n" + "  " * depth + tok)
        elif tok == ",":
            out.append(",\n" + "  " * depth)
        elif tok == ":":
            out.append(": ")
        else:
            out.append(tok)
        if tok in ("{", "["):
            depth += 1
        prev = tok
    return "".join(out)


def render_json_html(text: str) -> str:
    """A ``--json`` reply as a highlighted JSON code block of exactly the received text."""
    return code_block_html(json_display_text(text), "json")


def tool_call_html(name: str, arguments: str) -> str:
    """A model's tool call: the name as code, the arguments as a JSON block (as received if not JSON)."""
    code = html.escape(mask_known(name or "?"), quote=False)
    head = f'<div style="margin:0 0 0.5em 0">tool call <code>{code}</code></div>\n'
    code_html = _code_block_html(mask_known(json_display_text(arguments)), "json") if arguments else ""
    return mask_known(head + code_html)
