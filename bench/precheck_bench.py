"""Check before payment (``bfa precheck``) against COPY and one hand-written join.

Run it as ``.venv/bin/python -m bench.precheck_bench`` (see ``bench/README.md``).

Issue 20 item 3: a proposed batch of 1,000,000 benefit-payment lines checked against a
ledger of 2,000,000 records, end to end — parse and validate every line, pseudonymise its
person and account, load, judge every reason, check the approval rows relied on, append
the ``control.precheck`` entry and read the held lines back — beside the least a database
can do with the same lines: COPY their values (already pseudonymised, untimed: the
baseline gets the HMACs for free) into a fresh table, plus one hand-written join against
the approvals (the latest current approval starting in or before each line's period, its
account and amount compared), fetched completely; in the same database, in the same run.
The baseline runs before and after ours and the faster run counts. Target: at most 3 ×.

The ledger is built untimed from ``bench/_records.py``'s records (ingested in batches of
100,000, then the derived tables refreshed and ``ANALYZE``), as ``bench.run`` builds its
own. The proposed lines pay the people the ledger approved (each person's latest
approval: its account and monthly amount) for the months after the ledger's last, as many
months as it takes to reach ``--lines``; one line in a thousand is planted wrong (another
account, a higher amount, an unknown person, or a line repeated). People the ledger
terminated are held too, as they should be.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from bench._env import DEFAULT_PG_URL, Env, LedgerHandle, PgServer, new_run_id
from bench._report import fmt_count, log
from ledger import Ledger, ProposedFile
from reconcile import Held, precheck, refresh

BASELINE_SQL = """
SELECT b.line, b.account = a.account AS same_account, b.amount_fen <= a.amount_fen AS within
FROM bench_lines b
JOIN LATERAL (
  SELECT p.account, p.amount_fen FROM rc_person_events p
  WHERE p.kind = 'benefit_approval' AND p.person = b.person AND p.insurance = b.insurance
    AND p.period <= b.period AND NOT p.superseded
  ORDER BY p.period DESC LIMIT 1) a ON true
"""
"""The hand-written join: for each line, the latest current approval in or before its
period, account and amount compared (an index look-up per line, as a person would write
it; the planner may not do better with a hash join on a table just loaded)."""

BASELINE_HASH_SQL = """
SELECT b.line, max(p.period)
FROM bench_lines b JOIN rc_person_events p
  ON p.kind = 'benefit_approval' AND p.person = b.person AND p.insurance = b.insurance
 AND p.period <= b.period AND NOT p.superseded
GROUP BY b.line
"""
"""The same join written as a hash join and an aggregate (the faster of the two counts)."""


def _approvals(records: Path) -> dict[str, dict[str, Any]]:
    """Each person's latest ``benefit_approval`` of the generated records, by person id."""
    out: dict[str, dict[str, Any]] = {}
    with records.open("rb") as f:
        for raw in f:
            if b'"business.benefit_approval"' not in raw:
                continue
            rec = json.loads(raw)
            if "corrects" in rec:
                continue
            old = out.get(rec["person_id"])
            if old is None or rec["start_period"] >= old["start_period"]:
                out[rec["person_id"]] = rec
    return out


