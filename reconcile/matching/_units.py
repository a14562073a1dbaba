"""Units the derived tables use: money as integer fen, dates as epoch days.

``fen("3456.78") == 345678`` and ``money(345678) == "3456.78"``; ``epoch_day("1970-01-02")
== 1``. Integer days make date windows plain integer arithmetic on both backends.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

_EPOCH = date(1970, 1, 1)


def fen(amount: str | Decimal) -> int:
    """Yuan (a decimal string with two fraction digits) to integer fen, exactly."""
    value = Decimal(amount) * 100
    integral = value.to_integral_value()
    if integral != value:
        raise ValueError(f"amount {amount!r} is not exact to the fen")
    return int(integral)


def money(amount_fen: int) -> str:
    """Integer fen to the interchange money string (``-12.05`` for negative amounts)."""
    sign = "-" if amount_fen < 0 else ""
    whole, part = divmod(abs(amount_fen), 100)
    return f"{sign}{whole}.{part:02d}"


def epoch_day(value: str | date) -> int:
    """``YYYY-MM-DD`` (or the date part of an RFC 3339 timestamp) to days since 1970-01-01."""
    if isinstance(value, date):
        return (value - _EPOCH).days
    return _text_day(value[:10])


_MIN_DAY = (date.min - _EPOCH).days
_MAX_DAY = (date.max - _EPOCH).days


@lru_cache(maxsize=4096)
def _text_day(text: str) -> int:
    # a refresh decodes tens of thousands of records over a few hundred distinct days
    return (date.fromisoformat(text) - _EPOCH).days


def day_date(day: int) -> date:
    """Epoch day back to a date; days beyond the calendar's ends saturate at them.

    A window added to a date near 9999-12-31 (which the interchange allows) ends
    "after the end of the calendar": ``date.max`` says as much without an overflow."""
    return _EPOCH + timedelta(days=min(max(day, _MIN_DAY), _MAX_DAY))
