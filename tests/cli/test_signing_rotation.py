"""The signing key rotates (FORMAT.md §5.7): the rotation is a ledger entry, the checkpoint
over it is signed by the key retired and the new one, old checkpoints still verify with
the old verifier key, new proofs with the new one; a retired key signs nothing; a
rotation entry nobody co-signed, or a chain that skips a key, is an integrity failure;
a rotation stopped after its commit finishes itself. Both backends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from ledger._entry import entry_hash
from ledger._merkle import verify_inclusion
from ledger._note import Signer, Verifier, open_checkpoint
from ledger._tlogproof import TLogProof, verify_tlog_proof
from tests._cli import h, invoke, jok, ok, one_error_line
from tests._records import payment_event, write_jsonl

PASS = "correct horse battery staple"


@pytest.fixture
def home(ledger_home: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A ledger with a checkpoint, its verifier key saved by an auditor beforehand."""
    base = Path(ledger_home["home"])
    args = h(base, ledger_home["db"])
    ok("ingest", str(write_jsonl(tmp_path / "a.jsonl", [payment_event(1)])), *args)
    ok("checkpoint", *args)
    old_vkey = tmp_path / "old.vkey"
    old_vkey.write_text(ok("key", "export", *args).stdout)
    old_vkey.chmod(0o600)
    (tmp_path / "pass").write_text(PASS + "\n")
    return {"path": base, "db": ledger_home["db"], "args": args, "tmp": tmp_path,
            "old_vkey": old_vkey, "pass": str(tmp_path / "pass")}


def _verify_with(home: dict[str, Any], vkey: Path, *extra: str, code: int = 0) -> Any:
    return jok("verify", "--json", *extra, *home["args"], code=code,
               env={"BFA_VERIFIER_KEY": str(vkey)})


def _cps(home: dict[str, Any]) -> dict[int, str]:
    led = Ledger.open(str(home["path"]), home["db"])
    try:
        with led.store.reader() as conn:
            return {int(s): str(n) for s, n in conn.exec_driver_sql(
                "SELECT tree_size, note FROM checkpoints ORDER BY tree_size")}
    finally:
        led.close()


def test_the_signing_key_rotates(home: dict[str, Any]) -> None:
    args, keys = home["args"], home["path"] / "keys"
    old_signer = (keys / "signing.key").read_text().strip()
    old = Verifier.from_text(home["old_vkey"].read_text().strip())
    out = ok("key", "rotate", "--signing", *args).stdout
    assert "signed by both keys" in out and old.to_text() in out
    new = Verifier.from_text(ok("key", "export", *args).stdout.strip())
    assert new.to_text() != old.to_text() and new.name == old.name
    assert (keys / "signing.key").read_text().strip() != old_signer
    assert Signer.from_text((keys / "signing.key").read_text().strip()).verifier() == new
    assert old_signer not in "".join(p.read_text() for p in keys.rglob("*") if p.is_file())
    assert not list(keys.glob("*.next"))
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys.glob("*.key"))
    # the rotation is an entry; the checkpoint over it carries both signatures
    (entry,) = [e for e in jok("audit", "access", *args) if e["action"] == "key"]
    cps = _cps(home)
    first, rotation = sorted(cps)
    for key in (old, new):
        open_checkpoint(cps[rotation], key)
    with pytest.raises(Exception, match="expected a signature"):
        open_checkpoint(cps[first], new)  # before the rotation: the old key only
    ok("ingest", str(write_jsonl(home["tmp"] / "b.jsonl", [payment_event(2)])), *args)
    ok("checkpoint", *args)
    last = max(_cps(home))
    with pytest.raises(Exception, match="expected a signature"):
        open_checkpoint(_cps(home)[last], old)  # after it: the new key only
    # any key of the chain verifies the whole ledger: the home's, the auditor's old copy
    for vkey in (keys / "verifier.key", home["old_vkey"]):
        for extra in ((), ("--since-checkpoint",)):
            rep = _verify_with(home, vkey, *extra)
            assert rep["ok"] and rep["checkpoints_checked"] == 3, rep
    # a proof made now verifies with the new key
    proof = TLogProof.parse(ok("prove", "BP-1", *args).stdout)
    assert proof.extra is not None
    verify_tlog_proof(proof, entry_hash(proof.extra), new, verify_inclusion)
    assert entry["seq"] == rotation - 1


def test_a_retired_key_signs_nothing(home: dict[str, Any]) -> None:
    """A service home that kept the old key, or an old backup, cannot sign again."""
    args = home["args"]
    stale = home["tmp"] / "stale-home"
    shutil.copytree(home["path"], stale, ignore=shutil.ignore_patterns("*.db*", "archive"))
    backup = home["tmp"] / "before.json"
    ok("key", "backup", "--out", str(backup), "--passphrase-file", home["pass"], *args)
    ok("key", "rotate", "--signing", *args)
    ok("ingest", str(write_jsonl(home["tmp"] / "b.jsonl", [payment_event(2)])), *args)
    msg = one_error_line(invoke("checkpoint", *h(stale, home["db"])), 2)
    assert "retired by the rotation" in msg and "bfa init --from" in msg
    ok("verify", *h(stale, home["db"]))  # its old verifier key still checks everything
    target = home["tmp"] / "from-old-backup"
    msg = one_error_line(invoke("key", "restore", str(backup), "--passphrase-file",
                                home["pass"], *h(target, home["db"])), 2)
    assert "retired" in msg
    assert not any((target / "keys").iterdir())
    # a backup taken after the rotation restores a home that signs
    after = home["tmp"] / "after.json"
    ok("key", "backup", "--out", str(after), "--passphrase-file", home["pass"], *args)
    fresh = home["tmp"] / "fresh"
    ok("key", "restore", str(after), "--passphrase-file", home["pass"], *h(fresh, home["db"]))
    ok("checkpoint", *h(fresh, home["db"]))
    ok("verify", *h(fresh, home["db"]))


