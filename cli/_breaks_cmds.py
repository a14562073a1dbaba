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
from cli._options import (
    DATE,
    TEXT,
    by_option,
    home_options,
    json_option,
    open_ledger,
    user_option,
)
from cli._render import clip, local_time, table, terminal_width, to_json, wrapped, yuan
from ledger import ConfigError, Ledger, printable
from reconcile import (
    DERIVED_DAYS,
    LOCK_MAX_AGE,
    REASONS,
    STATUSES,
    BreakState,
    Trace,
    approve_break,
    assign_break,
    code_label,
    history,
    label,
    list_breaks,
    reconciled,
    reopen_break,
    resolve_break,
    run_nightly,
    trace,
)
from schemas import N_
from schemas import gettext as _

_REASON_HELP = "; ".join(f"{k}: {v}" for k, v in REASONS.items())


def _short(records: tuple[str, ...], n: int = 3) -> str:
    return ", ".join(records[:n]) + (f" +{len(records) - n}" if len(records) > n else "")


def _state_line(s: BreakState) -> str:
    if s.status == "assigned":
        line = _("{id} {code} is now {status} to {assignee} (entry {seq})")
    elif s.status == "pending_approval":
        line = _("{id} {code} is now {status} by {resolved_by}, awaiting a second user's "
                 "approval (entry {seq})")
    elif s.status == "resolved" and s.approved_by:
        line = _("{id} {code} is now {status} by {resolved_by}, approved by {approved_by} "
                 "(entry {seq})")
    elif s.status == "resolved":
        line = _("{id} {code} is now {status} by {resolved_by} (entry {seq})")
    else:
        line = _("{id} {code} is now {status} (entry {seq})")
    return line.format(id=s.break_id, code=code_label(s.code), status=label("status", s.status),
                       assignee=s.assignee, resolved_by=s.resolved_by,
                       approved_by=s.approved_by, seq=s.last_seq)


def _checkpointed(covered: bool) -> str:
    """The ``checkpointed`` column: whether the latest signed checkpoint covers an entry."""
    return _("yes") if covered else _("not yet")


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
        click.echo(_("no reconciliation has run yet: 'bfa reconcile' (or the nightly) finds "
                     "the breaks"), err=True)
        return
    if as_json:
        click.echo(to_json([s.to_json() for s in found]))
    else:
        cols_width = terminal_width()
        rows = [{"id": s.break_id, "code": code_label(s.code),
                 "severity": label("severity", s.severity), "status": label("status", s.status),
                 "assignee": s.assignee or "", "amount": yuan(next(iter(s.amounts.values()),
                                                                  "")),
                 "gone": "" if s.present else _("gone"), "message": s.text()} for s in found]
        heads = {"id": _("id"), "code": _("code"), "severity": _("severity"),
                 "status": _("status"), "assignee": _("assignee"), "amount": _("amount"),
                 "gone": _("gone"), "message": _("message")}
        color = False if os.environ.get("NO_COLOR") else None  # None: only on a terminal
        if cols_width >= 140:
            cols = ["id", "code", "severity", "status", "assignee", "amount"]
            lines = table(rows, [*cols, *(["gone"] if include_gone else []), "message"],
                          right={"amount"}, fit=cols_width, headers=heads).split("\n")
            click.echo("\n".join(lines[:2]))
            for line, s in zip(lines[2:], found, strict=True):
                click.echo(click.style(line, fg=_SEVERITY_COLOR.get(s.severity)),
                           color=color)
        else:  # a narrow terminal: two lines a break
            lines = table(rows, ["id", "code", "status", "amount"], right={"amount"},
                          headers=heads, fit=cols_width - 1, cut="code").split("\n")
            click.echo("\n".join(lines[:2]))
            for line, r, s in zip(lines[2:], rows, found, strict=True):
                click.echo(line)
                extra = "".join(f" · {x}" for x in (
                    _("assigned to {assignee}").format(assignee=r["assignee"])
                    if r["assignee"] else "", r["gone"]) if x)
                click.echo(click.style(clip(f"    {r['severity']}{extra} · "
                                            f"{printable(r['message'])}", cols_width - 1),
                                       fg=_SEVERITY_COLOR.get(s.severity)), color=color)
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
    head = (_("{id}  {code}  severity {severity}  status {status}") if s.present else
            _("{id}  {code}  severity {severity}  status {status}  (no longer reported)"))
    cols = terminal_width() - 2
    click.echo("\n".join(wrapped(head.format(
        id=s.break_id, code=code_label(s.code), severity=label("severity", s.severity),
        status=label("status", s.status)), "", cols)))
    click.echo("\n".join(wrapped(s.text(), "  ", cols)))
    reason = s.reason and _reason(s.reason)
    for line, value in ((_("assigned to: {value}"), s.assignee), (_("reason: {value}"), reason),
                        (_("note: {value}"), s.note), (_("resolved by: {value}"), s.resolved_by),
                        (_("approved by: {value}"), s.approved_by)):
        if value:
            click.echo("\n".join(wrapped(line.format(value=value), "  ", cols)))
    click.echo("  " + _("records: {records}").format(records=", ".join(s.records) or "-"))
    if s.amounts:
        click.echo("  " + _("amounts: {amounts}").format(
            amounts=", ".join(f"{label('role', k)} ¥{yuan(v)}" for k, v in s.amounts.items())))
    if s.needs_approval:
        click.echo("  " + _("resolution needs approval by a second user (four-eyes)"))
    click.echo("  " + _("first seen {first}, last seen {last}").format(
        first=local_time(s.first_seen), last=local_time(s.last_seen)))
    rows = [{"seq": t.seq, "at": local_time(t.record.get("at", "")),
             "action": label("action", str(t.record.get("action") or "")),
             "user": t.record.get("user"), "status": _status(t.record.get("status")),
             "detail": " ".join(str(x) for x in (
                 t.record.get("assignee"),
                 t.record.get("reason") and _reason(str(t.record.get("reason"))),
                 t.record.get("note")) if x),
             "checkpointed": _checkpointed(t.covered)} for t in steps]
    if not rows:
        click.echo("  " + _("no state changes yet"))
        return
    click.echo(table(rows, ["seq", "at", "action", "user", "status", "detail", "checkpointed"],
                     fit=terminal_width(), right={"seq"}, cut="detail",
                     headers={"seq": _("seq"), "at": _("at"), "action": _("action"),
                              "user": _("user"), "status": _("status"), "detail": _("detail"),
                              "checkpointed": _("checkpointed")}))


