"""PostgreSQL: an application role with the grants of ``bfa db grant`` cannot rewrite history."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger import DUTIES, Ledger
from tests._records import payment_event, write_jsonl

BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


def test_app_role_cannot_rewrite_history(led: Ledger, tmp_path: Path) -> None:
    if led.store.dialect != "postgresql":
        pytest.skip("roles and grants are PostgreSQL's; SQLite relies on triggers")
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(1)]))], None)
    role = f"bfa_app_{uuid.uuid4().hex[:8]}"
    with led.store.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
    try:
        led.grant(role, DUTIES, "dba")
        for sql in ("UPDATE entries SET domain = 'x'", "DELETE FROM entries",
                    "TRUNCATE entries", "UPDATE checkpoints SET note = ''",
                    "ALTER TABLE entries DISABLE TRIGGER ALL", "DROP TABLE entries",
                    "SET session_replication_role = replica"):
            with led.store.engine.connect() as conn:
                conn.execute(text(f'SET ROLE "{role}"'))
                # the record, its batch's control.ingest entry and the grant's own
                # control.grant entry
                assert conn.execute(text("SELECT count(*) FROM entries")
                                    ).scalar_one() == 1 + BATCH + 1
                with pytest.raises(Exception, match=r"permission denied|must be owner"):
                    conn.execute(text(sql))
                conn.rollback()
        with led.store.engine.connect() as conn:
            conn.execute(text(f'SET ROLE "{role}"'))
            conn.execute(text("DELETE FROM vault WHERE false"))  # forget may delete
            conn.commit()
    finally:
        with led.store.engine.begin() as conn:
            conn.execute(text("RESET ROLE"))
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_app_role_can_ingest(led: Ledger, tmp_path: Path) -> None:
    """The grants are enough to run the application: ingest, checkpoint, reconcile and
    forget as the role."""
    if led.store.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    role = f"bfa_app_{uuid.uuid4().hex[:8]}"
    with led.store.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        led.grant(role, DUTIES, "dba")
        url = led.store.engine.url.set(username=role, password=None)
        app = Ledger.open(led.home.path.as_posix(), url.render_as_string(hide_password=False))
        try:
            app.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(1)]))], None)
            app.checkpoint()
            assert app.verify().ok
            # the reconciler too: derived tables, stored findings, its work tables
            from reconcile import run_reconcile
            assert run_reconcile(app).run.mode == "full"
            assert run_reconcile(app, full=False).run.mode == "incremental"
            assert app.forget("110101199001011234", "dpo") == 2
        finally:
            app.close()
    finally:
        with led.store.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
