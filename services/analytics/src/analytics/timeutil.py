"""Event time as exact integer microseconds since the epoch (UTC), and the day and hour
buckets the figures are kept in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000


def micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("a time without a time zone")
    since = moment - _EPOCH  # integer arithmetic: a third of dividing by a timedelta
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def parse_us(text: object) -> int:
    """An ISO 8601 time with its offset, as microseconds; ValueError otherwise."""
    return micros(datetime.fromisoformat(str(text)))


def day_of(us: int) -> int:
    """Days since the epoch (UTC)."""
    return us // _DAY_US


def hour_of(us: int) -> int:
    """The hour of the day (UTC), 0-23."""
    return (us % _DAY_US) // _HOUR_US


def day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def day_date(number: int) -> date:
    return date(1970, 1, 1) + timedelta(days=number)
