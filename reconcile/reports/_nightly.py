"""Nightly mode (``bfa nightly``): lock, verify, reconcile, sign, write reports.

:func:`run_nightly` is what cron or a systemd timer runs, once a night:

1. **Lock**: ``<home>/nightly.lock`` (JSON: pid, host, start time) is created under a
   short ``flock`` guard, so the check-and-take is atomic between processes. A live,
   recent lock makes the run stop at once with :class:`NightlyLockedError` (exit 2). A
   *stale* lock — its process is gone (same host), it is older than ``lock_max_age``
   seconds (default :data:`LOCK_MAX_AGE`, 6 hours), its start lies ahead of the clock
   by more than :data:`CLOCK_SKEW`, or it is not a lock as a run writes it — is taken
   over, and the result says so.
   On PostgreSQL the run also holds an advisory lock of the database
   (:data:`DB_LOCK`), so two hosts (two homes) sharing the database never overlap
   either; the server frees it when the run's connection ends.
2. **Verify** incrementally (``Ledger.verify(since_checkpoint=True)``: from the last
   checkpoint a clean run verified). On a problem the report holds one
   ``LEDGER_INTEGRITY`` break per problem, nothing is reconciled, appended or signed,
   and the exit code is 3.
3. **Audit** the archive when the caller gives an ``archive_step`` (``bfa nightly``: a
   rotating sample of the voucher files, :data:`ArchiveStep`), then **reconcile**
   (``run_reconcile``: decodes only entries added since the last run; the open items
   are re-checked by the set-based SQL; before it matches, the run checks the derived
   rows of its new entries and the next slice of a rotation that re-checks every derived
   row within ``derived_days`` nights, FORMAT.md §6.7, and rebuilds the derived tables
   from the entries when a row differs), then **apply the break states**
   (resolved breaks stay resolved unless their evidence changed; reopens are appended).
   When the run finds the reconciler's or the workflow's stored state changed behind
   the ledger's back (a ``LEDGER_INTEGRITY`` break: stored findings that differ from
   the last run's ``control.reconcile`` record, a break state that differs from its
   ``control.break`` entries, or a derived row that differs from its entry), the report
   is complete but the exit code is 3 and nothing is signed.
4. **Sign** a checkpoint covering everything, the workflow entries included.
5. **Write** ``DIR/<start time>/report.json``, ``report.csv``, ``report.html``,
   ``bank.json``, ``bank.csv``, with ``by`` (``--by``) ``funds.csv`` (one row per
   insurance and/or region; the JSON and HTML reports then have the groups too) and
   ``nightly.json`` (run facts and the *delta* against
   the previous run: new, closed and reopened breaks) in a folder of the run's own
   (``2026-11-30T013000+0800``: no run overwrites another's), then point ``DIR/latest``
   (a symlink) at that folder, copy ``nightly.json`` to ``DIR/latest.json`` and add the
   run to ``DIR/index.json``. Every file is written atomically (temporary file, then
   rename), so a reader never sees half a report. A run for an earlier day than the
   previous run's is a look back: it changes no break's state, has no delta and leaves
   ``latest`` where it was (the index lists it).

Exit codes (``NightlyResult.exit_code``): 0 clean (no break left unresolved), 1 breaks
found, 2 could not run (lock held, unusable home), 3 integrity failure.
"""

from __future__ import annotations

import base64
import fcntl
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ledger import PRIVATE, Ledger, Perms, VerifyResult, make_dir, write_atomic
from reconcile._errors import NightlyLockedError
from reconcile.bank._adjust import BankReconciliation, bank_reconciliation, statement_csv
from reconcile.matching._rules import Rules
from reconcile.matching._run import TZ, run_tracked
from reconcile.matching._units import money
from reconcile.reports._funds import FundView, fund_view, group_breaks
from reconcile.reports._render import render_csv, render_fund_csv, render_html, render_json
from reconcile.reports._report import Report, RunInfo, integrity_break, msg
from reconcile.workflow._workflow import list_breaks
from schemas import gettext as _

