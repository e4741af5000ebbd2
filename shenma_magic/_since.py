"""``--since 7d``: a point in time from what a user types. Pure (the clock is a parameter).

Days begin at local midnight, because "today" means the user's day, not UTC's.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Optional

from ._errors import ConfigError

__all__ = ["parse_since"]

_SPAN = re.compile(r"([0-9]{1,6})\s*(d|h|w|days?|hours?|weeks?)", re.IGNORECASE)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HINT = "use 7d, 24h, 2w, today, yesterday or a date such as 2026-11-01"


def _local_midnight(day: date) -> datetime:
    # A naive datetime's astimezone() applies the local rules for that date, DST included.
    return datetime.combine(day, time()).astimezone()


def parse_since(text: str, now: Optional[datetime] = None) -> datetime:
    """The moment ``text`` names, as an aware datetime: ``7d`` / ``24h`` / ``2w`` back from ``now``;
    ``today`` and ``yesterday`` from local midnight; ``2026-11-01`` from that date's local midnight.

    Raises:
        ConfigError: anything else, or a moment after ``now`` (one line that says what is accepted).
    """
    now = (now or datetime.now(timezone.utc)).astimezone()
    word = " ".join(str(text).split()).lower()
    shown = word if len(word) <= 40 else word[:39] + "…"
    if word == "today":
        return _local_midnight(now.date())
    if word == "yesterday":
        return _local_midnight(now.date() - timedelta(days=1))
    span = _SPAN.fullmatch(word)
    if span:
        count, unit = int(span.group(1)), span.group(2)[0]
        if count == 0:
            raise ConfigError(f"--since {shown} is no time at all", _HINT)
        delta = {"d": timedelta(days=count), "h": timedelta(hours=count), "w": timedelta(weeks=count)}[unit]
        try:
            return now - delta
        except OverflowError:
            raise ConfigError(f"--since {shown} reaches back before year 1", _HINT) from None
    if _DATE.fullmatch(word):
        try:
            day = date.fromisoformat(word)
        except ValueError:
            raise ConfigError(f"--since {shown} is not a date on the calendar", _HINT) from None
        if day < date(1970, 1, 2):
            raise ConfigError(f"--since {shown} is before any log could exist", _HINT)
        moment = _local_midnight(day)
        if moment > now:
            raise ConfigError(f"--since {shown} is in the future", _HINT)
        return moment
    raise ConfigError(f"--since {shown!r} is not a time", _HINT)
