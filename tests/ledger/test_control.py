"""Control records read back from the entries: by id, checked against the leaf, and the
last of a numbered series found without trusting a stored pointer (ledger._control)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger import IntegrityError, Ledger
from ledger._control import append_control, latest_numbered, read_entries
from tests._insider import app_role

AT = "2026-11-23T08:00:00.000000+00:00"


def _series(led: Ledger, prefix: str, n: int) -> None:
    with led.store.writer() as conn:
        append_control(led.store, conn, [{"type": "control.test", "id": f"{prefix}{i}", "at": AT}
                                         for i in range(1, n + 1)])


@pytest.mark.parametrize("total", [0, 1, 5, 33, 100])
def test_latest_of_a_series_whatever_the_hint(led: Ledger, total: int) -> None:
    _series(led, "run-", total)
    with led.store.reader() as conn:
        for hint in (0, 1, 2, 31, 32, 33, 99, 100, 101, 5000):
            e = latest_numbered(led.store, conn, "control", "run-", hint)
            if total == 0:
                assert e is None
            else:
                assert e is not None and e.record_id == f"run-{total}", (total, hint)


def test_a_row_whose_index_columns_lie_is_an_integrity_error(led: Ledger) -> None:
    """The insider appends a well-formed entry whose record_id column names another
    record than its leaf: reading it by id is refused, not believed."""
    from tests._insider import append_raw

    _series(led, "run-", 2)
    with app_role(led) as conn:
        # a control entry the duty trigger lets the role append (FORMAT.md §8.3): its own
        # session's name, a kind its duties cover
        me = (conn.execute(text("SELECT session_user")).scalar_one()
              if led.store.dialect == "postgresql" else "insider")
        append_raw(conn, [{"type": "control.reconcile", "id": "run-3", "user": me, "at": AT}])
        conn.execute(text("INSERT INTO entries (seq, domain, kind, record_id, leaf, entry_hash) "
                          "SELECT seq + 1, domain, kind, 'run-4', leaf, entry_hash FROM entries "
                          "WHERE record_id = 'run-3'"))
    with led.store.reader() as conn:
        assert set(read_entries(led.store, conn, "control", ["run-1", "run-3"])) == {
            "run-1", "run-3"}
        with pytest.raises(IntegrityError, match="stored leaf does not match its row"):
            read_entries(led.store, conn, "control", ["run-4"])
