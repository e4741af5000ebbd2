"""A session's side of the local log: the file opened on first use, each turn written as it ends, answers
looked up for replay, and the first failure turned into one line after which the chat goes on unlogged.
I/O only through :class:`~shenma_magic._store.Store`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    from ._exchange import Exchange, ExchangeRecord
    from ._models import Reply
    from ._store import Store

__all__ = ["Journal", "Round"]

Notify = Callable[[str], None]


@dataclass
class Round:
    """One request of a turn, as it was sent: the messages, its request key, whether the log answered it,
    and the reply once it has ended."""

    messages: list[dict[str, object]]
    key: str
    replayed: bool
    reply: Optional[Reply] = None


class Journal:
    """Opens the log lazily (``%load_ext`` and ``Session()`` stay light) and keeps the chat going when the
    file cannot be used: the first :class:`~shenma_magic._store.StoreError` is told once through
    ``notify`` and turns writing off for this session (``broken`` holds the line; :meth:`retry` clears it).

    Args:
        store: a Store, a path for one, or None for the default file.
        known_keys: every key the session could send, masked wherever it appears in what is written.
    """

    def __init__(
        self,
        store: Union[Store, str, os.PathLike[str], None],
        known_keys: Callable[[], Iterable[str]],
    ) -> None:
        self._store: Optional[Store] = None
        self._path: Union[str, os.PathLike[str], None] = None
        if store is not None and not isinstance(store, (str, os.PathLike)):
            self._store = store
        else:
            self._path = store
        self._known_keys = known_keys
        self.broken: Optional[str] = None

    @property
    def path(self) -> Path:
        """The log's file (the default one unless the session was given another)."""
        if self._store is not None:
            return self._store.path
        from ._store import store_path

        return Path(self._path) if self._path is not None else store_path()

    def store(self) -> Store:
        """The log, opened now if it is not yet. Raises StoreError (one line) if it cannot be used."""
        if self._store is None:
            from ._store import Store

            self._store = Store(self._path, known_keys=self._known_keys)
        return self._store

    def retry(self) -> None:
        """Try the file again on the next write (after the user fixed it, or turned logging back on)."""
        self.broken = None

    def _fail(self, exc: Exception, notify: Notify) -> None:
        self.broken = str(exc)
        notify(f"⚠ {exc}")

    def lookup(self, key: str, notify: Notify) -> Optional[ExchangeRecord]:
        """The logged answer to the request with this key, or None (none logged, or the log is unusable)."""
        if not key or self.broken is not None:
            return None
        from ._store import StoreError

        try:
            return self.store().find(key)
        except StoreError as exc:
            self._fail(exc, notify)
            return None

    def write(self, exchanges: Sequence[Exchange], notify: Notify) -> None:
        """Log a turn's exchanges (all or none); a failure is one line, and logging stops."""
        if not exchanges or self.broken is not None:
            return
        from ._store import StoreError

        try:
            self.store().record_many(exchanges)
        except StoreError as exc:
            self._fail(exc, notify)