_RELATIONS = (
    ("version of ", N_("version of {id}")), ("settles ", N_("settles {id}")),
    ("settled by ", N_("settled by {id}")), ("returns ", N_("returns {id}")),
    ("returned by ", N_("returned by {id}")), ("evidences ", N_("evidences {id}")))
"""How ``reconcile.trace`` words a relation (``"settles BP-1"``), and its message."""


def _relations(text: str) -> str:
    """A trace item's relations (``"; "``-joined, in English) in the reader's language."""
    out = []
    for rel in text.split("; ") if text else []:
        if rel == "subject":
            out.append(_("subject"))
        elif rel == "evidenced by a voucher on the trail":
            out.append(_("evidenced by a voucher on the trail"))
        else:
            out.append(next((_(m).format(id=rel[len(p):]) for p, m in _RELATIONS
                             if rel.startswith(p)), rel))
    return _("; ").join(out)


def _reason(code: str) -> str:
    """A resolution's reason as people read it: its name, with the code in Chinese."""
    name = label("reason", code)
    return code if name == code else _("{name} ({code})").format(name=name, code=code)


def _status(value: object) -> object:
    """A workflow status from a ``control.break`` entry, named for the reader (a value
    that is not a status, None say, as it is)."""
    return label("status", value) if isinstance(value, str) else value


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

    Breaks whose code is of high severity (money without a business event,
    payments after a termination or a death, unapproved payments and
    overpayments, duplicate payments, payee mismatches, deaths not recorded,
    transfers without their other side - even those shown as medium -,
    integrity, conflicts of duties) become pending_approval until a second,
    different user approves them (INTERCHANGE §11).

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
    lines = [_("trail of {domain} record {id} (ledger size {size}, latest signed checkpoint "
               "{checkpoint})").format(domain=label("domain", tr.domain), id=tr.record_id,
                                       size=tr.ledger_size, checkpoint=tr.checkpoint_size)]
    roles = {"event": _("event"), "movement": _("movement"), "voucher": _("voucher"),
             "control": _("control")}
    rows: list[dict[str, Any]] = [{
        "role": ("*" if i.subject else "") + roles.get(i.role, i.role),
        "kind": label("kind", i.kind), "id": i.record_id,
        "amount": yuan(i.amount) if i.amount else "", "date": i.date or "", "seq": i.seq,
        "entry_hash": i.entry_hash[:16], "checkpointed": _checkpointed(i.covered),
        "link": _("{relation}; superseded by {id}").format(relation=_relations(i.relation),
                                                            id=i.current_id)
        if i.superseded else _relations(i.relation),
    } for i in tr.items]
    cols = terminal_width()
    wide = cols >= 140
    lines.append(table(rows, ["role", "kind", "id", "amount", "date",
                              *(["seq", "entry_hash", "checkpointed"] if wide else []), "link"],
                       right={"amount"}, fit=cols, headers={
                           "role": _("role"), "kind": _("kind"), "id": _("id"),
                           "amount": _("amount"), "date": _("date"), "seq": _("seq"),
                           "entry_hash": _("entry_hash"), "checkpointed": _("checkpointed"),
                           "link": _("link")}))
    pending = sum(1 for i in tr.items if not i.covered)
    if pending and not wide:  # the column is left out below 140 columns
        lines.append(_("{count} of these entries not yet checkpointed (bfa checkpoint makes "
                       "them provable)").format(count=pending))
    if tr.allocations:
        lines += wrapped(_("allocations: {allocations}").format(allocations="; ".join(
            f"{a['movement']} -> {a['event']} {yuan(str(a['amount']))}"
            for a in tr.allocations)), "", cols - 1)
    for b in tr.breaks:
        said = (_("break {id} {code} ({severity}) {status}: {message}") if b.present else
                _("break {id} {code} ({severity}) {status}, no longer reported: {message}"))
        lines += wrapped(said.format(id=b.break_id, code=code_label(b.code),
                                     severity=label("severity", b.severity),
                                     status=label("status", b.status),
                                     message=b.text or b.message),
                         "", cols - 1)
        for t in b.transitions:
            step = (_("entry {seq} {at} {action} by {user} -> {status}") if t.covered else
                    _("entry {seq} {at} {action} by {user} -> {status} (not yet checkpointed)"))
            lines.append("  " + step.format(seq=t.seq, at=local_time(t.record.get("at", "")),
                                            action=label("action",
                                                         str(t.record.get("action") or "")),
                                            user=t.record.get("user"),
                                            status=_status(t.record.get("status"))))
    if not tr.breaks:
        lines.append(_("no breaks name these records (as of the latest reconciliation)"))
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
        from schemas import language

        share = Decimal(100) / days
        try:
            with language("en"):  # an error's words go into nightly.json: data, in English
                return audit(led, FileStore(led.home.archive_dir, led.home.perms),
                             percent=share).to_json()
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
@click.option("--as-of", "as_of", type=DATE, metavar="DATE",
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
@click.option("--derived-days", type=click.IntRange(min=0), default=DERIVED_DAYS,
              show_default=True, metavar="N", help="Re-check every row of the reconciler's "
              "derived tables against its entry within N nights (each night checks 1/N of "
              "the entries, continuing the rotation, besides the rows of the night's new "
              "entries); 0 checks only those.")
@by_option
def nightly_cmd(home: str | None, db: str | None, report_dir: Path, as_of: datetime | None,
                rules_file: Path | None, lock_max_age: int, fixity_days: int,
                derived_days: int, by: str | None) -> None:
    """Nightly run: lock, verify, audit, reconcile, sign a checkpoint, write the reports.

    Two runs never overlap: a second one exits 2 at once; a stale lock (its process
    gone, or older than --lock-max-age) is taken over. On an integrity failure the
    report holds LEDGER_INTEGRITY and nothing is signed. The reports say what is
    new, closed and reopened since the last run; a run for an earlier day than the
    last one is a look back that changes no break's state. Exit codes: 0 clean, 1
    breaks found, a voucher file failing its audit or a bank account not balanced,
    2 could not run, 3 integrity failure.

    With --by insurance,region the reports also summarise the breaks per insurance
    and region (funds.csv, and in report.json and report.html).

    Example:

    \b
        BFA_HOME=/srv/bfa/home bfa nightly --report-dir /srv/bfa/reports

        bfa nightly --report-dir /srv/bfa/reports --by insurance,region
    """
    from reconcile import parse_by

    keys = () if by is None else parse_by(by)
    rules = None
    if rules_file is not None:
        from reconcile import load_rules

        rules = load_rules(rules_file)
    with open_ledger(home, db) as led:
        result = run_nightly(led, report_dir, as_of.date() if as_of else None, rules,
                             lock_max_age=lock_max_age,
                             archive_step=_fixity_step(fixity_days) if fixity_days else None,
                             derived_days=derived_days, by=keys)
    if result.lock_note:
        click.echo(f"bfa: warning: {result.lock_note}", err=True)
    # one line, as cron logs it and people grep it
    click.echo(_("nightly {as_of}: {summary}").format(as_of=result.report.run.as_of,
                                                       summary=result.summary_line()))
    raise click.exceptions.Exit(result.exit_code)
