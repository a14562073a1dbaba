"""Black-box review of signing-key rotation (FORMAT.md §5.7, §6.1) and of the findings digest
of ``control.reconcile`` (FORMAT.md §2.5, §6.7, §8.3), written from the documents alone.

Insider moves are made the way an insider would: on SQLite by writing the file (dropping the
append-only triggers where needed), on PostgreSQL as the tables' owner (a superuser here) or as
a login role holding a duty (``bfa db grant``). Tests that pass document behaviour the
documents promise; ``xfail(strict=True)`` tests assert the documented behaviour a bug breaks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests._cli import h, invoke, jok, ok
from tests._records import collection, payment_event, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
BFA = ROOT / ".venv" / "bin" / "bfa"
ORIGIN = "test.bfa.example/ledger"
AT = "2026-12-07T00:00:00.000000+00:00"


# ---------------------------------------------------------------------------------------------
# helpers: the database as an insider sees it


def _sqlite_path(db: str) -> str:
    return db.removeprefix("sqlite:///")


def _is_pg(db: str) -> bool:
    return db.startswith("postgresql")


def q(
    db: str, sql: str, params: tuple[Any, ...] = (), *, bypass: bool = False
) -> list[tuple[Any, ...]]:
    """Run one statement as the tables' owner / the file's writer; ``bypass`` drops the
    append-only triggers (SQLite) or disables them for the transaction (PostgreSQL)."""
    if _is_pg(db):
        with psycopg.connect(db) as conn:
            if bypass:
                conn.execute("SET LOCAL session_replication_role = replica")
            cur = conn.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            rows = cur.fetchall() if cur.description else []
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    conn = sqlite3.connect(_sqlite_path(db))
    try:
        if bypass:
            for t in ("entries", "tree_nodes", "checkpoints"):
                conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
                conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")
        cur = conn.execute(sql, params)
        rows = cur.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def jcs(o: Any) -> bytes:
    return json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def append_entry(db: str, record: dict[str, Any], recorded_at: str = AT) -> int:
    """Append one well-formed entry with its tree nodes (FORMAT §2.1, §3.2), outside bfa."""
    domain, kind = record["type"].split(".", 1)
    if _is_pg(db):
        conn: Any = psycopg.connect(db)
        p = "%s"
    else:
        conn = sqlite3.connect(_sqlite_path(db))
        p = "?"

    def one(sql: str, params: tuple[Any, ...]) -> Any:
        row = conn.execute(sql.replace("?", p), params).fetchone()
        return bytes(row[0]) if isinstance(row[0], memoryview) else row[0]

    try:
        n = int(one("SELECT count(*) FROM entries WHERE seq >= ?", (0,)))
        prev = one("SELECT entry_hash FROM entries WHERE seq = ?", (n - 1,)) if n else b"\0" * 32
        leaf = (
            b"\x01"
            + n.to_bytes(8, "big")
            + bytes(prev)
            + jcs({"record": record, "recorded_at": recorded_at})
        )
        eh = hashlib.sha256(b"\0" + leaf).digest()
        conn.execute(
            "INSERT INTO entries (seq, domain, kind, record_id, leaf, entry_hash, content_digest) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL)".replace("?", p),
            (n, domain, kind, record["id"], leaf, eh),
        )
        level, idx, node = 0, n, eh
        while idx % 2 == 1:
            if level == 0:
                left = one("SELECT entry_hash FROM entries WHERE seq = ?", (idx - 1,))
            else:
                left = one(
                    "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", (level, idx - 1)
                )
            node = hashlib.sha256(b"\x01" + bytes(left) + node).digest()
            level, idx = level + 1, idx // 2
            conn.execute(
                "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)".replace("?", p),
                (level, idx, node),
            )
        conn.commit()
        return n
    finally:
        conn.close()


def mth(hs: list[bytes]) -> bytes:
    if not hs:
        return hashlib.sha256(b"").digest()
    if len(hs) == 1:
        return hs[0]
    k = 1
    while k * 2 < len(hs):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(hs[:k]) + mth(hs[k:])).digest()


def root_at(db: str, size: int) -> bytes:
    return mth(
        [
            bytes(r[0])
            for r in q(db, "SELECT entry_hash FROM entries WHERE seq < ? ORDER BY seq", (size,))
        ]
    )


def new_signer(name: str = ORIGIN) -> tuple[str, str]:
    """A fresh (signer key text, verifier key text) pair (FORMAT §5.4)."""
    k = Ed25519PrivateKey.generate()
    seed = k.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4].hex()
    return (
        f"PRIVATE+KEY+{name}+{kid}+" + base64.b64encode(b"\x01" + seed).decode(),
        f"{name}+{kid}+" + base64.b64encode(b"\x01" + pub).decode(),
    )


def sig_line(text: str, signer: str) -> str:
    _, _, name, kid, b64 = signer.strip().split("+", 4)
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(b64)[1:])
    sig = bytes.fromhex(kid) + key.sign(text.encode())
    return f"\u2014 {name} {base64.b64encode(sig).decode()}\n"


def make_note(size: int, root: bytes, signers: list[str], origin: str = ORIGIN) -> str:
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return text + "\n" + "".join(sig_line(text, s) for s in signers)


def sig_key_ids(note: str) -> list[str]:
    """The key IDs (hex) of a signed note's signature lines, in order."""
    sigs = note.rsplit("\n\n", 1)[1]
    return [base64.b64decode(line.split(" ")[2])[:4].hex() for line in sigs.splitlines() if line]


def kid(key_text: str) -> str:
    return (
        key_text.strip().split("+")[-2].lower()
        if key_text.startswith("PRIVATE")
        else key_text.strip().split("+")[1].lower()
    )


