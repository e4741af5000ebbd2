"""Showing a reply while it streams, and leaving a normal output behind when it ends.

Three views share one small interface (``on_delta`` per delta, ``refresh`` at most every update
interval, ``finish`` once):

* :class:`WidgetView` (Jupyter frontends): finished Markdown blocks are appended once to an ``Output``
  widget; only the growing tail and the status line are re-sent, so the traffic to the browser stays
  proportional to the answer, not to the answer times the number of updates.
* :class:`MarkdownView`: the same without ipywidgets, re-sending the rendered answer at a slower rate.
* :class:`TextView` (terminal IPython): plain text to stdout as it arrives.

When a reply ends (also on error or interrupt) the live view is replaced in place by a normal
``text/html`` + ``text/markdown`` + ``text/plain`` output, so a saved notebook, nbconvert, GitHub and
any frontend show the answer without a kernel or widget state.

A view fed from another thread (``%%chat --bg``) is given an :class:`Outlet`: then every display message
goes through it (with its cell's parent header) and the widget view appends finished blocks as child
widgets (comm messages, which frontends route by comm id) instead of capturing them into an ``Output``
widget, whose capture follows the kernel's idea of the current cell.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, Protocol, TextIO

from ._models import Delta, NoticeDelta, ReasoningDelta, Reply, TextDelta
from ._render import BlockSplitter, escape, render_html, safe_markdown

__all__ = [
    "Extras",
    "MarkdownView",
    "Outlet",
    "TextView",
    "View",
    "WidgetView",
    "final_bundle",
    "images_bundle",
    "line_bundle",
]

_MUTED = "color: var(--jp-ui-font-color2, #777); font-size: 0.85em;"
_ERROR = "color: var(--jp-error-color1, #c62828);"
_CONTENT = "line-height: var(--jp-content-line-height, 1.6); font-size: var(--jp-content-font-size1, 14px);"
_REASONING_PREVIEW = 600
_CHILD_INTERVAL = 0.02  # seconds of wait per child already shown, for views fed from another thread


class View(Protocol):
    def on_delta(self, delta: Delta) -> None: ...

    def refresh(self, status: str) -> None: ...

    def finish(self, reply: Reply, status: str) -> None: ...


class Outlet(Protocol):
    """Where a view's display messages go when it is not fed from its cell's own thread."""

    def display(self, bundle: dict[str, Any]) -> str:
        """Show a new output in the cell; returns its display id."""
        ...

    def update(self, display_id: str, bundle: dict[str, Any]) -> None:
        """Replace the output shown with ``display_id``."""
        ...


def line_bundle(text: str) -> dict[str, str]:
    """A small muted line (tool calls, notes) as a display bundle."""
    return {"text/plain": text, "text/html": f'<div style="{_MUTED}">{escape(text)}</div>'}


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


def final_bundle(reply: Reply, status: str) -> dict[str, str]:
    """The output a finished reply leaves in the notebook: the answer as Markdown, HTML and plain text."""
    text = reply.text
    md_parts: list[str] = []
    html_parts: list[str] = []
    if reply.reasoning:
        html_parts.append(
            f'<details style="{_MUTED}"><summary>reasoning ({len(reply.reasoning)} chars)</summary>'
            f'<div style="white-space: pre-wrap;">{escape(reply.reasoning)}</div></details>'
        )
        quoted = "\n".join("> " + line for line in safe_markdown(reply.reasoning).split("\n"))
        md_parts.append(f"> **reasoning**\n>\n{quoted}\n")
    if text:
        md_parts.append(safe_markdown(text))
        html_parts.append(render_html(text))
    if reply.tool_calls:
        for call in reply.tool_calls:
            fn = call.get("function", {})
            line = f"tool call: {fn.get('name', '?')}({fn.get('arguments', '')})"
            md_parts.append(f"`{line.replace('`', '')}`")
            html_parts.append(f"<div><code>{escape(line)}</code></div>")
    md_parts.append(f"*{_md_inline(status)}*")
    html_parts.append(f'<div style="{_MUTED}">{escape(status)}</div>')
    if reply.error:
        md_parts.append(f"**⚠ {_md_inline(reply.error)}**")
        html_parts.append(f'<div style="{_ERROR}">⚠ {escape(reply.error)}</div>')
    plain = text
    if reply.error:
        plain = f"{text}\n\n⚠ {reply.error}" if text else f"⚠ {reply.error}"
    return {
        "text/plain": plain,
        "text/markdown": "\n\n".join(md_parts),
        "text/html": "\n".join(html_parts),
    }


def _md_inline(text: str) -> str:
    """Text safe to put inside *emphasis* in Markdown: no markup, no HTML."""
    for ch in "\\`*_[]<>#|~$":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


class WidgetView:
    """The live view for Jupyter frontends, built from ipywidgets (imported only when a reply is shown).

    Finished blocks are rendered once and appended to an ``Output`` widget at most every
    ``block_interval`` seconds (until then they show in the live HTML with the tail), so one refresh costs
    one or two messages whatever the shape of the answer.
    """

    def __init__(
        self,
        *,
        waiting: str = "waiting for the first token…",
        block_interval: float = 0.25,
        outlet: Optional[Outlet] = None,
    ) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self._widgets = widgets
        self._display = display
        self._outlet = outlet
        self._splitter = BlockSplitter()
        self._reasoning: list[str] = []
        self._reasoning_len = 0
        self._reasoning_shown = 0
        self._notice = ""
        self._pending_html: list[str] = []  # finished blocks, rendered, not yet appended to the Output
        self._sent_live: Optional[str] = None
        self._block_interval = block_interval
        self._last_append = float("-inf")
        self._capturing = False
        self._reason = widgets.HTML(layout=widgets.Layout(display="none"))
        # From another thread, blocks become child widgets: an Output widget's capture would follow
        # whichever cell the kernel runs now.
        self._blocks: Any = widgets.Output() if outlet is None else widgets.VBox()
        self._live = widgets.HTML(value=f'<div style="{_MUTED}">{escape(waiting)}</div>')
        self._box = widgets.VBox([self._reason, self._blocks, self._live])
        self._handle: Any = None
        self._display_id = ""
        if outlet is None:
            self._handle = display(self._box, display_id=True)
        else:
            self._display_id = outlet.display(self._box._repr_mimebundle_())

    def on_delta(self, delta: Delta) -> None:
        if isinstance(delta, TextDelta):
            for block in self._splitter.feed(delta.text):
                self._pending_html.append(render_html(block))
        elif isinstance(delta, ReasoningDelta):
            self._reasoning.append(delta.text)
            self._reasoning_len += len(delta.text)
        elif isinstance(delta, NoticeDelta):
            self._notice = delta.message

    def refresh(self, status: str) -> None:
        if self._reasoning_len != self._reasoning_shown:
            self._show_reasoning()
        now = time.monotonic()
        if self._outlet is not None:
            # Each child widget added re-sends the list of children: the wait between appends grows with
            # their number, so a long reply costs about sqrt(duration) children, not one per interval.
            wait = max(self._block_interval, _CHILD_INTERVAL * len(self._blocks.children))
            if self._pending_html and now - self._last_append >= wait:
                block = "".join(self._pending_html)
                child = self._widgets.HTML(
                    value=f'<div class="jp-RenderedHTMLCommon" style="{_CONTENT}">{block}</div>'
                )
                self._blocks.children = (*self._blocks.children, child)
                self._pending_html = []
                self._last_append = now
        elif self._pending_html and now - self._last_append >= self._block_interval:
            if not self._capturing:
                # Capture stays on for the rest of the reply: switching it per append costs two messages.
                self._blocks.__enter__()
                self._capturing = True
            # Each finished block is sent exactly once, as an output appended to the Output widget.
            # A plain <div> per append keeps JupyterLab's last-child margin rule from squeezing blocks.
            self._display({"text/html": f"<div>{''.join(self._pending_html)}</div>"}, raw=True)
            self._pending_html = []
            self._last_append = now
        notice = f'<div style="{_MUTED}">{escape(self._notice)}</div>' if self._notice else ""
        tail = self._splitter.tail
        # The same class and line height as the final output, so nothing jumps when the reply ends.
        body = "".join(self._pending_html) + (render_html(tail) if tail else "")
        value = (
            f'<div class="jp-RenderedHTMLCommon" style="{_CONTENT}">{body}</div>'
            + notice
            + f'<div style="{_MUTED}">{escape(status)}</div>'
        )
        if value != self._sent_live:
            self._live.value = value
            self._sent_live = value

    def _show_reasoning(self) -> None:
        if len(self._reasoning) > 1:
            self._reasoning = ["".join(self._reasoning)]
        text = self._reasoning[0] if self._reasoning else ""
        preview = text[-_REASONING_PREVIEW:]
        lead = "…" if len(text) > len(preview) else ""
        self._reason.value = (
            f'<div style="{_MUTED} white-space: pre-wrap; border-left: 3px solid #ccc; padding-left: 8px;">'
            f"<b>reasoning</b> ({len(text)} chars)<br>{lead}{escape(preview)}</div>"
        )
        self._reason.layout.display = None
        self._reasoning_shown = self._reasoning_len

    def finish(self, reply: Reply, status: str) -> None:
        if self._capturing:
            self._capturing = False
            self._blocks.__exit__(None, None, None)
        if self._outlet is not None:
            self._outlet.update(self._display_id, final_bundle(reply, status))
        else:
            self._handle.update(final_bundle(reply, status), raw=True)
        # Empty the widgets before closing them: a frontend or nbclient that saves widget state would
        # otherwise keep a second copy of the answer in the notebook's metadata. The kernel's copy of
        # ``outputs`` is always empty (the frontend fills its own), so the state is sent explicitly.
        children: tuple[Any, ...] = ()
        if self._outlet is None:
            self._blocks.outputs = ()
            self._blocks.send_state("outputs")
        else:
            children = tuple(self._blocks.children)
            for child in children:
                child.value = ""
        self._live.value = ""
        self._reason.value = ""
        for widget in (*children, self._reason, self._blocks, self._live, self._box):
            # Each widget owns a layout (and maybe a style) widget with a comm of its own.
            for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
                if part is not None:
                    part.close()
            widget.close()


class MarkdownView:
    """A live view for frontends without ipywidgets: the rendered answer re-sent at a slower rate."""

    def __init__(
        self, *, waiting: str = "waiting for the first token…", outlet: Optional[Outlet] = None
    ) -> None:
        self._text: list[str] = []
        first = {"text/html": f'<div style="{_MUTED}">{escape(waiting)}</div>', "text/plain": waiting}
        self._outlet = outlet
        self._display_id = ""
        self._handle: Any = None
        if outlet is not None:
            self._display_id = outlet.display(first)
        else:
            from IPython.display import display

            self._handle = display(first, raw=True, display_id=True)

    def _update(self, bundle: dict[str, str]) -> None:
        if self._outlet is not None:
            self._outlet.update(self._display_id, bundle)
        else:
            self._handle.update(bundle, raw=True)

    def on_delta(self, delta: Delta) -> None:
        if isinstance(delta, TextDelta):
            self._text.append(delta.text)

    def refresh(self, status: str) -> None:
        text = "".join(self._text)
        self._text = [text]
        self._update(
            {
                "text/html": render_html(text) + f'<div style="{_MUTED}">{escape(status)}</div>',
                "text/plain": text,
            }
        )

    def finish(self, reply: Reply, status: str) -> None:
        self._update(final_bundle(reply, status))


class TextView:
    """Terminal IPython: the answer goes to stdout as it arrives, then the status line."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._out = stream or sys.stdout
        self._tty = bool(getattr(self._out, "isatty", lambda: False)())
        self._in_reasoning = False
        self._wrote = False
        self._ends_with_newline = True

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self._tty else text

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._out.flush()
            self._wrote = True
            self._ends_with_newline = text.endswith("\n")

    def on_delta(self, delta: Delta) -> None:
        if isinstance(delta, ReasoningDelta):
            if not self._in_reasoning:
                self._in_reasoning = True
                self._write(self._dim("[reasoning] "))
            self._write(self._dim(delta.text))
        elif isinstance(delta, TextDelta):
            if self._in_reasoning:
                self._in_reasoning = False
                self._write("\n\n")
            self._write(delta.text)
        elif isinstance(delta, NoticeDelta):
            self._write(("" if self._ends_with_newline else "\n") + self._dim(f"[{delta.message}]") + "\n")

    def refresh(self, status: str) -> None:
        pass

    def finish(self, reply: Reply, status: str) -> None:
        lead = "" if self._ends_with_newline or not self._wrote else "\n"
        self._write(lead + self._dim(f"[{status}]") + "\n")
        if reply.error:
            self._write(f"⚠ {reply.error}\n")


class Extras:
    """Small one-off outputs around a reply: image thumbnails, tool-call lines, yes/no questions."""

    def __init__(self, *, rich: bool) -> None:
        self._rich = rich  # a Jupyter frontend (rich outputs), or a terminal (plain lines)

    def line(self, text: str) -> None:
        if self._rich:
            from IPython.display import display

            display(line_bundle(text), raw=True)
        else:
            print(f"[{text}]")

    def images(self, images: list[Any]) -> None:
        if not self._rich:
            for image in images:
                print(f"[image: {image.label}]")
            return
        from IPython.display import display

        display(images_bundle(images), raw=True)

    def ask(self, question: str) -> bool:
        try:
            answer = input(question)
        except Exception as exc:  # no stdin (a headless run), ipykernel's StdinNotImplementedError...
            self.line(f"cannot ask here ({type(exc).__name__}): register the tool as trusted to let it run")
            return False
        return answer.strip().lower() in ("y", "yes", "是", "好")
