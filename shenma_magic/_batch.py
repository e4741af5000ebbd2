"""A prompt over every row of a table: many independent requests at the relay's pace, each answer kept.

:func:`run_map` is what ``shenma_magic.map``, ``Session.map`` and ``%%chat --over`` run. The calling thread
schedules; worker threads only stream:

* Rows are read lazily, :data:`_CHUNK` at a time, and looked up in the local store in one query per chunk
  (``cache=True``): a row answered before is not sent again, whichever run answered it. Only a bounded
  window of rows (in flight, waiting to be retried, read ahead) exists as jobs at any time, so 100,000
  rows take the memory of their answers and no more.
* At most ``concurrency`` requests are in flight, fewer while the relay pushes back
  (:class:`~shenma_magic._batchpolicy.Limiter`); all go through one ``requests.Session`` whose connection
  pool holds ``concurrency`` kept-alive connections. The client itself never retries (``max_retries=0``):
  a row that must wait does so here, in a queue, without holding a slot, and ``Retry-After`` pauses new
  requests for everyone.
* Every answer goes into the store within :data:`_WRITE_EVERY` seconds of arriving (one transaction for
  all that arrived meanwhile, at most :data:`_WRITE_BATCH`), and at once on Ctrl-C: a crash loses at most
  that fraction of a second of answers.
* ``max_cost`` is checked before each request: spent plus the estimate of what is in flight plus this
  request must stay under it.

Ctrl-C: the scheduler stops sending, sets a cancel flag that every worker checks after each delta, and
shuts down the socket of each response in flight (a response hook on the ``requests.Session`` records each
worker's response as soon as its headers arrive; ``shutdown`` from this thread wakes a worker blocked in
a read at once). A worker still waiting for headers sees the flag when they come and closes the response
then; its answer, like any answer cut by the interrupt, is dropped, not stored. Nothing waits for those
workers: they are daemon threads.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from ._batchpolicy import (
    DEFAULT_ATTEMPTS,
    PUSHBACK_ATTEMPTS_FACTOR,
    Budget,
    Limiter,
    Tally,
    Verdict,
    estimate_line,
    judge,
    retry_delay,
)
from ._costing import Costing, prompt_text
from ._errors import ConfigError, ProtocolError, ShenmaError
from ._models import Delta, Reply, ReplyBuilder
from ._pricing import estimate_tokens, format_money
from ._progress import Display, Rate, Snapshot, make_display
from ._rows import Prompt, RowError, Rows, Template, rows_of
from ._secret import excerpt, host_of, is_loopback_host
from ._session import ChatInterrupted
from ._settings import Settings, check_setting

if TYPE_CHECKING:
    from ._exchange import Exchange, ExchangeRecord
    from ._pricing import Price
    from ._session import Session
    from ._store import Store

__all__ = ["EXTRA_OPTIONS", "BatchInterrupted", "run_map"]

Message = dict[str, Any]
Send = Callable[[list[Message]], Iterator[Delta]]

_CHUNK = 256  # rows read, and looked up in the store, at a time
_TICK = 0.1  # the longest the scheduler sleeps: due retries, the display and Ctrl-C are seen this often
_SHOW_EVERY = 0.2
_WRITE_EVERY = 0.2
_WRITE_BATCH = 64
_MAX_CONCURRENCY = 256
REPLAYED = "replayed from the log"
# Body fields a caller may add for every row (besides temperature and max_tokens), passed as they are.
EXTRA_OPTIONS = frozenset(
    {
        "top_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "reasoning_effort",
        "user",
    }
)
_ROW_OPTIONS = frozenset({"system", "temperature", "max_tokens", "timeout", "max_attempts"})


class BatchInterrupted(ChatInterrupted):
    """Ctrl-C stopped a batch. The answered rows are kept (in the local store, with ``cache=True``) and
    in ``.results``: the output's shape, ``None`` for the rows not answered. Running it again sends only
    those."""

    def __init__(self, message: str, results: Any) -> None:
        super().__init__(message)
        self.results = results


@dataclass
class _Job:
    row: int
    messages: list[Message]
    key: str  # the request key in the store ("" when the store is not used)
    prompt_tokens: int  # estimated from the text, for the budget
    attempts: int = 0
    epoch: int = 0  # the limiter's epoch when the current attempt was sent


class _Done(NamedTuple):
    job: _Job
    reply: Reply
    error: Optional[ShenmaError]
    cancelled: bool = False


@dataclass(frozen=True)
class _Request:
    """What every row's request is made with (checked once)."""

    model: str
    base_url: str
    system: str
    temperature: Optional[float]
    max_tokens: Optional[int]
    timeout: float
    extra: Optional[dict[str, Any]]
    json: bool
    schema: Any
    max_attempts: int
    price: Optional[Price]
    currency: str

    @property
    def options(self) -> dict[str, Any]:
        """The client's options, in the shape ``Session`` passes them (so the request keys match)."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout": self.timeout,
            "extra": self.extra,
        }


def _checked(name: str, value: Any) -> Any:
    return check_setting(name, value) if value is not None else None


def _request(
    settings: Settings,
    *,
    model: Optional[str],
    json: bool,
    schema: Any,
    max_cost: Optional[float],
    options: Mapping[str, Any],
) -> _Request:
    unknown = sorted(set(options) - _ROW_OPTIONS - EXTRA_OPTIONS)
    if unknown:
        known = ", ".join(sorted(_ROW_OPTIONS | EXTRA_OPTIONS))
        raise ConfigError(f"unknown option {', '.join(map(repr, unknown))}", f"the options are: {known}")
    system = options.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigError(f"system must be text, not {type(system).__name__}")
    attempts = options.get("max_attempts", DEFAULT_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20:
        raise ConfigError(f"max_attempts must be a whole number from 1 to 20, not {attempts!r}")
    temperature = _checked("temperature", options.get("temperature"))
    max_tokens = _checked("max_tokens", options.get("max_tokens"))
    timeout = _checked("timeout", options.get("timeout"))
    extra: dict[str, Any] = {
        name: options[name] for name in sorted(EXTRA_OPTIONS) if options.get(name) is not None
    }
    if json or schema is not None:
        from ._jsonout import response_format

        extra["response_format"] = response_format(schema)
    chosen_model = check_setting("model", model) if model else settings.resolved_model()
    price = None
    if settings.prices:
        from ._pricing import parse_prices, price_for

        price = price_for(parse_prices(settings.prices), chosen_model)
    if max_cost is not None:
        if isinstance(max_cost, bool) or not isinstance(max_cost, (int, float)) or not max_cost >= 0:
            raise ConfigError(f"max_cost must be an amount ≥ 0, not {max_cost!r}")
        if price is None:
            raise ConfigError(
                f"max_cost needs a price for {chosen_model}",
                f'set prices, e.g. Session(prices={{"{chosen_model}": {{"input": 1.05, "output": 4.2}}}}) '
                "or %config ChatMagics.prices = {...}",
            )
    return _Request(
        model=chosen_model,
        base_url=settings.resolved_base_url(),
        system=system if system is not None else settings.system,
        temperature=temperature if temperature is not None else settings.temperature,
        max_tokens=max_tokens if max_tokens is not None else settings.max_tokens,
        timeout=timeout if timeout is not None else settings.timeout,
        extra=extra or None,
        json=bool(json or schema is not None),
        schema=schema,
        max_attempts=attempts,
        price=price,
        currency=settings.currency,
    )


def _shutdown(response: Any) -> None:
    """Wake the thread reading ``response`` now: shut its socket down (close() from another thread does
    not reliably interrupt a blocked read; shutdown does)."""
    raw = getattr(response, "raw", None)
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Batch:
    def __init__(
        self,
        session: Session,
        request: _Request,
        rows: Rows,
        template: Template,
        *,
        concurrency: int,
        max_cost: Optional[float],
        cache: bool,
        display: Display,
        send: Optional[Send],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._request = request
        self._rows = rows
        self._items = rows.items
        self._template = template
        self._bound = concurrency
        self._cache = cache
        self._display = display
        self._clock = clock
        self._limiter = Limiter(concurrency)
        self._budget = Budget(max_cost, request.price, request.max_tokens)
        self._tally = Tally(total=rows.total)
        self._rate = Rate()
        self._out: list[Any] = []
        self._ready: deque[_Job] = deque()
        self._arrived: deque[_Done] = deque()  # results taken off the queue, not yet settled
        self._waiting: list[tuple[float, int, _Job]] = []  # (due, sequence, job): retries, by due time
        self._sequence = itertools.count()
        self._exhausted = False
        self._in_flight = 0
        self._hold_until = 0.0
        self._stopped = ""
        self._lookahead = max(2 * concurrency, 64)
        self._writes: list[Exchange] = []
        self._written = clock()
        # The first chunk, for the estimate: rows read, rows to send, their mean prompt tokens.
        self._sample: Optional[tuple[int, int, float]] = None
        self._cancel = threading.Event()
        self._jobs: queue.SimpleQueue[Optional[_Job]] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._open: dict[int, Any] = {}  # worker thread id -> the response it is reading
        self._open_lock = threading.Lock()
        self._client: Any = None
        self._http: Any = None
        self._store = self._open_store(cache or session.settings.log)
        self._notebook = session.notebook_id if self._store is not None else ""
        # The client is made when a row is really sent: a re-run answered from the store needs no key.
        self._send: Optional[Send] = send
        self._last_show = float("-inf")
        self._start = clock()

    # -- setting up ----------------------------------------------------------------------------------

    def _open_store(self, wanted: bool) -> Optional[Store]:
        journal = self._session.journal
        if not wanted or journal.broken is not None:
            return None
        from ._store import StoreError

        try:
            return journal.store()
        except StoreError as exc:
            journal.broken = str(exc)
            self._display.note(f"⚠ {exc} (answers are not kept: a re-run sends every row again)")
            return None

    def _client_send(self) -> Send:
        import requests
        from requests.adapters import HTTPAdapter

        from ._client import ChatClient
        from ._session import MissingKeyError

        url = self._request.base_url
        key, _ = self._session.key_for(url)
        if key is None and not is_loopback_host(host_of(url)):
            raise MissingKeyError(f"no API key for {host_of(url)}")
        http = requests.Session()
        # Every request goes to one URL: read the environment's proxy and CA bundle settings for it once,
        # not on each request (requests scans all of os.environ per request: a quarter of the CPU of a
        # short stream).
        environment = http.merge_environment_settings(url + "/chat/completions", {}, None, None, None)
        http.trust_env = False
        http.proxies.update(environment.get("proxies") or {})
        http.verify = environment.get("verify", True)
        http.cert = environment.get("cert")
        # One pool for the batch: as many kept-alive connections as requests may be in flight.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(self._bound, 10))
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        http.hooks["response"].append(self._track)
        self._http = http
        self._client = ChatClient(
            url,
            key,
            max_retries=0,
            timeout=self._request.timeout,
            max_time=self._session.settings.max_time,
            session=http,
            known_keys=self._session._key_sources,  # no row may carry a key the package knows
        )
        options = self._request.options
        client: ChatClient = self._client

        def send(messages: list[Message]) -> Iterator[Delta]:
            return client.stream(messages, **options)

        return send

    def _track(self, response: Any, *args: Any, **kwargs: Any) -> None:
        # requests calls this in the worker's thread as soon as a response's headers are in.
        with self._open_lock:
            self._open[threading.get_ident()] = response
        if self._cancel.is_set():
            _shutdown(response)

    # -- the rows ------------------------------------------------------------------------------------

    def _messages(self, prompt: Prompt) -> list[Message]:
        request = self._request
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        system = request.system
        has_system = any(m.get("role") == "system" for m in messages)
        if request.json and "json" not in f"{system} {prompt_text(messages)}".lower():
            # OpenAI (and relays in front of it) answer 400 to JSON mode unless a message mentions JSON.
            if has_system:
                messages = [
                    {**m, "content": f"{m.get('content')}\nReply with JSON only."}
                    if m.get("role") == "system"
                    else m
                    for m in messages
                ]
            else:
                system = f"{system}\nReply with JSON only." if system else "Reply with JSON only."
        if system and not has_system:
            messages = [{"role": "system", "content": system}, *messages]
        return messages

    def _fill(self) -> None:
        """Read rows while the window has room: make each one's request, answer those the store has."""
        from ._exchange import request_key

        while not self._exhausted and not self._stopped and len(self._ready) < self._lookahead:
            chunk = list(itertools.islice(self._items, _CHUNK))
            if not chunk:
                self._exhausted = True
                return
            jobs: list[_Job] = []
            for value in chunk:
                row = len(self._out)
                self._out.append(None)
                if row == 0:
                    self._template.check(value)  # ConfigError: nothing has been sent
                try:
                    prompt = self._template.prompt(value)
                except RowError as exc:
                    self._fail(row, Reply("", error=str(exc)), str(exc))
                    continue
                messages = self._messages(prompt)
                key = request_key(self._request.model, messages, self._request.options) if self._store else ""
                jobs.append(_Job(row, messages, key, estimate_tokens(prompt_text(messages))))
            found = self._lookup([job.key for job in jobs]) if self._cache else {}
            to_send = 0
            tokens = 0
            for job in jobs:
                record = found.get(job.key)
                if record is not None:
                    self._from_store(job, record)
                else:
                    self._ready.append(job)
                    to_send += 1
                    tokens += job.prompt_tokens
            if self._sample is None:
                self._sample = (len(chunk), to_send, tokens / to_send if to_send else 0.0)

    def _lookup(self, keys: list[str]) -> dict[str, ExchangeRecord]:
        if self._store is None or not keys:
            return {}
        from ._store import StoreError

        try:
            return self._store.find_many(keys)
        except StoreError as exc:
            self._store_failed(exc)
            return {}

    def _store_failed(self, exc: Exception) -> None:
        self._session.journal.broken = str(exc)
        self._store = None
        self._display.note(f"⚠ {exc} (the answers from here on are not kept)")

    def _from_store(self, job: _Job, record: ExchangeRecord) -> None:
        reply = record.to_reply()
        reply.notices.append(REPLAYED)
        self._tally.from_store += 1
        self._deliver(job.row, reply)

    def _deliver(self, row: int, reply: Reply) -> None:
        """An answered row: its Reply, or its parsed JSON value."""
        if not self._request.json:
            self._tally.done += 1
            self._out[row] = reply
            return
        from ._jsonout import recover_json, validate_against

        try:
            value = recover_json(reply.text)
            if self._request.schema is not None:
                value = validate_against(value, self._request.schema)
        except ShenmaError as exc:
            reply.error = f"the answer is not the JSON asked for: {exc}"
            self._fail(row, reply, reply.error)
            return
        reply.value = value
        self._tally.done += 1
        self._out[row] = value

    def _fail(self, row: int, reply: Reply, reason: str) -> None:
        self._tally.fail(row, reason)
        self._out[row] = reply

    # -- sending -------------------------------------------------------------------------------------

    def _stop(self, why: str) -> None:
        if not self._stopped:
            self._stopped = why
            self._tally.stopped = why

    def _money(self, amount: float) -> str:
        return format_money(amount, self._request.currency)

    def _promote_due(self, now: float) -> None:
        if now < self._hold_until:
            return
        due: list[_Job] = []
        while self._waiting and self._waiting[0][0] <= now:
            due.append(heapq.heappop(self._waiting)[2])
        # Retries go first: they finish rows that are already under way.
        self._ready.extendleft(reversed(due))

    def _submit(self, now: float) -> None:
        while self._ready and not self._stopped and now >= self._hold_until:
            if self._in_flight >= self._limiter.limit:
                return
            job = self._ready[0]
            if not self._budget.admit(job.row, job.prompt_tokens):
                budget = self._budget
                self._stop(
                    f"stopped before max_cost {self._money(budget.limit or 0)}: spent "
                    f"{self._money(budget.spent)}, {self._money(budget.in_flight)} more in flight"
                )
                return
            if self._send is None:
                self._send = self._client_send()  # MissingKeyError here: nothing has been sent
            self._ready.popleft()
            job.attempts += 1
            job.epoch = self._limiter.epoch
            self._in_flight += 1
            if len(self._workers) < min(self._in_flight, self._bound):
                worker = threading.Thread(
                    target=self._work, name=f"shenma-map-{len(self._workers)}", daemon=True
                )
                worker.start()
                self._workers.append(worker)
            self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._cancel.is_set():
                self._results.put(_Done(job, Reply(""), None, cancelled=True))
                continue
            self._results.put(self._attempt(job))

    def _attempt(self, job: _Job) -> _Done:
        builder = ReplyBuilder()
        error: Optional[ShenmaError] = None
        stream: Optional[Iterator[Delta]] = None
        cut = False
        try:
            assert self._send is not None
            stream = self._send(job.messages)
            for delta in stream:
                builder.add(delta)
                if self._cancel.is_set():
                    cut = True
                    break
        except ShenmaError as exc:
            error = exc
        except Exception as exc:  # whatever it is, it fails this row; the worker must live on
            error = ProtocolError(f"unexpected {type(exc).__name__}: {excerpt(str(exc), 200)}")
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            with self._open_lock:
                self._open.pop(threading.get_ident(), None)
        # An answer that arrived whole before Ctrl-C is kept; one the interrupt cut (or broke) is not.
        cancelled = cut or (error is not None and self._cancel.is_set())
        return _Done(
            job, builder.build(error=str(error) if error else None, interrupted=cancelled), error, cancelled
        )

    # -- answers -------------------------------------------------------------------------------------

    def _settle(self, done: _Done, now: float) -> None:
        self._in_flight -= 1
        job, reply, error = done.job, done.reply, done.error
        if done.cancelled:
            return
        request = self._request
        costing = Costing(
            request.price, request.currency, prompt_text(job.messages), len(job.messages), request.max_tokens
        )
        figures = costing.counted(reply)
        cost, estimated, prompt, completion = figures or (None, False, 0, 0)
        self._budget.settle(
            job.row,
            cost,
            estimated_prompt=job.prompt_tokens,
            prompt=prompt,
            completion=completion,
            answered=error is None,
        )
        if figures is not None:
            self._tally.charge(prompt, completion, cost, estimated)
            self._session.usage.add(request.model, prompt, completion, cost, estimated)
        if error is None and reply.finish_reason is None and not reply.tool_calls:
            error = ProtocolError("the stream ended before the answer was complete")
            reply.error = str(error)
            verdict = Verdict("retry")
        elif error is None:
            self._limiter.success()
            self._write(job, reply, figures)
            self._deliver(job.row, reply)
            return
        else:
            verdict = judge(error)
        if verdict.pushback:
            self._limiter.pushback(job.epoch)
        allowed = request.max_attempts * (PUSHBACK_ATTEMPTS_FACTOR if verdict.pushback else 1)
        if verdict.kind == "retry" and job.attempts < allowed and not self._stopped:
            if verdict.wait is not None and verdict.pushback:
                self._hold_until = max(self._hold_until, now + verdict.wait)
            heapq.heappush(
                self._waiting, (now + retry_delay(job.attempts, verdict.wait), next(self._sequence), job)
            )
            self._tally.retries += 1
            return
        reason = error.message
        if verdict.kind == "retry" and job.attempts > 1:
            reason = f"{reason} (after {job.attempts} attempts)"
            reply.error = f"{reply.error or error} (after {job.attempts} attempts)"
        if verdict.kind == "fatal":
            self._stop(f"stopped: {excerpt(error.message, 120)}")
        self._write(job, reply, figures)
        self._fail(job.row, reply, reason)
        if self._tally.hopeless:
            self._stop(f"stopped: the first {self._tally.failed} rows all failed")

    def _write(
        self, job: _Job, reply: Reply, figures: Optional[tuple[Optional[float], bool, int, int]]
    ) -> None:
        if self._store is None:
            return
        from ._exchange import Exchange

        cost, estimated, prompt, completion = figures or (None, False, 0, 0)
        self._writes.append(
            Exchange.from_reply(
                reply,
                notebook=self._notebook,
                host=host_of(self._request.base_url),
                messages=job.messages,
                requested_model=self._request.model,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost=cost,
                cost_estimated=estimated,
                currency=self._request.currency,
                request_key=job.key,
            )
        )

    def _flush(self, now: Optional[float] = None) -> None:
        """Write the answers waiting to be written: now (``now`` None), or when enough are waiting."""
        if not self._writes:
            return
        if now is not None and len(self._writes) < _WRITE_BATCH and now - self._written < _WRITE_EVERY:
            return
        self._written = self._clock()
        writes, self._writes = self._writes, []
        if self._store is None:
            return
        from ._store import StoreError

        try:
            self._store.record_many(writes)
        except StoreError as exc:
            self._store_failed(exc)
        except BaseException:
            # Ctrl-C during the write rolled it back: keep the answers for the write _interrupted makes.
            self._writes = writes + self._writes
            raise

    # -- the loop ------------------------------------------------------------------------------------

    def _busy(self) -> bool:
        if self._in_flight:
            return True
        if self._stopped:
            return False
        return bool(self._waiting or self._ready or not self._exhausted)

    def _snapshot(self, now: float) -> Snapshot:
        tally = self._tally
        remaining = tally.total - tally.finished if tally.total is not None else None
        note = ""
        if now < self._hold_until:
            note = f"paused {self._hold_until - now:.0f} s (the relay asked)"
        return Snapshot(
            total=tally.total,
            done=tally.done,
            failed=tally.failed,
            from_store=tally.from_store,
            in_flight=self._in_flight,
            waiting=len(self._waiting),
            rate=self._rate.per_second(),
            eta=self._rate.eta(remaining),
            tokens=tally.prompt_tokens + tally.completion_tokens,
            money=tally.money(self._request.currency),
            note=note,
        )

    def _show(self, now: float) -> None:
        if now - self._last_show < _SHOW_EVERY:
            return
        self._last_show = now
        self._rate.add(now, self._tally.finished - self._tally.from_store)
        self._display.update(self._snapshot(now))

    def _announce(self) -> None:
        if self._sample is None or self._request.price is None:
            return
        read, to_send, tokens = self._sample
        if not to_send:
            return
        total = self._rows.total
        rows = round(total * to_send / read) if total is not None else None
        line = estimate_line(
            rows=rows, sample=read, prompt_tokens=tokens, budget=self._budget, currency=self._request.currency
        )
        if line:
            if self._budget.limit is not None:
                line += f"; max_cost {self._money(self._budget.limit)}"
            self._display.note(line)

    def _loop(self) -> None:
        while True:
            now = self._clock()
            self._fill()
            self._promote_due(now)
            self._submit(now)
            if not self._busy():
                return
            with contextlib.suppress(queue.Empty):
                self._arrived.append(self._results.get(timeout=_TICK))
                while True:
                    self._arrived.append(self._results.get_nowait())
            now = self._clock()
            self._settle_arrived(now)
            self._flush(now)
            self._show(now)

    def _settle_arrived(self, now: float) -> None:
        # One at a time off the queue: a Ctrl-C in between leaves the rest there for _interrupted to keep.
        while self._arrived:
            self._settle(self._arrived.popleft(), now)

    def _rest_not_sent(self) -> None:
        """After an early stop: the rows left get a Reply saying why they were not sent (one shared Reply:
        there may be many)."""
        reply = Reply("", error=f"not sent: {self._stopped}")
        for job in [*self._ready, *(item[2] for item in self._waiting)]:
            self._out[job.row] = reply
            self._tally.not_sent += 1
        self._ready.clear()
        self._waiting.clear()
        for _ in self._items:
            self._out.append(reply)
            self._tally.not_sent += 1

    def _interrupted(self) -> BatchInterrupted:
        self._cancel.set()
        with self._open_lock:
            responses = list(self._open.values())
        for response in responses:
            _shutdown(response)
        # Answers that had arrived whole before the interrupt are kept like any other.
        with contextlib.suppress(queue.Empty):
            while True:
                self._arrived.append(self._results.get_nowait())
        cut = sum(1 for done in self._arrived if done.cancelled)  # closed just now, already back
        with contextlib.suppress(Exception):
            self._settle_arrived(self._clock())
        in_flight = self._in_flight + cut
        with contextlib.suppress(Exception):
            self._flush()
        tally = self._tally
        answered = tally.done
        where = "kept in the local store" if self._store is not None else "not kept (the store is off)"
        closed = f"; {in_flight} in flight closed" if in_flight else ""
        total = f" of {tally.total:,}" if tally.total is not None else ""
        again = (
            "run it again to send only the rest" if self._store is not None else "a re-run sends every row"
        )
        message = f"interrupted (Ctrl-C): {answered:,}{total} rows answered, {where}{closed}; {again}"
        with contextlib.suppress(Exception):
            # The interrupt's own line says the rest (IPython shows it instead of a traceback).
            self._display.close(
                tally.summary(self._request.currency, self._clock() - self._start) + " — interrupted"
            )
        return BatchInterrupted(message, self._rows.rebuild(self._out))

    def _close(self) -> None:
        for _ in self._workers:
            self._jobs.put(None)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    def run(self) -> Any:
        try:
            self._fill()  # the first rows: a template that cannot work says so before anything is sent
            self._announce()
            self._loop()
        except KeyboardInterrupt:
            error = self._interrupted()
            self._close()
            raise error from None
        except BaseException:
            self._cancel.set()
            self._close()
            with contextlib.suppress(Exception):
                self._flush()  # what was answered before the failure is kept
            raise
        self._close()
        self._flush()
        if self._stopped:
            self._rest_not_sent()
        self._display.close(self._tally.summary(self._request.currency, self._clock() - self._start))
        return self._rows.rebuild(self._out)

    @property
    def tally(self) -> Tally:
        return self._tally


