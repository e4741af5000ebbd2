"""Progress of a batch that people can read: one live bar for the whole batch, never one per row.

The line itself is pure (:func:`progress_text` of a :class:`Snapshot`); where it goes depends on where
the code runs (:func:`make_display`):

* a Jupyter kernel: one display (an HTML ``<progress>`` bar and the line) updated in place, replaced by the
  summary line when the batch ends, so a saved notebook keeps text. No widget: like the reply views
  (see :mod:`._live`), a widget's comm makes JupyterLab 4.6 show the kernel Idle while the cell runs;
* a terminal: one line on stderr, redrawn in place with ``\\r``;
* anything else (a log file, CI): a plain line every 10 seconds;
* ``progress=False``: nothing at all.

Own code rather than tqdm: the line carries the batch's own figures (retries waiting, failures, tokens,
cost), the widget and the terminal line share one formatter, and nothing needs to be installed.
"""

from __future__ import annotations

import html
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional, Protocol, TextIO

__all__ = [
    "Display",
    "LineDisplay",
    "NoDisplay",
    "Rate",
    "Snapshot",
    "TerminalDisplay",
    "make_display",
    "progress_text",
]

_MUTED = "color: var(--jp-ui-font-color2, #777); font-size: 0.85em;"


@dataclass(frozen=True)
class Snapshot:
    """The figures of a running batch."""

    total: Optional[int]
    done: int
    failed: int = 0
    from_store: int = 0
    in_flight: int = 0
    waiting: int = 0  # rows waiting to be retried
    rate: Optional[float] = None  # rows per second (recent)
    eta: Optional[float] = None  # seconds
    tokens: int = 0
    money: str = ""
    note: str = ""  # e.g. "paused 2 s (the relay asked)"

    @property
    def finished(self) -> int:
        return self.done + self.failed


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 14 s``, ``2 h 05 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(snap: Snapshot) -> str:
    """``312/5,000 · 24.1 rows/s · ETA 3 min 14 s · 16 in flight · 3 waiting to retry · 2 failed ·
    41,200 tokens · ¥0.83``; figures that are zero or unknown are left out."""
    count = f"{snap.finished:,}/{snap.total:,}" if snap.total is not None else f"{snap.finished:,} rows"
    parts = [count]
    if snap.rate is not None and snap.rate > 0:
        parts.append(f"{snap.rate:,.1f} rows/s")
    if snap.eta is not None:
        parts.append(f"ETA {duration(snap.eta)}")
    if snap.in_flight:
        parts.append(f"{snap.in_flight:,} in flight")
    if snap.waiting:
        parts.append(f"{snap.waiting:,} waiting to retry")
    if snap.failed:
        parts.append(f"{snap.failed:,} failed")
    if snap.from_store:
        parts.append(f"{snap.from_store:,} from the store")
    if snap.tokens:
        parts.append(f"{snap.tokens:,} tokens")
    if snap.money:
        parts.append(snap.money)
    if snap.note:
        parts.append(snap.note)
    return " · ".join(parts)


class Rate:
    """Rows per second over the last ``window`` seconds (a batch's pace changes: the relay slows down,
    concurrency is lowered), and the time left at that pace."""

    def __init__(self, window: float = 10.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, finished: int) -> None:
        self._samples.append((now, finished))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()

    def per_second(self) -> Optional[float]:
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 0.5 or n1 <= n0:
            return None
        return (n1 - n0) / (t1 - t0)

    def eta(self, remaining: Optional[int]) -> Optional[float]:
        rate = self.per_second()
        if remaining is None or rate is None:
            return None
        return remaining / rate


class Display(Protocol):
    def note(self, line: str) -> None:
        """A line of its own (the estimate before the batch, a problem on the way)."""

    def update(self, snap: Snapshot) -> None:
        """The live figures; called often (the display keeps its own pace)."""

    def close(self, summary: str) -> None:
        """The batch ended: leave the summary line."""


