"""Keys that survive a bad day (FORMAT.md §5.6): a passphrase-sealed backup restores a home
that verifies and reveals; a wrong passphrase, a changed file or a stale backup is refused
without leaving keys behind; the vault key rotates (every data key re-wrapped, a ledger
entry, the old key retired) and an interrupted rotation finishes itself. Both backends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests._cli import h, invoke, jok, ok, one_error_line
from tests._records import payment_event, write_jsonl

PASS = "correct horse battery staple"


@pytest.fixture
def home(ledger_home: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A ledger with two people's payments and a checkpoint; a passphrase file."""
    base = Path(ledger_home["home"])
    args = h(base, ledger_home["db"])
    ok("ingest", str(write_jsonl(tmp_path / "a.jsonl", [
        payment_event(1), payment_event(2, person="110101199202022345")])), *args)
    ok("checkpoint", *args)
    (tmp_path / "pass").write_text(PASS + "\n")
    return {"path": base, "db": ledger_home["db"], "args": args,
            "pass": str(tmp_path / "pass"), "tmp": tmp_path}


def _revealed(args: list[str], rid: str = "BP-1") -> dict[str, str]:
    out: dict[str, str] = jok("show", rid, "--reveal", "--purpose", "key test", *args)["revealed"]
    return out


def test_a_restored_home_verifies_and_reveals(home: dict[str, Any]) -> None:
    backup = home["tmp"] / "keys.json"
    out = ok("key", "backup", "--out", str(backup), "--passphrase-file", home["pass"],
             *home["args"]).stdout
    assert "signing, secret, vault, verifier" in out
    assert backup.stat().st_mode & 0o777 == 0o600
    doc = json.loads(backup.read_text())
    assert doc["format"] == "bfa-key-backup/v1" and doc["kdf"]["name"] == "scrypt"
    assert PASS not in backup.read_text() and "PRIVATE+KEY" not in backup.read_text()
    # the home is lost; a new one is made from the backup, on the same database
    new = home["tmp"] / "new-home"
    res = ok("key", "restore", str(backup), "--passphrase-file", home["pass"],
             *h(new, home["db"]))
    assert "restored signing, secret, vault, verifier" in res.stdout
    assert "checked vault key: check value matches" in res.stdout
    assert "checked verifier key: checks the latest checkpoint" in res.stdout
    assert sorted(p.name for p in (new / "keys").iterdir()) == [
        "secret.key", "signing.key", "vault.key", "verifier.key"]
    assert all((new / "keys" / n).stat().st_mode & 0o777 == 0o600
               for n in ("secret.key", "vault.key"))
    ok("verify", *h(new, home["db"]))
    assert _revealed(h(new, home["db"]))["person_id"] == "110101199001011234"
    ok("checkpoint", *h(new, home["db"]))
    # restoring again changes nothing
    assert "restored no key" in ok("key", "restore", str(backup), "--passphrase-file",
                                   home["pass"], *h(new, home["db"])).stdout


def test_backups_refuse_what_they_cannot_trust(home: dict[str, Any]) -> None:
    backup = home["tmp"] / "keys.json"
    ok("key", "backup", "--out", str(backup), "--passphrase-file", home["pass"], *home["args"])
    res = invoke("key", "backup", "--out", str(backup), "--passphrase-file", home["pass"],
                 *home["args"])
    assert res.exit_code == 2 and "never written over" in res.output
    short = home["tmp"] / "short"
    short.write_text("too short\n")
    msg = one_error_line(invoke("key", "backup", "--out", str(home["tmp"] / "b2.json"),
                                "--passphrase-file", str(short), *home["args"]), 2)
    assert "at least 12 characters" in msg
    res = invoke("key", "backup", "--out", str(home["tmp"] / "b3.json"), *home["args"])
    assert res.exit_code == 2 and "--passphrase-file" in res.output  # no terminal to ask
    wrong = home["tmp"] / "wrong"
    wrong.write_text("the wrong passphrase\n")
    target = home["tmp"] / "target"
    msg = one_error_line(invoke("key", "restore", str(backup), "--passphrase-file", str(wrong),
                                *h(target, home["db"])), 2)
    assert "wrong passphrase, or the backup was changed" in msg
    doc = json.loads(backup.read_text())
    doc["origin"] = "other.example/1"  # bound by the associated data
    changed = home["tmp"] / "changed.json"
    changed.write_text(json.dumps(doc))
    msg = one_error_line(invoke("key", "restore", str(changed), "--passphrase-file",
                                home["pass"], *h(target, home["db"])), 2)
    assert "wrong passphrase, or the backup was changed" in msg
    assert not (target / "keys").exists()
    # a home whose key differs from the backup's: refused, nothing overwritten
    other = home["tmp"] / "other"
    ok("init", "--origin", "test.bfa.example/ledger", *h(other, f"sqlite:///{other}/x.db"))
    before = (other / "keys" / "vault.key").read_text()
    msg = one_error_line(invoke("key", "restore", str(backup), "--passphrase-file",
                                home["pass"], *h(other, home["db"])), 2)
    assert "holds another key than the backup's" in msg
    assert (other / "keys" / "vault.key").read_text() == before


