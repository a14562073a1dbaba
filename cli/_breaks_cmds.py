"""Commands ``bfa breaks ...`` (the break workflow), ``bfa trace`` and ``bfa nightly``.

Each command parses, calls one library function of :mod:`reconcile` and renders.
Workflow transitions are appended to the ledger as ``control.break`` entries; the
acting user comes from ``--user`` / ``BFA_USER``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import TEXT, home_options, json_option, open_ledger, user_option
from cli._render import clip, local_time, table, terminal_width, to_json, wrapped, yuan
from ledger import ConfigError, Ledger, printable
from reconcile import (
    LOCK_MAX_AGE,
    REASONS,
    STATUSES,
    BreakState,
    Trace,
    approve_break,
    assign_break,
    history,
    list_breaks,
    reconciled,
    reopen_break,
    resolve_break,
    run_nightly,
    trace,
)

_REASON_HELP = "; ".join(f"{k}: {v}" for k, v in REASONS.items())


def _short(records: tuple[str, ...], n: int = 3) -> str:
    return ", ".join(records[:n]) + (f" +{len(records) - n}" if len(records) > n else "")


def _state_line(s: BreakState) -> str:
    who = {"assigned": f" to {s.assignee}", "pending_approval": f" by {s.resolved_by}, "
           "awaiting a second user's approval", "resolved": f" by {s.resolved_by}" + (
               f", approved by {s.approved_by}" if s.approved_by else "")}.get(s.status, "")
    return f"{s.break_id} {s.code} is now {s.status}{who} (entry {s.last_seq})"


def _done(s: BreakState, as_json: bool) -> None:
    click.echo(to_json(s.to_json()) if as_json else _state_line(s))


@bfa.group()
def breaks() -> None:
    """Work the breaks: list, show, assign, resolve, approve (four-eyes), reopen.

    Breaks come from the latest 'bfa reconcile' or 'bfa nightly'. Every transition is
    appended to the ledger (domain control), so resolutions are tamper-evident and
    provable: 'bfa prove BRK-.../2 --domain control'.

    Example:

    \b
        bfa breaks list --status open
    """


_SEVERITY_COLOR = {"high": "red", "medium": "yellow"}
"""Colour of a break's line by severity, on a terminal and without ``NO_COLOR``."""


@breaks.command("list")
@home_options
@json_option
@click.option("--status", type=click.Choice(STATUSES), help="Only breaks in this state.")
@click.option("--all", "include_gone", is_flag=True,
              help="Also breaks the latest reconciliation no longer reports.")
def list_cmd(home: str | None, db: str | None, as_json: bool, status: str | None,
             include_gone: bool) -> None:
    """List breaks with their workflow state, high severity first.

    Exits 1 when any listed break is not resolved, 0 otherwise.

    Example:

    \b
        bfa breaks list --status pending_approval --json
    """
    with open_ledger(home, db) as led:
        found = list_breaks(led, status, include_gone=include_gone)
        never = not found and not reconciled(led)
    if never and not as_json:
        click.echo("no reconciliation has run yet: 'bfa reconcile' (or the nightly) finds the "
                   "breaks", err=True)
        return
    if as_json:
        click.echo(to_json([s.to_json() for s in found]))
    else:
        cols_width = terminal_width()
        rows = [{"id": s.break_id, "code": s.code, "severity": s.severity, "status": s.status,
                 "assignee": s.assignee or "", "amount": yuan(next(iter(s.amounts.values()),
                                                                  "")),
                 "gone": "" if s.present else "gone", "message": s.message} for s in found]
        color = False if os.environ.get("NO_COLOR") else None  # None: only on a terminal
        if cols_width >= 140:
            cols = ["id", "code", "severity", "status", "assignee", "amount"]
            lines = table(rows, [*cols, *(["gone"] if include_gone else []), "message"],
                          right={"amount"}, fit=cols_width).split("\n")
            click.echo("\n".join(lines[:2]))
            for line, r in zip(lines[2:], rows, strict=True):
                click.echo(click.style(line, fg=_SEVERITY_COLOR.get(r["severity"])),
                           color=color)
        else:  # a narrow terminal: two lines a break
            lines = table(rows, ["id", "code", "status", "amount"], right={"amount"}
                          ).split("\n")
            click.echo("\n".join(lines[:2]))
            for line, r in zip(lines[2:], rows, strict=True):
                click.echo(line)
                extra = "".join(f" · {x}" for x in (
                    f"assigned to {r['assignee']}" if r["assignee"] else "", r["gone"]) if x)
                click.echo(click.style(clip(f"    {r['severity']}{extra} · "
                                            f"{printable(r['message'])}", cols_width - 1),
                                       fg=_SEVERITY_COLOR.get(r["severity"])), color=color)
    if any(s.status != "resolved" for s in found):
        raise click.exceptions.Exit(int(Exit.PROBLEMS))