class NoDisplay:
    """``progress=False``."""

    def note(self, line: str) -> None:
        pass

    def update(self, snap: Snapshot) -> None:
        pass

    def close(self, summary: str) -> None:
        pass


class LineDisplay:
    """A plain line every ``every`` seconds (logs, CI, a pipe): no ``\\r``, no escape codes."""

    def __init__(
        self,
        stream: Optional[TextIO] = None,
        *,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._every = every
        self._clock = clock
        self._last = clock()

    def _write(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def note(self, line: str) -> None:
        self._write(line)

    def update(self, snap: Snapshot) -> None:
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self._write(progress_text(snap))

    def close(self, summary: str) -> None:
        self._write(summary)


class TerminalDisplay:
    """One line on a terminal, redrawn in place at most ``every`` seconds, cut to the terminal's width."""

    def __init__(
        self,
        stream: Optional[TextIO] = None,
        *,
        every: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._every = every
        self._clock = clock
        self._last = float("-inf")
        self._shown = False

    def _width(self) -> int:
        import shutil

        return max(20, shutil.get_terminal_size((100, 20)).columns - 1)

    def _clear(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._shown = False

    def note(self, line: str) -> None:
        self._clear()
        self._stream.write(line + "\n")
        self._stream.flush()

    def update(self, snap: Snapshot) -> None:
        now = self._clock()
        if now - self._last < self._every:
            return
        self._last = now
        from ._pricing import _width  # wide (CJK) characters take two columns

        text = progress_text(snap)
        limit = self._width()
        while _width(text) > limit:
            text = text[: max(0, len(text) - (_width(text) - limit) - 1)] + "…"
        self._stream.write("\r\x1b[K" + text)
        self._stream.flush()
        self._shown = True

    def close(self, summary: str) -> None:
        self._clear()
        self._stream.write(summary + "\n")
        self._stream.flush()


def _bar_html(snap: Snapshot) -> str:
    line = html.escape(progress_text(snap))
    if snap.total:
        share = 100.0 * snap.finished / snap.total
        return (
            '<div style="display:flex;gap:0.6em;align-items:center;">'
            f'<progress max="100" value="{share:.1f}" style="width:14em;"></progress>'
            f'<span style="{_MUTED}">{line}</span></div>'
        )
    return f'<div style="{_MUTED}">{line}</div>'


class NotebookDisplay:
    """Jupyter: one output for the whole batch, a bar and the line, updated in place at most every
    ``every`` seconds and replaced by the summary when the batch ends."""

    def __init__(self, *, every: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._last = float("-inf")
        self._handle: Any = None

    def note(self, line: str) -> None:
        print(line)

    def update(self, snap: Snapshot) -> None:
        now = self._clock()
        if now - self._last < self._every:
            return
        self._last = now
        bundle = {"text/plain": progress_text(snap), "text/html": _bar_html(snap)}
        if self._handle is None:
            self._handle = _display_function()(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def close(self, summary: str) -> None:
        bundle = {"text/plain": summary, "text/html": f'<div style="{_MUTED}">{html.escape(summary)}</div>'}
        if self._handle is None:
            _display_function()(bundle, raw=True)
        else:
            self._handle.update(bundle, raw=True)


def _display_function() -> Callable[..., Any]:
    from IPython.display import display

    shown: Callable[..., Any] = display
    return shown


def in_kernel() -> bool:
    """A Jupyter kernel with a frontend (IPython is only looked at if something already imported it)."""
    module = sys.modules.get("IPython")
    if module is None:
        return False
    shell = module.get_ipython()
    return getattr(shell, "kernel", None) is not None


def make_display(progress: bool, *, stream: Optional[TextIO] = None) -> Display:
    """The display for where this runs (see the module docstring)."""
    if not progress:
        return NoDisplay()
    if stream is None and in_kernel():
        return NotebookDisplay()
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    if isatty is not None and isatty():
        return TerminalDisplay(target)
    return LineDisplay(target)
