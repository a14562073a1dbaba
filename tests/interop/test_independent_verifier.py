"""The ledger checks out with a verifier written from docs/FORMAT.md alone.

``independent_verifier.py`` (next to this file) imports nothing from the project. Here
real ledgers are built with the ``bfa`` command line on both backends (records with
personal data, vouchers, three checkpoints, reveals and a forget), then:

* the independent verifier accepts the ledger, the inclusion proofs ``bfa prove``
  prints (with the leaf bytes of ``bfa show --entry --raw``) and the consistency
  proofs between every pair of stored checkpoints, and refuses altered proofs;
* tampering done directly in the database (append-only triggers bypassed as FORMAT.md
  §8.2 says) is found with the problem code and seq of FORMAT.md §6, and ``bfa verify
  --json`` gives the same report (all but the free-text messages).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import cli
from tests._records import collection, payment_event, voucher, write_jsonl
from tests.interop import independent_verifier as iv

REVEAL = ("--reveal", "--purpose", "test")  # a reveal states its purpose

ORIGIN = "test.bfa.example/independent"
FORGOTTEN = "110101199003074477"  # the person `bfa forget` erases
OTHER = "110101199001011234"
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)
# Records in the two ingested files, b1.jsonl and b2.jsonl: one fewer each than the sizes
# below, which the tampering cases rely on: CP1 even (FORMAT §6.2 step 4 can fail alone
# only when resuming from an even size), CP3 = 95 (entry 95 completes the level-5 node of
# leaves 64-95) and an odd SIZE.
FIRST, SECOND = 59, 32
CP1 = FIRST + BATCH  # 60
CP2 = CP1 + SECOND + BATCH  # 93
CP3 = CP2 + 2  # 95: a reveal and a forget
CHECKPOINTS = (CP1, CP2, CP3)
SIZE = CP3 + 2  # 97: two reveals after the last checkpoint: an odd, unsigned tail
PROVE = ("BP-0", "BP-7", "COL-3", "BP-45", "BS-1", "BP-69")


@dataclass
class Built:
    """A ledger built through the CLI, with what an auditor would have kept."""

    home: str
    db: str
    work: Path
    vkey: str = ""
    notes: dict[int, Path] = field(default_factory=dict)  # checkpoint size -> note file

    def bfa(self, *args: str, db: str | None = None, code: int = 0) -> bytes:
        env = {"BFA_HOME": self.home, "BFA_DATABASE_URL": db or self.db, "BFA_USER": "auditor"}
        res = CliRunner().invoke(cli.bfa, list(args), env=env, catch_exceptions=False)
        assert res.exit_code == code, f"bfa {' '.join(args)} -> {res.exit_code}: {res.output}"
        return res.stdout_bytes

    def checkpoint(self) -> int:
        view = json.loads(self.bfa("checkpoint", "--json"))
        path = self.work / f"cp-{view['size']}.note"
        path.write_text(view["signed_note"], encoding="utf-8")
        self.notes[view["size"]] = path
        return int(view["size"])

    def note(self, size: int) -> str:
        return self.notes[size].read_text(encoding="utf-8")

    def keyfile(self) -> str:
        path = self.work / "ledger.vkey"
        path.write_text(self.vkey, encoding="utf-8")
        return str(path)


@pytest.fixture
def built(db_url: str, tmp_path: Path) -> Built:
    """Checkpoints at CP1 and CP2 (after each ingested file and its control.ingest) and CP3
    (after a reveal and a forget); personal data, vouchers, reveals; SIZE entries."""
    b = Built(home=str(tmp_path / "home"), db=db_url, work=tmp_path)
    b.bfa("init", "--origin", ORIGIN)
    b.vkey = b.bfa("key", "export").decode()
    first = [payment_event(i, person=FORGOTTEN if i % 4 == 0 else OTHER) for i in range(40)]
    first += [collection(i) for i in range(19)]
    b.bfa("ingest", str(write_jsonl(tmp_path / "b1.jsonl", first)))
    assert len(first) == FIRST
    assert b.checkpoint() == CP1
    second = [payment_event(i) for i in range(40, 70)]
    second += [voucher(tmp_path, i, [f"BP-{40 + i}"]) for i in range(2)]
    b.bfa("ingest", str(write_jsonl(tmp_path / "b2.jsonl", second)))
    assert len(second) == SECOND
    assert b.checkpoint() == CP2
    b.bfa("show", "BP-0", *REVEAL, "--json")  # control.reveal
    b.bfa("forget", FORGOTTEN, "--yes")  # control.forget; the vault rows go
    assert b.checkpoint() == CP3
    b.bfa("show", "BP-4", *REVEAL, "--json")  # after the forget: reveals nothing
    b.bfa("show", "BP-1", *REVEAL, "--json")
    assert json.loads(b.bfa("status", "--json"))["size"] == SIZE
    return b


def _same_verdict(
    b: Built, url: str, *, against: int | None = None, since_checkpoint: bool = False
) -> iv.Report:
    """Run the independent verifier and `bfa verify --json` on ``url``; the reports must agree.

    Everything of FORMAT.md §6.6's report is compared except the free-text messages.
    """
    report = iv.verify_ledger(
        url,
        b.vkey,
        since_checkpoint=since_checkpoint,
        against=None if against is None else b.note(against),
    )
    args = ["verify", "--json"]
    if against is not None:
        args += ["--against", str(b.notes[against])]
    if since_checkpoint:
        args.append("--since-checkpoint")
    theirs = json.loads(b.bfa(*args, db=url, code=0 if report.ok else 3))
    mine = report.to_json()
    for view in (mine, theirs):
        for p in view["problems"]:
            p.pop("message")
    assert mine == theirs
    return report


# -- the good ledger and its proofs -----------------------------------------------------------


def test_good_ledger_and_proofs(built: Built) -> None:
    report = _same_verdict(built, built.db)
    assert report.ok, report.problems
    assert report.tree_size == report.entries_checked == SIZE and report.derived_checked
    assert report.checkpoints_checked == len(CHECKPOINTS)
    assert iv.main(["--db", built.db, "--key", built.keyfile()]) == 0
    # FORMAT.md §6.2: resumed after the clean run above; §6.4: every auditor's checkpoint
    resumed = _same_verdict(built, built.db, since_checkpoint=True)
    assert resumed.ok and resumed.start == CHECKPOINTS[-1] and not resumed.derived_checked
    for size in CHECKPOINTS:
        assert _same_verdict(built, built.db, against=size).against == size

    # FORMAT.md §7.1: inclusion proofs against the latest checkpoint
    for record_id in PROVE:
        proof = built.bfa("prove", record_id).decode()
        leaf = built.bfa("show", record_id, "--entry", "--raw")
        res = iv.verify_tlog_proof(proof, leaf, built.vkey)
        assert res.tree_size == CHECKPOINTS[-1] and res.record["id"] == record_id
        with pytest.raises(iv.ProofError):  # another leaf
            iv.verify_tlog_proof(proof, leaf[:-3] + b"}}}", built.vkey)
        with pytest.raises(iv.ProofError):  # a changed audit path
            iv.verify_tlog_proof(_flip_line(proof, 3), leaf, built.vkey)
        with pytest.raises(iv.ProofError):  # another key of the same name
            iv.verify_tlog_proof(proof, leaf, _other_vkey())
    # FORMAT.md §7.2: consistency between every pair of stored checkpoints
    for old in CHECKPOINTS:
        for new in CHECKPOINTS:
            if old > new:
                continue
            text = built.bfa("prove", "--consistency", str(old), str(new)).decode()
            o, n = iv.verify_consistency_proof(text, built.note(old), built.vkey)
            assert (o.size, n.size) == (old, new)
            if old < new:
                with pytest.raises(iv.ProofError):
                    iv.verify_consistency_proof(_flip_line(text, 1), built.note(old), built.vkey)
                with pytest.raises(iv.ProofError):  # the old checkpoint must be the auditor's
                    iv.verify_consistency_proof(text, built.note(new), built.vkey)

    # the command line
    proof_file = built.work / "p.tlog-proof"
    proof_file.write_bytes(built.bfa("prove", "BP-7"))
    leaf_file = built.work / "leaf.bin"
    leaf_file.write_bytes(built.bfa("show", "BP-7", "--entry", "--raw"))
    args = ["--key", built.keyfile(), "--tlog-proof", str(proof_file), "--leaf", str(leaf_file)]
    assert iv.main(args) == 0
    leaf_file.write_bytes(built.bfa("show", "BP-8", "--entry", "--raw"))
    assert iv.main(args) == 3
    cons_file = built.work / "c.txt"
    cons_file.write_bytes(built.bfa("prove", "--consistency", str(CP1)))
    assert (
        iv.main(
            [
                "--key",
                built.keyfile(),
                "--consistency-proof",
                str(cons_file),
                "--old",
                str(built.notes[CP1]),
            ]
        )
        == 0
    )


def test_leaves_hold_what_format_md_says(built: Built) -> None:
    """FORMAT.md §2.4, §2.5, §4: pseudonyms and commitments, control records, after forget."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    with iv.Database(built.db) as db:
        for seq, leaf, _, domain, _, _ in db.entries(0):
            record, recorded_at = iv.decode_leaf(leaf)
            assert len(recorded_at) == 32 and recorded_at.endswith("+00:00"), recorded_at
            kinds.setdefault(record["type"], []).append(record)
            assert FORGOTTEN.encode() not in leaf and OTHER.encode() not in leaf
            if domain == "control":
                continue
            personal = {"person_id", "payer_id", "account"} & set(record)
            assert set(record.get("_commitments", {})) == personal, seq
            for f in personal:
                assert record[f].startswith("ps1:") and len(record[f]) == 36, (seq, f)
    assert [r["erased"] for r in kinds["control.forget"]] == [20]  # 10 records x 2 fields
    reveals = kinds["control.reveal"]
    assert [r["fields"] for r in reveals] == [
        ["account", "person_id"],
        [],
        ["account", "person_id"],
    ]
    assert all(set(r) == {"type", "id", "user", "record", "fields", "purpose", "at"}
               for r in reveals)
    ingests = kinds["control.ingest"]  # one closing each ingested file (§2.5)
    assert [(r["file"], r["first"], r["count"]) for r in ingests] == [
        (str(built.work / "b1.jsonl"), 0, FIRST),
        (str(built.work / "b2.jsonl"), CP1, SECOND),
    ]
    assert all(set(r) == {"type", "id", "user", "file", "first", "count", "at"}
               and r["id"].startswith("ingest-") for r in ingests)

    # the vault opens the commitments, and holds nothing of the forgotten person (§4.6);
    # its values are sealed under data keys the home's vault key wraps (§4.4)
    vault_key_file = str(Path(built.home) / "keys" / "vault.key")
    vault_key = iv.read_vault_key(vault_key_file)
    with iv.Database(built.db) as db:
        assert db.meta("vault_check") == iv.vault_check(vault_key)
    assert iv.verify_vault(built.db, vault_key) == []
    assert iv.verify_vault(built.db) == []  # without the key: sealed values not opened
    pseudonym = kinds["business.benefit_payment"][0]["person_id"]  # BP-0, forgotten
    employer = kinds["finance.collection"][0]["payer_id"]  # holder of COL-0 … COL-18
    forget_seq = CP3 - 1
    assert kinds["control.forget"][0]["subject"] == pseudonym
    t = Tamper(built.db)  # the vault is a working table: no trigger to pass
    assert t.q("SELECT COUNT(*) FROM vault WHERE clear_value IS NOT NULL") == [(0,)]
    assert t.q("SELECT COUNT(*) FROM vault_keys WHERE holder = ?", pseudonym) == [(0,)]
    # (a) two sealed values trade places (same holder, other record): neither opens
    [(s1,)] = t.q("SELECT sealed FROM vault WHERE record_id = 'BP-1' AND field = 'account'")
    [(s2,)] = t.q("SELECT sealed FROM vault WHERE record_id = 'BP-2' AND field = 'account'")
    t.q("UPDATE vault SET sealed = ? WHERE record_id = 'BP-1' AND field = 'account'", bytes(s2))
    t.q("UPDATE vault SET sealed = ? WHERE record_id = 'BP-2' AND field = 'account'", bytes(s1))
    # (b) the forgotten person back in the vault: a row sealed as §4.4 says under a new
    # data key of its holder, and a legacy row (clear_value, revision < 0013)
    data_key = bytes(range(32))
    nonce = bytes(12)
    wrapped = nonce + AESGCM(vault_key).encrypt(
        nonce, data_key, b"bfa-vault-key/v1\x00" + pseudonym.encode()
    )
    sealed = nonce + AESGCM(data_key).encrypt(
        nonce, FORGOTTEN.encode(), b"bfa-vault-value/v1\x00business\x00BP-0\x00person_id"
    )
    opened = iv.unwrap_data_key(vault_key, pseudonym, wrapped)
    assert iv.open_sealed(opened, "business", "BP-0", "person_id", sealed) == FORGOTTEN
    t.q("INSERT INTO vault_keys (holder, wrapped) VALUES (?, ?)", pseudonym, wrapped)
    t.q(
        "INSERT INTO vault (domain, record_id, field, subject, salt, sealed) "
        "VALUES ('business', 'BP-0', 'person_id', ?, ?, ?)",
        pseudonym,
        bytes(16),
        sealed,
    )
    t.q(
        "INSERT INTO vault (domain, record_id, field, subject, salt, clear_value) "
        "VALUES ('business', 'BP-4', 'account', ?, ?, ?)",
        pseudonym,
        bytes(16),
        "6222020200112233445",
    )
    # (c) a holder's data key gone: its sealed rows cannot be opened
    t.q("DELETE FROM vault_keys WHERE holder = ?", employer)
    # (d) a sealed row that also holds a clear value
    t.q("UPDATE vault SET clear_value = 'x' WHERE record_id = 'BP-3' AND field = 'account'")
    t.commit()
    no_key = [("vault-no-data-key", seq) for seq in range(40, 59)]  # COL-0 … COL-18
    always = [
        ("vault-not-forgotten", 0),
        ("vault-layout", 3),
        ("vault-commitment", 4),  # the legacy row's commitment is checked without the key
        ("vault-not-forgotten", 4),
        *no_key,
        ("vault-key-not-forgotten", forget_seq),
    ]
    found = sorted((p.code, p.seq) for p in iv.verify_vault(built.db, vault_key))
    assert found == sorted(
        [*always, ("vault-commitment", 0), ("vault-sealed", 1), ("vault-sealed", 2)]
    )
    assert sorted((p.code, p.seq) for p in iv.verify_vault(built.db)) == sorted(always)
    assert iv.main(["--db", built.db, "--key", built.keyfile()]) == 0  # §6 ignores the vault
    vault_args = ["--db", built.db, "--key", built.keyfile(), "--vault"]
    assert iv.main([*vault_args, "--vault-key", vault_key_file]) == 3
    assert iv.main(vault_args) == 3
    other_key = built.work / "other-vault.key"
    other_key.write_text("ab" * 32 + "\n", encoding="utf-8")
    assert iv.main([*vault_args, "--vault-key", str(other_key)]) == 2  # not vault_check's key


