"""The ``bfa`` group: global options, error rendering and the entry point.

Errors are caught once, here: a :class:`ledger.BfaError` prints one line
``bfa: error: ...`` (a traceback only with ``--debug``) and exits with the code
``cli/_exit.py`` assigns to its class; a file or database that cannot be used
(``OSError``, ``SQLAlchemyError``) and an aborted prompt exit 2 with one line too.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from cli._exit import Exit, exit_code_for
from ledger import SQLITE_BUSY_SECONDS, BatchRefusedError, BfaError


def _version() -> str:
    try:
        return version("bfa-ledger")
    except PackageNotFoundError:
        return "0+unknown"


class _HelpGroup(click.Group):
    """A command group whose help lists each command with its whole first sentence."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its whole first sentence, wrapped rather than cut at '...'."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=300)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _Group(_HelpGroup):
    """Lists commands in the order of work and maps errors to exit codes."""

    group_class = _HelpGroup  # the groups under bfa (key, db, breaks) list theirs alike

    ORDER = ("init", "status", "ingest", "checkpoint", "verify", "prove", "show", "key",
             "reconcile", "trace", "breaks", "balance", "nightly", "forget", "audit", "db", "demo")

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Commands in the order of the work, then any others alphabetically."""
        known = [c for c in self.ORDER if c in self.commands]
        return known + sorted(c for c in self.commands if c not in self.ORDER)

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
            if ctx.params.get("debug"):
                traceback.print_exc()
            if isinstance(e, BfaError | OSError | SQLAlchemyError):
                click.echo(f"bfa: error: {_one_line(e)}", err=True)
            else:
                click.echo(f"bfa: internal error: {type(e).__name__}: {e} "
                           "(rerun with --debug)", err=True)
            if isinstance(e, BatchRefusedError):
                for p in e.problems[1:20]:
                    click.echo(f"  {p}", err=True)
                if len(e.problems) > 20:
                    click.echo(f"  ... and {len(e.problems) - 20} more", err=True)
            if isinstance(e, BfaError):
                for note in getattr(e, "__notes__", ()):
                    click.echo(f"  {note}", err=True)
            raise click.exceptions.Exit(int(exit_code_for(e))) from e


def _one_line(e: BfaError | OSError | SQLAlchemyError) -> str:
    """An error as one line: ours as worded, a file's as ``PATH: reason``, the
    database driver's first line."""
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
@click.version_option(_version(), prog_name="bfa")
@click.option("--debug", is_flag=True, callback=_debug_from_env,
              help="Show tracebacks for errors (env BFA_DEBUG=1; goes before the command).")
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
    """Console entry point (``bfa``); importing the ``cli`` package registered the
    commands on the group."""
    try:
        bfa.main(prog_name="bfa")
    except KeyboardInterrupt:
        sys.exit(130)