LOCK_MAX_AGE = 6 * 3600
"""Seconds after which a nightly lock is stale even if its process seems alive."""

CLOCK_SKEW = 300.0
"""Seconds a lock's start time may lie ahead of this host's clock (another host's clock,
on a shared home) before the lock counts as stale."""

DB_LOCK = "bfa nightly"
"""Name of the database-wide lock a nightly run holds besides its home's lock file
(``Store.exclusive``: a PostgreSQL advisory lock), so runs from two hosts sharing one
database never overlap either."""

CLEAN, BREAKS, COULD_NOT_RUN, INTEGRITY = 0, 1, 2, 3

DERIVED_DAYS = 30
"""Nights within which the nightly re-checks every row of the derived tables
(``bfa nightly --derived-days``)."""

ArchiveStep = Callable[[Ledger], Mapping[str, Any]]
"""The archive layer's part of a night (``bfa nightly``: the fixity audit of a rotating
sample), run after verification and before the reconciliation; what it returns goes into
``nightly.json`` as ``archive`` (``problems`` > 0 makes the exit code at least 1)."""


@dataclass(frozen=True, slots=True)
class Delta:
    """Breaks compared with the previous nightly run's."""

    previous: str | None
    """``started_at`` of the previous run, ``None`` on the first run."""
    new: tuple[dict[str, str], ...] = ()
    closed: tuple[dict[str, str], ...] = ()
    reopened: tuple[dict[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"previous": self.previous, "new": list(self.new), "closed": list(self.closed),
                "reopened": list(self.reopened)}


@dataclass
class NightlyResult:
    """What one nightly run did; ``exit_code`` is what the process exits with."""

    exit_code: int
    report: Report
    verify: VerifyResult
    folder: Path
    delta: Delta
    checkpoint_size: int | None = None
    lock_note: str | None = None
    checkpoint_root: str | None = None
    """Base64 root hash of the checkpoint the run signed."""
    files: dict[str, str] = field(default_factory=dict)
    unresolved: int = 0
    archive: dict[str, Any] | None = None
    """What the archive step (the fixity audit) reported, when the run had one."""
    bank: BankReconciliation | None = None
    """The 银行存款余额调节表 of every bank account with a statement, as of the day."""
    backdated: bool = False
    """The day is earlier than the previous run's: no break state changed, no delta."""
    workflow: dict[str, Any] = field(default_factory=dict)
    """Break id → its workflow state (``reconcile.list_breaks``), for the CSV's columns."""
    funds: FundView | None = None
    """The breaks per insurance and/or region (``--by``), or None."""

    def summary_line(self) -> str:
        """What the run did, in one line in the current language (``bfa nightly`` prints
        it). Each optional clause is a message of its own, ending in its separator."""
        if self.exit_code == INTEGRITY:
            n = sum(1 for b in self.report.breaks if b.code == "LEDGER_INTEGRITY")
            return _("INTEGRITY FAILURE: {problems} problem(s); nothing signed; report in "
                     "{folder}").format(problems=n, folder=self.folder)
        d = self.delta
        a = self.archive
        audited = ("" if a is None else
                   _("{error}; ").format(error=a["error"]) if a.get("error") else
                   _("fixity audit {id}: {files} file(s) ({percent} of the store), "
                     "{problems} problem(s); ").format(
                       id=a.get("id"), files=a.get("files"),
                       percent=f"{a.get('scope', {}).get('percent')}%",
                       problems=a.get("problems")))
        b = self.bank
        off = 0 if b is None else sum(1 for a in b.accounts if not a.balanced)
        banked = ("" if b is None or not b.accounts else
                  _("bank: {accounts} account(s), {off} not balanced; ").format(
                      accounts=len(b.accounts), off=off))
        back = (_("a look back (an earlier day than the last reconciliation's: no break "
                  "state changed); ") if self.backdated else "")
        return _("{look_back}{breaks} breaks ({unresolved} unresolved): {new} new, {closed} "
                 "closed, {reopened} reopened; {audit}{bank}checkpoint {checkpoint}; report "
                 "in {folder}").format(
            look_back=back, breaks=self.report.summary.breaks, unresolved=self.unresolved,
            new=len(d.new), closed=len(d.closed), reopened=len(d.reopened), audit=audited,
            bank=banked, checkpoint=self.checkpoint_size, folder=self.folder)


# -- the lock ------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _guard(lock: Path, perms: Perms) -> Iterator[None]:
    """A short exclusive ``flock`` making the inspection and replacement of the lock atomic."""
    fd = os.open(str(lock) + ".guard", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, perms.file_mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class NightlyLock:
    """The lock file of nightly runs; :meth:`acquire` raises :class:`NightlyLockedError`."""

    def __init__(self, path: Path, max_age: float = LOCK_MAX_AGE,
                 perms: Perms = PRIVATE) -> None:
        self.path = path
        self.max_age = max_age
        self.perms = perms
        self.token = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"

    def acquire(self) -> str | None:
        """Take the lock; returns a message when a stale lock was taken over."""
        make_dir(self.path.parent, self.perms)
        note = None
        with _guard(self.path, self.perms):
            held = self._read()
            if held is not None:
                why = self._stale(held)
                since = _when(held.get("started_at"))
                if why is None:
                    text = (_("another nightly run holds {path} (pid {pid} on {host} since "
                              "{since}); not running") if since != _UNKNOWN_TIME else
                            _("another nightly run holds {path} (pid {pid} on {host} since an "
                              "unknown time); not running"))
                    raise NightlyLockedError(text.format(
                        path=self.path, pid=held.get("pid"), host=held.get("host"),
                        since=since))
                # the note stays English: nightly.json keeps it ("lock")
                who = f"pid {held.get('pid')} on {held.get('host')} since {since}"
                note = f"took over a stale nightly lock {self.path} ({who}): {why}"
            write_atomic(self.path, json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(),
                "token": self.token}) + "\n", self.perms)
        return note

    def release(self) -> None:
        with _guard(self.path, self.perms):
            held = self._read()
            if held is not None and held.get("token") == self.token:
                self.path.unlink()

    def _read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if _lock_shape(data):
            return dict(data)
        # not what acquire() writes (a torn write, an editor, a forged file): stale
        return {"pid": None, "host": None, "started_at": self.path.stat().st_mtime,
                "unreadable": True}

    def _stale(self, held: Mapping[str, Any]) -> str | None:
        if held.get("unreadable"):
            return "the lock file is unreadable"
        started = float(held["started_at"])
        if started > time.time() + CLOCK_SKEW:
            return f"its start time {_when(started)} lies in the future"
        age = time.time() - started
        pid = held.get("pid")
        if held.get("host") == socket.gethostname() and isinstance(pid, int) and not (
                _pid_alive(pid)):
            return f"process {pid} is no longer running"
        if age > self.max_age:
            return f"it is {int(age)} s old, more than the maximum {int(self.max_age)} s"
        return None