def test_rotations_chain_and_an_auditor_key_from_the_middle_verifies(
        home: dict[str, Any]) -> None:
    args = home["args"]
    ok("key", "rotate", "--signing", *args)
    middle = home["tmp"] / "middle.vkey"
    middle.write_text(ok("key", "export", *args).stdout)
    middle.chmod(0o600)
    ok("ingest", str(write_jsonl(home["tmp"] / "b.jsonl", [payment_event(2)])), *args)
    ok("key", "rotate", "--signing", *args)
    ok("checkpoint", *args)  # nothing new since the rotation's checkpoint: no new one
    for vkey in (home["old_vkey"], middle, home["path"] / "keys" / "verifier.key"):
        assert _verify_with(home, vkey)["checkpoints_checked"] == 3
    stranger = home["tmp"] / "stranger.vkey"
    stranger.write_text(Signer.generate(Verifier.from_text(
        middle.read_text().strip()).name).verifier().to_text() + "\n")
    stranger.chmod(0o600)
    rep = _verify_with(home, stranger, code=3)
    assert rep["problems"][0]["code"] == "key-rotation"
    assert "none of this ledger's signing keys" in rep["problems"][0]["message"]


def _append_rotation(home: dict[str, Any], old: str, new: str) -> None:
    """What an insider can do without the signing key: append a rotation entry (on
    PostgreSQL only as the tables' owner, which the tests' connection is: the entries
    trigger refuses a control.key entry to every duty, tests/cli/test_duties.py)."""
    from ledger._control import append_control

    led = Ledger.open(str(home["path"]), home["db"])
    try:
        with led.store.writer() as conn:
            append_control(led.store, conn, [{
                "type": "control.key", "id": "key-forged", "user": "alice",
                "action": "rotate-signing", "old_key": old, "new_key": new,
                "at": "2026-12-07T10:00:00+08:00"}], at_is_recorded=False)
    finally:
        led.close()


def test_a_rotation_entry_nobody_cosigned_is_an_integrity_failure(
        home: dict[str, Any]) -> None:
    args = home["args"]
    old = home["old_vkey"].read_text().strip()
    mine = Signer.generate(Verifier.from_text(old).name)
    _append_rotation(home, old, mine.verifier().to_text())
    rep = _verify_with(home, home["old_vkey"], code=3)
    assert rep["problems"][0]["code"] == "key-rotation"
    assert "no checkpoint of size" in rep["problems"][0]["message"]
    msg = one_error_line(invoke("checkpoint", *args), 3)
    assert "key-rotation" in msg or "rotation" in msg
    # nor can the insider sign the rotation checkpoint with their key alone
    assert len(_cps(home)) == 1


def test_a_chain_that_skips_a_key_is_an_integrity_failure(home: dict[str, Any]) -> None:
    ok("key", "rotate", "--signing", *home["args"])
    other = Signer.generate(Verifier.from_text(home["old_vkey"].read_text().strip()).name)
    _append_rotation(home, home["old_vkey"].read_text().strip(), other.verifier().to_text())
    rep = _verify_with(home, home["old_vkey"], code=3)
    assert rep["problems"][0]["code"] == "key-rotation"
    assert "not the key the rotation before it made" in rep["problems"][0]["message"]


def test_a_rotation_stopped_after_its_commit_finishes_itself(
        home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    keys = home["path"] / "keys"
    monkeypatch.setattr(Ledger, "_finish_signing_rotation", lambda self: None)
    ok("key", "rotate", "--signing", *home["args"])  # committed; the files did not move
    monkeypatch.undo()
    waiting = (keys / "signing.key.next").read_text()
    ok("verify", *home["args"])  # the next command moves them
    assert not (keys / "signing.key.next").exists()
    assert (keys / "signing.key").read_text() == waiting
    assert Signer.from_text(waiting.strip()).verifier().to_text() == \
        (keys / "verifier.key").read_text().strip()
    ok("ingest", str(write_jsonl(home["tmp"] / "b.jsonl", [payment_event(2)])), *home["args"])
    ok("checkpoint", *home["args"])
    ok("verify", *home["args"])


def test_a_rotation_refused_before_its_commit_leaves_the_keys(
        home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger import IntegrityError

    keys = home["path"] / "keys"
    before = {p.name: p.read_text() for p in keys.iterdir() if p.is_file()}

    def fail(self: Ledger, conn: Any, signer: Any, *more: Any, **kw: Any) -> Any:
        raise IntegrityError("simulated failure while signing")

    monkeypatch.setattr(Ledger, "_sign", fail)
    one_error_line(invoke("key", "rotate", "--signing", *home["args"]), 3)
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in keys.iterdir() if p.is_file()} == before
    assert not [e for e in jok("audit", "access", *home["args"]) if e["action"] == "key"]
    ok("verify", *home["args"])


def test_rotate_names_one_key(home: dict[str, Any]) -> None:
    for extra in ((), ("--vault", "--signing")):
        res = invoke("key", "rotate", *extra, *home["args"])
        assert res.exit_code == 2 and "--vault or --signing" in res.output
    assert json.loads(ok("status", "--json", *home["args"]).stdout)["size"] > 0