@breaks.command("show")
@home_options
@json_option
@click.argument("break_id", type=TEXT)
def show_cmd(home: str | None, db: str | None, as_json: bool, break_id: str) -> None:
    """Show one break, its state and every transition with its ledger position.

    BREAK_ID may be abbreviated to a unique prefix of at least 8 characters.

    Example:

    \b
        bfa breaks show BRK-0123456789abcdef
    """
    with open_ledger(home, db) as led:
        state, steps = history(led, break_id)
    if as_json:
        click.echo(to_json({**state.to_json(), "history": [t.to_json() for t in steps]}))
        return
    s = state
    click.echo(f"{s.break_id}  {s.code}  severity {s.severity}  status {s.status}"
               + ("" if s.present else "  (no longer reported)"))
    cols = terminal_width() - 2
    click.echo("\n".join(wrapped(s.message, "  ", cols)))
    for label, value in (("assigned to", s.assignee), ("reason", s.reason),
                         ("note", s.note), ("resolved by", s.resolved_by),
                         ("approved by", s.approved_by)):
        if value:
            click.echo("\n".join(wrapped(f"{label}: {value}", "  ", cols)))
    click.echo(f"  records: {', '.join(s.records) or '-'}")
    if s.amounts:
        click.echo("  amounts: " + ", ".join(f"{k} ¥{yuan(v)}" for k, v in s.amounts.items()))
    if s.needs_approval:
        click.echo("  resolution needs approval by a second user (four-eyes)")
    click.echo(f"  first seen {local_time(s.first_seen)}, last seen {local_time(s.last_seen)}")
    rows = [{"seq": t.seq, "at": local_time(t.record.get("at", "")),
             "action": t.record.get("action"),
             "user": t.record.get("user"), "status": t.record.get("status"),
             "detail": " ".join(str(x) for x in (t.record.get("assignee"), t.record.get("reason"),
                                                  t.record.get("note")) if x),
             "checkpointed": "yes" if t.covered else "not yet"} for t in steps]
    click.echo(table(rows, ["seq", "at", "action", "user", "status", "detail", "checkpointed"]))


@breaks.command("assign")
@home_options
@user_option
@json_option
@click.argument("break_id", type=TEXT)
@click.argument("assignee", type=TEXT)
def assign_cmd(home: str | None, db: str | None, user: str, as_json: bool, break_id: str,
               assignee: str) -> None:
    """Assign a break to someone to work on.

    Example:

    \b
        bfa breaks assign BRK-0123456789abcdef zhang.min --user li.wei
    """
    with open_ledger(home, db) as led:
        _done(assign_break(led, break_id, user, assignee), as_json)


@breaks.command("resolve")
@home_options
@user_option
@json_option
@click.argument("break_id", type=TEXT)
@click.option("--reason", required=True, type=click.Choice(list(REASONS)),
              help=f"Why it is resolved. {_REASON_HELP}.")
