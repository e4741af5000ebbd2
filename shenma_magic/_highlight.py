"""Code colouring with Pygments: HTML that follows JupyterLab's theme, and ANSI for a terminal.

The HTML carries its colours inline (no ``<style>`` element, no classes to look up), as CSS custom
properties that point at the CodeMirror variables JupyterLab's themes define, with the light theme's
value as the fallback: a dark theme recolours the code, and a page without JupyterLab's CSS (nbconvert
without the lab template, VS Code) still shows readable colours. Bold keywords and italic comments use
``<b>``/``<i>`` so they survive sanitizers that strip ``style``. The text content of the result is the
code exactly as given: only tags are added.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any, Optional

__all__ = ["highlight_html", "highlight_terminal", "lexer_for"]

# Beyond this size a block is shown uncoloured: some Pygments lexers are slow on hostile input, and a
# code block this long is read by scrolling, not by colour.
MAX_HIGHLIGHT = 200_000

# JupyterLab's CodeMirror variables, with theme-light-extension's values as fallbacks.
_VARIABLES = {
    "k": ("keyword", "green"),
    "a": ("atom", "#88f"),
    "n": ("number", "#080"),
    "d": ("def", "#00f"),
    "v2": ("variable-2", "#00366d"),
    "v3": ("variable-3", "#085"),
    "p": ("punctuation", "#05a"),
    "pr": ("property", "#05a"),
    "o": ("operator", "#7800c2"),
    "c": ("comment", "#408080"),
    "s": ("string", "#ba2121"),
    "s2": ("string-2", "#708"),
    "m": ("meta", "#a2f"),
    "q": ("qualifier", "#555"),
    "b": ("builtin", "green"),
    "t": ("tag", "#170"),
    "at": ("attribute", "#00c"),
    "h": ("header", "blue"),
    "qu": ("quote", "#090"),
    "l": ("link", "#00c"),
    "e": ("error", "red"),
}


# Pygments token type -> the variable of its colour and the tag that wraps it ("span", "b" or "i"); a type
# not listed takes its nearest listed ancestor's (String.Double -> String).
_TOKEN_STYLES = """
Keyword              k  b
Keyword.Constant     k  b
Keyword.Type         v3 span
Keyword.Pseudo       k  span
Operator             o  b
Operator.Word        k  b
Punctuation          p  span
Comment              c  i
Comment.Preproc      m  span
Comment.PreprocFile  s  span
Comment.Hashbang     c  i
String               s  span
String.Doc           s  i
String.Escape        s2 span
String.Interpol      s2 span
String.Regex         s2 span
String.Symbol        a  span
Number               n  span
Name.Builtin         b  span
Name.Builtin.Pseudo  v2 span
Name.Function        d  span
Name.Function.Magic  b  span
Name.Class           d  b
Name.Decorator       m  span
Name.Exception       e  b
Name.Tag             t  b
Name.Attribute       at span
Name.Variable        v2 span
Name.Constant        v2 span
Name.Entity          a  span
Name.Label           m  span
Name.Property        pr span
Name.Namespace       q  span
Literal              a  span
Generic.Heading      h  b
Generic.Subheading   h  b
Generic.Deleted      e  span
Generic.Inserted     qu span
Generic.Error        e  span
Generic.Traceback    e  span
Generic.Prompt       m  b
Generic.Emph         q  i
Generic.Strong       q  b
Error                e  span
"""


def _token_styles() -> dict[Any, tuple[str, str]]:
    """Pygments token type -> (variable key, wrapping tag), from :data:`_TOKEN_STYLES`."""
    from pygments.token import string_to_tokentype

    styles: dict[Any, tuple[str, str]] = {}
    for row in _TOKEN_STYLES.split("\n"):
        if row:
            name, key, tag = row.split()
            styles[string_to_tokentype(name)] = (key, tag)
    return styles


_STYLES: dict[Any, tuple[str, str]] = {}
_RESOLVED: dict[Any, Optional[tuple[str, str]]] = {}


def _style(ttype: Any) -> Optional[tuple[str, str]]:
    """The style of a token type: its own, else its nearest ancestor's (String.Double -> String)."""
    found = _RESOLVED.get(ttype, False)
    if found is not False:
        return found  # type: ignore[return-value]  # not the False sentinel, so a style or None
    if not _STYLES:
        _STYLES.update(_token_styles())
    probe = ttype
    style = None
    while probe is not None:
        style = _STYLES.get(probe)
        if style is not None:
            break
        probe = probe.parent
    _RESOLVED[ttype] = style
    return style


