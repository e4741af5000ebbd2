"""The per-model branches a comparison leaves in a conversation. Pure.

Before a comparison a conversation is one line of turns (the trunk, ``Session.conversation``). After
``%%chat -m a,b,c`` each model has a branch of its own: the trunk, then that model's answers and nobody
else's. What a later turn does with them:

* a comparison of the same models (a plain ``%%chat``, or ``-m`` naming some of them) continues each branch
  with its own model; models left out drop out of the comparison;
* one model (``-m b``) picks that branch: its turns join the trunk and the other branches are dropped, so
  later cells are ordinary single-model turns that carry b's side of the conversation;
* ``--new`` / ``reset()`` forgets the trunk and every branch.

Each branch is a :class:`~shenma_magic._prompt.Conversation`, so a branch's turns are recorded exactly as
the trunk's are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ._errors import ConfigError
from ._prompt import Conversation

__all__ = ["BranchError", "Branches"]


class BranchError(ConfigError):
    """A turn names a model that has no branch in a conversation that has branches; nothing was sent."""


class Branches:
    """The branches of one conversation, by model, in the order the comparison named them."""

    def __init__(self) -> None:
        self._by_model: dict[str, Conversation] = {}

    def __bool__(self) -> bool:
        return bool(self._by_model)

    def __len__(self) -> int:
        return len(self._by_model)

    def __contains__(self, model: object) -> bool:
        return model in self._by_model

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_model))

    @property
    def models(self) -> list[str]:
        return list(self._by_model)

    def clear(self) -> None:
        self._by_model = {}

    def check(self, models: Sequence[str]) -> None:
        """Refuse a turn for models that have no branch, while there are branches."""
        if not self._by_model:
            return
        missing = [m for m in models if m not in self._by_model]
        if missing:
            names = ", ".join(self._by_model)
            raise BranchError(
                f"{', '.join(missing)} took no part in the comparison: the conversation has branches for "
                f"{names}",
                "continue one of them, all of them, or start a new conversation",
            )

    def conversation(self, model: str, trunk: Conversation) -> Conversation:
        """What ``model`` has seen: the trunk, then its own branch (a new object; the turns are shared)."""
        view = Conversation()
        branch = self._by_model.get(model)
        view.turns = [*trunk.turns, *(branch.turns if branch is not None else [])]
        return view

    def keep(self, models: Sequence[str]) -> None:
        """The models of a comparison about to run: their branches (new ones empty), in that order."""
        self._by_model = {m: self._by_model.get(m) or Conversation() for m in models}

    def branch(self, model: str) -> Conversation:
        return self._by_model[model]

    def adopt(self, model: str, trunk: Conversation) -> None:
        """``model``'s branch becomes the rest of the trunk; the other branches are dropped."""
        branch = self._by_model.get(model)
        if branch is not None:
            trunk.turns.extend(branch.turns)
        self.clear()
