"""The ledger checks out with a verifier written from docs/FORMAT.md alone.

``independent_verifier.py`` (next to this file) imports nothing from the project. Here
real ledgers are built with the ``bfa`` command line on both backends (records with
personal data, vouchers, three checkpoints, reveals and a forget), then:

* the independent verifier accepts the ledger, the inclusion proofs ``bfa prove``
  prints (with the leaf bytes of ``bfa show --entry --raw``) and the consistency
  proofs between every pair of stored checkpoints, and refuses altered proofs;
* tampering done directly in the database (append-only triggers bypassed as FORMAT.md
  §8.2 says) is found with the problem code and seq of FORMAT.md §6, and ``bfa verify
  --json`` gives the same report (all but the free-text messages);
* a ledger whose signing key was rotated twice (FORMAT.md §5.7) verifies with the oldest,
  the middle and the current verifier key alike, and forged or broken rotations get the
  same report from both verifiers.
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

    def bfa(
        self, *args: str, db: str | None = None, code: int = 0, vkey: str | None = None
    ) -> bytes:
        """Run ``bfa``; ``vkey``: an auditor's copy of a verifier key (``BFA_VERIFIER_KEY``
        in another directory than the home's keys, FORMAT.md §5.4) instead of the home's."""
        env = {"BFA_HOME": self.home, "BFA_DATABASE_URL": db or self.db, "BFA_USER": "auditor"}
        if vkey is not None:
            env["BFA_VERIFIER_KEY"] = self.auditor_keyfile(vkey)
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

    def auditor_keyfile(self, vkey: str) -> str:
        """``vkey`` in a file of the auditor's own (mode 0600, FORMAT.md §5.4)."""
        folder = self.work / "auditor"
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"{hashlib.sha256(vkey.encode()).hexdigest()[:16]}.vkey"
        path.write_text(vkey.strip() + "\n", encoding="utf-8")
        path.chmod(0o600)
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
    b: Built,
    url: str,
    *,
    against: int | None = None,
    since_checkpoint: bool = False,
    vkey: str | None = None,
) -> iv.Report:
    """Run the independent verifier and `bfa verify --json` on ``url``; the reports must agree.

    Everything of FORMAT.md §6.6's report is compared except the free-text messages.
    ``vkey``: verify with this verifier key (an auditor's copy) instead of the home's.
    """
    report = iv.verify_ledger(
        url,
        b.vkey if vkey is None else vkey,
        since_checkpoint=since_checkpoint,
        against=None if against is None else b.note(against),
    )
    args = ["verify", "--json"]
    if against is not None:
        args += ["--against", str(b.notes[against])]
    if since_checkpoint:
        args.append("--since-checkpoint")
    theirs = json.loads(b.bfa(*args, db=url, code=0 if report.ok else 3, vkey=vkey))
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
    # a batch with vouchers also carries their 四性 check (§2.5, §11.2)
    assert all(set(r) - {"voucher_check"} == {"type", "id", "user", "file", "first", "count",
                                               "at"}
               and r["id"].startswith("ingest-") for r in ingests)
    assert all(set(r["voucher_check"]) == {"checker", "checked", "records", "failed", "cleared"}
               for r in ingests if "voucher_check" in r)

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


# -- FORMAT.md §5.7: signing-key rotation --------------------------------------------------------

# The rotated ledger: four ingested files of collections (each closed by its control.ingest
# entry, §2.5); after the first and the second a checkpoint, then `bfa key rotate --signing`
# (one control.key entry and the checkpoint over it, signed by both keys, §5.7); a checkpoint
# after the third file; the fourth is an unsigned tail.
R_FILES = (5, 4, 3, 2)
R1 = R_FILES[0] + BATCH  # 6: seq of the first rotation entry, checkpoint 6 just before it
R2 = R1 + 1 + R_FILES[1] + BATCH  # 12: seq of the second one
R_LAST = R2 + 1 + R_FILES[2] + BATCH  # 17
R_CHECKPOINTS = (R1, R1 + 1, R2, R2 + 1, R_LAST)  # R1 + 1 and R2 + 1 are co-signed
R_SIZE = R_LAST + R_FILES[3] + BATCH  # 20
R_AT = "2026-12-07T00:00:00.000000+00:00"
ATTACKER = bytes(32)  # the seed of _other_vkey(): a key of the ledger's name it never had