def test_the_vault_key_rotates(home: dict[str, Any]) -> None:
    args, keys = home["args"], home["path"] / "keys"
    stale = home["tmp"] / "stale-home"
    shutil.copytree(home["path"], stale, ignore=shutil.ignore_patterns("*.db*", "archive"))
    backup = home["tmp"] / "before.json"
    ok("key", "backup", "--out", str(backup), "--passphrase-file", home["pass"], *args)
    old_key = (keys / "vault.key").read_text().strip()
    before = _revealed(args)
    out = ok("key", "rotate", "--vault", *args).stdout
    assert "2 data key(s) re-wrapped" in out
    assert (keys / "vault.key").read_text().strip() != old_key
    (retired,) = (keys / "retired").iterdir()
    assert retired.read_text().strip() == old_key and retired.stat().st_mode & 0o777 == 0o600
    assert _revealed(args) == before and _revealed(args, "BP-2")["person_id"] == \
        "110101199202022345"
    ok("ingest", str(write_jsonl(home["tmp"] / "b.jsonl", [payment_event(3)])), *args)
    assert _revealed(args, "BP-3")["person_id"] == "110101199001011234"
    ok("verify", *args)
    log = jok("audit", "access", *args)
    assert [e["action"] for e in log if e["action"] == "key"] == ["key"]
    # the old key, in a home that kept a copy or in a backup from before: refused
    msg = one_error_line(invoke("show", "BP-1", "--reveal", "--purpose", "x",
                                *h(stale, home["db"])), 2)
    assert "not this ledger's vault key" in msg and "rotat" in msg
    target = home["tmp"] / "from-old-backup"
    one_error_line(invoke("key", "restore", str(backup), "--passphrase-file", home["pass"],
                          *h(target, home["db"])), 2)
    assert not any((target / "keys").iterdir())


