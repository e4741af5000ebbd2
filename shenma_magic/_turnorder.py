"""Turns of one conversation never overlap and keep their order.

Each conversation has a lock; a turn holds it while it runs, and the thread running it is noted, so a tool
that starts another chat in the same conversation is refused at once instead of waiting for itself. A turn
started while a background turn of its conversation is in flight first waits for that turn's place in the
queue to come, saying so through its frontend. A background turn also says which branch models it will
leave behind (a comparison its models, a single turn none), for the turns checked while it is in flight.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Optional, Union

from ._branches import Branches
from ._errors import ConfigError
from ._prompt import Conversation
from ._turn import ChatInterrupted, Frontend

if TYPE_CHECKING:
    from ._columns import ColumnsFrontend
    from ._jobs import Job, JobRegistry

__all__ = ["TurnOrder", "take_branch", "wait_for_background"]


class TurnOrder:
    """The turn locks of a session's conversations, and the branches its background turns will leave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One lock per conversation, and the thread running a turn in it (a tool may not chat back).
        self._locks: weakref.WeakKeyDictionary[Conversation, threading.Lock] = weakref.WeakKeyDictionary()
        self._owners: weakref.WeakKeyDictionary[Conversation, int] = weakref.WeakKeyDictionary()
        # The branch models a conversation will have once this background turn (and those before it) ended.
        self.planned: weakref.WeakKeyDictionary[Job[Any], list[str]] = weakref.WeakKeyDictionary()

    @contextmanager
    def one_turn(self, conversation: Conversation) -> Iterator[None]:
        """Hold the conversation's turn (ConfigError if this thread already holds it)."""
        me = threading.get_ident()
        with self._lock:
            if self._owners.get(conversation) == me:
                raise ConfigError(
                    "a chat turn is already running here (a tool cannot start another chat in the same "
                    "conversation)",
                    "nothing was sent; use another Session inside the tool",
                )
            lock = self._locks.setdefault(conversation, threading.Lock())
        # Turns of one conversation from several threads (the caller's own) take turns.
        with lock:
            self._owners[conversation] = me
            try:
                yield
            finally:
                self._owners.pop(conversation, None)

    def branch_models(
        self, jobs: Optional[JobRegistry], conversation: Conversation, branches: Branches
    ) -> list[str]:
        """The models of the conversation's branches once the background turns in flight in it ended."""
        busy = jobs.busy(conversation) if jobs is not None else None
        if busy is None:
            return branches.models
        return list(self.planned.get(busy, branches.models))


def wait_for_background(
    jobs: Optional[JobRegistry], conversation: Conversation, frontend: Union[Frontend, ColumnsFrontend]
) -> None:
    """Wait until the background turns of ``conversation`` in flight have ended, saying so; Ctrl-C raises
    ChatInterrupted (nothing was sent). A turn on the thread of the one in flight does not wait."""
    if jobs is None:
        return
    busy = jobs.busy(conversation)
    if busy is None or busy.thread is threading.current_thread():
        return
    frontend.notify(f"waiting for background reply #{busy.number} in this conversation to end…")
    try:
        jobs.wait_turn(conversation)
    except KeyboardInterrupt:
        raise ChatInterrupted(
            "interrupted while waiting for the background reply: nothing was sent"
        ) from None


def take_branch(branches: Branches, model: str, trunk: Conversation) -> None:
    """One model after a comparison, once its turn has come: it continues its own branch, which becomes
    the conversation (BranchError if the comparison left none for it)."""
    if branches:
        branches.check([model])
        branches.adopt(model, trunk)
