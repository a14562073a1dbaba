"""The ``bfa`` group: global options, error rendering and the entry point.

Errors are caught once, here: a :class:`ledger.BfaError` prints one line
``bfa: error: ...`` (a traceback only with ``--debug``) and exits with the code
``cli/_exit.py`` assigns to its class; a file or database that cannot be used
(``OSError``, ``SQLAlchemyError``) and an aborted prompt exit 2 with one line too.

Start-up is lazy: a command's module (and with it the ledger, SQLAlchemy, pydantic) is
imported only when that command runs; :data:`COMMANDS` names each command's module and
the first sentence of its help, so ``bfa --help`` and ``bfa --version`` import none of
them (tests/cli/test_startup.py keeps the two in step).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

import click

from cli._exit import Exit
from cli._i18n import Context, Translated, choose, tr, use

if TYPE_CHECKING:
    from sqlalchemy.exc import SQLAlchemyError

    from ledger import BfaError

# pypdf reports what it tolerates in a damaged PDF through logging; for bfa those are
# findings of the 四性 check (archive/_fourprop.py), never lines on the terminal
logging.getLogger("pypdf").setLevel(logging.CRITICAL + 1)

def N_(message: str) -> str:
    """Marks a message for the catalog (``schemas.N_``, without importing schemas)."""
    return message


COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("cli._ledger_cmds", N_("Create the ledger: keys (outside the database), "
             "configuration and the schema.")),
    "status": ("cli._ledger_cmds", N_("Show the ledger's size, latest checkpoint and what was "
               "last verified.")),
    "ingest": ("cli._ledger_cmds", N_("Append interchange JSON Lines files; each file is one "
               "atomic batch.")),
    "checkpoint": ("cli._ledger_cmds", N_("Sign a C2SP checkpoint of the ledger as it is now "
                   "(Ed25519 signed note).")),
    "verify": ("cli._ledger_cmds", N_("Recompute the chain, every hash, every checkpoint root and "
               "signature, then check the stored findings and break states against the "
               "ledger.")),
    "prove": ("cli._ledger_cmds", N_("Print a C2SP tlog-proof@v1 for a record, or an RFC 9162 "
              "consistency proof.")),
    "show": ("cli._ledger_cmds", N_("Show a record as the ledger holds it (personal data "
             "pseudonymised).")),
    "key": ("cli._ledger_cmds", N_("Key material: export the verifier key, back up and restore "
            "keys, rotate keys.")),
    "reconcile": ("cli._reconcile_cmds", N_("Reconcile business events, fund movements and "
                  "vouchers; report the breaks.")),
    "compare": ("cli._compare_cmds", N_("Record an outside list (deaths) in the ledger for the "
                "entitlement rules.")),
    "precheck": ("cli._precheck_cmds", N_("Check a proposed payment batch against the ledger "
                 "before it is sent.")),
    "trace": ("cli._breaks_cmds", N_("Show the whole trail of a record across business, finance "
              "and archive.")),
    "breaks": ("cli._breaks_cmds", N_("Work the breaks: list, show, assign, resolve, approve "
               "(four-eyes), reopen.")),
    "balance": ("cli._bank_cmds", N_("The bank reconciliation statement (银行存款余额调节表) of "
                "each bank account.")),
    "statement": ("cli._bank_cmds", N_("Withdraw a mis-imported bank statement (红冲), with "
                  "four eyes.")),
    "bank-account": ("cli._bank_cmds", N_("The agency's bank accounts: which fund account and "
                     "region each serves.")),
    "nightly": ("cli._breaks_cmds", N_("Nightly run: lock, verify, audit, reconcile, sign a "
                "checkpoint, "
                "write the reports.")),
    "forget": ("cli._ledger_cmds", N_("Erase a person's clear personal data (crypto-shredding); "
               "the ledger still verifies.")),
    "archive": ("cli._archive_cmds", N_("Voucher files: fixity audit, restore, 四性 check, "
                "retention, hold and disposal.")),
    "bundle": ("cli._bundle_cmds", N_("Proof bundles: export a scope for a supervisor; verify "
               "one offline.")),
    "proof": ("cli._bundle_cmds", N_("Single proofs: verify a tlog-proof offline.")),
    "audit": ("cli._audit_cmds", N_("Audit trails kept in the ledger: who accessed personal "
              "data, and rights granted.")),
    "db": ("cli._ledger_cmds", N_("Database administration: duties for the roles of people and "
           "services (PostgreSQL).")),
    "demo": ("cli._ledger_cmds", N_("Run the demo: generate a month, ingest, checkpoint, verify, "
             "prove, tamper.")),
}
"""Every ``bfa`` command, in the order of the work: the module that defines it and the
first sentence of its help (what ``bfa --help`` lists without importing the module)."""


class _Command(Translated, click.Command):
    """A command that notes, for the error handler, which command ran (its duty)."""

    context_class = Context

    def invoke(self, ctx: click.Context) -> Any:
        path = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ""
        ctx.meta["bfa.command"] = (path, bool(ctx.params.get("reveal")))
        return super().invoke(ctx)


class _HelpGroup(Translated, click.Group):
    """A command group whose help lists each command with its whole first sentence."""

    command_class = _Command
    context_class = Context

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its whole first sentence, wrapped rather than cut at '...'."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=300)))
        if rows:
            with formatter.section(tr("Commands") or "Commands"):
                formatter.write_dl(rows)


class _Group(_HelpGroup):
    """Lists commands in the order of work, imports a command's module only when it runs,
    and maps errors to exit codes."""

    group_class = _HelpGroup  # the groups under bfa (key, db, breaks) list theirs alike

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Commands in the order of the work, then any others alphabetically."""
        return list(COMMANDS) + sorted(c for c in self.commands if c not in COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name][0])  # registers it on the group
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from :data:`COMMANDS`, without importing any command."""
        rows = [(name, tr(help_) or help_) for name, (_module, help_) in COMMANDS.items()]
        rows += [(n, c.get_short_help_str(limit=300)) for n, c in sorted(self.commands.items())
                 if n not in COMMANDS and not c.hidden]
        with formatter.section(tr("Commands") or "Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Choose the language before anything is shown (``--help`` included)."""
        flag = _lang_arg(args)
        given = flag or os.environ.get("BFA_LANG")
        use(choose(given, args, "--lang" if flag else "BFA_LANG"), explicit=bool(given))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except click.exceptions.Abort:  # Ctrl-C or end of input at a confirmation prompt
            click.echo("bfa: aborted", err=True)
            raise click.exceptions.Exit(int(Exit.COULD_NOT_RUN)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:  # the reader went away (`bfa show ... | head`): no message,
            devnull = os.open(os.devnull, os.O_WRONLY)  # but not "clean" either: the output
            os.dup2(devnull, sys.stdout.fileno())  # was cut short (and a result may be lost)
            raise click.exceptions.Exit(int(Exit.COULD_NOT_RUN)) from None
        except Exception as e:
            from sqlalchemy.exc import SQLAlchemyError

            from cli._exit import exit_code_for
            from ledger import BatchRefusedError, BfaError

            if ctx.params.get("debug"):
                traceback.print_exc()
            refused = _duty_refusal(ctx, e)
            if refused is not None:
                click.echo(f"bfa: error: {refused}", err=True)
            elif isinstance(e, BfaError | OSError | SQLAlchemyError):
                click.echo(f"bfa: error: {_one_line(e)}", err=True)
            else:
                click.echo(f"bfa: internal error: {type(e).__name__}: {e} "
                           "(rerun with --debug)", err=True)
            if isinstance(e, BatchRefusedError):
                for p in e.problems[1:20]:
                    click.echo(f"  {p}", err=True)
                if len(e.problems) > 20:
                    click.echo("  " + str(tr("… and {n} more")).format(
                        n=len(e.problems) - 20), err=True)
            if isinstance(e, BfaError):
                for note in getattr(e, "__notes__", ()):
                    click.echo(f"  {note}", err=True)
            raise click.exceptions.Exit(int(exit_code_for(e))) from e


def _lang_arg(args: list[str]) -> str | None:
    """The value of ``--lang`` among the group's own options (before the command)."""
    for i, arg in enumerate(args):
        if arg == "--lang" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
        if not arg.startswith("-"):
            return None  # the command: what follows is its own
    return None


def _duty_refusal(ctx: click.Context, e: Exception) -> str | None:
    """The database refused for want of a right (SQLSTATE 42501, not an append-only
    trigger), or the library found the duty missing first: the line naming the duty the
    command needs (FORMAT.md §8.3)."""
    from cli._duties import refusal
    from ledger import DutyError

    path, reveal = ctx.meta.get("bfa.command", ("", False))
    if isinstance(e, DutyError) and e.refused:  # the library checked before the database
        return refusal(path, reveal, str(e))
    orig = getattr(e, "orig", None) or e  # psycopg's own error when bfa drove COPY itself
    if getattr(orig, "sqlstate", None) != "42501" or "append-only" in str(orig):
        return None
    lines = str(orig).strip().splitlines()
    return refusal(path, reveal, lines[0] if lines else "permission denied")


def _one_line(e: BfaError | OSError | SQLAlchemyError) -> str:
    """An error as one line: ours as worded, a file's as ``PATH: reason``, the
    database driver's first line."""
    import sqlite3

    from ledger import SQLITE_BUSY_SECONDS, BfaError

    if isinstance(e, BfaError):
        return str(e)
    if isinstance(e, OSError):
        reason = e.strerror or str(e)
        return f"{e.filename}: {reason}" if e.filename is not None else reason
    orig = getattr(e, "orig", None)
    if isinstance(orig, sqlite3.OperationalError) and "database is locked" in str(orig):
        return (f"database: still locked by another writer after {SQLITE_BUSY_SECONDS} s (a "
                "bfa ingest, nightly or other command writing to this ledger); try again when "
                "it has finished")
    first = str(orig if orig is not None else e).strip().splitlines()
    return f"database: {first[0] if first else type(e).__name__}"


def _debug_from_env(ctx: click.Context, param: click.Parameter, flag: bool) -> bool:
    """``--debug``, else ``BFA_DEBUG``: set to anything but empty, 0, false, no or off.

    A debugging switch in the environment should never stop a command from running, as
    click's strict boolean would for a value it does not know."""
    value = os.environ.get("BFA_DEBUG", "").strip().lower()
    return flag or value not in ("", "0", "false", "no", "off", "n", "f")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bfa-ledger", prog_name="bfa")
@click.option("--debug", is_flag=True, callback=_debug_from_env,
              help="Show tracebacks for errors (env BFA_DEBUG=1; goes before the command).")
@click.option("--lang", metavar="zh_CN|en", expose_value=False,
              help="Language of what bfa prints and writes for people: zh_CN (中文) or en. "
                   "Default: BFA_LANG, else the home's config.json \"lang\" (bfa init "
                   "--lang), else the locale (LANG). Goes before the command.")
def bfa(debug: bool) -> None:
    """BFA Ledger: business-finance-archive integrity ledger.

    Appends business events, fund movements and vouchers to a hash-chained,
    Merkle-checkpointed ledger with signed checkpoints that anyone can verify.

    Exit codes: 0 clean, 1 problems found, 2 could not run, 3 integrity failure.

    Example:

    \b
        bfa demo                                  # a demo ledger in demo-out/.bfa
        bfa init --origin agency.example/440100   # your ledger in ./.bfa
        bfa ingest business.jsonl finance.jsonl
    """
    os.umask(0o077)  # what bfa writes is private until a shared home says otherwise


def main() -> None:
    """Console entry point (``bfa``)."""
    try:
        bfa.main(prog_name="bfa")
    except KeyboardInterrupt:
        sys.exit(130)
