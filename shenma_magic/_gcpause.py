"""Pausing Python's cyclic garbage collector while a large answer is rendered.

Parsing a 1 MB table makes some 460,000 tokens, and writing it out again as safe Markdown a node for
each: all of them stay alive until the rendering ends. Every few hundred allocations the collector
runs, and the older generations it runs on hold these objects: they are traversed over and over, which
took more than half the time of rendering such a block (1.4 s of 2.3 s for the parse, 1.1 s of 1.4 s for
the Markdown writer). Rendering makes no cycles that must be collected before it ends, so the collector
waits until it does. Process-wide state, so a count shared by every thread decides when it runs again,
and a collector that was off before stays off.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["collector_paused"]

_lock = threading.Lock()
_holders = 0  # renderings in progress, in any thread
_was_enabled = False  # the collector's state when the first of them began


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
