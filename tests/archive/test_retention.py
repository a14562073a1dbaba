"""Retention, legal hold, appraisal and disposal of voucher records (FORMAT.md §11.3):
``bfa archive hold|release|due|appraise|dispose|signoff`` on both backends through the CLI,
the fixity audit's *disposed* files, and on PostgreSQL the duties each step needs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from archive import POSTS, due_on, retention_of, sample_pdf, years_kept
from archive._retention import record_year
from tests._cli import h, invoke, jok, ok, one_error_line

R = "440100"
EMP = "91440100MA12345678"
OLD = "1990-03-05T09:00:00+08:00"
AS_OF = "2026-12-01"
Rec = dict[str, Any]


def _voucher(d: Path, kind: str, i: str, refs: list[str], occurred: str, retention: str,
             body: bytes | None = None) -> Rec:
    data = body if body is not None else sample_pdf(f"{kind} {i}")
    (d / f"{i}.pdf").write_bytes(data)
    return {"type": "archive." + kind, "id": i, "region": R, "occurred_at": occurred,
            "sha256": hashlib.sha256(data).hexdigest(), "media_type": "application/pdf",
            "size": len(data), "file": f"{i}.pdf", "refs": refs, "retention": retention}


def _assessment(i: str) -> Rec:
    return {"type": "business.contribution_assessment", "id": i, "region": R, "occurred_at": OLD,
            "employer_id": EMP, "insurance": "pension", "period": "1990-03",
            "amount": "100.00", "due_date": "1990-03-15"}


def _collection(i: str, event: str) -> Rec:
    return {"type": "finance.collection", "id": i, "region": R, "occurred_at": OLD,
            "amount": "100.00", "value_date": "1990-03-12", "bank_ref": "REF-" + i,
            "payer_id": EMP, "allocations": [{"event": event, "amount": "100.00"}]}


def _write(path: Path, recs: list[Rec]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), "utf-8")
    return path


SHARED = sample_pdf("one file, two records")


def _ingest(home: Path, db: str, d: Path, recs: list[Rec], name: str, **kw: Any) -> None:
    ok("ingest", str(_write(d / name, recs)), *h(home, db), **kw)


def _ledger(tmp: Path, db: str, **kw: Any) -> tuple[Path, dict[str, Rec]]:
    """A ledger with: CA-1 unsettled (an open break once reconciled), CA-2 settled, and
    vouchers FR-1, FR-2 (the file FR-9 shares), FR-3 (refers to CA-1), FR-4 of 1990 (30y,
    due 2021); FR-9 of 2026 (due 2057); AD-1, permanent. Reconciled as of AS_OF."""
    home = tmp / "home"
    ok("init", *h(home, db), "--origin", "retention.example/ledger", **kw)
    d = tmp / "in"
    d.mkdir()
    vouchers = [
        _voucher(d, "fiscal_receipt", "FR-1", ["CA-2"], OLD, "30y"),
        _voucher(d, "fiscal_receipt", "FR-2", ["CA-2"], OLD, "30y", SHARED),
        _voucher(d, "fiscal_receipt", "FR-3", ["CA-1"], OLD, "30y"),
        _voucher(d, "fiscal_receipt", "FR-4", ["CA-2"], OLD, "30y"),
        _voucher(d, "accounting_voucher", "FR-9", ["CA-2"], "2026-03-05T10:00:00+08:00",
                 "30y", SHARED),
        _voucher(d, "approval_document", "AD-1", ["CA-2"], "1980-01-01T00:00:00+08:00",
                 "permanent"),
    ]
    _ingest(home, db, d, [_assessment("CA-1"), _assessment("CA-2"),
                          _collection("COL-2", "CA-2"), *vouchers], "batch.jsonl", **kw)
    ok("reconcile", *h(home, db), "--as-of", AS_OF, code=(0, 1), **kw)
    return home, {v["id"]: v for v in vouchers}


def _due(home: Path, db: str, *more: str) -> dict[str, Any]:
    out: dict[str, Any] = jok("archive", "due", *h(home, db), *more)
    return out


def _states(due: dict[str, Any]) -> dict[str, str]:
    return {r["record"]["id"]: r["state"] for r in due["records"]}


def _entry(home: Path, db: str, rid: str) -> dict[str, Any]:
    out: dict[str, Any] = jok("show", *h(home, db), rid, "--entry")["payload"]
    return out


def _sign_all(home: Path, db: str, list_id: str, skip: tuple[str, ...] = ()) -> None:
    for n, post in enumerate(POSTS):
        if post not in skip:
            ok("archive", "signoff", list_id, "--post", post, *h(home, db), user=f"signer{n}")


def _appraise_and_list(home: Path, db: str, tmp: Path, name: str = "list.csv"
                       ) -> tuple[dict[str, Any], dict[str, Any], Path]:
    appr = jok("archive", "appraise", *h(home, db), "--opinion", "保管期满，同意销毁")
    out = tmp / name
    lst = jok("archive", "dispose", "--list", appr["id"], "--out", str(out), *h(home, db))
    return appr, lst, out


# -- retention arithmetic ------------------------------------------------------------------


def test_retention_is_counted_from_the_next_new_year_in_shanghai() -> None:
    assert due_on(2026, "30y") == date(2057, 1, 1)  # a record of 2026-03-05 with 30y
    assert due_on(2026, "10y") == date(2037, 1, 1)
    assert due_on(2026, "permanent") is None
    # never below the kind's minimum; above it, the record's own
    assert retention_of("fiscal_receipt", "10y") == "30y"
    assert retention_of("fiscal_receipt", "permanent") == "permanent"
    assert retention_of("application_form", "30y") == "permanent"
    # the year is Shanghai's: 17:00 UTC on 31 December is already 1 January there
    assert record_year("2025-12-31T17:00:00Z") == 2026
    assert record_year("2025-12-31T23:59:59+08:00") == 2025
    assert years_kept(2026, date(2057, 1, 1)) == 30
    assert years_kept(2026, date(2056, 12, 31)) == 29
    assert years_kept(2026, date(2026, 6, 1)) == 0


# -- due and holds ---------------------------------------------------------------------------


def test_due_and_holds(tmp_path: Path, db_url: str) -> None:
    home, _ = _ledger(tmp_path, db_url)
    due = _due(home, db_url)
    assert due["as_of"] and due["disposed"] == 0
    states = _states(due)
    # FR-9 is inside retention, AD-1 permanent: neither is due
    assert states == {"FR-1": "due", "FR-2": "due", "FR-3": "break", "FR-4": "due"}
    fr3 = next(r for r in due["records"] if r["record"]["id"] == "FR-3")
    assert fr3["breaks"] and all(b.startswith("BRK-") for b in fr3["breaks"])
    fr1 = next(r for r in due["records"] if r["record"]["id"] == "FR-1")
    assert (fr1["kind"], fr1["year"], fr1["retention"], fr1["due"]) == (
        "fiscal_receipt", 1990, "30y", "2021-01-01")
    assert due["by_kind_year"] == [{"kind": "fiscal_receipt", "year": 1990, "due": 3,
                                    "held": 0, "break": 1}]
    # the 2026 record with 30y is due on 2057-01-01, not a day before
    assert "FR-9" not in _states(_due(home, db_url, "--as-of", "2056-12-31"))
    later = _due(home, db_url, "--as-of", "2057-01-01")
    assert _states(later)["FR-9"] == "due" and "AD-1" not in _states(later)
    assert next(r for r in later["records"] if r["record"]["id"] == "FR-9")["kept"] == 30
    text = ok("archive", "due", *h(home, db_url)).stdout
    assert "held by an open break" in text and "fiscal_receipt  1990" in text
    # holds by hand: placed, refused twice, released
    held = jok("archive", "hold", "FR-4", "--reason", "court case 2026-17", *h(home, db_url),
               user="li.wei")
    assert held["id"].startswith("hold-") and held["action"] == "hold"
    entry = _entry(home, db_url, held["id"])
    assert entry["type"] == "control.hold" and entry["action"] == "hold"
    assert entry["record"]["id"] == "FR-4" and entry["record"]["domain"] == "archive"
    assert isinstance(entry["record"]["seq"], int) and entry["user"] == "li.wei"
    assert entry["reason"] == "court case 2026-17" and entry["at"]
    due = _due(home, db_url)
    fr4 = next(r for r in due["records"] if r["record"]["id"] == "FR-4")
    assert fr4["state"] == "held" and fr4["hold"]["id"] == held["id"]
    line = one_error_line(invoke("archive", "hold", "FR-4", "--reason", "again",
                                 *h(home, db_url)), 2)
    assert "FR-4 is on hold already" in line and held["id"] in line
    assert "no voucher record 'CA-1'" in one_error_line(
        invoke("archive", "hold", "CA-1", "--reason", "x", *h(home, db_url)), 2)
    assert "not on hold by hand" in one_error_line(
        invoke("archive", "release", "FR-3", "--reason", "x", *h(home, db_url)), 2)
    assert "needs a note" in one_error_line(
        invoke("archive", "hold", "FR-1", "--reason", " ", *h(home, db_url)), 2)
    rel = jok("archive", "release", "FR-4", "--reason", "case closed", *h(home, db_url))
    assert rel["released"] == held["id"] and rel["id"] != held["id"]
    assert _entry(home, db_url, rel["id"])["action"] == "release"
    assert _states(_due(home, db_url))["FR-4"] == "due"


# -- appraisal, list, sign-off, disposal -----------------------------------------------------


def test_the_whole_disposal(tmp_path: Path, db_url: str) -> None:
    home, vouchers = _ledger(tmp_path, db_url)
    ok("archive", "hold", "FR-4", "--reason", "audit asks", *h(home, db_url))
    appr, lst, out = _appraise_and_list(home, db_url, tmp_path)
    # the appraisal: every due record considered, the free ones proposed, kept for good
    entry = _entry(home, db_url, appr["id"])
    assert entry["type"] == "control.appraisal" and entry["retention"] == "permanent"
    assert entry["opinion"] == "保管期满，同意销毁" and entry["years"] == {"from": 1990, "to": 1990}
    considered = {c["record"]["id"]: c for c in entry["considered"]}
    assert set(considered) == {"FR-1", "FR-2", "FR-3", "FR-4"}
    assert considered["FR-1"]["kept"] == date.today().year - 1991
    assert considered["FR-3"]["state"] == "break" and considered["FR-4"]["state"] == "held"
    assert considered["FR-4"]["held_by"][0].startswith("hold-")
    assert entry["proposed"] == ["FR-1", "FR-2"]
    # the list (销毁清册): CSV, UTF-8 with BOM, its digest in the ledger
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["record", "kind", "起止年度", "应保管期限", "已保管期限", "sha256", "size"]
    assert [r[0] for r in rows[1:]] == ["FR-1", "FR-2"]
    fr2 = vouchers["FR-2"]
    assert rows[2] == ["FR-2", "fiscal_receipt", "1990", "30y",
                       str(considered["FR-2"]["kept"]), fr2["sha256"], str(fr2["size"])]
    listed = _entry(home, db_url, lst["id"])
    assert listed["type"] == "control.disposal" and listed["action"] == "list"
    assert listed["digest"] == hashlib.sha256(raw).hexdigest() == lst["digest"]
    assert listed["appraisal"] == appr["id"] and listed["posts"] == list(POSTS)
    assert b"\r\n" in raw and listed["count"] == 2
    # not before every post signed
    _sign_all(home, db_url, lst["id"], skip=("unit_head", "supervise_it"))
    line = one_error_line(invoke("archive", "dispose", lst["id"], "--execute",
                                 *h(home, db_url)), 2)
    assert "lacks the sign-off of: unit_head (单位负责人), supervise_it" in line
    assert lst["id"] in line
    # one identity never signs two posts (letter case ignored); a post is signed once
    line = one_error_line(invoke("archive", "signoff", lst["id"], "--post", "unit_head",
                                 *h(home, db_url), user="SIGNER1"), 2)
    assert "signer1" in line.lower() and "archive_head" in line
    assert "different person" in line
    line = one_error_line(invoke("archive", "signoff", lst["id"], "--post", "archive_head",
                                 *h(home, db_url), user="someone.new"), 2)
    assert "post archive_head (档案管理机构负责人)" in line and "signed already, by signer1" in line
    # the dry run says what would go
    shown = jok("archive", "dispose", lst["id"], *h(home, db_url))
    assert shown["executed"] is False and shown["list"]["missing"] == ["unit_head",
                                                                       "supervise_it"]
    ok("archive", "signoff", lst["id"], "--post", "unit_head", *h(home, db_url), user="boss")
    ok("archive", "signoff", lst["id"], "--post", "supervise_it", *h(home, db_url),
       user="it.lead")
    store = home / "archive" / "sha256"
    f1 = store / vouchers["FR-1"]["sha256"][:2] / vouchers["FR-1"]["sha256"]
    f2 = store / fr2["sha256"][:2] / fr2["sha256"]
    assert f1.is_file() and f2.is_file()
    done = jok("archive", "dispose", lst["id"], "--execute", *h(home, db_url))
    assert done["executed"] is True and done["id"] == f"{lst['id']}/dispose"
    assert not f1.exists() and f2.is_file()  # FR-9 (inside retention) still needs FR-2's file
    tomb = _entry(home, db_url, done["id"])
    assert tomb["type"] == "control.disposal" and tomb["action"] == "dispose"
    assert tomb["list"] == lst["id"] and tomb["appraisal"] == appr["id"]
    assert [r["id"] for r in tomb["records"]] == ["FR-1", "FR-2"]
    assert tomb["deleted"] == [vouchers["FR-1"]["sha256"]] and tomb["absent"] == []
    assert tomb["kept"] == [{"sha256": fr2["sha256"],
                             "why": "record FR-9 is inside retention until 2057-01-01"}]
    assert "was executed already" in one_error_line(
        invoke("archive", "dispose", lst["id"], "--execute", *h(home, db_url)), 2)
    assert "executed already" in one_error_line(invoke(
        "archive", "signoff", lst["id"], "--post", "unit_head", *h(home, db_url)), 2)
    # the ledger still verifies; the audit says disposed, not missing; no FIXITY_FAILURE
    ok("verify", *h(home, db_url))
    audit = jok("archive", "audit", *h(home, db_url))
    assert audit["problems"] == 0 and audit["missing"] == []
    assert audit["disposed"] == [{"sha256": vouchers["FR-1"]["sha256"], "records": ["FR-1"]}]
    report = json.loads(invoke("reconcile", *h(home, db_url), "--as-of", AS_OF,
                               "--json").stdout)
    assert not [b for b in report["breaks"] if b["code"] == "FIXITY_FAILURE"]
    due = _due(home, db_url)
    assert due["disposed"] == 2 and set(_states(due)) == {"FR-3", "FR-4"}
    assert "disposed of" in one_error_line(
        invoke("archive", "hold", "FR-1", "--reason", "too late", *h(home, db_url)), 2)
    # an appraisal now finds FR-3 and FR-4, both held: nothing to list
    appr2 = jok("archive", "appraise", *h(home, db_url), "--opinion", "仍有未了事项")
    assert appr2["proposed"] == []
    assert "proposes no record" in one_error_line(invoke(
        "archive", "dispose", "--list", appr2["id"], "--out", str(tmp_path / "x.csv"),
        *h(home, db_url)), 2)
    assert not (tmp_path / "x.csv").exists()


def test_a_hold_after_the_list_and_a_file_named_again(tmp_path: Path, db_url: str) -> None:
    """A hold placed after the list keeps the record and its file; a file that a new record
    names after its disposal is missing, not disposed, when it goes."""
    home, vouchers = _ledger(tmp_path, db_url)
    appr, lst, _out = _appraise_and_list(home, db_url, tmp_path)
    assert appr["proposed"] == ["FR-1", "FR-2", "FR-4"]
    _sign_all(home, db_url, lst["id"])
    held = jok("archive", "hold", "FR-4", "--reason", "found an open question",
               *h(home, db_url))
    done = jok("archive", "dispose", lst["id"], "--execute", *h(home, db_url))
    assert [r["id"] for r in done["records"]] == ["FR-1", "FR-2"]
    assert done["retained"] == [{"record": {"domain": "archive", "id": "FR-4",
                                            "seq": held["record"]["seq"]},
                                 "why": f"record FR-4 is on hold ({held['id']}, by alice)"}]
    fr4 = vouchers["FR-4"]["sha256"]
    assert {"sha256": fr4, "why": f"record FR-4 is on hold ({held['id']}, by alice)"} in \
        done["kept"]
    assert (home / "archive" / "sha256" / fr4[:2] / fr4).is_file()
    assert _states(_due(home, db_url)) == {"FR-3": "break", "FR-4": "held"}
    sha = vouchers["FR-1"]["sha256"]
    assert sha in {f["sha256"] for f in jok("archive", "audit", *h(home, db_url))["disposed"]}
    # a new record with the same bytes brings the file back; losing it then is a failure
    d = tmp_path / "in"
    (d / "FR-1.pdf").write_bytes(sample_pdf("fiscal_receipt FR-1"))
    again = _voucher(d, "fiscal_receipt", "FR-11", ["CA-2"], "2026-05-01T08:00:00+08:00",
                     "30y", sample_pdf("fiscal_receipt FR-1"))
    assert again["sha256"] == sha
    _ingest(home, db_url, d, [again], "again.jsonl")
    stored = home / "archive" / "sha256" / sha[:2] / sha
    assert stored.is_file()
    assert sha not in {f["sha256"] for f in jok("archive", "audit", *h(home, db_url))["disposed"]}
    stored.chmod(0o600)
    stored.unlink()
    audit = jok("archive", "audit", *h(home, db_url), code=1)
    assert sha not in {f["sha256"] for f in audit["disposed"]}
    assert audit["missing"][0]["sha256"] == sha
    assert audit["missing"][0]["records"] == ["FR-1", "FR-11"]


def test_refusals_say_why_in_one_line(tmp_path: Path, db_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    home, vouchers = _ledger(tmp_path, db_url)
    assert "after today" in one_error_line(invoke(
        "archive", "appraise", "--as-of", "2099-01-01", "--opinion", "x", *h(home, db_url)), 2)
    assert "nothing to appraise" in one_error_line(invoke(
        "archive", "appraise", "--as-of", "2000-01-01", "--opinion", "x", *h(home, db_url)), 2)
    assert "no appraisal 'appraisal-nope'" in one_error_line(invoke(
        "archive", "dispose", "--list", "appraisal-nope", "--out", str(tmp_path / "a.csv"),
        *h(home, db_url)), 2)
    assert "no disposal list 'disposal-nope'" in one_error_line(invoke(
        "archive", "signoff", "disposal-nope", "--post", "unit_head", *h(home, db_url)), 2)
    assert "no disposal list" in one_error_line(invoke(
        "archive", "dispose", "disposal-nope", "--execute", *h(home, db_url)), 2)
    for args in (["--list", "appraisal-x"], [], ["disposal-x", "--out", "a.csv"],
                 ["disposal-x", "--list", "appraisal-x", "--out", "a.csv"]):
        res = invoke("archive", "dispose", *args, *h(home, db_url))
        assert res.exit_code == 2 and "Traceback" not in res.output, (args, res.output)
    res = invoke("archive", "signoff", "disposal-x", "--post", "cashier", *h(home, db_url))
    assert res.exit_code == 2 and "cashier" in res.output
    exists = tmp_path / "exists.csv"
    exists.write_text("mine")
    appr = jok("archive", "appraise", *h(home, db_url), "--opinion", "x")
    assert "exists" in one_error_line(invoke(
        "archive", "dispose", "--list", appr["id"], "--out", str(exists), *h(home, db_url)), 2)
    assert exists.read_text() == "mine"
    # a record held since the appraisal: appraise again
    ok("archive", "hold", "FR-1", "--reason", "new question", *h(home, db_url))
    line = one_error_line(invoke("archive", "dispose", "--list", appr["id"], "--out",
                                 str(tmp_path / "b.csv"), *h(home, db_url)), 2)
    assert "record FR-1 is on hold" in line and "appraise again" in line
    assert not (tmp_path / "b.csv").exists()
    ok("archive", "release", "FR-1", "--reason", "answered", *h(home, db_url))
    lst = jok("archive", "dispose", "--list", appr["id"], "--out", str(tmp_path / "b.csv"),
              *h(home, db_url))
    assert "has disposal list" in one_error_line(invoke(
        "archive", "dispose", "--list", appr["id"], "--out", str(tmp_path / "c.csv"),
        *h(home, db_url)), 2)
    # a later appraisal does not propose what a pending list holds already
    again = jok("archive", "appraise", *h(home, db_url), "--opinion", "y")
    assert again["proposed"] == []
    assert {c["record"]["id"] for c in again["considered"]} >= {"FR-1", "FR-2", "FR-4"}
    due = _due(home, db_url)
    assert {r["record"]["id"]: r["list"] for r in due["records"]}["FR-1"] == lst["id"]
    # a disposal that fails half-way puts back the files it set aside and records nothing
    _sign_all(home, db_url, lst["id"])
    real = os.rename
    calls: list[str] = []

    def flaky(src: Any, dst: Any) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise OSError(5, "Input/output error", str(src))
        real(src, dst)

    monkeypatch.setattr("archive._retention.os.rename", flaky)
    assert "Input/output error" in one_error_line(invoke(
        "archive", "dispose", lst["id"], "--execute", *h(home, db_url)), 2)
    monkeypatch.undo()
    stored = home / "archive" / "sha256"
    for rid in ("FR-1", "FR-4"):
        sha = vouchers[rid]["sha256"]
        assert (stored / sha[:2] / sha).is_file(), rid
    assert not list(stored.rglob(".disposing-*"))
    shown = jok("archive", "dispose", lst["id"], *h(home, db_url))
    assert shown["list"]["executed"] is None
    assert sorted(shown["deleted"]) == sorted(vouchers[r]["sha256"] for r in ("FR-1", "FR-4"))
    done = jok("archive", "dispose", lst["id"], "--execute", *h(home, db_url))
    assert sorted(done["deleted"]) == sorted(shown["deleted"])
    after = jok("archive", "dispose", lst["id"], *h(home, db_url))
    assert after["list"]["executed"] == done["id"] and after["deleted"] == []


def test_one_identity_on_two_posts_never_executes() -> None:
    """Sign-offs appended around the command (by the tables' owner, say) are checked again
    when the list is executed: one identity on two posts refuses it."""
    from archive._retention import DisposalList, Signoff, _signature_problem

    lst = DisposalList("disposal-1", 5, "appraisal-1", tuple(POSTS), [], "")
    for n, post in enumerate(POSTS):
        lst.signoffs.append(Signoff(post, "Li.Wei" if n in (2, 6) else f"p{n}",
                                    f"disposal-1/{post}", 6 + n, ""))
    why = _signature_problem(lst)
    assert why is not None and "li.wei signed two posts" in why.lower()
    assert "archive_handler" in why and "supervise_accounting" in why
    lst.signoffs[6] = Signoff("supervise_accounting", "zhao", "x", 12, "")
    assert _signature_problem(lst) is None


def test_every_post_is_known_to_the_cli() -> None:
    from cli._retention_cmds import _POSTS

    assert tuple(POSTS) == _POSTS


# -- PostgreSQL: each step under the duty it needs, by real roles ----------------------------


class _Roles:
    """Login roles of one test, each with duties granted by the owner; a role acts with the
    owner's home and its own database URL (the database alone decides what it may do)."""

    def __init__(self, home: Path, db: str) -> None:
        self.home, self.db = home, db
        self.tag = uuid.uuid4().hex[:6]
        self.made: list[str] = []

    def add(self, name: str, duty: str) -> list[str]:
        role = f"{name}_{self.tag}"
        with psycopg.connect(self.db, autocommit=True) as c:
            c.execute(f'CREATE ROLE "{role}" LOGIN')
        self.made.append(role)
        ok("db", "grant", role, "--duty", duty, *h(self.home, self.db), user=None)
        return h(self.home, self.db.replace("postgres@", f"{role}@", 1))

    def drop(self) -> None:
        with psycopg.connect(self.db, autocommit=True) as c:
            for r in self.made:
                c.execute(f'DROP OWNED BY "{r}"')
                c.execute(f'DROP ROLE "{r}"')


@pytest.fixture
def roles(tmp_path: Path, db_url: str) -> Iterator[_Roles]:
    if not db_url.startswith("postgresql"):
        pytest.skip("duties are PostgreSQL roles; on SQLite the account holds every duty")
    r = _Roles(tmp_path / "home", db_url)
    try:
        yield r
    finally:
        r.drop()


def _run(*args: str, code: int = 0) -> Any:
    return ok(*args, code=code, user=None)


@pytest.mark.real_identity
def test_duties_on_postgresql(tmp_path: Path, db_url: str, roles: _Roles) -> None:
    home, vouchers = _ledger(tmp_path, db_url, user=None)
    officer = roles.add("officer", "officer")
    auditor = roles.add("auditor", "auditor")
    service = roles.add("service", "service")
    # reading is for every duty; holding is the officer's
    assert _states(json.loads(_run("archive", "due", "--json", *auditor).stdout))
    res = _run("archive", "hold", "FR-4", "--reason", "x", *auditor, code=2)
    assert "'bfa archive hold' needs the officer duty" in res.stderr
    _run("archive", "hold", "FR-4", "--reason", "audit asks", *officer)
    res = _run("archive", "appraise", "--opinion", "x", *service, code=2)
    assert "'bfa archive appraise' needs the officer duty" in res.stderr
    appr = json.loads(_run("archive", "appraise", "--opinion", "同意销毁", "--json",
                           *officer).stdout)
    lst = json.loads(_run("archive", "dispose", "--list", appr["id"], "--out",
                          str(tmp_path / "l.csv"), "--json", *officer).stdout)
    # sign-offs: officers and approvers, each their own role (the auditor duty has no
    # right to insert entries at all, whatever the entry trigger would allow)
    signers = [officer] + [roles.add(f"s{i}", duty) for i, duty in enumerate(
        ("approver", "officer", "approver", "officer", "approver", "officer", "approver"))]
    res = _run("archive", "signoff", lst["id"], "--post", "unit_head", *service, code=2)
    assert "'bfa archive signoff' needs the officer or approver duty" in res.stderr
    for post, who in zip(POSTS, signers, strict=True):
        _run("archive", "signoff", lst["id"], "--post", post, *who)
    res = _run("archive", "dispose", lst["id"], "--execute", *auditor, code=2)
    assert "'bfa archive dispose' needs the officer duty" in res.stderr
    f1 = vouchers["FR-1"]["sha256"]
    stored = home / "archive" / "sha256" / f1[:2] / f1
    assert stored.is_file()  # the refused execution touched no file
    done = json.loads(_run("archive", "dispose", lst["id"], "--execute", "--json",
                           *officer).stdout)
    assert done["deleted"] == [f1] and not stored.exists()
    steps = {s["post"]: s["user"] for s in done["list"]["signoffs"]}
    assert len(set(steps.values())) == len(POSTS) and steps["unit_head"] == f"officer_{roles.tag}"
    _run("verify", *auditor)
