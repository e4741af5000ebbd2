"""A turn or a comparison started on a worker thread: ``Session.start`` and ``Session.start_compare``.

What is wrong with the request raises on the caller's thread, before anything waits; the first view (or
the columns) is made there too, so a cell shows it before it returns. The work then runs on the job's
thread (``_background.start_turn``): it waits for the earlier turns of its conversation, holds the
conversation's turn, and sends. The job is queued in its conversation's order, and it notes the branch
models it will leave behind for the turns checked while it is in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Optional, TypeVar

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
    from ._prompt import Conversation
    from ._session import Session

__all__ = ["start_comparison", "start_single"]

Runner = Optional[Callable[[Callable[[], None]], None]]
T = TypeVar("T")


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
    turn = prepare(session, request)
    conversation = session._conversation_for(request, turn.model)
    branches, conversation_id = session.branches, session.conversation_id
    if turn.images:
        frontend.show_images(turn.images)
    first = frontend.make_view()
    shown = _job_label(label, [turn.model], request.prompt)

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

    # One model's turn leaves no branches.
    return _queue(session, conversation, [], work, first, frontend.make_view, shown, runner, on_end)


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
    from ._background import ColumnsAsView
    from ._comparison import plan_comparison, run_comparison

    if request.new:
        session.reset()
    plan = plan_comparison(session, request)
    conversation = plan.conversation
    if plan.prepared.images:
        frontend.show_images(plan.prepared.images)
    columns = frontend.make_columns(plan.models)
    shown = _job_label(label, plan.models, request.prompt)

    def work(token: CancelToken, views: Callable[[], View]) -> ComparisonOutcome:
        with session._order.one_turn(conversation):
            return run_comparison(
                session, request, frontend, plan, columns=columns, stop=lambda: token.cancelled
            )

    first = ColumnsAsView(columns, plan.models)  # ends the columns if the job stops before it starts
    leaves = list(plan.models)  # a branch for each model
    return _queue(session, conversation, leaves, work, first, lambda: first, shown, runner, on_end)


def _job_label(label: Optional[str], models: Sequence[str], prompt: str) -> str:
    """What ``%chat jobs`` calls a job: the label given, else its models and the start of its prompt."""
    return label or f"{', '.join(models)}: {excerpt(prompt, 40)}"


def _queue(
    session: Session,
    conversation: Conversation,
    leaves: list[str],
    work: Callable[[CancelToken, Callable[[], View]], T],
    first: View,
    make_view: Callable[[], View],
    label: str,
    runner: Runner,
    on_end: Callable[[Job[T]], None],
) -> Job[T]:
    """Start ``work`` as a job in its conversation's order, noting the branch models it ``leaves`` behind
    (for the turns checked while it is in flight). ``first`` is the view made on the caller's thread,
    ``make_view`` makes the later ones."""
    from ._background import start_turn

    job = start_turn(
        session.jobs,
        work,
        label=label,
        first_view=first,
        make_view=make_view,
        order=conversation,
        runner=runner,
        on_end=on_end,
    )
    session._order.planned[job] = leaves
    return job
