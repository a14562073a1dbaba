"""The ``bfa`` command line: a thin adapter over the library.

Example::

    $ bfa init --origin agency.example/440100
    $ bfa ingest month.jsonl && bfa checkpoint && bfa verify

Each command parses, calls the library once and renders; errors become exit
codes in ``cli/_exit.py``.
"""

from cli import _audit_cmds as _audit_cmds  # `bfa audit access`
from cli import _bank_cmds as _bank_cmds  # `bfa balance`
from cli import _breaks_cmds as _breaks_cmds  # `bfa breaks`, `bfa trace`, `bfa nightly`
from cli import _commands as _commands  # registers the commands on the group
from cli import _reconcile_cmds as _reconcile_cmds  # registers `bfa reconcile`
from cli._app import bfa, main

__all__ = ["bfa", "main"]