def run_map(
    session: Session,
    template: Union[str, Callable[[Any], Any]],
    data: Any,
    *,
    model: Optional[str] = None,
    concurrency: int = 8,
    json: bool = False,
    schema: Any = None,
    max_cost: Optional[float] = None,
    cache: bool = True,
    progress: bool = True,
    namespace: Optional[Mapping[str, Any]] = None,
    display: Optional[Display] = None,
    send: Optional[Send] = None,
    **options: Any,
) -> Any:
    """The engine of :func:`shenma_magic.map` (see there). ``namespace`` fills names the rows do not have
    (the notebook's variables, for ``%%chat --over``); ``display`` and ``send`` replace the progress
    display and the HTTP client (tests, benchmarks). Raises ConfigError before anything is sent."""
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= _MAX_CONCURRENCY
    ):
        raise ConfigError(
            f"concurrency must be a whole number from 1 to {_MAX_CONCURRENCY}, not {concurrency!r}"
        )
    request = _request(
        session.settings, model=model, json=json, schema=schema, max_cost=max_cost, options=options
    )
    shown = display if display is not None else make_display(progress)
    batch = _Batch(
        session,
        request,
        rows_of(data),
        Template(template, namespace),
        concurrency=concurrency,
        max_cost=max_cost,
        cache=cache,
        display=shown,
        send=send,
    )
    return batch.run()