def keyfile(tmp: Path, name: str, text: str) -> str:
    d = tmp / "aud"
    d.mkdir(mode=0o700, exist_ok=True)
    p = d / name
    p.write_text(text.strip() + "\n")
    p.chmod(0o600)
    return str(p)


def verify_json(
    home: str, db: str, *extra: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    res = ok("verify", *h(Path(home), db), *extra, "--json", code=(0, 3), env=env)
    out: dict[str, Any] = json.loads(res.stdout)
    assert out["ok"] == (res.exit_code == 0)
    return out


def codes(report: dict[str, Any]) -> list[str]:
    return [p["code"] for p in report["problems"]]


def ingest(tmp: Path, home: str, db: str, records: list[dict[str, Any]]) -> list[str]:
    f = write_jsonl(tmp / f"b-{uuid.uuid4().hex[:8]}.jsonl", records)
    ok("ingest", str(f), *h(Path(home), db))
    return [r["id"] for r in records]


def some(k: int) -> list[dict[str, Any]]:
    """``k`` collections with ids unique to this call."""
    base = 10_000 + uuid.uuid4().int % 10**9 * 100
    return [collection(base + i) for i in range(k)]


def keys(home: str) -> Path:
    return Path(home) / "keys"


def rotations(db: str) -> list[tuple[int, dict[str, Any]]]:
    rows = q(
        db, "SELECT seq, leaf FROM entries WHERE domain = 'control' AND kind = 'key' ORDER BY seq"
    )
    out = []
    for seq, leaf in rows:
        rec = json.loads(bytes(leaf)[41:])["record"]
        if rec.get("action") == "rotate-signing":
            out.append((seq, rec))
    return out


def checkpoint_note(db: str, size: int) -> str:
    return str(q(db, "SELECT note FROM checkpoints WHERE tree_size = ?", (size,))[0][0])


def rotate(home: str, db: str) -> tuple[str, str]:
    """Rotate; return (retired verifier key, new verifier key) as the home's files said."""
    old = (keys(home) / "verifier.key").read_text().strip()
    ok("key", "rotate", "--signing", *h(Path(home), db))
    new = (keys(home) / "verifier.key").read_text().strip()
    assert kid(old) != kid(new)
    return old, new


@pytest.fixture
def sqlite_home(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    ok("init", "--origin", ORIGIN, *h(home))
    return {"home": str(home), "db": f"sqlite:///{home / 'ledger.db'}"}


@pytest.fixture
def lh(ledger_home: dict[str, Any]) -> dict[str, str]:
    return {"home": str(ledger_home["home"]), "db": str(ledger_home["db"])}


# ---------------------------------------------------------------------------------------------
# rotation as a user: twice, every key of the chain, proofs, export, --against


def test_two_rotations_every_key_of_the_chain_verifies_a_stranger_does_not(
    lh: dict[str, str], tmp_path: Path
) -> None:
    home, db = lh["home"], lh["db"]
    first = ingest(tmp_path, home, db, some(3))[0]
    cp_a = tmp_path / "a.note"
    ok("checkpoint", *h(Path(home), db), "--out", str(cp_a))
    v0, v1 = rotate(home, db)
    ingest(tmp_path, home, db, some(3))
    cp_b = tmp_path / "b.note"
    ok("checkpoint", *h(Path(home), db), "--out", str(cp_b))
    proof_mid = jok("prove", first, *h(Path(home), db))
    _, v2 = rotate(home, db)
    ingest(tmp_path, home, db, some(2))
    ok("checkpoint", *h(Path(home), db))
    proof_new = jok("prove", first, *h(Path(home), db))

    # proofs are signed by the key in force only (§5.7 "new proofs are signed by the new key only")
    assert sig_key_ids(proof_mid["checkpoint"]) == [kid(v1)]
    assert sig_key_ids(proof_new["checkpoint"]) == [kid(v2)]
    # each rotation checkpoint: two lines, the retired key's first (§5.2, §5.7 step 3)
    (s1, r1), (s2, r2) = rotations(db)
    assert (r1["old_key"], r1["new_key"], r2["old_key"], r2["new_key"]) == (v0, v1, v1, v2)
    assert set(r1) == {"type", "id", "user", "action", "old_key", "new_key", "at"} | (
        {"label"} if "label" in r1 else set()
    )
    assert sig_key_ids(checkpoint_note(db, s1 + 1)) == [kid(v0), kid(v1)]
    assert sig_key_ids(checkpoint_note(db, s2 + 1)) == [kid(v1), kid(v2)]
    assert jok("key", "export", *h(Path(home), db))["verifier_key"] == v2

    stranger = new_signer()[1]
    for name, v in (("v0", v0), ("v1", v1), ("v2", v2)):
        env = {"BFA_VERIFIER_KEY": keyfile(tmp_path, name, v)}
        for extra in (
            (),
            ("--since-checkpoint",),
            ("--against", str(cp_a)),
            ("--against", str(cp_b)),
            ("--since-checkpoint", "--against", str(cp_a)),
        ):
            rep = verify_json(home, db, *extra, env=env)
            assert rep["ok"], (name, extra, rep)
    rep = verify_json(home, db, env={"BFA_VERIFIER_KEY": keyfile(tmp_path, "x", stranger)})
    assert codes(rep) == ["key-rotation"]


def test_rotation_over_a_failing_ledger_signs_and_rotates_nothing(
    lh: dict[str, str], tmp_path: Path
) -> None:
    """§5.7 step 3: the rotation checkpoint is signed 'as bfa checkpoint does' (§5.5 checks)."""
    home, db = lh["home"], lh["db"]
    ingest(tmp_path, home, db, some(4))
    ok("checkpoint", *h(Path(home), db))
    size = int(jok("status", *h(Path(home), db))["size"])
    q(
        db,
        "UPDATE checkpoints SET root_hash = ? WHERE tree_size = ?",
        (b"\x07" * 32, size),
        bypass=True,
    )
    before = {p.name: p.read_bytes() for p in keys(home).iterdir()}
    res = invoke("key", "rotate", "--signing", *h(Path(home), db))
    assert res.exit_code == 3, res.output
    assert {p.name: p.read_bytes() for p in keys(home).iterdir()} == before
    assert rotations(db) == []
    assert int(jok("status", *h(Path(home), db))["size"]) == size


# ---------------------------------------------------------------------------------------------
# which key signs what: a retired key's signature after its rotation does not count


def _rotated_with_saved_keys(home: str, db: str, tmp: Path) -> dict[str, str]:
    first = ingest(tmp, home, db, some(3))[0]
    ok("checkpoint", *h(Path(home), db))
    k0 = (keys(home) / "signing.key").read_text()
    v0, v1 = rotate(home, db)
    k1 = (keys(home) / "signing.key").read_text()
    ingest(tmp, home, db, some(3))
    return {"k0": k0, "v0": v0, "k1": k1, "v1": v1, "first": first}


def test_a_checkpoint_signed_by_the_retired_key_after_its_rotation_fails_verify(
    lh: dict[str, str], tmp_path: Path
) -> None:
    home, db = lh["home"], lh["db"]
    k = _rotated_with_saved_keys(home, db, tmp_path)
    n = int(jok("status", *h(Path(home), db))["size"])
    root = root_at(db, n)
    q(
        db,
        "INSERT INTO checkpoints (tree_size, root_hash, note, created_at) VALUES (?, ?, ?, ?)",
        (n, root, make_note(n, root, [k["k0"]]), AT),
    )
    # (the service duty may INSERT checkpoints, §8.3, and its old copy of the retired key signs)
    for env in (None, {"BFA_VERIFIER_KEY": keyfile(tmp_path, "v0", k["v0"])}):
        rep = verify_json(home, db, env=env)
        assert codes(rep) == ["checkpoint-signature"] and rep["problems"][0]["seq"] == n
        # a proof is checked as a verifier would (ADR 0020), also with the old key of the chain
        assert invoke("prove", k["first"], *h(Path(home), db), env=env).exit_code == 3
    assert invoke("checkpoint", *h(Path(home), db)).exit_code == 3


def test_against_notes_need_the_key_in_force_at_their_size(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    k = _rotated_with_saved_keys(home, db, tmp_path)
    ok("checkpoint", *h(Path(home), db))
    ((rs, _),) = rotations(db)
    n = int(jok("status", *h(Path(home), db))["size"])
    ka = new_signer()[0]
    cases = {  # (size, signers) -> verifies?
        (3, ("k0",)): True,
        (3, ("k1",)): False,
        (rs + 1, ("k0", "k1")): True,
        (rs + 1, ("k1", "k0")): True,
        (rs + 1, ("k0",)): False,
        (rs + 1, ("k1",)): False,
        (n, ("k1",)): True,
        (n, ("k0",)): False,
        (n, ("ka",)): False,
        (n, ("k1", "ka")): True,
    }
    signer = {"k0": k["k0"], "k1": k["k1"], "ka": ka}
    for v in ("v0", "v1"):
        env = {"BFA_VERIFIER_KEY": keyfile(tmp_path, v, k[v])}
        for (size, who), good in cases.items():
            f = tmp_path / "aud.note"
            f.write_text(make_note(size, root_at(db, size), [signer[s] for s in who]))
            rep = verify_json(home, db, "--against", str(f), env=env)
            assert rep["ok"] == good and (good or codes(rep) == ["against-signature"]), (
                v,
                size,
                who,
                rep,
            )


def test_signature_lines_of_the_rotation_checkpoint(lh: dict[str, str], tmp_path: Path) -> None:
    """Reordered or repeated lines still carry both signatures; a dropped line or a deleted
    rotation checkpoint is an integrity failure (§5.7, §6.1)."""
    home, db = lh["home"], lh["db"]
    ingest(tmp_path, home, db, some(2))
    rotate(home, db)
    ((rs, _),) = rotations(db)
    note = checkpoint_note(db, rs + 1)
    text, sigs = note.rsplit("\n\n", 1)
    lines = sigs.splitlines(keepends=True)
    variants = {
        "swapped": (lines[::-1], True),
        "repeated": (lines + lines[:1], True),
        "old dropped": (lines[1:], False),
        "new dropped": (lines[:1], False),
    }
    for name, (ls, good) in variants.items():
        q(
            db,
            "UPDATE checkpoints SET note = ? WHERE tree_size = ?",
            (text + "\n\n" + "".join(ls), rs + 1),
            bypass=True,
        )
        rep = verify_json(home, db)
        assert rep["ok"] == good, (name, rep)
        if not good:
            assert set(codes(rep)) <= {"checkpoint-signature", "key-rotation"} and codes(rep), rep
    q(db, "UPDATE checkpoints SET note = ? WHERE tree_size = ?", (note, rs + 1), bypass=True)
    assert verify_json(home, db)["ok"]
    # the rotation entry rewritten to name another new key (its stored hash left alone)
    leaf = bytes(q(db, "SELECT leaf FROM entries WHERE seq = ?", (rs,))[0][0])
    rec = json.loads(leaf[41:])
    rec["record"]["new_key"] = new_signer()[1]
    q(db, "UPDATE entries SET leaf = ? WHERE seq = ?", (leaf[:41] + jcs(rec), rs), bypass=True)
    rep = verify_json(home, db)
    assert codes(rep) and not rep["ok"], rep
    q(db, "UPDATE entries SET leaf = ? WHERE seq = ?", (leaf, rs), bypass=True)
    assert verify_json(home, db)["ok"]
    q(db, "DELETE FROM checkpoints WHERE tree_size = ?", (rs + 1,), bypass=True)
    rep = verify_json(home, db)
    assert [(p["code"], p["seq"]) for p in rep["problems"]] == [("key-rotation", rs)]


def test_forged_rotation_entries_are_key_rotation_problems(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    """A rotation entry appended outside bfa (SQLite: whoever writes the file) never verifies
    without the co-signed checkpoint; malformed ones are key-rotation, not a crash."""
    home, db = sqlite_home["home"], sqlite_home["db"]
    first = ingest(tmp_path, home, db, some(2))[0]
    v0, v1 = rotate(home, db)
    ok("checkpoint", *h(Path(home), db))
    ka, va = new_signer()
    other = new_signer("other.example/x")[1]
    badkid = va.split("+")[0] + "+00000000+" + va.split("+", 2)[2]
    variants: dict[str, tuple[Any, Any]] = {
        "unsigned": (v1, va),
        "same key": (v1, v1),
        "not in force": (v0, va),
        "number": (v1, 5),
        "garbage": (v1, "xyz+abc"),
        "other origin": (v1, other),
        "wrong key id": (v1, badkid),
        "missing": (v1, None),
    }
    src = Path(_sqlite_path(db))
    pristine = tmp_path / "pristine.db"
    shutil.copy(src, pristine)
    for name, (old, new) in variants.items():
        shutil.copy(pristine, src)
        rec: dict[str, Any] = {
            "type": "control.key",
            "id": f"key-{uuid.uuid4()}",
            "user": "alice",
            "action": "rotate-signing",
            "old_key": old,
            "at": AT,
        }
        if new is not None:
            rec["new_key"] = new
        seq = append_entry(db, rec)
        if name == "unsigned":  # and a checkpoint over it signed by the forger's key alone
            root = root_at(db, seq + 1)
            q(
                db,
                "INSERT INTO checkpoints (tree_size, root_hash, note, created_at) "
                "VALUES (?, ?, ?, ?)",
                (seq + 1, root, make_note(seq + 1, root, [ka]), AT),
            )
        for env in (None, {"BFA_VERIFIER_KEY": keyfile(tmp_path, "v0", v0)}):
            rep = verify_json(home, db, env=env)
            assert codes(rep) and set(codes(rep)) <= {"key-rotation", "checkpoint-signature"}, (
                name,
                rep,
            )
            assert name == "unsigned" or "key-rotation" in codes(rep), (name, rep)
        for args in (
            ("status",),
            ("audit", "access"),
            ("prove", first),
            ("checkpoint",),
            ("key", "rotate", "--signing"),
        ):
            res = ok(*args, *h(Path(home), db), code=(0, 1, 2, 3))
            if args[0] in ("checkpoint", "key"):
                assert res.exit_code in (2, 3), (name, args, res.output)
        assert [r.get("new_key") for _, r in rotations(db)][:1] == [v1]


# ---------------------------------------------------------------------------------------------
# interrupted rotations, the home's key files


def _spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BFA_")}
    return subprocess.Popen(
        [str(BFA), *args],
        env={**base, **(env or {})},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_hook(tmp: Path) -> Path:
    d = tmp / "hook"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(
        "import os\n"
        "_at = os.environ.get('KILL_AT')\n"
        "if _at:\n"
        "    def _wrap(f):\n"
        "        def g(src, dst, *a, **k):\n"
        "            if os.path.basename(os.fsdecode(dst)) == _at:\n"
        "                os._exit(137)\n"
        "            return f(src, dst, *a, **k)\n"
        "        return g\n"
        "    os.replace = _wrap(os.replace); os.rename = _wrap(os.rename)\n"
    )
    return d


def _killed_after_commit(home: str, tmp: Path, at: str) -> tuple[str, str]:
    """Run a real ``bfa key rotate --signing`` killed when it renames onto ``at``."""
    old = (keys(home) / "verifier.key").read_text().strip()
    p = _spawn(
        "key",
        "rotate",
        "--signing",
        "--home",
        home,
        env={"PYTHONPATH": str(_kill_hook(tmp)), "KILL_AT": at},
    )
    p.communicate(timeout=60)
    assert p.returncode == 137
    assert (keys(home) / "signing.key.next").exists()
    return old, (keys(home) / "signing.key.next").read_text().strip()


@pytest.mark.parametrize("at", ["verifier.key", "signing.key"])
def test_a_rotation_killed_after_its_commit_is_finished_by_the_next_command(
    sqlite_home: dict[str, str], tmp_path: Path, at: str
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    ingest(tmp_path, home, db, some(2))
    old, _ = _killed_after_commit(home, tmp_path, at)
    ((_, rec),) = rotations(db)
    assert rec["old_key"] == old
    ok("checkpoint", *h(Path(home), db)) if at == "signing.key" else ok(
        "status", *h(Path(home), db)
    )
    assert not (keys(home) / "signing.key.next").exists()
    assert (keys(home) / "verifier.key").read_text().strip() == rec["new_key"]
    ingest(tmp_path, home, db, some(1))
    cp = jok("checkpoint", *h(Path(home), db))
    assert sig_key_ids(cp["signed_note"]) == [kid(rec["new_key"])]
    assert verify_json(home, db)["ok"]


def test_key_export_after_a_killed_rotation_gives_the_key_in_force(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    ingest(tmp_path, home, db, some(2))
    _killed_after_commit(home, tmp_path, "verifier.key")
    ((_, rec),) = rotations(db)
    init_out = ok("init", *h(Path(home), db)).stdout
    exported = jok("key", "export", *h(Path(home), db))["verifier_key"]
    assert (exported, rec["new_key"] in init_out) == (rec["new_key"], True)


def test_a_first_rotation_killed_before_its_commit_leaves_the_old_key(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    ingest(tmp_path, home, db, some(2))
    ok("checkpoint", *h(Path(home), db))
    before = (keys(home) / "signing.key").read_bytes()
    lock = sqlite3.connect(_sqlite_path(db), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another writer: the rotation waits for the lock
    try:
        p = _spawn("key", "rotate", "--signing", "--home", home)
        deadline = time.monotonic() + 30
        while not (keys(home) / "signing.key.next").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (keys(home) / "signing.key.next").exists()
        time.sleep(0.3)
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert rotations(db) == []
    ok("status", *h(Path(home), db))
    assert not (keys(home) / "signing.key.next").exists()
    assert (keys(home) / "signing.key").read_bytes() == before
    assert verify_json(home, db)["ok"]


def test_a_stray_signing_key_next_after_a_rotation_is_removed(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    """With a rotation in the ledger, a signing.key.next that is not the key in force (a
    random key, the retired key) is removed by the next command, never installed."""
    home, db = sqlite_home["home"], sqlite_home["db"]
    ingest(tmp_path, home, db, some(2))
    k_old = (keys(home) / "signing.key").read_text()
    rotate(home, db)
    current = (keys(home) / "signing.key").read_text()
    nxt = keys(home) / "signing.key.next"
    for stray in (new_signer()[0] + "\n", k_old):
        nxt.write_text(stray)
        nxt.chmod(0o600)
        ok("checkpoint", *h(Path(home), db))
        assert not nxt.exists() and (keys(home) / "signing.key").read_text() == current
    assert verify_json(home, db)["ok"]


def test_the_homes_verifier_key_altered_or_removed(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    v0, v1 = rotate(home, db)
    vk = keys(home) / "verifier.key"
    vk.write_text(v0 + "\n")  # the retired key, beside the new signing key: not a pair (§5.4)
    assert invoke("verify", *h(Path(home), db)).exit_code == 2
    assert invoke("key", "export", *h(Path(home), db)).exit_code == 2
    vk.unlink()
    ok("init", *h(Path(home), db))
    assert vk.read_text().strip() == v1
    assert verify_json(home, db)["ok"]


def test_rotation_replaces_the_homes_verifier_key_not_an_auditors_copy(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    v0 = (keys(home) / "verifier.key").read_text().strip()
    copy = keyfile(tmp_path, "auditor.vkey", v0)
    ok("key", "rotate", "--signing", *h(Path(home), db), env={"BFA_VERIFIER_KEY": copy})
    ((_, rec),) = rotations(db)
    assert Path(copy).read_text().strip() == v0
    assert (keys(home) / "verifier.key").read_text().strip() == rec["new_key"]
    assert invoke("verify", *h(Path(home), db)).exit_code == 0


def _backup(home: str, out: Path, passphrase: Path) -> None:
    ok("key", "backup", "--out", str(out), "--passphrase-file", str(passphrase), *h(Path(home)))


def test_key_backups_from_before_a_rotation_are_refused(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    ingest(tmp_path, home, db, some(2))
    pp = tmp_path / "pp"
    pp.write_text("a passphrase long enough\n")
    _backup(home, tmp_path / "before.json", pp)
    rotate(home, db)
    _backup(home, tmp_path / "after.json", pp)
    lost = tmp_path / "lost"
    lost.mkdir(mode=0o700)
    shutil.copy(Path(home) / "ledger.db", lost / "ledger.db")
    (lost / "ledger.db").chmod(0o600)
    res = invoke(
        "key", "restore", str(tmp_path / "before.json"), "--passphrase-file", str(pp), *h(lost)
    )
    assert res.exit_code == 2 and "retired" in res.stderr, res.output
    assert not (lost / "config.json").exists() and not list((lost / "keys").glob("*"))
    ok("key", "restore", str(tmp_path / "after.json"), "--passphrase-file", str(pp), *h(lost))
    assert verify_json(str(lost), f"sqlite:///{lost / 'ledger.db'}")["ok"]
    ok("checkpoint", *h(lost))


def _retired_key_put_back(home: str, db: str, tmp_path: Path) -> None:
    """A rotation with records on both sides, then the old key pair back in the home."""
    ingest(tmp_path, home, db, some(2))
    k0 = (keys(home) / "signing.key").read_text()
    v0, _ = rotate(home, db)
    ingest(tmp_path, home, db, some(2))
    (keys(home) / "signing.key").write_text(k0)
    (keys(home) / "verifier.key").write_text(v0 + "\n")


def test_a_retired_key_put_back_signs_nothing(sqlite_home: dict[str, str], tmp_path: Path) -> None:
    """§5.7: the old signing key signs nothing, 'bfa checkpoint' and 'bfa nightly': exit 2."""
    home, db = sqlite_home["home"], sqlite_home["db"]
    _retired_key_put_back(home, db, tmp_path)
    res = invoke("checkpoint", *h(Path(home), db))
    assert res.exit_code == 2 and "retired by the rotation" in res.stderr, res.output


def test_a_database_restored_from_before_a_rotation_needs_the_retired_key(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    """Documents a hazard the documents do not mention (§5.6, §5.7): the rotation deletes the
    old signing key, so a database backup from before it cannot be verified or signed with the
    home's keys; only a key backup from before the rotation (which §5.7 calls refused, and it
    is, against the current database) brings it back."""
    home, db = sqlite_home["home"], sqlite_home["db"]
    ingest(tmp_path, home, db, some(2))
    ok("checkpoint", *h(Path(home), db))
    pp = tmp_path / "pp"
    pp.write_text("a passphrase long enough\n")
    _backup(home, tmp_path / "before.json", pp)
    src = sqlite3.connect(_sqlite_path(db))
    dst = sqlite3.connect(tmp_path / "before.db")
    src.backup(dst)
    src.close()
    dst.close()
    rotate(home, db)
    for suffix in ("", "-wal", "-shm"):
        Path(_sqlite_path(db) + suffix).unlink(missing_ok=True)
    shutil.copy(tmp_path / "before.db", _sqlite_path(db))
    Path(_sqlite_path(db)).chmod(0o600)
    assert codes(verify_json(home, db)) == ["checkpoint-signature"]
    assert invoke("checkpoint", *h(Path(home), db)).exit_code == 3
    (keys(home) / "signing.key").unlink()
    (keys(home) / "verifier.key").unlink()
    ok(
        "key",
        "restore",
        str(tmp_path / "before.json"),
        "--passphrase-file",
        str(pp),
        *h(Path(home)),
    )
    assert verify_json(home, db)["ok"]


def test_nightly_with_a_retired_key_refuses_before_it_writes(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    _retired_key_put_back(home, db, tmp_path)
    size = int(jok("status", *h(Path(home), db))["size"])
    res = invoke("nightly", "--report-dir", str(tmp_path / "rep"), *h(Path(home), db))
    assert res.exit_code == 2, res.output
    assert int(jok("status", *h(Path(home), db))["size"]) == size


def test_audit_access_names_the_keys_of_a_signing_rotation(sqlite_home: dict[str, str]) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    v0, v1 = rotate(home, db)
    rows = [r for r in jok("audit", "access", *h(Path(home), db)) if r["action"] == "key"]
    assert len(rows) == 1
    assert (
        "None" not in rows[0]["target"]
        and kid(v0) in rows[0]["target"]
        and kid(v1) in rows[0]["target"]
    )


def test_key_export_reads_the_home_only(tmp_path: Path) -> None:
    """Reviewed: 'bfa key export' never opened the database while FORMAT §5.4 said every
    command but init checks it. Decided: export reads the home only (it serves when the
    database cannot be reached), and FORMAT §5.4 says so; it opens the ledger only to
    finish a rotation interrupted after its commit (§5.7)."""
    a, b = tmp_path / "a", tmp_path / "b"
    ok("init", "--origin", "a.example/x", *h(a))
    ok("init", "--origin", "b.example/y", *h(b))
    out = ok("key", "export", *h(a, f"sqlite:///{b / 'ledger.db'}")).stdout
    assert out.startswith("a.example/x+")


# ---------------------------------------------------------------------------------------------
# PostgreSQL: duties and the rotation


@pytest.fixture
def roles(db_url: str) -> Iterator[Any]:
    """Make login roles with duties (``bfa db grant``, as the owner); dropped afterwards."""
    made: list[str] = []

    def make(home: str, duty: str) -> str:
        name = f"rv_{duty}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" LOGIN')
        made.append(name)
        ok("db", "grant", name, "--duty", duty, *h(Path(home), db_url))
        return name

    yield make
    dbname = db_url.rsplit("/", 1)[1]
    groups = [f"bfa_{d}_{dbname}" for d in ("officer", "approver", "auditor", "privacy", "service")]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for r in made + groups:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone():
                conn.execute(f'DROP OWNED BY "{r}"')
                conn.execute(f'DROP ROLE "{r}"')
        left = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (made + groups,)
        )
        assert not left.fetchall()


def _as(db: str, role: str) -> str:
    head, tail = db.split("://", 1)
    return f"{head}://{role}@{tail.split('@', 1)[1]}"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_duties_and_the_signing_rotation(lh: dict[str, str], roles: Any, tmp_path: Path) -> None:
    home, db = lh["home"], lh["db"]
    svc, off, aud = roles(home, "service"), roles(home, "officer"), roles(home, "auditor")
    hs, ho, ha = (str(tmp_path / n) for n in ("svc", "off", "aud"))
    for dest, duty, role in ((hs, "service", svc), (ho, "officer", off), (ha, "auditor", aud)):
        ok("init", "--from", home, "--duty", duty, "--home", dest, "--db", _as(db, role))
    recs = some(3)
    ok("ingest", str(write_jsonl(tmp_path / "o.jsonl", recs)), "--home", ho)
    ok("checkpoint", "--home", hs)
    size = int(jok("status", "--home", ha)["size"])

    # only the tables' owner rotates (§5.7, §8.3): the service home is refused, keeps its key
    before = (keys(hs) / "signing.key").read_bytes()
    res = invoke("key", "rotate", "--signing", "--home", hs)
    assert res.exit_code == 2 and "owner" in res.stderr, res.output
    assert (keys(hs) / "signing.key").read_bytes() == before
    assert not (keys(hs) / "signing.key.next").exists()
    # and the officer cannot append a control.key entry with psql (the entries trigger)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        append_entry(
            _as(db, off),
            {
                "type": "control.key",
                "id": f"key-{uuid.uuid4()}",
                "user": off,
                "action": "rotate-signing",
                "old_key": "a",
                "new_key": "b",
                "at": AT,
            },
        )
    assert int(jok("status", "--home", ha)["size"]) == size

    rotate(home, db)
    ok("ingest", str(write_jsonl(tmp_path / "o2.jsonl", some(2))), "--home", ho)
    res = invoke("checkpoint", "--home", hs)
    assert res.exit_code == 2 and "retired by the rotation" in res.stderr, res.output
    # the auditor's home keeps the old verifier key, which still verifies (§5.7)
    assert verify_json(ha, "")["ok"]
    assert verify_json(ha, "", "--since-checkpoint")["ok"]
    # the service home takes the new pair again
    (keys(hs) / "signing.key").unlink()
    (keys(hs) / "verifier.key").unlink()
    ok("init", "--from", home, "--duty", "service", "--home", hs, "--db", _as(db, svc))
    cp = jok("checkpoint", "--home", hs)
    assert sig_key_ids(cp["signed_note"]) == [kid((keys(home) / "verifier.key").read_text())]
    assert verify_json(ha, "")["ok"]
    proof = jok("prove", recs[0]["id"], "--home", ha)
    assert proof["tree_size"] == cp["size"]


# ---------------------------------------------------------------------------------------------
# control.reconcile: the findings digest (FORMAT §2.5, §6.7, §8.3)


def findings_digest(rows: list[tuple[Any, ...]]) -> tuple[int, str]:
    """FORMAT §2.5 'sorted-sha256', recomputed from the document."""
    rows = sorted(rows, key=lambda r: (r[0].encode(), r[1].encode(), int(r[2])))
    frames = b"".join(
        b"%s\0%s\0%d\0%s\n" % (r[0].encode(), r[1].encode(), int(r[2]), r[3].encode()) for r in rows
    )
    return len(rows), hashlib.sha256(frames).hexdigest()


def stored_findings(db: str) -> list[tuple[Any, ...]]:
    return q(db, "SELECT rule, root, pos, row FROM rc_findings")


def last_run(home: str, db: str) -> dict[str, Any]:
    n = 1
    while (
        invoke("show", f"reconcile-{n + 1}", "--domain", "control", *h(Path(home), db)).exit_code
        == 0
    ):
        n += 1
    rec: dict[str, Any] = json.loads(
        ok("show", f"reconcile-{n}", "--domain", "control", "--json", *h(Path(home), db)).stdout
    )
    return rec


def _reconciled(home: str, db: str, tmp: Path) -> None:
    recs = [payment_event(i) for i in range(4)] + [collection(i) for i in range(4)]
    ingest(tmp, home, db, recs)
    ok("reconcile", "--as-of", "2026-11-30", *h(Path(home), db), code=1)


def reconcile_json(home: str, db: str, *extra: str) -> tuple[int, dict[str, Any]]:
    res = ok(
        "reconcile", "--as-of", "2026-11-30", *extra, "--json", *h(Path(home), db), code=(0, 1, 3)
    )
    return res.exit_code, json.loads(res.stdout)


def test_the_findings_digest_is_the_documented_sorted_sha256(
    lh: dict[str, str], tmp_path: Path
) -> None:
    home, db = lh["home"], lh["db"]
    _reconciled(home, db, tmp_path)
    ingest(tmp_path, home, db, [collection(50), payment_event(50, amount="10.00")])
    ok("reconcile", "--as-of", "2026-11-30", *h(Path(home), db), code=1)
    rec = last_run(home, db)
    assert rec["run"] == 2 and rec["mode"] == "incremental"
    rows = stored_findings(db)
    assert any(int(r[1]) >= 10 for r in rows if r[1].isdigit())  # "10" sorts before "2"
    count, digest = findings_digest(rows)
    assert rec["findings"] == {"count": count, "digest": digest, "scheme": "sorted-sha256"}
    # the worked example's framing (§2.5)
    assert (
        b"".join(
            b"%s\0%s\0%d\0%s\n" % (a.encode(), b.encode(), c, d.encode())
            for a, b, c, d in (
                ("duplicates", "p1|pension|2026-10", 0, '[1,"x"]'),
                ("orphans", "17", 0, "[2]"),
            )
        )
        == b'duplicates\x00p1|pension|2026-10\x000\x00[1,"x"]\norphans\x0017\x000\x00[2]\n'
    )


def test_tampered_findings_are_findings_mismatch_then_ledger_integrity(
    lh: dict[str, str], tmp_path: Path
) -> None:
    home, db = lh["home"], lh["db"]
    _reconciled(home, db, tmp_path)
    o3 = "SELECT row FROM rc_findings WHERE rule = 'orphans' AND root = '{}'"
    tampers = {
        "changed": [
            'UPDATE rc_findings SET row = \'["COL-9","collection",10000,20777,false]\' '
            "WHERE rule = 'orphans' AND root = '4'"
        ],
        "swapped": [
            f"UPDATE rc_findings SET row = CASE root WHEN '4' THEN ({o3.format(5)}) "
            f"ELSE ({o3.format(4)}) END WHERE rule = 'orphans' AND root IN ('4', '5')"
        ],
        "added": [
            "INSERT INTO rc_findings (rule, root, pos, row) VALUES ('orphans', '99', 0, '[1]')"
        ],
        "removed": ["DELETE FROM rc_findings WHERE rule = 'duplicates'"],
        "separator": [
            "UPDATE rc_findings SET row = row || char(10) WHERE rule = 'orphans' "
            "AND root = '4'".replace("char(10)", "chr(10)" if _is_pg(db) else "char(10)")
        ],
    }
    for name, stmts in tampers.items():
        before = sorted(stored_findings(db))
        for s in stmts:
            q(db, s)
        assert sorted(stored_findings(db)) != before, name
        for extra in ((), ("--since-checkpoint",)):
            rep = verify_json(home, db, *extra)
            assert codes(rep) == ["findings-mismatch"], (name, extra, rep)
        code, out = reconcile_json(home, db)
        assert code == 3 and "LEDGER_INTEGRITY" in {b["code"] for b in out["breaks"]}, (name, out)
        rec = last_run(home, db)
        assert rec.get("mismatch") and rec["mode"] == "full", (name, rec)
        assert verify_json(home, db)["ok"], name
        assert (rec["findings"]["count"], rec["findings"]["digest"]) == findings_digest(
            stored_findings(db)
        )


def test_findings_emptied_or_stored_in_another_order_are_no_mismatch(
    lh: dict[str, str], tmp_path: Path
) -> None:
    home, db = lh["home"], lh["db"]
    _reconciled(home, db, tmp_path)
    rows = stored_findings(db)
    q(db, "DELETE FROM rc_findings")
    for r in reversed(rows):  # physically re-inserted in the reverse order: same set
        q(db, "INSERT INTO rc_findings (rule, root, pos, row) VALUES (?, ?, ?, ?)", r)
    assert verify_json(home, db)["ok"]
    code, out = reconcile_json(home, db)
    assert code == 1 and "LEDGER_INTEGRITY" not in {b["code"] for b in out["breaks"]}
    q(db, "DELETE FROM rc_findings")
    assert verify_json(home, db)["ok"]
    code, out = reconcile_json(home, db)
    assert code == 1 and "LEDGER_INTEGRITY" not in {b["code"] for b in out["breaks"]}


def test_the_run_hint_in_meta_does_not_choose_the_record(
    lh: dict[str, str], tmp_path: Path
) -> None:
    """§2.5: the latest record is found by probing ids; meta.reconcile_run is only a start."""
    home, db = lh["home"], lh["db"]
    _reconciled(home, db, tmp_path)
    run1 = stored_findings(db)
    ingest(tmp_path, home, db, [collection(60), collection(61)])
    ok("reconcile", "--as-of", "2026-11-30", *h(Path(home), db), code=1)
    for hint in ("1", "999", "abc"):
        q(db, "DELETE FROM rc_findings")
        for r in run1:
            q(db, "INSERT INTO rc_findings (rule, root, pos, row) VALUES (?, ?, ?, ?)", r)
        q(db, "UPDATE meta SET value = ? WHERE key = 'reconcile_run'", (hint,))
        rep = verify_json(home, db)
        assert codes(rep) == ["findings-mismatch"], (hint, rep)
        code, _ = reconcile_json(home, db)
        assert code == 3, hint


def test_the_nightly_signs_nothing_over_tampered_findings(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    _reconciled(home, db, tmp_path)
    ok("checkpoint", *h(Path(home), db))
    cps = q(db, "SELECT count(*) FROM checkpoints")
    q(db, "DELETE FROM rc_findings WHERE rule = 'duplicates'")
    res = invoke(
        "nightly",
        "--report-dir",
        str(tmp_path / "rep"),
        "--as-of",
        "2026-11-30",
        *h(Path(home), db),
    )
    assert res.exit_code == 3, res.output
    assert q(db, "SELECT count(*) FROM checkpoints") == cps


def _forge_run(db: str, user: str, rows: list[tuple[Any, ...]], checked: int | None = None) -> None:
    """Append a control.reconcile record for ``rows`` as ``user`` would (FORMAT §2.5)."""
    leaf = q(
        db,
        "SELECT leaf FROM entries WHERE domain = 'control' AND kind = 'reconcile' "
        "ORDER BY seq DESC LIMIT 1",
    )[0][0]
    last = json.loads(bytes(leaf)[41:])["record"]
    n = int(q(db, "SELECT count(*) FROM entries")[0][0])
    count, digest = findings_digest(rows)
    import datetime

    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    append_entry(
        db,
        {
            "type": "control.reconcile",
            "id": f"reconcile-{last['run'] + 1}",
            "run": last["run"] + 1,
            "user": user,
            "mode": "incremental",
            "checked": n + 1 if checked is None else checked,
            "rules": last["rules"],
            "findings": {"count": count, "digest": digest, "scheme": "sorted-sha256"},
            "at": at,
        },
        recorded_at=at,
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_officer_cannot_make_doctored_findings_believed(
    lh: dict[str, str], roles: Any, tmp_path: Path
) -> None:
    home, db = lh["home"], lh["db"]
    _reconciled(home, db, tmp_path)
    off = roles(home, "officer")
    odb = _as(db, off)
    with psycopg.connect(odb) as conn:
        conn.execute("DELETE FROM rc_findings WHERE rule = 'duplicates'")
    _forge_run(odb, off, stored_findings(db))
    verdict = verify_json(home, db)
    code, out = reconcile_json(home, db)
    assert (
        not verdict["ok"] or code == 3 or "DUPLICATE_PAYMENT" in {b["code"] for b in out["breaks"]}
    )


def test_a_run_record_cannot_move_the_watermark_past_the_ledger(
    sqlite_home: dict[str, str], tmp_path: Path
) -> None:
    home, db = sqlite_home["home"], sqlite_home["db"]
    _reconciled(home, db, tmp_path)
    _forge_run(db, "alice", stored_findings(db), checked=10**9)
    ingest(
        tmp_path,
        home,
        db,
        [payment_event(100 + i, amount="999.00", person="110101199202021234") for i in range(3)],
    )
    _, inc = reconcile_json(home, db)
    _, full = reconcile_json(home, db, "--full")
    key = sorted((b["code"], b["id"]) for b in inc["breaks"] if b["code"] != "LEDGER_INTEGRITY")
    assert key == sorted(
        (b["code"], b["id"]) for b in full["breaks"] if b["code"] != "LEDGER_INTEGRITY"
    )
