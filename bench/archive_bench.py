"""Archive benchmarks: fixity audit and proof bundles (``python -m bench.archive_bench``).

Two parts (``--only fixity,bundle``), each figure beside a baseline measured in the same
run on the same machine, and the ratio between them (see bench/README.md, bench/ARCHIVE.md):

``fixity``  A ledger of ``--files`` voucher files (default 10,000, about 1.2 GB), ingested
            through ``bfa ingest``. ``bfa archive audit`` (full) against ``find STORE -type
            f -print0 | xargs -0 sha256sum`` over the same files, page cache warm for both
            (each run once untimed first), medians of ``--repeat``; ratio = sha256sum time /
            audit time = audit throughput / sha256sum throughput (target >= 0.8). The same
            audit beside ``xargs -0 openssl dgst -sha256`` (a SHA-256 at the speed of the
            library the audit hashes with: GNU sha256sum may be several times slower).
            Then ``bfa archive audit --sample 3.33`` against sha256sum over the files that
            sample covered.
``bundle``  Ledgers of ``--entries`` generated records (``bench._records``) plus
            ``--vouchers`` bank slips, and of a tenth of both (and of a hundredth, when
            that is still 1,000 records or more). At each size: ``bfa checkpoint``, then
            ``bfa bundle export --period`` of every month the ledger spans (the whole
            ledger): export time against ``cp -r`` of the bundle it wrote; ``bfa bundle
            verify`` time against sha256sum over every file of the bag plus a raw check
            of the same proofs (hash folding per RFC 9162 §2.1.3.2 with hashlib, no
            signature), target ratio >= 0.5; peak RSS of verify and of export, of the
            timed ``python -m cli`` process itself, run under GNU ``time -f %M`` (see
            :func:`bfa_rss`; without /usr/bin/time verify runs again in a child that
            reads its own ``VmHWM``, as bench/_memory.py does, and export's is not
            measured), against an interpreter that only imports what the commands need;
            growth = peak at the smallest size / peak at the largest (flat >= 0.8). A
            size whose export or verify fails is reported as FAILED (exit 1), and the
            run goes on.

Voucher files are PNG-shaped random bytes (PNG signature, random body, IEND trailer)
declared ``image/png``: the 四性 check at ingest identifies them from the bytes, finds
them whole and passes them, reading 8 KiB at the head and 1 KiB at the tail. Random bytes
declared ``application/pdf`` would each fail the check (``unknown_format``): 10,000
failures listed in the batch's ``control.ingest`` entry and, at the reconciliation every
bundle export runs, 10,000 ``VOUCHER_DEFECT`` findings in the bundle — a different
benchmark from the one asked for.

Every ``bfa`` command runs as ``python -m cli`` with this checkout first on
``PYTHONPATH`` (cwd the checkout), so a worktree measures its own code; without GNU time
the memory child runs the same ``cli`` package in-process (``--child``, not for people).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench._report import Result, fmt_count, log, summary

_ROOT = Path(__file__).resolve().parent.parent
PARTS = ("fixity", "bundle")
SPACE = 1 << 32
"""An audit scope is a slice of the first 32 bits of a file's SHA-256 (FORMAT.md §11.1)."""
SAMPLE = "3.33"
TARGET_AUDIT = 0.8
TARGET_VERIFY = 0.5
TARGET_FLAT = 0.8
PNG_HEAD = b"\x89PNG\r\n\x1a\n"
PNG_TAIL = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_POOL = 8 << 20
"""Random bytes voucher bodies are cut from (each file starts with its own number, so no
two are alike)."""
BIG_EVERY = 100
BIG_FACTOR = 20
"""Every 100th fixity file is 20 times the mean size ("some bigger")."""
FINANCE_PREFIXES = ("COL-", "PAY-", "FRF-", "SW-", "RET-")


# --- processes --------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The environment of every child: this checkout first on ``PYTHONPATH``, and no
    ``BFA_*`` setting of the caller's (a home, database or archive elsewhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BFA_")}
    old = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_ROOT) + (os.pathsep + old if old else "")
    return env


class CommandFailed(RuntimeError):
    """A ``bfa`` command of the benchmark exited with an unexpected code."""

    def __init__(self, args: tuple[str | Path, ...], code: int, seconds: float, output: str):
        self.code, self.seconds = code, seconds
        self.reason = output.strip().splitlines()[-1] if output.strip() else "(no output)"
        super().__init__(f"bfa {' '.join(map(str, args[:3]))} exited {code} after "
                         f"{seconds:.1f} s: {output[-1500:]}")


