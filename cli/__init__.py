"""The ``bfa`` command line: a thin adapter over the library.

Example::

    $ bfa init --origin agency.example/440100
    $ bfa ingest month.jsonl && bfa checkpoint && bfa verify

Each command parses, calls the library once and renders; errors become exit
codes in ``cli/_exit.py``. A command's module is imported when the command runs
(``cli._app.COMMANDS``), so ``bfa --help`` and ``bfa --version`` start fast.
"""

from cli._app import COMMANDS, bfa, main

__all__ = ["COMMANDS", "bfa", "main"]
