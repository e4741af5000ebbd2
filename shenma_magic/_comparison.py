"""A comparison turn of a :class:`~shenma_magic.Session`: one user message, several models at once.

The session prepares the message once (``_prepare.prepare_shared``: the checks of a single turn); each model
then gets the conversation as it has seen it (the trunk and its own branch, see ``_branches``), its own
costing and its own lane (``_compare``). Afterwards each answer is recorded in its model's branch, charged
to its model, and parsed if JSON was asked for. The requests share the session's client for the host: a
``requests.Session`` serves concurrent requests on separate connections from its pool.

What can be checked is checked first (:func:`plan_comparison`), so a comparison started in the background
(``Session.start_compare``) refuses in its cell; the plan also holds the conversation it was asked in, so
one that waits its turn records there even if ``--new`` started another meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ._branches import Branches, check_models
from ._errors import ConfigError, ShenmaError
from ._models import Reply, ReplyBuilder
from ._prepare import Prepared, prepare_shared
from ._prompt import Conversation
from ._settings import Settings

if TYPE_CHECKING:
    from ._columns import ColumnsFrontend
    from ._compare import ColumnsView
    from ._costing import Costing
    from ._session import Session
    from ._turn import ChatRequest

__all__ = ["ComparisonOutcome", "Plan", "compare_models", "plan_comparison", "run_comparison"]


@dataclass
class ComparisonOutcome:
    """How a comparison ended: model → reply (partial on failure) in the order given, and what went wrong."""

    replies: dict[str, Reply]
    interrupted: bool = False
    errors: dict[str, ShenmaError] = field(default_factory=dict)  # server/transport failures, per model
    json_errors: dict[str, ShenmaError] = field(default_factory=dict)  # JSON that did not parse/validate


@dataclass(frozen=True)
class Plan:
    """A comparison checked before it is sent: its models, what every model gets, and where it records."""

    models: list[str]
    prepared: Prepared
    conversation: Conversation  # the trunk
    branches: Branches
    conversation_id: str


def compare_models(requested: Sequence[str], session: Session) -> list[str]:
    """The checked model names of a comparison: the ones given, else the branches' models (as they will be
    once the turns in flight have ended)."""
    models = [m.strip() for m in requested] if requested else session.branch_models()
    if not models:
        raise ConfigError(
            "a comparison needs the models to compare", "name two or more, e.g. gpt-4o-mini,deepseek-r1"
        )
    if any(not m for m in models):
        raise ConfigError("an empty model name in the list", "separate the names with commas, e.g. a,b,c")
    checked = [Settings().with_changes(model=m).model for m in models]
    twice = sorted({m for m in checked if checked.count(m) > 1})
    if twice:
        raise ConfigError(f"{', '.join(twice)} named twice", "name each model once")
    return checked


def plan_comparison(session: Session, request: ChatRequest) -> Plan:
    """Check the comparison (raises ConfigError, nothing sent) in the session's conversation as it is now
    (the caller has already started over for ``request.new``)."""
    models = compare_models(request.models, session)
    prepared = prepare_shared(session, request)
    check_models(session.branch_models(), models)
    return Plan(models, prepared, session.conversation, session.branches, session.conversation_id)


def run_comparison(
    session: Session,
    request: ChatRequest,
    frontend: ColumnsFrontend,
    plan: Optional[Plan] = None,
    *,
    columns: Optional[ColumnsView] = None,
    stop: Callable[[], bool] = lambda: False,
) -> ComparisonOutcome:
    """See :meth:`Session.run_compare`. The caller holds the conversation's turn lock.

    With ``plan`` and ``columns`` (a comparison started in the background: checked, and its columns shown,
    before it waited its turn), what fails now ends the columns with the news; ``stop()`` acts as Ctrl-C.
    """
    from ._compare import Lane, end_all, run_lanes
    from ._costing import Costing
    from ._hangup import Line, watch_client
    from ._turn import cut_note, parse_json_answer

    settings = session.settings
    plan = plan or plan_comparison(session, request)
    models, prepared, branches, trunk = plan.models, plan.prepared, plan.branches, plan.conversation
    try:
        # Again: a turn that ran before this one (it waited for it) may have changed the branches.
        branches.check(models)
        client = prepared.client or session.client(prepared.base_url)
    except ShenmaError as exc:
        if columns is not None:
            end_all(columns, models, ReplyBuilder().build(error=f"{exc}; nothing was sent"), "not sent")
        raise
    watch_client(client)
    options: dict[str, Any] = {**prepared.options, "extra": dict(prepared.extra) or None}
    lanes: list[Lane] = []
    costings: list[Costing] = []
    sent: list[list[dict[str, Any]]] = []
    for model in models:
        seen = branches.conversation(model, trunk)
        messages = seen.messages(prepared.content, system=prepared.system, max_turns=settings.max_history)
        costing = Costing.for_request(
            settings.prices, settings.currency, model, messages, options["max_tokens"]
        )
        line = Line()

        def open_stream(messages: list[dict[str, Any]] = messages, model: str = model) -> Any:
            return client.stream(messages, model=model, **options)

        lanes.append(
            Lane(
                model,
                open_stream,
                measure=costing.measure,
                money=costing.money,
                hang_up=line.hang_up,
                serving=line.serving,
            )
        )
        costings.append(costing)
        sent.append(messages)
    if columns is None:
        if prepared.images:
            frontend.show_images(prepared.images)
        columns = frontend.make_columns(models)
    results, interrupted = run_lanes(lanes, columns, interval=settings.update_interval, stop=stop)

    branches.keep(models)
    outcome = ComparisonOutcome({}, interrupted=interrupted)
    exchanges = []
    for result, costing, messages in zip(results, costings, sent, strict=True):
        reply, model = result.reply, result.model
        costing.charge(session.usage, model, reply)  # a request that produced nothing is not charged
        answer: Optional[str] = None
        turn = len(branches.conversation(model, trunk))
        if reply.text:
            answer = reply.text + cut_note(reply, result.interrupted)
            branches.branch(model).record(prepared.content, answer)
        if settings.log and (reply.text or reply.usage or reply.error):
            exchanges.append(_exchange(session, plan, model, messages, reply, costing, turn, answer))
        if result.exception is not None:
            outcome.errors[model] = result.exception
        if (request.json or request.schema is not None) and reply.text and reply.error is None:
            error = parse_json_answer(reply, request.schema)
            if error is not None:
                outcome.json_errors[model] = error
        outcome.replies[model] = reply
    if exchanges:
        session.journal.write(exchanges, frontend.notify)
    session.last_comparison = dict(outcome.replies)
    return outcome


def _exchange(
    session: Session,
    plan: Plan,
    model: str,
    messages: list[dict[str, Any]],
    reply: Reply,
    costing: Costing,
    turn: int,
    answer: Optional[str],
) -> Any:
    """One model's side of the comparison, as the log keeps it (its branch named by the model)."""
    from ._exchange import Exchange, request_key
    from ._secret import host_of

    figures = costing.counted(reply)
    cost, estimated, prompt_tokens, completion_tokens = figures or (None, False, 0, 0)
    return Exchange.from_reply(
        reply,
        notebook=session.notebook_id,
        host=host_of(plan.prepared.base_url),
        messages=messages,
        requested_model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        cost_estimated=estimated,
        currency=costing.currency,
        request_key=request_key(model, messages, {"model": model}),
        conversation=plan.conversation_id,
        turn=turn,
        branch=model,
        answer=answer,
    )
