"""Sending one prepared turn, once it is its turn: the messages from the history as it is now, the
stream (or the log's answer), the tool rounds, and then the record: the conversation, the usage ledger,
the log and the parsed JSON value.

The turn's policy (the view refreshed at a bounded rate, Ctrl-C, tool rounds) is ``_run``'s; this module
wires it to the session's clients, costing, journal and conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Optional

from ._jobs import CancelToken, cancellable
from ._journal import Round
from ._models import Delta, ReplyBuilder
from ._prompt import Conversation
from ._secret import host_of
from ._turn import REPLAYED, Frontend, Outcome, cut_note, parse_json_answer

if TYPE_CHECKING:
    from ._client import ChatClient
    from ._costing import Costing
    from ._prepare import Turn
    from ._session import Session

__all__ = ["log_turn", "send_turn"]

Message = dict[str, Any]


def send_turn(
    session: Session,
    turn: Turn,
    conversation: Conversation,
    conversation_id: str,
    frontend: Frontend,
    *,
    token: Optional[CancelToken] = None,
    shown: bool = False,
) -> Outcome:
    """Build the messages from the history as it is now, stream, run tools, record, charge."""
    request, settings, model, options = turn.request, turn.settings, turn.model, turn.options
    messages = conversation.messages(turn.content, system=turn.system, max_turns=settings.max_history)
    turn_index = len(conversation)
    if turn.images and not shown:
        frontend.show_images(turn.images)
    from ._costing import Costing
    from ._run import Measure, run_chat

    own = token is not None
    clients: list[ChatClient] = []

    def client() -> ChatClient:
        # Made when a request is really sent: a turn answered from the log needs no key.
        if not clients:
            clients.append(session._own_client(turn.base_url) if own else session.client(turn.base_url))
            if token is not None:
                token.on_cancel(clients[0].abort)
        return clients[0]

    costing = Costing.for_request(settings.prices, settings.currency, model, messages, options["max_tokens"])
    rounds: list[Round] = []
    keyed = settings.log or turn.use_cache

    def send(msgs: list[Message]) -> Iterator[Delta]:
        from ._exchange import replay_deltas, request_key

        key = request_key(model, msgs, options) if keyed else ""
        hit = session.journal.lookup(key, frontend.notify) if turn.use_cache else None
        rounds.append(Round(list(msgs), key, hit is not None))
        if hit is not None:
            return iter(replay_deltas(hit))
        stream = client().stream(msgs, **options)
        return cancellable(stream, token) if token is not None else stream

    def measure(builder: ReplyBuilder) -> Measure:
        used = costing.measure(builder)
        # A replayed answer cost nothing now: the status line says where it came from instead.
        return Measure(used.tokens, 0.0) if rounds and rounds[-1].replayed else used

    def money(amount: float) -> str:
        return REPLAYED if rounds and all(r.replayed for r in rounds) else costing.money(amount)

    def round_done(done: Any) -> None:
        rounds[-1].reply = done.reply
        if not rounds[-1].replayed:
            costing.charge(session.usage, model, done.reply)

    try:
        result, steps = run_chat(
            send,
            messages,
            make_view=frontend.make_view,
            model=model,
            tools=turn.tools,
            ask=frontend.ask,
            notify=frontend.notify,
            interval=settings.update_interval,
            max_rounds=settings.max_tool_rounds,
            measure=measure,
            money=money,
            on_round=round_done,
            describe=lambda err: session.describe_error(err, turn.base_url),
        )
    finally:
        if own and clients:
            clients[0].close()
    reply = result.reply
    answer: Optional[str] = None
    if reply.text or steps:
        # A turn that showed text is kept, even if it was cut short (marked so, for the model's sake);
        # one that produced no answer text is not: the conversation never holds an empty answer.
        answer = reply.text + cut_note(reply, result.interrupted)
        conversation.record(turn.content, answer, steps)
    if any(r.replayed for r in rounds):
        reply.notices.append(REPLAYED)
    if settings.log:
        log_turn(session, turn, rounds, costing, conversation_id, turn_index, answer, frontend.notify)
    session.last = reply
    session.last_comparison = None
    outcome = Outcome(reply, interrupted=result.interrupted, error=result.exception)
    if (request.json or request.schema is not None) and reply.text and reply.error is None:
        outcome.json_error = parse_json_answer(reply, request.schema)
        if outcome.json_error is None:
            outcome.value = reply.value
            outcome.has_value = True
    return outcome


def log_turn(
    session: Session,
    turn: Turn,
    rounds: list[Round],
    costing: Costing,
    conversation_id: str,
    index_in_conversation: int,
    answer: Optional[str],
    notify: Callable[[str], None],
) -> None:
    """Write the turn's requests to the log; the last one carries the answer the conversation kept."""
    from ._exchange import Exchange

    done = [r for r in rounds if r.reply is not None]
    exchanges = []
    for index, sent in enumerate(done):
        assert sent.reply is not None
        figures = costing.counted(sent.reply)
        cost, estimated, prompt_tokens, completion_tokens = figures or (None, False, 0, 0)
        exchanges.append(
            Exchange.from_reply(
                sent.reply,
                notebook=session.notebook_id,
                host=host_of(turn.base_url),
                messages=sent.messages,
                requested_model=turn.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=cost,
                cost_estimated=estimated,
                currency=costing.currency,
                request_key=sent.key,
                conversation=conversation_id,
                turn=index_in_conversation,
                answer=answer if index == len(done) - 1 else None,
                replayed=sent.replayed,
            )
        )
    session.journal.write(exchanges, notify)
