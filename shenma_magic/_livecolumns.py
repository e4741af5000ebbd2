"""A comparison's columns in a Jupyter frontend while the answers stream: plain outputs, no widgets.

No widgets, for the reasons in :mod:`._live` (JupyterLab's status bar said Idle while a cell with a
widget ran, and the ``Output`` widget's echoes put "No such comm" warnings in the log console): only
``display_data`` and ``update_display_data``, each output ``text/html`` with a ``text/plain`` copy, so
the view also works through an :class:`~._live.Outlet` (``%%chat -m a,b --bg``).

Each model gets a run of outputs, its *slots*; the runs follow one another (rows of up to four models,
a small gap output between rows), and the stylesheet in the view's first output
(:func:`._layout.columns_style`) shows them side by side. A column's slots, top to bottom: the first
holds the model's name (and the reasoning line); then *sealed* slots, never sent again; then the
*waiting* slot, which gets the blocks finished since the last seal (re-sent when more finish); then
the *tail* (the unfinished block, bounded as the single view bounds it by :class:`~._live.LiveReply`,
a notice, the status line; re-sent at each refresh); then unused slots, empty. When the waiting slot
holds enough, it is sealed as it is: the tail's slot takes the next blocks and a new tail goes below.

Why a fixed number of slots, all shown at the start: outputs are only ever added at the end of a cell,
so a column can grow only into outputs made for it beforehand; and JupyterLab and Notebook 7 show at
most 50 outputs of a cell (``maxNumberOutputs``: the rest wait behind "Show more outputs"), so a
comparison uses at most :data:`OUTPUT_BUDGET` of them, about 14 slots a column for three models. The
waiting slot is sealed once it holds a size that grows with what the column has shown and with fewer
slots left (``seal_bytes`` to ``seal_max``), so its slots last for answers of hundreds of kB; the price
is that a finished block is re-sent with its waiting slot until that is sealed (the single view sends
each block once, but needs an output for every refresh that finished one). A column out of slots shows
its newest blocks in the tail, within ``seal_bytes``, and how many more there are (shown when done).

A column that is done is drawn in its final form at once (the pieces of :func:`._display.final_parts`
over its slots); when every one is done the outputs are replaced by :func:`columns_bundle`, one output
whose grid holds the very same pieces, so nothing moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from . import _layout as layout
from ._live import CELL_OUTPUTS, LiveReply, display_function, newest_from
from ._models import Delta, Reply

if TYPE_CHECKING:
    from ._compare import LaneResult
    from ._live import Outlet, OutputLog

__all__ = ["OUTPUT_BUDGET", "ColumnsLiveView", "columns_bundle"]

OUTPUT_BUDGET = 44  # outputs of one comparison: JupyterLab shows 50 a cell, this leaves room for others
_MAX_SLOTS = 20  # per column: more would only cost messages at the start
_WAITING = "waiting for the first token…"
_EMPTY = {"text/plain": ""}


def columns_bundle(
    results: Sequence[tuple[str, Reply, str]],
    *,
    blocks: Optional[Sequence[Optional[Sequence[str]]]] = None,
    markdown: Optional[Sequence[Optional[str]]] = None,
) -> dict[str, str]:
    """The output a finished comparison leaves: (model, reply, status) per column, as HTML, Markdown and
    text. ``blocks`` are the answers' pieces the live columns already rendered (None: rendered here),
    ``markdown`` their safe Markdown copies made from the same parses."""
    from ._display import _md_inline, final_parts

    cells: list[str] = []
    md_parts: list[str] = []
    plain_parts: list[str] = []
    for index, (model, reply, status) in enumerate(results):
        parts = final_parts(
            reply,
            status,
            blocks=blocks[index] if blocks else None,
            markdown=markdown[index] if markdown else None,
        )
        body = layout.frame("".join(parts.head + parts.answer + parts.after))
        cells.append(layout.column_box(layout.column_head(model) + body))
        md_parts.append(f"### {_md_inline(model)}\n\n{parts.markdown}")
        plain_parts.append(f"── {model} ──\n{parts.plain}\n[{status}]")
    return {
        "text/plain": "\n\n".join(plain_parts),
        "text/markdown": "\n\n---\n\n".join(md_parts),
        "text/html": layout.columns_grid(cells, layout.grid_columns(len(results))),
    }


class _Column:
    """One model's column: its slots (display handles), and which blocks each of them holds.

    Slots ``0 .. waiting - 1`` are sealed; slot ``waiting`` holds the blocks finished since (re-sent when
    more finish); slot ``waiting + 1`` is the tail (re-sent at each refresh). Slot 0 also holds the
    model's name and the reasoning line.
    """

    def __init__(self, index: int, model: str, place: int, reply: LiveReply, seal: tuple[int, int]) -> None:
        self.index = index
        self.model = model
        self.place = place  # its place in its row
        self.reply = reply
        self.seal_bytes, self.seal_max = seal
        self.slots: list[Any] = []
        self.waiting = 0  # the slot holding the blocks finished since the last seal
        self.starts = [0]  # the first block of each slot up to the waiting one
        self.shown = 0  # blocks in the waiting slot or before it
        self.sealed_bytes = 0  # of the blocks in sealed slots
        self.waiting_bytes = 0  # of the blocks in the waiting slot
        self.full = False  # out of slots: the waiting slot holds what it has, the tail shows the rest
        self.reasoning = ""  # the reasoning line the first slot shows
        self.sent: Optional[dict[str, str]] = None  # the tail as last sent
        self.done = False
        self.final: Optional[list[str]] = None  # the blocks the final output reuses (None: rendered again)
        self.final_markdown: Optional[str] = None  # and their safe Markdown, from the same parses

    @property
    def tail(self) -> int:
        return self.waiting + 1

    def classes(self, slot: int, *, tail: bool = False) -> str:
        names = f"shenma-slot shenma-slot-{self.place}"
        if slot == 0:
            names += " shenma-slot-first"
        if tail:
            names += f" shenma-tail-{self.index}"
        return names

    def bundle(self, slot: int, pieces: list[str], text: str, *, tail: bool = False) -> dict[str, str]:
        """What slot ``slot`` shows: ``pieces`` in the column's box (the first slot: under the model's
        name and the reasoning line), with ``text`` as its plain copy."""
        head = ""
        if slot == 0:
            head = layout.column_head(self.model)
            pieces = [self.reasoning, *pieces] if self.reasoning else pieces
            text = f"── {self.model} ──\n{text}"
        html = layout.column_box(head + layout.frame("".join(pieces)), self.classes(slot, tail=tail))
        return {"text/html": html, "text/plain": text}

    def unused(self, slot: int) -> dict[str, str]:
        return {"text/html": layout.empty_slot(self.classes(slot)), "text/plain": ""}

    def slot_blocks(self, slot: int, moved: Optional[int] = None) -> dict[str, str]:
        """Slot ``slot`` (sealed or waiting) with its blocks. ``moved``: the block the tail's preview showed
        until now, which this update brings; the preview hides as soon as it arrives (the new tail is
        sent next), so the column never shows it twice."""
        start = self.starts[slot]
        end = self.starts[slot + 1] if slot < self.waiting else self.shown
        blocks = self.reply.blocks
        pieces = [layout.placed_block(blocks[k], self.index, k) for k in range(start, end)]
        if moved is not None:
            pieces.append(layout.hide_preview(self.index, moved))
        return self.bundle(slot, pieces, "".join(self.reply.sources[start:end]))

    def refresh(self, status: str) -> int:
        if self.done:
            return 0
        reasoning = self.reply.reasoning_changed
        finished = self.reply.take_finished()
        if not finished and not reasoning and self.reply.too_soon():
            return 0  # a big tail: rendering it this often would cost more than a quarter of the time
        sent = 0
        placing = bool(finished) and not self.full
        if reasoning:
            self.reasoning = self.reply.reasoning_line()[0]
            if self.waiting > 0 or not placing:  # else the blocks' update below carries it
                self.slots[0].update(self.slot_blocks(0), raw=True)
                sent += 1
        if placing:
            placed, tail_sent = self.place_blocks(status, sum(len(block) for block in finished))
            sent += placed
            if tail_sent:
                return sent
        tail = self.tail_bundle(status)
        if tail != self.sent:
            self.slots[self.tail].update(tail, raw=True)
            self.sent = tail
            sent += 1
        return sent

    def place_blocks(self, status: str, size: int) -> tuple[int, bool]:
        """Blocks have finished: into the waiting slot, or, when that one holds enough, into the next.
        Returns the messages sent and whether the tail was among them."""
        first, end = self.shown, len(self.reply.blocks)
        left = len(self.slots) - 2 - self.waiting  # slots that can still become the waiting one
        # Spread the slots left over an answer as long again as what has come so far, within bounds.
        total = self.sealed_bytes + self.waiting_bytes
        enough = min(self.seal_max, max(self.seal_bytes, total // max(left, 1)))
        if self.waiting_bytes < enough:
            self.shown = end
            self.waiting_bytes += size
            self.slots[self.waiting].update(self.slot_blocks(self.waiting, moved=first), raw=True)
            return 1, False
        if left <= 0:
            self.full = True  # from now on the tail shows the newest blocks
            return 0, False
        # The waiting slot is sealed as it is and the tail's slot takes the new blocks; a new tail goes
        # below first: until the old one is filled the column shows a little twice (its status line is
        # hidden by the stylesheet), never less.
        self.sealed_bytes += self.waiting_bytes
        self.waiting_bytes = size
        self.waiting += 1
        self.starts.append(first)
        self.shown = end
        self.sent = self.tail_bundle(status)
        self.slots[self.tail].update(self.sent, raw=True)
        self.slots[self.waiting].update(self.slot_blocks(self.waiting), raw=True)
        return 2, True

    def tail_bundle(self, status: str) -> dict[str, str]:
        """The tail: the unfinished block (bounded), a notice, the status line; when the column is out of
        slots, first the newest of the blocks it could not place."""
        blocks, sources = self.reply.blocks, self.reply.sources
        pieces: list[str] = []
        start = len(blocks)
        if self.full:
            start = newest_from(blocks, self.seal_bytes, lowest=self.shown)
            if start > self.shown:
                hidden = start - self.shown
                pieces.append(layout.muted_line(f"… {hidden:,} more blocks, shown when this answer is done"))
            pieces.extend(blocks[start:])
        parts, text = self.reply.tail_parts()
        pieces.append(layout.preview_box("".join(parts), self.index, len(blocks)))
        pieces.append(layout.status_line(status))
        plain = f"{''.join(sources[start:])}{text.rstrip()}\n[{status}]"
        return self.bundle(self.tail, pieces, plain, tail=True)

    def finish(self, reply: Reply, status: str) -> int:
        """The column's final form, in its slots: the pieces the final output holds for it."""
        from ._display import final_parts

        self.done = True
        self.final, self.final_markdown = self.reply.final(reply)
        parts = final_parts(reply, status, blocks=self.final, markdown=self.final_markdown)
        head = "".join(parts.head)  # the reasoning line, closed, holding the whole reasoning
        changed = head != self.reasoning
        self.reasoning = head
        if self.final is None:
            # Rendered again, whole: everything goes into the first slot, the others are emptied.
            self.slots[0].update(self.bundle(0, parts.answer + parts.after, parts.plain), raw=True)
            used = self.tail
            for slot in range(1, used + 1):
                self.slots[slot].update(self.unused(slot), raw=True)
            self.waiting, self.starts, self.shown = 0, [0], 0
            return used + 1
        sent = 0
        if changed:
            self.slots[0].update(self.slot_blocks(0), raw=True)
            sent += 1
        # The rest goes where the tail was: the blocks not placed yet, then the status and error lines.
        rest = self.final[self.shown :]
        text = "".join(self.reply.sources[self.shown :]) + f"\n[{status}]"
        self.slots[self.tail].update(self.bundle(self.tail, rest + parts.after, text), raw=True)
        return sent + 1


