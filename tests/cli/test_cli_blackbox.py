"""Black-box tests of the `bfa` commands other than ingest and the reconciler's.

Written from README.md, docs/FORMAT.md (§4.6, §5, §6, §7, §8.3, §10) and `--help` only.
Tests marked ``xfail(strict=True, reason="BUG: ...")`` pin behaviour that contradicts the
documents (or crashes, or misleads); they turn into failures once the bug is fixed, so
the marker can then be dropped.

Runs as root here: permission-denied cases (an unwritable ``--out`` directory, an
unreadable key file) cannot be reproduced and are not faked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests._cli import h, invoke, jok, ok, one_error_line
from tests._records import collection, payment_event, write_jsonl
from tests.interop.independent_verifier import verify_consistency_proof, verify_tlog_proof

REVEAL = ("--reveal", "--purpose", "test")  # a reveal states its purpose

BFA = str(Path(sys.executable).with_name("bfa"))
ORIGIN = "bb.example/440100"

BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)
SIGNED = 6 + BATCH + 1 + BATCH  # build(): the size of the checkpoint it signs (cp.note)
COL_50 = SIGNED  # build(): seq of COL-50, the first entry no checkpoint covers
SIZE = SIGNED + 1 + BATCH  # build(): the ledger's size


# ---------------------------------------------------------------------------- helpers


def init(home: Path, db: str | None = None, origin: str = ORIGIN) -> str:
    res = ok("init", *h(home, db), "--origin", origin)
    line = next(x for x in res.stdout.splitlines() if x.startswith("verifier key: "))
    assert "Back up" in res.stdout and "Next steps:" in res.stdout  # what to do next
    return line.split(": ", 1)[1]  # the verifier key


def ingest(home: Path, records: list[Any], name: str, db: str | None = None) -> None:
    path = write_jsonl(home.parent / name, records)
    ok("ingest", str(path), *h(home, db))


def build(home: Path, db: str | None = None) -> str:
    """A ledger: cp 0, BP-0..4 + COL-1 (seq 0-5) and their batch's control.ingest, finance
    BP-1 (same id as business BP-1) and its control.ingest, cp SIGNED (cp.note), then COL-50
    (entry COL_50, not yet signed) and its control.ingest. Returns the verifier key."""
    vkey = init(home, db)
    ok("checkpoint", *h(home, db))
    ingest(home, [payment_event(i) for i in range(5)] + [collection(1)], "a.jsonl", db)
    twin = collection(2)
    twin["id"] = "BP-1"
    ingest(home, [twin], "b.jsonl", db)
    ok("checkpoint", *h(home, db), "--out", str(home.parent / "cp.note"))
    ingest(home, [collection(50)], "c.jsonl", db)
    return vkey


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One SQLite ledger for tests that only read (copy it to change it)."""
    root = tmp_path_factory.mktemp("shared")
    home = root / "home"
    vkey = build(home)
    return {"home": home, "vkey": vkey, "cp": (root / "cp.note").read_text()}


def copy_home(shared: dict[str, Any], dst: Path) -> Path:
    home = dst / "home"
    shutil.copytree(shared["home"], home)
    return home


def entries_count(home: Path) -> int:
    return int(json.loads(ok("status", *h(home), "--json").stdout)["size"])


