"""TeX math in Markdown: found before Markdown touches it, handed to MathJax verbatim.

Forms: ``$…$`` and ``$$…$$`` (mdit-py-plugins' dollarmath, with pandoc's rule that ``$`` is not math
next to a space or a digit, so ``$5 and $10`` stays money), ``\\(…\\)``, ``\\[…\\]`` (inline or on
their own lines) and ``\\begin{env}…\\end{env}`` for the math environments. Token types: ``math_inline``
(``$``, ``\\(``), ``math_inline_double`` (``$$`` or ``\\[`` inside a line), ``math_block`` (``$$`` or
``\\[`` on their own lines) and ``math_env``.

The bracket and environment rules are written here rather than taken from texmath/amsmath because
those look for the closing delimiter by slicing the rest of the document at every candidate (quadratic
on a long reply) and know a fixed list of environments. Every search here is memoised per source, so
the whole parse stays linear. A math block ends within its paragraph: a blank line closes nothing.
"""

from __future__ import annotations

import re
from typing import Any, Optional

__all__ = ["ENVIRONMENTS", "block_opener", "math_plugin", "unsafe_tex"]

# Environments MathJax typesets on their own (processEnvironments) that a model writes at top level.
ENVIRONMENTS = (
    "equation",
    "equation*",
    "align",
    "align*",
    "alignat",
    "alignat*",
    "aligned",
    "alignedat",
    "flalign",
    "flalign*",
    "gather",
    "gather*",
    "gathered",
    "multline",
    "multline*",
    "split",
    "eqnarray",
    "eqnarray*",
    "cases",
    "array",
    "matrix",
    "pmatrix",
    "bmatrix",
    "Bmatrix",
    "vmatrix",
    "Vmatrix",
    "smallmatrix",
    "subequations",
)
_ENV_OPEN = re.compile(r"\\begin\{(" + "|".join(re.escape(e) for e in ENVIRONMENTS) + r")\}")
_BLANK_LINE = re.compile(r"\n[ \t]*(?=\n|$)")

# Macros that make MathJax load something, link somewhere, set CSS, classes, ids or data attributes, or
# that build other macros (so a denied name could be spelt in pieces). JupyterLab's MathJax loads the
# html, require and unicode extensions, so none of these is hypothetical.
_DENIED_MACROS = (
    "href",
    "url",
    "style",
    "class",
    "cssId",
    "data",
    "attr",
    "require",
    "unicode",
    "mmlToken",
    "mmlmi",
    "mmlmo",
    "mmlmn",
    "html",
    "htmlClass",
    "htmlStyle",
    "htmlId",
    "htmlData",
    "includegraphics",
    "img",
    "def",
    "edef",
    "gdef",
    "xdef",
    "let",
    "futurelet",
    "newcommand",
    "renewcommand",
    "providecommand",
    "DeclareRobustCommand",
    "newenvironment",
    "renewenvironment",
    "csname",
    "expandafter",
    "string",
    "catcode",
    "input",
    "include",
    "char",
)
_UNSAFE_TEX = re.compile(
    r"\\(?:" + "|".join(_DENIED_MACROS) + r")(?![a-zA-Z])"
    # Whatever a macro does with them, these in an argument point at somewhere else.
    r"|url\s*\(|javascript\s*:|vbscript\s*:|data\s*:|https?\s*:|//"
    # A character reference would be decoded by an HTML-aware renderer before MathJax reads the TeX.
    r"|&#|&[a-zA-Z][a-zA-Z0-9]*;"
    # \bbox's options are CSS-like: no functions, no escapes.
    r"|\\bbox\s*\[[^\]]*[(\\]",
    re.IGNORECASE,
)


def unsafe_tex(tex: str) -> bool:
    """True if ``tex`` holds a macro that could make MathJax load a resource, link, style or label the
    page (or build such a macro): then it is shown as plain code text, never typeset."""
    return _UNSAFE_TEX.search(tex) is not None


