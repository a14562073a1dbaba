"""Exit codes, decided in this one place for every command.

0 clean; 1 problems found (breaks, rejected lines, not yet covered); 2 could not
run (bad usage, refused input, unusable home or database); 3 integrity failure.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    CLEAN = 0
    PROBLEMS = 1
    COULD_NOT_RUN = 2
    INTEGRITY = 3


def exit_code_for(err: BaseException) -> Exit:
    """Map an exception to the exit code the user and cron see."""
    from ledger import IntegrityError, NotCoveredError  # only once something went wrong

    if isinstance(err, IntegrityError):
        return Exit.INTEGRITY
    if isinstance(err, NotCoveredError):
        return Exit.PROBLEMS
    # InputError, ConfigError, any other BfaError; a file or database we could not use
    # (OSError, SQLAlchemyError); and a bug (anything else): the command could not run
    return Exit.COULD_NOT_RUN