def _lock_shape(data: Any) -> bool:
    """Whether ``data`` is a lock as :meth:`NightlyLock.acquire` writes it: a positive
    ``pid`` (``kill(-1, 0)`` would ask about every process), a ``host`` and a finite
    ``started_at`` in seconds since the epoch."""
    if not isinstance(data, dict):
        return False
    pid, host, started = data.get("pid"), data.get("host"), data.get("started_at")
    return (isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31
            and isinstance(host, str)
            and isinstance(started, int | float) and not isinstance(started, bool)
            and math.isfinite(started))


_UNKNOWN_TIME = "an unknown time"


def _when(epoch: Any) -> str:
    try:
        return datetime.fromtimestamp(float(epoch), TZ).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError):
        return _UNKNOWN_TIME


# -- the run -------------------------------------------------------------------------------
def run_nightly(
    ledger: Ledger,
    report_dir: Path,
    as_of: date | None = None,
    rules: Rules | Mapping[str, Any] | None = None,
    *,
    lock_max_age: float = LOCK_MAX_AGE,
    archive_step: ArchiveStep | None = None,
    derived_days: int = DERIVED_DAYS,
    by: Sequence[str] = (),
) -> NightlyResult:
    """One nightly run (see the module docstring); raises :class:`NightlyLockedError` if
    locked. ``derived_days``: every derived row is re-checked within that many nights (0:
    only the rows of the run's new entries). ``by`` (``reconcile.parse_by``): the reports
    also summarise the breaks per insurance and/or region."""
    lock = NightlyLock(ledger.home.path / "nightly.lock", lock_max_age, ledger.home.perms)
    note = lock.acquire()
    try:
        with ledger.store.exclusive(DB_LOCK) as taken:
            if not taken:
                raise NightlyLockedError(_(
                    "another nightly run holds the database's lock ({lock} in {database}), "
                    "from another home or host; it is released when that run ends").format(
                        lock=repr(DB_LOCK), database=ledger.store.display_url()))
            return _run(ledger, report_dir, as_of, rules, note, archive_step, derived_days,
                        tuple(by))
    finally:
        lock.release()


