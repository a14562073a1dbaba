"""Duties on PostgreSQL (FORMAT.md §8.3): each person connects as their own role, holds the
duties the owner granted, and the database refuses the rest — a command names the duty it
needs; a home made for a duty holds only the keys that duty needs (§5.4); the read-only
duty reads without writing; the entry trigger refuses a control entry that names someone
else or needs a duty the role does not hold. No stand-in identities (``real_identity``):
every person here is a real database role."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import Result

from cli import COMMANDS, bfa
from cli._duties import COMMAND_DUTIES
from tests._cli import h, invoke
from tests._records import payment_event, write_jsonl
from tests.reconcile import _scenarios as sc

pytestmark = pytest.mark.real_identity
AS_OF = sc.AS_OF.isoformat()
DUTIES = ("officer", "approver", "auditor", "privacy", "service")


def run(*args: str, code: int | tuple[int, ...] = 0) -> Result:
    res = invoke(*args, user=None)
    codes = code if isinstance(code, tuple) else (code,)
    assert res.exit_code in codes, (args, res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.output
    return res


class Office:
    """The ledger's owner home and one person per duty, each with their own role, URL and
    home made by ``bfa init --from OWNER --duty D``."""

    def __init__(self, owner_home: Path, owner_db: str, tmp: Path) -> None:
        self.owner = h(owner_home, owner_db)
        self.owner_home, self.owner_db = owner_home, owner_db
        tag = uuid.uuid4().hex[:6]
        self.role = {d: f"{d}_{tag}" for d in DUTIES}
        self.url = {d: owner_db.replace("postgres@", f"{r}@", 1) for d, r in self.role.items()}
        self.home = {d: tmp / f"home-{d}" for d in DUTIES}
        self.tmp = tmp

    def setup(self) -> None:
        with psycopg.connect(self.owner_db, autocommit=True) as c:
            for r in self.role.values():
                c.execute(f'CREATE ROLE "{r}" LOGIN')
        for d, r in self.role.items():
            run("db", "grant", r, "--duty", d, *self.owner)
            run("init", "--from", str(self.owner_home), "--duty", d,
                *h(self.home[d], self.url[d]))

    def drop(self) -> None:
        with psycopg.connect(self.owner_db, autocommit=True) as c:
            for r in self.role.values():
                c.execute(f'DROP OWNED BY "{r}"')
                c.execute(f'DROP ROLE "{r}"')

    def as_(self, duty: str) -> list[str]:
        """``--home --db`` of the person holding ``duty``."""
        return h(self.home[duty], self.url[duty])

    def owner_keys_as(self, duty: str) -> list[str]:
        """The owner's home (every key) with ``duty``'s role: what the database alone
        refuses, whatever keys a person got hold of."""
        return h(self.owner_home, self.url[duty])

    def snapshot(self) -> tuple[Any, ...]:
        """What a reading command must leave as it was: every table's rows, summarised."""
        with psycopg.connect(self.owner_db) as c:
            tables = [t for (t,) in c.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename")]
            return tuple((t, c.execute(f'SELECT count(*), md5(coalesce(string_agg(x::text, '
                                       f'\',\' ORDER BY x::text), \'\')) FROM "{t}" x').fetchone())
                         for t in tables)


@pytest.fixture
def office(ledger_home: dict[str, Any], tmp_path: Path) -> Iterator[Office]:
    if not ledger_home["db"].startswith("postgresql"):
        pytest.skip("duties are PostgreSQL roles; on SQLite the account holds every duty")
    o = Office(Path(ledger_home["home"]), ledger_home["db"], tmp_path)
    try:
        o.setup()
        yield o
    finally:
        o.drop()


def _month(tmp: Path) -> Path:
    """An orphan collection (a high-severity break, four-eyes) and a payment with
    personal data."""
    return write_jsonl(tmp / "month.jsonl", [
        sc.collection("COL-9", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER),
        payment_event(1)])


def _orphan(office: Office, duty: str) -> str:
    report = json.loads(run("reconcile", "--as-of", AS_OF, "--json", *office.as_(duty),
                            code=1).stdout)
    return next(b["id"] for b in report["breaks"] if b["code"] == "ORPHAN_MOVEMENT")


def test_each_duty_home_holds_only_its_keys(office: Office) -> None:
    keys = {d: sorted(p.name for p in (office.home[d] / "keys").iterdir()) for d in DUTIES}
    assert keys == {
        "officer": ["secret.key", "vault.key", "verifier.key"],
        "approver": ["verifier.key"],
        "auditor": ["verifier.key"],
        "privacy": ["secret.key", "vault.key", "verifier.key"],
        "service": ["signing.key", "verifier.key"],
    }
    exported = run("key", "export", *office.owner).stdout
    for d in DUTIES:
        assert run("key", "export", *office.as_(d)).stdout == exported
        status = json.loads(run("status", "--json", *office.as_(d)).stdout)
        assert (status["identity"], status["duties"]) == (office.role[d], [d])
    # an approver's home has no secret to pseudonymise with: it cannot even start to ingest
    res = run("ingest", str(_month(office.tmp)), *office.as_("approver"), code=2)
    assert "no ledger secret" in res.stderr and "--duty" in res.stderr


def test_the_database_refuses_what_a_duty_does_not_cover(office: Office) -> None:
    """With every key at hand (the owner's home) but another duty's role, the database
    refuses, and the command names the duty it needs; nothing is appended."""
    month = str(_month(office.tmp))
    size = json.loads(run("status", "--json", *office.owner).stdout)["size"]
    for duty in ("auditor", "approver", "privacy", "service"):
        res = run("ingest", month, *office.owner_keys_as(duty), code=2)
        assert "'bfa ingest' needs the officer duty" in res.stderr, res.stderr
        assert "bfa db grant ROLE --duty officer" in res.stderr
    assert json.loads(run("status", "--json", *office.owner).stdout)["size"] == size
    run("ingest", month, *office.as_("officer"))
    res = run("checkpoint", *office.owner_keys_as("officer"), code=2)
    assert "'bfa checkpoint' needs the service duty" in res.stderr
    run("checkpoint", *office.as_("service"))
    res = run("reconcile", "--as-of", AS_OF, *office.as_("auditor"), code=2)
    assert "needs the officer or service duty" in res.stderr
    bid = _orphan(office, "officer")
    res = run("breaks", "resolve", bid, "--reason", "other", "--note", "n",
              *office.as_("auditor"), code=2)
    assert "'bfa breaks resolve' needs the officer duty" in res.stderr
    run("breaks", "resolve", bid, "--reason", "other", "--note", "n", *office.as_("officer"))
    assert "four-eyes" in run("breaks", "approve", bid, *office.as_("officer"), code=2).stderr
    res = run("breaks", "approve", bid, *office.owner_keys_as("privacy"), code=2)
    assert "'bfa breaks approve' needs the approver duty" in res.stderr
    run("breaks", "approve", bid, *office.as_("approver"))
    res = run("show", "BP-1", "--reveal", "--purpose", "check", *office.owner_keys_as("auditor"),
              code=2)
    assert "'bfa show --reveal' needs the privacy duty" in res.stderr
    shown = json.loads(run("show", "BP-1", "--reveal", "--purpose", "appeal 12",
                           "--json", *office.as_("privacy")).stdout)
    assert shown["revealed"]["person_id"] == "110101199001011234"
    res = run("forget", "110101199001011234", "--yes", *office.owner_keys_as("officer"), code=2)
    assert "'bfa forget' needs the privacy duty" in res.stderr
    res = run("db", "grant", office.role["auditor"], "--duty", "officer",
              *office.as_("officer"), code=2)
    assert "owner" in res.stderr
    steps = json.loads(run("breaks", "show", bid, "--json", *office.as_("auditor")).stdout)
    assert [(s["action"], s["user"]) for s in steps["history"]] == [
        ("resolve", office.role["officer"]), ("approve", office.role["approver"])]


def test_the_auditor_reads_without_writing(office: Office) -> None:
    run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    bid = _orphan(office, "officer")
    run("checkpoint", *office.as_("service"))
    before = office.snapshot()
    a = office.as_("auditor")
    for args in (["status"], ["verify"], ["verify", "--since-checkpoint"], ["trace", "COL-9"],
                 ["breaks", "list"], ["breaks", "show", bid], ["show", "BP-1"],
                 ["prove", "BP-1"], ["audit", "access"], ["key", "export"],
                 ["balance", "--fund-account", "income"]):
        run(*args, *a, code=(0, 1))  # 1: open breaks, an unbalanced account
    assert office.snapshot() == before
    # an ingest derives its records' rows itself (ADR 0018): the reader's view is current
    write_jsonl(office.tmp / "more.jsonl", [payment_event(2)])
    run("ingest", str(office.tmp / "more.jsonl"), *office.as_("officer"))
    before = office.snapshot()
    assert "BP-2" in run("trace", "BP-2", *a).stdout
    assert office.snapshot() == before
    # derived tables behind the ledger (as after a migration that rebuilds them): a reader
    # may not bring them up to date and says so rather than answer from stale ones
    with psycopg.connect(office.owner_db, autocommit=True) as c:
        rc = [r for (r,) in c.execute("SELECT tablename FROM pg_tables WHERE tablename "
                                      "LIKE 'rc\\_%' AND schemaname = current_schema()")]
        c.execute(f"TRUNCATE {', '.join(rc)}")
        c.execute("DELETE FROM meta WHERE key LIKE 'reconcile\\_%'")
    res = run("trace", "BP-2", *a, code=2)
    assert "records behind the ledger" in res.stderr and "'bfa reconcile'" in res.stderr
    run("reconcile", "--as-of", AS_OF, *office.as_("service"), code=1)
    assert "BP-2" in run("trace", "BP-2", *a).stdout


def _raw_control(office: Office, duty: str, record: dict[str, Any]) -> str:
    """Append ``record`` as a well-chained control entry with ``duty``'s role and plain
    INSERTs; returns the database's refusal (empty if it was accepted)."""
    from sqlalchemy import create_engine

    from tests._insider import append_raw

    url = office.url[duty].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            append_raw(conn, [record])
    except Exception as e:  # the refusal, whatever wraps it
        return str(e)
    finally:
        engine.dispose()
    return ""


def test_the_entry_trigger_checks_who_and_which_duty(office: Office) -> None:
    """Table rights cannot tell an approval from an assignment: the trigger can."""
    run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    bid = _orphan(office, "officer")
    officer = office.role["officer"]
    at = "2026-12-01T08:00:00+08:00"
    approve = {"type": "control.break", "id": f"{bid}/9", "break": bid, "action": "approve",
               "status": "resolved", "at": at}
    err = _raw_control(office, "officer", {**approve, "user": officer})
    assert "control.break approve needs the approver duty" in err and officer in err
    err = _raw_control(office, "approver", {**approve, "user": officer})
    assert f"names user {officer}, but the session is {office.role['approver']}" in err
    err = _raw_control(office, "officer", {"type": "control.grant", "id": "g-1",
                                          "user": officer, "at": at})
    assert "needs the ledger tables' owner" in err
    err = _raw_control(office, "auditor", {"type": "control.ingest", "id": "i-1",
                                          "user": office.role["auditor"], "at": at})
    assert "permission denied" in err  # an auditor may not insert at all
    # a record (not a control entry) needs the officer duty, whatever other rights
    err = _raw_control(office, "approver", payment_event(77))
    assert "appending records needs the officer duty" in err
    assert run("verify", *office.owner).exit_code == 0


def test_every_command_has_a_duty() -> None:
    """cli/_duties.py names the duty of every command and subcommand bfa has."""
    import click

    paths: set[str] = set()
    for name in COMMANDS:
        cmd = bfa.get_command(click.Context(bfa), name)
        assert cmd is not None
        if isinstance(cmd, click.Group):
            paths |= {f"{name} {sub}" for sub in cmd.list_commands(click.Context(cmd))}
        else:
            paths.add(name)
    assert paths | {"show --reveal"} == set(COMMAND_DUTIES)
