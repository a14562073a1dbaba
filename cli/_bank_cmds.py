"""``bfa balance``: the book-versus-bank balance report of a fund account (银行余额调节表)."""

from __future__ import annotations

from datetime import date, datetime

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import home_options, json_option, open_ledger
from cli._render import table, to_json
from reconcile import book_vs_bank, today


@bfa.command()
@home_options
@json_option
@click.option("--fund-account", required=True,
              type=click.Choice(["income", "expenditure", "fiscal_special"]),
              help="The fund account to reconcile with its bank statements.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Judge as of this date (default: today in Asia/Shanghai).")
def balance(home: str | None, db: str | None, as_json: bool, fund_account: str,
            as_of: datetime | None) -> None:
    """Book balance against bank balance, with the outstanding items on either side.

    Exit 0 when the adjusted balances agree, 1 when they do not or when no bank
    statement of the account was imported yet (nothing to compare the books with).

    Example:

    \b
        bfa balance --fund-account income --as-of 2026-11-30
    """
    day: date = as_of.date() if as_of is not None else today()
    with open_ledger(home, db) as led:
        rep = book_vs_bank(led, fund_account, day)
    if as_json:
        click.echo(to_json(rep.to_json()))
    else:
        click.echo(f"Fund account {rep.fund_account}, as of {rep.as_of}")
        click.echo(f"  bank balance  {rep.bank_balance:>16}   adjusted {rep.adjusted_bank}")
        click.echo(f"  book balance  {rep.book_balance:>16}   adjusted {rep.adjusted_book}")
        click.echo("In the books, on no statement:")
        click.echo(table(rep.book_only, ["id", "kind", "direction", "amount", "value_date",
                                         "bank_ref"]))
        click.echo("On a statement, not in the books:")
        click.echo(table(rep.bank_only, ["statement", "direction", "amount", "value_date",
                                         "bank_ref"]))
        if not rep.statements and rep.statements_read:
            click.echo(f"NOT balanced: none of the {rep.statements_read} bank statement(s) of "
                       f"the {rep.fund_account} account on or before {rep.as_of} has a closing "
                       "balance, nothing to compare the books with")
        elif not rep.statements:
            click.echo(f"NOT balanced: no bank statement of the {rep.fund_account} account on "
                       f"or before {rep.as_of}, nothing to compare the books with (import one: "
                       f"bfa ingest --format camt053 --fund-account {rep.fund_account} …)")
        else:
            click.echo("balanced" if rep.balanced else "NOT balanced")
    raise click.exceptions.Exit(Exit.CLEAN if rep.balanced else Exit.PROBLEMS)
