"""``bfa balance``: the 银行存款余额调节表 of each bank account, and the opening balances the
agency records (``bfa balance opening``)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import (
    DATE,
    TEXT,
    as_of_day,
    home_options,
    json_option,
    open_ledger,
    user_option,
)
from cli._render import clip, local_time, to_json, width
from cli._render import wrapped as _wrapped
from ledger import InputError, printable
from reconcile import (
    ITEM_KINDS,
    ITEM_NAMES,
    LABELS,
    AccountReconciliation,
    BankReconciliation,
    archive_statements,
    bank_reconciliation,
    label,
    parse_yuan,
    record_opening,
    statement_accounts,
    statement_csv,
    today,
)
from schemas import gettext as _

_FUNDS = click.Choice(["income", "expenditure", "fiscal_special"])


def _fund(code: str) -> str:
    """A fund account as people read it: ``收入户 (income)`` in Chinese, ``income`` in
    English."""
    name = label("fund_account", code)
    return code if name == code else _("{name} ({code})").format(name=name, code=code)


def _name(key: str) -> str:
    """The name of a line or kind of item of the statement (``LABELS``, ``ITEM_NAMES``) in
    the reader's language."""
    return _(LABELS.get(key) or ITEM_NAMES[key])


def _as_of(as_of: datetime | None, period: str | None) -> date:
    return as_of_day(as_of, period) or today()


@bfa.group(invoke_without_command=True)
@home_options
@json_option
@click.option("--csv", "as_csv", is_flag=True,
              help="CSV (UTF-8 with a byte-order mark, for Excel): one row per line of "
                   "each statement.")
