"""What is particular to ``requests`` and urllib3: the key in the header, the connection classes that let
the watchdog reach the socket, and what their exceptions mean.

The one module of the client that imports ``requests``; it comes with ``_client``, which the package
imports only when a client is first needed, so ``%load_ext`` stays light.

* The ``Authorization`` header is set when requests prepares the request, by :class:`BearerAuth`, so its
  text sits in no local variable of this package, and its value masks itself in every ``repr`` (a verbose
  traceback through requests or urllib3 shows headers by their repr).
* A failed request or read is one of a few plain facts (refused, unresolvable, TLS, proxy, timed out
  while connecting, silent, broken, out of time, stopped): :func:`request_failure`, :func:`read_failure`.
"""

from __future__ import annotations

import builtins
import time
from typing import Any, Optional

import requests
import requests.adapters
import requests.auth
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from ._errors import APITimeoutError, ConnectError, ConnectionLostError, ShenmaError, reply_head_error
from ._httperrors import max_time_error, stopped_error
from ._secret import Secret
from ._watchdog import Watchdog, WatchedConnection

__all__ = [
    "READ_ERRORS",
    "BearerAuth",
    "RequestError",
    "read_failure",
    "request_failure",
    "watched_session",
]

#: What sending a request raises when no response came.
RequestError = requests.exceptions.RequestException
#: What a read of the body may raise, whatever the layer that noticed the failure.
READ_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)

# socket.timeout is the builtin TimeoutError.
_SocketTimeout = builtins.TimeoutError


# -- the key on the wire ---------------------------------------------------------------------------------


class _MaskedHeader(str):
    """A header value that is the real ``Bearer`` token on the wire and its mask in every ``repr``."""

    _shown: str

    def __new__(cls, value: str, shown: str) -> _MaskedHeader:
        self = super().__new__(cls, value)
        self._shown = shown
        return self

    def __repr__(self) -> str:
        return repr(self._shown)


class BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer <key>`` when requests prepares the request, so the header string never
    sits in a local variable of this package. Redirects to another host drop it (requests' rebuild_auth)."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = _MaskedHeader(
            f"Bearer {self._key.reveal()}", f"Bearer {self._key}"
        )
        return request

    def __repr__(self) -> str:
        return f"BearerAuth({self._key!r})"


# -- connections the watchdog can reach ------------------------------------------------------------------


class _HTTPConnection(WatchedConnection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def watched_session() -> requests.Session:
    """A ``requests.Session`` whose connections hand their socket to the sending thread's watchdog while
    the response headers are read, so ``max_time`` also cuts a server that trickles its headers."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# -- what a failure means --------------------------------------------------------------------------------


def _out_of_time(watchdog: Watchdog, deadline: float) -> bool:
    return watchdog.fired or time.monotonic() >= deadline - 0.01


def request_failure(
    exc: requests.exceptions.RequestException,
    host: str,
    wait_for: float,
    watchdog: Watchdog,
    deadline: float,
    max_time: float,
) -> tuple[ShenmaError, bool]:
    """The error for a request that got no response, and whether it is final (a retry will not help)."""
    if watchdog.aborted:
        return ConnectError(f"the request to {host} was stopped before the reply started"), True
    if _out_of_time(watchdog, deadline):
        return max_time_error(host, max_time, headers=False), True
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return _connect_error(exc, host), False
    if isinstance(exc, requests.exceptions.ReadTimeout):
        err = APITimeoutError(
            f"{host} sent no reply within {wait_for:g} s",
            "the model may be overloaded: try again, or raise the timeout",
        )
        err.phase = "first_byte"
        return err, True  # the server may still be working on it: do not pile on
    if isinstance(exc, requests.exceptions.SSLError):
        return _connect_error(exc, host), True
    head = reply_head_error(exc, host)  # reached, but its status line or headers could not be read
    if head is not None:
        # It hung up before answering (ConnectError): a retry may find it answering; else final.
        return head, not isinstance(head, ConnectError)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return _connect_error(exc, host), False
    return ConnectError(f"request to {host} failed: {type(exc).__name__}"), True


def read_failure(
    exc: BaseException,
    host: str,
    watchdog: Watchdog,
    deadline: float,
    read_timeout: float,
    max_time: float,
) -> ShenmaError:
    """The error for a read that failed mid-reply (one of :data:`READ_ERRORS`): stopped, out of time,
    silent too long, or a lost connection. The caller masks the key in the message."""
    if watchdog.aborted:
        return stopped_error(host)
    if _out_of_time(watchdog, deadline):
        return max_time_error(host, max_time)
    if _is_timeout(exc):
        err = APITimeoutError(
            f"{host} went silent for more than {read_timeout:g} s",
            "the partial answer is kept; try again, or raise the timeout",
        )
        err.phase = "read"
        return err
    return ConnectionLostError(
        f"the connection to {host} broke mid-reply", "the partial answer is kept; try again"
    )


def _is_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current, (_SocketTimeout, urllib3.exceptions.ReadTimeoutError, requests.exceptions.Timeout)
        ):
            return True
        if "timed out" in str(current).lower():
            return True
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt
    return False


def _connect_error(exc: BaseException, host: str) -> ShenmaError:
    text = str(exc)
    low = text.lower()
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectError(
            f"TLS/SSL failed talking to {host}",
            "check the base URL; behind a company proxy set REQUESTS_CA_BUNDLE to its CA file",
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        return ConnectError(f"the proxy refused the connection to {host}", "check HTTPS_PROXY / HTTP_PROXY")
    if any(
        s in low
        for s in (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo failed",
            "nameresolutionerror",
            "failed to resolve",
            "temporary failure in name resolution",
            "no address associated",
        )
    ):
        return ConnectError(f"cannot resolve host {host} (DNS)", "check the base URL and your network")
    if "refused" in low:
        return ConnectError(f"connection refused by {host}", "is the server running, and is the port right?")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        err = APITimeoutError(
            f"connecting to {host} timed out", "check your network or proxy, then try again"
        )
        err.phase = "connect"
        return err
    return ConnectError(f"cannot connect to {host}", "check the base URL and your network")
