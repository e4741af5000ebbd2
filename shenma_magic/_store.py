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

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

from ._errors import ShenmaError
from ._models import Reply
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

Turn = list[dict[str, Any]]
"""One turn of a conversation: the user's message, any tool-call steps, the assistant's answer."""

# Options that change how a request travels, not what the model answers: a cached answer still fits.
_TRANSPORT_OPTIONS = frozenset(
    {
        "timeout",
        "connect_timeout",
        "read_timeout",
        "total_timeout",
        "max_retries",
        "stream",
        "stream_options",
        "on_delta",
        "on_retry",
        "extra_headers",
        "interval",
        "update_interval",
        "cache",
        "progress",
    }
)
_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*),", re.IGNORECASE)
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_SQL_CHUNK = 500  # host parameters per IN (...) query, well under SQLite's limit


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


# -- records -------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Exchange:
    """One request and its reply, as the front door hands it to :meth:`Store.record`.

    ``messages`` are the messages sent (``data:`` image URLs are fine: the store keeps the image once and
    the message a reference). ``prompt_tokens``/``completion_tokens``/``cost`` are what the front door
    charged (server counts, or estimates with ``cost_estimated``); ``cost`` None means no price was known.
    ``conversation`` groups the turns of one chat and ``turn`` is the turn's index in it (a later exchange
    with the same index replaces an earlier one, as a re-asked turn does); ``branch`` names the model of a
    comparison ("" otherwise). ``request_key`` (see :func:`request_key`) lets an identical request be
    answered from the log; ``replayed`` marks an exchange that was.
    """

    notebook: str
    host: str
    model: str
    messages: Sequence[Mapping[str, Any]]
    reply: str = ""
    requested_model: str = ""
    reasoning: str = ""
    tool_calls: Sequence[Mapping[str, Any]] = ()
    finish_reason: Optional[str] = None
    usage: Optional[Mapping[str, Any]] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Optional[float] = None
    cost_estimated: bool = False
    currency: str = ""
    error: Optional[str] = None
    complete: bool = False
    request_key: str = ""
    conversation: str = ""
    branch: str = ""
    turn: int = 0
    replayed: bool = False
    time: Optional[datetime] = None

    @classmethod
    def from_reply(
        cls, reply: Reply, *, notebook: str, host: str, messages: Sequence[Mapping[str, Any]], **fields: Any
    ) -> Exchange:
        """An exchange from a finished :class:`Reply` (text, reasoning, tool calls, finish, usage, error,
        complete and the answering model); ``fields`` sets the rest (``requested_model``, ``cost``...)."""
        fields.setdefault("model", reply.model or fields.get("requested_model", ""))
        return cls(
            notebook=notebook,
            host=host,
            messages=messages,
            reply=reply.text,
            reasoning=reply.reasoning,
            tool_calls=reply.tool_calls,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            error=reply.error,
            complete=reply.complete,
            **fields,
        )


