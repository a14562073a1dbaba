"""Real identities (FORMAT.md §2.5): the acting user recorded is the authenticated identity
— the operating-system account on SQLite, the database role on PostgreSQL — and ``--user``
only a label beside it; four-eyes compares identities. These tests use no stand-in
(``real_identity``): two officers are two accounts, or two roles."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from cli import bfa
from tests._records import payment_event, write_jsonl
from tests.reconcile import _scenarios as sc

pytestmark = pytest.mark.real_identity
AS_OF = sc.AS_OF.isoformat()
ME = pwd.getpwuid(os.geteuid()).pw_name


def run(env: dict[str, str], *args: str, code: int | tuple[int, ...] = 0) -> Result:
    r = CliRunner().invoke(bfa, list(args), env=env)
    codes = code if isinstance(code, tuple) else (code,)
    assert r.exit_code in codes, (args, r.exit_code, r.output)
    return r


def _orphan_break(env: dict[str, str], tmp_path: Path) -> str:
    """A ledger with an unallocated collection: a high-severity break needing four-eyes."""
    batch = write_jsonl(tmp_path / "b.jsonl", [
        sc.collection("COL-9", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER)])
    run(env, "ingest", str(batch))
    report = json.loads(run(env, "reconcile", "--as-of", AS_OF, "--json", code=1).stdout)
    return next(b["id"] for b in report["breaks"] if b["code"] == "ORPHAN_MOVEMENT")


def _history(env: dict[str, str], bid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(
        run(env, "breaks", "show", bid, "--json").stdout)["history"]
    return out


def test_one_account_cannot_pass_four_eyes(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    """A private SQLite home (or one PostgreSQL role) is one identity: whatever --user
    says, the resolver cannot approve; the records name the identity and the label."""
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"]}
    bid = _orphan_break(env, tmp_path)
    run(env, "breaks", "resolve", bid, "--reason", "other", "--note", "checked",
        "--user", "li.wei")
    for label in ("li.wei", "li.wei2", "wang.fang"):
        r = run(env, "breaks", "approve", bid, "--user", label, code=2)
        assert "four-eyes" in r.output and "their own account" in r.output
    (step,) = _history(env, bid)
    me = ME if ledger_home["db"].startswith("sqlite") else "postgres"
    assert (step["user"], step["label"]) == (me, "li.wei")


def test_the_demo_shows_the_refusal(tmp_path: Path) -> None:
    r = run({}, "demo", "--out", str(tmp_path / "d"), "--persons", "50")
    assert "approves it too: refused (four-eyes:" in r.output
    assert "calling themselves 'wang.fang' approves it too: refused" in r.output


# -- PostgreSQL: one role per person ------------------------------------------------------


@pytest.fixture
def two_roles(ledger_home: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """URLs of two people's own database roles, each an officer and an approver."""
    if not ledger_home["db"].startswith("postgresql"):
        pytest.skip("database roles are PostgreSQL's")
    names = [f"officer_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    env = {"BFA_HOME": ledger_home["home"], "BFA_DATABASE_URL": ledger_home["db"]}
    with psycopg.connect(ledger_home["db"], autocommit=True) as c:
        for n in names:
            c.execute(f'CREATE ROLE "{n}" LOGIN')
    try:
        for n in names:
            run(env, "db", "grant", n, "--duty", "officer", "--duty", "approver")
        base = ledger_home["db"].replace("postgres@", "{}@", 1)
        yield base.format(names[0]), base.format(names[1])
    finally:
        with psycopg.connect(ledger_home["db"], autocommit=True) as c:
            for n in names:
                c.execute(f'DROP OWNED BY "{n}"')
                c.execute(f'DROP ROLE "{n}"')


def test_two_roles_pass_four_eyes_and_are_recorded(
        ledger_home: dict[str, Any], tmp_path: Path, two_roles: tuple[str, str]) -> None:
    alice, bob = two_roles
    home = ledger_home["home"]
    owner = {"BFA_HOME": home, "BFA_DATABASE_URL": ledger_home["db"]}
    bid = _orphan_break(owner, tmp_path)
    as_alice = {"BFA_HOME": home, "BFA_DATABASE_URL": alice}
    as_bob = {"BFA_HOME": home, "BFA_DATABASE_URL": bob}
    run(as_alice, "breaks", "resolve", bid, "--reason", "other", "--note", "checked",
        "--user", "bob")  # a label naming someone else changes nothing
    assert "four-eyes" in run(as_alice, "breaks", "approve", bid, code=2).output
    run(as_bob, "breaks", "approve", bid)
    steps = _history(owner, bid)
    role = [u.split("//", 1)[1].split("@", 1)[0] for u in (alice, bob)]
    assert [(s["action"], s["user"]) for s in steps] == [("resolve", role[0]),
                                                         ("approve", role[1])]
    assert steps[0]["label"] == "bob" and "label" not in steps[1]


# -- SQLite: a group home shared by two operating-system accounts ---------------------------


def _as_nobody(gid: int) -> Any:
    def drop() -> None:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(pwd.getpwnam("nobody").pw_uid)
    return drop


def _nobody_can_run_python() -> bool:
    try:
        probe = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_as_nobody(100),
                               capture_output=True, check=False)
    except OSError:
        return False
    return probe.returncode == 0


