"""Agencies' own rules as SQL (issue 20 item 5, ADR 0036), on both backends: the example
rules find what they say, with stable ids, through the same workflow as built-in breaks;
a rule that writes, reads the entries or the vault, uses PRAGMA/ATTACH or a forbidden
function, lacks its columns or runs too long is refused naming the rule, and the run
writes nothing; a changed rule is a new ``control.rules`` record and a new digest."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger import InputError, Ledger, control_records
from reconcile import (
    Rules,
    SqlRule,
    SqlRuleError,
    apply_states,
    approve_break,
    break_id,
    get_break,
    load_rules,
    reopen_break,
    resolve_break,
    rules_digest,
    run_reconcile,
)
from tests._cli import h, invoke, jok, ok, one_error_line
from tests.reconcile import _scenarios as sc

EXAMPLE = Path(__file__).resolve().parents[2] / "reconcile" / "rules.custom.example.toml"
LARGE, TWO = "CUSTOM_LARGE_PAYMENT_NO_SLIP", "CUSTOM_PAID_IN_TWO_REGIONS"


def _records(tmp_path: Path) -> list[dict[str, Any]]:
    """The clean base, a payment of 12,000.00 with no bank slip, and one person paid for
    November by two regions."""
    other = sc.payment_event(902, who=50)
    other["region"] = "110000"
    return [*sc.base(tmp_path), sc.payment_event(900, "12000.00"),
            sc.payment_event(901, who=50), other]


@pytest.fixture
def ledger_with(led: Ledger, tmp_path: Path) -> Ledger:
    sc.ingest(led, tmp_path, _records(tmp_path))
    return led


def _custom(report: Any) -> dict[str, Any]:
    return {b.code: b for b in report.breaks if b.code.startswith("CUSTOM_")}


def _rules_records(led: Ledger) -> list[dict[str, Any]]:
    with led.store.reader() as conn:
        return [r for _seq, r in control_records(conn, "rules")]


def _with(rules: Rules, **change: Any) -> Rules:
    """``rules`` with its first SQL rule changed."""
    first = rules.sql_rules[0].model_copy(update=change)
    return rules.model_copy(update={"sql_rules": (first, *rules.sql_rules[1:])})


def test_example_rules_find_with_stable_ids(ledger_with: Ledger) -> None:
    rules = load_rules(EXAMPLE)
    report = run_reconcile(ledger_with, sc.AS_OF, rules)
    found = _custom(report)
    assert sorted(found) == [LARGE, TWO]
    big, two = found[LARGE], found[TWO]
    assert (big.records, big.amounts, big.field, big.severity, big.amount_at_risk) == (
        ("BP-900",), {"amount": "12000.00"}, "amount", "high", "12000.00")
    assert big.id == break_id(LARGE, "amount", ("BP-900",)) and big.evidence
    assert (two.records, two.field, two.severity) == (("BP-901", "BP-902"), "region", "medium")
    assert two.message == ("one person paid for the same month in two regions (record "
                           "BP-901): 440100 / 110000, 2026-11")
    assert report.run.rules_digest == rules_digest(rules)
    assert report.run.rules["sql_rules"][0]["code"] == LARGE
    again = run_reconcile(ledger_with, sc.AS_OF, rules)
    assert {b.code: b.id for b in _custom(again).values()} == {LARGE: big.id, TWO: two.id}


def test_findings_go_through_the_workflow(ledger_with: Ledger) -> None:
    """High needs four-eyes, medium does not; a later file that lowers the severity is
    reported, but four-eyes follows the highest severity the ledger ever recorded."""
    led = ledger_with
    rules = load_rules(EXAMPLE)
    report = apply_states(led, run_reconcile(led, sc.AS_OF, rules))
    big, two = _custom(report)[LARGE], _custom(report)[TWO]
    assert resolve_break(led, two.id, "alice", "other", "paid back by 110000").status == (
        "resolved")
    assert resolve_break(led, big.id, "alice", "other", "slip filed on paper").status == (
        "pending_approval")
    with pytest.raises(InputError, match="four-eyes"):
        approve_break(led, big.id, "alice")
    assert approve_break(led, big.id, "bob").status == "resolved"
    assert get_break(led, big.id).severity == "high"

    lowered = _with(rules, severity="low")
    report = apply_states(led, run_reconcile(led, sc.AS_OF, lowered))
    low = _custom(report)[LARGE]
    assert (low.id, low.severity, low.status) == (big.id, "low", "resolved")
    reopen_break(led, big.id, "carol", "the slip was never filed")
    assert resolve_break(led, big.id, "carol", "other", "filed now").status == (
        "pending_approval")


def test_a_changed_rule_is_new_rules_in_the_ledger(ledger_with: Ledger) -> None:
    led = ledger_with
    rules = load_rules(EXAMPLE)
    first = run_reconcile(led, sc.AS_OF, rules)
    n = len(_rules_records(led))
    assert run_reconcile(led, sc.AS_OF, rules).run.rules_digest == first.run.rules_digest
    assert len(_rules_records(led)) == n  # same rules: no new record
    wider = _with(rules, query=rules.sql_rules[0].query.replace("1000000", "300000"))
    report = run_reconcile(led, sc.AS_OF, wider)
    assert report.run.rules_digest == rules_digest(wider) != first.run.rules_digest
    records = _rules_records(led)
    assert len(records) == n + 1
    assert records[-1]["digest"] == report.run.rules_digest
    assert "300000" in records[-1]["rules"]["sql_rules"][0]["query"]
    assert {b.records for b in report.breaks if b.code == LARGE} == {
        ("BP-1",), ("BP-900",), ("BP-901",), ("BP-902",)}


def _bad(query: str, timeout_ms: int = 10_000) -> Rules:
    """A rule built directly, past the file's load-time checks: the sandbox must hold."""
    rule = SqlRule.model_construct(code="CUSTOM_BAD", severity="high",
                                   description="a rule that must be refused", query=query,
                                   timeout_ms=timeout_ms)
    return Rules(sql_rules=(rule,))


