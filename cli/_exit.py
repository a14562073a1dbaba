"""Exit codes, decided in this one place for every command.

0 clean; 1 problems found (breaks, rejected lines, not yet covered); 2 could not
run (bad usage, refused input, unusable home or database); 3 integrity failure.
"""

from __future__ import annotations

import enum

from ledger import BfaError, ConfigError, InputError, IntegrityError, NotCoveredError


class Exit(enum.IntEnum):
    CLEAN = 0
    PROBLEMS = 1
    COULD_NOT_RUN = 2
    INTEGRITY = 3


def exit_code_for(err: BaseException) -> Exit:
    """Map an exception to the exit code the user and cron see."""
    if isinstance(err, IntegrityError):
        return Exit.INTEGRITY
    if isinstance(err, NotCoveredError):
        return Exit.PROBLEMS
    if isinstance(err, InputError | ConfigError | BfaError):
        return Exit.COULD_NOT_RUN
    return Exit.COULD_NOT_RUN