def _flip_line(text: str, lineno: int) -> str:
    """Flip one bit of the base64 hash on line ``lineno`` (0-based) of a proof."""
    lines = text.split("\n")
    raw = bytearray(base64.b64decode(lines[lineno]))
    raw[0] ^= 1
    lines[lineno] = base64.b64encode(bytes(raw)).decode()
    return "\n".join(lines)


def _other_vkey() -> str:
    pub = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key().public_bytes_raw()
    b64 = base64.b64encode(b"\x01" + pub).decode()
    return f"{ORIGIN}+{iv.key_id(ORIGIN, pub).hex()}+{b64}"


# -- tampering, directly in the database (FORMAT.md §8.2) ----------------------------------------


TABLES = {  # the ledger tables of FORMAT.md §8.1 and meta (verified_size)
    "entries": "seq, domain, kind, record_id, leaf, entry_hash, content_digest",
    "tree_nodes": "level, idx, hash",
    "checkpoints": "tree_size, root_hash, note, created_at",
    "meta": '"key", value',
}


@contextmanager
def _tampered(b: Built, edit: Callable[[Tamper, Built], None]) -> Iterator[str]:
    """The built database with ``edit`` committed; put back as it was afterwards.

    (Faster than a copy per case, which on PostgreSQL costs a CREATE DATABASE each.)
    """
    t = Tamper(b.db)
    saved = {table: t.q(f"SELECT {cols} FROM {table}") for table, cols in TABLES.items()}
    edit(t, b)
    t.commit()
    try:
        yield b.db
    finally:
        t = Tamper(b.db)
        for table, cols in TABLES.items():
            t.q(f"DELETE FROM {table}")
            marks = ", ".join("?" * len(cols.split(",")))
            for row in saved[table]:
                t.q(f"INSERT INTO {table} ({cols}) VALUES ({marks})", *row)
        t.commit()


