"""Advice in the words of a front door. Pure.

Errors carry facts and a ``hint`` that fits anywhere ("check the API key"); the front door that shows an
error knows how the user can act on it: in a notebook with ``%chat key``, ``-m`` or ``--timeout``, from
Python with ``api_key=``, ``model=`` or ``timeout=``. :func:`front_door_hint` is that translation, one
place for both doors, so neither the client nor the errors ever speak the magic's language.
"""

from __future__ import annotations

from typing import Literal, Optional

from ._errors import APIStatusError, ShenmaError

__all__ = ["Door", "KeySource", "describe", "front_door_hint"]

Door = Literal["magic", "python"]
"""``"magic"``: the ``%%chat`` cell magic. ``"python"``: ``Session`` / ``ChatClient`` called from code."""

KeySource = Literal["entered", "saved", "env", "argument"]
"""Where the key that was sent came from: typed at ``%chat key`` this session, the user's key file, an
environment variable, or an ``api_key=`` argument. None (to :func:`front_door_hint`): no key was sent."""

# kind -> (the magic's words, Python's words); "{env}" is the variable the key came from.
_WORDS: dict[str, tuple[str, str]] = {
    "no_key": (
        "enter one with %chat key (it is asked for at a hidden prompt; --save keeps it)",
        "pass api_key=, or set SHENMA_API_KEY",
    ),
    "no_channel": (
        "no channel serves this model in the key's group (分组): pick another model with -m, or try later",
        "no channel serves this model in the key's group (分组): pass another model=, or try later",
    ),
    "bad_request": (
        "the server rejected the request: check the model name and the options (%chat models lists models)",
        "the server rejected the request: check model= and the other arguments",
    ),
    "context_length": (
        "the prompt is longer than the model's context: start a new conversation with --new, or send less",
        "the prompt is longer than the model's context: start over with Session.reset(), or send less",
    ),
    "timeout": (
        "the partial answer is kept; try again, or allow more time with --timeout SECONDS (%chat timeout "
        "for every cell)",
        "the partial answer is kept (the error's .reply); try again, or pass a larger timeout=",
    ),
}
_LONG_EMPTY = (
    "the prompt may be longer than the model's context (some servers then send nothing): start a new "
    "conversation with --new, or send a shorter prompt",
    "the prompt may be longer than the model's context (some servers then send nothing): start over with "
    "Session.reset(), or send a shorter prompt",
)


def _auth(door: Door, key_source: Optional[KeySource], key_env: str, relay: bool) -> str:
    what = "the API key (令牌)" if relay else "the API key"
    env = f"${key_env}" if key_env else "the environment variable"
    if door == "magic":
        if key_source in ("entered", "saved", "argument"):
            return f"check {what}: enter it again with %chat key"
        if key_source == "env":
            return f"check {what} in {env}, or enter another with %chat key"
        return f"the server wants {what}: enter one with %chat key"
    if key_source == "env":
        return f"check {what} in {env}, or pass another as api_key="
    if key_source == "saved":
        return f"check {what} saved for this host (in the key file), or pass another as api_key="
    if key_source is None:
        return f"the server wants {what}: pass api_key="
    return f"check {what} passed as api_key="


def _model(door: Door, relay: bool) -> str:
    what = (
        "this key or its group (分组) may not use this model"
        if relay
        else "the server does not offer this model to this key"
    )
    if door == "magic":
        return f"{what}: pick another with -m (%chat models lists them)"
    return f"{what}: pass another model= (ChatClient.models() lists them)"


def front_door_hint(
    err: ShenmaError,
    door: Door,
    *,
    key_source: Optional[KeySource] = None,
    key_env: str = "",
    long_request: bool = False,
) -> str:
    """The hint to show after ``err.message``, in the words of ``door``.

    ``key_source`` says where the key that was sent came from (None: no key was sent), ``key_env`` which
    variable when it came from the environment, ``long_request`` whether the request was large or the
    conversation long (then an empty reply is probably an over-long prompt). Kinds that need no front door
    words keep ``err.hint`` (the server's retry wait, when it gave one, stays at the end).
    """
    index = 0 if door == "magic" else 1
    kind = err.kind
    relay = bool(getattr(err, "from_relay", False))
    if kind == "auth":
        hint = _auth(door, key_source, key_env, relay)
    elif kind == "model":
        hint = _model(door, relay)
    elif kind == "empty_reply" and long_request:
        hint = _LONG_EMPTY[index]
    elif kind in _WORDS:
        hint = _WORDS[kind][index]
    elif kind == "server_timeout" and err.hint.endswith("a shorter answer"):
        return f"{err.hint} ({'--max-tokens' if door == 'magic' else 'max_tokens='})"
    else:
        return err.hint
    if isinstance(err, APIStatusError) and err.retry_after is not None and err.status_code in (429, 503):
        hint = f"{hint}; the server asks to retry after {err.retry_after:.0f} s"
    return hint


def describe(err: ShenmaError, door: Door, key_from: Optional[str]) -> str:
    """``err`` on one line with the hint in the words of ``door``: ``message — hint``.

    ``key_from`` is where the key that was sent came from, as the key store and the session name it
    (``$SHENMA_API_KEY``, ``key file ...``, ``api_key=``, anything else: typed at ``%chat key``); None when
    no key was sent.
    """
    key_source: Optional[KeySource] = None
    key_env = ""
    if key_from is not None:
        if key_from.startswith("$"):
            key_source, key_env = "env", key_from[1:]
        elif key_from.startswith("key file"):
            key_source = "saved"
        elif key_from == "api_key=":
            key_source = "argument"
        else:
            key_source = "entered"
    try:
        hint = front_door_hint(err, door, key_source=key_source, key_env=key_env)
    except Exception:  # advice must never hide the error itself
        hint = err.hint
    return f"{err.message} — {hint}" if hint else err.message