@click.option("--note", required=True, type=TEXT, help="What was done, for the auditor.")
def resolve_cmd(home: str | None, db: str | None, user: str, as_json: bool, break_id: str,
                reason: str, note: str) -> None:
    """Resolve a break with a reason code and a note.

    Breaks of high severity (orphan money, payment after termination, duplicate
    payment, payee mismatch, integrity) become pending_approval until a second,
    different user approves them.

    Example:

    \b
        bfa breaks resolve BRK-0123456789abcdef --reason bank_error --note "bank re-credited 11-28"
    """
    with open_ledger(home, db) as led:
        _done(resolve_break(led, break_id, user, reason, note), as_json)


@breaks.command("approve")
@home_options
@user_option
@json_option
@click.argument("break_id", type=TEXT)
def approve_cmd(home: str | None, db: str | None, user: str, as_json: bool,
                break_id: str) -> None:
    """Approve a pending resolution (four-eyes: not by the user who resolved it).

    Example:

    \b
        BFA_USER=wang.fang bfa breaks approve BRK-0123456789abcdef
    """
    with open_ledger(home, db) as led:
        _done(approve_break(led, break_id, user), as_json)


@breaks.command("reopen")
@home_options
@user_option
@json_option
@click.argument("break_id", type=TEXT)
@click.option("--note", required=True, type=TEXT, help="Why it is reopened.")
def reopen_cmd(home: str | None, db: str | None, user: str, as_json: bool, break_id: str,
               note: str) -> None:
    """Reopen a resolved or pending break.

    Example:

    \b
        bfa breaks reopen BRK-0123456789abcdef --note "bank recalled the credit"
    """
    with open_ledger(home, db) as led:
        _done(reopen_break(led, break_id, user, note), as_json)


def _render_trace(tr: Trace) -> str:
    lines = [f"trail of {tr.domain} record {tr.record_id} (ledger size {tr.ledger_size}, "
             f"latest signed checkpoint {tr.checkpoint_size})"]
    rows: list[dict[str, Any]] = [{
        "role": ("*" if i.subject else "") + i.role, "kind": i.kind, "id": i.record_id,
        "amount": yuan(i.amount) if i.amount else "", "date": i.date or "", "seq": i.seq,
        "entry_hash": i.entry_hash[:16], "checkpointed": "yes" if i.covered else "not yet",
        "link": i.relation + (f"; superseded by {i.current_id}" if i.superseded else ""),
    } for i in tr.items]
    cols = terminal_width()
    wide = cols >= 140
    lines.append(table(rows, ["role", "kind", "id", "amount", "date",
                              *(["seq", "entry_hash", "checkpointed"] if wide else []), "link"],
                       right={"amount"}, fit=cols))
    pending = sum(1 for i in tr.items if not i.covered)
    if pending and not wide:  # the column is left out below 140 columns
        lines.append(f"{pending} of these entries not yet checkpointed (bfa checkpoint makes "
                     "them provable)")
    if tr.allocations:
        lines += wrapped("allocations: " + "; ".join(
            f"{a['movement']} -> {a['event']} {yuan(str(a['amount']))}"
            for a in tr.allocations), "", cols - 1)
    for b in tr.breaks:
        lines += wrapped(f"break {b.break_id} {b.code} ({b.severity}) {b.status}"
                         + ("" if b.present else ", no longer reported") + f": {b.message}",
                         "", cols - 1)
        for t in b.transitions:
            lines.append(f"  entry {t.seq} {local_time(t.record.get('at', ''))} "
                         f"{t.record.get('action')} by "
                         f"{t.record.get('user')} -> {t.record.get('status')}"
                         f"{'' if t.covered else ' (not yet checkpointed)'}")
    if not tr.breaks:
        lines.append("no breaks name these records (as of the latest reconciliation)")
    lines.extend(tr.notes)
    return "\n".join(lines)


@bfa.command("trace")
@home_options
@json_option
@click.argument("record_id", type=TEXT)
@click.option("--domain", type=click.Choice(["business", "finance", "archive", "control"]),
              help="The record's domain, when its id exists in several.")
