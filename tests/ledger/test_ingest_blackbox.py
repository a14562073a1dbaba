"""Black-box tests of `bfa ingest`, written from the documentation only.

Sources: docs/INTERCHANGE.md, docs/FORMAT.md §9 (ingest) and §10 (exit codes),
README.md and the commands' --help. Every test drives the real CLI (click's CliRunner on
``cli.bfa``, or a real process where a hang or a kill is the point) and asserts what those
documents promise. The cases under "BUGS" found twelve bugs when the file was written
(marked ``xfail(strict=True)`` until each was fixed); they now assert the fixed behaviour,
which FORMAT.md §9 documents.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import bfa
from tests._records import REGION, T, collection, payment_event, voucher

BFA_EXE = str(Path(sys.executable).parent / "bfa")
MAX_MONEY = "999999999999999.99"
BATCH = 1  # the control.ingest entry that closes every batch that appends (FORMAT.md §2.5)


# --------------------------------------------------------------------------- helpers


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Ledger:
    dir: Path  # working directory: input files live here
    opts: list[str]  # --home (and --db) for every command

    def run(self, *args: str, input: bytes | str | None = None) -> Run:
        res = CliRunner().invoke(bfa, [args[0], *self.opts, *args[1:]], input=input)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise AssertionError(f"uncaught exception: {res.exception!r}")
        return Run(res.exit_code, res.stdout, res.stderr)

    def ingest(self, *args: str, input: bytes | str | None = None) -> Run:
        r = self.run("ingest", *args, input=input)
        assert "internal error" not in r.err and "Traceback" not in r.err, r.err
        return r

    def size(self) -> int:
        r = self.run("status", "--json")
        return int(json.loads(r.out)["size"])

    def verify_ok(self) -> None:
        r = self.run("verify")
        assert r.code == 0, (r.out, r.err)

    def write(self, name: str, lines: list[Any]) -> str:
        """Write records (dicts), raw str or raw bytes lines, each ended by LF."""
        data = b"".join(
            (ln if isinstance(ln, bytes) else
             (ln if isinstance(ln, str) else json.dumps(ln, ensure_ascii=False)).encode())
            + b"\n"
            for ln in lines
        )
        (self.dir / name).write_bytes(data)
        return name


def _make(tmp_path: Path, db_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # file names as given are relative; stdin vouchers use the cwd
    opts = ["--home", str(tmp_path / "home")]
    if db_url is not None:
        opts += ["--db", db_url]
    led = Ledger(work, opts)
    r = led.run("init", "--origin", "blackbox.example/1")
    assert r.code == 0, r.err
    return led


@pytest.fixture
def sq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """SQLite only: for behaviour that does not depend on the backend."""
    return _make(tmp_path, None, monkeypatch)


@pytest.fixture
def both(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """SQLite and PostgreSQL."""
    return _make(tmp_path, db_url, monkeypatch)


def rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def bp(i: int, **kw: Any) -> dict[str, Any]:
    return {**payment_event(i), **kw}


def col(i: int, **kw: Any) -> dict[str, Any]:
    return {**collection(i), **kw}


def pay(i: int, **kw: Any) -> dict[str, Any]:
    return {"type": "finance.payment", "id": f"PAY-{i}", "region": REGION, "occurred_at": T,
            "amount": "100.00", "value_date": "2026-11-20", "bank_ref": f"PR{i}", **kw}


def slip(i: int, file: str, body: bytes = b"slip", **kw: Any) -> dict[str, Any]:
    return {"type": "archive.bank_slip", "id": f"BS-{i}", "region": REGION, "occurred_at": T,
            "sha256": hashlib.sha256(body).hexdigest(), "media_type": "application/pdf",
            "size": len(body), "file": file, "refs": ["BP-1"], "retention": "30y", **kw}


def refused(r: Run, where: str, field: str) -> None:
    """Exit 2, the batch-refused message, naming file:line and field."""
    assert r.code == 2, (r.code, r.out, r.err)
    assert "batch refused, nothing appended" in r.err, r.err
    assert f"{where}: {field}:" in r.err, r.err


# --------------------------------------------------------------------------- values


BAD_MONEY = ["100", "100.0", "100.000", 100.0, 100, "1e2", "-1.00", "0.00", "+1.00", " 1.00",
             "1.00 ", "１.００", "1,000.00", "01.00", ".50", "1.", "NaN", None, True,
             "1000000000000000.00"]


@pytest.mark.parametrize("amount", BAD_MONEY, ids=repr)
def test_bad_money_refuses_the_whole_batch(sq: Ledger, amount: Any) -> None:
    f = sq.write("in.jsonl", [bp(1), col(1), bp(2, amount=amount)])
    refused(sq.ingest(f), "in.jsonl:3", "amount")
    assert sq.size() == 0


def test_good_money_edges_are_accepted(sq: Ledger) -> None:
    f = sq.write("in.jsonl", [bp(1, amount="0.01"), bp(2, amount=MAX_MONEY)])
    assert sq.ingest(f).code == 0
    assert sq.size() == 2 + BATCH


@pytest.mark.parametrize(("field", "value", "rec"), [
    ("region", "44010", bp), ("region", 440100, bp), ("region", "４４０１００", bp),
    ("period", "2026-13", bp), ("period", "2026-1", bp), ("period", "2026-11-01", bp),
    ("occurred_at", "2026-11-20T09:00:00", bp), ("occurred_at", "2026-02-30T09:00:00+08:00", bp),
    ("occurred_at", "2026-11-20 09:00:00+08:00", bp), ("occurred_at", 1700000000, bp),
    ("value_date", "2026-02-30", col), ("value_date", "20261120", col),
    ("insurance", "Pension", bp), ("insurance", "all", bp),
    ("id", "", bp), ("id", "A" * 129, bp), ("id", "BP 1", bp), ("id", "BP-é", bp), ("id", 1, bp),
    ("fund_account", "savings", col), ("person_id", 110101199001011234, bp),
    ("corrects", "", bp), ("type", "business.foo", bp), ("type", "control.checkpoint", bp),
    ("extra", "x", bp),
])
def test_field_rules_name_the_field(sq: Ledger, field: str, value: Any, rec: Any) -> None:
    f = sq.write("in.jsonl", [rec(1, **{field: value})])
    refused(sq.ingest(f), "in.jsonl:1", field)
    assert sq.size() == 0


@pytest.mark.parametrize(("label", "line", "field"), [
    ("BOM", b"\xef\xbb\xbf" + json.dumps(bp(1)).encode(), "line"),
    ("duplicate key", json.dumps(bp(1)).encode()[:-1] + b', "amount": "3456.78"}', "line"),
    ("invalid utf-8", json.dumps(bp(1)).encode().replace(b"pension", b"pens\xffon"), "line"),
    ("lone surrogate", json.dumps(bp(1, source="x")).encode().replace(b'"x"', b'"\\ud800"'),
     "line"),
    ("NaN", json.dumps(bp(1)).encode()[:-1] + b', "x": NaN}', "line"),
    ("1e400", json.dumps(bp(1)).encode()[:-1] + b', "x": 1e400}', "line"),
    ("deep nesting", b'{"a":' * 50000 + b"1" + b"}" * 50000, "line"),
    ("NUL after object", json.dumps(bp(1)).encode() + b"\x00", "line"),
    ("two objects", json.dumps(bp(1)).encode() * 2, "line"),
    ("array", b"[1, 2]", "record"),
    ("null", b"null", "record"),
    ("string", b'"x"', "record"),
    ("empty object", b"{}", "type"),
    ("escaped NUL in source", json.dumps(bp(1, source="a\x00b")).encode(), "source"),
])
def test_hostile_lines_are_refused_cleanly(sq: Ledger, label: str, line: bytes,
                                           field: str) -> None:
    f = sq.write("in.jsonl", [bp(7), line])
    refused(sq.ingest(f), "in.jsonl:2", field)
    assert sq.size() == 0


def test_byte_order_mark_is_named(sq: Ledger) -> None:
    f = sq.write("in.jsonl", [b"\xef\xbb\xbf" + json.dumps(bp(1)).encode()])
    r = sq.ingest(f)
    refused(r, "in.jsonl:1", "line")
    assert "byte-order mark" in r.err, r.err


def test_very_long_line_is_refused_cleanly(sq: Ledger) -> None:
    f = sq.write("in.jsonl", [bp(1, source="a" * 5_000_000)])
    refused(sq.ingest(f), "in.jsonl:1", "source")


# --------------------------------------------------------------------------- lines


def test_crlf_blank_and_whitespace_lines_and_line_numbers(sq: Ledger) -> None:
    good = json.dumps(bp(1)).encode()
    bad = json.dumps(bp(2, amount="x")).encode()
    lines = [b"\r", b"", good + b"\r", b" \t ", col(1), good + b"  \t\r", bad + b"\r"]
    f = sq.write("in.jsonl", lines)
    refused(sq.ingest(f), "in.jsonl:7", "amount")
    sq.write("in.jsonl", lines[:-1])
    r = sq.ingest("--json", f)
    assert r.code == 0, r.err
    row = json.loads(r.out)["files"][0]
    assert (row["lines"], row["appended"], row["duplicates"]) == (6, 2, 1)


def test_last_line_without_newline_and_empty_file(sq: Ledger) -> None:
    (sq.dir / "nonl.jsonl").write_bytes(json.dumps(bp(1)).encode())
    (sq.dir / "empty.jsonl").write_bytes(b"")
    r = sq.ingest("--json", "nonl.jsonl", "empty.jsonl")
    assert r.code == 0, r.err
    assert [(x["lines"], x["appended"]) for x in json.loads(r.out)["files"]] == [(1, 1), (0, 0)]


# --------------------------------------------------------------------------- batches


def test_one_bad_line_refuses_the_file_on_both_backends(both: Ledger) -> None:
    recs: list[Any] = [bp(i) for i in range(200)] + [col(i) for i in range(200)]
    recs.insert(150, bp(999, period="2026-00"))
    f = both.write("in.jsonl", recs)
    refused(both.ingest(f), "in.jsonl:151", "period")
    assert both.size() == 0
    both.verify_ok()


def test_multiple_files_refused_one_keeps_earlier_and_skips_later(both: Ledger) -> None:
    a = both.write("a.jsonl", [bp(1), col(1)])
    b = both.write("b.jsonl", [bp(2), col(1, amount="200.00")])  # conflict with a.jsonl
    c = both.write("c.jsonl", [bp(3)])
    r = both.ingest(a, b, c)
    refused(r, "b.jsonl:2", "id")
    assert both.size() == 2 + BATCH  # a.jsonl stays appended; b.jsonl nothing; c.jsonl not read
    assert both.ingest(c).code == 0
    assert both.size() == (2 + BATCH) + (1 + BATCH)
    both.verify_ok()


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unopenable_input_exits_2_and_keeps_earlier_files(sq: Ledger, kind: str) -> None:
    a = sq.write("a.jsonl", [bp(1)])
    c = sq.write("c.jsonl", [bp(3)])
    if kind == "directory":
        (sq.dir / "bad").mkdir()
    r = sq.ingest(a, "bad", c)
    assert r.code == 2 and "bad" in r.err, r.err
    assert sq.size() == 1 + BATCH
    assert "the files before it stay appended: a.jsonl (1 appended" in r.err, r.err


def test_refused_later_file_says_which_files_stay_appended(sq: Ledger) -> None:
    a = sq.write("a.jsonl", [bp(1), bp(2)])
    b = sq.write("b.jsonl", [{}])
    r = sq.ingest(a, b)
    refused(r, "b.jsonl:1", "type")
    assert "the files before it stay appended: a.jsonl (2 appended, 0 duplicates" in r.err
    assert sq.size() == 2 + BATCH


def test_stdin_is_a_batch_and_vouchers_are_relative_to_cwd(sq: Ledger) -> None:
    (sq.dir / "v.pdf").write_bytes(b"slip")
    data = "\n".join(json.dumps(x) for x in [slip(1, "v.pdf"), bp(1)]) + "\n"
    r = sq.ingest("--json", "-", input=data)
    assert r.code == 0, r.err
    assert json.loads(r.out)["appended"] == 2
    bad = json.dumps(bp(2)) + "\n" + json.dumps(bp(3, amount="3")) + "\n"
    refused(sq.ingest("-", input=bad), "<stdin>:2", "amount")
    assert sq.size() == 2 + BATCH


def test_json_report_shape_and_stdout_is_pure_json(sq: Ledger) -> None:
    a = sq.write("a.jsonl", [bp(1), bp(1), bp(2, amount="x")])
    r = sq.ingest("--json", "--reject-file", "rej.jsonl", a)
    assert r.code == 1
    rep = json.loads(r.out)  # nothing else on stdout
    assert {"appended", "duplicates", "rejected", "files", "tree_size"} <= rep.keys()
    assert rep["files"] == [{"file": "a.jsonl", "lines": 3, "appended": 1, "duplicates": 1,
                             "rejected": 1, "statement": None}]
    assert (rep["appended"], rep["duplicates"], rep["rejected"], rep["tree_size"]) == (
        1, 1, 1, 1 + BATCH)


# --------------------------------------------------------------------------- re-send/conflict


def test_same_id_twice_in_one_file(sq: Ledger) -> None:
    r1 = bp(1)
    reordered = json.dumps(dict(reversed(list(r1.items()))), separators=(" , ", " : "))
    escaped = json.dumps(r1).replace('"BP-1"', '"\\u0042P-1"')
    f = sq.write("in.jsonl", [r1, reordered, escaped])
    r = sq.ingest("--json", f)
    assert r.code == 0, r.err
    assert (json.loads(r.out)["appended"], json.loads(r.out)["duplicates"]) == (1, 2)
    f = sq.write("in2.jsonl", [bp(5), bp(5, amount="1.00")])
    refused(sq.ingest(f), "in2.jsonl:2", "id")
    assert sq.size() == 1 + BATCH


def test_resend_across_runs_is_a_noop_and_conflicts_are_refused(both: Ledger) -> None:
    a = both.write("a.jsonl", [bp(1), col(1), {**bp(2), "corrects": "BP-1"}])
    assert both.ingest(a).code == 0
    b = both.write("b.jsonl", [col(1), {**bp(2), "corrects": "BP-1"}, bp(1)])  # other order
    r = both.ingest("--json", b)
    assert r.code == 0 and json.loads(r.out)["duplicates"] == 3
    refund_bp1 = {"type": "business.refund", "id": "BP-1", "region": REGION, "occurred_at": T,
                  "payer_id": "E1", "insurance": "pension", "amount": "3456.78", "reason": "x"}
    for i, changed in enumerate([bp(1, source="biz"), bp(1, person_id="110101199001019999"),
                                 refund_bp1]):
        f = both.write(f"c{i}.jsonl", [bp(9), changed])
        refused(both.ingest(f), f"c{i}.jsonl:2", "id")
    assert both.size() == 3 + BATCH  # the re-send of b.jsonl appended nothing, not even a batch
    r = both.ingest("--reject-file", "rej.jsonl", "c0.jsonl")
    assert r.code == 1
    assert [(x["line"], x["field"]) for x in rejects(both.dir / "rej.jsonl")] == [(2, "id")]
    assert both.size() == (3 + BATCH) + (1 + BATCH)
    both.verify_ok()


def test_same_id_in_different_domains_is_not_a_conflict(sq: Ledger) -> None:
    f = sq.write("in.jsonl", [bp(1, id="X-1"), col(1, id="X-1")])
    assert sq.ingest(f).code == 0
    assert sq.size() == 2 + BATCH


# --------------------------------------------------------------------------- order


def test_corrections_in_any_order(sq: Ledger) -> None:
    chain = [bp(4, corrects="BP-3"), bp(3, corrects="BP-2"), bp(2, corrects="BP-1"), bp(1)]
    assert sq.ingest(sq.write("chain.jsonl", chain)).code == 0
    assert sq.size() == 4 + BATCH
    cycle = [bp(11, corrects="BP-12"), bp(12, corrects="BP-11")]
    refused(sq.ingest(sq.write("cycle.jsonl", cycle)), "cycle.jsonl:1", "corrects")
    dangling = [bp(21, corrects="BP-404")]
    refused(sq.ingest(sq.write("d.jsonl", dangling)), "d.jsonl:1", "corrects")
    cross = [col(31), bp(32, corrects="COL-31")]  # corrects is per domain
    refused(sq.ingest(sq.write("x.jsonl", cross)), "x.jsonl:2", "corrects")
    # a correction whose target comes in a later file is unresolved when its batch is in
    later = [bp(41, corrects="BP-40")]
    refused(sq.ingest(sq.write("l1.jsonl", later), sq.write("l2.jsonl", [bp(40)])),
            "l1.jsonl:1", "corrects")
    assert sq.size() == 4 + BATCH
    sq.verify_ok()


def test_refused_batch_reports_only_real_problems(sq: Ledger) -> None:
    f = sq.write("in.jsonl", [bp(2, corrects="BP-1"), bp(1), bp(3, amount="1")])
    r = sq.ingest(f)
    refused(r, "in.jsonl:3", "amount")
    assert "(1 problem(s))" in r.err and "corrects" not in r.err


def test_forward_and_dangling_references_are_not_refused(sq: Ledger) -> None:
    (sq.dir / "v.pdf").write_bytes(b"slip")
    recs = [
        pay(1, allocations=[{"event": "BP-1", "amount": "60.00"},
                            {"event": "BP-404", "amount": "1.00"}]),  # sum mismatch is allowed
        slip(1, "v.pdf", refs=["PAY-1", "BP-1", "NOPE-1"]),
        {"type": "finance.return", "id": "RET-1", "region": REGION, "occurred_at": T,
         "amount": "60.00", "value_date": "2026-11-21", "bank_ref": "RR1", "returns": "PAY-1",
         "allocations": [{"event": "BP-1", "amount": "60.00"}], "reason": "account closed"},
        bp(1),
    ]
    r = sq.ingest(sq.write("in.jsonl", recs))
    assert r.code == 0, r.err
    assert sq.size() == 4 + BATCH


# --------------------------------------------------------------------------- reject file


def test_reject_file_round_trip(both: Ledger) -> None:
    lines: list[Any] = [
        bp(1),
        bp(2, amount="12.3"),
        b"\xff\xfe not utf-8",
        b"[1]",
        json.dumps(bp(4, period="2026-13", source="业务系统"), ensure_ascii=False).encode() + b"\r",
        bp(5, corrects="BP-404"),
        bp(6, source="业务系统"),
    ]
    f = both.write("in.jsonl", lines)
    r = both.ingest("--reject-file", "rej.jsonl", f)
    assert r.code == 1, r.err
    assert both.size() == 2 + BATCH
    raw = (both.dir / "rej.jsonl").read_text(encoding="utf-8")
    assert "业务系统" in raw  # UTF-8, not ASCII-escaped
    rej = rejects(both.dir / "rej.jsonl")
    assert sorted((x["line"], x["field"]) for x in rej) == [
        (2, "amount"), (3, "line"), (4, "record"), (5, "period"), (6, "corrects")]
    assert all(x["file"] == "in.jsonl" and x["reason"] for x in rej)
    by_line = {x["line"]: x for x in rej}
    assert by_line[3]["text"] == ""
    assert not by_line[5]["text"].endswith("\r")
    assert json.loads(by_line[2]["text"]) == bp(2, amount="12.3")
    # fix the rejected records and send them again
    fixes = {"amount": ("12.3", "12.30"), "period": ("2026-13", "2026-12"),
             "corrects": ("BP-404", "BP-1")}
    fixed = []
    for x in rej:
        if x["field"] in fixes:
            rec = json.loads(x["text"])
            old, new = fixes[x["field"]]
            assert rec[x["field"]] == old
            fixed.append({**rec, x["field"]: new})
    r = both.ingest("--reject-file", "rej2.jsonl", both.write("fixed.jsonl", fixed))
    assert r.code == 0, r.err
    assert (both.dir / "rej2.jsonl").read_text() == ""
    assert both.size() == (2 + BATCH) + (3 + BATCH)
    # and the whole original file once more: the good lines are re-sends now
    r = both.ingest("--json", "--reject-file", "rej3.jsonl", f)
    assert r.code == 1 and json.loads(r.out)["duplicates"] == 2
    both.verify_ok()


def test_reject_mode_collects_everything_past_the_100_problem_limit(sq: Ledger) -> None:
    f = sq.write("in.jsonl", [bp(i, amount="x") for i in range(150)] + [bp(1000)])
    r = sq.ingest(f)
    assert r.code == 2 and "… and 80 more" in r.err
    assert len([x for x in r.err.splitlines() if x.strip().startswith("in.jsonl:")]) <= 20
    r = sq.ingest("--reject-file", "rej.jsonl", f)
    assert r.code == 1
    assert len(rejects(sq.dir / "rej.jsonl")) == 150
    assert sq.size() == 1 + BATCH


def test_unwritable_reject_file_refuses_before_ingesting(sq: Ledger) -> None:
    f = sq.write("in.jsonl", [bp(1)])
    r = sq.ingest("--reject-file", "no/such/dir/rej.jsonl", f)
    assert r.code == 2
    assert sq.size() == 0


# --------------------------------------------------------------------------- vouchers


@pytest.mark.parametrize(("label", "rec_kw", "files", "field"), [
    ("wrong sha256", {"sha256": "0" * 64}, {"v.pdf": b"slip"}, "sha256"),
    ("wrong size", {"size": 5}, {"v.pdf": b"slip"}, "size"),
    ("missing", {}, {}, "file"),
    ("directory", {"file": "d"}, {"d": None}, "file"),
    ("dot-dot", {"file": "../v.pdf"}, {}, "file"),
    ("inner dot-dot", {"file": "d/../../v.pdf"}, {"d": None}, "file"),
    ("absolute", {"file": "/etc/hostname"}, {}, "file"),
    ("backslash", {"file": "d\\v.pdf"}, {}, "file"),
    ("empty", {"file": ""}, {}, "file"),
    ("uppercase sha", {"sha256": hashlib.sha256(b"slip").hexdigest().upper()},
     {"v.pdf": b"slip"}, "sha256"),
    ("size 2^53", {"size": 2**53}, {"v.pdf": b"slip"}, "size"),
    ("size float", {"size": 4.0}, {"v.pdf": b"slip"}, "size"),
])
def test_voucher_file_checks(sq: Ledger, label: str, rec_kw: dict[str, Any],
                             files: dict[str, bytes | None], field: str) -> None:
    for name, body in files.items():
        if body is None:
            (sq.dir / name).mkdir()
        else:
            (sq.dir / name).write_bytes(body)
    (sq.dir.parent / "v.pdf").write_bytes(b"slip")  # what ../ would reach
    f = sq.write("in.jsonl", [bp(1), {**slip(1, "v.pdf"), **rec_kw}])
    refused(sq.ingest(f), "in.jsonl:2", field)
    assert sq.size() == 0


def test_voucher_problems_in_reject_mode_keep_the_good_ones(both: Ledger) -> None:
    good = voucher(both.dir, 1, ["BP-1"])
    bad = voucher(both.dir, 2, ["BP-1"], body=b"other")
    bad["sha256"] = good["sha256"]
    r = both.ingest("--reject-file", "rej.jsonl", both.write("in.jsonl", [good, bad, bp(1)]))
    assert r.code == 1
    assert [(x["line"], x["field"]) for x in rejects(both.dir / "rej.jsonl")] == [(2, "sha256")]
    assert both.size() == 2 + BATCH
    # a re-send of the same record is a no-op even when the source file is gone
    (both.dir / "v1.pdf").unlink()
    r = both.ingest("--json", "in.jsonl", "--reject-file", "rej.jsonl")
    assert json.loads(r.out)["duplicates"] == 2
    both.verify_ok()


# --------------------------------------------------------------------------- processes


@pytest.mark.slow
def test_concurrent_ingests_of_overlapping_files(tmp_path: Path, db_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    led = _make(tmp_path, db_url, monkeypatch)
    recs = [bp(i) for i in range(600)]
    led.write("a.jsonl", recs)
    led.write("b.jsonl", [*recs[::-1], bp(5000)])
    procs = [subprocess.Popen([BFA_EXE, "ingest", "--json", *led.opts, f], cwd=led.dir,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for f in ("a.jsonl", "b.jsonl", "a.jsonl")]
    appended = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        appended.append(json.loads(out)["appended"])
    assert sum(appended) == 601, appended
    # b.jsonl first: one batch appends (601); a.jsonl first: 600, then b.jsonl's BP-5000
    batches = sum(1 for n in appended if n)
    assert batches in (1, 2), appended
    assert led.size() == 601 + batches * BATCH
    led.verify_ok()


# --------------------------------------------------------------------------- BUGS (fixed)


@pytest.mark.parametrize("rec", [
    col(1, value_date="9999-12-31"),
    bp(1, occurred_at="9999-12-31T20:00:00+00:00"),
    {"type": "business.contribution_assessment", "id": "CA-1", "region": REGION,
     "occurred_at": T, "employer_id": "E1", "insurance": "pension", "period": "2026-11",
     "amount": "10.00", "due_date": "9999-12-31"},
], ids=["value_date", "occurred_at", "due_date"])
def test_far_future_dates_do_not_break_reconcile(sq: Ledger, rec: dict[str, Any]) -> None:
    r = sq.ingest(sq.write("in.jsonl", [rec]))
    if r.code == 2:  # refusing the date would be fine too
        return
    rr = sq.run("reconcile", "--json")
    assert rr.code in (0, 1), rr.err


def test_large_allocation_sum_does_not_crash_ingest(both: Ledger) -> None:
    allocs = [{"event": f"BP-{i}", "amount": MAX_MONEY} for i in range(100)]
    r = both.run("ingest", both.write("in.jsonl", [pay(1, amount=MAX_MONEY,
                                                        allocations=allocs)]))
    refused(r, "in.jsonl:1", "allocations")
    assert "add up to more than 999999999999999.99" in r.err, r.err
    # a total that does not match the movement but is an amount: the reconciler's finding
    halves = [{"event": f"BP-{i}", "amount": "499999999999999.99"} for i in range(2)]
    assert both.ingest(both.write("ok.jsonl", [pay(2, allocations=halves)])).code == 0


def test_sums_beyond_64_bits_are_a_clear_refusal(both: Ledger) -> None:
    """KNOWN LIMIT: every amount fits, but a month of an account can hold as many as are
    sent; beyond 2^63 fen the reconciler says so (exit 2, one line) instead of crashing."""
    recs = [col(i, amount=MAX_MONEY, payer_id="E1", fund_account="income") for i in range(100)]
    assert both.ingest(both.write("in.jsonl", recs)).code == 0
    rr = both.run("reconcile", "--json")
    assert rr.code == 2, rr.err
    assert rr.err.startswith("bfa: error: amounts too large to add up"), rr.err
    assert "internal error" not in rr.err and rr.err.count("\n") == 1, rr.err


def test_reject_file_that_is_also_an_input_does_not_lose_the_input(sq: Ledger) -> None:
    f = sq.write("fix.jsonl", [bp(1), bp(2)])
    r = sq.ingest("--reject-file", f, f)
    if r.code == 2:  # refusing the clash is acceptable if the input survives
        assert (sq.dir / f).read_text().count("\n") == 2
        return
    assert sq.size() == 2 + BATCH, (r.code, r.out)


@pytest.mark.slow
def test_endless_voucher_file_is_refused(sq: Ledger) -> None:
    """A link to /dev/zero: outside the directory and not a regular file; never read."""
    (sq.dir / "z.pdf").symlink_to("/dev/zero")
    sq.write("in.jsonl", [slip(1, "z.pdf")])

    def limit() -> None:  # should it be read after all: 32 MiB per file, not the disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 20, 32 << 20))

    p = subprocess.run([BFA_EXE, "ingest", *sq.opts, "in.jsonl"], cwd=sq.dir,
                       capture_output=True, timeout=60, preexec_fn=limit)
    assert p.returncode == 2
    assert "in.jsonl:1: file:" in p.stderr.decode(), p.stderr.decode()


def test_voucher_file_longer_than_its_size_is_read_no_further(sq: Ledger) -> None:
    (sq.dir / "long.pdf").write_bytes(b"slip" * 1000)
    r = sq.ingest(sq.write("in.jsonl", [slip(1, "long.pdf")]))
    refused(r, "in.jsonl:1", "size")
    assert "more than 4 bytes" in r.err, r.err


def test_voucher_symlink_inside_the_directory_is_followed(sq: Ledger) -> None:
    (sq.dir / "scans").mkdir()
    (sq.dir / "scans" / "v.pdf").write_bytes(b"slip")
    (sq.dir / "latest").symlink_to("scans")
    assert sq.ingest(sq.write("in.jsonl", [slip(1, "latest/v.pdf")])).code == 0
    assert sq.size() == 1 + BATCH


@pytest.mark.slow
def test_fifo_voucher_file_does_not_hang(sq: Ledger) -> None:
    os.mkfifo(sq.dir / "f.pdf")
    sq.write("in.jsonl", [slip(1, "f.pdf")])
    p = subprocess.run([BFA_EXE, "ingest", *sq.opts, "in.jsonl"], cwd=sq.dir,
                       capture_output=True, timeout=8)
    assert p.returncode == 2
    assert "in.jsonl:1: file:" in p.stderr.decode()


def test_voucher_symlink_out_of_the_directory_is_refused(sq: Ledger, tmp_path: Path) -> None:
    key = tmp_path / "home" / "keys" / "secret.key"
    (sq.dir / "k").symlink_to(key.parent)
    body = key.read_bytes()
    r = sq.ingest(sq.write("in.jsonl", [slip(1, "k/secret.key", body=body)]))
    refused(r, "in.jsonl:1", "file")


def test_non_utf8_file_name_with_reject_file(sq: Ledger) -> None:
    name = os.fsdecode(b"batch\xff.jsonl")
    sq.write(name, [bp(1), bp(2, amount="x")])
    r = sq.run("ingest", "--reject-file", "rej.jsonl", name)
    assert "internal error" not in r.err, r.err
    assert r.code == 1
    assert [x["line"] for x in rejects(sq.dir / "rej.jsonl")] == [2]


def test_member_names_cannot_forge_output_lines(sq: Ledger) -> None:
    forged = "bfa: ok: 1 record appended"
    r = sq.ingest(sq.write("in.jsonl", [{**bp(1), f"x\n{forged}\n": 1}]))
    assert r.code == 2
    assert f"\n{forged}" not in r.err, r.err


@pytest.mark.parametrize("ch", ["\u0085", "\u009f"])
def test_c1_control_characters_are_refused(sq: Ledger, ch: str) -> None:
    refused(sq.ingest(sq.write("in.jsonl", [bp(1, source=f"a{ch}b")])), "in.jsonl:1", "source")


def test_oversized_integer_is_refused_on_its_field(sq: Ledger) -> None:
    line = json.dumps(slip(1, "v.pdf")).replace('"size": 4', '"size": ' + "9" * 5000)
    refused(sq.ingest(sq.write("in.jsonl", [line])), "in.jsonl:1", "size")


def test_in_batch_conflict_message_does_not_claim_the_ledger(sq: Ledger) -> None:
    r = sq.ingest(sq.write("in.jsonl", [bp(1), bp(1, amount="1.00")]))
    refused(r, "in.jsonl:2", "id")
    assert sq.size() == 0
    assert "already in the ledger" not in r.err, r.err


# --------------------------------------------------------------------------- after it all


def test_verify_stays_clean_after_a_hostile_session(both: Ledger) -> None:
    (both.dir / "v.pdf").write_bytes(b"slip")
    for i, lines in enumerate([
        [bp(1), col(1), slip(1, "v.pdf")],
        [bp(1), b"\xff", b"{}", bp(2, amount=3)],
        [bp(3, corrects="BP-1"), bp(1, amount="9.99")],
        [b'{"a":' * 5000 + b"1" + b"}" * 5000, bp(4)],
        [slip(2, "v.pdf", sha256="1" * 64)],
    ]):
        name = both.write(f"f{i}.jsonl", lines)
        both.ingest(name)
        both.ingest("--reject-file", f"r{i}.jsonl", name)
    # BP-1, COL-1, BS-1 (f0), BP-3 (f2, with its reject file), BP-4 (f3, with its reject
    # file): three batches append, every other ingest appends nothing
    assert both.size() == 5 + 3 * BATCH
    both.verify_ok()
