"""reconcile.matching._units: money strings to fen and back, dates to epoch days (exact,
both ways)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.matching._units import day_date, epoch_day, fen, money


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_fen_and_money_round_trip(value: int) -> None:
    assert fen(money(value)) == value
    assert fen(Decimal(money(value))) == value


@given(st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False))
def test_fen_agrees_with_decimal_arithmetic(amount: Decimal) -> None:
    text = f"{amount:.2f}"
    assert fen(text) == int(Decimal(text) * 100)


@pytest.mark.parametrize("text", ["12.345", "0.001", "1.5e-3"])
def test_fen_refuses_fractions_of_a_fen(text: str) -> None:
    with pytest.raises(ValueError, match="not exact to the fen"):
        fen(text)


@pytest.mark.parametrize(("text", "want"), [("5", 500), ("3.1", 310), ("-0.10", -10),
                                            ("0.00", 0), ("1e3", 100000)])
def test_fen_reads_other_exact_forms(text: str, want: int) -> None:
    assert fen(text) == want


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_epoch_days(d: date) -> None:
    assert day_date(epoch_day(d)) == d
    assert epoch_day(d.isoformat()) == epoch_day(d) == (d - date(1970, 1, 1)).days
    assert epoch_day(f"{d.isoformat()}T23:59:59+08:00") == epoch_day(d)
    assert epoch_day(d + timedelta(days=1)) == epoch_day(d) + 1
