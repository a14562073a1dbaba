"""``bfa compare``: record an outside death list for the entitlement rules and prechecks."""

from __future__ import annotations

from pathlib import Path

import click

from cli._app import bfa
from cli._options import TEXT, home_options, json_option, open_ledger, user_option
from cli._render import to_json
from reconcile import COMPARE_KINDS, compare_list
from schemas import gettext as _


@bfa.command()
@home_options
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(COMPARE_KINDS), required=True,
              help="What the list says: death (civil affairs, public security).")
@click.option("--source", type=TEXT, default=None, metavar="NAME",
              help="Who sent the list (default: the file's name).")
@click.option("--encoding", type=click.Choice(["auto", "utf-8", "gb18030"]), default="auto",
              show_default=True, help="The file's encoding; auto tries UTF-8, then GB18030.")
@json_option
@user_option
def compare(home: str | None, db: str | None, file: Path, kind: str, source: str | None,
            encoding: str, as_json: bool, user: str | None) -> None:
    """Record an outside list (deaths) in the ledger for the entitlement rules.

    FILE is a CSV of person_id,date lines (a header line is optional): 18-digit
    or 15-digit citizen identity numbers, dates as YYYY-MM-DD, YYYYMMDD or
    YYYY/MM/DD. Numbers are normalised and pseudonymised in memory; the ledger
    keeps only the pseudonyms and dates (control.compare entries), with the
    source, the file's SHA-256 and who compared it. A file with a bad line is
    refused whole; the same file again records nothing. The next 'bfa
    reconcile' reports PAYMENT_AFTER_DEATH and DEATH_NOT_RECORDED.

    Example:

    \b
        bfa compare deaths-2026-11.csv --kind death --source 民政局
        bfa compare gongan.csv --kind death --encoding gb18030 --json
    """
    with open_ledger(home, db) as led:
        done = compare_list(led, file, kind=kind, source=source, encoding=encoding,
                            label=user)
    if as_json:
        click.echo(to_json(done.to_json()))
        return
    click.echo(_("compared {file} ({source}): {lines} line(s), {persons} person(s),\n"
                 "{known} of them named by the ledger's records").format(
        file=file, source=done.source, lines=done.lines, persons=done.persons,
        known=done.known))
    if done.already:
        click.echo(_("this file (the same SHA-256) was compared before, as entries from "
                     "{seq}:\nnothing recorded").format(seq=done.seqs[0]))
        return
    click.echo(_("recorded: {count} pair(s) in {n} control.compare entr(ies) from {seq};\n"
                 "the list's SHA-256: {digest}").format(
        count=done.count, n=len(done.seqs), seq=done.seqs[0], digest=done.digest))
    click.echo(_("run 'bfa reconcile' to see the findings"))