def bfa(*args: str | Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Run ``python -m cli ARGS`` (the ``bfa`` of this checkout); (wall seconds, stdout)."""
    cmd = [sys.executable, "-m", "cli", *map(str, args)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=_ROOT, env=_env(), capture_output=True, text=True,
                          check=False)
    took = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise CommandFailed(args, proc.returncode, took, proc.stderr or proc.stdout)
    return took, proc.stdout


def _wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=_ROOT, env=_env(), capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


SHA256SUM = "sha256sum"
OPENSSL = "openssl dgst -sha256"


def sha256sum_tree(root: Path, tool: str = SHA256SUM) -> float:
    """Seconds of ``find ROOT -type f -print0 | xargs -0 TOOL > /dev/null``."""
    script = f'set -o pipefail; find "$1" -type f -print0 | xargs -0 {tool} > /dev/null'
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script, "_", str(root)], check=True)
    return time.perf_counter() - t0


def sha256sum_files(paths: list[Path]) -> float:
    """Seconds of ``xargs -0 sha256sum > /dev/null`` over ``paths``."""
    t0 = time.perf_counter()
    if paths:
        subprocess.run(["xargs", "-0", "sha256sum"], input=b"\0".join(
            bytes(p) for p in paths), stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under ``root``."""
    files = octets = 0
    for top, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            octets += os.lstat(os.path.join(top, name)).st_size
    return files, octets


# --- memory: a child process reads its own VmHWM -----------------------------------------


def _child(argv: list[str]) -> int:
    """``--child OUT bfa ARGS...``: run ``python -m cli ARGS`` in this process (stdout
    kept); ``--child OUT start``: import what ``bundle verify`` and ``bundle export``
    import, and nothing more (the baseline). Writes ``{"exit", "seconds", "vm_hwm_kib",
    "stdout"}`` to OUT."""
    out, mode, *rest = argv
    t0 = time.perf_counter()
    code = 0
    buf = io.StringIO()
    if mode == "bfa":
        import runpy

        sys.argv = ["bfa", *rest]
        try:
            with contextlib.redirect_stdout(buf):
                runpy.run_module("cli", run_name="__main__", alter_sys=True)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    elif mode == "start":
        exec(START_IMPORTS, {})
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    from bench._child import _vm_hwm_kib

    Path(out).write_text(json.dumps({
        "exit": code, "seconds": time.perf_counter() - t0, "vm_hwm_kib": _vm_hwm_kib(),
        "stdout": buf.getvalue()[-200_000:]}), encoding="utf-8")
    return 0


GNU_TIME = "/usr/bin/time"
START_IMPORTS = ("import cli._bundle_cmds\n"
                 "from archive import FileStore, Scope, export_bundle, verify_bundle\n"
                 "from reconcile import load_rules, today\n")
"""What ``bfa bundle export`` and ``bfa bundle verify`` import (the memory baseline)."""


def _gnu_time() -> bool:
    return os.access(GNU_TIME, os.X_OK)


def bfa_rss(*args: str | Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str, float]:
    """``python -m cli ARGS`` as :func:`bfa`, run under GNU time; (wall seconds, stdout,
    peak RSS in MB). GNU time's ``%M`` is ``ru_maxrss`` of a child *it* forked: the
    small ``time`` process is what the child's high-water mark starts from, not this
    benchmark (which ``ru_maxrss`` of our own children would report after
    ``vfork``/``exec``); it agrees with the child's ``VmHWM`` within 0.5 MB."""
    with tempfile.TemporaryDirectory(prefix="bfa-archive-bench-") as tmp:
        rss = Path(tmp) / "rss"
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss), sys.executable, "-m", "cli",
               *map(str, args)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=_ROOT, env=_env(), capture_output=True, text=True,
                              check=False)
        took = time.perf_counter() - t0
        if proc.returncode not in ok:
            raise CommandFailed(args, proc.returncode, took, proc.stderr or proc.stdout)
        kib = int(rss.read_text("utf-8").split()[-1])
    return took, proc.stdout, kib / 1024


