"""``%%chat --bg``: a chat turn that streams on a worker thread while the kernel runs other cells.

Where a background turn runs (:func:`placement`):

* a kernel with an interactive frontend (JupyterLab, Notebook 7, VS Code): on a thread; the live view is
  shown while the cell runs and fed afterwards only through a :class:`~._outlet.KernelOutlet` (display
  messages with the cell's own parent header) and widget comm messages; the final output replaces it by
  display id. Nothing is printed from the thread.
* a headless run (nbclient, ``nbconvert --execute``, papermill): in the foreground, because those runners
  stop reading a cell's output when it returns; the status line says so.
* terminal IPython: on a thread, printing the whole reply once it has ended (IPython shows its prompt
  inside prompt_toolkit's ``patch_stdout``, so the text goes above the prompt and the line being typed
  stays).

Turns of one conversation never overlap: a turn (background or not) started while another of the same
conversation is in flight waits for it, so each is sent with the history before it.

A comparison (``%%chat -m a,b --bg``) is placed the same way; its columns view is fed from the job's
thread (which runs the comparison's refresh loop), through the outlet in a kernel
(:class:`~._livecolumns.ColumnsLiveView` with ``outlet=``), each answer printed whole as it ends in a terminal
(:class:`ColumnsReportView`), with a note on every status line when headless (:class:`ColumnsWithNote`).
"""

from __future__ import annotations

import atexit
import contextvars
import io
import sys
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar

from ._display import TextView, View
from ._jobs import Cancelled, CancelToken, Job, JobRegistry
from ._models import Delta, Reply, ReplyBuilder
from ._outlet import KernelOutlet, kernel_of

if TYPE_CHECKING:
    from ._compare import ColumnsView, LaneResult

T = TypeVar("T")
V = TypeVar("V")

__all__ = [
    "FOREGROUND_NOTE",
    "ColumnsAsView",
    "ColumnsReportView",
    "ColumnsWithNote",
    "Placement",
    "ReportView",
    "WithNote",
    "describe_jobs",
    "new_registry",
    "placement",
    "start_turn",
    "thread_runner",
]

FOREGROUND_NOTE = "--bg ran in the foreground: this runner saves only what a cell shows before it returns"
TERMINAL = "terminal"
KERNEL = "kernel"
HEADLESS = "headless"


class Placement:
    """Where a ``--bg`` turn runs: ``kind`` is "kernel", "headless" or "terminal"; ``outlet`` is set for
    "kernel" (the cell's outlet, captured now, on the cell's thread)."""

    __slots__ = ("kind", "outlet")

    def __init__(self, kind: str, outlet: Optional[KernelOutlet] = None) -> None:
        self.kind = kind
        self.outlet = outlet

    @property
    def threaded(self) -> bool:
        return self.kind != HEADLESS


def placement(shell: Any) -> Placement:
    """Decide for the cell running now. Call it on the cell's own thread, before the cell returns."""
    if kernel_of(shell) is None:
        return Placement(TERMINAL)
    outlet = KernelOutlet.for_current_cell(shell)
    if outlet is None or outlet.headless:
        return Placement(HEADLESS)
    return Placement(KERNEL, outlet)


def thread_runner() -> Callable[[Callable[[], None]], None]:
    """Run a job's body in a copy of the current (cell's) context.

    ipykernel 7 keeps the parent request in context variables; in the copy, anything a job prints by
    accident (a trusted tool's ``print``) still goes to its own cell. ipykernel 6 does that for stdout by
    itself. Display messages never rely on this: they go through the outlet.
    """
    context = contextvars.copy_context()
    return lambda body: context.run(body)


class _Noting(Generic[V]):
    """A view (of one reply or of a comparison's columns) whose status lines end with ``note``."""

    def __init__(self, view: V, note: str) -> None:
        self._view = view
        self._note = note

    def _noted(self, status: str) -> str:
        return f"{status} · {self._note}" if status else self._note


class WithNote(_Noting[View]):
    """A view whose status line ends with a note (e.g. that ``--bg`` ran in the foreground)."""

    def on_delta(self, delta: Delta) -> None:
        self._view.on_delta(delta)

    def refresh(self, status: str) -> Optional[int]:
        return self._view.refresh(self._noted(status))

    def finish(self, reply: Reply, status: str) -> None:
        self._view.finish(reply, self._noted(status))


