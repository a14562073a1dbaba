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
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from archive import (
    MINIMUM_RETENTION,
    FileStore,
    Intake,
    Scope,
    audit,
    export_bundle,
    restore,
    sample_pdf,
    verify_bundle,
)
from cli._render import clip, pad, terminal_width, width
from ledger import (
    BfaError,
    ConfigError,
    Ledger,
    TLogProof,
    entry_hash,
    verify_inclusion,
    verify_tlog_proof,
)
from reconcile import (
    HOLD_TEXT,
    Break,
    Deriver,
    approve_break,
    code_label,
    compare_list,
    ingest_statement,
    label,
    precheck,
    render_html,
    render_text,
    resolve_break,
    run_reconcile,
    run_tracked,
)
from schemas import gettext as _

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
    body = sample_pdf(f"demo {kind} {vid} refs {' '.join(refs[:5])} amount {amount or '-'}")
    rel = f"vouchers/{vid}.pdf"
    (out / rel).write_bytes(body)
    rec: dict[str, Any] = {
        "type": f"archive.{kind}", "id": vid, "region": REGION, "occurred_at": when,
        "sha256": hashlib.sha256(body).hexdigest(), "media_type": "application/pdf",
        "size": len(body), "file": rel, "refs": refs, "retention": MINIMUM_RETENTION[kind],
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
    out: Path, *, persons: int = 3000, seed: int = 20261123, say: Callable[[str], None] = print
) -> bool:
    """Run the whole demo in the directory ``out``: its ledger home is ``out/.bfa``, the
    generated data, proofs, report and tampered copy lie beside it.

    Returns True when everything came out as the demo expects: the reconciliation found
    every planted fault (:data:`PLANTED_CODES`), the tampered copy failed verification,
    and the real ledger still verifies. Raises :class:`ledger.ConfigError` when ``out``
    exists, is not empty and holds no demo ledger: nothing in it is touched then.
    """
    base, root = out, out / ".bfa"
    cfg = root / "config.json"
    is_demo = cfg.is_file() and ORIGIN in cfg.read_text(encoding="utf-8")
    if out.exists() and not is_demo and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(_("{dir} exists and is not a demo directory (no demo ledger in "
                            "{home}); choose another --out").format(dir=out, home=root))
    if is_demo:  # a previous run's outputs: start over
        for p in [root, base / "data", base / "tampered.db", base / "auditor-checkpoint.note",
                  base / "report.html", *base.glob("*.tlog-proof")]:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    say(_("== 1. init: ledger {origin} in {home}").format(origin=ORIGIN, home=root))
    led = Ledger.open(str(root), None, check=False)
    led.init(ORIGIN)
    led = Ledger.open(str(root), None)
    vkey = led.home.verifier().to_text()
    say("   " + _("verifier key (what an auditor needs): {key}").format(key=vkey))
    say(_("== 2. generate a month for region {region}: {persons} persons").format(
        region=REGION, persons=persons))
    month = generate_month(base / "data", persons=persons, seed=seed)
    lines = sum(1 for _line in month.open(encoding="utf-8"))
    say("   " + _("{file} ({records} records, vouchers under data/vouchers/)").format(
        file=month, records=lines))
    store = Intake(FileStore(led.home.archive_dir))
    say(_("== 3. ingest (one file = one atomic batch)"))
    rep = led.ingest([str(month)], store, derive=Deriver)[0]
    say("   " + _("appended {appended}, duplicates {duplicates}, rejected {rejected}").format(
        appended=rep.appended, duplicates=rep.duplicates, rejected=rep.rejected))
    rep = led.ingest([str(month)], store, derive=Deriver)[0]
    say("   " + _("sent again: appended {appended}, duplicates {duplicates} (a no-op)").format(
        appended=rep.appended, duplicates=rep.duplicates))
    say(_("== 4. checkpoint (C2SP signed note, Ed25519)"))
    cp = led.checkpoint()
    (base / "auditor-checkpoint.note").write_text(cp.note, encoding="utf-8")
    for line in cp.note.splitlines():
        say(f"   | {line}")
    say(_("== 5. verify"))
    res = led.verify()
    said = (_("verified: {entries} entries, {checkpoints} checkpoint(s)") if res.ok else
            _("NOT verified: {entries} entries, {checkpoints} checkpoint(s)"))
    say("   " + said.format(entries=res.entries_checked, checkpoints=res.checkpoints_checked))
    say(_("== 6. prove one benefit payment, verify it offline with the verifier key only"))
    target = f"BP-{PERIOD}-000000"
    entry, proof = led.prove(target)
    text = proof.marshal()
    (base / f"{target}.tlog-proof").write_text(text, encoding="utf-8")
    parsed = TLogProof.parse(text)
    assert parsed.extra is not None
    checked = verify_tlog_proof(parsed, entry_hash(parsed.extra), led.home.verifier(),
                                verify_inclusion, ORIGIN)
    say("   " + _("{record} is entry {index} of {size}: proof of {hashes} hashes verifies "
                  "({file})").format(record=target, index=parsed.index, size=checked.size,
                                     hashes=len(parsed.hashes),
                                     file=base / (target + ".tlog-proof")))
    say("   " + _("the record as the ledger holds it (personal data pseudonymised):"))
    say(f"   {json.dumps(entry.record, ensure_ascii=False)[:200]}…")
    _entry, clear = led.reveal(target, None, "demo-officer", "demo: check the payee account",
                               fields=["account"])
    say("   " + _("revealed from the vault, for a stated purpose (the reveal was logged): "
                  "{fields}").format(fields=sorted(clear)))
    say(_("== 7. plant one fault of every kind, reconcile as of {day}").format(day=FAULT_AS_OF))
    faults, statement = generate_faults(base / "data")
    rep = led.ingest([str(faults)], store, derive=Deriver)[0]
    stmt = ingest_statement(led, statement, "camt053", REGION, "income", vouchers=store)
    say("   " + _("{faults}: {records} records; {statement}: {entries} records").format(
        faults=faults.name, records=rep.appended, statement=statement.name,
        entries=stmt.appended))
    deaths = compare_list(led, faults.parent / DEATHS_FILE, source=_("civil affairs (demo)"))
    say("   " + _("bfa compare {file} --kind death: {persons} person(s) on the list ({encoding}), "
                  "kept as pseudonyms in the ledger (entry {seq})").format(
        file=DEATHS_FILE, persons=deaths.persons, encoding=deaths.encoding.upper(),
        seq=deaths.seqs[0]))
    pre = precheck(led, faults.parent / PROPOSED_FILE)
    held = _(", ").join(f"{_(HOLD_TEXT[r])} {n}" for r, n in pre.counts.items() if n)
    say("   " + _("bfa precheck {file} (before it goes to the bank): {lines} line(s), {clear} "
                  "clear, {held} to hold ({reasons}); recorded as {record}").format(
        file=PROPOSED_FILE, lines=pre.lines, clear=pre.clear, held=pre.held,
        reasons=held, record=pre.id))
    report = run_tracked(led, date.fromisoformat(FAULT_AS_OF)).report
    for line in render_text(report).splitlines():
        say(f"   | {line}")
    seen: dict[str, Break] = {}
    for b in report.breaks:
        seen.setdefault(b.code, b)
    for code, b in sorted(seen.items()):
        say(clip(f"   {b.id}  {code_label(code)}  {', '.join(b.records[:2])}: {b.text()}",
                 terminal_width() - 1))
    (base / "report.html").write_text(render_html(report), encoding="utf-8")
    say("   " + _("the report with charts, to open offline: {file}").format(
        file=base / "report.html"))
    say(_("== 8. work one break: four-eyes needs two people, each under their own account"))
    orphan = seen.get("ORPHAN_MOVEMENT")
    if orphan is not None:
        me = led.actor().identity
        state = resolve_break(led, orphan.id, None, "bank_error",
                              "bank credited another fund's account; returned on 12-02")
        say("   " + _("{who} resolves {id} ({code}, {severity}): {status}").format(
            who=me, id=orphan.id, code=code_label(orphan.code),
            severity=label("severity", "high"), status=label("status", state.status)))
        for calling in (None, "wang.fang"):
            try:
                approve_break(led, orphan.id, calling)
            except BfaError as e:
                if calling:
                    say("   " + _("{who} calling themselves {label} approves it too: refused "
                                  "({error})").format(who=me, label=repr(calling), error=e))
                else:
                    say("   " + _("{who} approves it too: refused ({error})").format(
                        who=me, error=e))
        say("   " + _("this demo's home is private: one account. A second officer approves "
                      "from a home shared by an operating-system group or with their own "
                      "PostgreSQL role; every step is a control entry in the ledger"))
    led.checkpoint()
    say(_("== 9. tamper with a copy of the database: change one amount"))
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
        say("   " + _("caught: [{code}] {message}").format(code=code_label(problem.code,
                                                                            "problem"),
                                                             message=problem.message))
    clean = led.verify().ok
    say("   " + (_("'bfa verify' on the copy exits 3; the real ledger still verifies") if clean
                 else _("'bfa verify' on the copy exits 3; the real ledger does NOT verify")))
    bad.close()
    archive_ok = _archive_steps(led, base, store.store, report.breaks, say)
    led.close()
    missed = sorted(PLANTED_CODES - set(seen))
    if missed:
        say("   " + _("NOT FOUND: planted faults {codes}").format(
            codes=", ".join(code_label(c) for c in missed)))
    say("   " + _("a supervisor checks the bundle with: {command}").format(
        command=f"bfa bundle verify {base / 'bundle'} --key {base / 'verifier.key'}"))
    say(_("== done. Try: {command}").format(
        command=f"bfa show {target} --entry --home {root}"))
    return not missed and not res.ok and clean and archive_ok


