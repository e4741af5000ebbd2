"""The live view in Jupyter frontends: plain ``text/html`` outputs, updated in place, then one final output.

No widgets. A widget opens comms, and JupyterLab 4.6 (``commsOverSubshells``, default per comm target)
answers the first comm of a target by sending ``create_subshell_request`` on the control channel; the
kernel's busy/idle status for that request is taken as the kernel's state, so the status bar said Idle
while the cell still ran. And the ``Output`` widget's frontend sends its outputs back to the kernel each
time one is appended: those still in flight when the kernel closes the widget reach a closed comm, and
ipykernel's "No such comm" warning (a stderr stream no cell owns) lands in JupyterLab's log console.
Display outputs have neither problem, render with the frontend's own HTML renderer (the same one, with
the same stylesheet and MathJax, as the final output) and work in any frontend that keeps display ids
(JupyterLab, Notebook 7, VS Code, nbclient); each also carries a text copy for text-only frontends.

The outputs of a reply, top to bottom: a head (a style rule, the folded reasoning line), the finished
blocks, and at the bottom the tail output (the unfinished block, a notice, the status line). A refresh
re-sends only the tail output; when blocks finish, a new tail output is added below and the old one is
given the finished blocks: each block is sent once.

JupyterLab and Notebook 7 show at most 50 outputs of a cell (``maxNumberOutputs``; the rest wait behind
"Show more outputs", so a live view there would stop moving), and that scheme adds an output whenever
blocks finish. So a reply uses at most :data:`OUTPUT_BUDGET` outputs: the output just above the tail,
the *waiting* one, takes the blocks finished since it was added (re-sent when more finish) until it is
*sealed* and a new one is made as above. While more than half the outputs are free that happens at
every refresh that finishes blocks (each block is sent once); then only once it holds
:func:`seal_size` bytes, enough that the outputs left last for an answer as long again (a few
paragraphs at first; each of its blocks is re-sent a few times), up to :data:`_HOLD_MAX`. With no
output left, the waiting output shows the newest finished blocks within :data:`_WINDOW` bytes and a
line saying how many more the final output shows. So the traffic stays linear in the answer whatever
its length. A finished block moved out of the tail is shown by the output above it first; a rule there
hides the tail's preview of it meanwhile (no block is shown twice between the two messages).

What the tail shows is bounded (:meth:`BlockCutter.preview`, in characters and in rendered bytes) and
rendering it takes at most about a quarter of the time, so a refresh costs bounded bytes and CPU whatever
the reply's shape. A refresh that finishes blocks sends two messages: :meth:`LiveView.refresh` says how
many it sent, and the turn paces refreshes by them (:data:`._run.MESSAGES_PER_SECOND`).

A reply's live state (its blocks, the bounded tail, the reasoning line) is a :class:`LiveReply`, which
the comparison's columns (:mod:`._livecolumns`) use too, one per model.

At the end the reply's outputs are replaced by one final output (``clear_output(wait=True)``, the cell's
earlier outputs shown again from :class:`OutputLog`, then the final bundle). Since every piece sits in
the same frame (:mod:`._layout`) in both, the answer does not move when that happens.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any, Optional, Protocol

from . import _layout as layout
from ._blockcut import BlockCutter
from ._models import Delta, NoticeDelta, ReasoningDelta, Reply, TextDelta
from ._render import join_markdown, render_block, render_html

__all__ = ["LiveReply", "LiveView", "Outlet", "OutputLog", "display_function"]

_LATEST_REASONING = 160  # characters of the latest reasoning shown on its folded line
OUTPUT_BUDGET = 40  # outputs one live reply may use: 50 are shown a cell, this leaves room for others
CELL_OUTPUTS = 50  # what JupyterLab and Notebook 7 show of a cell (maxNumberOutputs) before trimming
_FEWEST = 4  # outputs a live view needs at the least: the head, a sealed one, the waiting one, the tail
_HOLD_MIN = 1_200  # bytes of finished blocks the waiting output gathers, once outputs run short...
_HOLD_MAX = 4_000  # ... and at most (it is re-sent whenever blocks finish)
_WINDOW = 2_000  # bytes of the newest blocks it shows when no output is left


def seal_size(shown: int, left: int) -> int:
    """Bytes of finished blocks the waiting output should hold before it is sealed, ``shown`` bytes of
    blocks into the answer with ``left`` outputs free: enough that they last for as much again."""
    return min(_HOLD_MAX, max(_HOLD_MIN, shown // max(left, 1)))


def newest_from(blocks: Sequence[str], limit: int, lowest: int = 0) -> int:
    """Where the newest of ``blocks`` that fit in ``limit`` characters start (never before ``lowest``):
    what a view out of outputs still shows live."""
    start, size = len(blocks), 0
    while start > lowest and size + len(blocks[start - 1]) <= limit:
        start -= 1
        size += len(blocks[start])
    return start


_views = itertools.count()  # a number for each live view: its blocks' marks never match another's


class OutputLog(Protocol):
    """The cell's outputs so far, so a live view can replace its own outputs by its final one."""

    def replace_live(self, bundle: dict[str, str]) -> bool:
        """Clear the cell's output, show the earlier outputs again, then ``bundle`` (and remember it).
        False if this cell's output cannot be cleared (then nothing was done)."""

    def output_count(self) -> int:
        """How many outputs the cell shows so far (a frontend joins a run of prints into one)."""


