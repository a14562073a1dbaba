"""The ``reconcile`` command: run the reconciler and render its report."""

from __future__ import annotations

from datetime import datetime

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import home_options, json_option, open_ledger
from cli._render import table, to_json
from reconcile import run_reconcile


@bfa.command()
@home_options
@json_option
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="DATE",
              help="Judge settlement windows as of this date. [default: today, Asia/Shanghai]")
def reconcile(home: str | None, db: str | None, as_json: bool, as_of: datetime | None) -> None:
    """Reconcile business events, fund movements and vouchers; report the breaks.

    Items still inside their settlement window are listed as expected, not as
    breaks. Exits 1 when there are breaks, 0 when the ledger reconciles clean.

    Example:

        bfa reconcile --as-of 2026-12-31 --json > report.json
    """
    with open_ledger(home, db) as led:
        report = run_reconcile(led, as_of.date() if as_of else None)
    if as_json:
        click.echo(to_json(report.to_json()))
    else:
        s = report.summary
        click.echo(table(report.summary_rows(), ["code", "severity", "breaks", "amount_at_risk"]))
        click.echo(f"as of {report.run.as_of}: {s.breaks} breaks, amount at risk "
                   f"{s.amount_at_risk}, {s.expected} expected (inside their window)")
    if not report.clean:
        raise click.exceptions.Exit(int(Exit.PROBLEMS))