def start_rss() -> float:
    """Peak RSS in MB of an interpreter that only imports what the bundle commands import
    (under GNU time like :func:`bfa_rss`, else in a child reading its own ``VmHWM``)."""
    if not _gnu_time():
        return peak_rss("start")[0]
    with tempfile.TemporaryDirectory(prefix="bfa-archive-bench-") as tmp:
        rss = Path(tmp) / "rss"
        subprocess.run([GNU_TIME, "-f", "%M", "-o", str(rss), sys.executable, "-c",
                        START_IMPORTS], cwd=_ROOT, env=_env(), capture_output=True,
                       check=True)
        return int(rss.read_text("utf-8").split()[-1]) / 1024


def peak_rss(mode: str, *args: str | Path) -> tuple[float, dict[str, Any]]:
    """(peak RSS in MB, the child's report) of ``python -m bench.archive_bench --child``."""
    with tempfile.TemporaryDirectory(prefix="bfa-archive-bench-") as tmp:
        out = Path(tmp) / "child.json"
        proc = subprocess.run(
            [sys.executable, "-m", "bench.archive_bench", "--child", str(out), mode,
             *map(str, args)], cwd=_ROOT, env=_env(), capture_output=True, text=True,
            check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"child {mode} exited {proc.returncode}: {proc.stderr[-1500:]}")
        rep: dict[str, Any] = json.loads(out.read_text("utf-8"))
    if rep["exit"] != 0:
        raise RuntimeError(f"child {mode} {' '.join(map(str, args[:2]))}: bfa exited "
                           f"{rep['exit']}: {rep['stdout'][-1500:]}")
    return rep["vm_hwm_kib"] / 1024, rep


# --- voucher files ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Voucher:
    id: str
    size: int
    occurred_at: str
    ref: str


def write_vouchers(home_dir: Path, name: str, vouchers: list[Voucher], seed: int
                   ) -> tuple[Path, int]:
    """PNG-shaped voucher files under ``home_dir/name/`` and their ``archive.bank_slip``
    records in ``home_dir/name.jsonl``; returns the JSON Lines file and the bytes written
    (a file is never smaller than its frame and one byte of body)."""
    folder = home_dir / name
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    frame = len(PNG_HEAD) + 8 + len(PNG_TAIL)
    largest = max((v.size for v in vouchers), default=0)
    pool = memoryview(os.urandom(max(_POOL, largest + 1)))
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    jsonl = home_dir / f"{name}.jsonl"
    total = 0
    with jsonl.open("w", encoding="utf-8") as out:
        for n, v in enumerate(vouchers):
            body = max(1, v.size - frame)
            total += frame + body
            at = rng.randrange(len(pool) - body)
            data = b"".join((PNG_HEAD, n.to_bytes(8, "big"), pool[at:at + body], PNG_TAIL))
            rel = f"{name}/{v.id}.png"
            with open(home_dir / rel, "wb") as f:
                f.write(data)
            out.write(dumps({
                "type": "archive.bank_slip", "id": v.id, "region": "440100",
                "occurred_at": v.occurred_at, "sha256": hashlib.sha256(data).hexdigest(),
                "media_type": "image/png", "size": len(data), "file": rel, "refs": [v.ref],
                "retention": "30y"}) + "\n")
    return jsonl, total


# --- the raw proof check (the bundle baseline) -------------------------------------------


