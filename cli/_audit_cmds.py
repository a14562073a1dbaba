"""The ``audit`` group: what the ledger says about access to personal data and rights.

``bfa audit access`` lists reveals (with their purpose), forgets and grants — and, as
other commands add them, disclosures and comparisons — from the ledger's control
entries (``ledger.Ledger.access_log``); it reads only.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

import click

from cli._app import bfa
from cli._options import DATE, TEXT, home_options, json_option, open_ledger
from cli._render import local_time, table, terminal_width, to_json
from schemas import gettext as _

COLUMNS = ["seq", "at", "action", "user", "target", "fields", "purpose"]


@bfa.group()
def audit() -> None:
    """Audit trails kept in the ledger: who accessed personal data, and rights granted.

    Example:

    \b
        bfa audit access --since 2026-11-01
    """


def _local(at: str) -> str:
    """A recorded UTC time as people read it here: Asia/Shanghai, to the second."""
    return local_time(at)


@audit.command("access")
@home_options
@click.option("--since", type=DATE, metavar="DATE",
              help="Only from this day on (Asia/Shanghai).")
@click.option("--user", "who", type=TEXT, metavar="USER",
              help="Only what this user did (letter case ignored).")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (UTF-8 with a byte-order mark).")
def audit_access(home: str | None, db: str | None, since: datetime | None, who: str | None,
                 as_json: bool, as_csv: bool) -> None:
    """List reveals, forgets, grants, disclosures and comparisons, in ledger order.

    Each line is a control entry of the ledger: who, when (Asia/Shanghai), what it
    concerned, which fields and for what purpose. Reads only.

    Example:

    \b
        bfa audit access --since 2026-11-01 --user li.wei
        bfa audit access --csv > access-2026-11.csv
    """
    if as_json and as_csv:
        raise click.UsageError(_("--json and --csv are exclusive: choose one."))
    with open_ledger(home, db) as led:
        events = led.access_log(since=since.date() if since else None, user=who)
    if as_json:
        click.echo(to_json([e.to_json() for e in events]))
        return
    rows = [{**e.to_json(), "at": _local(e.at), "fields": " ".join(e.fields)} for e in events]
    if as_csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, COLUMNS, lineterminator="\r\n")
        w.writeheader()
        w.writerows(rows)
        click.echo("\ufeff" + buf.getvalue(), nl=False)
        return
    from reconcile import label

    rows = [{**r, "action": label("action", str(r.get("action") or ""))} for r in rows]
    click.echo(table(rows, COLUMNS, fit=terminal_width(), cut="target", headers={
        "seq": _("seq"), "at": _("at"), "action": _("action"), "user": _("user"),
        "target": _("target"), "fields": _("fields"), "purpose": _("purpose")}))