def _archive_steps(led: Ledger, base: Path, files: FileStore, breaks: Sequence[Break],
                   say: Callable[[str], None]) -> bool:
    """Steps 10 and 11: audit the archive with one file damaged on purpose (caught, then
    restored from the original), and a proof bundle of one break checked offline."""
    say(_("== 10. the archive: damage one stored voucher file, audit, restore"))
    victim = "FX-CA-UNPAID-FR"
    rec = led.entry(victim, "archive").record
    stored = files.path_of(str(rec["sha256"]))
    stored.chmod(0o600)  # stored read-only: a deliberate act
    stored.write_bytes(b"scanned again, by mistake")
    audited = audit(led, files)
    caught = [p for p in audited.changed if victim in p.records]
    say("   " + _("audit {id}: {files} files re-hashed, {changed} changed ({records}), "
                  "{missing} missing").format(
        id=audited.id, files=audited.files, changed=len(audited.changed),
        records=", ".join(r for p in caught for r in p.records),
        missing=len(audited.missing)))
    after = run_reconcile(led, date.fromisoformat(FAULT_AS_OF))
    fixity = [b for b in after.breaks if b.code == "FIXITY_FAILURE"]
    for b in fixity:
        say(clip(f"   {code_label(b.code)} {b.id} ({label('severity', 'high')}): {b.text()}",
                 terminal_width() - 1))
    restored = restore(led, files, base / "data" / str(rec["file"]))
    again = audit(led, files)
    say("   " + _("restored from the original ({id}); audit {audit}: {problems} "
                  "problem(s)").format(id=restored.id, audit=again.id,
                                       problems=again.problems))
    say(_("== 11. a proof bundle of one break, for a supervisor, verified offline"))
    unsettled = next((b for b in breaks if b.code == "UNSETTLED_EVENT"
                      and "FX-CA-UNPAID" in b.records), None)
    if unsettled is None:
        return False
    led.checkpoint()
    (base / "verifier.key").write_text(led.home.verifier().to_text() + "\n", encoding="utf-8")
    bundle = base / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    made = export_bundle(led, files, bundle, Scope(breaks=(unsettled.id,)),
                         as_of=date.fromisoformat(FAULT_AS_OF))
    say("   " + _("{command}: {entries} entries, {vouchers} voucher file(s), {breaks} "
                  "finding(s)").format(
        command=f"bfa bundle export --break {unsettled.id} --out {bundle}",
        entries=made.entries, vouchers=made.vouchers, breaks=made.breaks))
    report = verify_bundle(bundle, led.home.verifier())
    names = [v.name() for v in report.verdicts]
    cols = max([12, *map(width, names)])
    for v, name in zip(report.verdicts, names, strict=True):
        mark = {True: "ok  ", False: "FAIL", None: "-   "}[v.ok]
        say(f"   {mark} {pad(name, cols)} {clip(v.text(), 80)}")
    return bool(caught) and bool(fixity) and again.problems == 0 and report.ok