def fold(leaf_hash: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root an inclusion path implies (RFC 9162 §2.1.3.2); None if it cannot."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf_hash
    sha = hashlib.sha256
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = sha(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def raw_proofs(bag: Path) -> tuple[float, int]:
    """Seconds to fold every ``bfa/proofs/<seq>.tlog-proof`` of ``bag`` with its leaf
    (``data/entries/<seq>.leaf``) into the root ``bfa/bundle.json`` states; proofs checked."""
    t0 = time.perf_counter()
    cp = json.loads((bag / "bfa" / "bundle.json").read_bytes())["checkpoint"]
    size, root = int(cp["size"]), base64.b64decode(cp["root"])
    proofs, leaves = bag / "bfa" / "proofs", bag / "data" / "entries"
    n = 0
    for name in os.listdir(proofs):
        with open(proofs / name, "rb") as f:
            lines = f.read().split(b"\n")
        i = 2 if lines[1].startswith(b"extra ") else 1
        index = int(lines[i][6:])
        i += 1
        path = []
        while lines[i]:
            path.append(base64.b64decode(lines[i]))
            i += 1
        with open(leaves / f"{index}.leaf", "rb") as f:
            leaf = f.read()
        if fold(hashlib.sha256(b"\x00" + leaf).digest(), index, size, path) != root:
            raise RuntimeError(f"raw proof check: {name} does not fold into the root")
        n += 1
    return time.perf_counter() - t0, n


def verify_baseline(bag: Path) -> dict[str, float]:
    """sha256sum over every file of the bag, then the raw proof folding."""
    t_sum = sha256sum_tree(bag)
    t_fold, n = raw_proofs(bag)
    return {"sha256sum_s": t_sum, "fold_s": t_fold, "proofs": n, "total_s": t_sum + t_fold}


# --- part 1: fixity -----------------------------------------------------------------------


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _in_scope(name: str, start: int, length: int) -> bool:
    return (int(name[:8], 16) - start) % SPACE < length


def run_fixity(env: Any, backend: str, args: argparse.Namespace) -> list[Result]:
    n, mean = args.files, int(args.mb_per_file * 1e6)
    h = env.new_ledger(backend, "fixity")
    where = ["--home", h.home, "--db", h.url]
    rng = random.Random(args.seed)
    sizes = [int(mean * rng.uniform(0.9, 1.1)) * (BIG_FACTOR if i % BIG_EVERY == BIG_EVERY - 1
                                                   else 1) for i in range(n)]
    log(f"fixity/{backend}: writing {fmt_count(n)} voucher files, {sum(sizes) / 1e9:.2f} GB")
    t0 = time.perf_counter()
    vouchers = [Voucher(f"FX-{i:07d}", s, "2026-11-20T10:00:00+08:00", f"PAY-{i:09d}")
                for i, s in enumerate(sizes)]
    jsonl, total = write_vouchers(env.workdir, "fixity-in", vouchers, args.seed)
    log(f"fixity/{backend}: written in {time.perf_counter() - t0:.1f} s; bfa ingest")
    t_ingest, _ = bfa("ingest", *where, jsonl)
    log(f"fixity/{backend}: bfa ingest of {fmt_count(n)} vouchers took {t_ingest:.1f} s "
        f"({total / 1e9 / t_ingest:.2f} GB/s)")
    shutil.rmtree(env.workdir / "fixity-in")
    jsonl.unlink()
    store = h.home / "archive"
    files, octets = _tree_size(store / "sha256")
    if (files, octets) != (n, total):
        raise RuntimeError(f"fixity: the store holds {files} files, {octets} bytes; "
                           f"expected {n}, {total}")
    gb = octets / 1e9

    def audit(*extra: str) -> tuple[float, dict[str, Any]]:
        took, out = bfa("archive", "audit", *where, "--json", *extra)
        rep: dict[str, Any] = json.loads(out)
        if rep["problems"]:
            raise RuntimeError(f"fixity: audit found problems: {out[:800]}")
        return took, rep

    log(f"fixity/{backend}: warm-up, one full audit and one sha256sum (untimed)")
    _, rep = audit()
    if (rep["files"], rep["bytes"]) != (n, octets):
        raise RuntimeError(f"fixity: the audit read {rep['files']} files, {rep['bytes']} "
                           "bytes")
    sha256sum_tree(store)
    ssl = shutil.which("openssl") is not None
    ours: list[float] = []
    base: list[float] = []
    base_ssl: list[float] = []
    for k in range(args.repeat):
        base.append(sha256sum_tree(store))
        ours.append(audit()[0])
        if ssl:
            base_ssl.append(sha256sum_tree(store, OPENSSL))
        log(f"fixity/{backend}: run {k + 1}: sha256sum {base[-1]:.2f} s, "
            f"bfa archive audit {ours[-1]:.2f} s"
            + (f", openssl dgst {base_ssl[-1]:.2f} s" if ssl else ""))
    o, b = _median(ours), _median(base)
    t_start = _wall([sys.executable, "-m", "cli", "--version"], 3)
    extra = {"runs_s": ours, "baseline_runs_s": base, "bytes": octets, "gb_per_s": gb / o,
             "baseline_gb_per_s": gb / b, "ingest_s": t_ingest, "bfa_version_s": t_start,
             "openssl_runs_s": base_ssl}
    out = [Result(
        "audit", backend, n, "files", "s", o, b, "sha256sum", b / o, "ratio>=", TARGET_AUDIT,
        f"{gb:.2f} GB, {gb / o:.2f} GB/s; sha256sum {gb / b:.2f} GB/s", extra)]
    if ssl:
        b = _median(base_ssl)
        out.append(Result(
            "audit vs openssl", backend, n, "files", "s", o, b, "openssl dgst", b / o,
            note=f"{gb / o:.2f} GB/s; openssl dgst -sha256 {gb / b:.2f} GB/s", extra=extra))
    ours, base, covered = [], [], []
    names = sorted(p.name for p in (store / "sha256").glob("*/*"))
    for k in range(args.repeat):
        took, rep = audit("--sample", SAMPLE)
        start, length = rep["scope"]["start"], rep["scope"]["length"]
        paths = [store / "sha256" / x[:2] / x for x in names if _in_scope(x, start, length)]
        if len(paths) != rep["files"]:
            raise RuntimeError(f"fixity: sample {k + 1} read {rep['files']} files, "
                               f"{len(paths)} lie in its scope")
        ours.append(took)
        base.append(sha256sum_files(paths))
        covered.append((rep["files"], rep["bytes"]))
        log(f"fixity/{backend}: sample {k + 1}: {rep['files']} files from "
            f"{start:08x}: audit {took:.2f} s, sha256sum {base[-1]:.3f} s")
    o, b = _median(ours), _median(base)
    mid = sorted(covered)[len(covered) // 2]
    out.append(Result(
        f"audit --sample {SAMPLE}", backend, mid[0], "files", "s", o, b, "sha256sum", b / o,
        note=f"{mid[1] / 1e6:.0f} MB; bfa --version alone {t_start:.2f} s",
        extra={"runs_s": ours, "baseline_runs_s": base, "covered": covered,
               "bfa_version_s": t_start}))
    if not args.keep:
        env.drop(h)
        env.handles.remove(h)
    return out


# --- part 2: bundles ----------------------------------------------------------------------


@dataclass
class Point:
    """One bundle size: its ledger's make-up and what was measured on it."""

    label: str
    records: int
    vouchers: int
    entries: int = 0
    """Entries in the bundle (planned: records kept plus vouchers, until the export says)."""
    ledger_entries: int = 0
    bag_files: int = 0
    bag_bytes: int = 0
    failed: str = ""
    """Why the export or verify failed (empty: it did not)."""
    figures: dict[str, Any] = field(default_factory=dict)


def _vouchers_for(records: Path, count: int, size: int, seed: int) -> list[Voucher]:
    """``count`` bank slips, each naming one finance movement (any record when there are
    too few), occurring when it did."""
    finance: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    with records.open("rb") as f:
        for raw in f:
            rec = json.loads(raw)
            pair = (str(rec["id"]), str(rec["occurred_at"]))
            (finance if pair[0].startswith(FINANCE_PREFIXES) else other).append(pair)
    rng = random.Random(seed)
    pool = finance if len(finance) >= count else finance + other
    picked = rng.sample(pool, count) if len(pool) >= count else \
        [rng.choice(pool) for _ in range(count)]
    return [Voucher(f"BS-{i:07d}", size, at, rid) for i, (rid, at) in enumerate(picked)]


def _close_links(path: Path) -> int:
    """Make every link of the generated records name a record before it, in place; return
    how many records changed. ``bench._records`` lets a return name the payment ``PAY-<its
    number - 1>`` (and, with no paid event at hand, the event ``BP-<number - 1>``), which
    is often no record at all; a bundle of such a ledger fails its own closure check. Such
    a link is pointed at the latest payment (event) before it instead; a return with none
    before it is dropped."""
    seen: set[str] = set()
    last: dict[str, str] = {}
    changed = 0
    tmp = path.with_name(path.name + ".tmp")
    with path.open("rb") as f, tmp.open("wb") as out:
        for raw in f:
            rec = json.loads(raw)
            before = json.dumps(rec, sort_keys=True)
            if rec.get("returns") and rec["returns"] not in seen:
                if "PAY-" not in last:
                    changed += 1
                    continue
                rec["returns"] = last["PAY-"]
            for a in rec.get("allocations") or ():
                if a["event"] not in seen and "BP-" in last:
                    a["event"] = last["BP-"]
            if json.dumps(rec, sort_keys=True) != before:
                changed += 1
                raw = json.dumps(rec, ensure_ascii=False).encode() + b"\n"
            out.write(raw)
            rid = str(rec["id"])
            seen.add(rid)
            last[rid.split("-", 1)[0] + "-"] = rid
    tmp.replace(path)
    return changed


def _months(records: Path) -> tuple[list[str], int]:
    """The months the records occurred in, and how many records there are."""
    months: set[str] = set()
    n = 0
    with records.open("rb") as f:
        for raw in f:
            months.add(json.loads(raw)["occurred_at"][:7])
            n += 1
    return sorted(months), n


def run_point(env: Any, backend: str, p: Point, args: argparse.Namespace) -> None:
    """Build the ledger of one size, export it whole, time the export and the verify
    against their baselines, and take verify's peak RSS. A failing export or verify is
    noted in ``p.failed`` (the run goes on with the next size)."""
    from bench._records import write_records

    h = env.new_ledger(backend, p.label)
    where = ["--home", h.home, "--db", h.url]
    key = h.home / "keys" / "verifier.key"
    what = f"bundle/{backend} {p.label}"
    log(f"{what}: {fmt_count(p.records)} records, {fmt_count(p.vouchers)} vouchers")
    rf = write_records(env.workdir / f"records-{p.label}.jsonl", p.records, seed=args.seed)
    relinked = _close_links(rf.path)
    vouchers = _vouchers_for(rf.path, p.vouchers, args.voucher_kb * 1024, args.seed)
    vjsonl, _ = write_vouchers(env.workdir, f"vouchers-{p.label}", vouchers, args.seed)
    t_ingest, _ = bfa("ingest", *where, rf.path, vjsonl)
    t_cp, _ = bfa("checkpoint", *where)
    months, kept = _months(rf.path)
    p.entries = kept + p.vouchers
    log(f"{what}: {relinked} generated records relinked or dropped (links to no record); "
        f"bfa ingest {t_ingest:.1f} s, bfa checkpoint {t_cp:.1f} s (set-up)")
    shutil.rmtree(env.workdir / f"vouchers-{p.label}")
    vjsonl.unlink()
    rf.path.unlink()
    periods = [a for m in months for a in ("--period", m)]
    bag = env.workdir / f"bundle-{p.label}"
    try:
        _measure_point(p, what, where, key, bag, periods, env.workdir)
    except CommandFailed as e:
        p.failed = f"{e.reason} (exit {e.code} after {e.seconds:.0f} s)"
        p.figures["failed_output"] = str(e)
        p.figures["failed_s"] = e.seconds
        log(f"{what}: FAILED: {p.failed}")
    if not args.keep:
        shutil.rmtree(bag, ignore_errors=True)
        env.drop(h)
        env.handles.remove(h)


def _measure_point(p: Point, what: str, where: list[str | Path], key: Path, bag: Path,
                   periods: list[str], workdir: Path) -> None:
    export = ("bundle", "export", *where, "--out", bag, *periods, "--json")
    if _gnu_time():
        took, out, p.figures["export_mb"] = bfa_rss(*export)
    else:  # the export's memory is then not measured (it would need a second export)
        took, out = bfa(*export)
    made = json.loads(out)
    p.entries, p.ledger_entries = int(made["entries"]), int(made["checkpoint_size"])
    p.bag_files, p.bag_bytes = _tree_size(bag)
    log(f"{what}: bfa bundle export {took:.1f} s: {fmt_count(p.entries)} entries "
        f"({made['scoped']} in scope), {made['vouchers']} vouchers, {made['breaks']} "
        f"findings; {fmt_count(p.bag_files)} files, {p.bag_bytes / 1e6:.0f} MB")
    copy = workdir / f"{bag.name}-copy"
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(bag), str(copy)], check=True)
    t_copy = time.perf_counter() - t0
    shutil.rmtree(copy)
    p.figures["export"] = {"ours_s": took, "cp_s": t_copy, "made": made}

    verify = ("bundle", "verify", bag, "--key", key, "--json")
    before = verify_baseline(bag)
    if _gnu_time():
        took, out, p.figures["verify_mb"] = bfa_rss(*verify, ok=(0, 3))
    else:
        took, out = bfa(*verify, ok=(0, 3))  # 3: a check failed (named below)
    after = verify_baseline(bag)
    rep = json.loads(out)
    if not rep["ok"]:
        bad = next(v for v in rep["verdicts"] if v["ok"] is False)
        raise CommandFailed(("bundle", "verify", bag), 3, took,
                            f"{bad['check']}: {bad['detail']} [{bad['file']}]")
    best = min((before, after), key=lambda r: r["total_s"])
    log(f"{what}: bfa bundle verify {took:.1f} s; baseline sha256sum {best['sha256sum_s']:.2f}"
        f" s + raw proofs {best['fold_s']:.2f} s ({fmt_count(int(best['proofs']))} proofs)")
    p.figures["verify"] = {"ours_s": took, "baseline": best, "baseline_runs": [before, after],
                           "verdicts": [f"{v['check']}: {v['detail']}"
                                        for v in rep["verdicts"]]}
    if "verify_mb" not in p.figures:  # no GNU time: a second verify, in a child
        p.figures["verify_mb"], _ = peak_rss("bfa", *verify)
    log(f"{what}: peak RSS of verify {p.figures['verify_mb']:.0f} MB"
        + (f", of export {p.figures['export_mb']:.0f} MB" if "export_mb" in p.figures else ""))


def run_bundle(env: Any, backend: str, args: argparse.Namespace) -> list[Result]:
    sizes = [("small", 10), ("large", 1)]
    if args.entries // 100 >= 1000:  # a third, cheap size: a growth figure even when the
        sizes.insert(0, ("tiny", 100))  # largest bundle cannot be exported or verified
    points = [Point(label, max(10, args.entries // d), max(1, args.vouchers // d))
              for label, d in sizes]
    for p in points:
        run_point(env, backend, p, args)
    base_mb = start_rss()
    log(f"bundle/{backend}: baseline (imports only) peak RSS {base_mb:.0f} MB")
    out: list[Result] = []
    for p in points:
        if "export" not in p.figures:
            out.append(Result(
                "bundle-export", backend, p.entries, "entries", "s", p.figures["failed_s"],
                0.0, "none",
                0.0, note=f"FAILED: {p.failed}", extra={"failed": p.failed,
                                                          "output": p.figures["failed_output"]}))
            continue
        ex = p.figures["export"]
        out.append(Result(
            "bundle-export", backend, p.entries, "entries", "s", ex["ours_s"], ex["cp_s"],
            "cp -r", ex["cp_s"] / ex["ours_s"],
            note=f"{fmt_count(p.bag_files)} files, {p.bag_bytes / 1e6:.0f} MB",
            extra={"records": p.records, "vouchers": p.vouchers, "bag_files": p.bag_files,
                   "bag_bytes": p.bag_bytes, "ledger_entries": p.ledger_entries,
                   "export": ex["made"]}))
    done = [p for p in points if "verify" in p.figures]
    for p in points:
        if "export" in p.figures and "verify" not in p.figures:
            out.append(Result("bundle-verify", backend, p.entries, "entries", "s",
                              p.figures["failed_s"], 0.0, "none", 0.0,
                              note=f"FAILED: {p.failed}", extra={"failed": p.failed}))
    for p in done:
        v = p.figures["verify"]
        b = v["baseline"]["total_s"]
        out.append(Result(
            "bundle-verify", backend, p.entries, "entries", "s", v["ours_s"], b,
            "sha256sum+fold", b / v["ours_s"], "ratio>=", TARGET_VERIFY,
            f"baseline = sha256sum {v['baseline']['sha256sum_s']:.2f} s + proofs "
            f"{v['baseline']['fold_s']:.2f} s",
            {"baseline": v["baseline"], "baseline_runs": v["baseline_runs"],
             "verdicts": v["verdicts"], "bag_files": p.bag_files, "bag_bytes": p.bag_bytes}))
    for name, key in (("bundle-verify-memory", "verify_mb"),
                      ("bundle-export-memory", "export_mb")):
        measured = [p for p in done if key in p.figures]
        for p in measured:
            out.append(Result(name, backend, p.entries, "entries", "MB", p.figures[key],
                              base_mb, "imports only", base_mb / p.figures[key],
                              extra={"start_only_mb": base_mb}))
        if len(measured) >= 2:
            lo, hi = measured[0], measured[-1]
            out.append(Result(
                f"{name}-growth", backend, hi.entries, "entries", "MB", hi.figures[key],
                lo.figures[key], f"at {fmt_count(lo.entries)}",
                lo.figures[key] / hi.figures[key], "ratio>=", TARGET_FLAT,
                extra={"small_entries": lo.entries, "small_mb": lo.figures[key],
                       "large_mb": hi.figures[key]}))
    return out


# --- main ---------------------------------------------------------------------------------


def _count(text: str) -> int:
    n = int(text.replace("_", "").replace(",", ""))
    if n < 1:
        raise argparse.ArgumentTypeError("need at least 1")
    return n


def _parts(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in PARTS:
            raise argparse.ArgumentTypeError(f"unknown part {name!r} (choose from "
                                             f"{', '.join(PARTS)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.archive_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=_count, default=10_000, metavar="N",
                   help="fixity: voucher files in the store (default 10,000)")
    p.add_argument("--mb-per-file", type=float, default=0.1, metavar="X",
                   help="fixity: mean file size in MB (10^6 bytes; default 0.1; every "
                        f"{BIG_EVERY}th file is {BIG_FACTOR} times that)")
    p.add_argument("--entries", type=_count, default=100_000, metavar="N",
                   help="bundle: generated records of the large ledger (default 100,000; "
                        "the small one has a tenth)")
    p.add_argument("--vouchers", type=_count, metavar="N",
                   help="bundle: vouchers of the large ledger (default entries / 10)")
    p.add_argument("--voucher-kb", type=_count, default=8, metavar="K",
                   help="bundle: size of each voucher file in KiB (default 8)")
    p.add_argument("--only", type=_parts, action="extend", metavar="PART",
                   help=f"run only these parts: {', '.join(PARTS)}")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--repeat", type=_count, default=3, metavar="N",
                   help="fixity: timed runs of each side; medians (default 3)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="where ledgers, files and bundles go (default: a new temporary "
                        "directory, removed at the end)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory and the databases (for debugging)")
    p.add_argument("--seed", type=int, default=20261207)
    args = p.parse_args(argv)
    if args.vouchers is None:
        args.vouchers = max(1, args.entries // 10)
    return args


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    args = parse_args(argv)
    from bench._env import DEFAULT_PG_URL, Env, PgServer, new_run_id
    from bench.run import _git_commit

    parts: list[str] = args.only or list(PARTS)
    signal.signal(signal.SIGTERM, _on_sigterm)
    run_id = new_run_id()
    pg: PgServer | None = None
    pg_version = None
    if args.backend == "postgresql":
        pg = PgServer(os.environ.get("BFA_BENCH_DATABASE_URL") or DEFAULT_PG_URL, run_id)
        try:
            pg_version = pg.check()
        except Exception as e:
            print(f"bench: cannot reach PostgreSQL at {pg.admin_url}: {e}\n"
                  "  set BFA_BENCH_DATABASE_URL or pass --backend sqlite", file=sys.stderr)
            return 2
    made_workdir = args.workdir is None
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix=f"bfa-archive-{run_id}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = Env(0, workdir, pg, seed=args.seed)
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"), "parts": parts,
        "backend": args.backend, "files": args.files, "mb_per_file": args.mb_per_file,
        "entries": args.entries, "vouchers": args.vouchers, "voucher_kb": args.voucher_kb,
        "repeat": args.repeat, "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "postgresql": pg_version,
        "sqlite": sqlite3.sqlite_version, "commit": _git_commit(),
        "loadavg_start": os.getloadavg(), "workdir": str(workdir), "run_id": run_id,
    }
    log(f"run {run_id}: {', '.join(parts)} on {args.backend}, work dir {workdir}, "
        f"load {os.getloadavg()[0]:.2f}")
    results: list[Result] = []
    t_start = time.monotonic()
    try:
        for part, step in (("fixity", run_fixity), ("bundle", run_bundle)):
            if part in parts:
                for r in step(env, args.backend, args):
                    results.append(r)
                    print(r.line(), flush=True)
    finally:
        if not args.keep:
            env.cleanup()
            if made_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} and databases {pg.created if pg else []}")
    meta["seconds"] = time.monotonic() - t_start
    meta["loadavg_end"] = os.getloadavg()
    print()
    print(f"summary: {len(results)} results, {meta['seconds']:.0f} s, load "
          f"{meta['loadavg_start'][0]:.2f} -> {meta['loadavg_end'][0]:.2f} "
          "(ratio = baseline / ours; higher is better)")
    print(summary(results))
    if args.json:
        doc = {"meta": meta, "results": [r.to_json() for r in results]}
        args.json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
        log(f"wrote {args.json}")
    failed = [r for r in results if r.note.startswith("FAILED")]
    for r in failed:
        print(f"FAILED {r.title} at {fmt_count(r.size)} {r.size_label}: {r.note[8:]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
