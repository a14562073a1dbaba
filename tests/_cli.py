"""The one harness the command-line tests drive ``bfa`` with (click's runner, in-process).

Each call starts from a clean environment of ours: ``BFA_HOME`` and ``BFA_DATABASE_URL``
unset (tests name the home and database with :func:`h`), ``BFA_DEBUG`` off, and a label
``user`` (``BFA_USER``; in tests a label stands for the acting identity, tests/_identity.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

import cli

RAW = ("Traceback", "internal error")
"""What no command may print, whatever it is given."""


def h(home: Path, db: str | None = None) -> list[str]:
    """``--home HOME`` and, with a database URL, ``--db URL``."""
    return ["--home", str(home), *(["--db", db] if db else [])]


def invoke(*args: str, user: str | None = "alice", env: dict[str, str] | None = None,
           input: Any = None) -> Result:
    """``bfa ARGS`` in-process; ``user`` is the ``BFA_USER`` label (None: unset)."""
    base = {"BFA_DEBUG": "", "BFA_HOME": "", "BFA_DATABASE_URL": ""}
    if user is not None:
        base["BFA_USER"] = user
    return CliRunner().invoke(cli.bfa, list(args), env={**base, **(env or {})}, input=input)


def ok(*args: str, code: int | tuple[int, ...] = 0, **kw: Any) -> Result:
    """:func:`invoke`, asserting the exit code (0 unless told) and no traceback."""
    res = invoke(*args, **kw)
    codes = code if isinstance(code, tuple) else (code,)
    assert res.exit_code in codes, (args, res.exit_code, res.stdout, res.stderr, res.exception)
    assert not any(w in res.output for w in RAW), res.output
    return res


def jok(*args: str, code: int | tuple[int, ...] = 0, **kw: Any) -> Any:
    """:func:`ok` with ``--json``, its output parsed."""
    return json.loads(ok(*args, "--json", code=code, **kw).stdout)


def one_error_line(res: Result | subprocess.CompletedProcess[str], code: int) -> str:
    """FORMAT §10: one line ``bfa: error: ...`` on stderr, no traceback, the code given."""
    rc = res.exit_code if isinstance(res, Result) else res.returncode
    assert rc == code, (rc, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("bfa: error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    return lines[0]


def size(home: Path, db: str | None = None) -> int:
    """The ledger's size, as ``bfa status --json`` gives it."""
    return int(jok("status", *h(home, db))["size"])