class _Finder:
    """Memoised ``src.find(needle, pos)``: a later search from inside an earlier one's span is free."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, str], tuple[str, int, int]] = {}

    def find(self, src: str, needle: str, pos: int) -> int:
        key = (id(src), needle)
        last = self._last.get(key)
        if last is not None and last[0] is src and last[1] <= pos and (last[2] == -1 or last[2] >= pos):
            return last[2]
        found = src.find(needle, pos)
        self._last[key] = (src, pos, found)
        return found

    def blank_after(self, src: str, pos: int) -> int:
        """Start of the first blank line after ``pos`` (``len(src)`` if none)."""
        key = (id(src), "\n\n")
        last = self._last.get(key)
        if last is not None and last[0] is src and last[1] <= pos <= last[2]:
            return last[2]
        match = _BLANK_LINE.search(src, pos)
        found = match.start() if match else len(src)
        self._last[key] = (src, pos, found)
        return found


def _finder(env: Any) -> _Finder:
    finder: Optional[_Finder] = env.get("_math_finder") if isinstance(env, dict) else None
    if finder is None:
        finder = _Finder()
        if isinstance(env, dict):
            env["_math_finder"] = finder
    return finder


def _inline_rule(opener: str, closer: str, kind: str) -> Any:
    def rule(state: Any, silent: bool) -> bool:
        src: str = state.src
        pos: int = state.pos
        if not src.startswith(opener, pos):
            return False
        start = pos + len(opener)
        end = _finder(state.env).find(src, closer, start)
        if end == -1 or end + len(closer) > state.posMax or not src[start:end].strip():
            return False
        if not silent:
            token = state.push(kind, "math", 0)
            token.content = src[start:end]
            token.markup = opener
        state.pos = end + len(closer)
        return True

    return rule


def _block_rule(opener_for: Any, kind: str) -> Any:
    """A block of math that starts a line with an opener and ends on the line holding its closer.

    ``opener_for(line)`` returns ``(opener, closer)`` when the line starts such a block.
    """

    def rule(state: Any, start_line: int, end_line: int, silent: bool) -> bool:
        if state.is_code_block(start_line):
            return False
        begin = state.bMarks[start_line] + state.tShift[start_line]
        first = state.src[begin : state.eMarks[start_line]]
        found = opener_for(first)
        if found is None:
            return False
        opener, closer = found
        finder = _finder(state.env)
        close = finder.find(state.src, closer, begin + len(opener))
        # Cheap refusals first: no closer at all, or only after the paragraph ends.
        if close == -1 or close > finder.blank_after(state.src, begin):
            return False
        line = start_line
        while line < end_line and state.eMarks[line] < close:
            line += 1
            if line < end_line and (state.isEmpty(line) or state.sCount[line] < state.blkIndent):
                return False
        if line >= end_line or close < state.bMarks[line] + state.tShift[line]:
            return False  # the closer sits in another container's lines (or their prefixes)
        if state.src[close + len(closer) : state.eMarks[line]].strip():
            return False  # text after the closer: not a block, the inline rules will read it
        if silent:
            return True
        lines = state.getLines(start_line, line + 1, state.blkIndent, False)
        head = lines.find(opener)
        tail = lines.rfind(closer)
        token = state.push(kind, "math", 0)
        token.block = True
        if kind == "math_env":
            token.content = lines[head : tail + len(closer)].strip()
        else:
            token.content = lines[head + len(opener) : tail].strip()
        token.markup = opener
        token.map = [start_line, line + 1]
        state.line = line + 1
        return True

    return rule


def _bracket_opener(line: str) -> Optional[tuple[str, str]]:
    return ("\\[", "\\]") if line.startswith("\\[") else None


def _env_opener(line: str) -> Optional[tuple[str, str]]:
    match = _ENV_OPEN.match(line)
    if match is None:
        return None
    return match.group(0), "\\end{" + match.group(1) + "}"


def _dollar_opener(line: str) -> Optional[tuple[str, str]]:
    return ("$$", "$$") if line.startswith("$$") else None


def block_opener(line: str) -> Optional[tuple[str, str]]:
    """The (opener, closer) of the display-math block a line's text (after its indentation) would open,
    in the order the block rules try them, or None: what :mod:`._blockcut` follows while cutting."""
    return _dollar_opener(line) or _bracket_opener(line) or _env_opener(line)


_INTERRUPTS = {"alt": ["paragraph", "reference", "blockquote", "list"]}


def math_plugin(md: Any) -> None:
    """Add the math rules to a MarkdownIt instance (render rules are the caller's)."""
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    # allow_space/allow_digits False: pandoc's rule, which keeps "$5 and $10" as money.
    dollarmath_plugin(
        md,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    # dollarmath's own block rule cannot interrupt a paragraph and scans to the end of the paragraph
    # for every "$$" line without a closer; this one can, and does not.
    md.block.ruler.at("math_block", _block_rule(_dollar_opener, "math_block"), _INTERRUPTS)
    md.inline.ruler.before("escape", "math_paren", _inline_rule("\\(", "\\)", "math_inline"))
    md.inline.ruler.before("escape", "math_bracket", _inline_rule("\\[", "\\]", "math_inline_double"))
    md.block.ruler.before(
        "fence", "math_bracket_block", _block_rule(_bracket_opener, "math_block"), _INTERRUPTS
    )
    md.block.ruler.before("fence", "math_env", _block_rule(_env_opener, "math_env"), _INTERRUPTS)
