"""Commands ``bfa archive ...``: fixity audit, restore and the 四性 check of voucher files
(retention, hold and disposal: ``cli/_retention_cmds.py``)."""

from __future__ import annotations

from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import home_options, json_option, open_ledger, progress, user_option
from cli._render import pad, to_json, width
from ledger import printable
from schemas import N_
from schemas import gettext as _


@bfa.group("archive")
def archive_group() -> None:
    """Voucher files: fixity audit, restore, 四性 check, retention, hold and disposal.

    Example:

    \b
        bfa archive audit
        bfa archive check FR-2026-11-0001
    """


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return _("{n} bytes").format(n=n) if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@archive_group.command("audit")
@home_options
@json_option
@user_option
@click.option("--sample", "percent", type=click.FloatRange(0, 100, min_open=True),
              metavar="PERCENT",
              help="Re-read only this share of the store, continuing where the last audit "
                   "ended (consecutive samples sweep the whole store). [default: all]")
def audit_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
              percent: float | None) -> None:
    """Re-hash the stored voucher files and report changed, missing and untracked ones.

    Each audit is recorded in the ledger (a control.fixity entry); a changed or missing
    file becomes a FIXITY_FAILURE break (high) in the next 'bfa reconcile' and nightly.
    Exit codes: 0 every file intact, 1 problems found, 2 could not run, 3 the ledger
    itself failed a check.

    Example:

    \b
        bfa archive audit
        bfa archive audit --sample 5 --json
    """
    from archive import FileStore, audit

    share = Decimal(str(percent)) if percent is not None else None
    with open_ledger(home, db) as led, ExitStack() as stack:
        result = audit(led, FileStore(led.home.archive_dir, led.home.perms), percent=share,
                       label=user,
                       progress=lambda total: stack.enter_context(
                           progress(total, _("auditing"))))
    if as_json:
        click.echo(to_json(result.to_json()))
    else:
        # the percent sign goes with the number, so that the message id holds no '%'
        scope = (_("the whole store") if result.full else
                 _("{percent} of the store").format(percent=f"{result.percent}%"))
        click.echo(_("audit {id}: {scope}, {files} file(s), {size} re-read").format(
            id=result.id, scope=scope, files=result.files, size=_size(result.bytes)))
        kinds = {k: _(k) for k in (N_("changed"), N_("missing"), N_("untracked"),
                                   N_("disposed"))}
        col = max(10, *(width(k) + 1 for k in kinds.values()))
        for kind, items in (("changed", result.changed), ("missing", result.missing),
                            ("untracked", result.untracked)):
            click.echo(f"  {pad(kinds[kind], col)}{len(items):>6}")
            for p in items[:20]:
                names = ", ".join(p.records)
                click.echo(f"    {p.sha256[:16]}…  {names}" if names else f"    {p.sha256}")
            if len(items) > 20:
                click.echo("    " + _("… and {count} more (--json lists all)").format(
                    count=len(items) - 20))
        if result.disposed:
            click.echo(f"  {pad(kinds['disposed'], col)}{len(result.disposed):>6}  "
                       + _("(deleted by a disposal after appraisal and sign-off: "
                           "not a problem)"))
        if result.problems:
            click.echo(_("PROBLEMS: put a changed or missing file back with 'bfa archive "
                         "restore FILE'; an untracked file is named by no record"))
        else:
            click.echo(_("every file audited is intact"))
    raise click.exceptions.Exit(Exit.PROBLEMS if result.problems else Exit.CLEAN)


@archive_group.command("restore")
@home_options
@json_option
@user_option
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
def restore_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
                files: tuple[Path, ...]) -> None:
    """Put voucher files back into the store, from a backup, say.

    A file is accepted only if its bytes hash to what a voucher record says; each file
    written is recorded in the ledger (control.fixity, restore) and clears its
    FIXITY_FAILURE at the next reconciliation. A file already intact is left alone.
    Exit codes: 0 all restored (or intact), 2 a file no record names (nothing after
    it is restored).

    Example:

    \b
        bfa archive restore /mnt/backup/e-receipt-0001.ofd
    """
    from archive import FileStore, restore

    done = []
    with open_ledger(home, db) as led:
        store = FileStore(led.home.archive_dir, led.home.perms)
        for f in files:
            done.append(restore(led, store, f, label=user))
    if as_json:
        click.echo(to_json([{"file": str(f), "sha256": r.sha256, "records": list(r.records),
                             "restored": r.replaced, "id": r.id or None}
                            for f, r in zip(files, done, strict=True)]))
    else:
        for f, r in zip(files, done, strict=True):
            records = ", ".join(r.records)
            click.echo(_("{file}: restored ({id}): {records}").format(
                file=f, id=r.id, records=records) if r.replaced else
                _("{file}: already intact: {records}").format(file=f, records=records))
    raise click.exceptions.Exit(Exit.CLEAN)





@archive_group.command("check")
@home_options
@json_option
@user_option
@click.argument("ids", nargs=-1, metavar="[ID]...")
def check_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
              ids: tuple[str, ...]) -> None:
    """Run the 四性 check (DA/T 70) on voucher records: every one, or the IDs named.

    Authenticity, integrity, usability, security of the stored file, by its content
    (PDF, OFD with its SM3 digests, XML, images), and the record's retention against its
    kind's minimum. Every check is recorded in the ledger (control.voucher_check); a
    voucher that fails is one VOUCHER_DEFECT break at the next reconciliation, and one
    that passes again clears it. Ingest runs the same check on every voucher it appends.
    Exit codes: 0 all pass, 1 a voucher fails, 2 an unknown ID or could not run.

    Example:

    \b
        bfa archive check FR-2026-11-0001 --json
        bfa archive check
    """
    from archive import FileStore, check_vouchers

    with open_ledger(home, db) as led, ExitStack() as stack:
        rep = check_vouchers(led, FileStore(led.home.archive_dir, led.home.perms), ids,
                             label=user,
                             progress=lambda n: stack.enter_context(
                                 progress(n, _("checking"))))
    if as_json:
        click.echo(to_json(rep.to_json()))
    else:
        if rep.cleared:
            click.echo(_("check {id}: {checked} voucher(s), {failing} failing, "
                         "{cleared} cleared").format(id=rep.id, checked=len(rep.checks),
                                                     failing=len(rep.failed),
                                                     cleared=len(rep.cleared)))
        else:
            click.echo(_("check {id}: {checked} voucher(s), {failing} failing").format(
                id=rep.id, checked=len(rep.checks), failing=len(rep.failed)))
        shown = rep.checks if ids else rep.failed
        for c in shown[:50]:
            verdict = (_("{record} ({kind}, {format}): pass") if c.ok else
                       _("{record} ({kind}, {format}): FAIL"))
            click.echo("  " + verdict.format(record=printable(c.record), kind=c.kind,
                                             format=c.format))
            for f in c.findings:
                part = f" [{f['part']}]" if f.get("part") else ""
                click.echo(f"    {f['property']}: {printable(str(f['detail']))}{part}")
            if ids:
                for prop, note in sorted(c.notes.items()):
                    click.echo(f"    {prop}: {note}")
        if len(shown) > 50:
            click.echo("  " + _("… and {count} more (--json lists all)").format(
                count=len(shown) - 50))
    raise click.exceptions.Exit(Exit.PROBLEMS if rep.failed else Exit.CLEAN)


import cli._retention_cmds  # noqa: F401,E402
