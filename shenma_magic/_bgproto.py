"""Prototype wiring of ``%%chat --bg`` over the existing magic's state, until the ``Session`` lands.

``submit(magics, prompt, ...)`` does what ``%%chat --bg`` will: decides where the turn runs, shows the
live view in the cell, and starts the turn as a job whose client, history and ``-o`` binding are the
magic's. It will be replaced by the Session's own turn; nothing outside the tests calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from ._background import (
    FOREGROUND_NOTE,
    HEADLESS,
    TERMINAL,
    ReportView,
    WithNote,
    cancel_on_abort,
    new_registry,
    outlet_line,
    placement,
    start_turn,
    thread_runner,
)
from ._display import MarkdownView, View, WidgetView
from ._jobs import CancelToken, Job, JobRegistry, cancellable
from ._prompt import Conversation
from ._run import TurnResult, run_chat
from ._secret import excerpt

__all__ = ["jobs_of", "submit"]


def jobs_of(magics: Any) -> JobRegistry:
    registry: Optional[JobRegistry] = getattr(magics, "_bg_jobs", None)
    if registry is None:
        registry = new_registry()
        magics._bg_jobs = registry
    return registry


def submit(
    magics: Any, prompt: str, *, model: Optional[str] = None, out: Optional[str] = None, new: bool = False
) -> Optional[Job[TurnResult]]:
    """Start a background turn (headless: run it now); returns its job, or None if it ran here."""
    from ._client import ChatClient

    jobs = jobs_of(magics)
    where = placement(magics.shell)
    model = magics.resolved_model(model)
    base_url = magics.resolved_base_url()
    key, _ = magics.keys.resolve(base_url)
    if new:
        # A new conversation object, not a cleared one: a turn still in flight records into its own.
        magics.conversation = Conversation()
    conversation = magics.conversation
    system = magics.system or None
    user_ns = magics.shell.user_ns
    label = f"{model}: {excerpt(prompt, 40)}"
    notify: Callable[[str], None] = print

    def turn(token: CancelToken, views: Any) -> TurnResult:
        client = ChatClient(base_url, key, max_retries=magics.max_retries, timeout=magics.timeout)
        cancel_on_abort(token, client)
        messages = conversation.messages(prompt, system=system, max_turns=magics.max_history)
        costing = magics._costing(model, messages)
        try:
            result, steps = run_chat(
                lambda msgs: cancellable(client.stream(msgs, model=model, timeout=magics.timeout), token),
                messages,
                make_view=views,
                model=model,
                interval=magics.update_interval,
                tokens=magics._token_counter(costing),
                on_round=lambda done: magics._charge(model, done.reply, costing),
                notify=notify,
            )
        finally:
            client.close()
        reply = result.reply
        if reply.text or reply.tool_calls or reply.reasoning:
            conversation.record(prompt, reply.text, steps)
        magics.last = reply
        if out:
            user_ns[out] = reply  # bound when the reply has ended, on the job's thread
        return result

    if where.kind == HEADLESS:
        busy = jobs.busy(conversation)
        if busy is not None:
            print(f"waiting for background reply #{busy.number} in this conversation to end…")
            jobs.wait_turn(conversation)
        turn(CancelToken(), lambda: WithNote(magics._make_view(), FOREGROUND_NOTE))
        return None

    busy = jobs.busy(conversation)
    waiting = (
        f"waiting for background reply #{busy.number} in this conversation to end…"
        if busy is not None
        else "waiting for the first token…"
    )
    numbered: list[int] = []

    def make_view() -> View:
        if where.kind == TERMINAL:
            return ReportView(lambda: f"[#{numbered[0] if numbered else '?'} {label}]")
        assert where.outlet is not None
        if magics.display == "markdown":
            return MarkdownView(outlet=where.outlet, waiting=waiting)
        try:
            return WidgetView(outlet=where.outlet, waiting=waiting)
        except ImportError:
            return MarkdownView(outlet=where.outlet, waiting=waiting)

    notify = outlet_line(where.outlet) if where.outlet is not None else print
    job = start_turn(
        jobs,
        turn,
        label=label,
        first_view=make_view(),
        make_view=make_view,
        order=conversation,
        runner=thread_runner(),
    )
    numbered.append(job.number)
    return job