class Outlet(Protocol):
    """Where a view's display messages go when it is not fed from its cell's own thread."""

    def display(self, bundle: dict[str, Any]) -> str:
        """Show a new output in the cell; returns its display id."""
        ...

    def update(self, display_id: str, bundle: dict[str, Any]) -> None:
        """Replace the output shown with ``display_id``."""
        ...


class _OutletHandle:
    """A display handle for an output shown through an :class:`Outlet`."""

    def __init__(self, outlet: Outlet, bundle: dict[str, Any]) -> None:
        self._outlet = outlet
        self._id = outlet.display(bundle)

    def update(self, bundle: dict[str, Any], raw: bool = True) -> None:
        self._outlet.update(self._id, bundle)


class LiveReply:
    """One streaming reply's live state, shared by the views that show replies: its text cut into
    blocks (each rendered once, kept in order), the bounded tail a refresh shows, the folded reasoning
    line and the latest notice.

    ``tail_limit`` bounds the characters of the unfinished block that a refresh renders, ``tail_bytes``
    the HTML it sends (highlighted code renders to about ten times its size, so less of it is shown).
    """

    def __init__(self, *, tail_limit: int = 3000, tail_bytes: int = 12_000) -> None:
        self._tail_limit = tail_limit
        self._tail_bytes = tail_bytes
        self._html_per_char = 1.0  # what the last preview rendered to, bytes of HTML per character
        self._render_cost = 0.0  # seconds the last preview took to render
        self._rendered_at = float("-inf")
        self._cutter = BlockCutter()
        self._pending: list[str] = []  # answer text not yet given to the cutter
        self._fed = 0  # answer characters received
        self.blocks: list[str] = []  # every finished block, rendered, in order (reused at the end)
        self.sources: list[str] = []  # the Markdown of each of them
        self._markdown: list[Optional[str]] = []  # and its safe Markdown copy, from the same parse
        self._reasoning: list[str] = []
        self._reasoning_len = 0
        self._reasoning_shown = 0
        self.notice = ""

    def on_delta(self, delta: Delta) -> None:
        if isinstance(delta, TextDelta):
            self._pending.append(delta.text)
            self._fed += len(delta.text)
        elif isinstance(delta, ReasoningDelta):
            self._reasoning.append(delta.text)
            self._reasoning_len += len(delta.text)
        elif isinstance(delta, NoticeDelta):
            self.notice = delta.message

    def take_finished(self) -> list[str]:
        """The blocks finished since the last call, rendered (also appended to :attr:`blocks`)."""
        return self._add(self._take_pending())

    def _take_pending(self) -> list[str]:
        if not self._pending:
            return []
        text = "".join(self._pending)
        self._pending = []
        return self._cutter.feed(text)

    def _add(self, sources: list[str]) -> list[str]:
        # Each block parsed once, for its HTML and its part of the text/markdown copy (the end of a reply
        # parsed the whole answer a second time for that copy).
        rendered = [render_block(source) for source in sources]
        finished = [layout.block(r.html) for r in rendered]
        self.blocks.extend(finished)
        self.sources.extend(sources)
        self._markdown.extend(r.markdown for r in rendered)
        return finished

    def too_soon(self) -> bool:
        """Whether rendering the tail now would take more than about a quarter of the time (a big tail)."""
        return time.monotonic() - self._rendered_at < 4 * self._render_cost

    def tail_parts(self) -> tuple[list[str], str]:
        """The unfinished block (bounded) and the notice, as pieces of HTML; and their text."""
        start = time.monotonic()
        limit = max(200, min(self._tail_limit, int(self._tail_bytes / self._html_per_char)))
        preview = self._cutter.preview(limit)
        parts = []
        text = ""
        if preview.skipped:
            parts.append(layout.skipped_note(preview.skipped))
        if preview.markdown.strip():
            rendered = render_html(preview.markdown)
            self._html_per_char = max(1.0, len(rendered) / len(preview.markdown))
            parts.append(layout.block(rendered))
            text = preview.markdown
        elif preview.plain:
            parts.append(
                layout.block(
                    layout.escape(preview.plain), style=" white-space: pre-wrap; overflow-wrap: anywhere;"
                )
            )
            text = preview.plain
        if preview.held:
            parts.append(layout.muted_line("(a formula is being written…)"))
        if self.notice:
            parts.append(layout.muted_line(self.notice))
        self._rendered_at = time.monotonic()
        self._render_cost = self._rendered_at - start
        return parts, text

    @property
    def reasoning_changed(self) -> bool:
        return self._reasoning_len != self._reasoning_shown

    def reasoning_line(self) -> tuple[str, str]:
        """The folded reasoning line as it stands now, and its latest words on one line."""
        if len(self._reasoning) > 1:
            self._reasoning = ["".join(self._reasoning)]
        latest = self._reasoning[0][-_LATEST_REASONING:] if self._reasoning else ""
        latest = " ".join(latest.split())  # one line
        self._reasoning_shown = self._reasoning_len
        return layout.reasoning_line(self._reasoning_len, latest=latest), latest

    def final(self, reply: Reply) -> tuple[Optional[list[str]], Optional[str]]:
        """Every block of the answer, rendered (the text is over), and the safe Markdown copy of them all
        from the same parses; (None, None) if the final output must render the answer whole instead: link
        definitions tie its blocks together, or the reply is not the text shown (never, but cheap to
        check)."""
        self._add(self._take_pending() + self._cutter.close())
        if self._cutter.references or self._fed != len(reply.text):
            return None, None
        return self.blocks, join_markdown(self._markdown)