def test_each_operating_system_account_is_its_own_identity(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the identity is the account running bfa (ledger._identity.os_account):
    with two accounts, the second may approve what the first resolved; the first may not."""
    from ledger import _identity

    env = {"BFA_HOME": str(tmp_path / "home")}
    run(env, "init", "--origin", "test.example/accounts")
    bid = _orphan_break(env, tmp_path)
    monkeypatch.setattr(_identity, "os_account", lambda: "zhang.min")
    run(env, "breaks", "resolve", bid, "--reason", "other", "--note", "checked")
    assert "four-eyes" in run(env, "breaks", "approve", bid, code=2).output
    monkeypatch.setattr(_identity, "os_account", lambda: "wang.fang")
    run(env, "breaks", "approve", bid)
    assert [(s["action"], s["user"]) for s in _history(env, bid)] == [
        ("resolve", "zhang.min"), ("approve", "wang.fang")]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to a second account needs root")
def test_a_group_home_has_one_identity_per_account(tmp_path: Path) -> None:
    """The same with two real accounts sharing a group home (root and nobody)."""
    group = grp.getgrgid(100).gr_name if 100 in [g.gr_gid for g in grp.getgrall()] else None
    if group is None:
        pytest.skip("no group 100 (users) on this machine")
    if not _nobody_can_run_python():
        pytest.skip(f"the account nobody cannot run {sys.executable} (its directories are "
                    "private to root here); the test above covers the same path in-process")
    base = Path(tempfile.mkdtemp(prefix="bfa-group-"))
    os.chmod(base, 0o755)  # the second account must reach the home
    home = base / "home"
    env = {**os.environ, "BFA_HOME": str(home), "BFA_DEBUG": ""}
    env.pop("BFA_DATABASE_URL", None)
    bfa_exe = str(Path(sys.executable).with_name("bfa"))

    def bfa_as(user: str, *args: str, code: int = 0) -> str:
        p = subprocess.run([bfa_exe, *args], env=env, capture_output=True, text=True,
                           preexec_fn=_as_nobody(100) if user == "nobody" else None,
                           timeout=120, check=False)
        assert p.returncode == code, (user, args, p.returncode, p.stdout, p.stderr)
        return p.stdout + p.stderr

    try:
        bfa_as("root", "init", "--origin", "test.example/group", "--group", group)
        batch = write_jsonl(base / "b.jsonl", [
            sc.collection("COL-9", "777.00", allocations=None, payer=sc.OTHER_EMPLOYER),
            payment_event(1)])
        os.chmod(batch, 0o644)
        bfa_as("root", "ingest", str(batch))
        report = json.loads(bfa_as("root", "reconcile", "--as-of", AS_OF, "--json", code=1))
        bid = next(b["id"] for b in report["breaks"] if b["code"] == "ORPHAN_MOVEMENT")
        bfa_as("root", "breaks", "resolve", bid, "--reason", "other", "--note", "checked")
        assert "four-eyes" in bfa_as("root", "breaks", "approve", bid, code=2)
        bfa_as("nobody", "breaks", "approve", bid)
        steps = json.loads(bfa_as("root", "breaks", "show", bid, "--json"))["history"]
        assert [(s["action"], s["user"]) for s in steps] == [("resolve", ME),
                                                             ("approve", "nobody")]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
