"""A comparison turn of a :class:`~shenma_magic.Session`: one user message, several models at once.

The session prepares the message once (``Session._prepare_shared``: the checks of a single turn); each model
then gets the conversation as it has seen it (the trunk and its own branch, see ``_branches``), its own
costing and its own lane (``_compare``). Afterwards each answer is recorded in its model's branch, charged
to its model, and parsed if JSON was asked for. The requests share the session's client for the host: a
``requests.Session`` serves concurrent requests on separate connections from its pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ._errors import ConfigError, ShenmaError
from ._models import Reply
from ._settings import Settings

if TYPE_CHECKING:
    from ._columns import ColumnsFrontend
    from ._costing import Costing
    from ._session import ChatRequest, Session

__all__ = ["ComparisonOutcome", "compare_models", "run_comparison"]


@dataclass
class ComparisonOutcome:
    """How a comparison ended: model → reply (partial on failure) in the order given, and what went wrong."""

    replies: dict[str, Reply]
    interrupted: bool = False
    errors: dict[str, ShenmaError] = field(default_factory=dict)  # server/transport failures, per model
    json_errors: dict[str, ShenmaError] = field(default_factory=dict)  # JSON that did not parse/validate


def compare_models(requested: Sequence[str], session: Session) -> list[str]:
    """The checked model names of a comparison: the ones given, else the branches' models."""
    models = [m.strip() for m in requested] if requested else session.branches.models
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


def run_comparison(session: Session, request: ChatRequest, frontend: ColumnsFrontend) -> ComparisonOutcome:
    """See :meth:`Session.run_compare`. The caller holds the session's turn lock."""
    from ._compare import Lane, run_lanes
    from ._costing import Costing
    from ._hangup import Line, watch_client
    from ._session import _cut_note

    settings = session.settings
    models = compare_models(request.models, session)
    prepared = session._prepare_shared(request)  # run_compare has already started over for request.new
    session.branches.check(models)
    client = prepared.client or session.client(prepared.base_url)
    watch_client(client)
    options: dict[str, Any] = {**prepared.options, "extra": dict(prepared.extra) or None}
    lanes: list[Lane] = []
    costings: list[Costing] = []
    sent: list[list[dict[str, Any]]] = []
    for model in models:
        seen = session.branches.conversation(model, session.conversation)
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
    if prepared.images:
        frontend.show_images(prepared.images)
    results, interrupted = run_lanes(lanes, frontend.make_columns(models), interval=settings.update_interval)

    session.branches.keep(models)
    outcome = ComparisonOutcome({}, interrupted=interrupted)
    exchanges = []
    for result, costing, messages in zip(results, costings, sent, strict=True):
        reply, model = result.reply, result.model
        costing.charge(session.usage, model, reply)  # a request that produced nothing is not charged
        answer: Optional[str] = None
        turn = len(session.branches.conversation(model, session.conversation))
        if reply.text:
            answer = reply.text + _cut_note(reply, result.interrupted)
            session.branches.branch(model).record(prepared.content, answer)
        if settings.log and (reply.text or reply.usage or reply.error):
            exchanges.append(
                _exchange(session, prepared.base_url, model, messages, reply, costing, turn, answer)
            )
        if result.exception is not None:
            outcome.errors[model] = result.exception
        if (request.json or request.schema is not None) and reply.text and reply.error is None:
            error = _parse_json(reply, request.schema)
            if error is not None:
                outcome.json_errors[model] = error
        outcome.replies[model] = reply
    if exchanges:
        session.journal.write(exchanges, frontend.notify)
    session.last_comparison = dict(outcome.replies)
    return outcome


def _exchange(
    session: Session,
    base_url: str,
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
        host=host_of(base_url),
        messages=messages,
        requested_model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        cost_estimated=estimated,
        currency=costing.currency,
        request_key=request_key(model, messages, {"model": model}),
        conversation=session.conversation_id,
        turn=turn,
        branch=model,
        answer=answer,
    )


def _parse_json(reply: Reply, schema: Any) -> Optional[ShenmaError]:
    """Put the answer's JSON value on ``reply.value``, as a single JSON turn does; the error if it fails."""
    from ._jsonout import recover_json, validate_against

    try:
        value = recover_json(reply.text)
        if schema is not None:
            value = validate_against(value, schema)
    except ShenmaError as exc:
        return exc
    reply.value = value
    return None