def _run(ledger: Ledger, report_dir: Path, as_of: date | None,
         rules: Rules | Mapping[str, Any] | None, note: str | None,
         archive_step: ArchiveStep | None, derived_days: int,
         by: tuple[str, ...]) -> NightlyResult:
    started = datetime.now(TZ)
    as_of = as_of or started.date()
    perms = ledger.home.perms  # reports name people and accounts: as private as the home
    ledger.require_signer()  # a key that cannot sign refuses before anything is written
    make_dir(report_dir, perms)
    previous = _previous(report_dir)
    verified = ledger.verify(since_checkpoint=True)
    if not verified.ok:
        report = _integrity_report(ledger, verified, as_of, started, rules)
        result = NightlyResult(INTEGRITY, report, verified, _run_folder(report_dir, started),
                               Delta(previous.get("started_at")), lock_note=note,
                               unresolved=len(report.breaks),
                               funds=group_breaks(report, {}, by) if by else None)
        _write(result, report_dir, {b.id: "open" for b in report.breaks}, started, previous,
               perms)
        return result
    # the archive's audit is recorded before the reconciliation, which reports its failures
    archive = dict(archive_step(ledger)) if archive_step is not None else None
    # a day before the last tracked run's is a look back: no break state changes
    applied = run_tracked(ledger, as_of, rules, derived_days=derived_days)
    backdated = applied.report.run.look_back
    delta = (Delta(None) if backdated else
             _delta(previous, applied.report, applied.statuses, applied.reopened))
    # the ledger's own state changed behind its back (findings or workflow rows): the
    # report says so and nothing is signed over it
    failed = applied.report.integrity_failed
    cp = None if failed else ledger.checkpoint()
    cp_size = None if cp is None else cp.size
    unresolved = sum(1 for s in applied.statuses.values() if s != "resolved")
    problems = bool(archive and archive.get("problems"))
    bank = bank_reconciliation(ledger, as_of)
    off = [a for a in bank.accounts if not a.balanced]
    code = INTEGRITY if failed else BREAKS if unresolved or problems or off else CLEAN
    workflow = {b.break_id: b for b in list_breaks(ledger, include_gone=True)}
    result = NightlyResult(code, applied.report, verified, _run_folder(report_dir, started),
                           delta, cp_size, note, unresolved=unresolved, archive=archive,
                           bank=bank, backdated=backdated,
                           checkpoint_root=None if cp is None else base64.b64encode(
                               cp.root).decode(), workflow=workflow,
                           funds=fund_view(ledger, applied.report, by) if by else None)
    _write(result, report_dir, applied.statuses, started, previous, perms)
    return result