@dataclass
class Rotated(Built):
    """A ledger whose signing key was rotated twice: ``keys`` are the verifier key texts k0,
    k1, k2 (`bfa key export` before and after each rotation), ``seeds`` their Ed25519 seeds
    (read from the home before each rotation deletes them, for forged notes)."""

    keys: list[str] = field(default_factory=list)
    seeds: list[bytes] = field(default_factory=list)


@pytest.fixture
def rotated(db_url: str, tmp_path: Path) -> Rotated:
    b = Rotated(home=str(tmp_path / "home"), db=db_url, work=tmp_path)
    b.bfa("init", "--origin", ORIGIN)
    files = iter(R_FILES)
    ingested = 0

    def ingest() -> None:
        nonlocal ingested
        records = [collection(ingested + i) for i in range(next(files))]
        ingested += len(records)
        b.bfa("ingest", str(write_jsonl(tmp_path / f"r{ingested}.jsonl", records)))

    def remember_key() -> None:
        b.keys.append(b.bfa("key", "export").decode().strip())
        b.seeds.append(_ledger_seed(b))

    remember_key()
    ingest()
    assert b.checkpoint() == R1
    b.bfa("key", "rotate", "--signing")
    remember_key()
    assert b.checkpoint() == R1 + 1  # the rotation's own checkpoint, returned ("new": false)
    ingest()
    assert b.checkpoint() == R2
    b.bfa("key", "rotate", "--signing")
    remember_key()
    assert b.checkpoint() == R2 + 1
    ingest()
    assert b.checkpoint() == R_LAST
    ingest()
    assert json.loads(b.bfa("status", "--json"))["size"] == R_SIZE
    b.vkey = b.keys[-1]  # the home's verifier key is the current one
    return b


def _kid(vkey: str) -> bytes:
    return iv.parse_verifier_key(vkey).key_id


def test_rotated_ledger_verifies_with_every_key_of_the_chain(rotated: Rotated) -> None:
    """FORMAT.md §5.7, §6.1: the oldest, the middle and the current verifier key all verify
    the whole ledger, with the same report as `bfa verify --json` given that key."""
    b = rotated
    k0, k1, k2 = b.keys
    assert len({_kid(k) for k in b.keys}) == 3
    assert {iv.parse_verifier_key(k).name for k in b.keys} == {ORIGIN}

    # §2.5: the control.key entries, decoded from their leaves; §5.7: their chain
    with iv.Database(b.db) as db:
        found = [
            iv.decode_leaf(leaf)[0]
            for _, leaf, _, domain, kind, _ in db.entries(0)
            if (domain, kind) == ("control", "key")
        ]
        rotations = iv.read_rotations(db, ORIGIN)
    assert [(r["old_key"], r["new_key"]) for r in found] == [(k0, k1), (k1, k2)]
    for r in found:
        assert set(r) - {"label"} == {"type", "id", "user", "action", "old_key", "new_key", "at"}
        assert r["type"] == "control.key" and r["action"] == "rotate-signing"
        assert r["id"].startswith("key-")
    assert [r.seq for r in rotations] == [R1, R2]
    for trusted in b.keys:
        chain = iv.signing_keys(rotations, iv.parse_verifier_key(trusted))
        assert chain.keys == tuple(iv.parse_verifier_key(k) for k in b.keys)
        assert [chain.in_force(n) for n in (R1, R1 + 1, R2, R2 + 1, R_SIZE)] == [
            chain.keys[i] for i in (0, 1, 1, 2, 2)
        ]
    # §5.2, §5.7: the checkpoint over a rotation carries two signature lines, the retired
    # key's first; every other checkpoint one, by the key in force
    for size, signers in zip(R_CHECKPOINTS, ([k0], [k0, k1], [k1], [k1, k2], [k2]), strict=True):
        lines = b.note(size).split("\n\n")[-1].splitlines()
        assert [base64.b64decode(line.split(" ")[2])[:4] for line in lines] == [
            _kid(k) for k in signers
        ], size

    b.bfa("verify")  # meta.verified_size = R_LAST: the resume point of --since-checkpoint
    for vkey in b.keys:
        report = _same_verdict(b, b.db, vkey=vkey)
        assert report.ok, (vkey, report.problems)
        assert report.checkpoints_checked == len(R_CHECKPOINTS)
        assert report.entries_checked == report.tree_size == R_SIZE and report.derived_checked
        resumed = _same_verdict(b, b.db, vkey=vkey, since_checkpoint=True)
        assert resumed.ok and resumed.start == R_LAST
        for size in R_CHECKPOINTS:  # §6.1: an auditor's note opens with the key in force
            assert _same_verdict(b, b.db, vkey=vkey, against=size).against == size
        assert iv.main(["--db", b.db, "--key", b.auditor_keyfile(vkey)]) == 0

    # §5.7: new proofs are signed by the new key only (§7.1 opens them with one key) ...
    proof = b.bfa("prove", "COL-0").decode()
    leaf = b.bfa("show", "COL-0", "--entry", "--raw")
    assert iv.verify_tlog_proof(proof, leaf, k2).tree_size == R_LAST
    for retired in (k0, k1):
        with pytest.raises(iv.ProofError):
            iv.verify_tlog_proof(proof, leaf, retired)
    # ... and a co-signed checkpoint opens with either of its keys (§7.2)
    text = b.bfa("prove", "--consistency", str(R1), str(R1 + 1)).decode()
    assert iv.verify_consistency_proof(text, b.note(R1), k0)[1].size == R1 + 1
    text = b.bfa("prove", "--consistency", str(R2 + 1)).decode()
    assert iv.verify_consistency_proof(text, b.note(R2 + 1), k2)[1].size == R_LAST