class LiveView:
    """Shows a streaming reply in a Jupyter frontend, then leaves one ``text/html`` + ``text/markdown`` +
    ``text/plain`` output behind (see the module docstring).

    ``outputs`` is the cell's :class:`OutputLog`; without one (or if it cannot clear the cell) the final
    output goes into the last live output and the others are emptied (zero height, but they stay in the
    notebook as empty outputs). With an ``outlet`` every display message goes through it (a view fed
    from another thread). ``tail_limit`` and ``tail_bytes`` bound the tail (:class:`LiveReply`).
    ``output_budget`` is the most outputs the reply uses, and fewer if the cell already shows outputs:
    with them it stays under ``cell_outputs``, what the frontend shows of a cell. Rendering the tail
    takes at most about a quarter of the time: a refresh that comes sooner is skipped.
    """

    def __init__(
        self,
        *,
        outputs: Optional[OutputLog] = None,
        outlet: Optional[Outlet] = None,
        waiting: str = "waiting for the first token…",
        tail_limit: int = 3000,
        tail_bytes: int = 12_000,
        output_budget: int = OUTPUT_BUDGET,
        cell_outputs: int = CELL_OUTPUTS,
    ) -> None:
        self._display = display_function(outlet)
        self._outputs = outputs
        self._reply = LiveReply(tail_limit=tail_limit, tail_bytes=tail_bytes)
        self._done: list[Any] = []  # live outputs that hold their final content
        # The cell's earlier outputs (thumbnails, tool lines, an earlier round's answer) count too.
        earlier = outputs.output_count() if outputs is not None else 0
        self._budget = max(_FEWEST, min(output_budget, cell_outputs - 2 - earlier))
        self._mark = next(_views)
        self._wait: Any = None  # the waiting output (see the module docstring) and what it holds:
        self._held: list[str] = []  # its blocks, marked
        self._held_sources: list[str] = []  # their Markdown
        self._held_bytes = 0
        self._shown = 0  # bytes of the blocks in sealed outputs
        self._new_from = 0  # the number of the first block the last refresh finished
        head = {"text/html": layout.frame(layout.LIVE_STYLE), "text/plain": ""}
        self._head: Any = self._display(head, raw=True, display_id=True)
        self._sent = {
            "text/html": layout.frame(layout.status_line(waiting, live=True)),
            "text/plain": waiting,
        }
        self._tail: Any = self._display(self._sent, raw=True, display_id=True)

    def on_delta(self, delta: Delta) -> None:
        self._reply.on_delta(delta)

    def refresh(self, status: str) -> int:
        """Show what arrived since the last refresh; returns the display messages sent (the turn keeps
        them under :data:`._run.MESSAGES_PER_SECOND`)."""
        sent = 0
        if self._reply.reasoning_changed:
            self._show_reasoning()
            sent += 1
        sources = self._reply.sources
        first = len(sources)
        finished = self._reply.take_finished()
        if not finished and self._reply.too_soon():
            return sent  # a big tail: rendering it this often would cost more than a quarter of the time
        if not finished:
            tail = self._tail_bundle(status)
            if tail != self._sent:
                self._tail.update(tail, raw=True)
                sent += 1
            self._sent = tail
            return sent
        if self._short():
            # Marked for the rule of the waiting output (see _wait_bundle); with outputs to spare the
            # waiting output is never updated, so the marks would only cost bytes.
            finished = [layout.placed_block(b, self._mark, first + i) for i, b in enumerate(finished)]
        self._new_from = first
        if self._wait is None or self._seal_now():
            # The waiting output keeps what it has (sealed); a new tail output below, then the old tail
            # gets the finished blocks and waits. The old tail showed these blocks (the last perhaps in
            # part) and nothing after them (a block is finished as soon as the next one starts), so the
            # height only grows, also between the two messages.
            if self._wait is not None:
                self._done.append(self._wait)
            self._shown += self._held_bytes
            self._held, self._held_sources, self._held_bytes = [], [], 0
            self._hold(finished, sources[first:])
            tail = self._tail_bundle(status)
            new_tail = self._display(tail, raw=True, display_id=True)
            self._tail.update(self._wait_bundle(), raw=True)
            self._wait, self._tail = self._tail, new_tail
        else:
            # The waiting output shows the new blocks first (its rule hides the tail's preview of them
            # meanwhile), then the tail moves on to the next block.
            self._hold(finished, sources[first:])
            self._wait.update(self._wait_bundle(), raw=True)
            tail = self._tail_bundle(status)
            self._tail.update(tail, raw=True)
        self._sent = tail
        return sent + 2

    def _hold(self, blocks: list[str], sources: list[str]) -> None:
        self._held.extend(blocks)
        self._held_sources.extend(sources)
        self._held_bytes += sum(len(b) for b in blocks)

    def _left(self) -> int:
        return self._budget - 3 - len(self._done)  # the head, the waiting output and the tail count too

    def _short(self) -> bool:
        """Whether outputs run short: from now on the waiting output gathers blocks (see the module
        docstring)."""
        return self._left() <= self._budget // 2

    def _seal_now(self) -> bool:
        left = self._left()
        if left <= 0:
            return False  # none left: the waiting output shows the newest blocks (see _wait_bundle)
        return left > self._budget // 2 or self._held_bytes >= seal_size(self._shown + self._held_bytes, left)

    def _wait_bundle(self) -> dict[str, str]:
        """The waiting output: its blocks (out of outputs, the newest within :data:`_WINDOW` and how
        many more there are), and the rules that hide the tail's preview of them."""
        held, sources = self._held, self._held_sources
        if self._held_bytes > _WINDOW and self._left() <= 0:
            # At least one block before them is not shown (the line counts it), and the newest is.
            start = min(newest_from(held, _WINDOW, lowest=1), len(held) - 1)
            plural = "s" if start != 1 else ""
            more = f"… {start} earlier block{plural} not shown live: all of it is, when it ends"
            held, sources = [layout.muted_line(more), *held[start:]], sources[start:]
        # The tail's preview was marked as the block it would be, the first of those that just finished
        # (a few rules: a burst from a buffering proxy may finish many blocks at once).
        marks = range(self._new_from, len(self._reply.blocks))[:8] if self._short() else range(0)
        rule = "".join(layout.hide_preview(self._mark, i) for i in marks)
        return {"text/html": layout.frame(rule + "".join(held)), "text/plain": "".join(sources)}

    def _tail_bundle(self, status: str) -> dict[str, str]:
        """The tail output: the unfinished block (bounded), a notice, the status line; HTML and text."""
        parts, text = self._reply.tail_parts()
        if parts and self._short():
            # Marked as the block it will be, for the waiting output's rule (see the module docstring).
            parts = [layout.preview_box("".join(parts), self._mark, len(self._reply.blocks))]
        parts.append(layout.status_line(status, live=True))
        # The text copy is for frontends that show no HTML (jupyter console, text-only tools).
        return {"text/html": layout.frame("".join(parts)), "text/plain": f"{text.rstrip()}\n[{status}]"}

    def _show_reasoning(self) -> None:
        line, latest = self._reply.reasoning_line()
        self._head.update(
            {"text/html": layout.frame(layout.LIVE_STYLE + line), "text/plain": f"[reasoning: …{latest}]"},
            raw=True,
        )

    def finish(self, reply: Reply, status: str) -> None:
        from ._display import final_bundle

        blocks, markdown = self._reply.final(reply)
        bundle = final_bundle(reply, status, blocks=blocks, markdown=markdown)
        if self._outputs is not None and self._outputs.replace_live(bundle):
            return
        for handle in (self._head, *self._done, *([self._wait] if self._wait is not None else [])):
            handle.update({"text/plain": ""}, raw=True)
        self._tail.update(bundle, raw=True)


def display_function(outlet: Optional[Outlet]) -> Any:
    """``IPython.display.display``, or the same through ``outlet`` (a view fed from another thread)."""
    if outlet is not None:
        return lambda bundle, **_: _OutletHandle(outlet, bundle)
    from IPython import display as ipython_display

    return ipython_display.display
