"""Commands ``bfa bundle export|verify`` and ``bfa proof verify``: evidence for supervisors."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import click

from cli._app import bfa
from cli._exit import Exit
from cli._i18n import fill
from cli._options import DATE, TEXT, home_options, json_option, open_ledger, progress, user_option
from cli._render import json_chunks, local_time, pad, terminal_width, to_json, width
from ledger import ConfigError, InputError, Verifier, printable
from schemas import gettext as _


def _key(path: Path, what: Literal["verifier", "exporter"]) -> Verifier:
    """The key in ``path``: the ledger's verifier key, or the exporter key a bundle must be
    signed by (each message is one sentence, so that it translates whole)."""
    try:
        return Verifier.from_text(path.read_text("utf-8").strip())
    except OSError as e:
        msg = (_("{path}: cannot read the verifier key: {error}") if what == "verifier" else
               _("{path}: cannot read the exporter key: {error}"))
        raise ConfigError(msg.format(path=path, error=e.strerror or e)) from e
    except UnicodeDecodeError as e:
        msg = (_("{path}: the verifier key is not text") if what == "verifier" else
               _("{path}: the exporter key is not text"))
        raise ConfigError(msg.format(path=path)) from e
    except Exception as e:
        raise ConfigError(_("{path}: not a verifier key ({error})").format(
            path=path, error=e)) from e


@bfa.group("bundle")
def bundle_group() -> None:
    """Proof bundles: export a scope for a supervisor; verify one offline.

    Example:

    \b
        bfa bundle export --break BRK-0123456789abcdef --out /media/usb/bundle-1
        bfa bundle verify /media/usb/bundle-1 --key agency.verifier.key
    """


@bundle_group.command("export")
@home_options
@json_option
@user_option
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="New (or empty) directory the bundle is written to.")
@click.option("--record", "records", multiple=True, type=TEXT, metavar="ID",
              help="A record to include (repeat for several).")
@click.option("--period", "periods", multiple=True, metavar="YYYY-MM",
              help="The records of a month: occurred in it, or for that period.")
@click.option("--person", "persons", multiple=True, type=TEXT, metavar="PERSON_ID",
              help="The records of a person (needs the ledger secret: an officer's home).")
@click.option("--break", "breaks", multiple=True, type=TEXT, metavar="BREAK_ID",
              help="The records a break names, with its findings and workflow history.")
@click.option("--as-of", "as_of", type=DATE, metavar="DATE",
              help="Judge the findings as of this date. [default: today, Asia/Shanghai]")
@click.option("--rules", "rules_file", metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rules file (TOML) the findings are made with (it goes into the bundle).")
@click.option("--since", "since", metavar="NOTE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint the supervisor already holds: the bundle proves the new "
                   "one extends it.")
@click.option("--disclose", "disclose", multiple=True, metavar="FIELD",
              help="Include this personal field in clear with its commitment opening "
                   "(privacy duty; needs --purpose; recorded in the ledger).")
@click.option("--purpose", type=TEXT, metavar="TEXT", help="Why clear values leave (--disclose).")
def export_cmd(home: str | None, db: str | None, as_json: bool, user: str | None, out: Path,
               records: tuple[str, ...], periods: tuple[str, ...], persons: tuple[str, ...],
               breaks: tuple[str, ...], as_of: datetime | None, rules_file: Path | None,
               since: Path | None, disclose: tuple[str, ...], purpose: str | None) -> None:
    """Write a proof bundle (BagIt) of a scope, for a supervisor to check offline.

    The bundle holds the scoped ledger entries and what they link to, the voucher
    files, one tlog-proof per entry against the latest signed checkpoint, the findings
    and their workflow history, the verifier key, and a page (index.html) to read;
    the exporter's own key signs its tag manifest. Personal data stays pseudonymised
    unless --disclose names fields. Exit codes: 0 written, 1 an entry is not yet
    covered by a checkpoint (run 'bfa checkpoint'), 2 could not run.

    Example:

    \b
        bfa bundle export --period 2026-11 --out bundle-2026-11
        bfa bundle export --break BRK-0123456789abcdef --since auditor.note --out b1
    """
    import re

    from archive import FileStore, Scope, export_bundle
    from reconcile import load_rules, today

    for p in periods:
        if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", p):
            raise click.BadParameter(_("{period} is not a month YYYY-MM").format(
                period=repr(p)), param_hint="--period")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise click.BadParameter(_("{dir} exists and is not an empty directory").format(
            dir=out), param_hint="--out")
    rules = load_rules(rules_file) if rules_file is not None else None
    scope = Scope(tuple(records), tuple(periods), tuple(persons), tuple(breaks))
    with open_ledger(home, db) as led, ExitStack() as stack:
        result = export_bundle(
            led, FileStore(led.home.archive_dir, led.home.perms), out, scope,
            as_of=as_of.date() if as_of else today(), rules=rules,
            since=since.read_text("utf-8") if since else None, disclose_fields=disclose,
            purpose=purpose, label=user,
            progress=lambda n: stack.enter_context(progress(n, _("exporting"))))
    summary = {"out": str(result.root), "id": result.id, "checkpoint_size": result.size,
               "entries": result.entries, "scoped": result.scoped,
               "vouchers": result.vouchers, "breaks": result.breaks,
               "not_reported": result.not_reported, "disclosed": result.disclosed,
               "disclosure": result.disclosure_id,
               "exporter_key": result.exporter}
    if as_json:
        click.echo(to_json(summary))
    else:
        click.echo(_("bundle {id} written to {dir}").format(id=result.id, dir=result.root))
        click.echo("  " + _("{entries} entries ({scoped} in scope), {vouchers} voucher "
                            "file(s), {breaks} finding(s), checkpoint size {size}").format(
            entries=result.entries, scoped=result.scoped, vouchers=result.vouchers,
            breaks=result.breaks, size=result.size))
        if result.not_reported:
            click.echo("  " + _("{count} named break(s) not reported as of this date (resolved "
                                "since, or judged otherwise): with their workflow under "
                                "not_reported in bfa/findings.json").format(
                count=result.not_reported))
        if result.disclosure_id:
            click.echo("  " + _("{count} clear value(s) disclosed (recorded as {id})").format(
                count=result.disclosed, id=result.disclosure_id))
        click.echo("  " + _("signed by exporter key {key}").format(key=result.exporter))
        click.echo(_("check it: {command}").format(
            command=f"bfa bundle verify {result.root} --key VERIFIER_KEY"))


@bundle_group.command("verify")
@json_option
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--key", "key_file", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The ledger's verifier key (from the agency, not from the bundle).")
@click.option("--exporter-key", "exporter_file", metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Require the bundle to be signed by this exporter key.")
def verify_cmd(as_json: bool, bundle: Path, key_file: Path, exporter_file: Path | None) -> None:
    """Check a proof bundle offline: no home, no database, only the bundle and a key.

    One verdict per check — bag, signature, checkpoint, entries, vouchers,
    disclosures, closure, consistency, findings — the first failure named by file
    and entry. Findings whose inputs are all in the bundle are re-derived; the others
    are listed as not re-derivable here. Exit codes: 0 every check passed, 2 could not
    run (no such directory, unreadable key), 3 a check failed.

    Example:

    \b
        bfa bundle verify /media/usb/bundle-1 --key agency.verifier.key
    """
    from archive import verify_bundle
    from reconcile import code_label

    if bundle.exists() and not bundle.is_dir():
        raise InputError(_("{dir} is a file, not a bundle: a bundle is the directory "
                           "'bfa bundle export --out' wrote").format(dir=bundle))
    if not bundle.is_dir():
        raise InputError(_("{dir}: no such directory (a bundle is the directory "
                           "'bfa bundle export --out' wrote)").format(dir=bundle))
    key = _key(key_file, "verifier")
    exporter = _key(exporter_file, "exporter") if exporter_file else None
    with progress(None, _("verifying")) as tick:
        report = verify_bundle(bundle, key, exporter_key=exporter, progress=tick)
    if as_json:  # the list of findings not re-derived may be long: printed as it is read
        for chunk in json_chunks(report.to_json(listed=False), "not_rederivable",
                                 report.not_rederivable):
            click.echo(chunk, nl=False)
        click.echo()
    else:
        claims = report.claims
        # at a terminal, long lines wrap (a detail under its column); piped, one line a
        # verdict. The mark, the check id and VERIFIED / INTEGRITY FAILURE are read by
        # machines and tests: they stay as they are in every language (the check's name
        # beside its id, and the detail, in the reader's; --json keeps the English detail)
        fit = terminal_width() - 1 if sys.stdout.isatty() else None
        if claims:
            _echo_fitted("", _("bundle {id} of {origin}, exported {created_at}").format(
                id=printable(str(claims.get("id"))), origin=printable(str(claims.get("origin"))),
                created_at=local_time(claims.get("created_at"))), fit)
        names = [v.name() for v in report.verdicts]
        cols = max([12, *map(width, names)])
        for v, name in zip(report.verdicts, names, strict=True):
            mark = {True: "ok  ", False: "FAIL", None: "-   "}[v.ok]
            where = ("" if not v.file else f" [{v.file}]" if v.entry is None else
                     " " + _("[{file}, entry {entry}]").format(file=v.file, entry=v.entry))
            _echo_fitted(f"{mark} {pad(name, cols)} ", f"{printable(v.text())}{where}", fit)
        for item in report.not_rederivable.head(20):
            _echo_fitted("     ", _("not re-derivable here: {id} {code} ({why})").format(
                id=item["id"], code=code_label(str(item["code"])),
                why=report.not_rederivable.why_text(item)), fit)
        if len(report.not_rederivable) > 20:
            click.echo("     " + _("… and {count} more (--json lists all)").format(
                count=len(report.not_rederivable) - 20))
        click.echo("VERIFIED" if report.ok else "INTEGRITY FAILURE")
    raise click.exceptions.Exit(Exit.CLEAN if report.ok else Exit.INTEGRITY)


def _echo_fitted(head: str, text: str, fit: int | None) -> None:
    """``head`` and ``text`` on one line, or (``fit`` columns) wrapped with the text's
    continuation lines under its first column."""
    if fit is None:
        click.echo(head + text)
        return
    click.echo("\n".join(fill(text, fit, head, " " * width(head))) or head.rstrip())


@bfa.group("proof")
def proof_group() -> None:
    """Single proofs: verify a tlog-proof offline.

    Example:

    \b
        bfa proof verify BP-2026-11-0001.tlog-proof --key agency.verifier.key
    """


@proof_group.command("verify")
@json_option
@click.argument("proof_file", metavar="PROOF", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_file", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The ledger's verifier key.")
@click.option("--checkpoint", "checkpoint_file", metavar="NOTE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="A checkpoint you hold: the proof must be against exactly it.")
def proof_verify_cmd(as_json: bool, proof_file: Path, key_file: Path,
                     checkpoint_file: Path | None) -> None:
    """Check a C2SP tlog-proof (bfa prove) with only the verifier key.

    The checkpoint inside the proof must be signed by the key, and the entry the proof
    carries must be in it; with --checkpoint, that checkpoint must be the one you hold.
    Prints the record as the ledger holds it (personal data pseudonymised). Exit codes:
    0 proven, 2 could not run (unreadable file or key), 3 the proof fails.

    Example:

    \b
        bfa proof verify BP-2026-11-0001.tlog-proof --key agency.verifier.key
    """
    from archive import verify_proof

    key = _key(key_file, "verifier")
    try:
        text = proof_file.read_text("utf-8")
        held = checkpoint_file.read_text("utf-8") if checkpoint_file else None
    except OSError as e:
        raise InputError(_("{path}: cannot read: {error}").format(
            path=e.filename, error=e.strerror)) from e
    except UnicodeDecodeError as e:
        raise InputError(_("{path}: not text (a tlog-proof is text)").format(
            path=proof_file)) from e
    result = verify_proof(text, key, held)
    out: dict[str, Any] = {"ok": result.ok, "detail": result.detail, "seq": result.seq,
                           "tree_size": result.size, "record": result.record}
    if as_json:
        click.echo(to_json(out))
    elif result.ok:
        rec = result.record or {}
        # PROVEN (like INTEGRITY FAILURE) is a verdict machines and tests read: never
        # translated
        click.echo("PROVEN: " + _("entry {seq} ({type} {id}) is in the checkpoint of size "
                                  "{size} signed by {key}").format(
            seq=result.seq, type=printable(str(rec.get("type"))),
            id=printable(str(rec.get("id"))), size=result.size, key=key.name))
        click.echo(json.dumps(rec, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        click.echo(f"INTEGRITY FAILURE: {printable(result.detail)}")
    raise click.exceptions.Exit(Exit.CLEAN if result.ok else Exit.INTEGRITY)