def _cosigned(text: str, *seeds: bytes) -> str:
    """FORMAT.md §5.2: ``text`` with one signature line per seed, in this order."""
    return text + "\n" + "".join(_sign_note(text, seed)[len(text) + 1 :] for seed in seeds)


def _append(t: Tamper, record: dict[str, Any]) -> tuple[int, bytes]:
    """Append ``record`` as a well-chained entry with the tree nodes it completes, built from
    FORMAT.md §2.1-§2.3 and §3.2 alone; return its seq and the root of the tree it ends."""
    (top,) = t.q("SELECT MAX(seq) FROM entries")[0]
    seq = int(top) + 1
    prev = bytes(t.q("SELECT entry_hash FROM entries WHERE seq = ?", seq - 1)[0][0])
    hashes = []
    for level, idx in iv.frontier(seq):
        if level == 0:
            (h,) = t.q("SELECT entry_hash FROM entries WHERE seq = ?", idx)[0]
        else:
            (h,) = t.q("SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", level, idx)[0]
        hashes.append(bytes(h))
    tree = iv.CompactRange(seq, hashes)
    body = iv.jcs({"record": record, "recorded_at": R_AT})
    leaf = bytes([iv.LEAF_VERSION]) + seq.to_bytes(8, "big") + prev + body
    h = iv.entry_hash(leaf)
    domain, kind = record["type"].split(".", 1)
    t.q(
        "INSERT INTO entries (seq, domain, kind, record_id, leaf, entry_hash) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        seq, domain, kind, record["id"], leaf, h,
    )
    for level, idx, node in tree.append(h):
        t.q("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", level, idx, node)
    return seq, tree.root()


def _rotation(old_key: str, new_key: str) -> dict[str, Any]:
    """A control.key rotate-signing record (FORMAT.md §2.5)."""
    return {
        "type": "control.key", "id": "key-8c2d7b6e-0f4a-4b1e-9a57-3d2c1b0a9f8e",
        "user": "mallory", "action": "rotate-signing", "old_key": old_key, "new_key": new_key,
        "at": R_AT,
    }


def _forged_rotation(old: int, signers: tuple[int | None, ...] | None
                     ) -> Callable[[Tamper, Built], None]:
    """A rotation from key ``old`` of the chain to the attacker's key appended after the tail;
    with ``signers`` (chain indexes, None for the attacker's key) also its checkpoint."""

    def edit(t: Tamper, b: Built) -> None:
        assert isinstance(b, Rotated)
        seq, root = _append(t, _rotation(b.keys[old], _other_vkey()))
        if signers is not None:
            seeds = [ATTACKER if i is None else b.seeds[i] for i in signers]
            note = _cosigned(_checkpoint_text(seq + 1, root), *seeds)
            t.q(
                "INSERT INTO checkpoints (tree_size, root_hash, note, created_at) "
                "VALUES (?, ?, ?, ?)",
                seq + 1, root, note, R_AT,
            )

    return edit


def _resign(size: int, *signers: int) -> Callable[[Tamper, Built], None]:
    """Checkpoint ``size`` re-signed over its own root by these keys of the chain."""

    def edit(t: Tamper, b: Built) -> None:
        assert isinstance(b, Rotated)
        (root,) = t.q("SELECT root_hash FROM checkpoints WHERE tree_size = ?", size)[0]
        text = _checkpoint_text(size, bytes(root))
        t.set_note(size, _cosigned(text, *(b.seeds[i] for i in signers)))

    return edit