@lru_cache(maxsize=64)
def lexer_for(language: str) -> Any:
    """A Pygments lexer for a fence's language name (``python``, ``py``, ``js``, ``c++``...), or None.

    The lexer keeps the text as given: no stripping of leading or trailing newlines, no added newline.
    """
    name = language.strip().lower()
    if not name or name in ("text", "plain", "plaintext", "txt", "none"):
        return None
    try:
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:  # Pygments is an IPython dependency; without it code is shown uncoloured
        return None
    try:
        return get_lexer_by_name(name, stripnl=False, stripall=False, ensurenl=False, tabsize=0)
    except ClassNotFound:
        return None
    except Exception:  # a broken third-party lexer plugin must not break rendering
        return None


def _tokens(code: str, language: str) -> Optional[list[tuple[Any, str]]]:
    if not code or len(code) > MAX_HIGHLIGHT:
        return None
    lexer = lexer_for(language)
    if lexer is None:
        return None
    try:
        tokens = list(lexer.get_tokens(code))
    except Exception:
        return None
    # Only colour what is exactly the code: a lexer that rewrote anything (tabs, newlines) is not used.
    if "".join(value for _, value in tokens) != code:
        return None
    return tokens


def highlight_html(code: str, language: str) -> tuple[str, str]:
    """``(inner_html, style)`` for ``<code style=...>inner_html</code>`` of a code block.

    ``inner_html`` is the code HTML-escaped, with coloured spans when the language is known (else
    just escaped); ``style`` defines the custom properties the spans use (empty when uncoloured).
    """
    tokens = _tokens(code, language)
    if tokens is None:
        return html.escape(code, quote=False), ""
    out: list[str] = []
    used: set[str] = set()
    run_style: Optional[tuple[str, str]] = None
    run: list[str] = []

    def flush() -> None:
        if not run:
            return
        text = html.escape("".join(run), quote=False)
        if run_style is None:
            out.append(text)
        else:
            key, tag = run_style
            used.add(key)
            out.append(f'<{tag} style="color:var(--{key})">{text}</{tag}>')
        run.clear()

    for ttype, value in tokens:
        style = _style(ttype)
        # Whitespace between two tokens of one style joins their run: fewer tags, same look.
        if style != run_style and not (value.isspace() and run):
            flush()
            run_style = style
        run.append(value)
    flush()
    variables = ";".join(
        f"--{key}:var(--jp-mirror-editor-{_VARIABLES[key][0]}-color,{_VARIABLES[key][1]})"
        for key in sorted(used)
    )
    return "".join(out), variables


_ANSI: dict[str, str] = {
    "k": "\x1b[1;32m",
    "a": "\x1b[34m",
    "n": "\x1b[32m",
    "d": "\x1b[34m",
    "v2": "\x1b[34m",
    "v3": "\x1b[32m",
    "p": "",
    "pr": "\x1b[34m",
    "o": "\x1b[35m",
    "c": "\x1b[3;36m",
    "s": "\x1b[31m",
    "s2": "\x1b[35m",
    "m": "\x1b[35m",
    "q": "",
    "b": "\x1b[32m",
    "t": "\x1b[1;32m",
    "at": "\x1b[34m",
    "h": "\x1b[1;34m",
    "qu": "\x1b[32m",
    "l": "\x1b[4;34m",
    "e": "\x1b[31m",
}


def highlight_terminal(code: str, language: str) -> Optional[str]:
    """The code with ANSI colours (SGR sequences only, reset at every line end), or None if unknown.

    Every colour is closed before each newline, so a line cut or interleaved with other output never
    leaves the terminal coloured. The caller is responsible for the code holding no control characters.
    """
    tokens = _tokens(code, language)
    if tokens is None:
        return None
    out: list[str] = []
    for ttype, value in tokens:
        style = _style(ttype)
        start = _ANSI.get(style[0], "") if style else ""
        if not start:
            out.append(value)
            continue
        out.append("\n".join(f"{start}{part}\x1b[0m" if part else "" for part in value.split("\n")))
    return "".join(out)