def _months(first_year: int) -> Iterator[str]:
    year, month = first_year, 1
    while True:
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def write_lines(path: Path, approvals: dict[str, dict[str, Any]], n: int) -> dict[str, int]:
    """``n`` proposed benefit payments to ``path``; returns how many of each fault."""
    people = sorted(approvals.values(), key=lambda r: str(r["id"]))
    planted = {"account": 0, "amount": 0, "unknown": 0, "repeated": 0}
    written = 0
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with path.open("w", encoding="utf-8") as f:
        buf: list[str] = []
        for period in _months(2031):
            for ap in people:
                if written >= n:
                    break
                rec = {"type": "business.benefit_payment",
                       "id": f"PP-{period}-{ap['id']}", "region": ap["region"],
                       "occurred_at": f"{period}-20T09:00:00+08:00",
                       "person_id": ap["person_id"], "insurance": ap["insurance"],
                       "period": period, "amount": ap["monthly_amount"],
                       "account": ap["account"]}
                written += 1
                if written % 1000 == 0:
                    fault = ("account", "amount", "unknown", "repeated")[(written // 1000) % 4]
                    planted[fault] += 1
                    if fault == "account":
                        rec["account"] = "6222000000000000000"
                    elif fault == "amount":
                        rec["amount"] = f"{int(ap['monthly_amount'].split('.')[0]) + 1}.00"
                    elif fault == "unknown":
                        rec["person_id"] = f"440100199901{written:06d}"
                    elif written < n:
                        buf.append(dumps(rec))
                        written += 1
                buf.append(dumps(rec))
                if len(buf) >= 10_000:
                    f.write("\n".join(buf) + "\n")
                    buf = []
            if written >= n:
                break
        if buf:
            f.write("\n".join(buf) + "\n")
    return planted


def _pseudonymised(led: Ledger, path: Path, out: Path) -> list[tuple[Any, ...]]:
    """The baselines' input (untimed): each line's values with pseudonyms, and the same
    JSON lines with the pseudonyms in place of the clear values, written to ``out``."""
    rows = [(ln.line, ln.record_id, ln.person, ln.insurance, ln.period, ln.amount_fen,
             ln.account) for ln in ProposedFile(path).lines(led.secret())]
    with path.open("rb") as src, out.open("w", encoding="utf-8") as dst:
        for raw, r in zip(src, rows, strict=True):
            rec = json.loads(raw)
            rec["person_id"], rec["account"] = r[2], r[6]
            dst.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return rows


JSON_SQL = """
SELECT b.doc->>'id', max(p.period)
FROM bench_json b JOIN rc_person_events p
  ON p.kind = 'benefit_approval' AND p.person = b.doc->>'person_id'
 AND p.insurance = b.doc->>'insurance' AND p.period <= b.doc->>'period' AND NOT p.superseded
GROUP BY b.doc->>'id'
"""
"""Baseline B's join: the same as :data:`BASELINE_HASH_SQL`, on the fields of the JSON."""


def _join(conn: psycopg.Connection[Any], sqls: tuple[str, ...]) -> tuple[float, int]:
    best, n = float("inf"), 0
    for sql in sqls:
        t0 = time.perf_counter()
        with conn.cursor("join") as cur:
            cur.itersize = 10_000
            cur.execute(sql)
            n = sum(1 for _ in cur)
        best = min(best, time.perf_counter() - t0)
    return best, n


def baseline(url: str, rows: list[tuple[Any, ...]], json_lines: Path
             ) -> dict[str, tuple[float, float, int]]:
    """Two baselines, each (seconds in all, seconds of the COPY, rows the join gave):
    ``json``: the JSON lines themselves (pseudonymised) COPYed into a ``jsonb`` column,
    the server parsing them, then the join on their fields; ``columns``: the lines'
    values, already parsed and pseudonymised, COPYed into columns, then the join."""
    out = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET jit = off")
        conn.execute("SET work_mem = '64MB'")
        conn.execute("DROP TABLE IF EXISTS bench_lines")
        conn.execute("DROP TABLE IF EXISTS bench_json")
        conn.commit()
        start = time.perf_counter()
        conn.execute("CREATE TABLE bench_json (doc jsonb)")
        with conn.cursor().copy("COPY bench_json FROM STDIN") as cp, json_lines.open("rb") as f:
            while block := f.read(1 << 20):
                cp.write(block.replace(b"\\", b"\\\\"))
        conn.execute("ANALYZE bench_json")
        copied = time.perf_counter() - start
        joined, n = _join(conn, (JSON_SQL,))
        out["json"] = (copied + joined, copied, n)
        start = time.perf_counter()
        conn.execute("CREATE TABLE bench_lines (line bigint, id text, person text, "
                     "insurance text, period text, amount_fen bigint, account text)")
        with conn.cursor().copy("COPY bench_lines FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        conn.execute("ANALYZE bench_lines")
        copied = time.perf_counter() - start
        joined, n = _join(conn, (BASELINE_HASH_SQL, BASELINE_SQL))
        out["columns"] = (copied + joined, copied, n)
        conn.rollback()
    return out


def build(env: Env, backend: str) -> LedgerHandle:
    handle = env.main_ledger(backend)
    led = handle.open()
    try:
        t0 = time.perf_counter()
        decoded, _size = refresh(led.store)
        log(f"{backend}: derived tables refreshed ({fmt_count(decoded)} entries, "
            f"{time.perf_counter() - t0:.1f} s)")
    finally:
        led.close()
    if backend == "postgresql":
        with psycopg.connect(handle.url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    return handle


def _shown(b: dict[str, tuple[float, float, int]]) -> str:
    return "; ".join(f"{k} {v[0]:.2f} s (COPY {v[1]:.2f} s, {fmt_count(v[2])} rows)"
                     for k, v in b.items())


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bfa-precheck-bench-"))
    pg = PgServer(os.environ.get("BFA_BENCH_DATABASE_URL", DEFAULT_PG_URL), new_run_id())
    env = Env(args.records, workdir, pg, seed=args.seed)
    out: dict[str, Any] = {"records": args.records, "lines": args.lines,
                           "load_start": os.getloadavg()}
    try:
        if args.reuse:  # a ledger kept by an earlier run (--keep): its home and database
            home, url = args.reuse
            handle = LedgerHandle("postgresql", "main", Path(home), url)
            with psycopg.connect(url) as c:
                row = c.execute("SELECT count(*) FROM entries").fetchone()
                handle.entries = int(row[0]) if row else 0
            records = workdir / f"records-{args.records}.jsonl"
        else:
            handle = build(env, "postgresql")
            records = env.records_file().path
        approvals = _approvals(records)
        path = workdir / f"proposed-{args.lines}.jsonl"
        planted = write_lines(path, approvals, args.lines)
        log(f"{fmt_count(args.lines)} proposed lines for {fmt_count(len(approvals))} approved "
            f"people, {path.stat().st_size / 1e6:.0f} MB; planted {planted}")
        led = handle.open()
        try:
            rows = _pseudonymised(led, path, workdir / "pseudonymised.jsonl")
            first = baseline(handle.url, rows, workdir / "pseudonymised.jsonl")
            log("baselines (before): " + _shown(first))
            held = 0

            def count(h: Held, text: str | None) -> None:
                nonlocal held
                held += 1

            stages: dict[str, float] = {}
            t0 = time.perf_counter()
            res = precheck(led, path, on_held=count, timings=stages)
            ours = time.perf_counter() - t0
            log(f"precheck: {ours:.2f} s: {fmt_count(res.lines)} lines, "
                f"{fmt_count(res.held)} held {res.counts}")
            log("precheck stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
            second = baseline(handle.url, rows, workdir / "pseudonymised.jsonl")
            log("baselines (after): " + _shown(second))
            # where our time goes: the file read alone (parse, validate, pseudonymise)
            t0 = time.perf_counter()
            n = sum(1 for _ in ProposedFile(path).lines(led.secret()))
            parse = time.perf_counter() - t0
            assert n == res.lines and held == res.held
        finally:
            led.close()
        for kind in ("json", "columns"):
            base = min(first[kind][0], second[kind][0])
            out[kind] = {"baseline_s": base, "ratio": ours / base,
                         "runs_s": [first[kind][0], second[kind][0]],
                         "copy_s": min(first[kind][1], second[kind][1])}
        out.update({"ours_s": ours, "parse_s": parse, "held": res.held, "counts": res.counts,
                    "stages_s": stages, "planted": planted, "entries": handle.entries,
                    "load_end": os.getloadavg()})
        return out
    finally:
        if not args.keep and not args.reuse:
            env.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.precheck_bench",
                                 description="bfa precheck against COPY and one join.")
    ap.add_argument("--records", type=lambda s: int(s.replace("_", "").replace(",", "")),
                    default=2_000_000, help="records in the ledger (default 2,000,000)")
    ap.add_argument("--lines", type=lambda s: int(s.replace("_", "").replace(",", "")),
                    default=1_000_000, help="proposed lines (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--workdir", help="work directory (default: a new temporary one)")
    ap.add_argument("--json", dest="json_file", help="also write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the database and work directory")
    ap.add_argument("--reuse", nargs=2, metavar=("HOME", "URL"),
                    help="measure on a ledger an earlier --keep run built (with its --workdir)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = ap.parse_args(argv)
    out = run(args)
    ok = out["json"]["ratio"] <= 3.0
    print(f"precheck/postgresql  {fmt_count(args.lines)} lines, {fmt_count(out['entries'])} "
          f"entries  ours {out['ours_s']:.2f} s")
    print(f"  baseline json (COPY the lines into jsonb + join)   {out['json']['baseline_s']:.2f} s"
          f"  ratio {out['json']['ratio']:.2f} x  target <= 3 x  {'OK' if ok else 'MISS'}")
    print(f"  baseline columns (COPY parsed values + join)  {out['columns']['baseline_s']:.2f} s"
          f"  ratio {out['columns']['ratio']:.2f} x")
    print(f"  of ours: reading the file (parse, validate, pseudonymise) {out['parse_s']:.2f} s")
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(out, indent=2), "utf-8")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
