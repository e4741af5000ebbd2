"""The local log: every exchange in one SQLite file, so memory and spend outlive the kernel. I/O (sqlite3).

One file, ``$XDG_DATA_HOME/shenma-magic/log.sqlite3`` (default ``~/.local/share/shenma-magic/``): folder
0700, file 0600. Several kernels write it at once: WAL mode, one short transaction per exchange, and a busy
timeout instead of failing on the first lock. Images are kept once, by the SHA-256 of their bytes; a
message keeps only a reference. No key is ever written: every text passes through the known keys' masks
and the key-shape mask first. A file that cannot be used raises :class:`StoreError` with one line, and the
caller goes on without logging.

The schema is versioned with ``PRAGMA user_version`` and upgraded by :data:`_MIGRATIONS` in order; a file
from a newer release is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from ._errors import ShenmaError
from ._exchange import (
    ConversationRecord,
    Exchange,
    ExchangeRecord,
    Turn,
    UsageRow,
    conversation_from,
    image_refs,
    last_user_text,
    request_key,
    sum_usage,
)
from ._secret import mask_keys, redact

__all__ = [
    "SCHEMA_VERSION",
    "ConversationRecord",
    "Exchange",
    "ExchangeRecord",
    "Forgotten",
    "Store",
    "StoreError",
    "Turn",
    "UsageRow",
    "request_key",
    "store_path",
]

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_SQL_CHUNK = 500  # host parameters per IN (...) query, well under SQLite's limit
# What a replay may use. ``request_key != ''`` lets SQLite use the partial index on request keys.
_ANSWERED = "request_key != '' AND complete = 1 AND error IS NULL"


class StoreError(ShenmaError):
    """The log cannot be used (damaged, locked, not writable, or from a newer release). The message is one
    line naming the file; the chat goes on without logging."""


def store_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the log lives: ``$XDG_DATA_HOME/shenma-magic/log.sqlite3``, default ``~/.local/share/...``.
    A relative ``XDG_DATA_HOME`` is ignored, as the XDG spec says."""
    base = environ.get("XDG_DATA_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "shenma-magic" / "log.sqlite3"


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`Store.forget` removed. ``wiped`` is False when another process was reading the log, so
    the removed text may stay in its write-ahead file until that process lets go."""

    exchanges: int
    images: int
    wiped: bool


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is the user's local time
    return moment.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def _unstamp(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=timezone.utc)


def _shown(path: Path) -> str:
    home = os.path.expanduser("~")
    text = str(path)
    return "~" + text[len(home) :] if home not in ("", "/") and text.startswith(home + os.sep) else text


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- the store -------------------------------------------------------------------------------------------

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: exchanges, images kept once by hash, and which exchange uses which image (so forget can drop
    # the images nobody uses any more).
    (
        """CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            notebook TEXT NOT NULL,
            host TEXT NOT NULL,
            model TEXT NOT NULL,
            requested_model TEXT NOT NULL,
            messages TEXT NOT NULL,
            prompt TEXT NOT NULL,
            reply TEXT NOT NULL,
            reasoning TEXT NOT NULL,
            tool_calls TEXT NOT NULL,
            finish_reason TEXT,
            usage TEXT,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost REAL,
            cost_estimated INTEGER NOT NULL,
            currency TEXT NOT NULL,
            error TEXT,
            complete INTEGER NOT NULL,
            request_key TEXT NOT NULL,
            conversation TEXT NOT NULL,
            branch TEXT NOT NULL,
            turn INTEGER NOT NULL,
            answer TEXT,
            replayed INTEGER NOT NULL
        )""",
        "CREATE INDEX exchanges_by_notebook ON exchanges (notebook, id)",
        "CREATE INDEX exchanges_by_time ON exchanges (time)",
        "CREATE INDEX exchanges_by_request ON exchanges (request_key, id) WHERE request_key != ''",
        "CREATE TABLE images (sha256 TEXT PRIMARY KEY, mime TEXT NOT NULL, data BLOB) WITHOUT ROWID",
        """CREATE TABLE exchange_images (
            exchange_id INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            PRIMARY KEY (exchange_id, sha256)
        ) WITHOUT ROWID""",
        "CREATE INDEX exchange_images_by_image ON exchange_images (sha256)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_COLUMNS = (
    "id, time, notebook, host, model, requested_model, messages, prompt, reply, reasoning, tool_calls, "
    "finish_reason, usage, prompt_tokens, completion_tokens, cost, cost_estimated, currency, error, "
    "complete, request_key, conversation, branch, turn, answer, replayed"
)
_INSERT = (
    f"INSERT INTO exchanges ({_COLUMNS.split(', ', 1)[1]}) VALUES ({', '.join('?' * (_COLUMNS.count(',')))})"
)


class Store:
    """The log file. Thread-safe (one connection behind a lock); several processes may share the file.

    Args:
        path: the file (default :func:`store_path`).
        known_keys: called before each write; every key it returns is masked wherever it appears.
        busy_timeout: seconds to wait for another process's write before giving up.

    Raises:
        StoreError: the file cannot be created, opened or upgraded (one line naming the file).
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str], None] = None,
        *,
        known_keys: Callable[[], Iterable[str]] = lambda: (),
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path) if path is not None else store_path()
        self._known_keys = known_keys
        self._lock = threading.RLock()
        self._busy_timeout = busy_timeout
        self._db: Optional[sqlite3.Connection] = None
        with self._errors("cannot be opened"):
            self._prepare_file(own_folder=path is None)
            self._db = sqlite3.connect(
                str(self.path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
            self._db.execute("PRAGMA synchronous = NORMAL")
            # Deleted rows are overwritten with zeros, so forgotten text does not linger in free pages.
            self._db.execute("PRAGMA secure_delete = ON")
            self._tighten(self.path.with_name(self.path.name + "-wal"))
            self._tighten(self.path.with_name(self.path.name + "-shm"))

    def __repr__(self) -> str:
        return f"Store({_shown(self.path)!r})"

    def close(self) -> None:
        """Close the file (the object cannot be used afterwards)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening ---------------------------------------------------------------------------------------

    def _prepare_file(self, *, own_folder: bool) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, mode=0o700, exist_ok=True)
            own_folder = True
        if own_folder:
            # Our own folder: nobody else has business listing it. (A folder the caller chose is theirs.)
            with contextlib.suppress(OSError):
                if stat.S_IMODE(folder.stat().st_mode) != 0o700:
                    folder.chmod(0o700)
        # Created 0600 before SQLite sees it, so there is no moment when it is readable by others; and never
        # through a symlink someone planted.
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"the chat log at {_shown(self.path)} is not a file", "logging is off")
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)

    @staticmethod
    def _tighten(path: Path) -> None:
        with contextlib.suppress(OSError):
            if stat.S_IMODE(path.lstat().st_mode) & 0o077:
                path.chmod(0o600)

    def _migrate(self) -> None:
        db = self._conn()
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the chat log at {_shown(self.path)} was written by a newer shenma-magic "
                f"(schema {version}, this one knows {SCHEMA_VERSION})",
                "logging is off; upgrade shenma-magic to use it",
            )
        if version == SCHEMA_VERSION:
            return
        with self._transaction() as cur:
            # Another process may have upgraded it while we waited for the write lock.
            version = int(cur.execute("PRAGMA user_version").fetchone()[0])
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[number - 1]:
                    cur.execute(statement)
                cur.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn SQLite and file errors into one StoreError line."""
        where = f"the chat log at {_shown(self.path)}"
        try:
            yield
        except StoreError:
            raise
        except sqlite3.Error as exc:
            text = _one_line(str(exc)) or type(exc).__name__
            low = text.lower()
            if "not a database" in low or "malformed" in low or "corrupt" in low:
                raise StoreError(
                    f"{where} is damaged ({text})", "logging is off; move the file aside to start a new log"
                ) from None
            if "locked" in low or "busy" in low:
                raise StoreError(
                    f"{where} is locked by another process ({text})", "logging is off for this session"
                ) from None
            if "readonly" in low or "read-only" in low or "unable to open" in low or "disk i/o" in low:
                raise StoreError(
                    f"{where} cannot be written ({text})",
                    "logging is off; check the folder's permissions or set XDG_DATA_HOME",
                ) from None
            if "no such table" in low or "already exists" in low or "no such column" in low:
                raise StoreError(
                    f"{where} is not a shenma-magic log ({text})",
                    "logging is off; move the file aside to start a new log",
                ) from None
            raise StoreError(f"{where} {doing} ({text})", "logging is off for this session") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StoreError(
                f"{where} {doing} ({reason})",
                "logging is off; check the folder's permissions or set XDG_DATA_HOME",
            ) from None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"the chat log at {_shown(self.path)} is closed")
        return self._db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """A short write transaction; IMMEDIATE takes the write lock up front so it waits, not deadlocks."""
        db = self._conn()
        cur = db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # -- scrubbing -------------------------------------------------------------------------------------

    def _keys(self) -> tuple[str, ...]:
        try:
            keys = tuple(k for k in self._known_keys() if isinstance(k, str) and k)
        except Exception:  # the key source failing must not let text through unmasked: refuse to write
            raise StoreError(
                f"the chat log at {_shown(self.path)} was not written: the known keys could not be read",
                "this exchange was not logged",
            ) from None
        # Also as JSON spells them inside a string, and inside a string in a string (tool arguments are JSON
        # text): a key with a quote or a backslash would otherwise pass the mask in its escaped form.
        variants = set(keys)
        for key in keys:
            for ascii_only in (False, True):
                once = json.dumps(key, ensure_ascii=ascii_only)[1:-1]
                variants.update((once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]))
        # Longest first, so a key containing another is masked whole.
        return tuple(sorted(variants, key=len, reverse=True))

    @staticmethod
    def _scrub_text(text: str, keys: tuple[str, ...]) -> str:
        return mask_keys(redact(text, *keys))

    def _scrub(self, value: Any, keys: tuple[str, ...]) -> Any:
        if isinstance(value, str):
            return self._scrub_text(value, keys)
        if isinstance(value, Mapping):
            return {self._scrub_text(str(k), keys): self._scrub(v, keys) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._scrub(v, keys) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self._scrub_text(str(value), keys)

    def _json(self, value: Any, keys: tuple[str, ...]) -> str:
        # Scrubbed before and after encoding: the structure's strings, then the text as a whole.
        text = json.dumps(self._scrub(value, keys), ensure_ascii=False, separators=(",", ":"), default=str)
        return self._scrub_text(text, keys)

    # -- writing ---------------------------------------------------------------------------------------

    def record(self, exchange: Exchange) -> int:
        """Log one exchange; returns its id. Images are stored once however often they are sent.

        Raises:
            StoreError: the file could not be written (one line); nothing was logged.
        """
        return self.record_many([exchange])[0]

    def record_many(self, exchanges: Sequence[Exchange]) -> list[int]:
        """Log several exchanges in one transaction (all or none, e.g. the rounds of one turn); their ids.

        Raises:
            StoreError: the file could not be written (one line); nothing was logged.
        """
        keys = self._keys()
        prepared = [self._row(exchange, keys) for exchange in exchanges]
        ids: list[int] = []
        with self._lock, self._errors("cannot be written"), self._transaction() as cur:
            for row, blobs in prepared:
                cur.execute(_INSERT, row)
                rowid = cur.lastrowid
                assert rowid is not None
                ids.append(rowid)
                cur.executemany("INSERT OR IGNORE INTO images (sha256, mime, data) VALUES (?, ?, ?)", blobs)
                cur.executemany(
                    "INSERT OR IGNORE INTO exchange_images (exchange_id, sha256) VALUES (?, ?)",
                    [(rowid, blob[0]) for blob in blobs],
                )
        return ids

    def _row(
        self, exchange: Exchange, keys: tuple[str, ...]
    ) -> tuple[tuple[Any, ...], list[tuple[str, str, Optional[bytes]]]]:
        """The exchange as a row of scrubbed values, and its images as (sha256, mime, bytes or None)."""
        images: dict[str, tuple[str, bytes]] = {}
        messages = image_refs(exchange.messages, images)
        clean = self._scrub_text

        def maybe(text: Optional[str]) -> Optional[str]:
            return clean(text, keys) if text is not None else None

        row = (
            _stamp(exchange.time or datetime.now(timezone.utc)),
            clean(exchange.notebook, keys),
            clean(exchange.host, keys),
            clean(exchange.model, keys),
            clean(exchange.requested_model or exchange.model, keys),
            self._json(messages, keys),
            clean(last_user_text(messages), keys),
            clean(exchange.reply, keys),
            clean(exchange.reasoning, keys),
            self._json(list(exchange.tool_calls), keys),
            maybe(exchange.finish_reason),
            self._json(exchange.usage, keys) if exchange.usage is not None else None,
            max(0, int(exchange.prompt_tokens)),
            max(0, int(exchange.completion_tokens)),
            float(exchange.cost) if exchange.cost is not None else None,
            int(bool(exchange.cost_estimated)),
            clean(exchange.currency, keys),
            maybe(exchange.error),
            int(bool(exchange.complete)),
            exchange.request_key,
            clean(exchange.conversation, keys),
            clean(exchange.branch, keys),
            int(exchange.turn),
            maybe(exchange.answer),
            int(bool(exchange.replayed)),
        )
        blobs: list[tuple[str, str, Optional[bytes]]] = []
        for digest, (mime, data) in images.items():
            # Image bytes cannot be masked without breaking the image: one carrying a key is not kept.
            leaks = any(k.encode("utf-8", "surrogatepass") in data for k in keys if len(k) >= 6)
            blobs.append((digest, clean(mime, keys), None if leaks else data))
        return row, blobs

    def forget(self, notebook: Optional[str]) -> Forgotten:
        """Delete this notebook's exchanges (None: everything) and the images no exchange uses any more,
        then rebuild the file (VACUUM) and empty the write-ahead file, so the text is gone from the disk."""
        with self._lock, self._errors("cannot be cleared"):
            with self._transaction() as cur:
                if notebook is None:
                    exchanges = cur.execute("DELETE FROM exchanges").rowcount
                    cur.execute("DELETE FROM exchange_images")
                else:
                    cur.execute(
                        "DELETE FROM exchange_images WHERE exchange_id IN "
                        "(SELECT id FROM exchanges WHERE notebook = ?)",
                        (notebook,),
                    )
                    exchanges = cur.execute("DELETE FROM exchanges WHERE notebook = ?", (notebook,)).rowcount
                images = cur.execute(
                    "DELETE FROM images WHERE sha256 NOT IN (SELECT sha256 FROM exchange_images)"
                ).rowcount
            db = self._conn()
            db.execute("VACUUM")
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return Forgotten(exchanges=max(0, exchanges), images=max(0, images), wiped=not (busy and busy[0]))

    # -- reading ---------------------------------------------------------------------------------------

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[ExchangeRecord]:
        with self._lock, self._errors("cannot be read"):
            cursor = self._conn().execute(sql, params)
            cursor.row_factory = sqlite3.Row
            rows = cursor.fetchall()
        return [self._record(r) for r in rows]

    @staticmethod
    def _record(row: sqlite3.Row) -> ExchangeRecord:
        fields = dict(zip(row.keys(), row, strict=True))
        for name in ("messages", "tool_calls", "usage"):
            if fields[name] is not None:
                fields[name] = json.loads(fields[name])
        for name in ("cost_estimated", "complete", "replayed"):
            fields[name] = bool(fields[name])
        fields["time"] = _unstamp(fields["time"])
        return ExchangeRecord(**fields)

    def recent(
        self, notebook: Optional[str], limit: int = 20, search: Optional[str] = None
    ) -> list[ExchangeRecord]:
        """The last ``limit`` exchanges of ``notebook`` (None: of every notebook), oldest first. ``search``
        keeps those whose prompt or reply contains every one of its words (case-insensitive for ASCII)."""
        where, params = [], []
        if notebook is not None:
            where.append("notebook = ?")
            params.append(notebook)
        for word in (search or "").split():
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(prompt LIKE ? ESCAPE '\\' OR reply LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        sql = f"SELECT {_COLUMNS} FROM exchanges"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        records = self._select(sql, [*params, max(0, int(limit))])
        records.reverse()
        return records

    def find(self, request_key: str) -> Optional[ExchangeRecord]:
        """The latest complete, error-free answer to the request with this key (see :func:`request_key`),
        from any notebook; None if the log has none."""
        if not request_key:
            return None
        found = self._select(
            f"SELECT {_COLUMNS} FROM exchanges WHERE request_key = ? AND {_ANSWERED} "
            "ORDER BY id DESC LIMIT 1",
            (request_key,),
        )
        return found[0] if found else None

    def find_many(self, request_keys: Collection[str]) -> dict[str, ExchangeRecord]:
        """:meth:`find` for many keys at once: key → record, for the keys the log can answer."""
        wanted = sorted({k for k in request_keys if k})
        found: dict[str, ExchangeRecord] = {}
        for start in range(0, len(wanted), _SQL_CHUNK):
            chunk = wanted[start : start + _SQL_CHUNK]
            for record in self._select(
                f"SELECT {_COLUMNS} FROM exchanges WHERE {_ANSWERED} "
                f"AND request_key IN ({', '.join('?' * len(chunk))}) ORDER BY id",
                chunk,
            ):
                found[record.request_key] = record  # ascending ids: the latest wins
        return found

    def image(self, sha256: str) -> Optional[tuple[str, bytes]]:
        """(mime, bytes) of a stored image, or None if the log does not hold it."""
        with self._lock, self._errors("cannot be read"):
            row = self._conn().execute("SELECT mime, data FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None or row[1] is None:
            return None
        return str(row[0]), bytes(row[1])

    def conversation(self, notebook: str) -> Optional[ConversationRecord]:
        """This notebook's last conversation, turn by turn per branch, with images restored (see
        :func:`conversation_from`); None if the log holds none."""
        with self._lock, self._errors("cannot be read"):
            latest = (
                self._conn()
                .execute(
                    "SELECT conversation FROM exchanges WHERE notebook = ? AND conversation != '' "
                    "ORDER BY id DESC LIMIT 1",
                    (notebook,),
                )
                .fetchone()
            )
        if latest is None:
            return None
        records = self._select(
            f"SELECT {_COLUMNS} FROM exchanges WHERE notebook = ? AND conversation = ? ORDER BY id",
            (notebook, latest[0]),
        )
        return conversation_from(str(latest[0]), records, self.image)

    def usage(self, since: datetime, notebook: Optional[str] = None) -> list[UsageRow]:
        """Tokens and cost by local day and model since ``since`` (a naive time is local), oldest day
        first. Replayed exchanges cost nothing and are not counted, nor failures that produced nothing."""
        sql = (
            "SELECT time, model, prompt_tokens, completion_tokens, cost, cost_estimated FROM exchanges "
            "WHERE time >= ? AND replayed = 0 "
            "AND (prompt_tokens > 0 OR completion_tokens > 0 OR cost IS NOT NULL)"
        )
        params: list[Any] = [_stamp(since)]
        if notebook is not None:
            sql += " AND notebook = ?"
            params.append(notebook)
        with self._lock, self._errors("cannot be read"):
            rows = self._conn().execute(sql, params).fetchall()
        return sum_usage((_unstamp(t), m, p, c, cost, bool(e)) for t, m, p, c, cost, e in rows)