# -- faults: one of every break code the reconciler reports -------------------------------

FAULT_AS_OF = "2026-12-31"

PLANTED_CODES = frozenset({
    "UNSETTLED_EVENT", "ORPHAN_MOVEMENT", "AMOUNT_MISMATCH", "LATE_SETTLEMENT",
    "AMBIGUOUS_MATCH", "MISSING_VOUCHER", "DUPLICATE_PAYMENT", "PAYMENT_AFTER_TERMINATION",
    "PAYEE_MISMATCH", "RETURNED_PAYMENT", "ACCOUNT_RULE_VIOLATION", "STATEMENT_BALANCE_BREAK",
    "VOUCHER_DEFECT", "PAYMENT_WITHOUT_APPROVAL", "OVERPAYMENT", "CONTRIBUTION_WITHOUT_ENROLMENT",
    "DUPLICATE_ENROLMENT", "PAYMENT_AFTER_DEATH", "DEATH_NOT_RECORDED", "CERTIFICATION_OVERDUE",
    "TRANSFER_UNMATCHED",
})
"""The break codes :func:`generate_faults` plants, one fault each."""
_T = "2026-11-{d:02d}T10:00:00+08:00"


DEATHS_FILE = f"deaths-{PERIOD}.csv"
"""The death list :func:`generate_faults` writes beside the faults (``bfa compare``)."""
PROPOSED_FILE = "payments-2026-12.jsonl"
"""December's proposed payment batch :func:`generate_faults` writes (``bfa precheck``)."""


