"""A turn or a comparison started on a worker thread: ``Session.start`` and ``Session.start_compare``.

What is wrong with the request raises on the caller's thread, before anything waits; the first view (or
the columns) is made there too, so a cell shows it before it returns. The work then runs on the job's
thread (``_background.start_turn``): it waits for the earlier turns of its conversation, holds the
conversation's turn, and sends. The job is queued in its conversation's order, and it notes the branch
models it will leave behind for the turns checked while it is in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

from ._errors import ShenmaError
from ._jobs import CancelToken, Job
from ._models import ReplyBuilder
from ._prepare import prepare
from ._secret import excerpt
from ._sendturn import send_turn
from ._turn import ChatRequest, Frontend, Outcome
from ._turnorder import take_branch

if TYPE_CHECKING:
    from ._columns import ColumnsFrontend
    from ._comparison import ComparisonOutcome
    from ._display import View
    from ._session import Session

__all__ = ["start_comparison", "start_single"]

Runner = Optional[Callable[[Callable[[], None]], None]]


class _WithViews:
    """A frontend whose views come from a job's ``views()`` (the first was made on the caller's thread)."""

    def __init__(self, frontend: Frontend, views: Callable[[], View]) -> None:
        self.make_view = views
        self.ask = frontend.ask
        self.notify = frontend.notify
        self.show_images = frontend.show_images


def start_single(
    session: Session,
    request: ChatRequest,
    frontend: Frontend,
    *,
    label: Optional[str],
    runner: Runner,
    on_end: Callable[[Job[Outcome]], None],
) -> Job[Outcome]:
    """See :meth:`Session.start`."""
    from ._background import start_turn

    turn = prepare(session, request)
    conversation = session._conversation_for(request, turn.model)
    branches, conversation_id = session.branches, session.conversation_id
    if turn.images:
        frontend.show_images(turn.images)
    first = frontend.make_view()
    shown = label or f"{turn.model}: {excerpt(request.prompt, 40)}"

    def work(token: CancelToken, views: Callable[[], View]) -> Outcome:
        with session._order.one_turn(conversation):
            try:
                take_branch(branches, turn.model, conversation)
            except ShenmaError as exc:  # a turn before it left other branches than it was checked for
                views().finish(ReplyBuilder().build(error=f"{exc}; nothing was sent"), "not sent")
                raise
            return send_turn(
                session,
                turn,
                conversation,
                conversation_id,
                _WithViews(frontend, views),
                token=token,
                shown=True,
            )

    job = start_turn(
        session.jobs,
        work,
        label=shown,
        first_view=first,
        make_view=frontend.make_view,
        order=conversation,
        runner=runner,
        on_end=on_end,
    )
    session._order.planned[job] = []  # one model's turn leaves no branches
    return job


def start_comparison(
    session: Session,
    request: ChatRequest,
    frontend: ColumnsFrontend,
    *,
    label: Optional[str],
    runner: Runner,
    on_end: Callable[[Job[ComparisonOutcome]], None],
) -> Job[ComparisonOutcome]:
    """See :meth:`Session.start_compare`."""
    from ._background import ColumnsAsView, start_turn
    from ._comparison import plan_comparison, run_comparison

    if request.new:
        session.reset()
    plan = plan_comparison(session, request)
    conversation = plan.conversation
    if plan.prepared.images:
        frontend.show_images(plan.prepared.images)
    columns = frontend.make_columns(plan.models)
    shown = label or f"{', '.join(plan.models)}: {excerpt(request.prompt, 40)}"

    def work(token: CancelToken, views: Callable[[], View]) -> ComparisonOutcome:
        with session._order.one_turn(conversation):
            return run_comparison(
                session, request, frontend, plan, columns=columns, stop=lambda: token.cancelled
            )

    first = ColumnsAsView(columns, plan.models)  # ends the columns if the job stops before it starts
    job = start_turn(
        session.jobs,
        work,
        label=shown,
        first_view=first,
        make_view=lambda: first,
        order=conversation,
        runner=runner,
        on_end=on_end,
    )
    session._order.planned[job] = list(plan.models)
    return job
