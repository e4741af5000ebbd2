"""Turning answer text into what a frontend shows: one import point for the renderer's pieces.

Pure (markdown-it-py and Pygments are pure-Python). Model output is untrusted text: outputs made in a
running Jupyter session are trusted, so raw HTML in them would run ``<script>`` and ``onerror`` in the
page. Every path from model text to the frontend goes through :func:`render_html` (HTML),
:func:`safe_markdown` (the ``text/markdown`` copy) or :func:`escape_text` / :func:`escape` (plain text).

* :mod:`._markdown`: Markdown to safe, self-contained HTML (math, code colours, GFM tables, no remote
  loads); ``--json`` replies as a JSON block.
* :mod:`._mdsafe`: Markdown made inert for the ``text/markdown`` copy, and inert pieces (tool calls).
* :mod:`._blocks`: the live view's cutting of a growing answer into finished blocks.
* :mod:`._highlight`: Pygments colouring for HTML and terminals.
* :mod:`._termtext` / :mod:`._terminal`: terminal text (control characters neutralised, tables aligned,
  code coloured) and the terminal view.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import NamedTuple, Optional

from ._blocks import BlockSplitter
from ._gcpause import collector_paused
from ._markdown import (
    code_block_html,
    escape_text,
    json_display_text,
    parse_masked,
    render_html,
    render_json_html,
    render_tokens,
    tool_call_html,
)
from ._mdsafe import (
    markdown_code_span,
    markdown_fence,
    markdown_lines,
    markdown_text,
    safe_markdown,
    tool_call_markdown,
)
from ._secret import mask_known

__all__ = [
    "BlockSplitter",
    "Rendered",
    "code_block_html",
    "escape",
    "escape_text",
    "join_markdown",
    "json_display_text",
    "markdown_code_span",
    "markdown_fence",
    "markdown_text",
    "render_block",
    "render_html",
    "render_json_html",
    "safe_markdown",
    "tool_call_html",
    "tool_call_markdown",
]


def escape(text: str) -> str:
    """HTML-escape for text and attribute values (quotes too)."""
    return html.escape(text, quote=True)


class Rendered(NamedTuple):
    """One block of an answer (or a whole answer), rendered from one parse."""

    html: str  # render_html(text)
    markdown: Optional[str]  # its safe Markdown copy; None if it has no block at all (join_markdown skips it)


def render_block(text: str) -> Rendered:
    """:func:`render_html` and the :func:`safe_markdown` copy of ``text`` from one parse (a reply's end
    parsed every block twice, once for each)."""
    with collector_paused():
        tokens, env = parse_masked(text)
        lines = markdown_lines(tokens)  # before rendering: render rules mark tokens (a dropped link)
        return Rendered(render_tokens(tokens, env), mask_known("\n".join(lines)) if lines else None)


def join_markdown(pieces: Iterable[Optional[str]]) -> str:
    """The :func:`safe_markdown` of a whole text from its blocks' ``Rendered.markdown``: blocks cut where
    Markdown's block structure starts afresh (:mod:`._blockcut`) write out as they do in the whole."""
    return mask_known("\n\n".join(piece for piece in pieces if piece is not None))
