"""Purpose-bound disclosure and the access audit (FORMAT.md §2.5, §4.6): a reveal names its
purpose and only the fields asked for; ``bfa audit access`` lists reveals, forgets and
grants from the ledger, on both backends."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner, Result

from cli import (
        bfa,
)
from tests._records import payment_event, write_jsonl

PERSON = "110101199001011234"


def run(env: dict[str, str], *args: str, code: int = 0, user: str = "li.wei") -> Result:
    r = CliRunner().invoke(bfa, list(args), env={**env, "BFA_USER": user})
    assert r.exit_code == code, (args, r.exit_code, r.output)
    return r


def _env(ledger_home: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"]}
    batch = write_jsonl(tmp_path / "a.jsonl", [payment_event(1), payment_event(2)])
    run(env, "ingest", str(batch))
    return env


def test_a_reveal_shows_only_the_fields_asked_for_and_logs_why(
        ledger_home: dict[str, Any], tmp_path: Path) -> None:
    env = _env(ledger_home, tmp_path)
    shown = json.loads(run(env, "show", "BP-1", "--reveal", "--purpose", "payee complaint 4411",
                           "--fields", "account", "--json").stdout)["revealed"]
    assert set(shown) == {"account"}
    both = json.loads(run(env, "show", "BP-1", "--reveal", "--purpose", "audit", "--json"
                          ).stdout)["revealed"]
    assert set(both) == {"account", "person_id"}
    log = json.loads(run(env, "audit", "access", "--json").stdout)
    assert [(e["action"], e["fields"], e["purpose"], e["target"]) for e in log] == [
        ("reveal", ["account"], "payee complaint 4411", "business:BP-1"),
        ("reveal", ["account", "person_id"], "audit", "business:BP-1")]


def test_a_reveal_without_a_purpose_is_refused(ledger_home: dict[str, Any],
                                               tmp_path: Path) -> None:
    env = _env(ledger_home, tmp_path)
    r = run(env, "show", "BP-1", "--reveal", code=2)
    assert "--reveal needs --purpose" in r.output
    r = run(env, "show", "BP-1", "--reveal", "--purpose", "   ", code=2)
    assert "--reveal needs --purpose" in r.output
    r = run(env, "show", "BP-1", "--fields", "account", code=2)
    assert "go with --reveal" in r.output
    r = run(env, "show", "BP-1", "--reveal", "--purpose", "x", "--fields", "amount", code=2)
    assert "'amount' is not one of" in r.output
    r = run(env, "show", "BP-1", "--reveal", "--purpose", "line\nbreak", code=2)
    assert "one line" in r.output
    assert json.loads(run(env, "audit", "access", "--json").stdout) == []


def test_the_audit_lists_reveals_forgets_and_grants_with_filters(
        ledger_home: dict[str, Any], tmp_path: Path) -> None:
    env = _env(ledger_home, tmp_path)
    run(env, "show", "BP-1", "--reveal", "--purpose", "case 1")
    run(env, "forget", PERSON, "--yes", user="dpo.zhang")
    if ledger_home["db"].startswith("postgresql"):
        role = f"bfa_audit_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ledger_home["db"], autocommit=True) as c:
            c.execute(f'CREATE ROLE "{role}" NOLOGIN')
        try:
            run(env, "db", "grant", role, "--duty", "auditor", user="dba.wang")
        finally:
            with psycopg.connect(ledger_home["db"], autocommit=True) as c:
                c.execute(f'DROP OWNED BY "{role}"')
                c.execute(f'DROP ROLE "{role}"')
    log = json.loads(run(env, "audit", "access", "--json").stdout)
    actions = [e["action"] for e in log]
    assert actions[:2] == ["reveal", "forget"]
    assert log[1]["user"] == "dpo.zhang" and log[1]["target"].startswith("ps1:")
    if len(log) == 3:
        assert log[2]["action"] == "grant" and log[2]["user"] == "dba.wang"
    assert [e["action"] for e in json.loads(run(
        env, "audit", "access", "--user", "DPO.Zhang", "--json").stdout)] == ["forget"]
    assert json.loads(run(env, "audit", "access", "--since", "2999-01-01", "--json").stdout) == []
    text = run(env, "audit", "access").stdout
    assert "reveal" in text and "case 1" in text and "dpo.zhang" in text
    raw = run(env, "audit", "access", "--csv").stdout
    assert raw.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(raw.lstrip("\ufeff"))))
    assert rows[0]["action"] == "reveal" and rows[0]["purpose"] == "case 1"
    assert len(rows[0]["at"]) == 25 and rows[0]["at"].endswith("+08:00")  # Shanghai, to the second
