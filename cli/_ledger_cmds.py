"""The ledger commands: init, ingest, checkpoint, verify, prove, show, key, forget, db, demo."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any, cast

import click

from cli._app import bfa
from cli._exit import Exit
from cli._options import (
    TEXT,
    check_output_file,
    home_options,
    json_option,
    open_ledger,
    progress,
    user_option,
)
from cli._render import local_time, table, terminal_width, to_json, width, wrapped
from ledger import (
    DUTIES,
    ConfigError,
    Home,
    Ledger,
    LocatedInputError,
    Perms,
    current_verifier_key,
    entry_view,
    open_text,
    printable,
    resolve_home,
    set_home_language,
    write_atomic,
)
from schemas import (
    PERSONAL_FIELDS,
    CheckpointView,
    ConsistencyProofView,
    FileIngestReport,
    InclusionProofView,
    IngestReport,
    VerifierKeyView,
    VerifyReport,
    VoucherDefect,
)
from schemas import Problem as VerifyProblem
from schemas import gettext as _


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@bfa.command()
@home_options
@click.option("--origin", type=TEXT, metavar="NAME",
              help="The ledger's name, the origin line of its checkpoints and its key name.")
@click.option("--group", type=TEXT, metavar="NAME",
              help="Share the home with this operating-system group (directories 2770, "
                   "files 0660). [default: private to you: 0700 and 0600]")
@click.option("--from", "source", metavar="HOME",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Make a home of your own for an existing PostgreSQL ledger, from its "
                   "first home HOME: only the keys your --duty needs are copied.")
@click.option("--duty", "duties", multiple=True,
              type=click.Choice(["officer", "approver", "auditor", "privacy", "service"]),
              help="With --from: a duty you hold (repeat for several).")
@click.option("--lang", type=click.Choice(["zh_CN", "en"]), default=None,
              help="The language people read this home's output in, kept in config.json "
                   "(bfa --lang overrides it for one command). [default: the locale's]")
def init(home: str | None, db: str | None, origin: str | None, group: str | None,
         source: Path | None, duties: tuple[str, ...], lang: str | None) -> None:
    """Create the ledger: keys (outside the database), configuration and the schema.

    The home is private to you (directories 0700, files 0600) unless --group shares it
    with an operating-system group. Safe to run again (--origin may then be left out):
    existing keys are kept, the schema is migrated, vault values an earlier bfa stored in
    clear are sealed and the home's files get the modes of its setting.

    With --from, make a private home for one person on a PostgreSQL ledger that exists:
    its configuration and only the keys the duties named need (the verifier key always;
    the ledger secret and the vault key for officer and privacy; the signing key for
    service). Connect
    with your own database role (--db); the ledger's owner grants the duties.

    Example:

    \b
        bfa init --origin agency.example/440100
        bfa init --origin agency.example/440100 --group bfa-officers --lang zh_CN
        bfa init --from /srv/bfa/.bfa --duty officer --home ~/.bfa \\
                 --db postgresql://li_wei@db.example/bfa
    """
    if source is None:
        if duties:
            raise click.UsageError(_("--duty goes with --from (a home for a person's duties)"))
        led = Ledger.open(home, db, check=False)
        origin = origin if origin is not None else led.home.origin  # run again: its own
        if origin is None:
            led.close()
            raise click.UsageError(_("--origin NAME is required (or --from HOME)"))
        try:
            sealed = led.init(origin, group)
            if lang is not None:
                _speak(set_home_language(led.home, lang))
            click.echo(_("ledger {origin} ready in {home} ({database})").format(
                origin=origin, home=led.home.path, database=led.store.display_url()))
            if sealed:
                click.echo(_("sealed {count} vault value(s) stored in clear by an earlier bfa "
                             "(FORMAT.md §4.4)").format(count=sealed))
            click.echo(_("verifier key: {key}").format(key=led.home.verifier().to_text()))
            keys = led.home.path / "keys"
            lines = [
                "",
                *wrapped(_("Back up {keys} now: its keys sign the checkpoints and "
                           "unlock the personal data, and they are not in the database. "
                           "A copy sealed with a passphrase: bfa key backup --out "
                           "/media/usb/bfa-keys.json").format(keys=keys), "", 78),
                "",
                _("Next steps:"),
                "  bfa bank-account set NUMBER --fund-account income --region CODE",
                "  bfa ingest business.jsonl finance.jsonl archive.jsonl",
                "  bfa ingest --format camt053 statement.xml",
                "  bfa reconcile; bfa checkpoint; bfa verify",
                "  bfa nightly --report-dir DIR   "
                + _("(from cron or a systemd timer: README)")]
            if home is not None or os.environ.get("BFA_HOME"):
                lines.append(_("(each with --home {home}, or BFA_HOME set to it)")
                             .format(home=led.home.path))
            click.echo("\n".join(lines))
        finally:
            led.close()
        return
    if group:
        raise click.UsageError(
            _("--group makes a shared first home; --from a person's own home"))
    if not duties:
        raise click.UsageError(_("--from needs the duties this home is for: --duty ..."))
    _join(source, home, db, origin, duties, lang)


def _speak(home: Home) -> None:
    """Speak the language just set in the home (unless ``bfa --lang`` chose one)."""
    from cli._i18n import explicit, use

    if home.lang is not None and not explicit():
        use(home.lang)


def _join(source: Path, home: str | None, db: str | None, origin: str | None,
          duties: tuple[str, ...], lang: str | None) -> None:
    """``bfa init --from``: the home, then what the database says this role may do."""
    from ledger import join_home

    src = resolve_home(str(source))
    if origin and origin != src.origin:
        raise ConfigError(_("{home} holds ledger {origin}, not {wanted}").format(
            home=source, origin=repr(src.origin), wanted=repr(origin)))
    made = join_home(src, resolve_home(home, db), duties)
    if lang is not None:
        made = set_home_language(made, lang)
        _speak(made)
    with open_ledger(str(made.path), made.db_url) as led:
        st = led.status()
    keys = [p.name for p in (made.verifier_key_path, made.secret_key_path,
                             made.vault_key_path, made.signing_key_path)
            if p is not None and p.exists()]
    click.echo(_("home for {identity} on ledger {origin} ready in {home} ({database}); "
                 "keys: {keys}").format(identity=st.identity, origin=st.origin, home=made.path,
                                        database=st.database, keys=", ".join(keys)))
    missing = [d for d in duties if d not in st.duties and st.duties != ("owner",)]
    if missing:
        grant = f"bfa db grant {st.identity} " + " ".join(f"--duty {d}" for d in duties)
        click.echo("bfa: warning: "
                   + _("role {role} does not hold {duties} yet; the ledger's owner runs: "
                       "{command}").format(role=st.identity, duties=", ".join(missing),
                                           command=grant), err=True)


@bfa.command()
@home_options
@json_option
def status(home: str | None, db: str | None, as_json: bool) -> None:
    """Show the ledger's size, latest checkpoint and what was last verified.

    Reads only: nothing is signed or appended.

    Example:

    \b
        bfa status
        bfa status --json | jq .unsigned
    """
    with open_ledger(home, db) as led:
        st = led.status()
    if as_json:
        click.echo(to_json(st.model_dump(mode="json")))
        return
    click.echo(_("ledger      {origin} ({database})").format(origin=st.origin,
                                                             database=st.database))
    if st.chain_head:
        click.echo(_("entries     {size}, chain head {head}").format(size=st.size,
                                                                  head=st.chain_head))
    else:
        click.echo(_("entries     {size}").format(size=st.size))
    if st.checkpoint_size is None:
        click.echo(_("checkpoint  none yet (bfa checkpoint signs one)"))
    else:
        click.echo(_("checkpoint  size {size}, signed {time}, root {root}").format(
            size=st.checkpoint_size, time=local_time(st.checkpoint_created_at),
            root=st.checkpoint_root))
    if st.unsigned:
        click.echo(_("unsigned    {count} entries after the latest checkpoint (not provable "
                     "until 'bfa checkpoint')").format(count=st.unsigned))
    else:
        click.echo(_("unsigned    {count} entries after the latest checkpoint")
                   .format(count=st.unsigned))
    if st.verified_size is not None:
        click.echo(_("verified    up to checkpoint {size}").format(size=st.verified_size))
    else:
        click.echo(_("verified    never (bfa verify)"))
    duties = (_("every duty (SQLite: whoever may write the file)")
              if st.duties == DUTIES else ", ".join(st.duties) or _("none (bfa db grant)"))
    click.echo(_("you         {identity}: {duties}").format(identity=st.identity,
                                                            duties=duties))


class _RejectFile:
    def __init__(self, path: Path, perms: Perms) -> None:
        self.path = path
        self.count = 0
        self._f = open_text(path, perms)  # clear input lines: as private as the home

    def reject(self, problem: LocatedInputError, text: str) -> None:
        self.count += 1
        self._f.write(json.dumps({
            "file": problem.file, "line": problem.line, "field": problem.field,
            "reason": problem.reason, "text": text,
        }, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._f.close()


@bfa.command()
@home_options
@json_option
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--reject-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append valid lines and write rejected ones here, with reasons (exit 1).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "camt053", "mt940"]),
              default="jsonl", show_default=True,
              help="Input format: interchange JSON Lines, or a bank statement.")
@click.option("--region", type=TEXT, metavar="CODE",
              help="Bank statements: pooling-region code (6 digits), for an account this "
                   "home does not map (bfa bank-account set).")
@click.option("--fund-account", type=click.Choice(["income", "expenditure", "fiscal_special"]),
              help="Bank statements: the fund account, for an account this home does not "
                   "map.")
@user_option
def ingest(home: str | None, db: str | None, as_json: bool, files: tuple[str, ...],
           reject_file: Path | None, fmt: str, region: str | None,
           fund_account: str | None, user: str | None) -> None:
    """Append interchange JSON Lines files; each file is one atomic batch.

    Use - for standard input. Without --reject-file a file with any bad line is
    refused whole (exit 2); re-sending records already in the ledger is a no-op.
    Bank statements (--format camt053 or mt940) become unallocated movements, and
    each statement file is kept in the archive (archive.bank_statement).

    Example:

    \b
        bfa ingest business.jsonl finance.jsonl --reject-file rejected.jsonl
        bfa bank-account set 6222000011112222 --fund-account income --region 440100
        bfa ingest --format camt053 stmt.xml
    """
    if fmt != "jsonl":
        if reject_file:
            raise click.UsageError(_("--reject-file applies to JSON Lines only"))
        if "-" in files:
            raise click.UsageError(_("bank statements are read from files, not standard input "
                                     "('-'): save the statement to a file first"))
    if reject_file and reject_file.exists() and any(
        f != "-" and os.path.exists(f) and os.path.samefile(f, reject_file) for f in files
    ):
        raise click.UsageError(
            _("--reject-file {file} is also an input file; write the rejected lines to "
              "another file (it is emptied before the input is read)").format(file=reject_file))
    if reject_file:
        check_output_file(reject_file, home, db, "--reject-file")
    sink = _RejectFile(reject_file, resolve_home(home, db).perms) if reject_file else None
    from archive import FileStore, Intake  # the layers above the ledger: only for the commands
    from reconcile import Deriver, StatementFormat, code_label, ingest_statements  # that use them

    total = sum(os.path.getsize(f) for f in files if f != "-" and os.path.isfile(f))
    intake: Intake | None = None
    summaries: list[dict[str, int]] = []
    try:
        with open_ledger(home, db) as led, progress(total or None, _("ingesting")) as tick:
            intake = Intake(FileStore(led.home.archive_dir, led.home.perms))
            if fmt == "jsonl":
                reports = led.ingest(files, intake,
                                     stdin=sys.stdin.buffer, reject_sink=sink, progress=tick,
                                     derive=Deriver, label=user)
            else:  # each statement file is kept too: archive.bank_statement (FORMAT.md §9.6)
                statement_fmt = cast(StatementFormat, fmt)
                reports = ingest_statements(led, [Path(f) for f in files], statement_fmt,
                                            region, fund_account, progress=tick, label=user,
                                            vouchers=intake, summaries=summaries)
            size = led.size()
    finally:
        if sink:
            sink.close()
    rows: list[dict[str, Any]] = [
        {"file": r.file, "lines": r.lines, "appended": r.appended, "duplicates": r.duplicates,
         "rejected": r.rejected} for r in reports]
    for row, summary in zip(rows, summaries, strict=False):
        row["statement"] = summary
    defects = [VoucherDefect(record=c.record, **f) for c in (intake.recorded if intake else [])
               for f in c.findings]
    if as_json:
        click.echo(to_json(IngestReport(
            files=tuple(FileIngestReport(**r) for r in rows),
            appended=sum(r.appended for r in reports),
            duplicates=sum(r.duplicates for r in reports),
            rejected=sum(r.rejected for r in reports), tree_size=size,
            voucher_defects=tuple(defects),
        ).model_dump(mode="json")))
    else:
        heads = {"file": _("file"), "lines": _("lines"), "appended": _("appended"),
                 "duplicates": _("duplicates"), "rejected": _("rejected")}
        click.echo(table([{heads[k]: r[k] for k in heads} for r in rows], list(heads.values())))
        for row in rows:
            if "statement" in row:
                st = row["statement"]
                click.echo(_("{file}: {statements} statement(s), {entries} entries: {confirmed} "
                             "confirmed a movement already in the ledger, {new} new (the "
                             "bank's), {mismatched} with another amount than the books "
                             "({code})").format(
                    file=printable(row["file"]), statements=st["statements"],
                    entries=st["entries"], confirmed=st["confirmed"], new=st["new"],
                    mismatched=st["mismatched"], code=code_label("AMOUNT_MISMATCH")))
        click.echo(_("ledger size: {size}").format(size=size))
    rejected = sum(r.rejected for r in reports)
    if rejected:
        click.echo(_("{count} line(s) rejected, written to {file}").format(
            count=rejected, file=reject_file), err=True)
    if defects:
        failing = sorted({d.record for d in defects})
        click.echo("bfa: warning: "
                   + _("{count} voucher(s) appended failed the 四性 check ({code} at the next "
                       "reconciliation; 'bfa archive check ID' shows why):").format(
                       count=len(failing), code=code_label("VOUCHER_DEFECT")), err=True)
        for d in defects[:20]:
            part = f" [{d.part}]" if d.part else ""
            click.echo(f"  {printable(d.record)}: {d.property}: {printable(d.detail)}{part}",
                       err=True)
        if len(defects) > 20:
            click.echo("  " + _("… and {count} more (--json lists all)").format(
                count=len(defects) - 20), err=True)
    if rejected:
        raise click.exceptions.Exit(Exit.PROBLEMS)


@bfa.command()
@home_options
@json_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the signed checkpoint to this file (for an auditor to keep).")
def checkpoint(home: str | None, db: str | None, as_json: bool, out: Path | None) -> None:
    """Sign a C2SP checkpoint of the ledger as it is now (Ed25519 signed note).

    Example:

    \b
        bfa checkpoint --out checkpoints/2026-11-23.note
    """
    if out is not None and str(out) == "-":
        raise click.BadParameter(_("the checkpoint is printed on standard output already; "
                                   "give a file name"), param_hint="--out")
    with open_ledger(home, db) as led:
        cp = led.checkpoint()
    if out:
        try:
            write_atomic(out, cp.note, led.home.perms)
        except OSError as e:
            raise ConfigError(
                _("the checkpoint of size {size} is signed and stored, but {file} could not "
                  "be written ({reason}); run 'bfa checkpoint --out FILE' again to "
                  "write it").format(size=cp.size, file=out, reason=e.strerror or e)) from e
    if as_json:
        click.echo(to_json(CheckpointView(
            origin=led.origin, size=cp.size, root_hash=cp.root.hex(),
            chain_head=cp.chain_head.hex() if cp.chain_head else None, signed_note=cp.note,
            created_at=cp.created_at, new=cp.new).model_dump(mode="json")))
    else:
        click.echo(cp.note, nl=False)


@bfa.command()
@home_options
@json_option
@click.option("--since-checkpoint", is_flag=True,
              help="Check only what came after the last checkpoint a clean run verified.")
@click.option("--against", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A signed checkpoint kept by an auditor: prove the ledger extends it.")
@click.option("--skip-derived", is_flag=True, help="Skip the derived-table pass.")
def verify(home: str | None, db: str | None, as_json: bool, since_checkpoint: bool,
           against: Path | None, skip_derived: bool) -> None:
    """Recompute the chain, every hash, every checkpoint root and signature, then check
    the stored findings and break states against the ledger.

    Exit 0 when all is well, 3 on any integrity failure (the first bad entry is
    named).

    Example:

    \b
        bfa verify --against auditor/2026-10-31.note --json
    """
    try:
        note = against.read_text(encoding="utf-8") if against else None
    except UnicodeDecodeError as e:
        raise click.BadParameter(_("{file}: not UTF-8 text (byte {offset})").format(
            file=against, offset=e.start), param_hint="--against") from e
    if note is not None and note.startswith("\ufeff"):  # an editor's mark, not tampering
        raise click.BadParameter(_("{file}: starts with a byte-order mark; save the note "
                                   "without it (UTF-8, as bfa wrote it)").format(file=against),
                                 param_hint="--against")
    with open_ledger(home, db) as led, progress(led.size(), _("verifying")) as tick:
        from reconcile import verify_all  # the reconciler's state is checked too (§6.7)

        res = verify_all(led, since_checkpoint=since_checkpoint, derived=not skip_derived,
                         against=note, progress=tick)
    if as_json:
        click.echo(to_json(VerifyReport(
            ok=res.ok, tree_size=res.tree_size, start=res.start,
            entries_checked=res.entries_checked, checkpoints_checked=res.checkpoints_checked,
            derived_checked=res.derived_checked, against=res.against,
            problems=tuple(VerifyProblem(seq=p.seq, code=p.code, message=p.message)
                           for p in res.problems),
        ).model_dump(mode="json")))
    elif res.ok:
        if against:
            click.echo(_("ok: {entries} entries from {start}, {checkpoints} checkpoints, "
                         "extends the auditor's checkpoint of size {size}").format(
                entries=res.entries_checked, start=res.start,
                checkpoints=res.checkpoints_checked, size=res.against))
        else:
            click.echo(_("ok: {entries} entries from {start}, {checkpoints} checkpoints").format(
                entries=res.entries_checked, start=res.start,
                checkpoints=res.checkpoints_checked))
    else:
        from reconcile import code_label

        for p in res.problems:
            click.echo(_("FAIL [{code}] {message}").format(code=code_label(p.code, "problem"),
                                                           message=p.message),
                       err=True)
    if not res.ok:
        raise click.exceptions.Exit(Exit.INTEGRITY)


@bfa.command()
@home_options
@json_option
@click.argument("record_id", required=False, type=TEXT)
@click.option("--domain", type=click.Choice(["business", "finance", "archive", "control"]),
              help="Domain of RECORD_ID when two domains share the id.")
@click.option("--consistency", "consistency", nargs=1, type=int, metavar="OLD_SIZE",
              help="Prove checkpoint OLD_SIZE is a prefix of NEW_SIZE (default: latest).")
@click.argument("new_size", required=False, type=int)
def prove(home: str | None, db: str | None, as_json: bool, record_id: str | None,
          domain: str | None, consistency: int | None, new_size: int | None) -> None:
    """Print a C2SP tlog-proof@v1 for a record, or an RFC 9162 consistency proof.

    The inclusion proof carries the entry's leaf bytes as its 'extra' line and
    the signed checkpoint, so it verifies offline with the verifier key alone.

    Example:

    \b
        bfa prove BP-2026-11-000123 > BP-123.tlog-proof
        bfa prove --consistency 1000 2000 --json
    """
    if consistency is not None:
        if domain is not None:
            raise click.UsageError(_("--domain goes with a RECORD_ID, not with --consistency"))
        if record_id is not None:  # 'bfa prove --consistency OLD NEW': NEW lands here
            if new_size is not None or not record_id.isdigit():
                raise click.UsageError(
                    _("--consistency takes OLD_SIZE [NEW_SIZE], no RECORD_ID"))
            new_size = int(record_id)
    elif new_size is not None:
        raise click.UsageError(_("NEW_SIZE goes with --consistency; give one RECORD_ID"))
    with open_ledger(home, db) as led:
        if consistency is not None:
            cp = led.prove_consistency(consistency, new_size)
            if as_json:
                click.echo(to_json(ConsistencyProofView(
                    size1=cp.size1, size2=cp.size2, root1=_b64(cp.root1), root2=_b64(cp.root2),
                    hashes=tuple(_b64(h) for h in cp.hashes), checkpoint=cp.checkpoint,
                ).model_dump(mode="json")))
            else:
                click.echo(cp.to_text(), nl=False)
            return
        if record_id is None:
            raise click.UsageError(_("give a RECORD_ID, or --consistency OLD_SIZE [NEW_SIZE]"))
        entry, proof = led.prove(record_id, domain)
    if as_json:
        size = int(proof.checkpoint.split("\n", 2)[1])
        click.echo(to_json(InclusionProofView(
            record_id=entry.record_id, domain=entry.domain, seq=entry.seq,
            leaf_index=proof.index, tree_size=size, leaf_hash=entry.entry_hash.hex(),
            hashes=tuple(_b64(h) for h in proof.hashes), checkpoint=proof.checkpoint,
            leaf=_b64(entry.leaf), tlog_proof=proof.marshal(),
        ).model_dump(mode="json")))
    else:
        click.echo(proof.marshal(), nl=False)


@bfa.command()
@home_options
@json_option
@click.argument("record_id", type=TEXT)
@click.option("--domain", type=click.Choice(["business", "finance", "archive", "control"]),
              help="Domain of RECORD_ID when two domains share the id.")
@click.option("--entry", "as_entry", is_flag=True, help="Show the ledger entry around the record.")
@click.option("--raw", is_flag=True, help="With --entry: write the exact leaf input bytes.")
@click.option("--reveal", is_flag=True,
              help="Show clear personal data from the vault (the reveal is itself logged).")
@click.option("--purpose", type=TEXT, metavar="TEXT",
              help="With --reveal (required): why the clear values are needed; logged.")
@click.option("--fields", "fields", multiple=True, metavar="FIELD",
              type=click.Choice(sorted(PERSONAL_FIELDS)),
              help="With --reveal: only these personal fields (repeat). [default: all]")
@user_option
def show(home: str | None, db: str | None, as_json: bool, record_id: str, domain: str | None,
         as_entry: bool, raw: bool, reveal: bool, purpose: str | None,
         fields: tuple[str, ...], user: str) -> None:
    """Show a record as the ledger holds it (personal data pseudonymised).

    --reveal shows clear personal data for a stated --purpose, only the --fields
    named; who, what and why are appended to the ledger ('bfa audit access' lists it).

    Example:

    \b
        bfa show BP-2026-11-000123 --reveal --purpose "payee complaint #4411" --fields account
        (printf '\\0'; bfa show BP-2026-11-000123 --entry --raw) | sha256sum
    """
    if raw and not as_entry:
        raise click.UsageError(_("--raw writes the entry's leaf bytes: give --entry too"))
    if raw and (as_json or reveal):
        raise click.UsageError(_("--raw writes bytes only: leave out --json and --reveal"))
    if reveal and not (purpose or "").strip():
        raise click.UsageError(_("--reveal needs --purpose TEXT: why the clear values are "
                                 "needed (it is logged with the reveal)"))
    if not reveal and (purpose or fields):
        raise click.UsageError(_("--purpose and --fields go with --reveal"))
    with open_ledger(home, db) as led:
        if reveal:
            assert purpose is not None
            entry, clear = led.reveal(record_id, domain, user, purpose, fields or None)
        else:
            entry, clear = led.entry(record_id, domain), {}
    if raw:
        sys.stdout.buffer.write(entry.leaf)
        sys.stdout.buffer.flush()
        return
    view: dict[str, Any] = (
        entry_view(entry).model_dump(mode="json") if as_entry else dict(entry.record))
    if reveal:
        view = {"entry": view, "revealed": clear} if as_entry else {**view, "revealed": clear}
    if as_json:
        click.echo(to_json(view))
        return
    for k, v in view.items():
        click.echo(f"{k}: {v if isinstance(v, str | int) else json.dumps(v, ensure_ascii=False)}")


@bfa.group()
def key() -> None:
    """Key material: export the verifier key, back up and restore keys, rotate keys.

    Example:

    \b
        bfa key export > ledger.vkey
        bfa key backup --out /media/usb/bfa-keys.json
        bfa key restore /media/usb/bfa-keys.json --home /srv/bfa/home
        bfa key rotate --vault
        bfa key rotate --signing
    """


def _passphrase(path: Path | None, confirm: bool) -> str:
    """The backup passphrase: the first line of ``path``, else asked at the terminal."""
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size \
                else ""
        except (OSError, UnicodeDecodeError, IndexError) as e:
            raise click.UsageError(_("--passphrase-file {file}: cannot read it ({reason})")
                                   .format(file=path, reason=e)) from e
    if not sys.stdin.isatty():
        raise click.UsageError(_("no terminal to ask for the passphrase: give "
                                 "--passphrase-file FILE (its first line)"))
    answer: str = click.prompt(_("backup passphrase (12 characters or more)"),
                               hide_input=True, confirmation_prompt=confirm)
    return answer


_PASSPHRASE = click.option(
    "--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
    help="Read the passphrase from this file's first line (else it is asked for).")


@key.command("backup")
@home_options
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The backup file to write (never over an existing one).")
@_PASSPHRASE
def key_backup(home: str | None, db: str | None, out: Path,
               passphrase_file: Path | None) -> None:
    """Back up every key this home holds, encrypted with a passphrase.

    The keys never enter the database: without them no checkpoint can be signed, no
    pseudonym matched and no personal value opened. The file (FORMAT.md §5.6) is sealed
    with AES-256-GCM under a key derived from the passphrase with scrypt; keep it and the
    passphrase in different places. Each key is checked to be this ledger's first.

    Example:

    \b
        bfa key backup --out /media/usb/bfa-keys-2026-12.json
        bfa key backup --out keys.json --passphrase-file /root/.bfa-backup-pass
    """
    from ledger import PRIVATE, write_atomic

    if out.exists() or out.is_symlink():
        raise click.UsageError(_("{file} exists; a backup is never written over a file")
                               .format(file=out))
    with open_ledger(home, db) as led:
        names, text = led.backup_keys(_passphrase(passphrase_file, confirm=True))
        write_atomic(out, text, PRIVATE)
    click.echo(_("backed up {keys} of ledger {origin} to {file} (mode 0600); keep the "
                 "passphrase apart from it").format(keys=", ".join(names), origin=led.origin,
                                                    file=out))


@key.command("restore")
@click.argument("backup", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@home_options
@_PASSPHRASE
def key_restore(backup: Path, home: str | None, db: str | None,
                passphrase_file: Path | None) -> None:
    """Restore keys from a backup into a home, and check them against the database.

    Writes the home's configuration when it has none (the ledger's name; --db as its
    database), then each key it lacks; a key already there must be the backup's. Then the
    keys are checked against the database: the secret's and vault key's check values, the
    latest signed checkpoint. A check that fails removes the keys just written (exit 2).

    Example:

    \b
        bfa key restore /media/usb/bfa-keys.json --home /srv/bfa/home
        bfa key restore keys.json --home ~/.bfa --db postgresql://bfa@db/bfa
    """
    from ledger import Ledger, open_backup, restore_keys

    try:
        text = backup.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.UsageError(_("{file}: cannot read it ({reason})").format(
            file=backup, reason=e)) from e
    keys = open_backup(text, _passphrase(passphrase_file, confirm=False), str(backup))
    target = resolve_home(home, db)
    written = restore_keys(target, keys, db)
    try:
        led = Ledger.open(str(target.path), db)
        try:
            checks = led.check_keys()
        finally:
            led.close()
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    names = [p.stem for p in written if p.parent.name == "keys"]
    if names:
        click.echo(_("restored {keys} of ledger {origin} into {home}").format(
            keys=", ".join(names), origin=keys.origin, home=target.path))
    else:
        click.echo(_("restored no key (all were there) of ledger {origin} into {home}").format(
            origin=keys.origin, home=target.path))
    for line in checks:
        click.echo("  " + _("checked {check}").format(check=line))


@key.command("rotate")
@home_options
@click.option("--vault", "vault", is_flag=True,
              help="Rotate the vault key: every data key re-wrapped under a new one.")
@click.option("--signing", "signing", is_flag=True,
              help="Rotate the signing key: a new key signs from now on, the old one is "
                   "deleted; old checkpoints still verify.")
@user_option
def key_rotate(home: str | None, db: str | None, vault: bool, signing: bool,
               user: str | None) -> None:
    """Replace the vault key (--vault) or the signing key (--signing).

    --vault: one transaction re-wraps every person's data key, records the new key's
    check value and appends a control.key entry; then keys/vault.key is replaced and the
    old key kept in keys/retired/ (database backups taken before need it; delete it when
    they must no longer open).

    --signing: one transaction appends a control.key entry naming the old and the new
    verifier key and signs the checkpoint over it with both keys; then keys/signing.key
    and keys/verifier.key hold the new pair and the old signing key is gone. Checkpoints
    signed before still verify: any key of the chain vouches for the others (FORMAT.md
    §5.7). Give auditors the new verifier key ('bfa key export'): proofs made from now on
    are signed by it.

    Homes made for duties take the new key again ('bfa init --from' after removing their
    copy). On PostgreSQL only the ledger tables' owner rotates.

    Example:

    \b
        bfa key rotate --vault
        bfa key rotate --signing && bfa key export > ledger.vkey
    """
    if vault == signing:
        raise click.UsageError(_("name the key to rotate: --vault or --signing (one of them)"))
    with open_ledger(home, db) as led:
        if vault:
            old, new, n = led.rotate_vault_key(user)
            click.echo(_("vault key rotated: {count} data key(s) re-wrapped; check value "
                         "{old} -> {new}; the old key is in keys/retired/; back up the new one "
                         "('bfa key backup')").format(count=n, old=old, new=new))
            return
        old, new, cp = led.rotate_signing_key(user)
    click.echo("\n".join([
        _("signing key rotated at checkpoint {size} (signed by both keys)").format(size=cp.size),
        "  " + _("retired: {key}").format(key=old),
        "  " + _("new:     {key}").format(key=new),
        _("give auditors the new verifier key ('bfa key export'); the old one still checks "
          "checkpoints before the rotation; back up the new key ('bfa key backup')")]))


@key.command("export")
@home_options
@json_option
def key_export(home: str | None, db: str | None, as_json: bool) -> None:
    """Print the C2SP note verifier key (name+hash+base64 Ed25519 public key).

    Reads the home only; the database is opened only to finish a signing-key rotation
    that was interrupted after its commit.

    Example:

    \b
        bfa key export > ledger.vkey
        bfa key export --json
    """
    origin, vkey = current_verifier_key(home, db)
    if as_json:
        click.echo(to_json(VerifierKeyView(origin=origin, verifier_key=vkey)
                           .model_dump(mode="json")))
    else:
        click.echo(vkey)


@bfa.command()
@home_options
@click.argument("person_id", type=TEXT)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_option
def forget(home: str | None, db: str | None, person_id: str, yes: bool, user: str) -> None:
    """Erase a person's clear personal data (crypto-shredding); the ledger still verifies.

    Example:

    \b
        bfa forget 110101199001011234 --yes --user li.wei
    """
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise click.UsageError(
                _("erasing needs confirmation: pass --yes when not at a terminal"))
        if not click.confirm(_("Erase the clear personal data of {person}? This cannot be "
                               "undone").format(person=person_id)):
            click.echo(_("nothing erased"), err=True)
            raise click.exceptions.Exit(Exit.COULD_NOT_RUN)
    with open_ledger(home, db) as led:
        n = led.forget(person_id, user)
    click.echo(_("erased {count} vault value(s); the erasure is recorded in the ledger")
               .format(count=n))


@bfa.group()
def db() -> None:
    """Database administration: duties for the roles of people and services (PostgreSQL).

    Example:

    \b
        bfa db grant li_wei --duty officer --print-sql
    """


@db.command("grant")
@home_options
@click.argument("role", type=TEXT)
@click.option("--duty", "duties", multiple=True, required=True,
              type=click.Choice(["officer", "approver", "auditor", "privacy", "service"]),
              help="A duty ROLE holds (repeat for several): officer ingests and works "
                   "breaks; approver approves (four-eyes); auditor reads all but clear "
                   "personal data; privacy reveals and forgets; service runs the nightly "
                   "and signs.")
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it.")
@user_option
def db_grant(home: str | None, db: str | None, role: str, duties: tuple[str, ...],
             print_sql: bool, user: str) -> None:
    """Make the login ROLE of a person or service hold exactly the duties named.

    Each duty is a group role bfa_<duty>_<database> holding just the table rights it needs; a
    trigger checks that every control entry (an approval, a reveal) comes from a role
    with its duty and names that role. First brings the duty roles up to date, then
    revokes everything ROLE held (rights granted by hand, other duties) and makes it a
    member of the duties named. Run it as the tables' owner (with CREATEROLE the first
    time) or a superuser; --print-sql shows every statement. The grant is appended to
    the ledger ('bfa audit access' lists it). FORMAT.md §8.3 has the command-duty table.

    Example:

    \b
        bfa db grant li_wei --duty officer
        bfa db grant zhao_min --duty approver --duty auditor
        bfa db grant bfa_nightly --duty service --db postgresql://postgres@127.0.0.1/bfa
    """
    from ledger import Duty

    named = cast(tuple[Duty, ...], duties)
    with open_ledger(home, db) as led:
        sql = led.grant_statements(role, named)
        if print_sql:
            click.echo(";\n".join(sql) + ";")
            return
        led.grant(role, named, user)
    click.echo(_("granted {role}: {duties} (and nothing else; see --print-sql)").format(
        role=role, duties=", ".join(dict.fromkeys(duties))))



def _say_fitted(line: str) -> None:
    """A demo line, wrapped to the terminal when it is prose too long for it (a table's
    or a note's line, marked ``|``, and a step's heading, ``==``, which may end in a
    command to copy, are shown as they are)."""
    cols = terminal_width() - 1
    if width(line) <= cols or line.lstrip().startswith(("|", "==")):
        click.echo(line)
        return
    indent = " " * (len(line) - len(line.lstrip()))
    click.echo("\n".join(wrapped(line.strip(), indent, cols)))

@bfa.command()
@click.option("--out", default="demo-out", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the demo: its ledger home DIR/.bfa, data, proofs, report. "
                   "Must be new, empty, or a previous demo's.")
@click.option("--persons", default=3000, show_default=True, type=click.IntRange(min=50),
              help="Insured persons to generate (at least 50).")
@click.option("--seed", default=20261123, show_default=True, help="Random seed.")
def demo(out: Path, persons: int, seed: int) -> None:
    """Run the demo: generate a month, ingest, checkpoint, verify, prove, tamper.

    Its ledger is DIR/.bfa, not the --home / BFA_HOME of other commands.

    Example:

    \b
        bfa demo --persons 500 --out /tmp/bfa-demo
    """
    from cli._demo import run_demo
    from cli._i18n import explicit, language

    done = run_demo(out, persons=persons, seed=seed, say=_say_fitted)
    if explicit():  # the demo's home speaks the language it was run in (bfa --lang)
        set_home_language(resolve_home(str(out / ".bfa")), language())
    if not done:
        raise click.exceptions.Exit(Exit.PROBLEMS)