def leaf_record(home: Path, seq: int) -> dict[str, Any]:
    with sqlite3.connect(home / "ledger.db") as c:
        leaf = c.execute("SELECT leaf FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
    return dict(json.loads(leaf[41:])["record"])


def entry_at(home: Path, db: str | None, seq: int) -> dict[str, Any]:
    """``bfa show --entry --json`` of the entry at ``seq`` (its id read from ``entries``)."""
    sql = "SELECT record_id, domain FROM entries WHERE seq = "
    if db and db.startswith("postgresql"):
        with psycopg.connect(db) as pc:
            row = pc.execute(sql + "%s", (seq,)).fetchone()
    else:
        with sqlite3.connect(db.removeprefix("sqlite:///") if db else home / "ledger.db") as c:
            row = c.execute(sql + "?", (seq,)).fetchone()
    assert row is not None, seq
    return dict(json.loads(ok("show", row[0], "--domain", row[1], "--entry", "--json",
                              *h(home, db)).stdout))


# ------------------------------------------------------------------------- help texts

COMMANDS = [["init"], ["status"], ["checkpoint"], ["verify"], ["prove"], ["show"], ["forget"],
            ["key", "export"], ["db", "grant"], ["demo"]]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_has_an_example(path: list[str]) -> None:
    res = ok(*path, "--help")
    assert "Example:" in res.stdout
    assert f"bfa {path[0]}" in res.stdout.split("Example:", 1)[1]


def test_verify_help_names_documented_options() -> None:
    out = ok("verify", "--help").stdout
    for opt in ("--json", "--since-checkpoint", "--against", "--skip-derived"):
        assert opt in out


# ------------------------------------------------------------------ init and the home


def test_init_twice_keeps_keys_and_other_origin_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    k1 = init(home)
    assert init(home) == k1
    assert (home / "keys").stat().st_mode & 0o777 == 0o700
    for f in ("signing.key", "secret.key"):
        assert (home / "keys" / f).stat().st_mode & 0o777 == 0o600
    assert len((home / "keys" / "secret.key").read_text()) == 65  # 64 hex + newline
    msg = one_error_line(invoke("init", *h(home), "--origin", "other.example/1"), 2)
    assert ORIGIN in msg
    assert ok("key", "export", *h(home)).stdout.strip() == k1


@pytest.mark.parametrize("origin", ["", "bad origin", "a.example/x/", "/a", "-a", "a\nb"])
def test_init_refuses_origins_outside_the_documented_pattern(tmp_path: Path, origin: str) -> None:
    one_error_line(invoke("init", *h(tmp_path / "h"), "--origin", origin), 2)


@pytest.mark.parametrize("args", [
    ["status"], ["checkpoint"], ["verify"], ["prove", "X"], ["show", "X"],
    ["forget", "X", "--yes"], ["key", "export"], ["prove", "--consistency", "1"],
])
def test_uninitialised_home_is_a_one_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    msg = one_error_line(invoke(*args, *h(tmp_path / "none")), 2)
    assert "bfa init" in msg


def test_read_commands_on_a_missing_home_leave_no_trace(tmp_path: Path) -> None:
    for args in (["status"], ["verify"], ["show", "X"], ["prove", "X"]):
        one_error_line(invoke(*args, *h(tmp_path / "typo")), 2)
    assert not (tmp_path / "typo").exists()
    init(tmp_path / "home")
    one_error_line(invoke("status", *h(tmp_path / "home", f"sqlite:///{tmp_path}/no/dir/x.db")), 2)
    assert not (tmp_path / "no").exists()


def test_half_initialised_homes(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    (home / "ledger.db").unlink()
    assert "bfa init" in one_error_line(invoke("status", *h(home)), 2)
    assert "bfa init" in one_error_line(invoke("ingest", "-", *h(home), input="{}\n"), 2)
    assert not (home / "ledger.db").exists()  # FORMAT §5.4: only init makes a database
    home2 = copy_home(shared, tmp_path / "b")
    (home2 / "config.json").write_text("{bad")
    one_error_line(invoke("status", *h(home2)), 2)
    (home2 / "config.json").write_bytes(b"\xff\xfe\x00")
    one_error_line(invoke("status", *h(home2)), 2)
    (home2 / "config.json").unlink()
    one_error_line(invoke("status", *h(home2)), 2)


def test_wrong_schema_revision_is_exit_2(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    with sqlite3.connect(home / "ledger.db") as c:
        c.execute("UPDATE alembic_version SET version_num = '0008'")
    for args in (["status"], ["verify"], ["checkpoint"], ["prove", "COL-1"], ["show", "COL-1"]):
        assert "bfa init" in one_error_line(invoke(*args, *h(home)), 2)


def test_newer_schema_revision_gives_useful_advice(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    with sqlite3.connect(home / "ledger.db") as c:
        c.execute("UPDATE alembic_version SET version_num = '0099'")
    msg = one_error_line(invoke("status", *h(home)), 2)
    assert "run 'bfa init'" not in msg
    one_error_line(invoke("init", *h(home), "--origin", ORIGIN), 2)


# ---------------------------------------------------------------------------- keys


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o602, 0o610])
def test_signing_key_with_group_or_other_bits_is_refused(
    tmp_path: Path, shared: dict[str, Any], mode: int
) -> None:
    home = copy_home(shared, tmp_path)
    key = home / "keys" / "signing.key"
    key.chmod(mode)
    for args in (["checkpoint"], ["verify"], ["key", "export"], ["prove", "COL-1"]):
        assert "chmod 600" in one_error_line(invoke(*args, *h(home)), 2)
    key.chmod(0o400)
    ok("key", "export", *h(home))


def test_secret_key_with_other_bits_is_refused(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    (home / "keys" / "secret.key").chmod(0o644)
    n = entries_count(home)
    # a reveal needs no secret (commitments are plain hashes) and loads none
    assert "chmod 600" in one_error_line(invoke("forget", "X", "--yes", *h(home)), 2)
    assert "chmod 600" in one_error_line(invoke("ingest", "-", *h(home), input="{}\n"), 2)
    assert entries_count(home) == n


@pytest.mark.parametrize("content", ["", "garbage\n", "PRIVATE+KEY+x\n"])
def test_missing_or_corrupt_signing_key_is_exit_2(
    tmp_path: Path, shared: dict[str, Any], content: str
) -> None:
    home = copy_home(shared, tmp_path)
    key = home / "keys" / "signing.key"
    exported = ok("key", "export", *h(home)).stdout
    key.unlink()
    # a home without the signing key is a home for other duties (FORMAT.md §5.4): it still
    # exports the verifier key it keeps, but cannot sign
    assert ok("key", "export", *h(home)).stdout == exported
    assert "signing key" in one_error_line(invoke("checkpoint", *h(home)), 2)
    key.write_text(content)
    key.chmod(0o600)
    for args in (["checkpoint"], ["verify"], ["key", "export"]):
        one_error_line(invoke(*args, *h(home)), 2)


@pytest.mark.parametrize("content", ["", "zz\n", "abcd\n", "g" * 64 + "\n", "ab" * 16 + "\n"])
def test_corrupt_secret_key_is_exit_2(tmp_path: Path, shared: dict[str, Any], content: str) -> None:
    home = copy_home(shared, tmp_path)
    key = home / "keys" / "secret.key"
    key.write_text(content)
    one_error_line(invoke("forget", "X", "--yes", *h(home)), 2)


@pytest.mark.parametrize("which,args", [("signing.key", ["key", "export"]),
                                        ("secret.key", ["forget", "X", "--yes"])])
def test_binary_key_file_is_a_clean_error(
    tmp_path: Path, shared: dict[str, Any], which: str, args: list[str]
) -> None:
    home = copy_home(shared, tmp_path)
    (home / "keys" / which).write_bytes(b"\xf9\x00\x81" * 30)
    one_error_line(invoke(*args, *h(home)), 2)


def test_env_key_paths(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    one_error_line(invoke("checkpoint", *h(home), env={"BFA_SIGNING_KEY": "/nonexistent"}), 2)
    one_error_line(invoke("key", "export", *h(home), env={"BFA_SIGNING_KEY": str(tmp_path)}), 2)
    one_error_line(invoke("forget", "X", "--yes", *h(home),
                          env={"BFA_SECRET_KEY": str(tmp_path)}), 2)
    ext = tmp_path / "ext"
    ext.mkdir()
    env = {"BFA_SIGNING_KEY": str(ext / "s.key"), "BFA_SECRET_KEY": str(ext / "x.key")}
    h2 = tmp_path / "h2"
    ok("init", *h(h2), "--origin", "ext.example/1", env=env)
    assert (ext / "s.key").stat().st_mode & 0o777 == 0o600
    assert not (h2 / "keys" / "signing.key").exists()
    ok("checkpoint", *h(h2), env=env)
    ok("verify", *h(h2), env=env)


def test_signing_key_of_another_name_is_refused(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    init(home)
    init(other, origin="other.example/9")
    shutil.copy(other / "keys" / "signing.key", home / "keys" / "signing.key")
    one_error_line(invoke("key", "export", *h(home)), 2)
    one_error_line(invoke("checkpoint", *h(home)), 2)


@pytest.mark.parametrize("which", ["signing.key", "secret.key"])
def test_init_over_insecure_keys(tmp_path: Path, which: str) -> None:
    home = tmp_path / "home"
    init(home)
    (home / "keys" / which).chmod(0o644)
    res = invoke("init", *h(home), "--origin", ORIGIN)
    assert "chmod 600" in one_error_line(res, 2)
    assert "ready" not in res.stdout


@pytest.mark.parametrize("which", ["signing.key", "secret.key"])
def test_key_in_a_directory_others_may_write_is_refused(
    tmp_path: Path, shared: dict[str, Any], which: str
) -> None:
    home = copy_home(shared, tmp_path)
    keys = home / "keys"
    args = ["key", "export"] if which == "signing.key" else ["forget", "X", "--yes"]
    for mode in (0o777, 0o770, 0o702):
        keys.chmod(mode)
        assert "chmod go-w" in one_error_line(invoke(*args, *h(home)), 2)
    keys.chmod(0o1777)  # sticky: others may not replace a file they do not own
    ok(*args, *h(home))
    keys.chmod(0o700)
    ok(*args, *h(home))


@pytest.mark.parametrize("config,said", [
    ('["x"]', "JSON object"),
    ('{"origin": "bb.example/440100", "databse_url": "postgresql://x/y"}', "databse_url"),
    ('{"origin": 7}', "origin must be a string"),
    ('{"origin": "bb.example/440100", "database_url": 5}', "database_url must be a string"),
    ('{"origin": "bb.example/440100\\n"}', "not a ledger name"),
    ('{"origin": ""}', "no origin"),
    ("{}", "no origin"),
])
def test_config_json_is_checked(
    tmp_path: Path, shared: dict[str, Any], config: str, said: str
) -> None:
    """FORMAT.md §5.4: config.json holds the origin and, optionally, the database URL; a
    misspelt setting must not quietly send commands to the default database."""
    home = copy_home(shared, tmp_path)
    (home / "config.json").write_text(config)
    for args in (["status"], ["verify"], ["init", "--origin", ORIGIN]):
        msg = one_error_line(invoke(*args, *h(home)), 2)
        assert "config.json" in msg and said in msg, msg


def test_key_export_json(shared: dict[str, Any]) -> None:
    view = json.loads(ok("key", "export", *h(shared["home"]), "--json").stdout)
    assert set(view) == {"origin", "verifier_key"}
    assert view == {"origin": ORIGIN, "verifier_key": shared["vkey"]}
    name, keyid, b64 = view["verifier_key"].split("+", 2)
    pub = base64.b64decode(b64)
    assert name == ORIGIN and pub[0] == 1 and len(pub) == 33
    assert keyid == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub[1:]).hexdigest()[:8]


# ---------------------------------------------------------------------- status / checkpoint


def test_status_json_members(shared: dict[str, Any]) -> None:
    view = json.loads(ok("status", *h(shared["home"]), "--json").stdout)
    assert set(view) == {"origin", "database", "size", "chain_head", "checkpoint_size",
                         "checkpoint_root", "checkpoint_created_at", "unsigned", "verified_size",
                         "identity", "duties"}
    assert view["size"] == SIZE and view["checkpoint_size"] == SIGNED
    assert view["unsigned"] == 1 + BATCH
    assert view["origin"] == ORIGIN


def test_build_ends_every_batch_with_its_control_ingest(shared: dict[str, Any]) -> None:
    """The layout SIGNED, COL_50 and SIZE count on (FORMAT.md §2.5)."""
    for first, count in ((0, 6), (6 + BATCH, 1), (COL_50, 1)):
        ctl = entry_at(shared["home"], None, first + count)["payload"]
        assert ctl["type"] == "control.ingest"
        assert (ctl["first"], ctl["count"]) == (first, count)
    assert leaf_record(shared["home"], COL_50)["id"] == "COL-50"


def test_checkpoint_json_new_and_out(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    init(home, db_url)
    view = json.loads(ok("checkpoint", *h(home, db_url), "--json").stdout)
    assert set(view) == {"origin", "size", "root_hash", "chain_head", "signed_note",
                         "created_at", "new"}
    assert view["size"] == 0 and view["chain_head"] is None and view["new"] is True
    assert view["root_hash"] == hashlib.sha256(b"").hexdigest()
    ingest(home, [payment_event(1)], "a.jsonl", db_url)  # BP-1, then its control.ingest
    out = tmp_path / "existing.note"
    out.write_text("old content that must be replaced\n" * 20)
    v1 = json.loads(ok("checkpoint", *h(home, db_url), "--json", "--out", str(out)).stdout)
    assert v1["new"] is True and v1["size"] == 1 + BATCH and out.read_text() == v1["signed_note"]
    shown = json.loads(ok("show", "BP-1", "--entry", "--json", *h(home, db_url)).stdout)
    head = entry_at(home, db_url, 1)
    assert head["payload"]["type"] == "control.ingest" and head["prev_hash"] == shown["entry_hash"]
    assert v1["chain_head"] == head["entry_hash"]
    leaves = bytes.fromhex(shown["entry_hash"]) + bytes.fromhex(head["entry_hash"])
    assert v1["root_hash"] == hashlib.sha256(b"\x01" + leaves).hexdigest()  # RFC 6962, 2 leaves
    v2 = json.loads(ok("checkpoint", *h(home, db_url), "--json").stdout)
    assert v2["new"] is False and v2["signed_note"] == v1["signed_note"]
    lines = v1["signed_note"].split("\n")
    assert lines[:2] == [ORIGIN, str(1 + BATCH)]
    assert lines[3] == "" and lines[4].startswith("— " + ORIGIN)


def test_checkpoint_out_to_a_directory_or_missing_dir(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    home = copy_home(shared, tmp_path)
    res = invoke("checkpoint", *h(home), "--out", str(tmp_path))
    assert res.exit_code == 2 and "Traceback" not in res.output
    (tmp_path / "a_file").write_text("")
    one_error_line(invoke("checkpoint", *h(home), "--out", str(tmp_path / "a_file" / "x")), 2)


def test_checkpoint_out_dash_is_a_usage_error(tmp_path: Path, shared: dict[str, Any]) -> None:
    """``--out -`` would write a file named ``-``; the note goes to stdout anyway."""
    home = copy_home(shared, tmp_path)
    res = invoke("checkpoint", *h(home), "--out", "-")
    assert res.exit_code == 2 and "standard output" in res.stderr
    assert json.loads(ok("status", *h(home), "--json").stdout)["checkpoint_size"] == SIGNED


def test_checkpoint_out_failure_signs_nothing_or_says_so(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    home = copy_home(shared, tmp_path)
    (tmp_path / "a_file").write_text("")                 # a file as parent: unwritable
    msg = one_error_line(invoke("checkpoint", *h(home), "--out", str(tmp_path / "a_file" / "x")), 2)
    size = json.loads(ok("status", *h(home), "--json").stdout)["checkpoint_size"]
    assert size == SIGNED or "signed" in msg


def test_checkpoint_refuses_a_tampered_ledger(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    with sqlite3.connect(home / "ledger.db") as c:
        c.execute("DROP TRIGGER entries_no_update")
        leaf = c.execute("SELECT leaf FROM entries WHERE seq = ?", (COL_50,)).fetchone()[0]
        assert b'"id":"COL-50"' in leaf and leaf.count(b"100.00") == 1
        c.execute("UPDATE entries SET leaf = ? WHERE seq = ?",
                  (leaf.replace(b"100.00", b"900.00"), COL_50))
    res = invoke("checkpoint", *h(home), "--json")
    one_error_line(res, 3)
    assert res.stdout == ""
    rep = invoke("verify", *h(home), "--json")
    assert rep.exit_code == 3
    report = json.loads(rep.stdout)
    assert report["ok"] is False and report["problems"][0]["code"] == "payload-changed"
    assert report["problems"][0]["seq"] == COL_50
    assert invoke("verify", *h(home)).exit_code == 3


# -------------------------------------------------------------------------- verify


VERIFY_MEMBERS = {"ok", "entries_checked", "checkpoints_checked", "tree_size", "start",
                  "derived_checked", "against", "problems"}


def test_verify_json_full_and_since_checkpoint(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    build(home, db_url)
    full = json.loads(ok("verify", *h(home, db_url), "--json").stdout)
    assert set(full) == VERIFY_MEMBERS
    assert full == {**full, "ok": True, "problems": [], "tree_size": SIZE, "start": 0,
                    "entries_checked": SIZE, "derived_checked": True, "against": None,
                    "checkpoints_checked": 2}
    assert json.loads(ok("status", *h(home, db_url), "--json").stdout)["verified_size"] == SIGNED
    since = json.loads(ok("verify", *h(home, db_url), "--json", "--since-checkpoint").stdout)
    assert since["start"] == SIGNED and since["entries_checked"] == SIZE - SIGNED
    assert since["derived_checked"] is False
    skip = json.loads(ok("verify", *h(home, db_url), "--json", "--skip-derived").stdout)
    assert skip["derived_checked"] is False and skip["start"] == 0


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\xff" * 50, b"x.example/1\n7\n",
                                     b"just text\n", b"a" * 2_000_000])
def test_verify_against_garbage_is_exit_2(
    tmp_path: Path, shared: dict[str, Any], content: bytes
) -> None:
    f = tmp_path / "a.note"
    f.write_bytes(content)
    res = invoke("verify", *h(shared["home"]), "--against", str(f))
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output


def test_verify_against_directory_or_missing_file(tmp_path: Path, shared: dict[str, Any]) -> None:
    for p in (str(tmp_path), str(tmp_path / "missing.note")):
        res = invoke("verify", *h(shared["home"]), "--against", p)
        assert res.exit_code == 2 and "Traceback" not in res.output


def test_verify_against_truncated_note(tmp_path: Path, shared: dict[str, Any]) -> None:
    f = tmp_path / "t.note"
    f.write_text(shared["cp"][: len(shared["cp"]) // 2 + 60])
    one_error_line(invoke("verify", *h(shared["home"]), "--against", str(f)), 2)
    (tmp_path / "sig.note").write_text(shared["cp"] + "junk line\n")
    one_error_line(invoke("verify", *h(shared["home"]), "--against", str(tmp_path / "sig.note")), 2)


def test_verify_against_own_checkpoint_and_crlf(tmp_path: Path, shared: dict[str, Any]) -> None:
    f = tmp_path / "cp.note"
    f.write_text(shared["cp"])
    rep = json.loads(ok("verify", *h(shared["home"]), "--against", str(f), "--json").stdout)
    assert rep["against"] == SIGNED and rep["ok"] is True
    # an auditor's copy with CRLF line endings must not raise an integrity alarm
    f.write_bytes(shared["cp"].replace("\n", "\r\n").encode())
    assert invoke("verify", *h(shared["home"]), "--against", str(f)).exit_code in (0, 2)
    # nor one an editor saved with a byte-order mark: a usage error naming it, exit 2
    f.write_bytes(b"\xef\xbb\xbf" + shared["cp"].encode())
    res = invoke("verify", *h(shared["home"]), "--against", str(f))
    assert res.exit_code == 2 and "byte-order mark" in res.output, res.output


def test_verify_against_other_keys_and_tampered_note(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    same_name, other_name = tmp_path / "same", tmp_path / "other"
    init(same_name)
    init(other_name, origin="other.example/9")
    for home in (same_name, other_name):
        ok("checkpoint", *h(home), "--out", str(home / "cp.note"))
        res = invoke("verify", *h(shared["home"]), "--against", str(home / "cp.note"), "--json")
        assert res.exit_code == 3
        assert json.loads(res.stdout)["problems"][0]["code"] == "against-signature"
    forged = tmp_path / "forged.note"
    assert f"\n{SIGNED}\n" in shared["cp"]
    forged.write_text(shared["cp"].replace(f"\n{SIGNED}\n", "\n5\n", 1))
    res = invoke("verify", *h(shared["home"]), "--against", str(forged), "--json")
    assert res.exit_code == 3
    assert json.loads(res.stdout)["problems"][0]["code"] == "against-signature"


def test_verify_against_larger_and_forked_checkpoints(tmp_path: Path, db_url: str) -> None:
    # two homes with the same keys: one grows, the other keeps the original history
    base = tmp_path / "base"
    init(base, db_url)
    ingest(base, [collection(1)], "one.jsonl", db_url)
    sq = tmp_path / "twin" / "home"
    shutil.copytree(base / "keys", sq / "keys")
    shutil.copy(base / "config.json", sq / "config.json")
    ok("init", *h(sq), "--origin", ORIGIN)            # SQLite twin with the same keys
    ingest(sq, [collection(2)], "two.jsonl")          # a different first entry: a fork
    ingest(sq, [collection(3), collection(4)], "three.jsonl")
    ok("checkpoint", *h(sq), "--out", str(tmp_path / "twin.note"))
    res = invoke("verify", *h(base, db_url), "--against", str(tmp_path / "twin.note"), "--json")
    assert res.exit_code == 3
    assert json.loads(res.stdout)["problems"][0]["code"] == "truncated"
    ingest(base, [collection(5), collection(6), collection(7)], "more.jsonl", db_url)
    res = invoke("verify", *h(base, db_url), "--against", str(tmp_path / "twin.note"), "--json")
    assert res.exit_code == 3
    assert json.loads(res.stdout)["problems"][0]["code"] == "fork"


# --------------------------------------------------------------------------- prove


INCLUSION_MEMBERS = {"record_id", "domain", "seq", "leaf_index", "tree_size", "leaf_hash",
                     "hashes", "checkpoint", "leaf", "tlog_proof"}


def test_prove_before_any_checkpoint_is_exit_1(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    init(home, db_url)
    ingest(home, [payment_event(1)], "a.jsonl", db_url)
    assert "bfa checkpoint" in one_error_line(invoke("prove", "BP-1", *h(home, db_url)), 1)
    assert invoke("prove", "--consistency", "1", *h(home, db_url)).exit_code == 1
    one_error_line(invoke("prove", "NOPE", *h(home, db_url)), 2)


def test_prove_uncovered_unknown_and_ambiguous(shared: dict[str, Any]) -> None:
    home = shared["home"]
    assert "bfa checkpoint" in one_error_line(invoke("prove", "COL-50", *h(home)), 1)
    one_error_line(invoke("prove", "NOPE", *h(home)), 2)
    assert "--domain" in one_error_line(invoke("prove", "BP-1", *h(home)), 2)
    assert "--domain" in one_error_line(invoke("show", "BP-1", *h(home)), 2)
    one_error_line(invoke("prove", "BP-1", "--domain", "archive", *h(home)), 2)
    res = invoke("prove", "BP-1", "--domain", "Business", *h(home))
    assert res.exit_code == 2


@pytest.mark.parametrize("rid", ["", "%", "BP-%", "BP-_", "bp-1", "BP-1 ", "X" * 5000,
                                 "X\nbfa: error: forged", "X\x1b[31mred", "\u202eBP-1"])
def test_odd_record_ids_give_one_clean_line(shared: dict[str, Any], rid: str) -> None:
    for cmd in ("prove", "show"):
        one_error_line(invoke(cmd, rid, "--domain", "business", *h(shared["home"])), 2)


def test_inclusion_proof_verifies_independently(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    vkey = build(home, db_url)
    for rid, dom in (("BP-0", "business"), ("BP-1", "business"), ("BP-1", "finance"),
                     ("COL-1", "finance")):
        args = ["prove", rid, "--domain", dom, *h(home, db_url)]
        text = ok(*args).stdout
        view = json.loads(ok(*args, "--json").stdout)
        assert set(view) == INCLUSION_MEMBERS
        assert view["tlog_proof"] == text and view["leaf_index"] == view["seq"]
        assert view["leaf_index"] < view["tree_size"] == SIGNED
        raw = ok("show", rid, "--domain", dom, "--entry", "--raw", *h(home, db_url)).stdout_bytes
        entry = json.loads(ok("show", rid, "--domain", dom, "--entry", "--json",
                              *h(home, db_url)).stdout)
        assert base64.b64decode(view["leaf"]) == raw
        assert hashlib.sha256(b"\x00" + raw).hexdigest() == view["leaf_hash"]
        assert view["leaf_hash"] == entry["entry_hash"]
        res = verify_tlog_proof(text, raw, vkey, ORIGIN)
        assert res.index == view["seq"] and res.tree_size == SIGNED
        assert res.record["id"] == rid and res.record["type"].startswith(dom + ".")


def test_consistency_proofs(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    vkey = build(home, db_url)
    ok("checkpoint", *h(home, db_url))                           # size SIZE
    old_size, new_size = str(SIGNED), str(SIZE)
    with_h = ok("prove", "--consistency", old_size, *h(home, db_url)).stdout
    view = json.loads(ok("prove", "--consistency", old_size, new_size, "--json",
                         *h(home, db_url)).stdout)
    assert set(view) == {"size1", "size2", "root1", "root2", "hashes", "checkpoint"}
    assert (view["size1"], view["size2"]) == (SIGNED, SIZE)
    assert with_h.startswith(f"old {SIGNED}\n")
    cp = (tmp_path / "cp.note").read_text()
    old, new = verify_consistency_proof(with_h, cp, vkey, ORIGIN)
    assert (old.size, new.size) == (SIGNED, SIZE)
    assert base64.b64decode(view["root2"]) == new.root
    same = ok("prove", "--consistency", old_size, old_size, *h(home, db_url)).stdout
    assert same.split("\n")[:2] == [f"old {SIGNED}", ""]
    verify_consistency_proof(same, cp, vkey, ORIGIN)


@pytest.mark.parametrize("args", [["0"], ["0", f"{SIGNED}"], [f"{SIGNED}", "0"], ["-1"], ["3"],
                                  [f"{SIGNED}", "3"], ["99999999999999999999999"], ["abc"],
                                  [f"{SIGNED}", "abc"]])
def test_consistency_bad_sizes_are_exit_2(shared: dict[str, Any], args: list[str]) -> None:
    res = invoke("prove", "--consistency", *args, *h(shared["home"]))
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.stdout == ""


def test_prove_contradictory_arguments(shared: dict[str, Any]) -> None:
    home = shared["home"]
    for args in (["prove"], ["prove", "BP-0", "--consistency", f"{SIGNED}"],
                 ["prove", "--consistency", f"{SIGNED}", "--domain", "business"]):
        res = invoke(*args, *h(home))
        assert res.exit_code == 2 and res.stdout == "", res.output


# ---------------------------------------------------------------------------- show


def test_show_forms(shared: dict[str, Any]) -> None:
    home = shared["home"]
    rec = json.loads(ok("show", "BP-0", *h(home), "--json").stdout)
    entry = json.loads(ok("show", "BP-0", *h(home), "--entry", "--json").stdout)
    assert set(entry) == {"seq", "domain", "kind", "record_id", "recorded_at", "prev_hash",
                          "entry_hash", "payload"}
    assert entry["payload"] == rec and rec["person_id"].startswith("ps1:")
    raw = ok("show", "BP-0", *h(home), "--entry", "--raw").stdout_bytes
    assert raw[0] == 1 and int.from_bytes(raw[1:9], "big") == entry["seq"]
    assert raw[9:41].hex() == entry["prev_hash"]
    for bad in (["--raw"], ["--entry", "--raw", "--json"], ["--entry", "--raw", *REVEAL]):
        res = invoke("show", "BP-0", *h(home), *bad)
        assert res.exit_code == 2 and res.stdout == ""


# -------------------------------------------------------------------- reveal and forget


def test_reveal_forget_reveal(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    build(home, db_url)
    env = {"BFA_USER": "env.user"}
    view = json.loads(ok("show", "BP-0", *REVEAL, "--json", *h(home, db_url),
                         env=env).stdout)
    assert view["revealed"] == {"account": "6222020200112233445",
                                "person_id": "110101199001011234"}
    ok("show", "BP-0", *REVEAL, "--user", "li.wei", *h(home, db_url))
    res = invoke("forget", "110101199001011234", *h(home, db_url))   # no terminal, no --yes
    assert res.exit_code == 2 and "--yes" in res.output
    assert json.loads(ok("show", "BP-0", *REVEAL, "--json", *h(home, db_url)).stdout
                      )["revealed"] != {}
    out = ok("forget", "110101199001011234", "--yes", "--user", "dpo", *h(home, db_url)).stdout
    assert "erased 10 " in out
    assert "erased 0 " in ok("forget", "110101199001011234", "--yes", *h(home, db_url)).stdout
    assert "erased 0 " in ok("forget", "unknown-person", "--yes", *h(home, db_url)).stdout
    view = json.loads(ok("show", "BP-0", *REVEAL, "--json", *h(home, db_url)).stdout)
    assert view["revealed"] == {}
    rep = json.loads(ok("verify", *h(home, db_url), "--json").stdout)
    assert rep["ok"] is True and rep["tree_size"] == SIZE + 3 + 3 + 1  # 3 reveals, 3 forgets


def test_reveal_and_forget_control_entries(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    ok("show", "BP-0", *REVEAL, "--user", "li.wei", *h(home))
    ok("forget", "110101199001011234", "--yes", "--user", "dpo", *h(home))
    ok("show", "BP-0", *REVEAL, "--user", "li.wei", *h(home))
    r1, f, r2 = (leaf_record(home, s) for s in (SIZE, SIZE + 1, SIZE + 2))
    assert set(r1) == {"type", "id", "user", "record", "fields", "purpose", "at"}
    assert r1["user"] == "li.wei" and r1["fields"] == ["account", "person_id"]
    assert r1["record"] == {"domain": "business", "id": "BP-0", "seq": 0}
    assert set(f) == {"type", "id", "user", "subject", "erased", "at"}
    assert f["erased"] == 10 and f["subject"].startswith("ps1:") and "1101011990" not in str(f)
    assert r2["fields"] == []
    shown = json.loads(ok("show", r1["id"], "--domain", "control", "--json", *h(home)).stdout)
    assert shown == r1


@pytest.mark.parametrize("user", ["a\nb", "a\x1bb"])
def test_reveal_refuses_an_empty_or_control_user(
    tmp_path: Path, shared: dict[str, Any], user: str
) -> None:
    home = copy_home(shared, tmp_path)
    n = entries_count(home)
    one_error_line(invoke("show", "BP-0", *REVEAL, "--user", user, *h(home)), 2)
    one_error_line(invoke("forget", "X", "--yes", "--user", user, *h(home)), 2)
    assert entries_count(home) == n


def _bfa_proc(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    redir = {"closed": "<&-", "devnull": "</dev/null"}[stdin]
    env = {**os.environ, "BFA_USER": "tester"}
    env.pop("BFA_DEBUG", None)
    return subprocess.run(["sh", "-c", f'exec "$0" "$@" {redir}', BFA, *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_forget_without_terminal_refuses_with_devnull(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    home = copy_home(shared, tmp_path)
    n = entries_count(home)
    p = _bfa_proc(["forget", "110101199001011234", *h(home)], "devnull")
    assert p.returncode == 2 and "--yes" in p.stderr and "Traceback" not in p.stderr
    assert entries_count(home) == n
    p = _bfa_proc(["forget", "110101199001011234", "--yes", *h(home)], "closed")
    assert p.returncode == 0 and "erased 10 " in p.stdout


def test_forget_with_stdin_closed_is_a_usage_error(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    p = _bfa_proc(["forget", "110101199001011234", *h(home)], "closed")
    assert p.returncode == 2 and "--yes" in p.stderr
    assert "internal error" not in p.stderr


@pytest.mark.parametrize("args", [["show", "COL-1", "--json"], ["key", "export"],
                                  ["prove", "COL-1"]])
def test_output_to_a_closed_pipe_ends_quietly(
    tmp_path: Path, shared: dict[str, Any], args: list[str]
) -> None:
    """``bfa show ... | head`` when the reader has gone: exit 2 (the output was cut short),
    no 'Broken pipe' message and no traceback. The pipe's read end is closed before the
    process starts, so the first write fails every time."""
    home = copy_home(shared, tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        p = subprocess.run([BFA, *args, *h(home)], stdout=write_end, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=60, text=True,
                           env={**os.environ, "BFA_USER": "tester", "BFA_DEBUG": ""})
    finally:
        os.close(write_end)
    assert p.returncode == 2, p.stderr
    assert p.stderr == "", p.stderr


def _pty_forget(home: Path, answer: bytes) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    env = {**os.environ, "BFA_USER": "tester"}
    p = subprocess.Popen([BFA, "forget", "110101199001011234", *h(home)], stdin=slave,
                         stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out, sent, deadline = b"", False, time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if not sent and b"[y/N]" in out:
                os.write(master, answer)
                sent = True
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(timeout=30), out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty")
def test_forget_at_a_terminal_asks(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = copy_home(shared, tmp_path)
    n = entries_count(home)
    for answer in (b"n\n", b"\n"):
        code, out = _pty_forget(home, answer)
        assert code == 2 and b"nothing erased" in out, out
    assert entries_count(home) == n
    code, out = _pty_forget(home, b"y\n")
    assert code == 0 and b"erased 10 " in out


# ------------------------------------------------------------- home / database mix-ups


def test_home_with_another_ledgers_database_is_refused(tmp_path: Path, db_url: str) -> None:
    real, stray = tmp_path / "real", tmp_path / "stray"
    init(real, db_url)
    ingest(real, [collection(1)], "a.jsonl", db_url)
    init(stray, origin="stray.example/1")                   # its own SQLite, another key
    res = invoke("checkpoint", *h(stray, db_url))
    ok("verify", *h(real, db_url))
    one_error_line(res, 2)


def test_reveal_with_another_home_is_refused(tmp_path: Path, db_url: str) -> None:
    real, stray = tmp_path / "real", tmp_path / "stray"
    init(real, db_url)
    ingest(real, [payment_event(1)], "a.jsonl", db_url)
    init(stray, origin="stray.example/1")
    one_error_line(invoke("show", "BP-1", *REVEAL, *h(stray, db_url)), 2)


def test_database_url_errors(tmp_path: Path, shared: dict[str, Any]) -> None:
    home = shared["home"]
    for url in ("nonsense", "mysql://x@y/z", f"sqlite:///{tmp_path}/missing/x.db"):
        one_error_line(invoke("status", *h(home, url)), 2)
    (tmp_path / "junk.db").write_bytes(os.urandom(4096))
    one_error_line(invoke("status", *h(home, f"sqlite:///{tmp_path}/junk.db")), 2)


def test_unreachable_postgres_is_one_line(shared: dict[str, Any]) -> None:
    res = invoke("status", *h(shared["home"], "postgresql://u:secret@127.0.0.1:1/x"))
    one_error_line(res, 2)


def test_unreachable_postgres_hides_password(shared: dict[str, Any]) -> None:
    res = invoke("status", *h(shared["home"], "postgresql://u:secret@127.0.0.1:1/x"))
    assert res.exit_code == 2 and "secret" not in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------- db grant


def test_db_grant_on_sqlite_and_bad_role_names(shared: dict[str, Any]) -> None:
    one_error_line(invoke("db", "grant", "bfa_app", "--duty", "officer", *h(shared["home"])), 2)
    one_error_line(invoke("db", "grant", "bfa_app", "--duty", "auditor", "--print-sql",
                          *h(shared["home"])), 2)
    res = invoke("db", "grant", "--duty", "officer", *h(shared["home"]))
    assert res.exit_code == 2
    res = invoke("db", "grant", "bfa_app", *h(shared["home"]))  # no duty named
    assert res.exit_code == 2 and "--duty" in res.stderr


def _pg(db_url: str) -> bool:
    return db_url.startswith("postgresql")


@pytest.mark.parametrize("role", ["bad-role", 'x"; DROP TABLE entries; --', "", "a b"])
def test_db_grant_refuses_unsafe_role_names(tmp_path: Path, db_url: str, role: str) -> None:
    if not _pg(db_url):
        pytest.skip("PostgreSQL only")
    home = tmp_path / "home"
    init(home, db_url)
    one_error_line(invoke("db", "grant", role, "--duty", "officer", "--print-sql",
                          *h(home, db_url)), 2)
    one_error_line(invoke("db", "grant", role, "--duty", "officer", *h(home, db_url)), 2)


def test_db_grant_print_sql_matches_format(tmp_path: Path, db_url: str) -> None:
    if not _pg(db_url):
        pytest.skip("PostgreSQL only")
    home = tmp_path / "home"
    init(home, db_url)
    sql = ok("db", "grant", "bfa_app", "--duty", "approver", "--duty", "officer",
             "--print-sql", *h(home, db_url)).stdout.splitlines()
    # FORMAT §8.3: the group roles are the database's own: bfa_<duty>_<database name>
    db = db_url.rsplit("/", 1)[1]
    g = {d: f'"bfa_{d}_{db}"' for d in ("officer", "approver", "auditor", "privacy", "service")}
    # creating in the schema taken from everyone, then the five duty roles, in the order
    # officer, approver, auditor, privacy, service, each created if missing, emptied,
    # given reading and its own rights
    assert sql[0] == "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
    heads = [i for i, line in enumerate(sql) if line.startswith("DO $$") and any(
        f"rolname = 'bfa_{d}_{db}'" in line for d in g)]
    assert len(heads) == 5 and heads[0] == 1
    # then the rules role of the auditors' SQL rules (FORMAT §8.6): made if missing, it
    # reads the rule views alone
    rules = [i for i, line in enumerate(sql) if line.startswith("DO $$")
             and f"rolname = 'bfa_rules_{db}'" in line]
    assert rules and rules[0] > heads[4]
    assert any(line.startswith("GRANT SELECT ON bfa_v_records, ") and
               line.endswith(f' TO "bfa_rules_{db}";') for line in sql[rules[0]:])
    for duty, i in zip(("officer", "approver", "auditor", "privacy", "service"), heads,
                       strict=True):
        r = g[duty]
        assert f"rolname = 'bfa_{duty}_{db}'" in sql[i] and f"CREATE ROLE {r} NOLOGIN" in sql[i]
        assert sql[i + 1:i + 5] == [
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {r};",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {r};",
            f"GRANT USAGE ON SCHEMA public TO {r};",
            f"GRANT SELECT ON entries, tree_nodes, checkpoints, meta, alembic_version TO {r};"]
        assert sql[i + 5].startswith("GRANT SELECT ON ar_files, rc_")
        assert sql[i + 5].endswith(f" TO {r};")
        tables = sql[i + 5].split(" ON ", 1)[1].split(" TO ", 1)[0].split(", ")
        assert tables == sorted(tables) and len(tables) == 15
    auditor = sql[heads[2]:heads[3]]
    assert len(auditor) == 6  # reading only
    privacy = sql[heads[3]:heads[4]]
    service = sql[heads[4]:rules[0]]
    assert all("bfa_rules_" not in line for line in service)
    assert privacy[6:] == [f'GRANT INSERT ON entries, tree_nodes TO {g["privacy"]};',
                           f'GRANT SELECT, DELETE ON vault, vault_keys TO {g["privacy"]};']
    # nobody before the privacy duty reads the vault (officers look up wrapped data keys)
    assert not any("SELECT" in line and "vault" in line.replace(",", " ").split()
                   for line in sql[:heads[3]])
    assert f'GRANT SELECT, INSERT ON vault_keys TO {g["officer"]};' in sql
    assert sql[-5:] == [
        'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "bfa_app";',
        'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM "bfa_app";',
        'REVOKE ALL ON SCHEMA public FROM "bfa_app";',
        f"REVOKE {', '.join(g.values())} FROM \"bfa_app\";",
        f'GRANT {g["officer"]}, {g["approver"]} TO "bfa_app";']
    one_error_line(invoke("db", "grant", f"no_such_role_{uuid.uuid4().hex[:8]}",
                          "--duty", "officer", *h(home, db_url)), 2)


def test_db_grant_by_a_non_owner_does_not_claim_success(tmp_path: Path, db_url: str) -> None:
    if not _pg(db_url):
        pytest.skip("PostgreSQL only")
    home = tmp_path / "home"
    init(home, db_url)
    app, target = (f"bb_{x}_{uuid.uuid4().hex[:8]}" for x in ("app", "tgt"))
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f'CREATE ROLE "{app}" LOGIN')
        c.execute(f'CREATE ROLE "{target}"')
    try:
        ok("db", "grant", app, "--duty", "officer", *h(home, db_url))
        app_url = db_url.replace("://postgres@", f"://{app}@", 1)
        try:
            psycopg.connect(app_url).close()
        except psycopg.OperationalError:
            pytest.skip("cannot log in as a new role without a password here")
        res = invoke("db", "grant", target, "--duty", "officer", *h(home, app_url))
        with psycopg.connect(db_url) as c:
            granted = c.execute("SELECT count(*) FROM information_schema.role_table_grants "
                                "WHERE grantee = %s", (target,)).fetchone()
        assert (res.exit_code == 0 and granted is not None and granted[0] > 0) or (
            res.exit_code != 0 and "granted" not in res.stdout)
    finally:
        with psycopg.connect(db_url, autocommit=True) as c:
            for r in (app, target):
                c.execute(f'DROP OWNED BY "{r}"')
        with psycopg.connect(db_url, autocommit=True) as c:
            for r in (app, target):
                c.execute(f'DROP ROLE IF EXISTS "{r}"')


# ------------------------------------------------------------------- debug and env


def test_debug_shows_traceback_only_when_asked(tmp_path: Path) -> None:
    plain = invoke("status", *h(tmp_path / "none"))
    one_error_line(plain, 2)
    for res in (invoke("--debug", "status", *h(tmp_path / "none")),
                invoke("status", *h(tmp_path / "none"), env={"BFA_DEBUG": "1"})):
        assert res.exit_code == 2 and "Traceback" in res.stderr
        assert res.stderr.splitlines()[-1].startswith("bfa: error: ")


def test_bfa_home_and_database_url_env(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    env = {"BFA_HOME": str(home), "BFA_DATABASE_URL": db_url}
    ok("init", "--origin", ORIGIN, env=env)
    ok("checkpoint", env=env)
    assert json.loads(ok("status", "--json", env=env).stdout)["checkpoint_size"] == 0
    if _pg(db_url):   # without the URL the home's SQLite file is used: it holds no ledger
        assert "bfa init" in one_error_line(invoke("status", env={"BFA_HOME": str(home)}), 2)


# ---------------------------------------------------------------------------- demo


def _demo(tmp_path: Path, persons: str) -> Any:
    return invoke("demo", "--out", str(tmp_path / "d"), "--persons", persons)


def test_demo_small_run_and_refuses_a_real_home(tmp_path: Path, shared: dict[str, Any]) -> None:
    res = _demo(tmp_path, "50")
    assert res.exit_code == 0, res.output
    home = copy_home(shared, tmp_path / "real")
    res = invoke("demo", "--out", str(home), "--persons", "50")
    one_error_line(res, 2)
    assert entries_count(home) == SIZE
    assert invoke("demo", "--persons", "abc").exit_code == 2


@pytest.mark.parametrize("persons", ["10", "0", "-5"])
def test_demo_too_few_persons_is_a_usage_error(tmp_path: Path, persons: str) -> None:
    res = _demo(tmp_path, persons)
    assert res.exit_code == 2 and "amount" not in res.output
    assert "--persons" in res.output and not (tmp_path / "d").exists()


def test_demo_writes_only_inside_its_directory(tmp_path: Path) -> None:
    """A directory that is not empty and not a demo's is refused and left as it was."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "report.html").write_text("mine")
    one_error_line(_demo(tmp_path, "50"), 2)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["report.html"]
    assert (tmp_path / "d" / "report.html").read_text() == "mine"
    (tmp_path / "d" / "report.html").unlink()
    assert _demo(tmp_path, "50").exit_code == 0
    assert _demo(tmp_path, "50").exit_code == 0  # a previous demo's directory: starts over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert (tmp_path / "d" / ".bfa" / "config.json").is_file()


def test_demo_closing_hint_is_a_valid_command(tmp_path: Path) -> None:
    res = _demo(tmp_path, "50")
    hint = res.stdout.strip().splitlines()[-1].split("Try: bfa ", 1)[1]
    assert ok(*hint.split()).exit_code == 0


def test_breaks_list_before_any_reconciliation_says_so(tmp_path: Path) -> None:
    """An empty list before the first run is 'not looked yet', not 'no breaks'."""
    home = tmp_path / "home"
    init(home)
    res = ok("breaks", "list", *h(home))
    assert "no reconciliation has run yet" in res.stderr and res.stdout == ""
    assert jok("breaks", "list", *h(home)) == []
