"""Several models answering at once: one worker thread per model, one throttled display loop.

Each model's stream runs in a thread of its own through the same turn policy as a single answer
(:func:`~shenma_magic._run.run_turn`: the status line, what a failure or an interrupt leaves in the reply), so
the total time is the slowest model's, not the sum. The workers never touch the display: they hand every
delta and status line to the main thread through one queue, and the main thread refreshes the columns at a
bounded rate for all of them together (:class:`Pacer`). Ctrl-C arrives in the main thread: every stream is
hung up (its socket shut down, see ``_hangup``) and every partial answer is kept. A comparison in the
background (``%%chat -m a,b --bg``) runs that loop in its job's thread instead, and a ``stop`` check does
what Ctrl-C does.

Nothing here knows about HTTP or IPython: a :class:`Lane` opens any iterator of deltas, a
:class:`ColumnsView` is any object with the four methods below.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from ._errors import ShenmaError
from ._models import Delta, FinishDelta, NoticeDelta, Reply, ReplyBuilder
from ._pricing import format_money
from ._run import INTERRUPTED, Measurer, TurnResult, run_turn
from ._status import status_text

__all__ = ["ColumnsView", "Lane", "LaneResult", "Pacer", "end_all", "run_lanes"]

# After a hang-up, what was already received is still taken for this long; then the stream is cut.
_AFTER_HANGUP = 0.5
# How long the main thread waits, after Ctrl-C, for the workers to report their partial replies.
_GRACE = 1.5
# Frontend messages a second for all columns together: under the ~20 a single answer may use, with room
# for the finished columns' final forms, which are never held back.
RATE = 18.0
# How many queued items the main thread takes in one go before it looks at the clock again.
_DRAIN = 2000


@dataclass
class Lane:
    """One model's part of a comparison.

    ``open`` starts the stream (called in the lane's worker thread, inside ``serving``); ``hang_up`` stops it
    from the main thread.
    """

    model: str
    open: Callable[[], Iterator[Delta]]
    measure: Optional[Measurer] = None  # None: the server's counts, no cost
    money: Optional[Callable[[float], str]] = None  # how a cost is shown (with measure)
    hang_up: Callable[[], None] = lambda: None
    serving: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext


@dataclass
class LaneResult:
    """How one model's answer ended: the reply (partial on failure), its last status line, what stopped it."""

    model: str
    reply: Reply
    status: str
    interrupted: bool = False
    exception: Optional[ShenmaError] = None


class ColumnsView(Protocol):
    """Where a comparison is shown. Only the thread running :func:`run_lanes` calls it."""

    def on_delta(self, index: int, delta: Delta) -> None: ...

    def refresh(self, index: int, status: str) -> int:
        """Show column ``index`` as it is now; return how many messages went to the frontend."""
        ...

    def finish(self, index: int, reply: Reply, status: str) -> int:
        """Column ``index`` is done: show its final form, once; return how many messages that took."""
        ...

    def close(self, results: Sequence[LaneResult]) -> None:
        """Every column is done: leave the final output."""
        ...


class Pacer:
    """Which column to refresh next, and when: at most ``rate`` frontend messages a second for all columns
    together, each column at most once per ``interval``, the column that has waited longest first. Pure."""

    def __init__(self, columns: int, *, interval: float, rate: float) -> None:
        self._interval = interval
        self._gap = 1.0 / rate
        self._last = [float("-inf")] * columns
        self._next = float("-inf")
        self._pending: dict[int, str] = {}  # column → the newest status line not shown yet

    def mark(self, index: int, status: str) -> None:
        self._pending[index] = status

    def drop(self, index: int) -> None:
        self._pending.pop(index, None)

    def due(self, now: float) -> Optional[tuple[int, str]]:
        """The column to refresh now and its status, or None."""
        if now < self._next:
            return None
        ready = [i for i in self._pending if now - self._last[i] >= self._interval]
        if not ready:
            return None
        index = min(ready, key=lambda i: self._last[i])
        return index, self._pending.pop(index)

    def sent(self, index: int, now: float, messages: int) -> None:
        self._last[index] = now
        self.spend(now, messages)

    def spend(self, now: float, messages: int) -> None:
        """Messages sent outside a refresh (a column's final form): the next refresh waits for them."""
        self._next = max(self._next, now) + messages * self._gap

    def wait(self, now: float) -> float:
        """Seconds until a refresh may be due (a short poll when nothing is pending)."""
        if not self._pending:
            return 0.1
        soonest = min(self._last[i] + self._interval for i in self._pending)
        return min(0.1, max(0.0, max(self._next, soonest) - now))


class _LaneView:
    """The view a worker's run_turn sees: everything goes to the main thread's queue."""

    def __init__(self, index: int, events: queue.SimpleQueue[tuple[str, int, Any]]) -> None:
        self._index = index
        self._events = events

    def on_delta(self, delta: Delta) -> None:
        self._events.put(("delta", self._index, delta))

    def refresh(self, status: str) -> None:
        self._events.put(("status", self._index, status))

    def finish(self, reply: Reply, status: str) -> None:
        self.status = status  # the worker reports it with its TurnResult, after every delta

    status = ""


def _until_hung_up(
    inner: Iterator[Delta], hung_up: threading.Event, clock: Callable[[], float]
) -> Iterator[Delta]:
    """``inner``, ending in KeyboardInterrupt (what run_turn keeps as "interrupted") once the lane is hung up:
    the error or early end that the hang-up causes is not the server's fault."""
    finished = False
    cut_at: Optional[float] = None
    try:
        for delta in inner:
            if hung_up.is_set():
                cut_at = clock() if cut_at is None else cut_at
                if isinstance(delta, NoticeDelta):
                    continue  # "the stream ended early" and the like: traces of the hang-up itself
                if clock() - cut_at > _AFTER_HANGUP:
                    raise KeyboardInterrupt
            finished = finished or isinstance(delta, FinishDelta)
            yield delta
    except Exception:
        if hung_up.is_set():
            raise KeyboardInterrupt from None
        raise
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            close()
    if hung_up.is_set() and not finished:
        raise KeyboardInterrupt


def _work(
    index: int,
    lane: Lane,
    events: queue.SimpleQueue[tuple[str, int, Any]],
    hung_up: threading.Event,
    interval: float,
    clock: Callable[[], float],
) -> None:
    try:
        with lane.serving():
            stream = _until_hung_up(lane.open(), hung_up, clock)
            view = _LaneView(index, events)
            result = run_turn(
                stream,
                view,
                model=lane.model,
                interval=interval,
                measure=lane.measure,
                money=lane.money or format_money,
            )
    except BaseException as exc:  # a bug must not leave the main thread waiting for this lane forever
        events.put(("crash", index, exc))
    else:
        events.put(("done", index, (result, view.status)))


@dataclass
class _Board:
    """The main thread's bookkeeping while the lanes run."""

    lanes: Sequence[Lane]
    view: ColumnsView
    pacer: Pacer
    clock: Callable[[], float]
    start: float
    results: list[Optional[LaneResult]] = field(default_factory=list)
    builders: list[ReplyBuilder] = field(default_factory=list)

    def open(self) -> bool:
        return any(r is None for r in self.results)

    def take(self, item: tuple[str, int, Any]) -> None:
        kind, index, payload = item
        if self.results[index] is not None:
            return  # a lane given up on after Ctrl-C reporting late
        if kind == "delta":
            self.builders[index].add(payload)
            self.view.on_delta(index, payload)
        elif kind == "status":
            self.pacer.mark(index, payload)
        elif kind == "done":
            turn: TurnResult
            turn, status = payload
            model = self.lanes[index].model
            self.end(index, LaneResult(model, turn.reply, status, turn.interrupted, turn.exception))
        else:  # "crash"
            reply = self.builders[index].build(error=f"internal error: {type(payload).__name__}: {payload}")
            self.end(index, LaneResult(self.lanes[index].model, reply, self.status(index, "failed")))

    def end(self, index: int, result: LaneResult) -> None:
        self.results[index] = result
        self.pacer.drop(index)
        # Never held back (a finished answer is shown at once), but the refreshes after it wait their turn.
        self.pacer.spend(self.clock(), self.view.finish(index, result.reply, result.status))

    def status(self, index: int, state: str) -> str:
        return status_text(
            model=self.lanes[index].model,
            elapsed=self.clock() - self.start,
            first_token=None,
            tokens=None,
            finish_reason=None,
            state=state,
        )

    def pump(
        self,
        events: queue.SimpleQueue[tuple[str, int, Any]],
        *,
        until: float = float("inf"),
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Take what the workers send and refresh the columns, until every lane is done (or ``until``);
        KeyboardInterrupt once ``stop()`` is true (checked at least every 0.1 s)."""
        while self.open():
            if stop():
                raise KeyboardInterrupt
            now = self.clock()
            if now >= until:
                return
            try:
                wait = min(self.pacer.wait(now), until - now)
                item: Optional[tuple[str, int, Any]] = events.get(timeout=wait)
            except queue.Empty:
                item = None
            taken = 0
            while item is not None and taken < _DRAIN:
                self.take(item)
                taken += 1
                try:
                    item = events.get_nowait()
                except queue.Empty:
                    item = None
            if item is not None:
                self.take(item)
            now = self.clock()
            due = self.pacer.due(now)
            if due is not None:
                index, status = due
                self.pacer.sent(index, now, self.view.refresh(index, status))


def run_lanes(
    lanes: Sequence[Lane],
    view: ColumnsView,
    *,
    interval: float = 0.075,
    rate: float = RATE,
    clock: Callable[[], float] = time.monotonic,
    grace: float = _GRACE,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[list[LaneResult], bool]:
    """Run every lane at once into ``view``; return each lane's result (in the lanes' order) and whether
    Ctrl-C stopped them. Never raises for server or transport errors (they are in each result), nor for
    Ctrl-C (every partial reply is kept, marked interrupted). ``stop()`` turning true acts as Ctrl-C: the
    way to stop lanes run from a thread that Ctrl-C does not reach."""
    events: queue.SimpleQueue[tuple[str, int, Any]] = queue.SimpleQueue()
    hung_up = threading.Event()
    board = _Board(
        lanes,
        view,
        Pacer(len(lanes), interval=interval, rate=rate),
        clock,
        clock(),
        [None] * len(lanes),
        [ReplyBuilder() for _ in lanes],
    )
    for index, lane in enumerate(lanes):
        threading.Thread(
            target=_work,
            args=(index, lane, events, hung_up, interval, clock),
            name=f"shenma-compare-{index}",
            daemon=True,  # a lane stuck before its first byte must not keep the kernel from exiting
        ).start()
    interrupted = False
    try:
        board.pump(events, stop=stop)
    except KeyboardInterrupt:
        interrupted = True
        hung_up.set()
        for lane in lanes:
            with contextlib.suppress(Exception):
                lane.hang_up()
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting for the workers
            board.pump(events, until=clock() + grace)
    for index, result in enumerate(board.results):
        if result is None:  # a worker still blocked (e.g. before the response headers): keep what it sent
            reply = board.builders[index].build(error=INTERRUPTED, interrupted=True)
            stopped = LaneResult(lanes[index].model, reply, board.status(index, "interrupted"), True)
            with contextlib.suppress(KeyboardInterrupt):  # end() records the result before it draws
                board.end(index, stopped)
    results = [r for r in board.results if r is not None]
    try:
        view.close(results)
    except KeyboardInterrupt:
        # A Ctrl-C while the final output is written must not leave the live view behind.
        view.close(results)
        interrupted = True
    return results, interrupted


def end_all(view: ColumnsView, models: Sequence[str], reply: Reply, status: str) -> None:
    """End every column with the same news (a comparison that was never sent) and leave the final output."""
    for index in range(len(models)):
        view.finish(index, reply, status)
    view.close([LaneResult(model, reply, status) for model in models])