def _fault_records(out: Path) -> tuple[list[dict[str, Any]], list[tuple[str, str]],
                                        list[dict[str, Any]]]:
    """Records that each plant one kind of break (ids start with ``FX-``), the death list
    that makes two of them (``(person_id, date)`` lines), and December's proposed
    payments, of which precheck holds all but one."""
    rng = random.Random(7)
    recs: list[dict[str, Any]] = []
    deaths: list[tuple[str, str]] = []
    proposed: list[dict[str, Any]] = []

    def propose(pid: str, account: str, amount: str = "3000.00") -> None:
        proposed.append({"type": "business.benefit_payment",
                         "id": f"BP-2026-12-{len(proposed) + 1:03d}", "region": REGION,
                         "occurred_at": "2026-12-18T10:00:00+08:00", "person_id": pid,
                         "insurance": "pension", "period": "2026-12", "amount": amount,
                         "account": account})
    emp1, emp2, emp3 = (f"91440100MX{rng.randint(10**7, 10**8 - 1)}" for _ in range(3))

    def assessment(aid: str, emp: str, amount: str, due: str = "2026-11-15") -> None:
        recs.append({"type": "business.contribution_assessment", "id": aid, "region": REGION,
                     "occurred_at": _T.format(d=5), "employer_id": emp, "insurance": "pension",
                     "period": PERIOD, "amount": amount, "due_date": due})
        recs.append(_voucher(out, "fiscal_receipt", f"{aid}-FR", [aid], None, _T.format(d=6)))

    def movement(kind: str, mid: str, amount: str, day: int, allocs: list[tuple[str, str]],
                 fund: str, **extra: Any) -> None:
        rec: dict[str, Any] = {
            "type": f"finance.{kind}", "id": mid, "region": REGION,
            "occurred_at": _T.format(d=day), "amount": amount,
            "value_date": f"2026-11-{day:02d}", "bank_ref": f"FXREF{rng.randint(10**9, 10**10)}",
            "fund_account": fund, **extra}
        if allocs:
            rec["allocations"] = [{"event": e, "amount": a} for e, a in allocs]
        recs.append(rec)
        recs.append(_voucher(out, "accounting_voucher", f"{mid}-AV", [mid], None, _T.format(d=day)))

    def pensioner(tag: str, account: str, pay_account: str | None = None) -> tuple[str, str]:
        pid = _person_id(rng)
        recs.append({"type": "business.benefit_approval", "id": f"FX-BA-{tag}", "region": REGION,
                     "occurred_at": _T.format(d=2), "person_id": pid, "insurance": "pension",
                     "benefit": "basic_pension", "monthly_amount": "3000.00",
                     "start_period": PERIOD, "account": account})
        recs.append(_voucher(out, "approval_document", f"FX-BA-{tag}-AD", [f"FX-BA-{tag}"], None,
                             _T.format(d=2)))
        return pid, pay_account or account

    def benefit(bid: str, pid: str, account: str, amount: str = "3000.00") -> None:
        recs.append({"type": "business.benefit_payment", "id": bid, "region": REGION,
                     "occurred_at": _T.format(d=20), "person_id": pid, "insurance": "pension",
                     "period": PERIOD, "amount": amount, "account": account})

    def paid(mid: str, bids: list[str], fund: str = "expenditure",
             amount: str = "3000.00") -> None:
        movement("payment", mid, _money(Decimal(amount) * len(bids)), 20,
                 [(b, amount) for b in bids], fund)
        recs.append(_voucher(out, "bank_slip", f"{mid}-BS", [mid], None, _T.format(d=20)))

    # UNSETTLED_EVENT: an assessment nobody paid
    assessment("FX-CA-UNPAID", emp1, "5000.00")
    # ORPHAN_MOVEMENT: money in with no business event behind it
    movement("collection", "FX-COL-ORPHAN", "777.77", 12, [], "income", payer_id=emp3)
    # AMOUNT_MISMATCH: allocated 3456.68 to an event of 3456.78
    assessment("FX-CA-SHORT", emp1, "3456.78")
    movement("collection", "FX-COL-SHORT", "3456.68", 12, [("FX-CA-SHORT", "3456.68")],
             "income", payer_id=emp1)
    # LATE_SETTLEMENT: due 2026-10-15, paid 2026-11-25
    assessment("FX-CA-LATE", emp1, "800.00", due="2026-10-15")
    movement("collection", "FX-COL-LATE", "800.00", 25, [("FX-CA-LATE", "800.00")], "income",
             payer_id=emp1)
    # AMBIGUOUS_MATCH: one unallocated collection fits two equal assessments
    assessment("FX-CA-AMB-1", emp2, "1200.00")
    assessment("FX-CA-AMB-2", emp2, "1200.00")
    movement("collection", "FX-COL-AMB", "1200.00", 14, [], "income", payer_id=emp2)
    # MISSING_VOUCHER: an enrollment without its application form
    recs.append({"type": "business.enrollment", "id": "FX-EN-NOFORM", "region": REGION,
                 "occurred_at": _T.format(d=3), "person_id": _person_id(rng),
                 "insurance": "pension", "effective_date": "2026-11-01"})
    # VOUCHER_DEFECT: a second fiscal receipt whose file is a PDF but is declared as OFD
    defect = _voucher(out, "fiscal_receipt", "FX-CA-LATE-FR2", ["FX-CA-LATE"], None,
                      _T.format(d=6))
    recs.append({**defect, "media_type": "application/ofd"})
    # DUPLICATE_PAYMENT: one person paid twice for November
    pid, acct = pensioner("DUP", _account(rng))
    benefit("FX-BP-DUP-1", pid, acct)
    benefit("FX-BP-DUP-2", pid, acct)
    paid("FX-PAY-DUP", ["FX-BP-DUP-1", "FX-BP-DUP-2"])
    propose(pid, acct)  # December twice in the batch
    propose(pid, acct)
    # PAYMENT_AFTER_TERMINATION: paid for November after death in October
    pid, acct = pensioner("TERM", _account(rng))
    recs.append({"type": "business.termination", "id": "FX-TERM", "region": REGION,
                 "occurred_at": _T.format(d=4), "person_id": pid, "insurance": "pension",
                 "effective_date": "2026-10-31", "reason": "death"})
    benefit("FX-BP-TERM", pid, acct)
    paid("FX-PAY-TERM", ["FX-BP-TERM"])
    # PAYEE_MISMATCH: paid to another account than the approved one
    pid, other = pensioner("PAYEE", _account(rng), _account(rng))
    benefit("FX-BP-PAYEE", pid, other)
    paid("FX-PAY-PAYEE", ["FX-BP-PAYEE"])
    # RETURNED_PAYMENT: the bank sent the money back and nobody paid again
    pid, acct = pensioner("RET", _account(rng))
    benefit("FX-BP-RET", pid, acct)
    paid("FX-PAY-RET", ["FX-BP-RET"])
    propose(pid, acct)  # approved, alive: clear
    movement("return", "FX-RET", "3000.00", 22, [("FX-BP-RET", "3000.00")], "expenditure",
             returns="FX-PAY-RET", reason="account closed")
    # ACCOUNT_RULE_VIOLATION: a benefit paid out of the income account
    pid, acct = pensioner("INCOME", _account(rng))
    benefit("FX-BP-INCOME", pid, acct)
    paid("FX-PAY-INCOME", ["FX-BP-INCOME"], fund="income")
    # PAYMENT_WITHOUT_APPROVAL: a pension paid to someone nobody approved
    pid, acct = _person_id(rng), _account(rng)
    benefit("FX-BP-NOAPPROVAL", pid, acct)
    paid("FX-PAY-NOAPPROVAL", ["FX-BP-NOAPPROVAL"])
    propose(pid, acct)  # nobody approved
    # OVERPAYMENT: 9,000.00 paid against 1,000.00 approved a month
    pid, acct = pensioner("OVER", _account(rng))
    recs[-2]["monthly_amount"] = "1000.00"
    benefit("FX-BP-OVER", pid, acct, "9000.00")
    paid("FX-PAY-OVER", ["FX-BP-OVER"], amount="9000.00")
    propose(pid, acct, "9000.00")  # above the 1,000.00 approved
    # CONTRIBUTION_WITHOUT_ENROLMENT: a contribution assessed for someone never enrolled
    assessment("FX-CA-NOTENROLLED", emp1, "600.00")
    recs[-2]["person_id"] = _person_id(rng)
    movement("collection", "FX-COL-NOTENROLLED", "600.00", 12,
             [("FX-CA-NOTENROLLED", "600.00")], "income", payer_id=emp1)
    # DUPLICATE_ENROLMENT: enrolled in pension here and in Shenzhen at once, no transfer
    pid = _person_id(rng)
    for eid, region, effective in (("FX-EN-HERE", REGION, "2026-01-01"),
                                   ("FX-EN-SZ", "440300", "2026-06-01")):
        recs.append({"type": "business.enrollment", "id": eid, "region": region,
                     "occurred_at": _T.format(d=3), "person_id": pid, "insurance": "pension",
                     "effective_date": effective})
        recs.append(_voucher(out, "application_form", f"{eid}-AF", [eid], None,
                             _T.format(d=3)))
    # CERTIFICATION_OVERDUE: a pension since 2024, last certified (资格认证) in June 2025
    pid, acct = pensioner("CERT", _account(rng))
    recs[-2]["start_period"] = "2024-01"
    recs.append({"type": "business.certification", "id": "FX-CE-CERT", "region": REGION,
                 "occurred_at": "2025-06-10T10:00:00+08:00", "person_id": pid,
                 "insurance": "pension", "method": "face", "certified_on": "2025-06-10"})
    benefit("FX-BP-CERT", pid, acct)
    paid("FX-PAY-CERT", ["FX-BP-CERT"])
    # PAYMENT_AFTER_DEATH, DEATH_NOT_RECORDED: civil affairs reports a death on 2026-10-08
    # (the death list, compared with 'bfa compare'); nobody terminated the pension and
    # November was paid
    pid, acct = pensioner("DEAD", _account(rng))
    benefit("FX-BP-DEAD", pid, acct)
    paid("FX-PAY-DEAD", ["FX-BP-DEAD"])
    deaths.append((pid, "2026-10-08"))
    propose(pid, acct)  # dead
    # TRANSFER_UNMATCHED: 5,000.00 transferred in from Shenzhen in September, where the
    # ledger holds no transfer out
    recs.append({"type": "business.transfer_in", "id": "FX-TI-SZ", "region": REGION,
                 "occurred_at": "2026-09-15T10:00:00+08:00", "person_id": _person_id(rng),
                 "insurance": "pension", "from_region": "440300", "amount": "5000.00"})
    return recs, deaths, proposed


