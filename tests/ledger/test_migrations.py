"""Ledger schema migrations: a new ledger gets exactly the tables ``ledger/_schema.py``
defines, and migration 0009 (leaner ``entries`` and ``vault`` indexes) keeps a ledger
made under 0008 whole: same rows, still verifies, reveal and forget still work, the
append-only triggers still refuse rewrites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger import Ledger
from ledger._schema import metadata
from ledger._store import Store
from tests._records import payment_event, write_jsonl
from tests.ledger._legacy import write_as_before_sealing

LEDGER_TABLES = {"entries", "tree_nodes", "checkpoints", "vault", "vault_keys", "meta"}


def _schema_diffs(store: Store) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    return [d for d in diffs if any(f"'{t}'" in repr(d) or f"Table('{t}'" in repr(d)
                                    for t in LEDGER_TABLES)]


def test_new_ledger_has_exactly_the_defined_tables(led: Ledger) -> None:
    assert _schema_diffs(led.store) == []


def test_migration_0009_keeps_the_ledger(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    led = Ledger.open(str(tmp_path / "home"), db_url, check=False)
    monkeypatch.setattr(led.store, "migrate", lambda: Store.migrate(led.store, "0008"))
    write_as_before_sealing(monkeypatch)
    led.init("test.bfa.example/ledger")
    recs = [payment_event(i, person=f"1101011990010112{i % 3:02d}") for i in range(9)]
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", recs))], None)
    led.checkpoint()
    monkeypatch.undo()
    clear_before = {"person_id": "110101199001011201", "account": "6222020200112233445"}
    with led.store.reader() as conn:
        before = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("entries", "tree_nodes", "vault")]
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0008"
    assert _schema_diffs(led.store) != []  # the comparison sees the old layout

    led.store.migrate()

    assert _schema_diffs(led.store) == []
    with led.store.reader() as conn:
        after = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                 for t in ("entries", "tree_nodes", "vault")]
    assert after == before
    assert led.verify().ok
    _entry, clear_after = led.reveal("BP-4", None, "tester", "test")
    assert clear_after == clear_before and clear_after["person_id"] == "110101199001011201"
    # revision 0013 leaves values in clear until 'bfa init' seals them (FORMAT.md §4.4)
    with led.store.reader() as conn:
        assert conn.execute(text("SELECT count(*) FROM vault WHERE sealed IS NULL")).scalar() == 18
    assert led.seal_vault() == 18
    with led.store.reader() as conn:
        assert conn.execute(text("SELECT count(*) FROM vault WHERE clear_value IS NOT NULL "
                                 "OR sealed IS NULL")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM vault_keys")).scalar() == 3
    assert led.reveal("BP-4", None, "tester", "test")[1] == clear_before
    assert led.prove("BP-4")[1].hashes
    with pytest.raises(Exception, match="refused"), led.store.engine.begin() as conn:
        conn.execute(text("UPDATE entries SET kind = 'x' WHERE seq = 1"))
    with pytest.raises(Exception, match="refused"), led.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM entries WHERE seq = 1"))
    assert led.forget("110101199001011201", "tester") == 6  # 3 records, person + account
    with led.store.reader() as conn:  # and the person's data key
        assert conn.execute(text("SELECT count(*) FROM vault_keys")).scalar() == 2
    assert led.verify().ok
    led.close()