def _new_key_of_second_rotation_replaced(t: Tamper, b: Built) -> None:
    """The second rotation entry rewritten (with its hash) to bring in the attacker's key."""
    assert isinstance(b, Rotated)
    t.set_leaf(R2, t.leaf(R2).replace(b.keys[2].encode(), _other_vkey().encode()), rehash=True)


def _delete_rotation_checkpoint(t: Tamper, b: Built) -> None:
    t.q("DELETE FROM checkpoints WHERE tree_size = ?", R2 + 1)


def _undecodable_rotation_leaf(t: Tamper, b: Built) -> None:
    leaf = bytearray(t.leaf(R2))
    leaf[iv.HEADER_SIZE] ^= 0x01  # '{' becomes 'z': the body is no JSON
    t.set_leaf(R2, bytes(leaf))


@dataclass(frozen=True)
class RotationCase:
    name: str
    edit: Callable[[Tamper, Built], None]
    key: int | None  # the verifier's key: an index of the chain k0 … k2, None the attacker's
    first: tuple[str, int | None] | None  # (code, seq) of the first problem; None: clean
    checkpoints_checked: int


ROTATION_CASES = [
    RotationCase("forged rotation, no checkpoint", _forged_rotation(2, None), 0,
                 ("key-rotation", R_SIZE), len(R_CHECKPOINTS)),
    RotationCase("forged rotation, no checkpoint, the forger's key", _forged_rotation(2, None),
                 None, ("key-rotation", R_SIZE), len(R_CHECKPOINTS)),
    RotationCase("forged rotation signed by the new key alone", _forged_rotation(2, (None,)), 0,
                 ("checkpoint-signature", R_SIZE + 1), len(R_CHECKPOINTS)),
    RotationCase("rotation co-signed by the key in force", _forged_rotation(2, (2, None)), None,
                 None, len(R_CHECKPOINTS) + 1),
    RotationCase("rotation from a retired key, co-signed by it", _forged_rotation(1, (1, None)),
                 0, ("key-rotation", None), 0),
    RotationCase("rotation's checkpoint deleted", _delete_rotation_checkpoint, 0,
                 ("key-rotation", R2), len(R_CHECKPOINTS) - 1),
    RotationCase("rotation's checkpoint signed by the new key alone", _resign(R2 + 1, 2), 0,
                 ("checkpoint-signature", R2 + 1), len(R_CHECKPOINTS) - 1),
    RotationCase("rotation's checkpoint, signatures in the other order", _resign(R2 + 1, 2, 1),
                 0, None, len(R_CHECKPOINTS)),
    RotationCase("last checkpoint re-signed by a retired key", _resign(R_LAST, 1), 2,
                 ("checkpoint-signature", R_LAST), len(R_CHECKPOINTS) - 1),
    RotationCase("a checkpoint signed by the key in force and another of the chain",
                 _resign(R_LAST, 0, 2), 0, None, len(R_CHECKPOINTS)),
    RotationCase("rotation entry rewritten, the current key", _new_key_of_second_rotation_replaced,
                 2, ("key-rotation", None), 0),
    RotationCase("rotation entry rewritten, the oldest key", _new_key_of_second_rotation_replaced,
                 0, ("checkpoint-signature", R2 + 1), len(R_CHECKPOINTS) - 2),
    RotationCase("rotation entry that does not decode", _undecodable_rotation_leaf, 0,
                 ("key-rotation", None), 0),
    RotationCase("verifier key none of the chain", lambda t, b: None, None,
                 ("key-rotation", None), 0),
]


def test_rotation_tampering_is_detected(rotated: Rotated) -> None:
    """FORMAT.md §5.7, §6.1: forged rotations, missing or wrongly signed rotation
    checkpoints and a key outside the chain; both verifiers give the same report."""
    wrong = []
    for case in ROTATION_CASES:
        vkey = _other_vkey() if case.key is None else rotated.keys[case.key]
        with _tampered(rotated, case.edit) as url:
            report = _same_verdict(rotated, url, vkey=vkey)
            got = (report.first.code, report.first.seq) if report.first else None
            if (got, report.checkpoints_checked) != (case.first, case.checkpoints_checked):
                wrong.append(f"{case.name}: expected {case.first} after "
                             f"{case.checkpoints_checked} checkpoints, got {got} after "
                             f"{report.checkpoints_checked}")
    assert not wrong, "\n".join(wrong)
    assert _same_verdict(rotated, rotated.db, vkey=rotated.keys[0]).ok  # put back as it was
