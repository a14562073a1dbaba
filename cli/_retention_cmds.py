"""Commands ``bfa archive hold|release|due|appraise|dispose|signoff``: retention, legal hold
and disposal of voucher records under 会计档案管理办法 (2015), FORMAT.md §11.3.

Registered on the ``archive`` group of ``cli._archive_cmds`` (which imports this module
last); each parses, calls ``archive`` once and renders.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli._archive_cmds import archive_group
from cli._exit import Exit
from cli._options import DATE, TEXT, home_options, json_option, open_ledger, user_option
from cli._render import table, terminal_width, to_json
from ledger import printable
from reconcile import label
from schemas import N_
from schemas import gettext as _

if TYPE_CHECKING:
    from archive import HoldResult

_POSTS = ("unit_head", "archive_head", "archive_handler", "accounting_head",
          "accounting_handler", "supervise_archive", "supervise_accounting", "supervise_it")
"""archive.POSTS, named here so that ``--help`` does not import the archive."""

_DATE = DATE


def _table(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """:func:`cli._render.table` of ``rows`` under translated headers: ``columns`` maps
    each row key to its header's message id (widths are display columns of the
    translated header, as ``table`` measures them)."""
    heads = {key: _(msgid) for key, msgid in columns.items()}
    return table([{heads[k]: r.get(k, "") for k in columns} for r in rows],
                 list(heads.values()), fit=terminal_width())


def _hold_out(res: HoldResult, as_json: bool) -> None:
    if as_json:
        click.echo(to_json(res.to_json()))
        return
    fields = {"id": res.id, "record": printable(res.record["id"]),
              "user": printable(res.user), "reason": printable(res.reason)}
    if res.action == "hold":
        click.echo(_("{id}: {record} on hold, by {user}: {reason}").format(**fields))
    else:
        click.echo(_("{id}: {record} released ({hold}), by {user}: {reason}").format(
            hold=res.released, **fields))


@archive_group.command("hold")
@home_options
@json_option
@user_option
@click.argument("record_id", metavar="ID", type=TEXT)
@click.option("--reason", required=True, type=TEXT, metavar="TEXT",
              help="Why the record is held (one line, recorded in the ledger).")
def hold_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
             record_id: str, reason: str) -> None:
    """Put a voucher record on legal hold: it is not disposed of, nor its file deleted.

    The hold is a control.hold entry of the ledger (who, when, why) and lasts until
    'bfa archive release'. A record that an unresolved break names, or that refers to a
    record an unresolved break names, is held without this command. Exit codes: 0 held,
    2 unknown record, on hold already, or disposed of.

    Example:

    \b
        bfa archive hold FR-2026-11-0001 --reason "audit 2026-17 asks for it"
    """
    from archive import place_hold

    with open_ledger(home, db) as led:
        res = place_hold(led, record_id, reason, label=user)
    _hold_out(res, as_json)
    raise click.exceptions.Exit(Exit.CLEAN)


@archive_group.command("release")
@home_options
@json_option
@user_option
@click.argument("record_id", metavar="ID", type=TEXT)
@click.option("--reason", required=True, type=TEXT, metavar="TEXT",
              help="Why the hold ends (one line, recorded in the ledger).")
def release_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
                record_id: str, reason: str) -> None:
    """Release a voucher record's legal hold (a control.hold entry, action release).

    A record held by an open break stays held until the break is resolved. Exit codes:
    0 released, 2 unknown record or not on hold by hand.

    Example:

    \b
        bfa archive release FR-2026-11-0001 --reason "audit 2026-17 closed"
    """
    from archive import release_hold

    with open_ledger(home, db) as led:
        res = release_hold(led, record_id, reason, label=user)
    _hold_out(res, as_json)
    raise click.exceptions.Exit(Exit.CLEAN)


_STATE_TEXT = {"held": N_("on hold"), "break": N_("held by an open break"), "due": N_("due")}


@archive_group.command("due")
@home_options
@json_option
@click.option("--as-of", "as_of", type=_DATE, metavar="DATE",
              help="Retention ended by this date. [default: today, Asia/Shanghai]")
def due_cmd(home: str | None, db: str | None, as_json: bool, as_of: datetime | None) -> None:
    """List the voucher records whose retention ended, by kind and year, with their state.

    Retention runs from 1 January after the year of occurred_at (Asia/Shanghai) for the
    record's retention, never less than its kind's minimum (会计档案管理办法 2015);
    permanent records are never due. State: on hold (bfa archive hold), held by an open
    break, or due (for appraisal). Records disposed of are left out. Reads only; exit 0.

    Example:

    \b
        bfa archive due
        bfa archive due --as-of 2057-01-01 --json
    """
    from archive import vouchers_due

    with open_ledger(home, db) as led:
        rep = vouchers_due(led, as_of.date() if as_of else None)
    if as_json:
        click.echo(to_json(rep.to_json()))
        raise click.exceptions.Exit(Exit.CLEAN)
    counts = {"date": rep.as_of.isoformat(), "records": len(rep.records),
              "due": rep.count("due"), "held": rep.count("held"), "broken": rep.count("break")}
    if rep.disposed:
        click.echo(_("retention ended by {date}: {records} record(s): {due} due, {held} on "
                     "hold, {broken} held by an open break ({disposed} disposed of already)"
                     ).format(disposed=rep.disposed, **counts))
    else:
        click.echo(_("retention ended by {date}: {records} record(s): {due} due, {held} on "
                     "hold, {broken} held by an open break").format(**counts))
    if rep.records:
        by_kind = [{**r, "kind": label("kind", str(r.get("kind", "")))}
                   for r in rep.by_kind_year()]
        click.echo(_table(by_kind, {"kind": N_("kind"), "year": N_("year"),
                                               "due": N_("due"), "held": N_("held"),
                                               "break": N_("break")}))
        rows = [{"record": r.voucher.id, "kind": label("kind", r.voucher.kind),
                 "year": r.voucher.year,
                 "retention": label("retention", r.voucher.retention), "kept": r.kept,
                 "due on": r.voucher.due.isoformat() if r.voucher.due else "",
                 "state": _state(r.state, r.held_by(), r.listed)} for r in rep.records[:50]]
        click.echo("")
        click.echo(_table(rows, {"record": N_("record"), "kind": N_("kind"),
                                 "year": N_("year"), "retention": N_("retention"),
                                 "kept": N_("kept"), "due on": N_("due on"),
                                 "state": N_("state")}))
        if len(rep.records) > 50:
            click.echo(_("… and {count} more (--json lists all)").format(
                count=len(rep.records) - 50))
    raise click.exceptions.Exit(Exit.CLEAN)


def _state(state: str, held_by: list[str], listed: str | None) -> str:
    """A due record's state as a person reads it: with what holds it, and the disposal list
    not executed yet that names it."""
    text = _(_STATE_TEXT[state]) + (f" ({', '.join(held_by)})" if held_by else "")
    return _("{state}, on list {list}").format(state=text, list=listed) if listed else text


@archive_group.command("appraise")
@home_options
@json_option
@user_option
@click.option("--as-of", "as_of", type=_DATE, metavar="DATE",
              help="Appraise the records whose retention ended by this date (not after "
                   "today). [default: today, Asia/Shanghai]")
@click.option("--opinion", required=True, type=TEXT, metavar="TEXT",
              help="The appraisal's opinion (鉴定意见), one line, recorded in the ledger.")
def appraise_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
                 as_of: datetime | None, opinion: str) -> None:
    """Record an appraisal (鉴定意见书) of the voucher records whose retention ended.

    A control.appraisal entry, kept for good, lists every due record considered (kind,
    起止年度, 应保管期限, 已保管期限, state), those proposed for disposal (due, not held,
    on no pending disposal list) and the opinion. Next: 'bfa archive dispose --list'.
    Exit codes: 0 recorded, 2 nothing due or a date after today.

    Example:

    \b
        bfa archive appraise --opinion "保管期满，无未了事项，同意销毁"
    """
    from archive import appraise

    with open_ledger(home, db) as led:
        res = appraise(led, opinion, as_of.date() if as_of else None, label=user)
    if as_json:
        click.echo(to_json(res.to_json()))
    else:
        click.echo(_("appraisal {id} as of {date}: {considered} record(s) considered, "
                     "{proposed} proposed for disposal").format(
            id=res.id, date=res.as_of.isoformat(), considered=len(res.considered),
            proposed=len(res.proposed)))
        if res.proposed:
            click.echo(_("next: {command}").format(
                command=f"bfa archive dispose --list {res.id} --out LIST.csv"))
    raise click.exceptions.Exit(Exit.CLEAN)


@archive_group.command("dispose")
@home_options
@json_option
@user_option
@click.argument("list_id", metavar="[LIST_ID]", required=False, type=TEXT)
@click.option("--list", "appraisal_id", type=TEXT, metavar="APPRAISAL_ID",
              help="Make the disposal list (销毁清册) of this appraisal; needs --out.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.csv",
              help="Where --list writes the list as CSV (UTF-8 with BOM); a new file.")
@click.option("--execute", is_flag=True,
              help="Dispose of LIST_ID now: delete the files no record still needs. Only "
                   "when every post signed.")
def dispose_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
                list_id: str | None, appraisal_id: str | None, out: Path | None,
                execute: bool) -> None:
    """Make a disposal list from an appraisal, show one, or carry it out.

    --list APPRAISAL_ID --out FILE.csv writes the list (销毁清册: record, kind, 起止年度,
    应保管期限, 已保管期限, sha256, size) and records it (control.disposal, list). Each
    post then signs it with 'bfa archive signoff'. LIST_ID alone shows its sign-offs and
    what a disposal would do today; with --execute, once every post signed (each by a
    different person), it deletes each file that no record inside retention, on hold or
    held by an open break refers to, and records the tombstone (control.disposal,
    dispose); the ledger still verifies. Exit codes: 0 done, 1 a file could not be
    deleted after the record, 2 a missing sign-off, an unknown list or appraisal,
    executed already, or a record held since the appraisal.

    Example:

    \b
        bfa archive dispose --list appraisal-0b6f... --out 销毁清册-2026.csv
        bfa archive dispose disposal-5d1c...
        bfa archive dispose disposal-5d1c... --execute
    """
    if appraisal_id is not None:
        if list_id is not None or execute:
            raise click.UsageError(
                _("--list makes a new list: give no LIST_ID and no --execute"))
        if out is None:
            raise click.UsageError(
                _("--list needs --out FILE.csv, where the list is written"))
        _make_list(home, db, as_json, user, appraisal_id, out)
        return
    if list_id is None:
        raise click.UsageError(_("name a disposal list (LIST_ID), or make one with --list "
                                 "APPRAISAL_ID --out FILE.csv"))
    if out is not None:
        raise click.UsageError(_("--out goes with --list APPRAISAL_ID"))
    from archive import FileStore, dispose

    with open_ledger(home, db) as led:
        res = dispose(led, FileStore(led.home.archive_dir, led.home.perms), list_id,
                      execute=execute, label=user)
    if as_json:
        click.echo(to_json(res.to_json()))
    else:
        lst = res.listing
        if res.executed:
            click.echo(_("disposed ({id}): {records} record(s) of {list}; {deleted} file(s) "
                         "deleted, {absent} absent already, {kept} kept").format(
                id=res.id, records=len(res.records), list=lst.id, deleted=len(res.deleted),
                absent=len(res.absent), kept=len(res.kept)))
        else:
            if lst.executed:
                click.echo(_("disposal list {id} (appraisal {appraisal}): {records} "
                             "record(s), executed ({disposal})").format(
                    id=lst.id, appraisal=lst.appraisal, records=len(lst.rows),
                    disposal=lst.executed[0]))
            else:
                click.echo(_("disposal list {id} (appraisal {appraisal}): {records} "
                             "record(s)").format(id=lst.id, appraisal=lst.appraisal,
                                                 records=len(lst.rows)))
            signs = [{"post": p, "title": s.to_json()["title"] if s else "",
                      "signed by": s.user if s else "-", "entry": s.seq if s else ""}
                     for p, s in ((p, lst.signed(p)) for p in lst.posts)]
            click.echo(_table(signs, {"post": N_("post"), "title": N_("title"),
                                      "signed by": N_("signed by"), "entry": N_("entry")}))
            if not lst.executed:
                click.echo(_("as of {date} it would dispose of {records} record(s), delete "
                             "{deleted} file(s) and keep {kept}").format(
                    date=res.as_of.isoformat(), records=len(res.records),
                    deleted=len(res.deleted), kept=len(res.kept)))
        for v, why in res.retained:
            click.echo("  " + _("record {id} retained: {why}").format(
                id=printable(v.id), why=printable(why)))
        for sha, why in res.kept:
            click.echo("  " + _("file {sha}… kept: {why}").format(sha=sha[:16],
                                                                why=printable(why)))
        if not res.executed and not lst.executed:
            if lst.missing:
                click.echo(_("nothing deleted: still to sign: {posts}").format(
                    posts=", ".join(lst.missing)))
            else:
                click.echo(_("nothing deleted: run '{command}'").format(
                    command=f"bfa archive dispose {lst.id} --execute"))
    for path in res.leftovers:  # the tombstone lists it as deleted: finish by hand
        click.echo(_("bfa: warning: {path} could not be deleted after the disposal was "
                     "recorded; delete it by hand").format(path=path), err=True)
    raise click.exceptions.Exit(Exit.PROBLEMS if res.leftovers else Exit.CLEAN)


def _make_list(home: str | None, db: str | None, as_json: bool, user: str | None,
               appraisal_id: str, out: Path) -> None:
    from archive import make_disposal_list

    with open_ledger(home, db) as led:
        res = make_disposal_list(led, appraisal_id, out, label=user)
    if as_json:
        click.echo(to_json(res.to_json()))
    else:
        click.echo(_("disposal list {id}: {records} record(s) written to {out} "
                     "(sha256 {digest})").format(id=res.id, records=len(res.rows),
                                                 out=res.out, digest=res.digest))
        click.echo(_("to sign, each by a different person: {posts}").format(
            posts=", ".join(res.posts)))
        click.echo(_("next: {command}").format(
            command=f"bfa archive signoff {res.id} --post POST"))
    raise click.exceptions.Exit(Exit.CLEAN)


@archive_group.command("signoff")
@home_options
@json_option
@user_option
@click.argument("list_id", metavar="LIST_ID", type=TEXT)
@click.option("--post", required=True, type=click.Choice(_POSTS), metavar="POST",
              help="The post you sign for: " + ", ".join(_POSTS) + ".")
def signoff_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
                list_id: str, post: str) -> None:
    """Sign a disposal list (销毁清册) for your post; each post is a different person.

    Posts: unit_head (单位负责人), archive_head, archive_handler, accounting_head,
    accounting_handler (档案/会计管理机构负责人、经办人), and for electronic records the
    监销 posts supervise_archive, supervise_accounting, supervise_it. The sign-off is a
    control.disposal entry (action signoff) under your identity. Exit codes: 0 signed,
    2 an unknown list, the post signed already, you signed another post, or the list
    executed.

    Example:

    \b
        bfa archive signoff disposal-5d1c... --post unit_head
    """
    from archive import disposal_list, sign_off

    with open_ledger(home, db) as led:
        res = sign_off(led, list_id, post, label=user)
        lst = disposal_list(led, list_id)
    if as_json:
        click.echo(to_json({**res.to_json(), "list": lst.id, "missing": lst.missing}))
    else:
        title = res.to_json()["title"]
        click.echo(_("{list}: signed as {post} ({title}) by {user} (entry {seq})").format(
            list=lst.id, post=post, title=title, user=printable(res.user), seq=res.seq))
        click.echo(_("still to sign: {posts}").format(posts=", ".join(lst.missing))
                   if lst.missing else _("every post signed: {command}").format(
                       command=f"bfa archive dispose {lst.id} --execute"))
    raise click.exceptions.Exit(Exit.CLEAN)