_LOOP = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
         "SELECT CAST(x AS TEXT) AS record_id FROM c WHERE x < 0")

REFUSED = [
    ("INSERT INTO rc_open (seq) VALUES (999999)", "write|one SELECT"),
    ("UPDATE rc_events SET amount_fen = 0", "write|one SELECT"),
    ("DELETE FROM rc_events", "write|one SELECT"),
    ("WITH d AS (DELETE FROM rc_open RETURNING seq) SELECT CAST(seq AS TEXT) AS record_id "
     "FROM d", "write|syntax error"),
    ("SELECT record_id FROM entries", "entries|reaches beyond"),
    ("SELECT record_id FROM vault", "vault|reaches beyond"),
    ("SELECT e.record_id FROM bfa_v_events e WHERE EXISTS (SELECT 1 FROM vault)",
     "vault|reaches beyond"),
    ("WITH bfa_v_events AS (SELECT record_id FROM vault) SELECT record_id FROM bfa_v_events",
     "named like a rule view"),
    # a CTE named like a view would read the derived tables with the view's rights
    ("WITH bfa_v_events AS (SELECT e.record_id, e.superseded FROM rc_events e) "
     "SELECT record_id FROM bfa_v_events WHERE superseded", "named like a rule view"),
    ('WITH "BFA_V_EVENTS"(record_id) AS (SELECT record_id FROM rc_events) '
     "SELECT record_id FROM bfa_v_events", "named like a rule view"),
    # one call that builds a string of any width cannot be stopped by the time limit
    ("SELECT printf('%.*c', 5, 'x') || record_id AS record_id FROM bfa_v_events",
     "printf|does not exist"),
    ("SELECT record_id, true AS bfa_row_ FROM bfa_v_events", "keeps for itself"),
    ("SELECT 'NO-SUCH-RECORD' AS record_id FROM bfa_v_events LIMIT 1",
     "no record of the ledger"),
    ("SELECT record_id, 'GHOST-2' AS related_ids FROM bfa_v_events LIMIT 1",
     "GHOST-2.*no record of the ledger"),
    ("SELECT count(*) AS record_id FROM vault", "vault|reaches beyond"),
    ("SELECT record_id FROM rc_events", "rc_events|reaches beyond"),
    ("PRAGMA table_info(vault)", "PRAGMA|one SELECT"),
    ("SELECT name AS record_id FROM pragma_table_info('vault')",
     "pragma|table-valued|does not exist"),
    ("ATTACH DATABASE ':memory:' AS other", "ATTACH|one SELECT"),
    ("SELECT name AS record_id FROM sqlite_master", "sqlite_master|does not exist"),
    ("SELECT hex(randomblob(8)) AS record_id FROM bfa_v_events", "randomblob|does not exist"),
    ("SELECT set_config('role', 'postgres', true) AS record_id", "set_config|role"),
    ("SELECT pg_read_file('/etc/hostname') AS record_id", "pg_read_file"),
    # out of the wrapping PostgreSQL puts around a query, into a second statement
    ("SELECT 'x' AS record_id) AS q) AS r ON true) AS x; SELECT * FROM (SELECT to_jsonb(v) "
     "FROM vault v JOIN (SELECT 1 AS z FROM (SELECT 1 AS q", "syntax|vault|command|multi"),
    ("SELECT 'x' AS record_id; SELECT 'y' AS record_id", "one SELECT|one statement"),
    ("SELECT kind FROM bfa_v_events", "no record_id column"),
    ("SELECT kind FROM bfa_v_events WHERE 1 = 0", "no record_id column"),
    ("SELECT record_id, kind FROM bfa_v_events", "allowed are"),
    ("SELECT amount_fen AS record_id FROM bfa_v_events", "record_id must be a text"),
]


