"""The ``reconcile`` command: run the reconciler once and render its report.

Rendering lives in :mod:`reconcile.reports._render` (text, JSON, CSV, HTML); this module
only parses options, calls :func:`reconcile.run_reconcile` and writes the output.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import (
    DATE,
    as_of_day,
    by_option,
    given,
    home_options,
    json_option,
    open_ledger,
)
from ledger import write_atomic
from reconcile import (
    fund_view,
    parse_by,
    reconcile_and_track,
    render_csv,
    render_fund_csv,
    render_html,
    render_json,
    render_text,
)
from schemas import gettext as _


@bfa.command()
@home_options
@click.option("--as-of", "as_of", type=DATE, metavar="DATE",
              help="Judge settlement windows as of this date. [default: today, Asia/Shanghai]")
@click.option("--period", default=None, metavar="YYYY-MM",
              help="Judge as of the last day of this month (instead of --as-of).")
@click.option("--rules", "rules_file", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rules file (TOML) overriding the built-in default rules.")
@json_option
@click.option("--csv", "as_csv", is_flag=True,
              help="Print one CSV row per break, with its workflow columns.")
@click.option("--encoding", type=click.Choice(["utf-8", "gb18030"]), default="utf-8",
              show_default=True,
              help="CSV: UTF-8 with a byte-order mark (Excel reads it), or GB18030.")
@click.option("--html", "html_file", metavar="FILE",
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write a self-contained HTML report with charts to FILE.")
@click.option("--full", is_flag=True,
              help="Re-check every item, not only what changed since the last run and "
                   "the open items (the report is the same; for audits and after a "
                   "restore).")
@by_option
def reconcile(home: str | None, db: str | None, as_of: datetime | None, period: str | None,
              rules_file: Path | None, as_json: bool, as_csv: bool, encoding: str,
              html_file: Path | None, full: bool, by: str | None) -> None:
    """Reconcile business events, fund movements and vouchers; report the breaks.

    Prints a summary by break code (amount at risk, severity), or the full report
    with --json or --csv; --html FILE writes a page with charts that opens offline.
    Items still inside their settlement window are listed as expected, not as
    breaks. A run re-checks what changed since the last run and every open item;
    --full re-checks everything. Exits 1 when breaks are left to work, 0 when every
    break is resolved. --by insurance,region also summarises the breaks per
    insurance and pooling region (分险种核算); with --csv, one row per group.

    Example:

    \b
        bfa reconcile --as-of 2026-12-31 --json > report.json

        bfa reconcile --rules rules.toml --csv --html report.html > breaks.csv

        bfa reconcile --full --json > audit.json

        bfa reconcile --period 2026-11 --by insurance,region --html funds.html
    """
    if as_json and as_csv:
        raise click.UsageError(_("--json and --csv are exclusive: choose one."))
    if not as_csv and given(click.get_current_context(), "encoding"):
        raise click.UsageError(_("--encoding is the encoding of the CSV: give it with --csv."))
    keys = None if by is None else parse_by(by)
    with open_ledger(home, db) as led:
        report = reconcile_and_track(led, as_of_day(as_of, period), rules_file,
                                     full=full)
        view = None if keys is None else fund_view(led, report, keys)
    if html_file is not None:
        try:
            write_atomic(html_file, render_html(report, by=view), led.home.perms)
        except OSError as e:
            click.echo("bfa: error: " + _("cannot write {file}: {error}").format(
                file=html_file, error=e.strerror or e), err=True)
            raise click.exceptions.Exit(int(Exit.COULD_NOT_RUN)) from e
    if as_csv:
        from reconcile import list_breaks

        if view is not None:  # one row per group
            rows = render_fund_csv(view, bom=encoding == "utf-8")
        else:
            with open_ledger(home, db) as led:
                states = {s.break_id: s for s in list_breaks(led, include_gone=True)}
            rows = render_csv(report, states, bom=encoding == "utf-8")
        if encoding == "gb18030":
            sys.stdout.flush()
            sys.stdout.buffer.write(rows.encode("gb18030"))
            sys.stdout.buffer.flush()
        else:
            click.echo(rows, nl=False)
    else:
        click.echo(render_json(report, view) if as_json else render_text(report, view),
                   nl=False)
    if html_file is not None and not (as_json or as_csv):
        click.echo(_("wrote {file}").format(file=html_file))
    if report.integrity_failed:
        raise click.exceptions.Exit(int(Exit.INTEGRITY))
    if not report.clean:
        raise click.exceptions.Exit(int(Exit.PROBLEMS))
