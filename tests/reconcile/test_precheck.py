"""Check before payment (``bfa precheck``, INTERCHANGE §12.4): every hold reason and its near
miss, a clean batch, a malformed one (refused, nothing appended), the one
``control.precheck`` entry and nothing else, the outputs (table, ``--json``, ``--csv``,
``--hold-file``), and a derived row changed behind the ledger's back. Both backends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from ledger import BatchRefusedError, InputError, IntegrityError, Ledger, LocatedInputError
from reconcile import HOLD_REASONS, Held, precheck, refresh
from tests._cli import h, ok
from tests.reconcile import _scenarios as sc

APPROVED = sc.ACCOUNT
OTHER = "6222999988887777666"


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    "utf-8")
    return path


def _pay(i: int, who: int, period: str = "2026-11", amount: str = "3456.78", *,
         account: str = APPROVED, benefit: str | None = None, **more: Any) -> dict[str, Any]:
    rec = {**sc.payment_event(i, amount, who=who, period=period), "account": account, **more}
    if benefit is not None:
        rec["benefit"] = benefit
    return rec


def _ledger(led: Ledger, tmp_path: Path) -> None:
    """People 1–7 approved from January (3,456.78 a month, account APPROVED); 2 terminated
    from October; 3 terminated in March and approved again in June; 4 paid for November
    already; 6 approved anew from November at 1,000.00 to another account."""
    sc.ingest(led, tmp_path, [
        *(sc.approval(f"BA-{w}", APPROVED, who=w) for w in range(1, 8)),
        sc.termination("TE-2", "2026-10-01", who=2),
        sc.termination("TE-3", "2026-03-01", who=3),
        sc.approval("BA-3b", APPROVED, start="2026-06", who=3),
        _pay(400, who=4),
        {**sc.approval("BA-6b", OTHER, start="2026-11", who=6), "monthly_amount": "1000.00"},
    ], "ledger")


def _held(led: Ledger, path: Path, **kw: Any) -> tuple[dict[int, tuple[str, ...]], Any]:
    got: dict[int, tuple[str, ...]] = {}

    def sink(held: Held, text: str | None) -> None:
        got[held.line] = held.reasons

    return got, precheck(led, path, on_held=sink, **kw)


def test_each_reason_and_its_near_miss(led: Ledger, tmp_path: Path) -> None:
    _ledger(led, tmp_path)
    batch = _write(tmp_path / "pay.jsonl", [
        _pay(1, who=1),                                   # 1 clear
        _pay(2, who=2),                                   # 2 terminated, so none in force
        _pay(3, who=3),                                   # 3 re-approved: clear
        _pay(4, who=4),                                   # 4 paid already
        _pay(5, who=5, amount="3456.79"),                 # 5 a fen above the approval
        _pay(6, who=6, amount="1000.00", account=APPROVED),  # 6 the new approval's account
        _pay(7, who=7, account=OTHER),                    # 7 another account
        _pay(8, who=8),                                   # 8 nobody approved
        _pay(9, who=1, period="2026-10"),                 # 9, 10: twice one month
        _pay(10, who=1, period="2026-10", amount="1.00"),
        _pay(11, who=1, period="2025-12"),                # 11 before the approval's start
        _pay(6, who=6, period="2026-09"),                 # 12 the id of line 6 again
    ])
    size = led.size()
    got, res = _held(led, batch)
    assert got == {
        2: ("no_approval", "terminated"),
        4: ("over_approved", "already_paid"),
        5: ("over_approved",),
        6: ("payee_mismatch", "duplicate_in_batch"),
        7: ("payee_mismatch",),
        8: ("no_approval",),
        9: ("over_approved", "duplicate_in_batch"),
        10: ("over_approved", "duplicate_in_batch"),
        11: ("no_approval",),
        12: ("duplicate_in_batch",),
    }
    assert (res.lines, res.held, res.clear, res.unjudged) == (12, 10, 2, 0)
    assert res.counts == {"no_approval": 3, "over_approved": 4, "terminated": 1, "dead": 0,
                          "payee_mismatch": 2, "already_paid": 1, "duplicate_in_batch": 4}
    # nothing but the one control entry, with exactly these members
    assert led.size() == size + 1
    entry = led.entry_at(size)
    assert entry.record == res.record
    assert set(entry.record) == {"type", "id", "user", "file", "digest", "lines", "clear",
                                 "held", "reasons", "unjudged", "rules", "at"}
    assert entry.record["id"] == f"precheck-{res.digest}/1"
    import hashlib

    assert res.digest == hashlib.sha256(batch.read_bytes()).hexdigest()
    assert (entry.record["lines"], entry.record["clear"], entry.record["held"]) == (12, 2, 10)
    assert entry.record["reasons"] == res.counts
    # the same file again: a second record, numbered on
    assert precheck(led, batch).id == f"precheck-{res.digest}/2"


def test_a_period_the_ledger_paid_and_the_batch_pays_twice(led: Ledger,
                                                          tmp_path: Path) -> None:
    """The ledger's payment of a period counts once in the total, however many lines of
    the batch pay that period: 1,000.00 paid plus two lines of 1,000.00 stay within the
    3,456.78 approved."""
    _ledger(led, tmp_path)
    sc.ingest(led, tmp_path, [_pay(700, who=7, amount="1000.00")], "paid")
    batch = _write(tmp_path / "pay.jsonl", [
        _pay(701, who=7, amount="1000.00"), _pay(702, who=7, amount="1000.00")])
    got, _res = _held(led, batch)
    assert got == {1: ("already_paid", "duplicate_in_batch"),
                   2: ("already_paid", "duplicate_in_batch")}
    over = _write(tmp_path / "over.jsonl", [
        _pay(703, who=7, amount="1228.39"), _pay(704, who=7, amount="1228.40")])
    assert _held(led, over)[0] == {  # 1,000.00 + 2,456.79: a fen above the approval
        1: ("over_approved", "already_paid", "duplicate_in_batch"),
        2: ("over_approved", "already_paid", "duplicate_in_batch")}


def test_one_off_benefits_and_records_the_batch_replaces(led: Ledger, tmp_path: Path) -> None:
    _ledger(led, tmp_path)
    batch = _write(tmp_path / "pay.jsonl", [
        _pay(1, who=2, benefit="funeral_grant", amount="9000.00"),  # 1 after the termination
        _pay(2, who=8, benefit="back_pay"),               # 2 no approval at all
        _pay(3, who=1, benefit="back_pay"),               # 3, 4: one-off, not duplicates
        _pay(4, who=1, benefit="back_pay"),
        _pay(400, who=4),                                 # 5 the ledger's own record: a re-send
        {**_pay(500, who=5), "id": "BA-1"},               # 6 an approval's id: a conflict
    ])
    got, _res = _held(led, batch)
    # a line whose id the ledger holds would add nothing, or be refused, if ingested; the
    # bank would pay it again
    assert got == {2: ("no_approval",), 5: ("already_paid",), 6: ("already_paid",)}
    fix = _write(tmp_path / "fix.jsonl", [_pay(401, who=4, corrects="BP-400")])  # its place
    assert _held(led, fix)[0] == {}
    # a correction of a record neither the ledger nor the file holds: ingest would refuse it
    size = led.size()
    nowhere = _write(tmp_path / "nowhere.jsonl", [_pay(402, who=4, corrects="NOPE-1")])
    with pytest.raises(LocatedInputError, match=r"nowhere\.jsonl:1: corrects: .*NOPE-1"):
        precheck(led, nowhere)
    assert led.size() == size


def test_a_region_without_approvals_is_not_judged(led: Ledger, tmp_path: Path) -> None:
    _ledger(led, tmp_path)
    batch = _write(tmp_path / "pay.jsonl", [
        _pay(1, who=50, region="440300"), _pay(2, who=51, insurance="medical"),
        _pay(3, who=51, insurance="medical")])
    got, res = _held(led, batch)
    assert got == {2: ("duplicate_in_batch",), 3: ("duplicate_in_batch",)}
    assert res.unjudged == 3


def test_after_the_month_of_death_on_a_compared_list(led: Ledger, tmp_path: Path) -> None:
    """Paid for the month of death, held after it; a funeral grant is not held for it. The
    list is recorded by ``bfa compare`` (control.compare entries)."""
    from datetime import date

    from reconcile import compare_list

    dead = "11010519491231002X"
    _ledger(led, tmp_path)
    sc.ingest(led, tmp_path, [{**sc.approval("BA-D", APPROVED), "person_id": dead}], "dead")
    deaths = tmp_path / "deaths.csv"
    deaths.write_text(f"person_id,date\n{dead},2026-10-31\n", "utf-8")
    compare_list(led, deaths, today=date(2026, 12, 7))
    batch = _write(tmp_path / "pay.jsonl", [
        {**_pay(1, who=1, period="2026-10"), "person_id": dead},
        {**_pay(2, who=1, period="2026-11"), "person_id": dead},
        {**_pay(3, who=1, period="2026-12", benefit="funeral_grant"), "person_id": dead},
        _pay(4, who=1)])
    got, res = _held(led, batch)
    assert got == {2: ("dead",)}
    assert res.counts["dead"] == 1


def test_a_malformed_line_refuses_the_file(led: Ledger, tmp_path: Path) -> None:
    _ledger(led, tmp_path)
    size = led.size()
    batch = _write(tmp_path / "pay.jsonl", [_pay(1, who=1), _pay(2, who=1, amount="12.3")])
    with batch.open("a") as f:
        f.write(json.dumps(sc.approval("BA-9", APPROVED, who=9)) + "\n")
    with pytest.raises(BatchRefusedError, match=r"pay\.jsonl:2: amount: ") as err:
        precheck(led, batch)
    assert [(p.line, p.field) for p in err.value.problems] == [(2, "amount"), (3, "type")]
    assert "benefit payments only" in str(err.value.problems[1])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", "utf-8")
    with pytest.raises(InputError, match=r"empty\.jsonl: no payment lines"):
        precheck(led, empty)
    assert led.size() == size


def test_a_changed_derived_row_clears_nothing(led: Ledger, tmp_path: Path) -> None:
    """An approval row made to carry the batch's account is found before any line is
    cleared over it (FORMAT §8.3): integrity failure, nothing appended."""
    from reconcile.matching import _tables as t

    _ledger(led, tmp_path)
    batch = _write(tmp_path / "pay.jsonl", [_pay(1, who=7, account=OTHER)])
    got, _res = _held(led, batch)
    assert got == {1: ("payee_mismatch",)}
    pe = t.person_events
    with led.store.writer() as conn:  # BA-6b is paid into OTHER: its pseudonym
        forged = conn.execute(select(pe.c.account).where(pe.c.record_id == "BA-6b")).scalar()
        conn.execute(update(pe).where(pe.c.record_id == "BA-7").values(account=forged))
    size = led.size()
    with pytest.raises(IntegrityError, match=r"rc_person_events.*BA-7.*account"):
        precheck(led, batch)
    assert led.size() == size


def test_a_planted_approval_clears_nothing(led: Ledger, tmp_path: Path) -> None:
    """An approval row no entry gives (for person 8, whom nobody approved) is found."""
    from ledger import party_pseudonym
    from reconcile.matching import _tables as t

    _ledger(led, tmp_path)
    refresh(led.store)
    pe = t.person_events
    with led.store.writer() as conn:
        row = dict(conn.execute(pe.select().where(pe.c.record_id == "BA-1")).mappings().one())
        conn.execute(pe.insert().values({**row, "seq": 10**9, "record_id": "BA-FAKE",
                                         "person": party_pseudonym(led, sc.person(8))}))
    size = led.size()
    batch = _write(tmp_path / "pay.jsonl", [_pay(8, who=8)])
    with pytest.raises(IntegrityError, match=r"rc_person_events.*BA-FAKE.*given by no entry"):
        precheck(led, batch)
    assert led.size() == size


# -- the command ---------------------------------------------------------------------------
def _home(ledger_home: dict[str, Any], tmp_path: Path) -> tuple[list[str], Ledger]:
    led = Ledger.open(ledger_home["home"], ledger_home["db"])
    _ledger(led, tmp_path)
    return h(Path(ledger_home["home"]), ledger_home["db"]), led


def test_command_clean_held_and_outputs(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    opts, led = _home(ledger_home, tmp_path)
    try:
        clean = _write(tmp_path / "clean.jsonl", [_pay(1, who=1), _pay(3, who=3)])
        out = ok("precheck", str(clean), *opts).stdout
        assert "lines: 2   clear: 2   held: 0" in out
        assert all(len(line) <= 80 for line in out.splitlines()  # but a long path
                   if str(tmp_path) not in line)
        mixed = _write(tmp_path / "mixed.jsonl", [_pay(1, who=1), _pay(7, who=7, account=OTHER),
                                                   _pay(8, who=8, name="张三")])
        hold = tmp_path / "held.jsonl"
        out = ok("precheck", str(mixed), *opts, "--hold-file", str(hold), code=1).stdout
        assert "held: 2" in out and "BP-7" in out and "payee_mismatch" in out
        held = [json.loads(x) for x in hold.read_text("utf-8").splitlines()]
        assert [(x["line"], x["id"], x["reasons"]) for x in held] == [
            (2, "BP-7", ["payee_mismatch"]), (3, "BP-8", ["no_approval"])]
        assert json.loads(held[1]["text"])["name"] == "张三"  # the line as sent
        assert held[1]["text"] == mixed.read_text("utf-8").splitlines()[2]
        data = json.loads(ok("precheck", str(mixed), *opts, "--json", code=1).stdout)
        assert data["held_lines"] == [{"id": "BP-7", "line": 2, "reasons": ["payee_mismatch"]},
                                      {"id": "BP-8", "line": 3, "reasons": ["no_approval"]}]
        assert (data["lines"], data["clear"], data["held"]) == (3, 1, 2)
        assert data["record"].endswith("/2") and set(data["reasons"]) == set(HOLD_REASONS)
        raw = ok("precheck", str(mixed), *opts, "--csv", code=1).stdout_bytes
        assert raw.startswith("\ufeff".encode())
        rows = raw.decode("utf-8-sig").splitlines()
        assert rows[0] == "line,id,reasons,why" and rows[1].startswith("2,BP-7,payee_mismatch,")
        gb = ok("--lang", "zh_CN", "precheck", str(mixed), *opts, "--csv", "--encoding",
                "gb18030", code=1).stdout_bytes.decode("gb18030").splitlines()
        assert gb[0] == "行项目,编号,原因,说明" and "收款账户与核定账户不符" in gb[1]
        zh = ok("--lang", "zh_CN", "precheck", str(mixed), *opts, code=1).stdout
        assert "收款账户" in zh
        many = _write(tmp_path / "many.jsonl", [_pay(100 + i, who=100 + i) for i in range(25)])
        out = ok("precheck", str(many), *opts, code=1).stdout  # none approved: 25 held
        assert "held lines (the first 20):" in out and "… and 5 more" in out
        assert "(every held line: --hold-file PATH, --csv or --json)" in out
        out = ok("precheck", str(many), *opts, "--hold-file", str(hold), code=1).stdout
        assert "… and 5 more" in out and "every held line" not in out
    finally:
        led.close()


def test_command_refuses_a_bad_line(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    opts, led = _home(ledger_home, tmp_path)
    try:
        size = led.size()
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(_pay(1, who=1)) + "\n" + '{"type": "business.benefit_'
                       'payment", "id": "BP-2"}\n', "utf-8")
        hold = tmp_path / "held.jsonl"
        res = ok("precheck", str(bad), *opts, "--hold-file", str(hold), code=2)
        assert "bad.jsonl:2: " in res.stderr and "nothing appended" in res.stderr
        assert not hold.exists() and not (tmp_path / "held.jsonl.part").exists()
        assert led.size() == size
        for fmt in ("--json", "--csv"):  # nothing on standard output: no JSON cut short,
            res = ok("precheck", str(bad), *opts, fmt, code=2)  # no header alone
            assert res.stdout == "" and "bad.jsonl:2: " in res.stderr
        assert led.size() == size
        assert "--json and --csv" in ok("precheck", str(bad), *opts, "--json", "--csv",
                                        code=2).stderr
        for fmt in ([], ["--json"]):  # the CSV's encoding with no CSV: refused, not ignored
            err = ok("precheck", str(bad), *opts, *fmt, "--encoding", "gb18030", code=2).stderr
            assert "--encoding" in err and "--csv" in err
        assert led.size() == size
    finally:
        led.close()


def test_a_terminal_that_cannot_be_written_records_nothing(ledger_home: dict[str, Any],
                                                         tmp_path: Path) -> None:
    """Review: the table is written after the check; a standard output that cannot take
    it (``> /dev/full``) stops the command before anything is recorded (exit 2)."""
    import os
    import subprocess
    import sys

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    opts, led = _home(ledger_home, tmp_path)
    try:
        size = led.size()
        batch = _write(tmp_path / "pay.jsonl", [_pay(1, who=1)])
        env = {**os.environ, "BFA_USER": "alice", "BFA_HOME": "", "BFA_DATABASE_URL": ""}
        with open("/dev/full", "w") as full:
            done = subprocess.run([sys.executable, "-m", "cli", "precheck", str(batch), *opts],
                                  stdout=full, stderr=subprocess.PIPE, text=True, env=env,
                                  check=False)
        assert done.returncode == 2, done.stderr
        assert led.size() == size
    finally:
        led.close()


def test_an_output_file_never_replaces_the_ledger(ledger_home: dict[str, Any],
                                                  tmp_path: Path) -> None:
    """Review: ``--hold-file`` (and ``bfa ingest --reject-file``) write through a ``.part``
    file renamed over the target: one naming the ledger's home or database, a link or a
    device is refused before anything is read, and nothing is appended."""
    opts, led = _home(ledger_home, tmp_path)
    try:
        size = led.size()
        batch = _write(tmp_path / "pay.jsonl", [_pay(7, who=7, account=OTHER)])
        home = Path(ledger_home["home"])
        link = tmp_path / "link.jsonl"
        link.symlink_to(tmp_path / "elsewhere.jsonl")
        for target in (home / "ledger.db", home / "held.jsonl", link, Path("/dev/null")):
            res = ok("precheck", str(batch), *opts, "--hold-file", str(target), code=2)
            assert "--hold-file" in res.stderr, res.stderr
            res = ok("ingest", str(batch), *opts, "--reject-file", str(target), code=2)
            assert "--reject-file" in res.stderr, res.stderr
        assert led.size() == size and not (tmp_path / "elsewhere.jsonl").exists()
    finally:
        led.close()


@pytest.mark.real_identity
def test_only_the_officer_duty_checks(ledger_home: dict[str, Any], tmp_path: Path) -> None:
    """PostgreSQL (FORMAT §8.3): an officer's own role checks a batch (temporary tables,
    COPY, the control.precheck entry under its name); another duty, even with every key,
    is refused naming the duty, and nothing is appended."""
    if not ledger_home["db"].startswith("postgresql"):
        pytest.skip("duties are PostgreSQL roles; on SQLite the account holds every duty")
    from tests.cli.test_duties import Office, run

    office = Office(Path(ledger_home["home"]), ledger_home["db"], tmp_path)
    try:
        office.setup()
        records = _write(tmp_path / "approvals.jsonl", [sc.approval("BA-1", APPROVED, who=1)])
        run("ingest", str(records), *office.as_("officer"))
        batch = _write(tmp_path / "pay.jsonl", [_pay(1, who=1), _pay(2, who=2)])
        size = json.loads(run("status", "--json", *office.owner).stdout)["size"]
        res = run("precheck", str(batch), *office.owner_keys_as("auditor"), code=2)
        assert "'bfa precheck' needs the officer duty" in res.stderr, res.stderr
        assert json.loads(run("status", "--json", *office.owner).stdout)["size"] == size
        data = json.loads(run("precheck", str(batch), "--json", *office.as_("officer"),
                              code=1).stdout)
        assert [h["line"] for h in data["held_lines"]] == [2]
        shown = json.loads(run("show", data["record"], "--json", *office.owner).stdout)
        assert shown["user"] == office.role["officer"] and shown["held"] == 1
    finally:
        office.drop()
