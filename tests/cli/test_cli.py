"""The CLI as a user meets it: help, exit codes, JSON output, one-line errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli import bfa
from ledger import TLogProof, Verifier, entry_hash, verify_inclusion
from ledger._tlogproof import verify_tlog_proof
from tests._records import payment_event, write_jsonl

REVEAL = ("--reveal", "--purpose", "test")  # a reveal states its purpose
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path, the lazily imported ones included (``get_command`` loads)."""
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _walk(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", _walk(bfa), ids=lambda p: " ".join(p))
def test_every_command_has_help_and_example(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(bfa, [*path, "--help"])
    assert res.exit_code == 0, res.output
    cmd: Any = bfa
    for p in path:
        cmd = cmd.get_command(click.Context(cmd), p)
    if not isinstance(cmd, click.Group):
        assert "Example:" in res.output, f"bfa {' '.join(path)} --help has no example"
    # every example line reaches the reader as written, ready to copy (not re-wrapped)
    doc = (cmd.help or "").split("Example:", 1)
    assert len(doc) == 2, f"bfa {' '.join(path)}: no example in its docstring"
    shown = {line.strip() for line in res.output.splitlines()}
    examples = [ln.strip() for ln in doc[1].splitlines() if ln.strip() and ln.strip() != "\b"]
    assert examples
    for line in examples:
        assert line in shown, f"bfa {' '.join(path)} --help re-wraps its example {line!r}"


def _groups() -> list[tuple[str, ...]]:
    return [(), *(p for p in _walk(bfa) if len(p) == 1
                  and isinstance(bfa.get_command(click.Context(bfa), p[0]), click.Group))]


@pytest.mark.parametrize("path", _groups(), ids=lambda p: " ".join(("bfa", *p)))
def test_command_lists_show_whole_first_sentences(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(bfa, [*path, "--help"])
    listing = res.output.split("Commands:", 1)[1]
    assert "..." not in listing, listing


def test_top_help_lists_commands() -> None:
    res = CliRunner().invoke(bfa, ["--help"])
    for name in ("init", "ingest", "checkpoint", "verify", "prove", "show", "key", "forget", "db",
                 "demo"):
        assert f"  {name}" in res.output


@pytest.fixture
def env(ledger_home: dict[str, Any]) -> dict[str, str]:
    return {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"],
            "BFA_USER": "tester"}


def run(env: dict[str, str], *args: str, input: bytes | None = None) -> Any:
    return CliRunner().invoke(bfa, list(args), env=env, input=input, catch_exceptions=False)


def test_cli_flow(env: dict[str, str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(5)])
    res = run(env, "ingest", str(path), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["files"][0]["appended"] == 5

    res = run(env, "prove", "BP-1")
    assert res.exit_code == 1
    assert "not yet covered by a signed checkpoint" in res.output

    out = tmp_path / "cp.note"
    res = run(env, "checkpoint", "--out", str(out))
    assert res.exit_code == 0
    first = 5 + BATCH
    assert out.read_text().startswith(f"test.bfa.example/ledger\n{first}\n")

    vkey = run(env, "key", "export").output.strip()
    proof_text = run(env, "prove", "BP-3").output
    proof = TLogProof.parse(proof_text)
    assert proof.extra is not None
    verify_tlog_proof(proof, entry_hash(proof.extra), Verifier.from_text(vkey), verify_inclusion)

    raw = CliRunner().invoke(bfa, ["show", "BP-3", "--entry", "--raw"], env=env)
    assert raw.stdout_bytes == proof.extra

    res = run(env, "verify", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["ok"] is True

    path2 = write_jsonl(tmp_path / "b.jsonl", [payment_event(10 + i) for i in range(3)])
    run(env, "ingest", str(path2))
    run(env, "checkpoint")
    res = run(env, "verify", "--against", str(out))
    assert res.exit_code == 0
    assert f"extends the auditor's checkpoint of size {first}" in res.output
    res = run(env, "prove", "--consistency", str(first), "--json")
    doc = json.loads(res.output)
    assert doc["size1"] == first and doc["size2"] == first + 3 + BATCH
    assert all(len(base64.b64decode(h)) == 32 for h in doc["hashes"])


def test_ingest_refused_exit_2_one_line(env: dict[str, str], tmp_path: Path) -> None:
    bad = dict(payment_event(1), region="44")
    path = write_jsonl(tmp_path / "bad.jsonl", [payment_event(0), bad])
    res = run(env, "ingest", str(path))
    assert res.exit_code == 2
    assert f"bfa: error: {path}: batch refused, nothing appended" in res.output
    assert f"{path}:2: region:" in res.output
    assert "Traceback" not in res.output


def test_ingest_reject_file_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [payment_event(0), "[1, 2]"])
    rej = tmp_path / "rejected.jsonl"
    res = run(env, "ingest", str(path), "--reject-file", str(rej))
    assert res.exit_code == 1
    line = json.loads(rej.read_text().splitlines()[0])
    assert line["line"] == 2 and line["text"] == "[1, 2]" and "JSON object" in line["reason"]


def test_ingest_stdin(env: dict[str, str]) -> None:
    data = (json.dumps(payment_event(1)) + "\n").encode()
    res = run(env, "ingest", "-", input=data)
    assert res.exit_code == 0, res.output


def test_show_reveal_is_logged(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "ingest", str(write_jsonl(tmp_path / "a.jsonl", [payment_event(1)])))
    res = run(env, "show", "BP-1", *REVEAL, "--json")
    doc = json.loads(res.output)
    assert doc["revealed"]["person_id"] == "110101199001011234"
    assert doc["person_id"].startswith("ps1:")
    res = run(env, "verify", "--json")
    assert json.loads(res.output)["tree_size"] == 1 + BATCH + 1  # the reveal was appended


def test_uninitialised_home_exit_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(bfa, ["verify"], env={"BFA_HOME": str(tmp_path / "none")})
    assert res.exit_code == 2
    assert "run 'bfa init' first" in res.output


def test_unknown_record_exit_2(env: dict[str, str]) -> None:
    res = run(env, "show", "nope")
    assert res.exit_code == 2 and "no record 'nope'" in res.output


def test_keys_are_private_files(ledger_home: dict[str, Any]) -> None:
    keys = Path(ledger_home["home"]) / "keys"
    for f in ("signing.key", "secret.key"):
        assert (keys / f).stat().st_mode & 0o777 == 0o600


def test_forget_never_prompts_without_terminal(env: dict[str, str]) -> None:
    res = CliRunner().invoke(bfa, ["forget", "110101199001011234"], env=env, input="y\n")
    assert res.exit_code == 2
    assert "pass --yes" in res.output


def test_db_grant_needs_postgresql(env: dict[str, str]) -> None:
    if env["BFA_DATABASE_URL"].startswith("postgresql"):
        res = run(env, "db", "grant", "bfa_app", "--duty", "officer", "--print-sql")
        assert res.exit_code == 0
        officer = f'"bfa_officer_{env["BFA_DATABASE_URL"].rsplit("/", 1)[1]}"'
        assert f"GRANT INSERT ON entries, tree_nodes TO {officer};" in res.output
        assert res.output.rstrip().endswith(f'GRANT {officer} TO "bfa_app";')
    else:
        res = run(env, "db", "grant", "bfa_app", "--duty", "officer")
        assert res.exit_code == 2 and "PostgreSQL only" in res.output


def test_prove_over_tampered_ledger_exit_3(env: dict[str, str], tmp_path: Path) -> None:
    from ledger import Ledger
    from tests._records import superuser

    path = write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(12)])
    assert run(env, "ingest", str(path)).exit_code == 0
    assert run(env, "checkpoint").exit_code == 0
    led = Ledger.open(env["BFA_HOME"], env["BFA_DATABASE_URL"])
    try:
        rid = led.entry_at(6).record_id
        with superuser(led) as conn:
            conn.execute(text("UPDATE tree_nodes SET hash = :h WHERE level = 1 AND idx = 2"),
                         {"h": bytes(32)})
    finally:
        led.close()
    res = run(env, "prove", rid)
    assert res.exit_code == 3, res.output
    assert res.output.startswith("bfa: error: the proof of entry 6 does not verify")
    assert res.output.count("\n") == 1


def test_files_that_cannot_be_used_exit_2_one_line(env: dict[str, str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(3)])
    assert run(env, "ingest", str(path)).exit_code == 0
    res = run(env, "checkpoint", "--out", str(tmp_path / "no" / "such" / "dir" / "cp.note"))
    assert res.exit_code == 2, res.output
    assert "bfa: error: " in res.output and "No such file or directory" in res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    garbage = tmp_path / "garbage.note"
    garbage.write_text("not a checkpoint\n", encoding="utf-8")
    res = run(env, "verify", "--against", str(garbage))
    assert res.exit_code == 2, res.output
    assert "not a signed checkpoint note" in res.output
    garbage.write_bytes(b"\xff\xfe")
    res = run(env, "verify", "--against", str(garbage))
    assert res.exit_code == 2 and "not UTF-8" in res.output


@pytest.mark.parametrize(("args", "message"), [
    (["prove", "BP-1", "2000"], "NEW_SIZE goes with --consistency"),
    (["prove", "--consistency", "1", "BP-1"], "no RECORD_ID"),
    (["prove", "--consistency", "1", "2", "3"], "no RECORD_ID"),
    (["prove", "--consistency", "1", "--domain", "business"], "--domain goes with a RECORD_ID"),
    (["show", "BP-1", "--raw"], "give --entry too"),
    (["show", "BP-1", "--entry", "--raw", "--json"], "leave out --json and --reveal"),
    (["show", "BP-1", "--entry", "--raw", *REVEAL], "leave out --json and --reveal"),
])
def test_arguments_that_do_not_fit_are_usage_errors(
    env: dict[str, str], args: list[str], message: str
) -> None:
    res = CliRunner().invoke(bfa, args, env=env)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_key_export_json_reads_the_home_only(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": "postgresql://nowhere.invalid/x"}
    text_out = CliRunner().invoke(bfa, ["key", "export"], env=env)
    assert text_out.exit_code == 0, text_out.output
    res = CliRunner().invoke(bfa, ["key", "export", "--json"], env=env)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["verifier_key"] == text_out.output.strip()
    assert doc["verifier_key"].startswith(doc["origin"] + "+")
    Verifier.from_text(doc["verifier_key"])
    missing = tmp_path / "typo"
    res = CliRunner().invoke(bfa, ["key", "export", "--home", str(missing)])
    assert res.exit_code == 2 and "run 'bfa init' first" in res.output
    assert not missing.exists()


def test_status_reads_only(env: dict[str, str], tmp_path: Path) -> None:
    empty = json.loads(run(env, "status", "--json").output)
    assert (empty["size"], empty["checkpoint_size"], empty["unsigned"]) == (0, None, 0)
    assert empty["verified_size"] is None and empty["chain_head"] is None
    path = write_jsonl(tmp_path / "a.jsonl", [payment_event(i) for i in range(5)])
    assert run(env, "ingest", str(path)).exit_code == 0
    assert run(env, "checkpoint").exit_code == 0
    assert run(env, "verify").exit_code == 0
    more = write_jsonl(tmp_path / "b.jsonl", [payment_event(100 + i) for i in range(3)])
    assert run(env, "ingest", str(more)).exit_code == 0
    res = run(env, "status", "--json")
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    signed, unsigned = 5 + BATCH, 3 + BATCH
    assert (st["size"], st["checkpoint_size"], st["unsigned"], st["verified_size"]) == (
        signed + unsigned, signed, unsigned, signed)
    assert len(st["chain_head"]) == 64 and len(st["checkpoint_root"]) == 64
    again = json.loads(run(env, "status", "--json").output)
    assert again == st  # reading changed nothing
    text_out = run(env, "status").output
    assert f"unsigned    {unsigned} entries" in text_out
    assert f"up to checkpoint {signed}" in text_out


def test_debug_from_the_environment_shows_the_traceback(tmp_path: Path) -> None:
    env = {"BFA_HOME": str(tmp_path / "none")}
    quiet = CliRunner().invoke(bfa, ["verify"], env=env)
    assert quiet.exit_code == 2 and "Traceback" not in quiet.output
    loud = CliRunner().invoke(bfa, ["verify"], env={**env, "BFA_DEBUG": "1"})
    assert loud.exit_code == 2 and "Traceback" in loud.output
    for value, shown in (("yes", True), ("banana", True), ("0", False), ("off", False)):
        res = CliRunner().invoke(bfa, ["verify"], env={**env, "BFA_DEBUG": value})
        assert res.exit_code == 2, (value, res.output)  # the command ran; a switch never stops it
        assert ("Traceback" in res.output) is shown, (value, res.output)
        assert "is not a ledger home" in res.output


def test_a_table_row_is_one_line_whatever_its_values_hold() -> None:
    """Values from the ledger (notes, names, messages) cannot break or forge table rows."""
    from cli._render import table

    text = table([{"a": "x\n999  forged", "b": "p\u2028q"}, {"a": "tab\there", "b": "\x1b[31m"}],
                 ["a", "b"])
    lines = text.split("\n")
    assert len(lines) == 4 and not any(line.startswith("999") for line in lines)
    assert "x\\n999  forged" in lines[2] and "\\u2028" in lines[2] and "\\x1b[31m" in lines[3]


def test_a_sqlite_lock_held_too_long_is_explained() -> None:
    """FORMAT.md §8.5: after the busy timeout the error says what holds the database."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from cli._app import _one_line

    err = OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
    msg = _one_line(err)
    assert "still locked by another writer after 120 s" in msg and "\n" not in msg
    other = OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))
    assert _one_line(other) == "database: disk I/O error"