class Tamper:
    """One superuser transaction: triggers dropped (SQLite) or not firing (PostgreSQL replica)."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql")
        if self.pg:
            self.conn: Any = psycopg.connect(url)
            self.conn.execute("SET session_replication_role = replica")
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
            for table in ("entries", "tree_nodes", "checkpoints"):
                for op in ("update", "delete"):
                    self.conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")

    def q(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders on both backends); return its rows."""
        cur = self.conn.execute(sql.replace("?", "%s") if self.pg else sql, params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def commit(self) -> None:
        if self.pg:
            self.conn.commit()
        else:
            self.conn.execute("COMMIT")
        self.conn.close()

    def leaf(self, seq: int) -> bytes:
        return bytes(self.q("SELECT leaf FROM entries WHERE seq = ?", seq)[0][0])

    def set_leaf(self, seq: int, leaf: bytes, *, rehash: bool = False) -> None:
        self.q("UPDATE entries SET leaf = ? WHERE seq = ?", leaf, seq)
        if rehash:
            self.q("UPDATE entries SET entry_hash = ? WHERE seq = ?", iv.entry_hash(leaf), seq)

    def swap(self, a: int, b: int) -> None:
        """Entries ``a`` and ``b`` trade places (every column but ``seq``)."""
        cols = "domain, kind, record_id, leaf, entry_hash, content_digest"
        ra = self.q(f"SELECT {cols} FROM entries WHERE seq = ?", a)[0]
        rb = self.q(f"SELECT {cols} FROM entries WHERE seq = ?", b)[0]
        self.q("DELETE FROM entries WHERE seq IN (?, ?)", a, b)
        for seq, row in ((a, rb), (b, ra)):
            self.q(f"INSERT INTO entries (seq, {cols}) VALUES (?, ?, ?, ?, ?, ?, ?)", seq, *row)

    def set_note(self, size: int, note: str, root: bytes | None = None) -> None:
        self.q("UPDATE checkpoints SET note = ? WHERE tree_size = ?", note, size)
        if root is not None:
            self.q("UPDATE checkpoints SET root_hash = ? WHERE tree_size = ?", root, size)


def _sign_note(text: str, seed: bytes, name: str = ORIGIN) -> str:
    """FORMAT.md §5.2: ``text`` signed as a note by the Ed25519 key ``seed`` named ``name``."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = key.public_key().public_bytes_raw()
    sig = base64.b64encode(iv.key_id(name, pub) + key.sign(text.encode("utf-8"))).decode()
    return f"{text}\n— {name} {sig}\n"


def _checkpoint_text(size: int, root: bytes) -> str:
    """FORMAT.md §5.1."""
    return f"{ORIGIN}\n{size}\n{base64.b64encode(root).decode()}\n"


def _ledger_seed(b: Built) -> bytes:
    """The Ed25519 seed in the home's signer key text (FORMAT.md §5.4), for forged notes."""
    text = (Path(b.home) / "keys" / "signing.key").read_text(encoding="utf-8").strip()
    private, key, name, _kid, b64 = text.split("+", 4)  # the base64 may hold '+' too
    assert (private, key, name) == ("PRIVATE", "KEY", ORIGIN)
    raw = base64.b64decode(b64, validate=True)
    assert raw[0] == 1 and len(raw) == 33
    return raw[1:]


def _flip_body_byte(t: Tamper, b: Built) -> None:
    leaf = bytearray(t.leaf(10))
    leaf[60] ^= 0x20
    t.set_leaf(10, bytes(leaf))


def _rewrite_with_hash(t: Tamper, b: Built) -> None:
    t.set_leaf(10, t.leaf(10).replace(b'"amount":"3456.78"', b'"amount":"3456.79"'), rehash=True)


def _resign_other_key(t: Tamper, b: Built) -> None:
    (root,) = t.q("SELECT root_hash FROM checkpoints WHERE tree_size = ?", CP1)[0]
    t.set_note(CP1, _sign_note(_checkpoint_text(CP1, bytes(root)), bytes(32)))


def _resign_ledger_key_other_root(t: Tamper, b: Built) -> None:
    bogus = hashlib.sha256(b"not the root").digest()
    t.set_note(CP1, _sign_note(_checkpoint_text(CP1, bogus), _ledger_seed(b)), bogus)


def _noncanonical_last_leaf(t: Tamper, b: Built) -> None:
    leaf = t.leaf(SIZE - 1).replace(b'{"record":', b'{ "record":', 1)
    t.set_leaf(SIZE - 1, leaf, rehash=True)


def _truncate_with_checkpoints(t: Tamper, b: Built) -> None:
    t.q("DELETE FROM entries WHERE seq >= 80")
    t.q("DELETE FROM checkpoints WHERE tree_size > 80")


def _last_leaf_body(change: Callable[[dict[str, Any]], None]) -> Callable[[Tamper, Built], None]:
    """The last (unsigned) entry's body changed by ``change``, re-encoded in JCS and re-hashed:
    the chain still holds, so only the derived pass (FORMAT.md §6.5 step 1) can object."""

    def edit(t: Tamper, b: Built) -> None:
        leaf = t.leaf(SIZE - 1)
        body = json.loads(leaf[iv.HEADER_SIZE :])
        change(body)
        t.set_leaf(SIZE - 1, leaf[: iv.HEADER_SIZE] + iv.jcs(body), rehash=True)

    return edit


def _resume_from_cp1_with_changed_hash(t: Tamper, b: Built) -> None:
    t.q("UPDATE meta SET value = ? WHERE \"key\" = 'verified_size'", str(CP1))
    t.q("UPDATE entries SET entry_hash = ? WHERE seq = ?", bytes(32), CP1 - 1)


def _node(level: int, idx: int) -> Callable[[Tamper, Built], None]:
    def edit(t: Tamper, b: Built) -> None:
        t.q("UPDATE tree_nodes SET hash = ? WHERE level = ? AND idx = ?", bytes(32), level, idx)

    return edit


@dataclass(frozen=True)
class Case:
    name: str
    edit: Callable[[Tamper, Built], None]
    code: str
    seq: int | None
    against: int | None = None
    since_checkpoint: bool = False


CASES = [
    Case("changed leaf byte", _flip_body_byte, "payload-changed", 10),
    Case("leaf rewritten with its hash", _rewrite_with_hash, "chain-broken", 11),
    Case(
        "deleted entry", lambda t, b: t.q("DELETE FROM entries WHERE seq = 30"), "entry-missing", 30
    ),
    Case("swapped entries", lambda t, b: t.swap(40, 41), "reordered", 40),
    Case("checkpoint re-signed with another key", _resign_other_key, "checkpoint-signature", CP1),
    Case(
        "checkpoint row's root changed",
        lambda t, b: t.q("UPDATE checkpoints SET root_hash = ? WHERE tree_size = ?", bytes(32),
                         CP2),
        "checkpoint-row",
        CP2,
    ),
    Case(
        "checkpoint re-signed with the ledger key over another root",
        _resign_ledger_key_other_root,
        "root-mismatch",
        CP1 - 1,
    ),
    Case(
        "truncated tail behind a checkpoint",
        lambda t, b: t.q("DELETE FROM entries WHERE seq >= 80"),
        "truncated",
        80,
    ),
    Case(
        "truncated tail behind an auditor's checkpoint",
        _truncate_with_checkpoints,
        "truncated",
        80,
        against=CP2,
    ),
    Case("non-canonical last leaf", _noncanonical_last_leaf, "leaf-format", SIZE - 1),
    Case(
        "last leaf without record.id",
        _last_leaf_body(lambda body: body["record"].pop("id")),
        "leaf-format",
        SIZE - 1,
    ),
    Case(
        "last leaf with a floating-point number",
        _last_leaf_body(lambda body: body["record"].update(extra=1.5)),
        "leaf-format",
        SIZE - 1,
    ),
    Case(
        "last leaf whose recorded_at is not a timestamp",
        _last_leaf_body(lambda body: body.update(recorded_at="yesterday")),
        "leaf-format",
        SIZE - 1,
    ),
    Case(
        "last leaf whose type has no kind",
        _last_leaf_body(lambda body: body["record"].update(type="control.")),
        "leaf-format",
        SIZE - 1,
    ),
    Case("stored tree node", _node(2, 3), "derived-mismatch", 12),
    # FORMAT §6.3 steps 6 and 8: a resumed run (from CP3 = 95) compares the nodes entry 95
    # completes, and finds a row beyond the tree
    Case("node a resumed run completes", _node(5, 2), "derived-mismatch", 64,
         since_checkpoint=True),
    Case("node beyond the tree", lambda t, b: t.q(
        "INSERT INTO tree_nodes (level, idx, hash) VALUES (1, 500, ?)", bytes(32)),
        "derived-mismatch", None, since_checkpoint=True),
    Case(
        "index column",
        lambda t, b: t.q("UPDATE entries SET kind = 'payment' WHERE seq = 12"),
        "derived-mismatch",
        12,
    ),
    Case(
        "tree node an auditor's consistency proof needs", _node(5, 0), "consistency", CP1,
        against=CP1,
    ),
    Case(
        "resume: stored frontier node",
        _node(*iv.frontier(CP3)[0]),
        "root-mismatch",
        CP3 - 1,
        since_checkpoint=True,
    ),
    Case(
        "resume: last checkpointed entry hash",
        _resume_from_cp1_with_changed_hash,
        "chain-broken",
        CP1 - 1,
        since_checkpoint=True,
    ),
]


def test_tampering_is_detected(built: Built) -> None:
    built.bfa("verify")  # meta.verified_size = CP3, the resume point of --since-checkpoint
    wrong = []
    for case in CASES:
        with _tampered(built, case.edit) as url:
            report = _same_verdict(
                built, url, against=case.against, since_checkpoint=case.since_checkpoint
            )
            got = (report.first.code, report.first.seq) if report.first else None
            if got != (case.code, case.seq):
                wrong.append(f"{case.name}: expected {(case.code, case.seq)}, got {got}")
            if case.against is None and not case.since_checkpoint:
                assert iv.main(["--db", url, "--key", built.keyfile()]) == 3
    assert not wrong, "\n".join(wrong)
    assert _same_verdict(built, built.db).ok  # put back as it was


def test_forged_auditor_checkpoint_is_a_fork(built: Built) -> None:
    """An auditor's note signed with the ledger key over another history: FORMAT.md §6.4."""
    bogus = hashlib.sha256(b"another history").digest()
    path = built.work / "forged.note"
    path.write_text(_sign_note(_checkpoint_text(CP1, bogus), _ledger_seed(built)),
                    encoding="utf-8")
    built.notes[-1] = path
    first = _same_verdict(built, built.db, against=-1).first
    assert first is not None and (first.code, first.seq) == ("fork", CP1 - 1)
    path.write_text(_sign_note(_checkpoint_text(CP1, bogus), bytes(32)), encoding="utf-8")
    first = _same_verdict(built, built.db, against=-1).first
    assert first is not None and first.code == "against-signature"


def test_size_zero_checkpoint_must_sign_the_empty_root(built: Built) -> None:
    """FORMAT.md §5.1, §6.1 step 3: a size-0 checkpoint's root is SHA-256("")."""
    empty = hashlib.sha256(b"").digest()
    for root, ok in ((empty, True), (bytes(32), False)):
        note = _sign_note(_checkpoint_text(0, root), _ledger_seed(built))

        def edit(t: Tamper, b: Built, root: bytes = root, note: str = note) -> None:
            t.q(
                "INSERT INTO checkpoints (tree_size, root_hash, note, created_at) "
                "VALUES (0, ?, ?, '2026-12-04T00:00:00.000000+00:00')",
                root,
                note,
            )

        with _tampered(built, edit) as url:
            report = _same_verdict(built, url)
            assert report.ok is ok, report.problems
            assert report.checkpoints_checked == len(CHECKPOINTS) + 1


# -- the worked examples of FORMAT.md, recomputed ------------------------------------------------

EXAMPLE_VKEY = "agency.example/440100+8d9578f5+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
EXAMPLE_NOTE = (
    "agency.example/440100\n3\nPKbr2F467AirfRc/3YLZw5tdkpfqO88zRt6ltool9WA=\n\n"
    "— agency.example/440100 jZV49YdLsZmrTdaxe+FCR0iKewCq8Jp1Ih65NaPMJSDgH2mvb8em8JwDHg3BHmCA4cEO"
    "UyBg5y0QbMXbghEe7y1AwwQ=\n"
)
EXAMPLE_PAYMENTS = [  # FORMAT.md §2.7: amount, bank_ref, id, occurred_at, value_date
    ("3456.78", "BR20261120001", "PAY-2026-11-0001", "2026-11-20T10:00:00+08:00", "2026-11-20"),
    ("120.00", "BR20261120002", "PAY-2026-11-0002", "2026-11-20T10:00:00+08:00", "2026-11-20"),
    ("88.50", "BR20261121001", "PAY-2026-11-0003", "2026-11-21T09:15:00+08:00", "2026-11-21"),
]
EXAMPLE_HASHES = [
    "bb22e935e18591676fefaa508ab4e7e1da2a21cfb74bdb509b7ec5ba14b71362",
    "ce81d6f8191ee12fdb708e878709495e98d29e661b2a4c10d858caaae53fdac9",
    "5bee37a5e91653a4ecb6efd268dce9f52317f7939a701943b3fb881ee005af54",
]


def test_format_md_worked_examples() -> None:
    """§2.7 leaves and hashes, §3.1 roots, §5.3 key and note, §7.1 and §7.2 proofs."""
    prev, leaves, hashes = bytes(32), [], []
    for seq, (amount, ref, rid, at, vd) in enumerate(EXAMPLE_PAYMENTS):
        record = {"type": "finance.payment", "id": rid, "region": "440100"}
        record.update(occurred_at=at, amount=amount, value_date=vd, bank_ref=ref)
        body = iv.jcs({"record": record, "recorded_at": "2026-11-23T08:00:00.000000+00:00"})
        leaf = b"\x01" + seq.to_bytes(8, "big") + prev + body
        prev = iv.entry_hash(leaf)
        assert prev.hex() == EXAMPLE_HASHES[seq]
        assert iv.decode_leaf(leaf)[0] == record
        leaves.append(leaf)
        hashes.append(prev)
    assert [len(x) for x in leaves] == [283, 282, 281]
    assert iv.mth(hashes[:1]) == hashes[0]
    assert (
        base64.b64encode(iv.mth(hashes[:2])).decode()
        == "z+h4F4G6U1RNXGJTwrLg1PLM4sgw51bZqFafHP8R4x8="
    )
    cp = iv.open_checkpoint(EXAMPLE_NOTE, iv.parse_verifier_key(EXAMPLE_VKEY))
    assert (cp.origin, cp.size, cp.root) == ("agency.example/440100", 3, iv.mth(hashes))
    # §5.3: the example seed 00 01 … 1f gives this key and, Ed25519 being deterministic, this note
    seed = bytes(range(32))
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    assert iv.parse_verifier_key(EXAMPLE_VKEY).public_key == pub
    text = EXAMPLE_NOTE.split("\n\n")[0] + "\n"
    assert _sign_note(text, seed, cp.origin) == EXAMPLE_NOTE
    # §7.1
    extra = base64.b64encode(leaves[0]).decode()
    proof = (
        f"c2sp.org/tlog-proof@v1\nextra {extra}\nindex 0\n"
        "zoHW+Bke4S/bcI6HhwlJXpjSnmYbKkwQ2FjKquU/2sk=\n"
        "W+43pekWU6Tstu/SaNzp9SMX95OacBlDs/uIHuAFr1Q=\n\n" + EXAMPLE_NOTE
    )
    assert iv.verify_tlog_proof(proof, leaves[0], EXAMPLE_VKEY).index == 0
    node = lambda level, idx: iv.mth(hashes[idx << level : (idx + 1) << level])  # noqa: E731
    assert iv.inclusion_path(2, 3, node) == [iv.mth(hashes[:2])]
    # §7.2: from size 2 to 3
    old_text = f"agency.example/440100\n2\n{base64.b64encode(iv.mth(hashes[:2])).decode()}\n"
    old_note = _sign_note(old_text, seed, cp.origin)
    body = "old 2\nW+43pekWU6Tstu/SaNzp9SMX95OacBlDs/uIHuAFr1Q=\n\n" + EXAMPLE_NOTE
    old, new = iv.verify_consistency_proof(body, old_note, EXAMPLE_VKEY)
    assert (old.size, new.size) == (2, 3)
    assert iv.consistency_path(2, 3, node) == [hashes[2]]


@pytest.mark.parametrize("value", ["", "sixty", "６０", "-60", "9" * 20])
def test_verified_size_that_is_not_digits_means_start_from_zero(built: Built, value: str) -> None:
    """FORMAT.md §6.2 step 1: the application role may write meta; junk is "nothing verified"."""

    def edit(t: Tamper, b: Built) -> None:
        t.q("UPDATE meta SET value = ? WHERE \"key\" = 'verified_size'", value)

    built.bfa("verify")  # meta.verified_size = CP3
    with _tampered(built, edit) as url:
        status = json.loads(built.bfa("status", "--json", db=url))
        assert status["verified_size"] is None
        report = _same_verdict(built, url, since_checkpoint=True)
        assert report.ok and report.start == 0 and report.entries_checked == SIZE


def test_a_record_outside_any_batch_is_reported_by_both(built: Built) -> None:
    """FORMAT §6.5 (last step): a well-chained record with its tree nodes, appended by plain
    INSERTs after batches were recorded, is in no control.ingest range."""
    from sqlalchemy import create_engine

    from tests._insider import append_raw

    engine = create_engine(built.db.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            append_raw(conn, [collection(99)])
    finally:
        engine.dispose()
    report = _same_verdict(built, built.db)
    assert [(p.code, p.seq) for p in report.problems] == [("ingest-unrecorded", SIZE)]