class _Buffer(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class ReportView:
    """Terminal: nothing while the reply streams, then the whole reply in one write, headed by its job.

    One write per reply: IPython's prompt runs inside ``patch_stdout``, which puts each write above the
    prompt and redraws the line being typed.
    """

    def __init__(self, header: Callable[[], str], write: Optional[Callable[[str], None]] = None) -> None:
        tty = bool(getattr(sys.stdout, "isatty", lambda: False)())
        self._buffer = _Buffer(tty)
        self._text = TextView(self._buffer)
        self._header = header
        self._write = write or _write_stdout

    def on_delta(self, delta: Delta) -> None:
        self._text.on_delta(delta)

    def refresh(self, status: str) -> None:
        pass

    def finish(self, reply: Reply, status: str) -> None:
        self._text.finish(reply, status)
        self._write(f"\n{self._header()}\n{self._buffer.getvalue()}")


class ColumnsWithNote(_Noting["ColumnsView"]):
    """A comparison's columns whose status lines end with a note (``--bg`` run in the foreground)."""

    def on_delta(self, index: int, delta: Delta) -> None:
        self._view.on_delta(index, delta)

    def refresh(self, index: int, status: str) -> int:
        return self._view.refresh(index, self._noted(status))

    def finish(self, index: int, reply: Reply, status: str) -> int:
        return self._view.finish(index, reply, self._noted(status))

    def close(self, results: Sequence[LaneResult]) -> None:
        self._view.close([replace(result, status=self._noted(result.status)) for result in results])


class ColumnsReportView:
    """Terminal: nothing while the answers stream, then each model's answer in one write as it ends, headed
    by its job (as :class:`ReportView` does for one reply), so each goes above the prompt."""

    def __init__(
        self,
        models: Sequence[str],
        header: Callable[[], str],
        write: Optional[Callable[[str], None]] = None,
    ) -> None:
        from ._columns import ColumnsTextView

        self._buffer = io.StringIO()  # not a terminal: no progress lines redrawn in place
        self._text = ColumnsTextView(models, self._buffer)
        self._header = header
        self._write = write or _write_stdout

    def on_delta(self, index: int, delta: Delta) -> None:
        pass

    def refresh(self, index: int, status: str) -> int:
        return 0

    def finish(self, index: int, reply: Reply, status: str) -> int:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._text.finish(index, reply, status)
        self._write(f"\n{self._header()}\n{self._buffer.getvalue()}")
        return 1

    def close(self, results: Sequence[LaneResult]) -> None:
        pass


class ColumnsAsView:
    """A comparison's columns where :func:`start_turn` wants the turn's first view. Only ``finish`` does
    anything (a job stopped before it started): every column ends with that news."""

    def __init__(self, columns: ColumnsView, models: Sequence[str]) -> None:
        self._columns = columns
        self._models = list(models)

    def on_delta(self, delta: Delta) -> None:
        pass

    def refresh(self, status: str) -> None:
        pass

    def finish(self, reply: Reply, status: str) -> None:
        from ._compare import end_all

        end_all(self._columns, self._models, reply, status)


def _write_stdout(text: str) -> None:
    # sys.stdout looked up now: prompt_toolkit swaps it for its proxy while the prompt is shown.
    out = sys.stdout
    out.write(text)
    out.flush()


def describe_jobs(jobs: list[Job[Any]], now: Optional[float] = None) -> str:
    """``%chat jobs``: one line per job in flight."""
    if not jobs:
        return "no background replies in flight"
    lines = []
    for job in jobs:
        lines.append(f"  #{job.number}  {job.state:<7}  {job.elapsed(now):6.1f} s  {job.label}")
    return "\n".join(lines)


# One registry per process: the jobs of every session in this kernel, so shutdown closes them all.
_registries: weakref.WeakSet[JobRegistry] = weakref.WeakSet()


def new_registry() -> JobRegistry:
    """A job registry whose jobs are stopped (connections closed) when the interpreter exits."""
    registry = JobRegistry()
    _registries.add(registry)
    return registry


@atexit.register
def _shutdown_all() -> None:
    # A kernel shutting down or restarting: close every reply's connection. The threads are daemons, so
    # nothing waits for a reply to end.
    for registry in list(_registries):
        registry.shutdown()


def start_turn(
    jobs: JobRegistry,
    turn: Callable[[CancelToken, Callable[[], View]], T],
    *,
    label: str,
    first_view: View,
    make_view: Callable[[], View],
    order: Optional[Hashable] = None,
    runner: Optional[Callable[[Callable[[], None]], None]] = None,
    on_end: Callable[[Job[T]], None] = lambda job: None,
) -> Job[T]:
    """Start ``turn(token, views)`` as a background job and return at once.

    ``turn`` is any callable that streams into views: it calls ``views()`` for each view it needs (the
    first call returns ``first_view``, made on the cell's thread so the cell shows it before it returns;
    later calls ``make_view()``, which must be safe on a worker thread) and should stop, keeping what it
    has, once ``token`` is cancelled. With ``order`` (the conversation), it starts only after the turns
    in flight with the same key. A job stopped before it started finishes ``first_view`` with that news.
    """
    used = [False]

    def views() -> View:
        if not used[0]:
            used[0] = True
            return first_view
        return make_view()

    def ended(job: Job[T]) -> None:
        if isinstance(job.error, Cancelled) and not used[0]:
            reason = job.token.reason or "stopped"
            first_view.finish(
                ReplyBuilder().build(error=f"{reason}; nothing was sent", interrupted=True), "not sent"
            )
        on_end(job)

    return jobs.start(
        lambda token: turn(token, views),
        label=label,
        order=order,
        runner=runner or (lambda body: body()),
        on_end=ended,
    )
