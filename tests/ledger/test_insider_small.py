"""Smaller findings of the insider review, each replayed on both backends: a wrong ledger
secret, index columns that lie about their leaf, a vault value that no longer opens its
commitment (FORMAT.md §4.1, §4.6, §8.3)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger import ConfigError, IntegrityError, Ledger
from tests._insider import app_role
from tests._records import payment_event, superuser, write_jsonl

PERSON = "110101199001011234"


def _two_payments(led: Ledger, tmp_path: Path) -> None:
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [payment_event(1), payment_event(2)]))],
               None)
    led.checkpoint()


def _wrong_key(tmp_path: Path) -> str:
    path = tmp_path / "wrong.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return str(path)


def test_a_wrong_secret_is_refused_before_it_is_used(led: Ledger, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _two_payments(led, tmp_path)
    size = led.size()
    monkeypatch.setenv("BFA_SECRET_KEY", _wrong_key(tmp_path))
    other = Ledger.open(str(led.home.path), led.home.db_url)
    try:
        for call in (lambda: other.forget(PERSON, "dpo"),
                     lambda: other.ingest([str(write_jsonl(
                         tmp_path / "b.jsonl", [payment_event(3)]))], None)):
            with pytest.raises(ConfigError, match="not this ledger's secret"):
                call()
        assert other.size() == size  # no forget entry, no reveal, no record
    finally:
        other.close()


def test_a_ledger_without_a_check_value_tests_the_key_on_its_vault(
        led: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.ledger._legacy import write_as_before_sealing

    with monkeypatch.context() as m:  # a ledger from before the check value: values in clear
        write_as_before_sealing(m)
        _two_payments(led, tmp_path)
    with led.store.writer() as conn:  # as a ledger made before the check value
        conn.execute(text("DELETE FROM meta WHERE key = 'secret_check'"))
    monkeypatch.setenv("BFA_SECRET_KEY", _wrong_key(tmp_path))
    other = Ledger.open(str(led.home.path), led.home.db_url)
    try:
        with pytest.raises(ConfigError, match="not this ledger's secret"):
            other.forget(PERSON, "dpo")
    finally:
        other.close()
    monkeypatch.delenv("BFA_SECRET_KEY")
    assert led.forget(PERSON, "dpo") == 4  # the right key passes, and is remembered
    with led.store.reader() as conn:
        assert led.store.get_meta(conn, "secret_check") is not None


def test_show_and_prove_check_the_id_against_the_leaf(led: Ledger, tmp_path: Path) -> None:
    _two_payments(led, tmp_path)
    with superuser(led) as conn:  # swap the index columns of two entries
        conn.execute(text("UPDATE entries SET record_id = 'tmp' WHERE record_id = 'BP-1'"))
        conn.execute(text("UPDATE entries SET record_id = 'BP-1' WHERE record_id = 'BP-2'"))
        conn.execute(text("UPDATE entries SET record_id = 'BP-2' WHERE record_id = 'tmp'"))
    for call in (lambda: led.entry("BP-1"), lambda: led.prove("BP-2")):
        with pytest.raises(IntegrityError, match="index columns changed"):
            call()


def test_a_vault_value_that_does_not_open_its_commitment_is_an_integrity_failure(
        led: Ledger, tmp_path: Path) -> None:
    _two_payments(led, tmp_path)
    with app_role(led) as conn:  # the role may delete and insert vault rows
        row = conn.execute(text("SELECT domain, record_id, field, subject, salt FROM vault "
                                "WHERE record_id = 'BP-1' AND field = 'account'")).one()
        conn.execute(text("DELETE FROM vault WHERE record_id = 'BP-1' AND field = 'account'"))
        conn.execute(text("INSERT INTO vault (domain, record_id, field, subject, salt, "
                          "clear_value) VALUES (:d, :r, :f, :s, :salt, '6222999999999999999')"),
                     {"d": row[0], "r": row[1], "f": row[2], "s": row[3], "salt": row[4]})
    size = led.size()
    with pytest.raises(IntegrityError, match="does not open the commitment"):
        led.reveal("BP-1", None, "dpo", "test")
    assert led.size() == size  # nothing revealed, nothing logged as revealed


def test_forgotten_values_leave_no_trace_in_the_sqlite_file(led: Ledger, tmp_path: Path) -> None:
    """secure_delete: after a forget and the last connection's checkpoint, the clear
    values are gone from the database file itself, not only unlinked from its pages.

    Debian builds SQLite with secure_delete on by default; the test makes each new
    connection start with it off, as other builds do, before the store's own setting."""
    if led.store.dialect != "sqlite":
        pytest.skip("SQLite's file; PostgreSQL keeps dead tuples until VACUUM (FORMAT §4.6)")
    from sqlalchemy import event

    def build_default_off(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.execute("PRAGMA secure_delete=OFF")

    led.store.engine.dispose()
    event.listen(led.store.engine, "connect", build_default_off, insert=True)
    other = "110101199202022345"  # stays: the page holding both is rewritten, not freed
    led.ingest([str(write_jsonl(tmp_path / "a.jsonl", [
        payment_event(1), payment_event(2, person=other)]))], None)
    path = Path(led.store.url.removeprefix("sqlite:///"))
    with led.store.reader() as conn:
        sealed = {str(r): bytes(v) for r, v in conn.execute(
            text("SELECT record_id, sealed FROM vault WHERE field = 'person_id'"))}
    assert led.forget(PERSON, "dpo") == 2
    led.close()  # the last connection checkpoints the WAL into the file and removes it
    raw = path.read_bytes()
    # sealed values (FORMAT §4.4): no clear value is in the file at all; the forgotten
    # person's ciphertext is zeroed, the other's stays
    assert PERSON.encode() not in raw and other.encode() not in raw
    assert sealed["BP-1"] not in raw and sealed["BP-2"] in raw
