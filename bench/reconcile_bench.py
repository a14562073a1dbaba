"""Reconciliation benchmarks: a full reconcile against one hash join, and the nightly run.

Run it as ``.venv/bin/python -m bench.reconcile_bench`` (see ``bench/RECONCILE.md``).

Benchmark 1 (full reconcile versus one hash join). A generated month (October 2026)
with a scale factor ``--events N``: business events (mostly contribution assessments
and benefit payments, a few refunds and transfers out), their movements (one
collection per assessment, one payment per 1000 benefit payments, one refund or
transfer per refund or transfer out, one sweep of the income account), vouchers
(a fiscal receipt per assessment, a bank slip and an accounting voucher per payment
batch, daily accounting vouchers over the other movements) and some approvals and
terminations. The derived ``rc_*`` tables are loaded directly (``Store.copy_rows``:
COPY on PostgreSQL, executemany on SQLite), with rows exactly as
:mod:`reconcile.matching._refresh` would decode them, keyed by negative ``seq`` values, below
the ledger's own (so the later real entries never collide and come after them); the watermark
``reconcile_seq`` is set to the ledger's size, so the refresh has nothing to do. A
few faults are planted so that every main break code occurs. Then, in the same
database: ``run_reconcile(led, as_of)`` (ours) against the settlement rule written
by hand as one SQL statement, events hash-joined to their aggregated allocations,
fetched completely (the baseline; best of two runs, one before and one after ours).
Target: ours <= 10 x baseline.

Benchmark 2 (nightly after 1% new records), two nights in a row. After the full run,
new events (1% of the month's) and their movements go through ``bfa ingest``'s path
(``Ledger.ingest_records`` with ``reconcile.Deriver``: the derived rows are written as
the records are appended, ADR 0018; untimed, its time is logged); then
what the nightly does after verifying — ``run_tracked`` (the run with the workflow
states of its breaks recorded in its transaction; in a commit before it,
``run_reconcile`` then ``apply_states_detail``), the delta against the previous run and
the full JSON report — is timed against the same steps after the full run. The first
night's records come with the vouchers the month gives them, so what is measured is
mostly the matching.
The second night's come without vouchers, so nearly every new event is a finding (a
break or an expected item): the per-finding costs at their worst (every open finding
is judged, built, given its workflow state and rendered again in each night's full
report). Target: <= 10% each.

Benchmark 3 (the derived tables' check against the entries, ADR 0032). After the nights,
in the same database: the check of every derived row of the ledger's real entries (the
nights' records: the month's rows are loaded without entries, below ``seq`` 0, so they are
not part of it) — what ``bfa verify`` adds — timed against two baselines over the same
entries: the raw reads the check cannot avoid (every leaf and every stored row of those
entries, nothing decoded or compared), and a full refresh of their derived rows from the
entries (the rows deleted, the watermark set to 0, ``refresh``; the last step, since it
leaves the loaded month's references resolved anew). The nightly's share of a 30-night
rotation is a thirtieth of the check.

PostgreSQL databases are created fresh as ``bfa_rbench_<random>`` through the admin
URL (``BFA_BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and dropped at the end, also after an error. SQLite ledgers live in a temporary
directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import make_url

from ledger import Ledger
from ledger._store import Store
from reconcile import Deriver
from reconcile.matching import _tables as t
from reconcile.matching._refresh import refresh
from reconcile.matching._run import run_reconcile

try:  # the check of the derived tables (ADR 0032)
    from reconcile.matching._derived import DERIVED, check_spans, watermark
except ImportError:  # an older commit, benchmarked for comparison
    check_spans = None  # type: ignore[assignment]

try:  # the nightly's own path since the runs record their breaks' states themselves
    from reconcile import run_tracked as _run_tracked
except ImportError:  # an older commit, benchmarked for comparison
    _run_tracked = None  # type: ignore[assignment]
from reconcile.matching._units import epoch_day
from reconcile.reports._nightly import _delta

try:  # the runs check the derived rows they use against the entries (ADR 0032) ...
    from reconcile.matching import _run as _runs
    from reconcile.matching._derived import Checked

    def _no_derived_check(*_args: object, **_kw: object) -> tuple[Checked, None]:
        return Checked(), None

    # ... but the month here is loaded straight into the derived tables, with no entries
    # and keyed below 0, which every run would rightly call planted (and rebuild away).
    # Benchmarks 1 and 2 measure matching; benchmark 3 measures the check on its own.
    _runs._check_derived = _no_derived_check  # type: ignore[assignment]
except ImportError:  # an older commit, benchmarked for comparison
    pass
from reconcile.reports._render import render_json
from reconcile.workflow._workflow import apply_states_detail

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ORIGIN = "bench.example/reconcile"
DEFAULT_EVENTS = {"postgresql": 2_000_000, "sqlite": 1_000_000}
Ref = tuple[str, str, int]
"""A voucher ref: the id it names, that record's domain and ``seq``."""

SEQ_BASE = -(10**12)
"""Loaded rows get ``seq`` from here on: below every entry the ledger will append (a real
ledger's derived rows are older than the entries appended after them; an incremental
run takes the rows from the last run's watermark on as new)."""
MONTH = "2026-10"
AS_OF = date(2026, 11, 23)
"""Judging date: the month's windows (due 15 October + 30 days) have closed."""
PAYMENT_BATCH = 1000
CHUNK = 50_000
TARGET_FULL = 10.0
TARGET_NIGHTLY = 0.10
NIGHTLY_SHARE = 0.01

