"""The demo: a realistic month for one pooling region, end to end.

``generate_month`` writes INTERCHANGE v1 JSON Lines plus voucher files (fixed
seed, so runs are reproducible); ``run_demo`` ingests them, signs a checkpoint,
verifies, proves one record offline, shows a reveal, then tampers with a copy of
the database and shows verification catching it.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from archive._store import FileStore
from ledger import Ledger, TLogProof, entry_hash, verify_inclusion
from ledger._tlogproof import verify_tlog_proof

REGION = "440100"
ORIGIN = "demo.bfa-ledger.example/440100"
PERIOD = "2026-11"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂"


def _person_id(rng: random.Random) -> str:
    """An 18-character ID in the GB 11643 layout, with a valid check character."""
    birth = f"{rng.randint(1950, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = f"{REGION}{birth}{rng.randint(0, 999):03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


def _account(rng: random.Random) -> str:
    return "6222" + "".join(str(rng.randint(0, 9)) for _ in range(15))


def _money(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.01'))}"


def _voucher(
    out: Path, kind: str, vid: str, refs: list[str], amount: str | None, when: str
) -> dict[str, Any]:
    body = (
        f"%PDF-1.4\n% demo {kind} {vid}\n% refs {' '.join(refs[:5])}\n"
        f"% amount {amount or '-'}\n%%EOF\n"
    ).encode()
    rel = f"vouchers/{vid}.pdf"
    (out / rel).write_bytes(body)
    rec: dict[str, Any] = {
        "type": f"archive.{kind}", "id": vid, "region": REGION, "occurred_at": when,
        "sha256": hashlib.sha256(body).hexdigest(), "media_type": "application/pdf",
        "size": len(body), "file": rel, "refs": refs, "retention": "30y",
    }
    if amount is not None:
        rec["amount"] = amount
    return rec


def generate_month(out: Path, *, persons: int = 3000, seed: int = 20261123) -> Path:
    """Write ``month-2026-11.jsonl`` and its voucher files under ``out``; return the file."""
    rng = random.Random(seed)
    (out / "vouchers").mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    employers = [f"91440100MA{rng.randint(10**7, 10**8 - 1)}" for _ in range(max(3, persons // 20))]
    people = []
    for i in range(persons):
        pid = _person_id(rng)
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(["", *_GIVEN])
        retired = i % 10 == 0
        emp = None if retired else rng.choice(employers)
        people.append((pid, name, emp, retired))
        rec: dict[str, Any] = {
            "type": "business.enrollment", "id": f"EN-{i:06d}", "region": REGION,
            "occurred_at": "2026-11-01T09:00:00+08:00", "person_id": pid, "insurance": "pension",
            "effective_date": "2026-11-01", "name": name,
        }
        if emp:
            rec["employer_id"] = emp
        records.append(rec)
        records.append(_voucher(out, "application_form", f"AF-{i:06d}", [rec["id"]], None,
                                "2026-11-01T09:00:00+08:00"))
    wages = {e: Decimal(rng.randint(6000, 20000)) for e in employers}
    collected = Decimal(0)
    for j, emp in enumerate(employers):
        staff = sum(1 for p in people if p[2] == emp)
        amount = _money(wages[emp] * staff * Decimal("0.24"))
        collected += Decimal(amount)
        aid, cid = f"CA-{PERIOD}-{j:05d}", f"COL-{PERIOD}-{j:05d}"
        records.append({
            "type": "business.contribution_assessment", "id": aid, "region": REGION,
            "occurred_at": "2026-11-05T10:00:00+08:00", "employer_id": emp,
            "insurance": "pension", "period": PERIOD, "amount": amount, "due_date": "2026-11-15",
        })
        records.append({
            "type": "finance.collection", "id": cid, "region": REGION,
            "occurred_at": "2026-11-12T15:30:00+08:00", "amount": amount,
            "value_date": "2026-11-12", "bank_ref": f"ICBC{rng.randint(10**11, 10**12 - 1)}",
            "payer_id": emp, "fund_account": "income",
            "allocations": [{"event": aid, "amount": amount}],
        })
        records.append(_voucher(out, "fiscal_receipt", f"FR-{PERIOD}-{j:05d}", [aid, cid],
                                amount, "2026-11-12T16:00:00+08:00"))
        records.append(_voucher(out, "accounting_voucher", f"AV-{PERIOD}-C{j:05d}", [cid],
                                amount, "2026-11-13T10:00:00+08:00"))
    allocations, bp_ids, total = [], [], Decimal(0)
    for i, (pid, name, _emp, retired) in enumerate(people):
        if not retired:
            continue
        acct = _account(rng)
        monthly = Decimal(rng.randint(250000, 650000)) / 100
        records.append({
            "type": "business.benefit_approval", "id": f"BA-{i:06d}", "region": REGION,
            "occurred_at": "2026-11-02T11:00:00+08:00", "person_id": pid,
            "insurance": "pension", "benefit": "basic_pension", "monthly_amount": _money(monthly),
            "start_period": PERIOD, "account": acct, "name": name,
        })
        records.append(_voucher(out, "approval_document", f"AD-{i:06d}", [f"BA-{i:06d}"], None,
                                "2026-11-02T11:00:00+08:00"))
        bid = f"BP-{PERIOD}-{i:06d}"
        records.append({
            "type": "business.benefit_payment", "id": bid, "region": REGION,
            "occurred_at": "2026-11-20T09:00:00+08:00", "person_id": pid,
            "insurance": "pension", "period": PERIOD, "amount": _money(monthly), "account": acct,
        })
        allocations.append({"event": bid, "amount": _money(monthly)})
        bp_ids.append(bid)
        total += monthly
    # 财社〔2017〕144号: the income account is swept to the fiscal special account each
    # month, and the expenditure account is funded from it before benefits are paid.
    for sid, src, dst, amt, day in (
        (f"SW-{PERIOD}-IN", "income", "fiscal_special", collected, "2026-11-25"),
        (f"SW-{PERIOD}-EX", "fiscal_special", "expenditure", total, "2026-11-19"),
    ):
        records.append({
            "type": "finance.sweep", "id": sid, "region": REGION,
            "occurred_at": f"{day}T10:00:00+08:00", "amount": _money(amt), "value_date": day,
            "bank_ref": f"SWEEP{rng.randint(10**11, 10**12 - 1)}", "from_account": src,
            "to_account": dst,
        })
        records.append(_voucher(out, "accounting_voucher", f"AV-{sid}", [sid], _money(amt),
                                f"{day}T11:00:00+08:00"))
    batch = f"PAY-{PERIOD}-BATCH-01"
    records.append({
        "type": "finance.payment", "id": batch, "region": REGION,
        "occurred_at": "2026-11-20T14:00:00+08:00", "amount": _money(total),
        "value_date": "2026-11-20", "bank_ref": f"CCB{rng.randint(10**11, 10**12 - 1)}",
        "fund_account": "expenditure", "allocations": allocations,
    })
    records.append(_voucher(out, "bank_slip", f"BS-{PERIOD}-01", [batch], _money(total),
                            "2026-11-20T15:00:00+08:00"))
    records.append(_voucher(out, "accounting_voucher", f"AV-{PERIOD}-01", [batch],
                            _money(total), "2026-11-21T10:00:00+08:00"))
    rng.shuffle(records)  # upstream systems send in any order
    path = out / f"month-{PERIOD}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def run_demo(
    root: Path, *, persons: int = 3000, seed: int = 20261123, say: Callable[[str], None] = print
) -> int:
    """Run the whole demo under ``root`` (its parent holds data and outputs); 0 when as expected."""
    base = root.parent
    if root.exists():
        cfg = root / "config.json"
        if not cfg.is_file() or ORIGIN not in cfg.read_text(encoding="utf-8"):
            say(f"{root} exists and is not a demo home; choose another --home")
            return 2
        shutil.rmtree(root)
    for sub in ("data", "tampered.db", "auditor-checkpoint.note"):
        p = base / sub
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    say(f"== 1. init: ledger {ORIGIN} in {root}")
    led = Ledger.open(str(root), None, check=False)
    led.init(ORIGIN)
    led = Ledger.open(str(root), None)
    vkey = led.home.verifier().to_text()
    say(f"   verifier key (what an auditor needs): {vkey}")
    say(f"== 2. generate a month for region {REGION}: {persons} persons")
    month = generate_month(base / "data", persons=persons, seed=seed)
    lines = sum(1 for _ in month.open(encoding="utf-8"))
    say(f"   {month} ({lines} records, vouchers under data/vouchers/)")
    store = FileStore(led.home.archive_dir)
    say("== 3. ingest (one file = one atomic batch)")
    rep = led.ingest([str(month)], store)[0]
    say(f"   appended {rep.appended}, duplicates {rep.duplicates}, rejected {rep.rejected}")
    rep = led.ingest([str(month)], store)[0]
    say(f"   sent again: appended {rep.appended}, duplicates {rep.duplicates} (a no-op)")
    say("== 4. checkpoint (C2SP signed note, Ed25519)")
    cp = led.checkpoint()
    (base / "auditor-checkpoint.note").write_text(cp.note, encoding="utf-8")
    for line in cp.note.splitlines():
        say(f"   | {line}")
    say("== 5. verify")
    res = led.verify()
    say(f"   ok={res.ok}: {res.entries_checked} entries, {res.checkpoints_checked} checkpoint(s)")
    say("== 6. prove one benefit payment, verify it offline with the verifier key only")
    target = f"BP-{PERIOD}-000000"
    entry, proof = led.prove(target)
    text = proof.marshal()
    (base / f"{target}.tlog-proof").write_text(text, encoding="utf-8")
    parsed = TLogProof.parse(text)
    assert parsed.extra is not None
    checked = verify_tlog_proof(parsed, entry_hash(parsed.extra), led.home.verifier(),
                                verify_inclusion, ORIGIN)
    say(f"   {target} is entry {parsed.index} of {checked.size}: proof of "
        f"{len(parsed.hashes)} hashes verifies ({base / (target + '.tlog-proof')})")
    say("   the record as the ledger holds it (personal data pseudonymised):")
    say(f"   {json.dumps(entry.record, ensure_ascii=False)[:200]}…")
    _entry, clear = led.reveal(target, None, "demo-officer")
    say(f"   revealed from the vault (and the reveal was logged): {sorted(clear)}")
    say("== 7. tamper with a copy of the database: change one amount")
    tampered = base / "tampered.db"
    src_db = led.store.engine.url.database
    assert src_db is not None
    with sqlite3.connect(src_db) as src, sqlite3.connect(tampered) as dst:
        src.backup(dst)
    seq = entry.seq
    with sqlite3.connect(tampered) as con:
        con.execute("DROP TRIGGER entries_no_update")
        leaf = con.execute("SELECT leaf FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
        amount = entry.record["amount"].encode()
        forged = leaf.replace(b'"amount":"' + amount, b'"amount":"9' + amount)
        con.execute("UPDATE entries SET leaf = ? WHERE seq = ?", (forged, seq))
    bad = Ledger(replace(led.home, db_url=f"sqlite:///{tampered.resolve()}"))
    res = bad.verify()
    for problem in res.problems:
        say(f"   caught: [{problem.code}] {problem.message}")
    say(f"   'bfa verify' on the copy exits 3; the real ledger still verifies: {led.verify().ok}")
    bad.close()
    led.close()
    say("== done. Try: bfa --home " + str(root) + " show " + target + " --entry")
    return 0 if not res.ok else 1