@click.option("--html", "html_file", default=None, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the statements as a self-contained HTML page.")
@click.option("--fund-account", type=_FUNDS, default=None,
              help="Only the bank accounts of this fund account.")
@click.option("--bank-account", default=None, metavar="NUMBER",
              help="Only this bank account (its number as on the statements).")
@click.option("--region", default=None, metavar="CODE", type=TEXT,
              help="Only the bank accounts of this pooling region (统筹区, as the home's "
                   "map of bank accounts gives it).")
@click.option("--as-of", type=DATE, default=None,
              help="Reconcile as of this day (default: today in Asia/Shanghai).")
@click.option("--period", default=None, metavar="YYYY-MM",
              help="Reconcile as of the last day of this month.")
@click.pass_context
def balance(ctx: click.Context, home: str | None, db: str | None, as_json: bool,
            as_csv: bool, html_file: Path | None, fund_account: str | None,
            bank_account: str | None, region: str | None, as_of: datetime | None,
            period: str | None) -> None:
    """The bank reconciliation statement (银行存款余额调节表) of each bank account.

    Book side: the opening balance the agency recorded (bfa balance opening) plus
    the movements it booked on the account, by booking date. Bank side: the
    latest statement's closing balance. Items in transit on either side are
    listed with their records; a same-reference amount disagreement is
    unexplained. Exit 0 when every account is balanced, 1 when one is not (or
    has no statement or no opening balance). Movements carry no insurance: the
    statement is per bank account and region (--region), never per insurance.

    Example:

    \b
        bfa balance opening --bank-account 6222000011112222 --date 2026-11-01 --amount 1000.00
        bfa balance --period 2026-11
        bfa balance --fund-account income --as-of 2026-11-30 --csv > 调节表.csv
        bfa balance --region 440100 --period 2026-11
    """
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        raise InputError(_("give --json or --csv, not both"))
    day = _as_of(as_of, period)
    with open_ledger(home, db) as led:
        rep = bank_reconciliation(led, day, fund_account=fund_account,
                                  bank_account=bank_account, region=region)
    if html_file is not None:
        from reconcile import render_bank_html

        try:
            html_file.write_text(render_bank_html(rep), encoding="utf-8")
        except OSError as e:
            raise InputError(_("--html {file}: cannot write: {error}").format(
                file=html_file, error=e.strerror or e)) from e
    if as_json:
        click.echo(to_json(rep.to_json()))
    elif as_csv:
        click.echo(statement_csv(rep), nl=False)
    else:
        click.echo(statement_text(rep, fund_account, region))
    raise click.exceptions.Exit(Exit.CLEAN if rep.balanced else Exit.PROBLEMS)


@balance.command("opening")
@home_options
@json_option
@user_option
@click.option("--bank-account", required=True, metavar="NUMBER",
              help="The bank account, its number as on the statements.")
@click.option("--date", "day", required=True, type=DATE,
              help="The day the balance is at the start of (Asia/Shanghai).")
@click.option("--amount", required=True, metavar="YUAN",
              help="The agency's book balance of the account at the start of that day.")
def opening(home: str | None, db: str | None, as_json: bool, user: str | None,
            bank_account: str, day: datetime, amount: str) -> None:
    """Record the agency's book balance of a bank account at the start of a day.

    The book side of every later statement starts from it (a control entry in the
    ledger, with who recorded it). Record it on a day when books and bank agree,
    such as the first day after a reconciled month.

    Example:

    \b
        bfa balance opening --bank-account 6222000011112222 --date 2026-11-01 --amount 1000.00
    """
    fen = parse_yuan(amount)
    with open_ledger(home, db) as led:
        got = record_opening(led, bank_account, day.date(), fen, user)
        known = (led.home.bank_account(got.bank_account) is not None
                 or got.bank_account in statement_accounts(led))
    if as_json:
        click.echo(to_json(got.to_json()))
    else:
        click.echo(_("opening balance of bank account {account} at the start of {day}: "
                     "{amount} (recorded as {id}, ledger entry {seq}, by {user})").format(
            account=printable(got.bank_account), day=got.day, amount=yuan(got.amount),
            id=got.id, seq=got.seq, user=printable(got.user)))
    if not known:
        click.echo("bfa: warning: " + _(
            "no statement of bank account {account} was imported and this home does not map "
            "it (bfa bank-account list): is the number as on the bank's statements?").format(
            account=printable(got.bank_account)), err=True)


def yuan(fen: int, sign: str = "¥") -> str:
    """``¥1,234.56`` (``-¥20.00``): thousands separators, exact to the fen."""
    whole, part = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{sign}{whole:,}.{part:02d}"


def _line(label: str, fen: int | None, cols: int = 64) -> str:
    money = "" if fen is None else yuan(fen)
    return f"  {label}{' ' * max(1, cols - width(label) - len(money))}{money}"


def statement_text(rep: BankReconciliation, fund_account: str | None,
                   region: str | None = None) -> str:
    """The statements for a terminal of 80 columns."""
    out = [_("Bank reconciliation statement as of {as_of}").format(as_of=rep.as_of)]
    if region is not None:
        out[0] = _("Bank reconciliation statement of region {region} as of {as_of}").format(
            region=region, as_of=rep.as_of)
    if not rep.accounts and region is not None:
        out += _wrapped(_("NOT balanced: no bank statement of region {region} matches (bfa "
                          "ingest --format camt053 …): nothing to compare the books with")
                        .format(region=region), "")
        return "\n".join(out)
    if not rep.accounts:
        none = (_("NOT balanced: no bank statement of the {fund_account} account was imported "
                  "(bfa ingest --format camt053 …): nothing to compare the books with")
                if fund_account else
                _("NOT balanced: no bank statement was imported (bfa ingest --format camt053 "
                  "…): nothing to compare the books with"))
        out += _wrapped(none.format(fund_account=label("fund_account", fund_account)), "")
        return "\n".join(out)
    for a in rep.accounts:
        out += ["", *_account_text(a)]
    totals = rep.totals()
    if len(rep.accounts) > 1 and totals:
        out += ["", _("Per fund account (accounts that could be reconciled):")]
        for fa, tot in sorted(totals.items()):
            out.append("  " + _fund(fa))
            for key in ("bank_balance", "book_balance", "adjusted_bank", "adjusted_book",
                        "difference"):
                out.append(_line("  " + _name(key), parse_yuan(tot[key])))
    bad = [a for a in rep.accounts if not a.balanced]
    out += ["", _("balanced") if not bad else
            _("NOT balanced: {count} of {total} bank account(s)").format(
                count=len(bad), total=len(rep.accounts))]
    return "\n".join(out)


def _account_text(a: AccountReconciliation) -> list[str]:
    fa = _fund(a.fund_account) if a.fund_account else _("no fund account")
    head = _wrapped(_("bank account {account} ({fund_account}, region {region})").format(
        account=a.bank_account, fund_account=fa, region=a.region or "-"), "")
    if len(a.bank_accounts) > 1:
        head += _wrapped(_("(these accounts serve one fund account in one region: the "
                           "movements do not say which of them moved the money, so they are "
                           "reconciled together)"))
    for st in a.statements:
        head.append("  " + _("statement {id}, closing {day}").format(
            id=printable(st.id), day=st.closing_date))
    for o in a.openings:
        head.append("  " + _("opening balance {amount} at the start of {day} (ledger entry "
                             "{seq})").format(amount=yuan(o.amount), day=o.day, seq=o.seq))
    if a.problem is not None:
        return [*head, *_wrapped(_("NOT balanced: {problem}").format(
            problem=a.problem_text()))]
    sums = {k: sum(i.amount for i in a.items[k]) for k in ITEM_KINDS}
    lines = [
        *head, "",
        _line(_name("bank_balance"), a.bank),
        _line("+ " + _name("book_credit"), sums["book_credit"]),
        _line("- " + _name("book_debit"), sums["book_debit"]),
        _line("= " + _name("adjusted_bank"), a.adjusted_bank), "",
        _line(_name("book_balance"), a.book),
        _line("+ " + _name("bank_credit"), sums["bank_credit"]),
        _line("- " + _name("bank_debit"), sums["bank_debit"]),
        _line("= " + _name("adjusted_book"), a.adjusted_book), "",
        _line(_name("difference"), a.difference), ""]
    for k in ITEM_KINDS:
        if a.items[k]:
            lines.append("  " + _("{name}:").format(name=_name(k)))
            lines += [_item(i.day, i.record, i.bank_ref, i.amount) for i in a.items[k]]
    if a.unexplained:
        lines.append("  " + _("{name} (same reference, another amount):").format(
            name=_name("unexplained")))
        for i in a.unexplained:
            lines += _wrapped(_("{day} {record} bank {amount}, books {book_amount} "
                                "({movement}, ref {ref})").format(
                day=i.day, record=i.record, amount=yuan(i.amount),
                book_amount=yuan(i.book_amount or 0), movement=i.movement or "",
                ref=i.bank_ref), "    ")
    if a.balanced:
        verdict = _("balanced")
    elif a.unexplained:
        verdict = _("NOT balanced: difference {difference}, {count} unexplained").format(
            difference=yuan(a.difference or 0), count=len(a.unexplained))
    else:
        verdict = _("NOT balanced: difference {difference}").format(
            difference=yuan(a.difference or 0))
    return [*lines, f"  {verdict}"]


def _item(day: str, record: str, ref: str, fen: int) -> str:
    money = yuan(fen)
    text = clip("    " + _("{day}  {record}  ref {ref}").format(
        day=day, record=printable(record), ref=printable(ref)), 64 - len(money))
    return f"{text}{' ' * max(2, 66 - width(text) - len(money))}{money}"


@balance.command("archive")
@home_options
@json_option
@user_option
@click.option("--fund-account", type=_FUNDS, default=None,
              help="Only the bank accounts of this fund account.")
@click.option("--bank-account", default=None, metavar="NUMBER", help="Only this bank account.")
@click.option("--period", required=True, metavar="YYYY-MM",
              help="The month whose statements to keep (as of its last day).")
def archive_cmd(home: str | None, db: str | None, as_json: bool, user: str | None,
                fund_account: str | None, bank_account: str | None, period: str) -> None:
    """Keep each bank account's statement of a month in the archive (10 years).

    Each account's 银行存款余额调节表 as of the month's last day, as CSV, becomes an
    archive.reconciliation_statement record whose file is in the voucher store
    (checked like every voucher; audited by bfa archive audit). Archiving the same
    statement again changes nothing. Exit 0 when every account's statement was
    kept, 1 when an account could not be reconciled (no statement or opening).

    Example:

    \b
        bfa balance archive --period 2026-11
    """
    from archive import FileStore, Intake  # the layer above reconcile: only for this command

    day = _as_of(None, period)
    with open_ledger(home, db) as led:
        rep = bank_reconciliation(led, day, fund_account=fund_account,
                                  bank_account=bank_account)
        kept = archive_statements(led, rep, Intake(FileStore(led.home.archive_dir,
                                                             led.home.perms)), user)
    if as_json:
        click.echo(to_json({"as_of": rep.as_of, "accounts": [k.to_json() for k in kept]}))
    else:
        if not kept:
            click.echo(_("no bank statement on or before {as_of}: nothing to archive").format(
                as_of=rep.as_of))
        for k in kept:
            acct = printable(k.bank_account)
            if k.problem is not None:
                click.echo(_("{account}: not archived: {problem}").format(
                    account=acct, problem=k.problem_shown or k.problem))
                continue
            if k.appended:
                done = (_("{account}: archived as {id}") if k.balanced else
                        _("{account}: archived as {id} (NOT balanced)"))
            else:
                done = (_("{account}: already archived as {id}") if k.balanced else
                        _("{account}: already archived as {id} (NOT balanced)"))
            click.echo(done.format(account=acct, id=k.record_id))
    whole = bool(kept) and all(k.problem is None for k in kept)
    raise click.exceptions.Exit(Exit.CLEAN if whole else Exit.PROBLEMS)


@bfa.group("bank-account")
def bank_account_group() -> None:
    """The agency's bank accounts: which fund account and region each serves.

    Statements are read through this map (bfa ingest --format camt053|mt940): an
    account it does not hold is refused unless --fund-account and --region are
    given. The map is in this home's config.json; bfa init --from copies it.

    Example:

    \b
        bfa bank-account set 6222000011112222 --fund-account income --region 440100
    """


@bank_account_group.command("set")
@home_options
@click.argument("number")
@click.option("--fund-account", type=_FUNDS, required=True,
              help="收入户 income, 支出户 expenditure or 财政专户 fiscal_special.")
@click.option("--region", required=True, metavar="CODE", help="Pooling-region code (6 digits).")
def bank_account_set(home: str | None, db: str | None, number: str, fund_account: str,
                     region: str) -> None:
    """Map a bank account (its number as on the statements) to a fund account and region.

    Example:

    \b
        bfa bank-account set 6222000011112222 --fund-account income --region 440100
    """
    from ledger import check_bank_account, resolve_home, set_bank_account

    account = check_bank_account(number, fund_account, region)
    here = resolve_home(home, db)
    before = here.bank_account(account.number)
    set_bank_account(here, account)
    click.echo(_("bank account {number}: {fund_account}, region {region}").format(
        number=printable(account.number), fund_account=_fund(fund_account), region=region))
    if before is not None and (before.fund_account, before.region) != (fund_account, region):
        click.echo("bfa: warning: " + _(
            "it was {fund_account}, region {region}: the statements imported so far keep what "
            "they were imported as, and the next statement moves the account's reconciliation "
            "(bfa balance) to the new fund account; other officers' homes keep their own "
            "map").format(fund_account=label("fund_account", before.fund_account),
                          region=before.region), err=True)


@bank_account_group.command("remove")
@home_options
@click.argument("number")
def bank_account_remove(home: str | None, db: str | None, number: str) -> None:
    """Take a bank account out of this home's map (its statements stay in the ledger).

    Example:

    \b
        bfa bank-account remove 6222000011112222
    """
    from ledger import resolve_home, set_bank_account

    set_bank_account(resolve_home(home, db), number.strip(), remove=True)
    click.echo(_("bank account {number} removed from this home's map").format(
        number=printable(number.strip())))


@bank_account_group.command("list")
@home_options
@json_option
def bank_account_list(home: str | None, db: str | None, as_json: bool) -> None:
    """The bank accounts this home maps.

    Example:

    \b
        bfa bank-account list --json
    """
    from ledger import resolve_home

    accounts = resolve_home(home, db).bank_accounts
    if as_json:
        click.echo(to_json([{"number": a.number, "fund_account": a.fund_account,
                             "region": a.region} for a in accounts]))
    elif not accounts:
        click.echo(_("no bank account mapped (bfa bank-account set NUMBER --fund-account F "
                     "--region R)"))
    else:
        for a in accounts:
            click.echo(_("{number}  {fund_account}  region {region}").format(
                number=printable(a.number), fund_account=_fund(a.fund_account),
                region=a.region))


@bfa.group("statement")
def statement_group() -> None:
    """Withdraw a mis-imported bank statement (红冲), with four eyes.

    One officer asks (withdraw), another approves (approve); the statement's
    records and the movements its import made then count nowhere, and importing
    the corrected file brings them back as new versions.

    Example:

    \b
        bfa statement withdraw ST-2026-11 --reason "imported as income, is expenditure"
    """


@statement_group.command("withdraw")
@home_options
@json_option
@user_option
@click.argument("target", metavar="STATEMENT_ID")
@click.option("--reason", required=True, help="Why the statement is withdrawn (kept).")
def statement_withdraw(home: str | None, db: str | None, as_json: bool, user: str | None,
                       target: str, reason: str) -> None:
    """Ask for the withdrawal of a statement (its finance.statement id, or the
    archive.bank_statement id of its file); another officer approves it.

    Example:

    \b
        bfa statement withdraw ST-2026-11 --reason "imported as income, is expenditure"
    """
    from reconcile import request_withdrawal

    with open_ledger(home, db) as led:
        req = request_withdrawal(led, target, reason, user)
    if as_json:
        click.echo(to_json(req.to_json()))
    else:
        click.echo(_("withdrawal {id} of {target} asked by {user}: {count} record(s)").format(
            id=req.id, target=printable(req.target), user=printable(req.user),
            count=len(req.records)))
        click.echo(_("another officer approves it: bfa statement approve {id}").format(
            id=req.id))


@statement_group.command("approve")
@home_options
@json_option
@user_option
@click.argument("request_id", metavar="REQUEST_ID")
def statement_approve(home: str | None, db: str | None, as_json: bool, user: str | None,
                      request_id: str) -> None:
    """Approve a withdrawal another officer asked for: its records are withdrawn.

    Example:

    \b
        bfa statement approve WD-5b0c…
    """
    from reconcile import approve_withdrawal

    with open_ledger(home, db) as led:
        done = approve_withdrawal(led, request_id, user)
    if as_json:
        click.echo(to_json({**done.request.to_json(), "withdrawn": list(done.withdrawn)}))
    else:
        click.echo(_("{id} approved by {user}: {count} record(s) withdrawn").format(
            id=done.request.id, user=printable(done.request.approved_by or ""),
            count=len(done.withdrawn)))
        click.echo(_("import the corrected statement file when you have it: bfa ingest "
                     "--format camt053|mt940 FILE"))


@statement_group.command("cancel")
@home_options
@json_option
@user_option
@click.argument("request_id", metavar="REQUEST_ID")
@click.option("--reason", required=True, help="Why the request is cancelled (kept).")
def statement_cancel(home: str | None, db: str | None, as_json: bool, user: str | None,
                     request_id: str, reason: str) -> None:
    """Cancel a withdrawal that waits: asked by mistake, or refused by the approver.

    Example:

    \b
        bfa statement cancel WD-5b0c… --reason "the statement is right after all"
    """
    from reconcile import cancel_withdrawal

    with open_ledger(home, db) as led:
        req = cancel_withdrawal(led, request_id, reason, user)
    if as_json:
        click.echo(to_json(req.to_json()))
    else:
        click.echo(_("{id} cancelled by {user}").format(
            id=req.id, user=printable(req.cancelled_by or "")))


@statement_group.command("withdrawals")
@home_options
@json_option
def statement_withdrawals(home: str | None, db: str | None, as_json: bool) -> None:
    """Every withdrawal asked for, and whether it was approved.

    Example:

    \b
        bfa statement withdrawals --json
    """
    from reconcile import withdrawals

    with open_ledger(home, db) as led:
        found = withdrawals(led)
    if as_json:
        click.echo(to_json([w.to_json() for w in found]))
        return
    if not found:
        click.echo(_("no withdrawal was asked for"))
    for w in found:
        if w.approved_by:
            line = _("{id}  {target}  asked by {user} {at}: approved by {by}")
        elif w.cancelled_by:
            line = _("{id}  {target}  asked by {user} {at}: cancelled by {by}")
        else:
            line = _("{id}  {target}  asked by {user} {at}: waiting for approval")
        click.echo(line.format(id=w.id, target=printable(w.target), user=printable(w.user),
                               at=local_time(w.at),
                               by=printable(w.approved_by or w.cancelled_by or "")))
        click.echo(f"    {printable(w.reason)}")