def _run_folder(report_dir: Path, started: datetime) -> Path:
    """``DIR/<start time>`` of a run, e.g. ``2026-11-30T013000+0800`` (Asia/Shanghai), never
    one an earlier run wrote: a second run in the same second gets ``-2``, ``-3``, …"""
    base = started.strftime("%Y-%m-%dT%H%M%S%z")
    folder, n = report_dir / base, 1
    while folder.exists() or folder.is_symlink():
        n += 1
        folder = report_dir / f"{base}-{n}"
    return folder


def _integrity_report(ledger: Ledger, verified: VerifyResult, as_of: date, started: datetime,
                      rules: Rules | Mapping[str, Any] | None) -> Report:
    breaks = [integrity_break(p.message if p.seq is None else
                              msg("{detail} (entry {seq})", detail=p.message, seq=p.seq), p.seq)
              for p in verified.problems]
    r = rules if isinstance(rules, Rules) else Rules.from_mapping(rules)
    run = RunInfo(as_of=as_of.isoformat(), started_at=started.isoformat(timespec="seconds"),
                  finished_at=datetime.now(TZ).isoformat(timespec="seconds"),
                  ledger_size=verified.tree_size, decoded=0, backend=ledger.store.dialect,
                  rules=r.describe())
    return Report.build(run, breaks, [])