def _statement_xml(account: str) -> str:
    """A camt.053 statement whose balances do not add up (STATEMENT_BALANCE_BREAK)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>FX-MSG</MsgId><CreDtTm>2026-11-30T08:00:00+08:00</CreDtTm></GrpHdr>
<Stmt><Id>FX-STMT-2026-11-30</Id><CreDtTm>2026-11-30T08:00:00+08:00</CreDtTm>
<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">10000.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">10900.00</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>
<Ntry><Amt Ccy="CNY">500.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2026-11-30</Dt></BookgDt><ValDt><Dt>2026-11-30</Dt></ValDt>
<AcctSvcrRef>FX-BANK-1</AcctSvcrRef></Ntry>
</Stmt></BkToCstmrStmt></Document>
"""


def generate_faults(out: Path) -> tuple[Path, Path]:
    """Write ``faults-2026-11.jsonl``, a camt.053 statement that breaks its balance, and
    the death list :data:`DEATHS_FILE` (``person_id,date``, with a header, in GB18030 as
    a public security bureau might send it)."""
    (out / "vouchers").mkdir(parents=True, exist_ok=True)
    path = out / f"faults-{PERIOD}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        recs, deaths, proposed = _fault_records(out)
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    lines = ["身份证号码,死亡日期", *(f"{pid},{day}" for pid, day in deaths)]
    (out / DEATHS_FILE).write_bytes(("\r\n".join(lines) + "\r\n").encode("gb18030"))
    (out / PROPOSED_FILE).write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in proposed), encoding="utf-8")
    stmt = out / "statement-2026-11-30.xml"
    stmt.write_text(_statement_xml("44001234567890"), encoding="utf-8")
    return path, stmt
