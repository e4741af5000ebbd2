"""Showing a reply while it streams, and leaving a normal output behind when it ends.

Views share one small interface (``on_delta`` per delta, ``refresh`` at most every update interval,
``finish`` once):

* :class:`~._live.LiveView` (Jupyter frontends; also under its old names ``WidgetView`` and
  ``MarkdownView``): plain display outputs updated in place, each finished Markdown block sent once.
* :class:`TextView` (terminal IPython, in :mod:`._terminal`): text to stdout as it arrives.

When a reply ends (also on error or interrupt) the live view is replaced in place by a normal
``text/html`` + ``text/markdown`` + ``text/plain`` output, so a saved notebook, nbconvert, GitHub and
any frontend show the answer without a kernel; :class:`Extras` is the cell's log of outputs that makes
that replacement keep everything else the cell showed.

A view fed from another thread (``%%chat --bg``) is given an :class:`Outlet`: then every display message
goes through it, with its cell's parent header.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Optional, Protocol

from . import _layout as layout
from ._live import LiveView, Outlet, OutputLog
from ._models import Delta, Reply
from ._render import escape, safe_markdown, tool_call_markdown
from ._terminal import TextView

__all__ = [
    "Extras",
    "FinalParts",
    "LiveView",
    "MarkdownView",
    "Outlet",
    "OutputLog",
    "TextView",
    "View",
    "WidgetView",
    "final_bundle",
    "final_parts",
    "images_bundle",
    "line_bundle",
]

_MUTED = layout.MUTED

# The names the magic knows the live view by; one view serves both settings now (no widgets needed).
WidgetView = LiveView
MarkdownView = LiveView


class View(Protocol):
    def on_delta(self, delta: Delta) -> None: ...

    def refresh(self, status: str) -> Optional[int]:
        """Show the reply so far; returns the display messages it sent, if it counts them (the turn paces
        refreshes by them), else None."""
        ...

    def finish(self, reply: Reply, status: str) -> None: ...


def line_bundle(text: str) -> dict[str, str]:
    """A small muted line (tool calls, notes) as a display bundle."""
    return {"text/plain": text, "text/html": layout.frame(layout.muted_line(text))}


def images_bundle(images: list[Any]) -> dict[str, str]:
    """Thumbnails of the images sent with a question, with their labels."""
    cells = []
    for image in images:
        thumb = image.thumbnail or ""
        # Only our own thumbnail data: URLs are put in src; the label is escaped text.
        img = (
            f'<img src="{escape(thumb)}" style="max-height: 96px; max-width: 160px;">'
            if thumb.startswith("data:image/")
            else ""
        )
        cells.append(
            f'<figure style="display:inline-block; margin: 4px;">{img}'
            f'<figcaption style="font-size: 0.8em;">{escape(image.label)}</figcaption></figure>'
        )
    labels = ", ".join(image.label for image in images)
    return {"text/plain": f"[images: {labels}]", "text/html": "".join(cells)}


class FinalParts(NamedTuple):
    """A finished reply's output in pieces: the HTML pieces in order (``head``: the reasoning line;
    ``answer``: the answer's blocks; ``after``: tool calls, status and error lines), its Markdown and its
    plain text."""

    head: list[str]
    answer: list[str]
    after: list[str]
    markdown: str
    plain: str


def final_parts(
    reply: Reply,
    status: str,
    *,
    blocks: Optional[Sequence[str]] = None,
    markdown: Optional[str] = None,
) -> FinalParts:
    """:func:`final_bundle` in pieces, for a view that lays them out over several outputs."""
    text = reply.text
    md_parts: list[str] = []
    head: list[str] = []
    answer: list[str] = []
    after: list[str] = []
    if reply.reasoning:
        head.append(layout.reasoning_line(len(reply.reasoning), full=reply.reasoning))
        quoted = "\n".join("> " + line for line in safe_markdown(reply.reasoning).split("\n"))
        md_parts.append(f"> **reasoning**\n>\n{quoted}\n")
    if text:
        if blocks is None:
            blocks, markdown = layout.answer_pieces(text)
        md_parts.append(markdown if markdown is not None else safe_markdown(text))
        answer.extend(blocks)
    if reply.tool_calls:
        for call in reply.tool_calls:
            fn = call.get("function", {})
            line = f"tool call: {fn.get('name', '?')}({fn.get('arguments', '')})"
            # Inert whatever the name and arguments hold (blank lines, backticks): built, not quoted.
            md_parts.append(tool_call_markdown(str(fn.get("name", "?")), str(fn.get("arguments", ""))))
            after.append(layout.block(f"<code>{escape(line)}</code>", "shenma-tool-call"))
    md_parts.append(f"*{_md_inline(status)}*")
    after.append(layout.status_line(status))
    # Ctrl-C: the status line says "interrupted" and the cell's one error line says what was kept.
    error = None if _interrupted(reply) else reply.error
    if error:
        md_parts.append(f"**⚠ {_md_inline(error)}**")
        after.append(layout.error_line(error))
    plain = text
    if reply.error:
        plain = f"{text}\n\n⚠ {reply.error}" if text else f"⚠ {reply.error}"
    return FinalParts(head, answer, after, "\n\n".join(md_parts), plain)


def final_bundle(
    reply: Reply,
    status: str,
    *,
    blocks: Optional[Sequence[str]] = None,
    markdown: Optional[str] = None,
) -> dict[str, str]:
    """The output a finished reply leaves in the notebook: the answer as Markdown, HTML and plain text.

    The HTML is laid out piece by piece as the live view shows it (:mod:`._layout`); ``blocks`` are the
    answer's pieces a live view already rendered and ``markdown`` its safe Markdown copy made from the
    same parses (else each block is parsed here, once for both).
    """
    parts = final_parts(reply, status, blocks=blocks, markdown=markdown)
    return {
        "text/plain": parts.plain,
        "text/markdown": parts.markdown,
        "text/html": layout.frame("".join(parts.head + parts.answer + parts.after)),
    }


def _interrupted(reply: Reply) -> bool:
    return bool(reply.error and reply.error.startswith("interrupted (Ctrl-C)"))


def _md_inline(text: str) -> str:
    """Text safe to put inside *emphasis* in Markdown: no markup, no HTML."""
    for ch in "\\`*_[]<>#|~$":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


class Extras:
    """The outputs of one ``%%chat`` cell around its replies: image thumbnails, tool-call lines, yes/no
    questions; and the cell's :class:`OutputLog`, so a live view can swap its outputs for its final one
    and keep everything else the cell showed (in order).

    Everything a cell shows in a Jupyter frontend should go through :meth:`show` (or be run inside
    :meth:`capturing`): what does not is lost when a later reply of the same cell ends.
    """

    def __init__(self, *, rich: bool, outlet: Optional[Outlet] = None) -> None:
        self._rich = rich or outlet is not None  # a Jupyter frontend (rich outputs), or a terminal
        self._outlet = outlet  # the cell's outlet, for a cell fed from another thread (%%chat --bg)
        # In order: ("display", bundle, metadata) or ("stdout"/"stderr", text, {}).
        self._shown: list[tuple[str, Any, dict[str, Any]]] = []

    def show(self, bundle: dict[str, Any], metadata: Optional[dict[str, Any]] = None) -> None:
        """Display a mime bundle in the cell and remember it."""
        self._emit("display", bundle, metadata or {})
        self._shown.append(("display", bundle, metadata or {}))

    def write(self, name: str, text: str) -> None:
        """Write to the cell's ``stdout`` or ``stderr`` and remember it."""
        self._emit(name, text, {})
        self._shown.append((name, text, {}))

    def _emit(self, kind: str, payload: Any, metadata: dict[str, Any]) -> None:
        if self._outlet is not None:
            # An outlet shows display outputs only; a print from a tool becomes a plain-text output.
            self._outlet.display(payload if kind == "display" else {"text/plain": payload})
        elif kind == "display":
            from IPython.display import display

            display(payload, raw=True, metadata=metadata or None)
        else:
            stream = sys.stdout if kind == "stdout" else sys.stderr
            stream.write(payload)
            stream.flush()

    def view(self, **options: Any) -> View:
        """The live view for one reply in this cell (in a terminal, a :class:`TextView`)."""
        if not self._rich:
            return TextView()
        return LiveView(outputs=self, outlet=self._outlet, **options)

    def output_count(self) -> int:
        """:class:`OutputLog`: the outputs shown so far (prints in a row to one stream are one output)."""
        count, last = 0, ""
        for kind, _, _ in self._shown:
            if kind == "display" or kind != last:
                count += 1
            last = kind
        return count

    def replace_live(self, bundle: dict[str, str]) -> bool:
        """:class:`OutputLog`: the cell shows again what it showed before the live view, then ``bundle``."""
        if self._outlet is not None:
            clear = getattr(self._outlet, "clear", None)  # an outlet that can send clear_output
            if clear is None:
                return False
            clear(wait=True)
        else:
            from IPython.display import clear_output

            # wait=True: the frontend clears when the next output arrives, in the same step: no blink.
            clear_output(wait=True)
        for kind, payload, metadata in self._shown:
            self._emit(kind, payload, metadata)
        self.show(bundle)
        return True

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Run code (a tool) whose prints and displays must survive the end of a later reply: they are
        captured, then shown through :meth:`show` (a terminal shows them as they come)."""
        if not self._rich:
            yield
            return
        from IPython.utils.capture import capture_output

        with capture_output() as captured:
            yield
        # Prints first, then displays: the order between the two is not kept by IPython's capture.
        for name, text in (("stdout", captured.stdout), ("stderr", captured.stderr)):
            if text:
                self.write(name, text)
        for output in captured.outputs:
            self.show(dict(output.data), dict(output.metadata or {}))

    def line(self, text: str) -> None:
        if self._rich:
            self.show(line_bundle(text))
        else:
            print(f"[{text}]")

    def images(self, images: list[Any]) -> None:
        if not self._rich:
            for image in images:
                print(f"[image: {image.label}]")
            return
        self.show(images_bundle(images))

    def ask(self, question: str) -> bool:
        try:
            answer = input(question)
        except Exception as exc:  # no stdin (a headless run), ipykernel's StdinNotImplementedError...
            self.line(f"cannot ask here ({type(exc).__name__}): register the tool as trusted to let it run")
            return False
        return answer.strip().lower() in ("y", "yes", "是", "好")


def _stderr_bundle(text: str) -> dict[str, str]:
    return {
        "text/plain": text,
        "text/html": f'<pre style="color: var(--jp-error-color1, #c62828);">{escape(text)}</pre>',
    }
