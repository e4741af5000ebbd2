"""The cyclic collector waits while an answer is rendered (shenma_magic._gcpause), and runs again after."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shenma_magic import _mdsafe
from shenma_magic._gcpause import collector_paused
from shenma_magic._render import render_block, render_html, safe_markdown


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_waits_while_a_block_renders_and_runs_again_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    tree = _mdsafe._tree

    def watched(tokens: list[Any]) -> Any:
        seen.append(gc.isenabled())
        return tree(tokens)

    monkeypatch.setattr(_mdsafe, "_tree", watched)
    render_block("| a | b |\n| - | - |\n| 1 | 2 |\n")
    safe_markdown("some *text*")
    assert seen == [False, False]
    assert gc.isenabled()


def test_an_error_while_rendering_still_lets_the_collector_run_again() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a render rule failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    render_html("# title")
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_renderings_in_several_threads_share_one_pause() -> None:
    """The first rendering to begin pauses the collector and the last to end lets it run, in whatever
    order they end."""
    inside = threading.Barrier(2)
    first_done = threading.Event()
    states: list[bool] = []

    def first() -> None:
        with collector_paused():
            inside.wait()
        first_done.set()

    def second() -> None:
        with collector_paused():
            inside.wait()
            first_done.wait(5)
            states.append(gc.isenabled())  # the first has ended: this one still renders
        states.append(gc.isenabled())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert states == [False, True]
