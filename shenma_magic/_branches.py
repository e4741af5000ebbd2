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

from collections.abc import Sequence

from ._errors import ConfigError
from ._prompt import Conversation

__all__ = ["BranchError", "Branches", "check_models"]


class BranchError(ConfigError):
    """A turn names a model that has no branch in a conversation that has branches; nothing was sent."""


class Branches(dict[str, Conversation]):
    """The branches of one conversation: model → its own turns after the trunk, in the order the comparison
    named them. A dict, so the log can restore one (``resume``) by assigning ``branches[model] = ...``."""

    @property
    def models(self) -> list[str]:
        return list(self)

    def check(self, models: Sequence[str]) -> None:
        """Refuse a turn for models that have no branch, while there are branches."""
        check_models(self.models, models)

    def conversation(self, model: str, trunk: Conversation) -> Conversation:
        """What ``model`` has seen: the trunk, then its own branch (a new object; the turns are shared)."""
        view = Conversation()
        branch = self.get(model)
        view.turns = [*trunk.turns, *(branch.turns if branch is not None else [])]
        return view

    def keep(self, models: Sequence[str]) -> None:
        """The models of a comparison about to run: their branches (new ones empty), in that order."""
        kept = {m: self.get(m) or Conversation() for m in models}
        self.clear()
        self.update(kept)

    def branch(self, model: str) -> Conversation:
        return self[model]

    def adopt(self, model: str, trunk: Conversation) -> None:
        """``model``'s branch becomes the rest of the trunk; the other branches are dropped."""
        branch = self.get(model)
        if branch is not None:
            trunk.turns.extend(branch.turns)
        self.clear()


def check_models(branches: Sequence[str], models: Sequence[str]) -> None:
    """Refuse a turn for models not among ``branches`` (the models of a conversation's branches, also as
    they will be once a comparison in flight has ended), unless there are none."""
    missing = [m for m in models if m not in branches] if branches else []
    if missing:
        raise BranchError(
            f"{', '.join(missing)} took no part in the comparison: the conversation has branches for "
            f"{', '.join(branches)}",
            "continue one of them, all of them, or start a new conversation",
        )
