"""The documents a newcomer navigates by stay true: the ADR index lists every ADR, and an
ADR that amends another is named at the top of the one it amends."""

from __future__ import annotations

import re
from pathlib import Path

ADR = Path(__file__).resolve().parent.parent / "docs" / "adr"


def _adrs() -> dict[str, str]:
    return {p.name[:4]: p.read_text("utf-8") for p in sorted(ADR.glob("[0-9][0-9][0-9][0-9]-*.md"))}


def _head(text: str) -> str:
    """The title and the status paragraph, where amendments are named."""
    return text.split("\n## ", 1)[0]


def test_the_index_lists_every_adr_once() -> None:
    index = (ADR / "README.md").read_text("utf-8")
    linked = re.findall(r"\]\(((\d{4})-[^)]+\.md)\)", index)
    assert sorted(n for _f, n in linked) == sorted(_adrs())
    assert all((ADR / f).is_file() for f, _n in linked)


def test_amendments_are_named_on_both_sides() -> None:
    adrs = _adrs()
    for num, text in adrs.items():
        for clause in re.split(r"[.;]\s", _head(text)):
            if not re.search(r"\bamends\b", clause, re.I):
                continue
            for target in set(re.findall(r"ADR (\d{4})", clause)) - {num}:
                assert re.search(rf"Amended by[^\n]*ADR {num}", _head(adrs[target])), (
                    f"ADR {num} amends ADR {target}, which does not say so at its top")


def test_the_exit_code_table_names_every_command() -> None:
    """FORMAT §10 has a row for every command of `bfa` (subcommands of a group may share
    a row, named after the group)."""
    from cli import COMMANDS

    fmt = (ADR.parent / "FORMAT.md").read_text("utf-8")
    section = fmt.split("## 10. Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `bfa ")]
    named = {line.split("`")[1].split()[1] for line in rows}
    assert named == set(COMMANDS)


def test_the_duty_table_is_the_one_the_cli_uses() -> None:
    """FORMAT §8.3's command → duty table is cli/_duties.py's, row for row; rows of commands
    not built yet say so (planned, with their issue)."""
    from cli._duties import COMMAND_DUTIES

    fmt = (ADR.parent / "FORMAT.md").read_text("utf-8")
    section = fmt.split("### 8.3 ", 1)[1].split("\n### ", 1)[0]
    table = section.split("**Command → duty.**", 1)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `bfa ")]
    built = {cmd.strip().strip("`").removeprefix("bfa "): duty.strip()
             for cmd, duty in rows if "(planned, issue" not in duty}
    assert built == COMMAND_DUTIES
    # the commands of open issues are named too (none is left since issue 20's precheck)
    assert len(rows) >= len(built)