class ColumnsLiveView:
    """The live comparison for Jupyter frontends (see the module docstring); a
    :class:`~._compare.ColumnsView`.

    ``outputs`` is the cell's :class:`~._live.OutputLog`: the final output replaces the live ones through
    it (without one, or if it cannot clear the cell, the final output goes into the view's first output
    and the others are emptied). With an ``outlet`` every display message goes through it.
    ``tail_limit`` and ``tail_bytes`` bound each column's unfinished block; ``seal_bytes`` and
    ``seal_max`` the finished blocks a column's tail holds before they are sealed.
    """

    def __init__(
        self,
        models: Sequence[str],
        *,
        outputs: Optional[OutputLog] = None,
        outlet: Optional[Outlet] = None,
        waiting: str = _WAITING,
        budget: int = OUTPUT_BUDGET,
        tail_limit: int = 3000,
        tail_bytes: int = 12_000,
        seal_bytes: int = 2_000,
        seal_max: int = 24_000,
    ) -> None:
        display = display_function(outlet)
        self._outputs = outputs
        # The cell's earlier outputs (image thumbnails) count against what the frontend shows too.
        earlier = outputs.output_count() if outputs is not None else 0
        budget = min(budget, CELL_OUTPUTS - 2 - earlier)
        count = max(len(models), 1)
        per_row = layout.grid_columns(count)
        rows = math.ceil(count / per_row)
        fillers = rows * per_row - count
        slots = max(2, min(_MAX_SLOTS, (budget - 1 - (rows - 1) - fillers) // count))

        def show(bundle: dict[str, str]) -> Any:
            return display(bundle, raw=True, display_id=True)

        style = layout.columns_style(per_row, count) + layout.live_marker(per_row)
        self._head = show({"text/html": style, "text/plain": ""})
        self._others: list[Any] = []  # the gaps between rows
        self._columns: list[_Column] = []
        for index, model in enumerate(models):
            place = index % per_row
            if index and not place:
                self._others.append(show({"text/html": layout.row_break(), "text/plain": ""}))
            reply = LiveReply(tail_limit=tail_limit, tail_bytes=tail_bytes)
            column = _Column(index, model, place, reply, (seal_bytes, seal_max))
            column.sent = column.bundle(1, [layout.status_line(waiting)], waiting, tail=True)
            column.slots = [show(column.bundle(0, [], "")), show(column.sent)]
            column.slots += [show(column.unused(slot)) for slot in range(2, slots)]
            self._columns.append(column)
        # The last row's empty places, each a column of its own: the browser cannot spread a column of
        # that row over them.
        for place in range(per_row - fillers, per_row):
            filler = layout.empty_slot(f"shenma-slot shenma-slot-{place} shenma-slot-first")
            self._others.append(show({"text/html": filler, "text/plain": ""}))

    def on_delta(self, index: int, delta: Delta) -> None:
        self._columns[index].reply.on_delta(delta)

    def refresh(self, index: int, status: str) -> int:
        return self._columns[index].refresh(status)

    def finish(self, index: int, reply: Reply, status: str) -> int:
        return self._columns[index].finish(reply, status)

    def close(self, results: Sequence[LaneResult]) -> None:
        finals = [column.final for column in self._columns]
        markdown = [column.final_markdown for column in self._columns]
        bundle = columns_bundle(
            [(r.model, r.reply, r.status) for r in results], blocks=finals, markdown=markdown
        )
        if self._outputs is not None and self._outputs.replace_live(bundle):
            return
        for column in self._columns:
            for handle in column.slots[: column.tail + 1]:
                handle.update(_EMPTY, raw=True)
        for handle in self._others:
            handle.update(_EMPTY, raw=True)
        self._head.update(bundle, raw=True)