def _previous(report_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((report_dir / "latest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    if data.get("outcome") == "integrity":  # compare with the last good run, and the failure
        data["breaks"] = {**(data.get("breaks_before_failure") or {}), **(data.get("breaks") or {})}
    return data


def _delta(previous: Mapping[str, Any], report: Report, statuses: Mapping[str, str],
           reopened: tuple[str, ...]) -> Delta:
    before: dict[str, Any] = previous.get("breaks") or {}
    now = {b.id: b for b in report.breaks}

    def item(bid: str, code: str, status: str) -> dict[str, str]:
        return {"id": bid, "code": code, "status": status}

    new = tuple(item(b.id, b.code, statuses.get(b.id, "open")) for b in report.breaks
                if b.id not in before)
    closed = tuple(item(bid, str(v.get("code")), str(v.get("status"))) for bid, v in
                   sorted(before.items()) if bid not in now)
    was_done = {bid for bid, v in before.items()
                if v.get("status") in ("resolved", "pending_approval")}
    back = [bid for bid in now if bid in was_done and statuses.get(bid) not in (
        "resolved", "pending_approval")]
    again = sorted(set(back) | set(reopened))
    reopen = tuple(item(bid, now[bid].code, statuses.get(bid, "open")) for bid in again)
    return Delta(previous.get("started_at"), new, closed, reopen)


def _write(result: NightlyResult, report_dir: Path, statuses: Mapping[str, str],
           started: datetime, previous: Mapping[str, Any], perms: Perms) -> None:
    folder = result.folder
    make_dir(folder, perms, under=report_dir)
    report = result.report
    files = {"json": "report.json", "csv": "report.csv", "html": "report.html",
             "nightly": "nightly.json"}
    write_atomic(folder / files["json"], render_json(report, result.funds), perms)
    write_atomic(folder / files["csv"], render_csv(report, result.workflow), perms)
    if result.funds is not None:
        files["funds_csv"] = "funds.csv"
        write_atomic(folder / files["funds_csv"], render_fund_csv(result.funds), perms)
    signed = (None if result.checkpoint_size is None or result.checkpoint_root is None
              else (result.checkpoint_size, result.checkpoint_root))
    write_atomic(folder / files["html"], render_html(report, bank=result.bank,
                                                     checkpoint=signed, by=result.funds),
                 perms)
    if result.bank is not None:
        files["bank"] = "bank.json"
        files["bank_csv"] = "bank.csv"
        write_atomic(folder / files["bank"], json.dumps(
            result.bank.to_json(), ensure_ascii=False, indent=2) + "\n", perms)
        write_atomic(folder / files["bank_csv"], statement_csv(result.bank), perms)
    result.files = {k: f"{folder.name}/{v}" for k, v in files.items()}
    v = result.verify
    doc = {
        "as_of": report.run.as_of,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(TZ).isoformat(timespec="seconds"),
        "exit_code": result.exit_code,
        "outcome": {CLEAN: "clean", BREAKS: "breaks", INTEGRITY: "integrity"}[result.exit_code],
        "lock": result.lock_note,
        "backdated": result.backdated,
        "checkpoint_root": result.checkpoint_root,
        "verify": {"ok": v.ok, "start": v.start, "tree_size": v.tree_size,
                   "entries_checked": v.entries_checked,
                   "problems": [{"code": p.code, "seq": p.seq, "message": p.message}
                                for p in v.problems]},
        "checkpoint": result.checkpoint_size,
        "summary": {"breaks": report.summary.breaks, "unresolved": result.unresolved,
                    "by_code": report.summary.by_code,
                    "amount_at_risk": report.summary.amount_at_risk,
                    "decoded": report.run.decoded, "ledger_size": report.run.ledger_size,
                    "mode": report.run.mode, "rechecked": report.run.rechecked},
        "delta": result.delta.to_json(),
        **({} if result.funds is None else {"by": result.funds.to_json()}),
        "archive": result.archive,
        "bank": None if result.bank is None else {
            "balanced": result.bank.balanced, "accounts": len(result.bank.accounts),
            "not_balanced": [{"bank_account": a.bank_account, "difference": None if
                a.difference is None else money(a.difference), "problem": a.problem}
                for a in result.bank.accounts if not a.balanced]},
        "files": result.files,
        "breaks": {b.id: {"code": b.code, "severity": b.severity,
                          "status": statuses.get(b.id, "open")} for b in report.breaks},
    }
    if result.exit_code == INTEGRITY:
        # keep the last good run's break list, so the next delta compares with it
        doc["breaks_before_failure"] = previous.get("breaks") or {}
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    write_atomic(folder / files["nightly"], text, perms)
    if not result.backdated:  # a look back is in the index, not the latest run
        # the new link under a fresh random name (symlink() never follows or reuses a
        # planted one), then renamed over "latest" (which replaces a link, never follows it)
        tmp = report_dir / f".latest.{secrets.token_hex(8)}.tmp"
        os.symlink(folder.name, tmp)
        os.replace(tmp, report_dir / "latest")
        write_atomic(report_dir / "latest.json", text, perms)
    _index(report_dir, folder.name, doc, result, perms)


INDEX = "index.json"
"""``DIR/index.json``: one line per run, oldest first (FORMAT.md §10)."""


def _index(report_dir: Path, folder: str, doc: Mapping[str, Any], result: NightlyResult,
           perms: Perms) -> None:
    """Add this run to ``DIR/index.json`` (rewritten whole, atomically)."""
    try:
        runs = json.loads((report_dir / INDEX).read_text(encoding="utf-8"))
        runs = runs if isinstance(runs, list) else []
    except (FileNotFoundError, ValueError):
        runs = []
    s = result.report.summary
    runs.append({
        "folder": folder, "started_at": doc["started_at"], "as_of": doc["as_of"],
        "outcome": doc["outcome"], "exit_code": result.exit_code, "breaks": s.breaks,
        "unresolved": result.unresolved, "new": len(result.delta.new),
        "closed": len(result.delta.closed), "reopened": len(result.delta.reopened),
        "amount_at_risk": s.amount_at_risk, "checkpoint": result.checkpoint_size,
        "checkpoint_root": result.checkpoint_root, "backdated": result.backdated,
        "bank_balanced": None if result.bank is None or not result.bank.accounts
        else result.bank.balanced})
    write_atomic(report_dir / INDEX, json.dumps(runs, ensure_ascii=False, indent=1) + "\n",
                 perms)


__all__ = ["DERIVED_DAYS", "LOCK_MAX_AGE", "Delta", "NightlyLock", "NightlyLockedError",
           "NightlyResult", "run_nightly"]