def test_a_rule_reaching_beyond_the_views_is_refused(ledger_with: Ledger) -> None:
    """Each of :data:`REFUSED` stops the run naming the rule and saying why (one ledger
    for all of them: each refused run must leave it as it was)."""
    led = ledger_with
    run_reconcile(led, sc.AS_OF)
    size = led.size()
    for query, says in REFUSED:
        with pytest.raises(SqlRuleError, match=r"SQL rule CUSTOM_BAD .*was refused: ") as e:
            run_reconcile(led, sc.AS_OF, _bad(query))
        assert re.search(f"(?i){says}", str(e.value)), (query, str(e.value))
        assert led.size() == size, query  # the run stopped and wrote nothing
    with led.store.reader() as conn:
        assert conn.execute(text("SELECT count(*) FROM rc_open WHERE seq = 999999")
                            ).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM rc_events")).scalar_one() > 0
    # the connection is itself again: a run with the example rules works and writes
    assert sorted(_custom(run_reconcile(led, sc.AS_OF, load_rules(EXAMPLE)))) == [LARGE, TWO]
    assert led.size() > size


ANY_VIEW = ("SELECT min(x.record_id) AS record_id, count(*) AS amount_fen FROM ("
            "SELECT record_id FROM bfa_v_records UNION ALL SELECT record_id FROM bfa_v_events "
            "UNION ALL SELECT record_id FROM bfa_v_movements UNION ALL SELECT movement_id "
            "FROM bfa_v_allocations UNION ALL SELECT record_id FROM bfa_v_vouchers UNION ALL "
            "SELECT voucher_id FROM bfa_v_voucher_refs UNION ALL SELECT record_id FROM "
            "bfa_v_person_events) x")


ALLOWED = [
    (ANY_VIEW, 1),
    ("SELECT min(record_id) AS record_id, count(*) AS amount_fen FROM bfa_v_events", 1),
    ("SELECT record_id, row_number() OVER (ORDER BY record_id) AS amount_fen, "
     "coalesce(benefit, 'monthly') AS detail FROM bfa_v_events WHERE amount_fen > 0", 5),
    ("SELECT m.record_id, a.event_id AS related_ids FROM bfa_v_movements m JOIN "
     "bfa_v_allocations a ON a.movement_id = m.record_id WHERE m.allocated = 1", 2),
    ("WITH big AS (SELECT record_id FROM bfa_v_events WHERE amount_fen > 500000) "
     "SELECT record_id FROM big WHERE record_id NOT IN (SELECT ref_id FROM "
     "bfa_v_voucher_refs)", 1),
    ("SELECT record_id FROM bfa_v_records WHERE 1 = 0;", 0),
]