def test_a_rotation_stopped_after_its_commit_finishes_itself(
        home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger import Ledger

    keys = home["path"] / "keys"
    before = _revealed(home["args"])
    monkeypatch.setattr(Ledger, "_finish_rotation", staticmethod(lambda *a: None))
    ok("key", "rotate", "--vault", *home["args"])  # committed; the files did not move
    monkeypatch.undo()
    assert (keys / "vault.key.next").exists()
    assert _revealed(home["args"]) == before  # the next command moves them
    assert not (keys / "vault.key.next").exists() and (keys / "retired").is_dir()


# -- what a black-box review of the vault and its keys found ---------------------------------


def test_a_backup_after_an_interrupted_rotation_holds_the_new_key(
        home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from ledger import Ledger

    keys = home["path"] / "keys"
    monkeypatch.setattr(Ledger, "_finish_rotation", staticmethod(lambda *a: None))
    ok("key", "rotate", "--vault", *home["args"])
    monkeypatch.undo()
    new_key = (keys / "vault.key.next").read_text()
    backup = home["tmp"] / "keys.json"
    ok("key", "backup", "--out", str(backup), "--passphrase-file", home["pass"], *home["args"])
    assert (keys / "vault.key").read_text() == new_key
    target = home["tmp"] / "restored"
    ok("key", "restore", str(backup), "--passphrase-file", home["pass"], *h(target, home["db"]))
    assert (target / "keys" / "vault.key").read_text() == new_key
    # a stop between the two renames: no vault.key, the next one waiting
    monkeypatch.setattr(Ledger, "_finish_rotation", staticmethod(lambda *a: None))
    ok("key", "rotate", "--vault", *home["args"])
    monkeypatch.undo()
    os.replace(keys / "vault.key", keys / "retired" / "by-hand.key")
    assert _revealed(home["args"])["person_id"] == "110101199001011234"
    assert (keys / "vault.key").exists() and not (keys / "vault.key.next").exists()


def test_a_refused_restore_writes_nothing(home: dict[str, Any]) -> None:
    backup = home["tmp"] / "keys.json"
    ok("key", "backup", "--out", str(backup), "--passphrase-file", home["pass"], *home["args"])
    target = home["tmp"] / "half"
    (target / "keys").mkdir(parents=True)
    (target / "keys" / "vault.key").write_text("00" * 32 + "\n")
    one_error_line(invoke("key", "restore", str(backup), "--passphrase-file", home["pass"],
                          *h(target, home["db"])), 2)
    assert sorted(p.name for p in target.rglob("*")) == ["keys", "vault.key"]
    nowhere = home["tmp"] / "no-ledger"
    msg = one_error_line(invoke("key", "restore", str(backup), "--passphrase-file",
                                home["pass"], "--home", str(nowhere)), 2)
    assert "no ledger database" in msg and not nowhere.exists()
    doc = json.loads(backup.read_text())
    for n in (3, 0, -2, True, 2**21):
        doc["kdf"]["n"] = n
        (home["tmp"] / "crafted.json").write_text(json.dumps(doc))
        msg = one_error_line(invoke("key", "restore", str(home["tmp"] / "crafted.json"),
                                    "--passphrase-file", home["pass"], *h(target, home["db"])), 2)
        assert "not a bfa key backup" in msg


def _sql(home: dict[str, Any], query: str, **params: Any) -> None:
    from sqlalchemy import create_engine, text

    url = home["db"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(query), params)
    finally:
        engine.dispose()


def test_values_deleted_or_put_back_behind_forget_are_integrity_failures(
        home: dict[str, Any]) -> None:
    from sqlalchemy import create_engine, text

    url = home["db"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(
            "SELECT domain, record_id, field, subject, salt, sealed FROM vault "
            "WHERE record_id = 'BP-1'"))]
        (key,) = [tuple(r) for r in conn.execute(text(
            "SELECT holder, wrapped FROM vault_keys WHERE holder = :s"), {"s": rows[0][3]})]
    engine.dispose()
    # one value deleted outside forget
    _sql(home, "DELETE FROM vault WHERE record_id = 'BP-2' AND field = 'account'")
    msg = one_error_line(invoke("show", "BP-2", "--reveal", "--purpose", "x", *home["args"]), 3)
    assert "lost account" in msg
    # a forget undone from an older copy of the database
    ok("forget", "110101199001011234", "--yes", *home["args"])
    for r in rows:
        _sql(home, "INSERT INTO vault (domain, record_id, field, subject, salt, sealed) "
                   "VALUES (:d, :r, :f, :s, :salt, :v)",
             d=r[0], r=r[1], f=r[2], s=r[3], salt=r[4], v=r[5])
    _sql(home, "INSERT INTO vault_keys (holder, wrapped) VALUES (:h, :w)", h=key[0], w=key[1])
    msg = one_error_line(invoke("show", "BP-1", "--reveal", "--purpose", "x", *home["args"]), 3)
    assert "forgotten after it" in msg
    if home["db"].startswith("sqlite"):  # a column of the wrong type (SQLite stores anything)
        _sql(home, "UPDATE vault SET sealed = 'text' WHERE record_id = 'BP-2'")
        one_error_line(invoke("show", "BP-2", "--reveal", "--purpose", "x", *home["args"]), 3)


def test_a_data_key_put_back_after_forget_seals_nothing(home: dict[str, Any]) -> None:
    """An insider restores a forgotten person's data key from an older copy of the
    database: the next ingest for that person refuses it (exit 3, nothing appended),
    while a key an ingest made after the forget keeps serving (FORMAT.md §4.6)."""
    from sqlalchemy import create_engine, text

    args = home["args"]
    url = home["db"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    with engine.connect() as conn:
        subject = conn.execute(text("SELECT subject FROM vault WHERE record_id = 'BP-1' "
                                    "LIMIT 1")).scalar_one()
        key = tuple(conn.execute(text("SELECT holder, wrapped FROM vault_keys WHERE "
                                      "holder = :s"), {"s": subject}).one())
    engine.dispose()
    ok("forget", "110101199001011234", "--yes", *args)
    _sql(home, "INSERT INTO vault_keys (holder, wrapped) VALUES (:h, :w)", h=key[0], w=key[1])
    before = jok("status", *args)["size"]
    msg = one_error_line(invoke("ingest", str(write_jsonl(home["tmp"] / "c.jsonl", [
        payment_event(3)])), *args), 3)
    assert "put back from an older copy" in msg and "forgotten at entry" in msg
    assert jok("status", *args)["size"] == before
    # without the planted key, the person comes back under a new key, which keeps serving
    _sql(home, "DELETE FROM vault_keys WHERE holder = :h", h=key[0])
    ok("ingest", str(write_jsonl(home["tmp"] / "c.jsonl", [payment_event(3)])), *args)
    ok("ingest", str(write_jsonl(home["tmp"] / "d.jsonl", [payment_event(4)])), *args)
    assert _revealed(args, "BP-4")["person_id"] == "110101199001011234"
    ok("verify", *args)
