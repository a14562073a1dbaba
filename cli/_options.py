"""Options shared by commands, as decorators (``--home``, ``--db``, ``--json``, ``--user``)."""

from __future__ import annotations

import calendar
import itertools
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from ledger import InputError, Ledger, apply_umask
from schemas import gettext as _

F = TypeVar("F", bound=Callable[..., Any])


if TYPE_CHECKING:  # generic in the click this is checked with; not in click 8.1
    _StrParamType = click.ParamType[str]
else:
    _StrParamType = click.ParamType


class _Text(_StrParamType):
    """Text the ledger may compare or store: refused, as a usage error, when the
    terminal passed bytes that are not UTF-8 (Python keeps them as lone surrogates,
    which no record id, name or note can hold and no database accepts)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            self.fail(_("'{text}' is not valid UTF-8 text").format(text=shown), param, ctx)
        return text


TEXT = _Text()
"""Parameter type of every text argument and option that is not a file name."""


class _Date(click.DateTime):
    """A day ``YYYY-MM-DD`` (ASCII digits), said so in help and errors in the reader's
    language (click's own words would show ``%Y-%m-%d``)."""

    name = "date"

    def __init__(self) -> None:
        super().__init__(formats=["%Y-%m-%d"])

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DATE"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value)
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text, re.ASCII):
            self.fail(_("{value} is not a day YYYY-MM-DD (e.g. 2026-11-30)").format(
                value=repr(text)), param, ctx)
        try:
            return datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            self.fail(_("{value} is not a day of the calendar").format(value=repr(text)),
                      param, ctx)


DATE = _Date()
"""Parameter type of every ``--as-of``, ``--date``, ``--since`` day."""


def home_options(f: F) -> F:
    f = click.option(
        "--db", "db", metavar="URL", envvar="BFA_DATABASE_URL",
        help="Database URL (postgresql://...); default: SQLite file in the home. "
        "[env BFA_DATABASE_URL]",
    )(f)
    f = click.option(
        "--home", "home", metavar="DIR", envvar="BFA_HOME",
        help="Ledger home directory (keys, config, SQLite file). [default: ./.bfa; env BFA_HOME]",
    )(f)
    return f


def given(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was given on the command line (not left at its default)."""
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)


def by_option(f: F) -> F:
    """``--by insurance,region``: the report's breaks summarised per insurance and/or pooling
    region too (``reconcile.parse_by`` checks the value)."""
    return click.option(
        "--by", "by", type=TEXT, default=None, metavar="KEYS",
        help="Also summarise the breaks per insurance and/or region: insurance, region "
             "or insurance,region (each break under its first record's).",
    )(f)


def user_option(f: F) -> F:
    return click.option(
        "--user", envvar="BFA_USER", type=TEXT, default=None, metavar="LABEL",
        help="A label recorded beside your identity (a service account's purpose, say). "
             "Who acts is your database role (PostgreSQL) or operating-system account "
             "(SQLite), never this label. [env BFA_USER]",
    )(f)


@contextmanager
def open_ledger(home: str | None, db: str | None) -> Iterator[Ledger]:
    """The ledger of ``--home``/``--db``; files this process creates from now on are as
    private as the home (FORMAT.md §5.4), and a home others may read is named."""
    led = Ledger.open(home, db)
    apply_umask(led.home.perms)
    for path in led.home.loose():
        click.echo("bfa: warning: "
                   + _("{path} may be read by group or others (personal data); "
                       "run: chmod -R go-rwx {home}").format(path=path, home=led.home.path),
                   err=True)
    try:
        yield led
    finally:
        led.close()


@contextmanager
def progress(length: int | None, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal; otherwise nothing. ``length`` None:
    the total is not known beforehand (the bar counts)."""
    if sys.stderr is None or not sys.stderr.isatty():
        yield None
        return
    # an unknown length: a bar that counts, with no percentage (click needs an iterable)
    bar: Any = (click.progressbar(length=length, label=label, file=sys.stderr)
                if length is not None else
                click.progressbar(itertools.count(), label=label, file=sys.stderr))
    with bar:
        yield bar.update


def as_of_day(as_of: datetime | None, period: str | None) -> date | None:
    """The day a command judges by: ``--as-of DATE``, or ``--period YYYY-MM`` (the month's
    last day); None when neither is given (the library's default: today in Shanghai)."""
    if as_of is not None and period is not None:
        raise InputError(_("give --as-of or --period, not both"))
    if period is None:
        return None if as_of is None else as_of.date()
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", period, re.ASCII) or period < "0001":
        raise InputError(_("--period {period} is not a month YYYY-MM (e.g. 2026-11)")
                         .format(period=repr(period)))
    year, month = int(period[:4]), int(period[5:])
    return date(year, month, calendar.monthrange(year, month)[1])


def check_output_file(path: Path, home: str | None, db: str | None, option: str) -> None:
    """Refuse an output file (``--hold-file``, ``--reject-file``) that would replace what is
    not an ordinary file of the user's (a device, a pipe, a link), or anything of the
    ledger's home or its SQLite database: these commands write through a ``.part`` file
    renamed over the target, which would destroy it."""
    from ledger import resolve_home

    if path.is_symlink():
        raise click.UsageError(_("{option} {file}: a symbolic link; name a file of its "
                                 "own").format(option=option, file=path))
    if path.exists() and not path.is_file():
        raise click.UsageError(_("{option} {file}: not an ordinary file; name a new file or a "
                                 "file to replace").format(option=option, file=path))
    target = path.resolve()
    h = resolve_home(home, db)
    place = h.path.resolve()
    files: set[Path] = set()
    if h.db_url.startswith("sqlite:///"):
        base = Path(h.db_url.removeprefix("sqlite:///")).resolve()
        files = {base, *(base.with_name(base.name + x) for x in ("-wal", "-shm", "-journal"))}
    if target == place or place in target.parents or target in files:
        raise click.UsageError(_("{option} {file}: the ledger's home or its database; write "
                                 "it elsewhere").format(option=option, file=path))