@dataclass(frozen=True, kw_only=True)
class ExchangeRecord:
    """An exchange as the log holds it (the fields of :class:`Exchange`, scrubbed of keys), with its ``id``,
    its UTC ``time``, the user's ``prompt`` (the text of the last user message), and the images in
    ``messages`` as ``{"type": "image_ref", "sha256": ..., "mime": ...}`` (:meth:`Store.image` has them)."""

    id: int
    time: datetime
    notebook: str
    host: str
    model: str
    requested_model: str
    messages: list[dict[str, Any]]
    prompt: str
    reply: str
    reasoning: str
    tool_calls: list[dict[str, Any]]
    finish_reason: Optional[str]
    usage: Optional[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    cost: Optional[float]
    cost_estimated: bool
    currency: str
    error: Optional[str]
    complete: bool
    request_key: str
    conversation: str
    branch: str
    turn: int
    replayed: bool

    def to_reply(self) -> Reply:
        """The reply as the model sent it, for answering an identical request from the log."""
        return Reply(
            self.reply,
            reasoning=self.reasoning,
            finish_reason=self.finish_reason,
            usage=dict(self.usage) if self.usage is not None else None,
            error=self.error,
            complete=self.complete,
            model=self.model,
            tool_calls=[dict(c) for c in self.tool_calls],
        )


@dataclass(frozen=True)
class ConversationRecord:
    """A notebook's last conversation: its id and its turns per branch ("" for a plain chat, a model name
    for each side of a comparison)."""

    id: str
    branches: dict[str, list[Turn]]

    @property
    def turns(self) -> list[Turn]:
        """The plain conversation's turns ([] when the conversation was only a comparison)."""
        return self.branches.get("", [])

    def __len__(self) -> int:
        """The number of turns in the longest branch."""
        return max((len(t) for t in self.branches.values()), default=0)


@dataclass(frozen=True)
class UsageRow:
    """Tokens and cost of one model on one local day. ``cost`` is the sum of the known costs (None when no
    reply had a price); ``unpriced`` counts replies without one; ``estimated`` is True if any count is an
    estimate (the server sent none)."""

    day: date
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: Optional[float]
    estimated: bool
    replies: int
    unpriced: int = 0


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`Store.forget` removed. ``wiped`` is False when another process was reading the log, so
    the removed text may stay in its write-ahead file until that process lets go."""

    exchanges: int
    images: int
    wiped: bool


# -- pure helpers ----------------------------------------------------------------------------------------


def _parse_data_url(url: str) -> Optional[tuple[str, bytes]]:
    """(mime, bytes) of a base64 ``data:`` URL, else None."""
    head = _DATA_URL.match(url)
    if head is None or ";base64" not in head.group(2).lower():
        return None
    try:
        data = base64.b64decode(url[head.end() :], validate=False)
    except (binascii.Error, ValueError):
        return None
    return head.group(1).strip().lower(), data


def _refs(
    messages: Iterable[Mapping[str, Any]], images: Optional[dict[str, tuple[str, bytes]]] = None
) -> list[dict[str, Any]]:
    """Messages with each base64 image part replaced by ``{"type": "image_ref", "sha256", "mime"}``;
    the images found go into ``images`` (by hash)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        message = dict(message)
        content = message.get("content")
        if isinstance(content, list):
            parts: list[Any] = []
            for part in content:
                ref = _image_ref(part, images)
                parts.append(ref if ref is not None else part)
            message["content"] = parts
        out.append(message)
    return out


def _image_ref(part: Any, images: Optional[dict[str, tuple[str, bytes]]]) -> Optional[dict[str, Any]]:
    if not isinstance(part, Mapping) or part.get("type") != "image_url":
        return None
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    if not isinstance(url, str):
        return None
    parsed = _parse_data_url(url)
    if parsed is None:
        return None
    mime, data = parsed
    digest = hashlib.sha256(data).hexdigest()
    if images is not None:
        images[digest] = (mime, data)
    ref: dict[str, Any] = {"type": "image_ref", "sha256": digest, "mime": mime}
    if isinstance(image_url, Mapping) and image_url.get("detail") is not None:
        ref["detail"] = image_url["detail"]
    return ref


def _canonical(value: Any) -> Any:
    """A JSON-ready copy where equal requests look equal: integral floats as ints, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return repr(value)


def request_key(model: str, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of a request's canonical JSON: the model, the messages (images by the hash of
    their bytes) and the options that change the answer. Options set to None (the server's default) are
    left out; an ``extra`` mapping is merged in (``response_format``, ``tools``...); transport options
    (``timeout``, ``max_retries``, ``stream``...) do not count. Pure."""
    flat: dict[str, Any] = {}
    for name, value in options.items():
        if name == "extra" and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[name] = value
    chosen = {k: v for k, v in flat.items() if v is not None and k not in _TRANSPORT_OPTIONS and k != "model"}
    body = {"model": model, "messages": _refs(messages), "options": chosen}
    text = json.dumps(_canonical(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    str(p.get("text") or "")
                    for p in content
                    if isinstance(p, Mapping) and p.get("type") == "text"
                )
            return ""
    return ""


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
    "complete, request_key, conversation, branch, turn, replayed"
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
        keys = self._keys()
        images: dict[str, tuple[str, bytes]] = {}
        messages = _refs(exchange.messages, images)
        clean = self._scrub_text
        row = (
            _stamp(exchange.time or datetime.now(timezone.utc)),
            clean(exchange.notebook, keys),
            clean(exchange.host, keys),
            clean(exchange.model, keys),
            clean(exchange.requested_model or exchange.model, keys),
            self._json(messages, keys),
            clean(_last_user_text(messages), keys),
            clean(exchange.reply, keys),
            clean(exchange.reasoning, keys),
            self._json(list(exchange.tool_calls), keys),
            clean(exchange.finish_reason, keys) if exchange.finish_reason is not None else None,
            self._json(exchange.usage, keys) if exchange.usage is not None else None,
            max(0, int(exchange.prompt_tokens)),
            max(0, int(exchange.completion_tokens)),
            float(exchange.cost) if exchange.cost is not None else None,
            int(bool(exchange.cost_estimated)),
            clean(exchange.currency, keys),
            clean(exchange.error, keys) if exchange.error is not None else None,
            int(bool(exchange.complete)),
            exchange.request_key,
            clean(exchange.conversation, keys),
            clean(exchange.branch, keys),
            int(exchange.turn),
            int(bool(exchange.replayed)),
        )
        blobs: list[tuple[str, str, Optional[bytes]]] = []
        for digest, (mime, data) in images.items():
            # Image bytes cannot be masked without breaking the image: one carrying a key is not kept.
            leaks = any(k.encode("utf-8", "surrogatepass") in data for k in keys if len(k) >= 6)
            blobs.append((digest, clean(mime, keys), None if leaks else data))
        with self._lock, self._errors("cannot be written"), self._transaction() as cur:
            cur.execute(
                f"INSERT INTO exchanges ({_COLUMNS.split(', ', 1)[1]}) VALUES ({', '.join('?' * len(row))})",
                row,
            )
            rowid = cur.lastrowid
            assert rowid is not None
            cur.executemany("INSERT OR IGNORE INTO images (sha256, mime, data) VALUES (?, ?, ?)", blobs)
            cur.executemany(
                "INSERT OR IGNORE INTO exchange_images (exchange_id, sha256) VALUES (?, ?)",
                [(rowid, digest) for digest in images],
            )
        return rowid

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
            rows = self._conn().execute(sql, params).fetchall()
        return [self._record(r) for r in rows]

    @staticmethod
    def _record(row: Sequence[Any]) -> ExchangeRecord:
        (
            id_,
            time_,
            notebook,
            host,
            model,
            requested,
            messages,
            prompt,
            reply,
            reasoning,
            tool_calls,
            finish,
            usage,
            prompt_tokens,
            completion_tokens,
            cost,
            estimated,
            currency,
            error,
            complete,
            key,
            conversation,
            branch,
            turn,
            replayed,
        ) = row
        return ExchangeRecord(
            id=id_,
            time=_unstamp(time_),
            notebook=notebook,
            host=host,
            model=model,
            requested_model=requested,
            messages=json.loads(messages),
            prompt=prompt,
            reply=reply,
            reasoning=reasoning,
            tool_calls=json.loads(tool_calls),
            finish_reason=finish,
            usage=json.loads(usage) if usage is not None else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
            cost_estimated=bool(estimated),
            currency=currency,
            error=error,
            complete=bool(complete),
            request_key=key,
            conversation=conversation,
            branch=branch,
            turn=turn,
            replayed=bool(replayed),
        )

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
            f"SELECT {_COLUMNS} FROM exchanges WHERE request_key = ? AND complete = 1 AND error IS NULL "
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
                f"SELECT {_COLUMNS} FROM exchanges WHERE complete = 1 AND error IS NULL "
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

    def _restore(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Image references back into ``image_url`` parts with ``data:`` URLs, ready to send again."""
        out = []
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                parts: list[Any] = []
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image_ref":
                        stored = self.image(str(part.get("sha256", "")))
                        if stored is None:
                            parts.append({"type": "text", "text": "[an image that the log does not hold]"})
                            continue
                        mime, data = stored
                        url: dict[str, Any] = {
                            "url": f"data:{mime or 'application/octet-stream'};base64,"
                            + base64.b64encode(data).decode("ascii")
                        }
                        if part.get("detail") is not None:
                            url["detail"] = part["detail"]
                        parts.append({"type": "image_url", "image_url": url})
                    else:
                        parts.append(part)
                message = {**message, "content": parts}
            out.append(message)
        return out

    def conversation(self, notebook: str) -> Optional[ConversationRecord]:
        """This notebook's last conversation, turn by turn per branch, with images restored; None if the
        log holds none. A turn is kept when its last exchange produced something (text, reasoning or a tool
        call), the rule by which a live conversation keeps it."""
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
        conversation_id = str(latest[0])
        records = self._select(
            f"SELECT {_COLUMNS} FROM exchanges WHERE notebook = ? AND conversation = ? ORDER BY id",
            (notebook, conversation_id),
        )
        last: dict[str, dict[int, ExchangeRecord]] = {}
        for record in records:
            last.setdefault(record.branch, {})[record.turn] = record  # ascending ids: the latest wins
        branches: dict[str, list[Turn]] = {}
        for branch, by_turn in last.items():
            turns: list[Turn] = []
            for index in sorted(by_turn):
                record = by_turn[index]
                if not (record.reply or record.reasoning or record.tool_calls):
                    continue
                messages = self._restore(record.messages)
                start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
                if start is None:
                    continue
                turns.append([*messages[start:], {"role": "assistant", "content": record.reply}])
            branches[branch] = turns
        return ConversationRecord(conversation_id, branches)

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
        sums: dict[tuple[date, str], list[Any]] = {}
        for time_, model, prompt, completion, cost, estimated in rows:
            day = _unstamp(time_).astimezone().date()
            acc = sums.setdefault((day, model), [0, 0, None, False, 0, 0])
            acc[0] += prompt
            acc[1] += completion
            if cost is None:
                acc[5] += 1
            else:
                acc[2] = (acc[2] or 0.0) + cost
            acc[3] = acc[3] or bool(estimated)
            acc[4] += 1
        return [
            UsageRow(day, model, p, c, cost, est, n, unpriced)
            for (day, model), (p, c, cost, est, n, unpriced) in sorted(sums.items())
        ]
