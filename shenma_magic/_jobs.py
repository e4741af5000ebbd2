"""Background jobs: replies that stream in a worker thread while the kernel runs other cells.

Pure policy, no IPython: a job is any callable ``work(token) -> result`` run on a daemon thread. The
registry lists the jobs in flight, waits for them, stops them (a :class:`CancelToken` that the work
checks, plus closers it registers, such as "close this HTTP response", so a read blocked on a silent
server ends at once), and keeps the order of turns inside one conversation: a job started with an
``order`` key runs only after every earlier job with the same key has ended, and a foreground turn
waits the same way (:meth:`JobRegistry.wait_turn`), so a conversation's history is never interleaved.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, Optional, TypeVar

__all__ = ["CancelToken", "Cancelled", "Job", "JobRegistry", "cancellable"]

T = TypeVar("T")
D = TypeVar("D")

# How long shutdown and Ctrl-C on wait() give stopped jobs to write their last output.
_STOP_GRACE = 5.0


class Cancelled(Exception):
    """Raised inside a job's work when it was stopped before it could start (e.g. while waiting its turn)."""


class CancelToken:
    """Set once to stop a job: ``cancelled`` for the work to check, and closers run at once on cancel.

    A closer registered after the cancel runs immediately, so a response opened in a race with the cancel
    is closed too.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._closers: list[Callable[[], None]] = []
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "stopped") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            closers, self._closers = self._closers, []
        for close in closers:
            _quietly(close)

    def on_cancel(self, close: Callable[[], None]) -> Callable[[], None]:
        """Run ``close`` on cancel (now, if already cancelled); returns a function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                self._closers.append(close)

                def unregister() -> None:
                    with self._lock, contextlib.suppress(ValueError):
                        self._closers.remove(close)

                return unregister
        _quietly(close)
        return lambda: None

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if cancelled meanwhile (a sleep that a stop cuts short)."""
        return self._event.wait(seconds)


def _quietly(close: Callable[[], None]) -> None:
    # A closer that fails (socket already gone) must not stop the others.
    with contextlib.suppress(Exception):
        close()


def cancellable(stream: Iterator[D], token: CancelToken) -> Iterator[D]:
    """``stream``, ending with KeyboardInterrupt (what a turn treats as "stopped, keep the partial answer")
    once ``token`` is cancelled, also when the cancel broke the read underneath with an error."""
    try:
        for item in stream:
            if token.cancelled:
                raise KeyboardInterrupt
            yield item
    except Exception:
        if token.cancelled:
            raise KeyboardInterrupt from None
        raise
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if token.cancelled:
        raise KeyboardInterrupt


class Job(Generic[T]):
    """One background job: its number, a label for ``jobs()``, its state and, once ended, its result."""

    def __init__(self, number: int, label: str, order: Optional[Hashable]) -> None:
        self.number = number
        self.label = label
        self.order = order
        self.token = CancelToken()
        self.started = time.monotonic()
        self.state = "queued"  # queued (waiting its turn), running, done, failed, stopped
        self.result: Optional[T] = None
        self.error: Optional[BaseException] = None
        self.ended = threading.Event()
        self.thread: Optional[threading.Thread] = None

    @property
    def in_flight(self) -> bool:
        return not self.ended.is_set()

    def elapsed(self, now: Optional[float] = None) -> float:
        return (time.monotonic() if now is None else now) - self.started

    def __repr__(self) -> str:
        return f"<Job #{self.number} {self.state} {self.label!r}>"


class JobRegistry:
    """The background jobs of one session.

    ``runner`` runs a job's body on its thread; the IPython side passes one that enters the cell's
    context (so output machinery that reads context variables sees the right cell). ``spawn`` makes the
    thread (tests may pass their own).
    """

    def __init__(
        self,
        *,
        spawn: Optional[Callable[[Callable[[], None], str], threading.Thread]] = None,
    ) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._jobs: list[Job[Any]] = []  # in flight, in start order
        self._spawn = spawn or _daemon_thread

    # -- starting ------------------------------------------------------------------------------------------

    def start(
        self,
        work: Callable[[CancelToken], T],
        *,
        label: str,
        order: Optional[Hashable] = None,
        runner: Callable[[Callable[[], None]], None] = lambda body: body(),
        on_end: Callable[[Job[T]], None] = lambda job: None,
    ) -> Job[T]:
        """Run ``work(token)`` on a new daemon thread and return its :class:`Job` at once.

        With ``order``, the work starts only after every earlier job with the same key has ended (a job
        stopped while waiting raises :class:`Cancelled` out of ``work``'s place). ``on_end`` runs on the
        job's thread once it has ended, whatever the outcome; exceptions are kept on the job, never raised.
        """
        with self._lock:
            job: Job[T] = Job(next(self._numbers), label, order)
            self._jobs.append(job)

        def body() -> None:
            try:
                # Every earlier one, not only the last: that one may be stopped while the others still run.
                while order is not None and (before := self._last(order, before=job)) is not None:
                    before.ended.wait(0.05)
                    if job.token.cancelled:
                        raise Cancelled(job.token.reason)
                if job.token.cancelled:
                    raise Cancelled(job.token.reason)
                job.state = "running"
                job.result = work(job.token)
                job.state = "stopped" if job.token.cancelled else "done"
            except Cancelled as exc:
                job.error = exc
                job.state = "stopped"
            except BaseException as exc:  # a job must never take its thread's exception to the console
                job.error = exc
                job.state = "stopped" if job.token.cancelled else "failed"
            finally:
                try:
                    on_end(job)
                except Exception as exc:
                    job.error = job.error or exc
                finally:
                    self._ended(job)

        thread = self._spawn(lambda: runner(body), f"shenma-job-{job.number}")
        job.thread = thread
        thread.start()
        return job

    def _ended(self, job: Job[Any]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._jobs.remove(job)
        job.ended.set()

    def _last(self, order: Hashable, before: Optional[Job[Any]] = None) -> Optional[Job[Any]]:
        """The newest job in flight with this order key (started before ``before``, if given)."""
        last = float("inf") if before is None else before.number
        with self._lock:
            same = [j for j in self._jobs if j.order == order and j.number < last]
        return same[-1] if same else None

    # -- looking -------------------------------------------------------------------------------------------

    def in_flight(self) -> list[Job[Any]]:
        """The jobs not yet ended, oldest first."""
        with self._lock:
            return list(self._jobs)

    def busy(self, order: Hashable) -> Optional[Job[Any]]:
        """The last job in flight with this order key (the one a new turn would wait for), or None."""
        return self._last(order)

    # -- waiting and stopping ------------------------------------------------------------------------------

    def wait_turn(self, order: Hashable, timeout: Optional[float] = None) -> bool:
        """Block until every job with this order key has ended (True), or ``timeout`` passed (False).

        Ctrl-C while waiting raises KeyboardInterrupt and leaves the jobs running.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.busy(order)
            if job is None:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            job.ended.wait(0.1 if left is None else min(0.1, left))

    def wait(self, timeout: Optional[float] = None) -> list[Job[Any]]:
        """Block until every job in flight (also those started meanwhile) has ended; returns those waited for.

        Ctrl-C stops them all (they keep their partial answers), gives them a moment to write their last
        output, and raises KeyboardInterrupt. With ``timeout``, returns the jobs still running when it passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        waited: list[Job[Any]] = []
        try:
            while True:
                jobs = self.in_flight()
                if not jobs:
                    return waited
                for job in jobs:
                    if job not in waited:
                        waited.append(job)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return jobs
                # Short waits keep Ctrl-C prompt on every platform.
                jobs[0].ended.wait(0.1 if left is None else min(0.1, left))
        except KeyboardInterrupt:
            self.stop_all("stopped (Ctrl-C on wait): the partial answer is kept")
            raise

    def stop_all(self, reason: str = "stopped", grace: float = _STOP_GRACE) -> list[Job[Any]]:
        """Cancel every job in flight and wait up to ``grace`` seconds for them to end; returns them."""
        jobs = self.in_flight()
        for job in jobs:
            job.token.cancel(reason)
        deadline = time.monotonic() + grace
        for job in jobs:
            job.ended.wait(max(0.0, deadline - time.monotonic()))
        return jobs

    def shutdown(self) -> None:
        """The process is ending: close every job's connections now; wait only a moment."""
        self.stop_all("the kernel is shutting down", grace=1.0)


def _daemon_thread(body: Callable[[], None], name: str) -> threading.Thread:
    # Daemon: a kernel shutting down or restarting must never wait for a reply still streaming.
    return threading.Thread(target=body, name=name, daemon=True)