def test_reading_the_views_is_allowed(ledger_with: Ledger) -> None:
    for query, rows in ALLOWED:
        rule = SqlRule(code="CUSTOM_OK", severity="low", description="reads views",
                       query=query)
        report = run_reconcile(ledger_with, sc.AS_OF, Rules(sql_rules=(rule,)))
        assert len([b for b in report.breaks if b.code == "CUSTOM_OK"]) == rows, query


def test_a_rule_that_runs_too_long_is_stopped(ledger_with: Ledger) -> None:
    size = ledger_with.size()
    with pytest.raises(SqlRuleError, match=r"CUSTOM_BAD .*longer than its time limit of "
                                           r"200 ms"):
        run_reconcile(ledger_with, sc.AS_OF, _bad(_LOOP, timeout_ms=200))
    assert ledger_with.size() == size


def test_the_rules_role_reads_the_views_alone(led: Ledger) -> None:
    if led.store.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    with led.store.reader() as conn:
        role = "bfa_rules_" + str(conn.execute(text("SELECT current_database()")).scalar())
        grants = dict(conn.execute(text(
            "SELECT c.relname, has_table_privilege(:r, c.oid, 'SELECT') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "AND c.relkind IN ('r', 'v')"), {"r": role}).all())
        rolcanlogin, members = conn.execute(text(
            "SELECT rolcanlogin, (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = "
            "r.oid) FROM pg_roles r WHERE rolname = :r"), {"r": role}).one()
    assert {t for t, ok in grants.items() if ok} == {
        "bfa_v_records", "bfa_v_events", "bfa_v_movements", "bfa_v_allocations",
        "bfa_v_vouchers", "bfa_v_voucher_refs", "bfa_v_person_events"}
    assert "entries" in grants and "vault" in grants
    assert (rolcanlogin, members) == (False, 0)


def test_an_officer_runs_rules_but_cannot_leave_the_sandbox(ledger_with: Ledger) -> None:
    """As a login role holding the officer duty (not the owner, not a superuser): the
    example rules run; a rule that switches to the session's own role, or to the owner,
    to read the vault is refused."""
    led = ledger_with
    if led.store.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    role = f"bfa_app_{uuid.uuid4().hex[:8]}"
    with led.store.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        led.grant(role, ["officer"], "dba")
        url = led.store.engine.url.set(username=role, password=None)
        app = Ledger.open(led.home.path.as_posix(), url.render_as_string(hide_password=False))
        try:
            found = _custom(run_reconcile(app, sc.AS_OF, load_rules(EXAMPLE)))
            assert sorted(found) == [LARGE, TWO]
            for who in (role, "postgres"):
                with pytest.raises(SqlRuleError, match="security-definer"):
                    run_reconcile(app, sc.AS_OF, _bad(
                        f"SELECT set_config('role', '{who}', true) AS record_id"))
                with pytest.raises(SqlRuleError, match="permission denied for table vault"):
                    run_reconcile(app, sc.AS_OF, _bad(
                        f"SELECT set_config('role', '{who}', true) AS record_id, "
                        "(SELECT count(*) FROM vault)::text AS detail"))
        finally:
            app.close()
    finally:
        with led.store.engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_the_command_line(ledger_with: Ledger, ledger_home: dict[str, Any],
                          tmp_path: Path) -> None:
    """``bfa reconcile --rules``: the example's findings are in the JSON report with their
    severity, and the digest; a rule that reads the vault is one error line naming it,
    exit 2; ``bfa breaks show`` says a medium custom finding needs no second person."""
    home, db = ledger_home["home"], ledger_home["db"]
    got = jok("reconcile", *h(Path(home), db), "--as-of", "2027-03-01", "--rules",
              str(EXAMPLE), code=1)
    custom = {b["code"]: b for b in got["breaks"] if b["code"].startswith("CUSTOM_")}
    assert custom[TWO]["severity"] == "medium" and custom[LARGE]["severity"] == "high"
    assert got["run"]["rules_digest"] == rules_digest(load_rules(EXAMPLE))
    shown = ok("breaks", "show", custom[TWO]["id"], *h(Path(home), db)).stdout
    assert TWO in shown and "four-eyes" not in shown
    assert "four-eyes" in ok("breaks", "show", custom[LARGE]["id"], *h(Path(home), db)).stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sql_rules]]\ncode = "CUSTOM_PEEK"\nseverity = "low"\n'
                   'description = "peeks"\nquery = "SELECT record_id FROM vault"\n', "utf-8")
    line = one_error_line(invoke("reconcile", *h(Path(home), db), "--rules", str(bad)), 2)
    assert "SQL rule CUSTOM_PEEK (peeks) was refused" in line and "vault" in line


