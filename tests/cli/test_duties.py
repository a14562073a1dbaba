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
    # the officer who resolved lacks the duty before four-eyes is even asked
    res = run("breaks", "approve", bid, *office.as_("officer"), code=2)
    assert "'bfa breaks approve' needs the approver duty" in res.stderr, res.stderr
    assert "holds officer, not approver" in res.stderr and "four-eyes" not in res.stderr
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
            if cmd.invoke_without_command:  # `bfa balance` runs alone too
                paths.add(name)
        else:
            paths.add(name)
    assert paths | {"show --reveal"} == set(COMMAND_DUTIES)


# -- what a black-box review found (FORMAT.md §8.3): each hole, replayed ----------------


def _as_role(office: Office, duty: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(office.url[duty].replace("postgresql://", "postgresql+psycopg://", 1))


def test_a_shadowed_catalogue_does_not_make_a_role_the_owner(office: Office) -> None:
    """A temporary table named pg_class comes first on a default search path: the
    trigger names the catalogue's own and fixes its search path."""
    from sqlalchemy import text

    from tests._insider import append_raw

    run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    bid = _orphan(office, "officer")
    engine = _as_role(office, "officer")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE pg_class (oid oid, relowner oid)"))
            conn.execute(text("INSERT INTO pg_class SELECT c.oid, r.oid FROM pg_catalog.pg_class "
                              "c, pg_roles r WHERE c.relname = 'entries' AND r.rolname = "
                              "current_user"))
            with pytest.raises(Exception, match="needs the approver duty"):
                append_raw(conn, [{"type": "control.break", "id": f"{bid}/9", "break": bid,
                                   "action": "approve", "status": "resolved",
                                   "user": office.role["officer"],
                                   "at": "2026-12-01T08:00:00+08:00"}])
    finally:
        engine.dispose()


def test_the_kind_column_cannot_hide_a_control_record(office: Office) -> None:
    """The record's own type decides what a control entry needs, not the index columns
    beside it: an approval filed as kind 'reconcile', or under domain 'business'."""
    from tests._insider import append_raw

    run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    bid = _orphan(office, "officer")
    approve = {"type": "control.break", "id": f"{bid}/9", "break": bid, "action": "approve",
               "status": "resolved", "user": office.role["officer"],
               "at": "2026-12-01T08:00:00+08:00"}
    for index, why in (({"kind": "reconcile"}, "says kind reconcile, but its record is "
                                                "control.break"),
                       ({"domain": "business", "kind": "break"}, "holds a control record "
                                                                  "under domain business")):
        engine = _as_role(office, "officer")
        try:
            with pytest.raises(Exception, match=why), engine.begin() as conn:
                append_raw(conn, [approve], index=index)
        finally:
            engine.dispose()
    assert run("verify", *office.owner).exit_code == 0


def test_duties_belong_to_one_ledger_database(office: Office, tmp_path: Path) -> None:
    """Roles are the server's: an officer of one ledger is nobody in another."""
    other_db = f"bfa_test_{uuid.uuid4().hex[:12]}"
    admin = office.owner_db.rsplit("/", 1)[0]
    with psycopg.connect(office.owner_db, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{other_db}"')
    try:
        b_home = tmp_path / "ledger-b"
        run("init", "--origin", "b.example/2", *h(b_home, f"{admin}/{other_db}"))
        officer_in_b = f"{admin}/{other_db}".replace("postgres@", f"{office.role['officer']}@", 1)
        res = run("ingest", str(_month(office.tmp)), *h(b_home, officer_in_b), code=2)
        assert f"role '{office.role['officer']}' holds no duty in" in res.stderr
        # given a duty there, it is that ledger's; it makes nobody an officer elsewhere
        run("db", "grant", office.role["officer"], "--duty", "auditor",
            *h(b_home, f"{admin}/{other_db}"))
        res = run("ingest", str(_month(office.tmp)), *h(b_home, officer_in_b), code=2)
        assert "needs the officer duty" in res.stderr
        run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    finally:
        with psycopg.connect(office.owner_db, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{other_db}" WITH (FORCE)')
            c.execute(f'DROP ROLE IF EXISTS "bfa_rules_{other_db}"')  # revision 0019's


def test_the_service_account_only_reopens_what_changed(office: Office) -> None:
    run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    bid = _orphan(office, "officer")
    res = run("breaks", "resolve", bid, "--reason", "other", "--note", "n",
              *h(office.owner_home, office.url["service"]), code=2)
    assert "needs the officer duty" in res.stderr


def test_a_grant_that_would_not_be_the_whole_truth_is_refused(office: Office) -> None:
    """A role that holds another duty through a role it is a member of: 'db grant --duty
    auditor' would say auditor while it stays an officer."""
    clerk = f"clerk_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(office.owner_db, autocommit=True) as c:
        c.execute(f'CREATE ROLE "{clerk}" LOGIN IN ROLE "{office.role["officer"]}"')
    try:
        res = run("db", "grant", clerk, "--duty", "auditor", *office.owner, code=2)
        assert "would still hold officer" in res.stderr and office.role["officer"] in res.stderr
        for builtin in ("pg_read_all_data", "PUBLIC"):
            res = run("db", "grant", builtin, "--duty", "auditor", *office.owner, code=2)
            assert "PostgreSQL's own roles" in res.stderr
    finally:
        with psycopg.connect(office.owner_db, autocommit=True) as c:
            c.execute(f'DROP OWNED BY "{clerk}"')
            c.execute(f'DROP ROLE "{clerk}"')


def test_nothing_is_planted_ahead_of_the_ledger(office: Office) -> None:
    """A tree node or entry beyond the ledger's end would block every later append
    (the tables are append-only): refused."""
    from sqlalchemy import text

    run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    for stmt in ("INSERT INTO tree_nodes (level, idx, hash) VALUES (1, 1000, '\\x00')",
                 "INSERT INTO entries (seq, domain, kind, record_id, leaf, entry_hash) "
                 "VALUES (1000, 'business', 'x', 'X-1', '\\x01', '\\x00')"):
        engine = _as_role(office, "officer")
        try:
            with pytest.raises(Exception, match=r"does not hold|do not follow"), \
                    engine.begin() as conn:
                conn.execute(text(stmt))
        finally:
            engine.dispose()
    run("ingest", str(write_jsonl(office.tmp / "more.jsonl", [payment_event(5)])),
        *office.as_("officer"))


def test_records_written_outside_ingest_cannot_be_approved(office: Office) -> None:
    """Separation of duties rests on control.ingest: a record an officer inserts without
    one has no known ingester, so no break on it can be approved; the reconciler reports
    an approval the owner wrote past that as SOD_CONFLICT."""
    from tests._insider import append_raw

    run("ingest", str(write_jsonl(office.tmp / "first.jsonl", [payment_event(1)])),
        *office.as_("officer"))
    engine = _as_role(office, "officer")
    try:
        with engine.begin() as conn:  # raw, no control.ingest
            append_raw(conn, [sc.collection("COL-9", "777.00", allocations=None,
                                            payer=sc.OTHER_EMPLOYER)])
    finally:
        engine.dispose()
    bid = _orphan(office, "officer")
    run("breaks", "resolve", bid, "--reason", "other", "--note", "n", *office.as_("officer"))
    res = run("breaks", "approve", bid, *office.as_("approver"), code=2)
    assert "appended outside 'bfa ingest'" in res.stderr and "COL-9" in res.stderr


def test_only_the_owner_rotates_the_vault_key(office: Office) -> None:
    run("ingest", str(_month(office.tmp)), *office.as_("officer"))
    for duty in ("officer", "privacy"):
        res = run("key", "rotate", "--vault", *office.owner_keys_as(duty), code=2)
        assert "'bfa key rotate' must run as the owner of the ledger tables" in res.stderr
    run("key", "rotate", "--vault", *office.owner)
    # the officer's home still holds the old key: refused until it takes the new one
    res = run("ingest", str(write_jsonl(office.tmp / "b.jsonl", [payment_event(9)])),
              *office.as_("officer"), code=2)
    assert "not this ledger's vault key" in res.stderr
    (office.home["officer"] / "keys" / "vault.key").unlink()
    run("init", "--from", str(office.owner_home), "--duty", "officer",
        *office.as_("officer"))
    run("ingest", str(office.tmp / "b.jsonl"), *office.as_("officer"))


def test_the_service_audits_the_files_an_officer_stored(office: Office) -> None:
    """One voucher store for every home of the ledger (FORMAT §5.4, §11.1): the officer's
    ingest stores files the service account's nightly audits; the auditor may not record
    an audit; the officer checks vouchers."""
    from tests._records import voucher

    vdir = office.tmp / "v"
    vdir.mkdir()
    run("ingest", str(write_jsonl(vdir / "a.jsonl", [
        payment_event(1), voucher(vdir, 1, ["BP-1"])])), *office.as_("officer"))
    cfg = json.loads((office.home["service"] / "config.json").read_text("utf-8"))
    assert Path(cfg["archive"]) == (office.owner_home / "archive").resolve()
    reports = office.tmp / "reports"
    res = run("nightly", "--report-dir", str(reports), "--fixity-days", "1",
              *office.as_("service"), code=(0, 1))
    archive = json.loads((reports / "latest.json").read_text("utf-8"))["archive"]
    assert archive["files"] == 1 and archive["problems"] == 0, res.stdout
    res = run("archive", "audit", *office.as_("auditor"), code=2)
    assert "needs the officer or service duty" in res.stderr
    run("archive", "check", *office.as_("officer"))