BASELINE_SQL = (
    "SELECT e.*, a.total FROM rc_events e "
    "LEFT JOIN (SELECT event_id, SUM(amount_fen) AS total FROM rc_allocations "
    "GROUP BY event_id) a ON a.event_id = e.record_id "
    "WHERE a.total IS NULL OR a.total <> e.amount_fen"
)
"""The settlement rule by hand: events whose allocations do not add up to them."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _day(d: int) -> str:
    return f"{MONTH}-{d:02d}"


def _hash(rid: str) -> str:
    return hashlib.sha256(rid.encode()).hexdigest()


# --- the generated month ---------------------------------------------------------------

@dataclass
class Rows:
    """One chunk of rows per derived table (tuples in the table's column order)."""

    records: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    movements: list[tuple[Any, ...]] = field(default_factory=list)
    allocations: list[tuple[Any, ...]] = field(default_factory=list)
    vouchers: list[tuple[Any, ...]] = field(default_factory=list)
    refs: list[tuple[Any, ...]] = field(default_factory=list)
    persons: list[tuple[Any, ...]] = field(default_factory=list)

    def size(self) -> int:
        return len(self.records) + len(self.allocations) + len(self.refs)

    def tables(self) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
        pairs = ((t.records, self.records), (t.events, self.events),
                 (t.movements, self.movements), (t.allocations, self.allocations),
                 (t.vouchers, self.vouchers), (t.voucher_refs, self.refs),
                 (t.person_events, self.persons))
        return [(tb.name, [c.name for c in tb.columns], rows) for tb, rows in pairs]


class Month:
    """Generates the derived rows of one month, chunk by chunk (deterministic per seed).

    Faults planted (a handful each, spread over the month): assessments with no
    collection (UNSETTLED_EVENT), under- and over-allocated collections
    (AMOUNT_MISMATCH), a payment batch whose allocations do not add up to it
    (AMOUNT_MISMATCH), late collections (LATE_SETTLEMENT), collections allocated to
    events the ledger does not hold (ORPHAN_MOVEMENT), two equal assessments of one
    employer with one unallocated collection (AMBIGUOUS_MATCH), assessments without
    their fiscal receipt (MISSING_VOUCHER), receipts with a wrong amount
    (AMOUNT_MISMATCH), duplicate benefit payments (DUPLICATE_PAYMENT), payments
    after a termination (PAYMENT_AFTER_TERMINATION) and to another account than the
    approved one (PAYEE_MISMATCH). About 1% of the collections are unallocated and
    settle their assessment by the heuristic match (no finding).
    """

    def __init__(self, events: int, seed: int = 20261123) -> None:
        self.n = events
        self.rng = random.Random(seed)
        self.seq = SEQ_BASE
        self.employers = max(20, events // 50)
        self.fault_every = max(100, events // 16)  # per kind: about 7 of each fault
        self.kind_n: Counter[str] = Counter()
        self.planted: Counter[str] = Counter()
        self.rows = Rows()
        self.pending_bp: list[tuple[str, int]] = []
        self.income_in: Counter[str] = Counter()
        # seq of each event not yet allocated (what the refresh resolves event_seq to)
        self.event_seqs: dict[str, int] = {}
        self.daily_movements: dict[str, list[Ref]] = {}

    # -- row builders -------------------------------------------------------------------
    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _record(self, domain: str, kind: str, rid: str, day: int, hour: int = 10) -> int:
        seq = self._next_seq()
        occurred = f"{_day(day)}T{hour:02d}:00:00+08:00"
        self.rows.records.append((seq, domain, kind, rid, "440100", occurred, epoch_day(occurred),
                                  None, False, rid, _hash(rid), seq))
        return seq

    def _event(self, rid: str, kind: str, amount: int, day: int, due: int | None,
               party: str | None, person: str | None, account: str | None,
               insurance: str | None) -> int:
        seq = self._record("business", kind, rid, day)
        self.event_seqs[rid] = seq
        occurred_day = epoch_day(_day(day))
        # benefit NULL (the recurring benefit); a transfer out to a region this ledger does
        # not hold; the region of every record
        self.rows.events.append((seq, rid, kind, amount, due,
                                 occurred_day if due is None else due, party, person, account,
                                 insurance, MONTH, False, None,
                                 "440300" if kind == "transfer_out" else None, "440100"))
        return seq

    def _movement(self, rid: str, kind: str, settles: str | None, amount: int, value: str,
                  allocs: list[tuple[str, int]], *, payer: str | None = None,
                  payee: str | None = None, fund: str | None = None,
                  from_acc: str | None = None, to_acc: str | None = None) -> int:
        """A movement valued on ``value`` (``YYYY-MM-DD``), recorded that day."""
        seq = self._next_seq()
        occurred = f"{value}T15:00:00+08:00"
        self.rows.records.append((seq, "finance", kind, rid, "440100", occurred,
                                  epoch_day(occurred), None, False, rid, _hash(rid), seq))
        self.rows.movements.append((seq, rid, kind, settles, amount, epoch_day(value),
                                    value[:7], f"BANK{seq}", payer, payee, fund, from_acc,
                                    to_acc, None, bool(allocs), False, sum(f for _, f in allocs),
                                    "440300" if kind == "transfer" else None))
        for pos, (event, fen) in enumerate(allocs):
            self.rows.allocations.append((seq, pos, rid, event, fen,
                                          self.event_seqs.pop(event, None), kind,
                                          epoch_day(value), False))
        if fund == "income" and kind == "collection":
            self.income_in[value[:7]] += amount
        self.daily_movements.setdefault(value, []).append((rid, "finance", seq))
        return seq

    def _voucher(self, rid: str, kind: str, amount: int | None, refs: list[Ref],
                 day: int) -> None:
        seq = self._record("archive", kind, rid, day, 17)
        unique = dict.fromkeys(refs)
        self.rows.vouchers.append((seq, rid, kind, amount, False, len(unique)))
        for ref, domain, target in unique:
            self.rows.refs.append((seq, ref, rid, target if domain == "business" else None,
                                   target if domain == "finance" else None))

    def _fault(self, k: int, offset: int) -> bool:
        """Plant fault ``offset`` in the ``k``-th record of a kind (about 7 per fault)."""
        return k % self.fault_every == offset

    # -- kinds --------------------------------------------------------------------------
    def _assessment(self, i: int) -> None:
        rng = self.rng
        rid = f"CA-{i:010d}"
        self.kind_n["ca"] += 1
        k = self.kind_n["ca"]
        amount = rng.randint(20_000, 3_000_000)
        employer = f"ps1:emp{rng.randrange(self.employers):07d}"
        due = epoch_day(_day(15))
        ca = self._event(rid, "contribution_assessment", amount, 5, due, employer, None, None,
                         "pension")
        if not self._fault(k, 7):
            receipt = amount + 100 if self._fault(k, 11) else amount
            self.planted["AMOUNT_MISMATCH"] += receipt != amount
            self._voucher(f"FR-{i:010d}", "fiscal_receipt", receipt, [(rid, "business", ca)], 16)
        else:
            self.planted["MISSING_VOUCHER"] += 1
        col = f"COL-{i:010d}"
        value = _day(rng.randint(8, 14))
        allocs = [(rid, amount)]
        paid = amount
        if self._fault(k, 1):
            self.planted["UNSETTLED_EVENT"] += 1
            return
        if self._fault(k, 2):
            paid = amount - 5_000
            allocs = [(rid, paid)]
            self.planted["AMOUNT_MISMATCH"] += 1
        elif self._fault(k, 3):
            paid = amount + 5_000
            allocs = [(rid, paid)]
            self.planted["AMOUNT_MISMATCH"] += 1
        elif self._fault(k, 4):
            value = "2026-11-20"  # 36 days after the due date: past late_days
            self.planted["LATE_SETTLEMENT"] += 1
        elif self._fault(k, 5):
            allocs = [(f"CA-MISSING-{i:010d}", amount)]
            self.planted["ORPHAN_MOVEMENT"] += 1
            self.planted["UNSETTLED_EVENT"] += 1
        elif self._fault(k, 6):
            # a second assessment of the same employer and amount: the unallocated
            # collection matches both
            twin = f"CA-{i:010d}-B"
            tw = self._event(twin, "contribution_assessment", amount, 5, due, employer, None,
                             None, "pension")
            self._voucher(f"FR-{i:010d}-B", "fiscal_receipt", amount, [(twin, "business", tw)],
                          16)
            allocs = []
            self.planted["AMBIGUOUS_MATCH"] += 1
        elif rng.random() < 0.01:
            allocs = []  # settles by the heuristic match
        self._movement(col, "collection", "contribution_assessment", paid, value, allocs,
                       payer=employer, fund="income")

    def _benefit_payment(self, i: int) -> None:
        rng = self.rng
        rid = f"BP-{i:010d}"
        self.kind_n["bp"] += 1
        k = self.kind_n["bp"]
        amount = rng.randint(150_000, 900_000)
        person = f"ps1:per{i:010d}"
        account = f"ps1:acc{i:010d}"
        if self._fault(k, 8) and self.rows.events:
            prev = self.rows.events[-1]
            if prev[2] == "benefit_payment":
                person, account = str(prev[7]), str(prev[8])
                self.planted["DUPLICATE_PAYMENT"] += 1
        self._event(rid, "benefit_payment", amount, 20, None, None, person, account, "pension")
        if not person.endswith(f"{i:010d}"):  # a duplicate payment: approved already
            pass
        else:  # every pensioner is approved (the entitlement rules judge every payment)
            approved = f"ps1:other{i:010d}" if self._fault(k, 9) else account
            self.planted["PAYEE_MISMATCH"] += approved != account
            seq = self._record("business", "benefit_approval", f"BA-{i:010d}", 2)
            self.rows.persons.append((seq, f"BA-{i:010d}", "benefit_approval", person,
                                      "pension", approved, "2025-01", None, False, amount,
                                      "440100", epoch_day(_day(2))))
            self._voucher(f"AD-{i:010d}", "approval_document", None,
                          [(f"BA-{i:010d}", "business", seq)], 2)
        if self._fault(k, 10):
            seq = self._record("business", "termination", f"TE-{i:010d}", 3)
            self.rows.persons.append((seq, f"TE-{i:010d}", "termination", person, "all",
                                      None, "2026-09", epoch_day("2026-08-25"), False, None,
                                      "440100", epoch_day(_day(3))))
            self.planted["PAYMENT_AFTER_TERMINATION"] += 1
        self.pending_bp.append((rid, amount))
        if len(self.pending_bp) >= PAYMENT_BATCH:
            self._payment_batch(i)

    def _payment_batch(self, i: int) -> None:
        if not self.pending_bp:
            return
        batch, self.pending_bp = self.pending_bp, []
        pay = f"PAY-{i:010d}"
        total = sum(a for _, a in batch)
        self.kind_n["batch"] += 1
        if self.kind_n["batch"] % 50 == 3:
            total += 1  # allocations do not add up to the movement
            self.planted["AMOUNT_MISMATCH"] += 1
        ps = self._movement(pay, "payment", "benefit_payment", total, _day(20), batch,
                       fund="expenditure")
        self._voucher(f"BS-{i:010d}", "bank_slip", total, [(pay, "finance", ps)], 21)
        self._voucher(f"AVP-{i:010d}", "accounting_voucher", None, [(pay, "finance", ps)], 21)

    def _refund(self, i: int) -> None:
        rid = f"BR-{i:010d}"
        amount = self.rng.randint(5_000, 300_000)
        payer = f"ps1:per{i:010d}"
        account = f"ps1:acc{i:010d}"
        br = self._event(rid, "refund", amount, 8, None, payer, None, None, "pension")
        self._voucher(f"AVR-{i:010d}", "accounting_voucher", None, [(rid, "business", br)], 9)
        mov = f"FRF-{i:010d}"
        self._movement(mov, "refund", "refund", amount, _day(9), [(rid, amount)],
                       payee=account, fund="expenditure")

    def _transfer_out(self, i: int) -> None:
        rid = f"TO-{i:010d}"
        amount = self.rng.randint(500_000, 9_000_000)
        to = self._event(rid, "transfer_out", amount, 15, None, None, f"ps1:per{i:010d}", None,
                         "pension")
        self._voucher(f"ADT-{i:010d}", "approval_document", None, [(rid, "business", to)], 16)
        mov = f"TR-{i:010d}"
        self._movement(mov, "transfer", "transfer_out", amount, _day(16), [(rid, amount)],
                       fund="expenditure")

    def _close(self) -> None:
        self._payment_batch(self.n)
        for month, total in sorted(self.income_in.items()):
            # the income account nets to zero: one sweep per month to fiscal_special
            last = "2026-10-31" if month == MONTH else "2026-11-30"
            self._movement(f"SW-{month}", "sweep", None, total, last, [], from_acc="income",
                           to_acc="fiscal_special")
        for value, movs in sorted(self.daily_movements.items()):
            if value[:7] == MONTH:  # the daily accounting voucher of the movements
                self._voucher(f"AVD-{value}", "accounting_voucher", None, movs,
                              int(value[8:10]))

    def chunks(self) -> Iterator[Rows]:
        """The month's rows, a chunk at a time (the last chunk closes the month)."""
        for i in range(1, self.n + 1):
            r = i % 100
            if r < 45:
                self._assessment(i)
            elif r < 98:
                self._benefit_payment(i)
            elif r < 99:
                self._refund(i)
            else:
                self._transfer_out(i)
            if self.rows.size() >= CHUNK:
                out, self.rows = self.rows, Rows()
                yield out
        self._close()
        yield self.rows
        self.rows = Rows()


def load_month(store: Store, events: int) -> tuple[dict[str, int], Counter[str]]:
    """Load the derived tables directly; set the watermark to the ledger's size."""
    month = Month(events)
    counts: Counter[str] = Counter()
    with store.writer() as conn:
        for rows in month.chunks():
            for name, cols, chunk in rows.tables():
                store.copy_rows(conn, name, cols, chunk)
                counts[name] += len(chunk)
        size = store.head(conn)[0]
        store.set_meta(conn, t.WATERMARK_KEY, str(size))
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    return dict(counts), month.planted


# --- the nightly's new records (through the real ledger path) -----------------------------

def _person_id(rng: random.Random) -> str:
    """An 18-character ID in the GB 11643 layout with a valid check character."""
    body = f"440100{rng.randint(1950, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body += f"{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _voucher_record(kind: str, vid: str, refs: list[str], day: int,
                    amount: int | None = None) -> dict[str, Any]:
    """An archive record as an upstream archive sends it (the file is not kept here)."""
    body = f"{kind} {vid}".encode()
    rec: dict[str, Any] = {
        "type": f"archive.{kind}", "id": vid, "region": "440100",
        "occurred_at": f"{_day(day)}T17:00:00+08:00", "file": f"{vid}.pdf",
        "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
        "media_type": "application/pdf", "retention": "30y", "refs": refs}
    if amount is not None:
        rec["amount"] = _yuan(amount)
    return rec


def nightly_records(events: int, seed: int = 20261124, tag: str = "N",
                    vouchers: bool = False) -> list[dict[str, Any]]:
    """``events`` new business events of the month with their movements (interchange);
    ids start with ``tag`` (another tag: another night's records). With ``vouchers``,
    also the vouchers the month gives such records (a fiscal receipt per assessment, a
    bank slip and an accounting voucher per payment batch, a daily accounting voucher
    over each day's movements); without, every new event lacks its voucher, so nearly
    every new record is a finding (the nightly's stress case). With ``vouchers``, each
    pensioner paid also has a benefit approval (the payment's amount and account, from
    2025-01) with its approval document, as every pensioner of the month has: the day's
    payments are entitled, as in the month; without, no payment has one (a finding each)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    batch: list[tuple[str, int]] = []
    daily: dict[int, list[str]] = {}

    def pay(i: int) -> None:
        nonlocal batch
        total = sum(a for _, a in batch)
        out.append({"type": "finance.payment", "id": f"{tag}PAY-{i:09d}", "region": "440100",
                    "occurred_at": f"{_day(22)}T14:00:00+08:00", "amount": _yuan(total),
                    "value_date": _day(22), "bank_ref": f"CCB{rng.randint(10**11, 10**12 - 1)}",
                    "fund_account": "expenditure",
                    "allocations": [{"event": e, "amount": _yuan(a)} for e, a in batch]})
        if vouchers:
            pid = f"{tag}PAY-{i:09d}"
            out.append(_voucher_record("bank_slip", f"{tag}BS-{i:09d}", [pid], 22, total))
            out.append(_voucher_record("accounting_voucher", f"{tag}AVP-{i:09d}", [pid], 22))
            daily.setdefault(22, []).append(pid)
        batch = []

    for i in range(1, events + 1):
        if i % 2:
            rid, amount = f"{tag}CA-{i:09d}", rng.randint(20_000, 3_000_000)
            employer = f"91440100MA{rng.randint(10**7, 10**8 - 1)}"
            out.append({"type": "business.contribution_assessment", "id": rid,
                        "region": "440100", "occurred_at": f"{_day(21)}T10:00:00+08:00",
                        "employer_id": employer, "insurance": "pension", "period": MONTH,
                        "amount": _yuan(amount), "due_date": _day(25)})
            out.append({"type": "finance.collection", "id": f"{tag}COL-{i:09d}", "region": "440100",
                        "occurred_at": f"{_day(24)}T15:00:00+08:00", "amount": _yuan(amount),
                        "value_date": _day(24),
                        "bank_ref": f"ICBC{rng.randint(10**11, 10**12 - 1)}",
                        "payer_id": employer, "fund_account": "income",
                        "allocations": [{"event": rid, "amount": _yuan(amount)}]})
            if vouchers:
                out.append(_voucher_record("fiscal_receipt", f"{tag}FR-{i:09d}", [rid], 21,
                                           amount))
                daily.setdefault(24, []).append(f"{tag}COL-{i:09d}")
        else:
            rid, amount = f"{tag}BP-{i:09d}", rng.randint(150_000, 900_000)
            person = _person_id(rng)
            account = "6222" + "".join(rng.choices("0123456789", k=15))
            if vouchers:  # as in the month: every pensioner paid is approved, with its document
                aid = f"{tag}BA-{i:09d}"
                out.append({"type": "business.benefit_approval", "id": aid, "region": "440100",
                            "occurred_at": f"{_day(2)}T09:00:00+08:00", "person_id": person,
                            "insurance": "pension", "benefit": "basic_pension",
                            "monthly_amount": _yuan(amount),
                            "start_period": "2025-01", "account": account})
                out.append(_voucher_record("approval_document", f"{tag}AD-{i:09d}", [aid], 2))
            out.append({"type": "business.benefit_payment", "id": rid, "region": "440100",
                        "occurred_at": f"{_day(22)}T09:00:00+08:00",
                        "person_id": person, "insurance": "pension", "period": MONTH,
                        "amount": _yuan(amount), "account": account})
            batch.append((rid, amount))
            if len(batch) >= PAYMENT_BATCH:
                pay(i)
    if batch:
        pay(events + 1)
    for day, movements in sorted(daily.items()):
        out.append(_voucher_record("accounting_voucher", f"{tag}AVD-{_day(day)}", movements,
                                   day))
    return out


# --- databases -----------------------------------------------------------------------------

class Databases:
    """The PostgreSQL databases and SQLite directories this run created (and only those)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []
        self.dirs: list[Path] = []

    def new_pg(self) -> str:
        name = f"bfa_rbench_{secrets.token_hex(4)}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def new_dir(self) -> Path:
        d = Path(tempfile.mkdtemp(prefix="bfa_rbench_"))
        self.dirs.append(d)
        return d

    def cleanup(self) -> None:
        for name in self.created:
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)))
                log(f"dropped database {name}")
            except psycopg.Error as e:  # keep dropping the others
                log(f"could not drop database {name}: {e}")
        self.created.clear()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


# --- timing ----------------------------------------------------------------------------

def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _settled(led: Ledger, report: Any) -> Any:
    """``report``, once the store's background WAL checkpoint (SQLite) has finished: a
    timed run includes writing its pages into the database file."""
    led.store.wait_checkpoint()
    return report


def baseline(store: Store) -> int:
    """The hand-written settlement statement, every row fetched."""
    n = 0
    with store.engine.connect() as conn:
        store.tune_analysis(conn)  # the same session settings as a run's
        result = conn.execution_options(stream_results=True).execute(text(BASELINE_SQL))
        for part in result.partitions(10_000):
            n += len(part)
        conn.rollback()
    return n


@dataclass
class Result:
    backend: str
    events: int
    rows_loaded: dict[str, int]
    planted: dict[str, int]
    load_s: float
    full_s: float
    full_states_s: float
    full_render_s: float
    baseline_s: float
    baseline_runs_s: list[float]
    baseline_rows: int
    ratio: float
    breaks: dict[str, int]
    expected_items: int
    json_bytes: int
    nights: list[Night]
    nightly_breakdown: dict[str, float]
    missing_codes: list[str]
    derived: DerivedFigure | None = None


@dataclass
class DerivedFigure:
    """Benchmark 3: the check of every derived row of the real entries against them."""

    entries: int
    """Entries below the watermark (the nights' records and the ledger's own)."""
    rows: int
    """Derived rows of those entries, over the seven record tables."""
    check_s: float
    reads_s: float
    """Baseline: every leaf and every stored row of those entries read, nothing compared."""
    refresh_s: float
    """Baseline: a full refresh of their derived rows from the entries."""
    mismatches: int
    ratio_reads: float
    ratio_refresh: float


@dataclass
class Night:
    """One nightly run after 1% new records (``label`` says which records)."""

    label: str
    records: int
    ingest_s: float
    """The untimed ingest of the records."""
    derived: bool
    """Whether the ingest wrote the derived rows (``bfa ingest``'s path, ADR 0018)."""
    refresh_s: float
    """Without ``derived``: the refresh that decoded the new entries, timed on its own."""
    reconcile_s: float
    states_s: float
    """The workflow states of the run's breaks (``apply_states_detail``), as the nightly."""
    render_s: float
    """The delta against the previous run and the full JSON report."""
    nightly_s: float
    decoded: int
    breaks: int
    expected: int
    ratio: float
    ratio_with_refresh: float


def _raw_reads(store: Store, mark: int) -> int:
    """Every leaf below ``mark`` and every derived row keyed from 0 to ``mark``, read in the
    check's chunks and thrown away."""
    from ledger import entries

    n = 0
    with store.reader() as conn:
        for lo in range(0, mark, 5000):
            hi = min(lo + 5000, mark)
            n += len(conn.execute(select(entries.c.leaf).where(
                entries.c.seq >= lo, entries.c.seq < hi)).all())
            for table in DERIVED:
                first = table.primary_key.columns.values()[0]
                n += len(conn.execute(select(table).where(first >= lo, first < hi)).all())
    return n


def _derived_figure(led: Ledger, backend: str) -> DerivedFigure | None:
    """Benchmark 3 (module docstring); the last step: it rebuilds the real entries' rows."""
    if check_spans is None:
        return None
    store = led.store
    with store.reader() as conn:
        mark = watermark(store, conn)
        rows = sum(int(conn.execute(select(func.count()).select_from(table).where(
            table.primary_key.columns.values()[0] >= 0)).scalar_one()) for table in DERIVED)
        check_s, checked = _timed(lambda: check_spans(store, conn, [(0, mark)]))
    log(f"{backend}: derived check of {mark:,} entries ({rows:,} rows) {check_s:.2f} s, "
        f"{len(checked.mismatches)} differences")
    reads_s, _n = _timed(lambda: _raw_reads(store, mark))
    log(f"{backend}: raw reads of the same {reads_s:.2f} s")

    def rebuild() -> None:
        with store.writer() as conn:
            for table in DERIVED:
                first = table.primary_key.columns.values()[0]
                conn.execute(delete(table).where(first >= 0))
            store.set_meta(conn, t.WATERMARK_KEY, "0")
        refresh(store)

    refresh_s, _ = _timed(rebuild)
    log(f"{backend}: full refresh of the same {refresh_s:.2f} s")
    return DerivedFigure(entries=mark, rows=rows, check_s=check_s, reads_s=reads_s,
                         refresh_s=refresh_s, mismatches=len(checked.mismatches) + checked.more,
                         ratio_reads=check_s / reads_s, ratio_refresh=check_s / refresh_s)


def _breakdown(led: Ledger) -> dict[str, float]:
    """Where a full run's time goes: the refresh, each step of
    ``reconcile.matching._incremental.match`` (scope, shared temporary tables, each
    statement, storing), the bank statement checks. A separate, profiling pass after
    the timed nightly (it does a full run again)."""
    from contextlib import contextmanager

    from reconcile.bank import statement_breaks
    from reconcile.matching._incremental import match
    from reconcile.matching._refresh import refresh
    from reconcile.matching._rules import Rules

    out: dict[str, float] = {}
    out["refresh (nothing new)"], _ = _timed(lambda: refresh(led.store))

    @contextmanager
    def timer(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        out[name] = time.perf_counter() - t0

    match(led.store, Rules(), full=True, timer=timer)
    with led.store.reader() as conn:
        out["statement_breaks"], _ = _timed(lambda: statement_breaks(conn, Rules(), AS_OF))
    return out


def _track(led: Ledger, report: Any, previous: dict[str, Any]
           ) -> tuple[float, float, dict[str, Any]]:
    """What the nightly does with a run's report besides verifying, signing and writing
    files: the workflow states of its breaks (``apply_states_detail``, SQLite's WAL
    checkpoint of its writes included), then the delta against the previous run's
    breaks and the full JSON report (the issue: "report rendering counted, as a delta
    plus the full JSON"). Returns both times and the breaks as the next delta needs
    them (``latest.json``'s ``breaks``)."""
    def states() -> Any:
        applied = apply_states_detail(led, report)
        led.store.wait_checkpoint()
        return applied

    states_s, applied = _timed(states)
    render_s, now = _render(applied, previous)
    return states_s, render_s, now


def _render(applied: Any, previous: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """The delta against the previous run and the full JSON report, timed; and the breaks
    as the next delta needs them."""
    def render() -> tuple[str, str]:
        delta = _delta(previous, applied.report, applied.statuses, applied.reopened)
        return render_json(applied.report), json.dumps(delta.to_json())

    render_s, _ = _timed(render)
    now = {b.id: {"code": b.code, "severity": b.severity,
                  "status": applied.statuses.get(b.id, "open")} for b in applied.report.breaks}
    return render_s, now


def _night(led: Ledger, backend: str, label: str, recs: list[dict[str, Any]],
           full_s: float, previous: dict[str, Any], *, derive: bool = True
           ) -> tuple[Night, dict[str, Any]]:
    """Ingest ``recs`` (untimed), then time the nightly's reconcile and the full JSON
    report. ``derive``: as ``bfa ingest`` does, the derived rows written by the ingest;
    without, the ingest is the ledger's alone and the refresh that decodes the new
    entries is timed on its own before the nightly (what the nightly cost before ADR
    0018), so both accountings are printed."""
    ingest_s, rep = _timed(lambda: led.ingest_records(
        recs, "nightly.jsonl", derive=Deriver if derive else None))
    led.store.wait_checkpoint()  # SQLite: the ingest's pages are not the nightly's
    if rep.rejected or rep.appended != len(recs):
        raise RuntimeError(f"nightly records not all appended: {rep.appended} of "
                           f"{len(recs)}, problems {rep.problems[:3]}")
    log(f"{backend}: ingested {len(recs):,} new records ({label}) in {ingest_s:.1f} s "
        f"(untimed; derived rows {'written by the ingest' if derive else 'not written'})")
    refresh_s = 0.0
    if not derive:
        def decode() -> None:
            refresh(led.store)
            led.store.wait_checkpoint()

        refresh_s, _ = _timed(decode)
        log(f"{backend}: refresh of the new entries {refresh_s:.2f} s (timed on its own)")
    if _run_tracked is None:  # before the runs recorded their states themselves
        rec_s, report = _timed(lambda: run_reconcile(led, AS_OF))
        # SQLite: the background WAL checkpoint of the run's writes is counted too
        wait_s, _ = _timed(led.store.wait_checkpoint)
        rec_s += wait_s
        states_s, rend_s, now = _track(led, report, previous)
    else:  # the nightly's path: the states recorded in the run's transaction
        rec_s, applied = _timed(lambda: _run_tracked(led, AS_OF))
        wait_s, _ = _timed(led.store.wait_checkpoint)
        rec_s += wait_s
        report, states_s = applied.report, 0.0
        rend_s, now = _render(applied, previous)
    nightly_s = rec_s + states_s + rend_s
    log(f"{backend}: nightly {nightly_s:.2f} s (reconcile {rec_s:.2f} of which waiting for "
        f"the WAL checkpoint {wait_s:.2f}, workflow states {states_s:.2f}, delta and full "
        f"JSON {rend_s:.2f}), decoded {report.run.decoded:,}, {len(report.breaks):,} breaks, "
        f"{len(report.expected):,} expected")
    return Night(label=label, records=len(recs), ingest_s=ingest_s, derived=derive,
                 refresh_s=refresh_s, reconcile_s=rec_s, states_s=states_s, render_s=rend_s,
                 nightly_s=nightly_s, decoded=report.run.decoded, breaks=len(report.breaks),
                 expected=len(report.expected), ratio=nightly_s / full_s,
                 ratio_with_refresh=(nightly_s + refresh_s) / full_s), now


def bench_backend(backend: str, events: int, dbs: Databases, profile: bool) -> Result:
    home = dbs.new_dir() / "home"
    url = dbs.new_pg() if backend == "postgresql" else f"sqlite:///{home / 'ledger.db'}"
    led = Ledger.open(str(home), url, check=False)
    try:
        led.init(ORIGIN)
        log(f"{backend}: loading {events:,} events into rc_* ...")
        load_s, (counts, planted) = _timed(lambda: load_month(led.store, events))
        log(f"{backend}: loaded in {load_s:.1f} s: {counts}")
        b1, rows = _timed(lambda: baseline(led.store))
        log(f"{backend}: baseline join {b1:.2f} s ({rows:,} rows)")
        full_s, report = _timed(lambda: _settled(led, run_reconcile(led, AS_OF)))
        log(f"{backend}: full reconcile {full_s:.2f} s, {len(report.breaks):,} breaks")
        states_s, render_s, previous = _track(led, report, {})
        doc = render_json(report)
        b2, _ = _timed(lambda: baseline(led.store))
        log(f"{backend}: baseline join again {b2:.2f} s")
        base = min(b1, b2)
        codes = Counter(b.code for b in report.breaks)
        missing = sorted(c for c in planted if planted[c] and not codes.get(c))

        new = max(1, int(events * NIGHTLY_SHARE))
        full = full_s + states_s + render_s
        nights = []  # the clean night first: the second's findings stay open in every report
        for label, recs, derive in [
                ("with their vouchers, as in the month",
                 nightly_records(new, seed=20261125, tag="V", vouchers=True), True),
                ("no vouchers: nearly every new record a finding", nightly_records(new), False)]:
            night, previous = _night(led, backend, label, recs, full, previous, derive=derive)
            nights.append(night)
        breakdown = _breakdown(led) if profile else {}
        derived = _derived_figure(led, backend)
        return Result(
            backend=backend, events=events, rows_loaded=counts, planted=dict(planted),
            load_s=load_s, full_s=full_s, full_states_s=states_s, full_render_s=render_s,
            baseline_s=base,
            baseline_runs_s=[b1, b2], baseline_rows=rows, ratio=full_s / base,
            breaks=dict(sorted(codes.items())), expected_items=len(report.expected),
            json_bytes=len(doc.encode()), nights=nights, nightly_breakdown=breakdown,
            missing_codes=missing, derived=derived)
    finally:
        led.close()


def _ok(good: bool) -> str:
    return "OK" if good else "MISSED"


def print_result(r: Result) -> None:
    print(f"reconcile/{r.backend} {r.events:,} events  ours {r.full_s:.2f} s  "
          f"baseline join {r.baseline_s:.2f} s  ratio {r.ratio:.1f}x  "
          f"target <= {TARGET_FULL:g}x  {_ok(r.ratio <= TARGET_FULL)}")
    full = r.full_s + r.full_states_s + r.full_render_s
    for n in r.nights:
        print(f"nightly/{r.backend} +{n.records:,} records (1% of the events, {n.label})  "
              f"ours {n.nightly_s:.2f} s  full run {full:.2f} s  ratio {n.ratio:.1%}  "
              f"target <= {TARGET_NIGHTLY:.0%}  {_ok(n.ratio <= TARGET_NIGHTLY)}")
        if not n.derived:
            print(f"  the same with the refresh of the new entries counted (the ingest not "
                  f"deriving, as before ADR 0018): {n.nightly_s + n.refresh_s:.2f} s, "
                  f"ratio {n.ratio_with_refresh:.1%}")
    print(f"  loaded {sum(r.rows_loaded.values()):,} rows in {r.load_s:.1f} s; baseline runs "
          f"{', '.join(f'{b:.2f}' for b in r.baseline_runs_s)} s ({r.baseline_rows:,} rows); "
          f"full run's workflow states {r.full_states_s:.2f} s, delta and full JSON "
          f"{r.full_render_s:.2f} s ({r.json_bytes:,} bytes)")
    print(f"  breaks {sum(r.breaks.values()):,}: "
          f"{', '.join(f'{k} {v}' for k, v in r.breaks.items())}; "
          f"expected items {r.expected_items:,}")
    if r.missing_codes:
        print(f"  WARNING: planted but not reported: {', '.join(r.missing_codes)}")
    for n in r.nights:
        how = "derived rows written" if n.derived else f"refresh {n.refresh_s:.2f} s after it"
        print(f"  nightly ({n.label}): ingest {n.ingest_s:.2f} s (untimed, {how}); "
              f"decoded {n.decoded:,} entries; reconcile {n.reconcile_s:.2f} s + workflow "
              f"states {n.states_s:.2f} s + delta and full JSON {n.render_s:.2f} s; "
              f"{n.breaks:,} breaks, {n.expected:,} expected")
    if r.nightly_breakdown:
        parts = sorted(r.nightly_breakdown.items(), key=lambda kv: -kv[1])
        print("  where a run's time goes: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts))
    d = r.derived
    if d is not None:
        print(f"derived/{r.backend} check of {d.entries:,} entries ({d.rows:,} rows) "
              f"{d.check_s:.2f} s ({d.mismatches} differences)  full refresh of the same "
              f"{d.refresh_s:.2f} s  ratio {d.ratio_refresh:.2f}x  raw reads {d.reads_s:.2f} s"
              f"  ratio {d.ratio_reads:.2f}x  a 30-night slice ~{d.check_s / 30:.3f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reconcile_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=None,
                   help="business events in the month (default 2,000,000 on PostgreSQL, "
                        "1,000,000 on SQLite)")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    p.add_argument("--no-profile", action="store_true",
                   help="skip the per-statement breakdown after the nightly run")
    args = p.parse_args(argv)
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    admin = os.environ.get("BFA_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    dbs = Databases(admin)
    results: list[Result] = []
    try:
        for backend in backends:
            n = args.events if args.events is not None else DEFAULT_EVENTS[backend]
            if n < 100:
                p.error("--events must be at least 100")
            results.append(bench_backend(backend, n, dbs, not args.no_profile))
            dbs.cleanup()
    finally:
        dbs.cleanup()
    print()
    for r in results:
        print_result(r)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