def test_a_bundle_lists_custom_findings_as_not_rederivable(ledger_with: Ledger,
                                                           ledger_home: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """A bundle made under the example rules verifies; the verifier runs no SQL it carries
    and lists the custom findings as not re-derivable, saying why."""
    home, db = Path(ledger_home["home"]), ledger_home["db"]
    ledger_with.checkpoint()
    key = tmp_path / "verifier.key"
    key.write_text(ok("key", "export", *h(home, db)).stdout, "utf-8")
    bag = tmp_path / "bag"
    ok("bundle", "export", *h(home, db), "--out", str(bag), "--record", "BP-900",
       "--as-of", "2027-03-01", "--rules", str(EXAMPLE))
    res = invoke("bundle", "verify", str(bag), "--key", str(key), "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["ok"] is True
    (large,) = [x for x in report["not_rederivable"] if x["code"] == LARGE]
    assert "own SQL rule" in large["why"]


def _file(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "rules.toml"
    p.write_text(body, encoding="utf-8")
    return p


_OK = ('code = "CUSTOM_X"\nseverity = "low"\ndescription = "x"\n'
       'query = "SELECT record_id FROM bfa_v_events"\n')


@pytest.mark.parametrize(("body", "key", "says"), [
    (_OK.replace("CUSTOM_X", "LARGE_PAYMENT"), "sql_rules[1].code", "not a rule code"),
    (_OK.replace("CUSTOM_X", "custom_x"), "sql_rules[1].code", "not a rule code"),
    (_OK + "\n[[sql_rules]]\n" + _OK, "sql_rules[2].code", "is taken"),
    (_OK.replace('"low"', '"critical"'), "sql_rules[1].severity", "high, medium or low"),
    (_OK.replace('description = "x"\n', ""), "sql_rules[1].description", "required"),
    (_OK.replace('description = "x"', 'description = ""'), "sql_rules[1].description",
     "1 to 200"),
    (_OK.replace("SELECT record_id FROM bfa_v_events", "INSERT INTO rc_open VALUES (1)"),
     "sql_rules[1].query", "one SELECT statement"),
    (_OK.replace("SELECT record_id FROM bfa_v_events", "PRAGMA writable_schema = 1"),
     "sql_rules[1].query", "rule CUSTOM_X.*one SELECT"),
    (_OK + "timeout_ms = 0\n", "sql_rules[1].timeout_ms", "milliseconds"),
    (_OK + "limit = 3\n", "sql_rules[1].limit", "unknown key"),
    (_OK.replace("SELECT record_id FROM bfa_v_events", "WITH bfa_v_events AS (SELECT 1) "
                 "SELECT record_id FROM bfa_v_events"), "sql_rules[1].query",
     "named like a rule view"),
])
def test_a_bad_rule_is_refused_when_the_file_is_read(tmp_path: Path, body: str, key: str,
                                                     says: str) -> None:
    path = _file(tmp_path, "[[sql_rules]]\n" + body)
    with pytest.raises(InputError, match=rf"rules\.toml: rules key '{key}'.*{says}".replace(
            "[", r"\[").replace("]", r"\]")):
        load_rules(path)


def test_rules_without_sql_keep_their_digest() -> None:
    """No ``sql_rules``: the description, and so the digest, is what it always was."""
    assert "sql_rules" not in Rules().describe()
    assert load_rules(EXAMPLE).sql_rules[0].code == LARGE
