"""Fast start (cli._app.COMMANDS): ``bfa --version`` and ``bfa --help`` import no layer of
the ledger, and the registry that lets them say what each command does stays true."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from cli import COMMANDS, bfa

HEAVY = ("ledger", "reconcile", "archive", "schemas", "sqlalchemy", "pydantic", "psycopg")


def _imported_after(args: list[str]) -> list[str]:
    """The heavy packages a fresh interpreter has imported after running ``bfa ARGS``."""
    code = ("import sys\nfrom cli import bfa\n"
            f"try:\n    bfa.main({args!r}, prog_name='bfa', standalone_mode=False)\n"
            "except SystemExit:\n    pass\n"
            f"print('IMPORTED:', *(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return out.rsplit("IMPORTED:", 1)[1].split()


def test_version_and_help_import_no_layer() -> None:
    assert _imported_after(["--version"]) == []
    assert _imported_after(["--help"]) == []


def test_a_command_imports_what_it_needs() -> None:
    assert "ledger" in _imported_after(["status", "--help"])


def test_the_registry_names_each_commands_module_and_help() -> None:
    ctx = click.Context(bfa)
    for name, (module, first) in COMMANDS.items():
        importlib.import_module(module)
        cmd = bfa.commands[name]
        assert cmd.callback is not None and cmd.callback.__module__ == module, name
        assert cmd.get_short_help_str(limit=300) == first, name
    for name in bfa.list_commands(ctx):  # nothing registered that the registry lacks
        assert name in COMMANDS, name