def trace_cmd(home: str | None, db: str | None, as_json: bool, record_id: str,
              domain: str | None) -> None:
    """Show the whole trail of a record across business, finance and archive.

    The event, the movements that settle it, the vouchers that evidence both, the
    corrections, and the breaks naming them, each with its ledger position and
    whether the latest signed checkpoint covers it (* marks the record asked for
    and its versions).

    Example:

    \b
        bfa trace BP-2026-11-0001 --json
    """
    with open_ledger(home, db) as led:
        tr = trace(led, record_id, domain)
    click.echo(to_json(tr.to_json()) if as_json else _render_trace(tr))


def _fixity_step(days: int) -> Callable[[Ledger], dict[str, Any]]:
    """The nightly's archive step: audit 1/``days`` of the store, continuing the rotation."""
    from archive import FileStore, audit

    def step(led: Ledger) -> dict[str, Any]:
        share = Decimal(100) / days
        try:
            return audit(led, FileStore(led.home.archive_dir, led.home.perms), percent=share,
                         ).to_json()
        except (OSError, ConfigError) as e:  # the store unreadable: said, the night goes on
            return {"id": None, "error": f"the archive store {led.home.archive_dir} could "
                    f"not be audited: {getattr(e, 'strerror', None) or e}", "problems": 1,
                    "files": 0, "scope": {}}

    return step


@bfa.command("nightly")
@home_options
@click.option("--report-dir", "report_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Where reports go: a folder per run named by its start time "
                   "(report.{json,csv,html}, bank.{json,csv}, nightly.json), DIR/latest, "
                   "DIR/index.json.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="DATE",
              help="Judge settlement windows as of this date. [default: today, Asia/Shanghai]")
@click.option("--rules", "rules_file", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rules file (TOML) overriding the built-in default rules.")
@click.option("--lock-max-age", type=click.IntRange(min=1), default=LOCK_MAX_AGE,
              envvar="BFA_NIGHTLY_LOCK_MAX_AGE", show_default=True, metavar="SECONDS",
              help="A lock older than this is stale and taken over. [env BFA_NIGHTLY_LOCK_MAX_AGE]")
@click.option("--fixity-days", type=click.IntRange(min=0), default=30, show_default=True,
              metavar="N", help="Re-read every voucher file within N nights (each night "
              "audits 1/N of the store, continuing the rotation); 0 audits nothing.")
def nightly_cmd(home: str | None, db: str | None, report_dir: Path, as_of: datetime | None,
                rules_file: Path | None, lock_max_age: int, fixity_days: int) -> None:
    """Nightly run: lock, verify, audit, reconcile, sign a checkpoint, write the reports.

    Two runs never overlap: a second one exits 2 at once; a stale lock (its process
    gone, or older than --lock-max-age) is taken over. On an integrity failure the
    report holds LEDGER_INTEGRITY and nothing is signed. The reports say what is
    new, closed and reopened since the last run; a run for an earlier day than the
    last one is a look back that changes no break's state. Exit codes: 0 clean, 1
    breaks found, a voucher file failing its audit or a bank account not balanced,
    2 could not run, 3 integrity failure.

    Example:

    \b
        BFA_HOME=/srv/bfa/home bfa nightly --report-dir /srv/bfa/reports
    """
    rules = None
    if rules_file is not None:
        from reconcile import load_rules

        rules = load_rules(rules_file)
    with open_ledger(home, db) as led:
        result = run_nightly(led, report_dir, as_of.date() if as_of else None, rules,
                             lock_max_age=lock_max_age,
                             archive_step=_fixity_step(fixity_days) if fixity_days else None)
    if result.lock_note:
        click.echo(f"bfa: warning: {result.lock_note}", err=True)
    click.echo(f"nightly {result.report.run.as_of}: {result.summary_line()}")
    raise click.exceptions.Exit(result.exit_code)
