"""Proof bundles (FORMAT.md §12): ``bfa bundle export``, ``bfa bundle verify`` and
``bfa proof verify`` (§7.1), black-box through the CLI on both backends.

One ledger per backend (module-scoped, built and exported once) holds a settled
assessment with its collection and vouchers, an unsettled one whose break was assigned and
resolved, and two benefit payments of two persons; its bundles cover every scope kind. Each
bundle must verify and validate with the Library of Congress ``bagit`` package, and Go's
``sumdb`` code must accept the bundled tlog-proofs from the verifier key alone. Tampered
copies (``shutil.copytree``; on the first backend only, the verifier is offline) must fail
with exit 3, naming the check, the file and the entry: left with stale manifests, with
re-hashed manifests, and re-signed by an attacker's own exporter key (the signature then
passes unless ``--exporter-key`` pins the agency's). The review that wrote these found
five bugs, now fixed, whose tests are at the end: the closure read allocations by the
wrong member name, genuine bundles failed re-derivation (heuristic matches, vouchers of
the settling movement, a voucher over two events, an approval outside the bundle),
malformed files gave exit 2 instead of a failed check, a disclosure's record was not
compared with its entry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bagit
import psycopg
import pytest
from click.testing import Result
from sqlalchemy.engine import make_url

from ledger import Signer, sign_note
from tests._cli import h, invoke, jok, ok
from tests._identity import install
from tests.conftest import BACKENDS, _admin_dsn
from tests.interop import test_go_tools as gotools
from tests.reconcile._blackbox import R, assessment, collection, voucher, write_jsonl

AS_OF = "2026-11-30"
ORIGIN = "bundles.example/ledger"
OTHER_ORIGIN = "other.example/ledger"
NOV = "2026-11-20T09:00:00+08:00"
OCT = "2026-10-05T09:00:00+08:00"
P1, P2, P3 = "110101199001011234", "110101199202022222", "110101198803033333"
ACC1, ACC2 = "6222020200112233445", "6222020200556677889"
CHECKS = ["bag", "signature", "checkpoint", "entries", "vouchers", "disclosures", "closure",
          "consistency", "findings"]
PURPOSE = "payee complaint 4411"
Rec = dict[str, Any]


# ----------------------------------------------------------------------------- records


def _benefit(i: str, person: str, account: str, at: str = NOV,
             period: str = "2026-11") -> Rec:
    return {"type": "business.benefit_payment", "id": i, "region": R, "occurred_at": at,
            "person_id": person, "insurance": "pension", "period": period,
            "amount": "100.00", "account": account}


def _approval(i: str, person: str, start: str, account: str) -> Rec:
    return {"type": "business.benefit_approval", "id": i, "region": R,
            "occurred_at": "2026-01-05T09:00:00+08:00", "person_id": person,
            "insurance": "pension", "benefit": "basic_pension", "monthly_amount": "100.00",
            "start_period": start, "account": account}


def _payment(i: str, event: str, at: str = NOV, value_date: str = "2026-11-21") -> Rec:
    return {"type": "finance.payment", "id": i, "region": R, "occurred_at": at,
            "amount": "100.00", "value_date": value_date, "bank_ref": "B-" + i,
            "allocations": [{"event": event, "amount": "100.00"}]}


def _voucher(d: Path, kind: str, i: str, refs: list[str], at: str = NOV,
             amount: str | None = None) -> Rec:
    return {**voucher(d, kind, i, refs, amount), "occurred_at": at}


# ----------------------------------------------------------------------------- ledgers


def _new_database(request: pytest.FixtureRequest, backend: str, root: Path
                  ) -> tuple[str, Callable[[], None]]:
    """A fresh database on ``backend`` for a module-scoped ledger, and how to drop it."""
    if backend == "sqlite":
        return f"sqlite:///{root / 'ledger.db'}", lambda: None
    admin = _admin_dsn(request.getfixturevalue("pg_server"))
    name = f"bfa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "bfa_rules_{name}"')  # revision 0019's

    return make_url(admin).set(database=name).render_as_string(hide_password=False), drop


def _ledger(root: Path, db: str, origin: str) -> tuple[Path, Path]:
    """An initialised home and the verifier key file ``bfa key export`` printed."""
    home = root / "home"
    ok("init", *h(home, db), "--origin", origin)
    key = root / "verifier.key"
    key.write_text(ok("key", "export", *h(home, db)).stdout, "utf-8")
    return home, key


def _first_batch(d: Path) -> list[Rec]:
    return [assessment("CA-1"), collection("COL-1", allocs=[("CA-1", "1000.00")]),
            voucher(d, "fiscal_receipt", "FR-1", ["CA-1"]),
            voucher(d, "accounting_voucher", "AV-1", ["COL-1"]),
            assessment("CA-2", amount="500.00")]


def _export(home: Path, db: str, out: Path, *args: str, code: int = 0) -> Result:
    return ok("bundle", "export", *h(home, db), "--out", str(out), "--as-of", AS_OF, *args,
              code=code)


def _breaks(home: Path, db: str) -> list[dict[str, Any]]:
    return list(jok("reconcile", *h(home, db), "--as-of", AS_OF, code=(0, 1))["breaks"])


@dataclass
class Shop:
    """The shared ledger of one backend and the bundles exported from it."""

    root: Path
    home: Path
    db: str
    key: Path
    old_note: Path
    unsettled: str
    """The UNSETTLED_EVENT break of CA-2 (assigned to bob, resolved by bob)."""
    missing: str
    """The MISSING_VOUCHER break of CA-2 (open, never worked)."""
    bundles: dict[str, Path] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    """Record id -> seq, as the bundles list them."""
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def report(self, name: str) -> dict[str, Any]:
        """``bfa bundle verify --json`` of bundle ``name``, which must pass (run once)."""
        if name not in self.reports:
            self.reports[name] = assert_verified(self.bundles[name], self.key, text=False)
        return self.reports[name]


BUNDLES: dict[str, Callable[[Shop], list[str]]] = {
    "record": lambda s: ["--record", "CA-1"],
    "collection": lambda s: ["--record", "COL-1"],
    "voucher": lambda s: ["--record", "FR-1"],
    "break": lambda s: ["--break", s.unsettled],
    "period": lambda s: ["--period", "2026-11"],
    "person": lambda s: ["--person", P1, "--since", str(s.old_note)],
    "combined": lambda s: ["--record", "CA-1", "--period", "2026-11", "--person", P2,
                           "--break", s.unsettled],
    "disclose": lambda s: ["--person", P1, "--disclose", "person_id", "--disclose", "account",
                           "--purpose", PURPOSE],
}


@pytest.fixture(scope="module", params=BACKENDS)
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp(f"shop-{request.param}")
    db, drop = _new_database(request, request.param, root)
    try:
        with pytest.MonkeyPatch.context() as mp:
            install(mp)  # alice assigns, bob resolves: labels stand for identities
            built = _build_shop(root, db)
        yield built
    finally:
        drop()


def _build_shop(root: Path, db: str) -> Shop:
    home, key = _ledger(root, db, ORIGIN)
    d = root / "in"
    d.mkdir()
    ok("ingest", str(write_jsonl(d / "a.jsonl", _first_batch(d))), *h(home, db))
    old = root / "old.note"
    ok("checkpoint", *h(home, db), "--out", str(old))
    ok("ingest", str(write_jsonl(d / "b.jsonl", [
        _benefit("BP-1", P1, ACC1), _benefit("BP-2", P2, ACC2), _payment("PAY-1", "BP-1"),
        _voucher(d, "bank_slip", "BS-1", ["BP-1"]),
        _voucher(d, "accounting_voucher", "AV-2", ["PAY-1"])])), *h(home, db))
    by_code = {b["code"]: b["id"] for b in _breaks(home, db) if b["records"] == ["CA-2"]}
    shop = Shop(root, home, db, key, old, by_code["UNSETTLED_EVENT"], by_code["MISSING_VOUCHER"])
    ok("breaks", "assign", shop.unsettled, "bob", *h(home, db), user="alice")
    ok("breaks", "resolve", shop.unsettled, "--reason", "timing", "--note",
       "paid in December", *h(home, db), user="bob")
    ok("checkpoint", *h(home, db))
    for name, args in BUNDLES.items():
        shop.bundles[name] = root / "bundles" / name
        _export(home, db, shop.bundles[name], *args(shop))
    for b in shop.bundles.values():
        for line in _lines(b / "bfa/entries.jsonl"):
            shop.seq[line["id"]] = line["seq"]
    return shop


@dataclass
class Other:
    """Another ledger (its own keys), with the same first records: a source of foreign
    checkpoints, keys and entries."""

    home: Path
    db: str
    key: Path
    note: Path
    bundle: Path


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Other:
    root = tmp_path_factory.mktemp("other")
    db = f"sqlite:///{root / 'ledger.db'}"
    home, key = _ledger(root, db, OTHER_ORIGIN)
    d = root / "in"
    d.mkdir()
    ok("ingest", str(write_jsonl(d / "a.jsonl", _first_batch(d))), *h(home, db))
    note = root / "other.note"
    ok("checkpoint", *h(home, db), "--out", str(note))
    _export(home, db, root / "bundle", "--record", "CA-1")
    return Other(home, db, key, note, root / "bundle")


# ----------------------------------------------------------------------------- helpers


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines()]


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(x, ensure_ascii=False, sort_keys=True,
                                       separators=(",", ":")) + "\n" for x in lines), "utf-8")


def _json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                    "utf-8")


def _roles(bag: Path) -> dict[str, str]:
    return {x["id"]: x["role"] for x in _lines(bag / "bfa/entries.jsonl")}


def _leaf_record(bag: Path, seq: int) -> dict[str, Any]:
    """The record of ``data/entries/<seq>.leaf``: §2.1, a JCS body after 41 bytes."""
    leaf = (bag / f"data/entries/{seq}.leaf").read_bytes()
    assert leaf[0] == 1 and int.from_bytes(leaf[1:9], "big") == seq
    return dict(json.loads(leaf[41:])["record"])


def _note_size(text: str) -> int:
    return int(text.split("\n")[1])


def verify(bag: Path, key: Path, *extra: str, text: bool = True
           ) -> tuple[Result, dict[str, Any]]:
    """``bfa bundle verify --json`` and, with ``text``, the human output too (the last
    result returned); each full verification costs about a second (a scratch ledger)."""
    js = invoke("bundle", "verify", str(bag), "--key", str(key), *extra, "--json")
    runs = [js]
    if text:
        runs.append(invoke("bundle", "verify", str(bag), "--key", str(key), *extra))
    for res in runs:
        assert "Traceback" not in res.output and "internal error" not in res.output, res.output
        assert res.exit_code in (0, 3), (res.exit_code, res.output)
        assert res.exit_code == js.exit_code, (res.output, js.output)
    return runs[-1], json.loads(js.stdout)


def assert_verified(bag: Path, key: Path, *extra: str, text: bool = True) -> dict[str, Any]:
    res, report = verify(bag, key, *extra, text=text)
    assert res.exit_code == 0, res.output
    assert report["ok"] is True, report
    assert [v["check"] for v in report["verdicts"]] == CHECKS
    bad = [v for v in report["verdicts"] if v["ok"] is False]
    assert not bad, bad
    if text:
        assert res.stdout.rstrip().endswith("VERIFIED")
    return report


def reseal(bag: Path, signer: Signer | None = None) -> None:
    """What a forger does after an edit: re-hash the payload manifests, ``Payload-Oxum`` and
    the tag manifests; with ``signer``, put its verifier key into ``bfa/exporter.key``
    first and sign the new ``tagmanifest-sha256.txt`` into ``bundle.sig``."""
    if signer is not None:
        (bag / "bfa/exporter.key").write_text(signer.verifier().to_text() + "\n", "utf-8")

    def rel(p: Path) -> str:
        return p.relative_to(bag).as_posix()

    def manifest(files: list[Path], alg: str) -> str:
        return "".join(f"{hashlib.new(alg, p.read_bytes()).hexdigest()}  {rel(p)}\n"
                       for p in files)

    payload = sorted((p for p in (bag / "data").rglob("*") if p.is_file()), key=rel)
    for alg in ("sha256", "sha512"):
        (bag / f"manifest-{alg}.txt").write_text(manifest(payload, alg), "utf-8")
    oxum = f"{sum(p.stat().st_size for p in payload)}.{len(payload)}"
    info = bag / "bag-info.txt"
    info.write_text(re.sub(r"(?m)^Payload-Oxum: .*$", f"Payload-Oxum: {oxum}",
                           info.read_text("utf-8")), "utf-8")
    tags = sorted((p for p in bag.rglob("*") if p.is_file() and rel(p).split("/")[0] != "data"
                   and not p.name.startswith("tagmanifest-") and rel(p) != "bundle.sig"),
                  key=rel)
    for alg in ("sha256", "sha512"):
        (bag / f"tagmanifest-{alg}.txt").write_text(manifest(tags, alg), "utf-8")
    if signer is not None:
        (bag / "bundle.sig").write_text(sign_note(signed_text(bag), signer), "utf-8")


def signed_text(bag: Path) -> str:
    """What an exporter signs (FORMAT §12.4): format, bundle id, the tag manifests' digests."""
    lines = ["bfa-bundle/1", json.loads((bag / "bfa/bundle.json").read_text("utf-8"))["id"]]
    for alg in ("sha256", "sha512"):
        raw = (bag / f"tagmanifest-{alg}.txt").read_bytes()
        lines.append(f"tagmanifest-{alg}.txt {alg} {hashlib.new(alg, raw).hexdigest()}")
    return "".join(line + "\n" for line in lines)


@pytest.fixture(scope="module")
def mallory() -> Signer:
    """The forger's own exporter key."""
    return Signer.generate("attacker.example/exporter/mallory")


def assert_fails(bag: Path, key: Path, check: str, file: str | None, entry: int | None,
                 *extra: str, says: str = "", text: bool = True) -> dict[str, Any]:
    """Exit 3; the first failing verdict is ``check`` naming ``file`` and ``entry`` (in the
    human output too, with ``text``); checks after a failure of the first four are not
    run."""
    res, report = verify(bag, key, *extra, text=text)
    assert res.exit_code == 3, res.output
    assert report["ok"] is False
    assert [v["check"] for v in report["verdicts"]] == CHECKS
    failed = [v for v in report["verdicts"] if v["ok"] is False]
    assert failed, report
    first = failed[0]
    assert (first["check"], first["file"], first["entry"]) == (check, file, entry), first
    assert says in first["detail"], first
    before = report["verdicts"][:CHECKS.index(check)]
    assert all(v["ok"] is not False for v in before)
    if check in CHECKS[:4]:
        assert all(v["ok"] is None for v in report["verdicts"][CHECKS.index(check) + 1:])
    if text:
        line = next(x for x in res.stdout.splitlines() if x.startswith("FAIL"))
        assert check in line and (file is None or f"[{file}" in line), line
        assert entry is None or f"entry {entry}]" in line, line
        assert res.stdout.rstrip().endswith("INTEGRITY FAILURE")
    return report


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- 1, 2: export


# FORMAT §12.2: a first hop (what the scope names, what names it), then the vouchers
# naming what the first hop added (AV-1 names COL-1, AV-2 names PAY-1)
EXPECTED_ROLES: dict[str, dict[str, str]] = {
    "record": {"CA-1": "scope", "COL-1": "closure", "FR-1": "closure", "AV-1": "closure"},
    "voucher": {"FR-1": "scope", "CA-1": "closure"},
    "break": {"CA-2": "scope"},
    "period": {i: "scope" for i in ("BP-1", "BP-2", "PAY-1", "BS-1", "AV-2")},
    "person": {"BP-1": "scope", "PAY-1": "closure", "BS-1": "closure", "AV-2": "closure"},
    "combined": {"CA-1": "scope", "COL-1": "closure", "FR-1": "closure", "AV-1": "closure",
                 "CA-2": "scope",
                 **{i: "scope" for i in ("BP-1", "BP-2", "PAY-1", "BS-1", "AV-2")}},
    "disclose": {"BP-1": "scope", "PAY-1": "closure", "BS-1": "closure", "AV-2": "closure"},
}


@pytest.mark.parametrize("name", list(BUNDLES))
def test_bundle_of_each_scope_verifies(shop: Shop, name: str) -> None:
    bag = shop.bundles[name]
    lines = _lines(bag / "bfa/entries.jsonl")
    records = {x["id"]: x["role"] for x in lines if x["domain"] != "control"}
    if name in EXPECTED_ROLES:  # "collection": see the closure tests below
        assert records == EXPECTED_ROLES[name]
    history = [x for x in lines if x["domain"] == "control"]
    assert {x["role"] for x in history} <= {"history"}
    assert bool(history) == (name in ("break", "combined"))
    assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines)
    assert all(set(x) == {"domain", "hash", "id", "kind", "role", "seq"} for x in lines)

    # layout (§12.1): one leaf and one proof per entry, each proof against checkpoint.note
    note = (bag / "bfa/checkpoint.note").read_text("utf-8")
    assert sorted(p.name for p in (bag / "data/entries").iterdir()) == sorted(
        f"{x['seq']}.leaf" for x in lines)
    assert sorted(p.name for p in (bag / "bfa/proofs").iterdir()) == sorted(
        f"{x['seq']}.tlog-proof" for x in lines)
    for x in lines:
        leaf = (bag / f"data/entries/{x['seq']}.leaf").read_bytes()
        assert hashlib.sha256(b"\x00" + leaf).hexdigest() == x["hash"]
        proof = (bag / f"bfa/proofs/{x['seq']}.tlog-proof").read_text("utf-8")
        head, _, tail = proof.partition("\n\n")
        assert tail == note
        assert head.split("\n")[:3] == ["c2sp.org/tlog-proof@v1",
                                         "extra " + base64.b64encode(leaf).decode(),
                                         f"index {x['seq']}"]
    assert (bag / "bagit.txt").read_text("utf-8") == (
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    assert (bag / "bfa/verifier.key").read_text("utf-8") == shop.key.read_text("utf-8")
    assert (bag / "index.html").is_file() and not (bag / "fetch.txt").exists()
    for m in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        paths = [ln.split("  ", 1)[1] for ln in (bag / m).read_text("utf-8").splitlines()]
        assert paths == sorted(paths) and "bundle.sig" not in paths

    # vouchers: every archive entry's file, named by its hash, listed in vouchers.jsonl
    archive = {x["id"]: _leaf_record(bag, x["seq"]) for x in lines if x["domain"] == "archive"}
    files = {p.name for p in (bag / "data/vouchers").iterdir()} if archive else set()
    assert files == {r["sha256"] for r in archive.values()}
    for r in archive.values():
        assert hashlib.sha256((bag / "data/vouchers" / r["sha256"]).read_bytes()).hexdigest() \
            == r["sha256"]
    assert _lines(bag / "bfa/vouchers.jsonl") == [
        {"records": [i for i, r in archive.items() if r["sha256"] == sha], "sha256": sha,
         "size": next(r["size"] for r in archive.values() if r["sha256"] == sha)}
        for sha in sorted(files)]

    # claims (§12.3)
    claims = _json(bag / "bfa/bundle.json")
    assert set(claims) == {"format", "id", "origin", "created_at", "exporter", "scope",
                           "checkpoint", "counts", "since", "disclosure"}
    assert claims["format"] == "bfa-bundle/1" and claims["origin"] == ORIGIN
    assert uuid.UUID(claims["id"]).version == 4
    assert claims["exporter"]["key"].startswith(f"{ORIGIN}/exporter/")
    assert claims["exporter"]["user"] == "alice"
    exporter_key = (bag / "bfa/exporter.key").read_text("utf-8")
    assert exporter_key.startswith(claims["exporter"]["key"] + "+")
    assert claims["checkpoint"] == {"size": _note_size(note), "root": note.split("\n")[2]}
    findings = _json(bag / "bfa/findings.json")
    assert claims["counts"] == {
        "entries": len(lines), "scoped": sum(x["role"] == "scope" for x in lines),
        "vouchers": len(files), "breaks": len(findings["breaks"]),
        "disclosed": len(_lines(bag / "bfa/disclosures.jsonl")) if name == "disclose" else 0}
    assert set(claims["scope"]) == {"records", "periods", "persons", "breaks"}
    assert (claims["since"] is None) == (name != "person")
    assert (claims["disclosure"] is None) == (name != "disclose")
    assert (bag / "bfa/since.note").exists() == (name == "person")
    assert (bag / "bfa/disclosures.jsonl").exists() == (name == "disclose")
    info = (bag / "bag-info.txt").read_text("utf-8")
    for label in (f"Source-Organization: {ORIGIN}", f"External-Identifier: {claims['id']}",
                  "Bfa-Bundle-Format: bfa-bundle/1",
                  f"Bfa-Checkpoint-Size: {claims['checkpoint']['size']}", "Bagging-Date: ",
                  "External-Description: "):
        assert label in info, info

    # bfa bundle verify: exit 0, every verdict ok or '-'; JSON shape of §12.5
    report = shop.report(name)
    assert set(report) == {"ok", "verdicts", "not_rederivable", "bundle"}
    assert all(set(v) == {"check", "ok", "detail", "file", "entry"} for v in report["verdicts"])
    assert report["bundle"] == {k: claims[k] for k in
                                ("id", "origin", "created_at", "checkpoint", "scope", "counts")}
    verdict = {v["check"]: v["ok"] for v in report["verdicts"]}
    assert verdict["consistency"] is ((name == "person") or None)
    assert verdict["disclosures"] is ((name == "disclose") or None)
    assert all(verdict[c] is True for c in ("bag", "signature", "checkpoint", "entries",
                                            "vouchers", "closure", "findings"))
    assert all(set(x) == {"id", "code", "why"} for x in report["not_rederivable"])


def test_human_output_and_pinned_exporter_key(shop: Shop, tmp_path: Path) -> None:
    bag = shop.bundles["record"]
    pinned = tmp_path / "agency-exporter.key"
    pinned.write_text((bag / "bfa/exporter.key").read_text("utf-8"), "utf-8")
    res, report = verify(bag, shop.key, "--exporter-key", str(pinned))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"bundle {_json(bag / 'bfa/bundle.json')['id']} of {ORIGIN}")
    marks = {x.split()[1]: x.split()[0] for x in lines[1:10]}
    assert marks == {**dict.fromkeys(CHECKS, "ok"), "disclosures": "-", "consistency": "-"}
    assert lines[-1] == "VERIFIED"
    assert "(pinned)" in report["verdicts"][1]["detail"]


def _on_a_terminal(*args: str, cols: int = 80) -> tuple[int, str]:
    """``bfa ARGS`` with stdout and stderr on a pseudo-terminal ``cols`` wide: its exit
    code and what it showed."""
    import pty
    import select

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": str(cols), "NO_COLOR": "1", "BFA_LANG": "en"}
    p = subprocess.Popen([sys.executable, "-m", "cli", *args], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _w, _x = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its side
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(timeout=60), out.decode("utf-8", "replace").replace("\r", "")


def test_verify_at_an_80_column_terminal(shop: Shop) -> None:
    """A supervisor's terminal: the progress bar draws (it crashed: it has no total), and
    long details wrap under their column instead of running past column 80."""
    code, shown = _on_a_terminal("bundle", "verify", str(shop.bundles["period"]), "--key",
                                 str(shop.key))
    assert code == 0, shown
    lines = [x for x in shown.split("\n") if x and "\x1b" not in x and "verifying" not in x]
    assert lines[-1] == "VERIFIED" and "internal error" not in shown
    assert all(len(x) <= 80 for x in lines), [x for x in lines if len(x) > 80]
    assert any(x.startswith(" " * 18) for x in lines)  # a detail continued under its column


@pytest.mark.parametrize("name", list(BUNDLES))
def test_bundle_is_a_valid_bag_for_the_library_of_congress(shop: Shop, name: str) -> None:
    bag = bagit.Bag(str(shop.bundles[name]))
    bag.validate()  # raises BagValidationError otherwise
    assert bag.is_valid()
    assert bag.version == "1.0" and set(bag.algorithms) == {"sha256", "sha512"}
    assert bag.info["Bfa-Bundle-Format"] == "bfa-bundle/1"
    assert sorted(bag.payload_files()) == sorted(
        p.relative_to(shop.bundles[name]).as_posix()
        for p in (shop.bundles[name] / "data").rglob("*") if p.is_file())


def test_scope_claims(shop: Shop) -> None:
    """Scope as given, sorted; ``persons`` hold pseudonyms, and no file of a bundle without
    --disclose holds the clear person id."""
    claims = {n: _json(b / "bfa/bundle.json")["scope"] for n, b in shop.bundles.items()}
    assert claims["record"] == {"records": ["CA-1"], "periods": [], "persons": [],
                                "breaks": []}
    assert claims["break"]["breaks"] == [shop.unsettled]
    assert claims["period"]["periods"] == ["2026-11"]
    combined = claims["combined"]
    assert (combined["records"], combined["periods"], combined["breaks"]) == (
        ["CA-1"], ["2026-11"], [shop.unsettled])
    (pseudonym,) = claims["person"]["persons"]
    assert pseudonym not in (P1, P2) and claims["disclose"]["persons"] == [pseudonym]
    assert combined["persons"] != [pseudonym] and len(combined["persons"]) == 1
    for name in ("person", "combined", "period"):
        for p in shop.bundles[name].rglob("*"):
            if p.is_file():
                body = p.read_bytes()
                assert P1.encode() not in body and P2.encode() not in body, p
                assert ACC1.encode() not in body, p


def test_break_bundle_carries_its_workflow_history(shop: Shop) -> None:
    bag = shop.bundles["break"]
    history = [x for x in _lines(bag / "bfa/entries.jsonl") if x["role"] == "history"]
    assert [x["id"] for x in history] == [f"{shop.unsettled}/1", f"{shop.unsettled}/2"]
    assert {(x["domain"], x["kind"]) for x in history} == {("control", "break")}
    steps = [_leaf_record(bag, x["seq"]) for x in history]
    assert [(s["type"], s["break"], s["status"]) for s in steps] == [
        ("control.break", shop.unsettled, "assigned"),
        ("control.break", shop.unsettled, "resolved")]
    findings = _json(bag / "bfa/findings.json")
    assert set(findings) == {"as_of", "ruleset", "rules", "rules_digest", "breaks",
                             "not_reported"}
    assert findings["as_of"] == AS_OF and findings["ruleset"].startswith("bfa-rules/")
    assert findings["not_reported"] == []
    by_id = {b["id"]: b for b in findings["breaks"]}
    assert set(by_id) == {shop.unsettled, shop.missing}
    assert all(set(b) == {"id", "code", "severity", "field", "records", "amounts", "message",
                          "amount_at_risk", "evidence", "workflow"} for b in by_id.values())
    wf = by_id[shop.unsettled]["workflow"]
    assert wf == {"status": "resolved", "assignee": "bob", "resolved_by": "bob",
                  "approved_by": None, "reason": "timing", "note": "paid in December",
                  "history": [x["seq"] for x in history]}
    assert by_id[shop.missing]["code"] == "MISSING_VOUCHER"
    assert (by_id[shop.missing]["workflow"] or {}).get("history", []) == []
    # the same as the ledger's own reconciliation says of these breaks
    ledger = {b["id"]: b for b in _breaks(shop.home, shop.db)}
    for bid, b in by_id.items():
        assert (b["code"], b["records"], b["field"]) == (
            ledger[bid]["code"], ledger[bid]["records"], ledger[bid]["field"])
    report = shop.report("break")
    found = next(v for v in report["verdicts"] if v["check"] == "findings")
    assert found["ok"] is True and found["detail"].startswith("2 finding(s) re-derived")
    assert report["not_rederivable"] == []
    entries = next(v for v in report["verdicts"] if v["check"] == "entries")
    assert "2 history" in entries["detail"]


def test_rules_and_a_named_break_not_reported(shop: Shop, tmp_path: Path) -> None:
    """As of 2026-11-01 CA-2 is not yet unsettled: the named break goes to ``not_reported``
    with its workflow and history; under a 10-day voucher window its MISSING_VOUCHER is a
    break, re-derived by the verifier with the bundle's own rules."""
    rules = tmp_path / "rules.toml"
    rules.write_text("[windows]\nvoucher_days = 10\n", "utf-8")
    bag = tmp_path / "b"
    res = ok("bundle", "export", *h(shop.home, shop.db), "--out", str(bag), "--break",
             shop.unsettled, "--as-of", "2026-11-01", "--rules", str(rules))
    assert "1 named break(s) not reported" in res.stdout
    page = (bag / "index.html").read_text("utf-8")  # the page shows it too, with its state
    assert "Named breaks not reported (1)" in page and shop.unsettled in page
    findings = _json(bag / "bfa/findings.json")
    assert findings["as_of"] == "2026-11-01" and findings["rules"]["voucher_days"] == 10
    assert [b["id"] for b in findings["breaks"]] == [shop.missing]
    (gone,) = findings["not_reported"]
    assert gone["id"] == shop.unsettled and "amount_at_risk" not in gone
    history = [x["seq"] for x in _lines(bag / "bfa/entries.jsonl") if x["role"] == "history"]
    assert gone["workflow"]["status"] == "resolved" and gone["workflow"]["history"] == history
    assert len(history) == 2
    report = assert_verified(bag, shop.key, text=False)
    found = next(v for v in report["verdicts"] if v["check"] == "findings")
    assert found["detail"].startswith("1 finding(s) re-derived")


def test_export_refusals(shop: Shop, tmp_path: Path) -> None:
    home, db = shop.home, shop.db
    out = tmp_path / "out"
    for args in ([], ["--record", "NO-SUCH"], ["--break", "BRK-0000000000000000"],
                 ["--period", "2026-13"], ["--person", "999999999999999999"]):
        res = _export(home, db, out, *args, code=2)
        assert res.stderr.strip(), args
        assert not out.exists() or not any(out.iterdir()), args
    out.mkdir()
    (out / "x").write_text("occupied", "utf-8")
    _export(home, db, out, "--record", "CA-1", code=2)
    # an entry the latest checkpoint does not cover: exit 1, run 'bfa checkpoint' first
    d = tmp_path / "in"
    d.mkdir()
    late = assessment("CA-LATE")
    late.update(occurred_at="2026-12-01T09:00:00+08:00", period="2026-12")
    ok("ingest", str(write_jsonl(d / "late.jsonl", [late])), *h(home, db))
    res = _export(home, db, tmp_path / "late", "--record", "CA-LATE", code=1)
    assert "bfa checkpoint" in res.stderr


# ----------------------------------------------------------------------------- 3: --since


def test_since_proves_consistency(shop: Shop, other: Other, mallory: Signer,
                                  tmp_path: Path) -> None:
    bag = shop.bundles["person"]  # --person P1 --since old.note
    old = shop.old_note.read_text("utf-8")
    note = (bag / "bfa/checkpoint.note").read_text("utf-8")
    assert (bag / "bfa/since.note").read_text("utf-8") == old
    assert _json(bag / "bfa/bundle.json")["since"] == {"size": _note_size(old)}
    assert _note_size(old) < _note_size(note)
    body = (bag / "bfa/consistency.txt").read_text("utf-8")
    head, _, tail = body.partition("\n\n")
    assert head.split("\n")[0] == f"old {_note_size(old)}" and len(head.split("\n")) > 1
    assert tail == note
    report = shop.report("person")
    cons = next(v for v in report["verdicts"] if v["check"] == "consistency")
    assert cons["ok"] is True and str(_note_size(old)) in cons["detail"]
    # a checkpoint of another ledger is refused at export, and nothing is written
    out = tmp_path / "foreign"
    res = _export(shop.home, shop.db, out, "--record", "CA-1", "--since", str(other.note),
                  code=2)
    assert "--since" in res.stderr
    assert not out.exists() or not any(out.iterdir())
    # a since note whose consistency proof was swapped for another size fails
    bad = _copy(bag, tmp_path / "bad")
    cons_path = bad / "bfa/consistency.txt"
    cons_path.write_text(body.replace(f"old {_note_size(old)}\n",
                                      f"old {_note_size(old) - 1}\n", 1), "utf-8")
    reseal(bad, mallory)
    assert_fails(bad, shop.key, "consistency", "bfa/consistency.txt", None)


# ----------------------------------------------------------------------------- 4: --disclose


def test_disclose_is_verified_and_logged(shop: Shop, tmp_path: Path) -> None:
    bag = shop.bundles["disclose"]
    claims = _json(bag / "bfa/bundle.json")
    disclosure = claims["disclosure"]
    assert disclosure["fields"] == ["account", "person_id"]
    assert disclosure["purpose"] == PURPOSE
    assert re.fullmatch(r"disclose-[0-9a-f-]{36}", disclosure["id"])
    lines = _lines(bag / "bfa/disclosures.jsonl")
    assert all(set(x) == {"domain", "field", "id", "salt", "seq", "value"} for x in lines)
    assert sorted((x["id"], x["field"], x["value"], x["seq"]) for x in lines) == [
        ("BP-1", "account", ACC1, shop.seq["BP-1"]), ("BP-1", "person_id", P1, shop.seq["BP-1"])]
    assert claims["counts"]["disclosed"] == 2
    report = shop.report("disclose")
    disc = next(v for v in report["verdicts"] if v["check"] == "disclosures")
    assert disc["ok"] is True and disc["detail"].startswith("2 disclosed")
    # the disclosure is a ledger entry, listed by bfa audit access
    log = jok("audit", "access", *h(shop.home, shop.db))
    rows = [r for r in log if r["action"] == "disclose"]
    assert len(rows) == 1, log
    (row,) = rows
    assert row["purpose"] == PURPOSE and sorted(row["fields"]) == ["account", "person_id"]
    assert row["user"] == "alice" and row["target"] == "bundle: business:BP-1"
    entry = jok("show", *h(shop.home, shop.db), disclosure["id"], "--entry")
    assert entry["seq"] == row["seq"]
    payload = entry["payload"]
    assert payload["type"] == "control.disclose" and payload["purpose"] == PURPOSE
    assert payload["fields"] == ["account", "person_id"]
    assert payload["records"] == [{"domain": "business", "id": "BP-1", "seq": shop.seq["BP-1"]}]
    assert payload["scope"] == claims["scope"]
    # --disclose without --purpose: exit 2, nothing written, nothing logged
    out = tmp_path / "nopurpose"
    res = _export(shop.home, shop.db, out, "--person", P1, "--disclose", "person_id", code=2)
    assert "--purpose" in res.stderr
    assert not out.exists() or not any(out.iterdir())
    assert jok("audit", "access", *h(shop.home, shop.db)) == log


# ----------------------------------------------------------------------------- 5: tampering


def _flip(path: Path, at: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _voucher_file(bag: Path, rid: str = "FR-1") -> Path:
    """The file of voucher ``rid`` (bfa/vouchers.jsonl says which)."""
    for line in (bag / "bfa/vouchers.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        if rid in row["records"]:
            return bag / "data/vouchers" / row["sha256"]
    raise AssertionError(f"no file of {rid} in {bag}")


def _drop_entry(bag: Path, rid: str) -> int:
    """Remove record ``rid``'s leaf, proof and entries.jsonl line (and, for a voucher, its
    file and vouchers.jsonl line); fix bundle.json's counts. Returns its seq."""
    lines = _lines(bag / "bfa/entries.jsonl")
    (line,) = [x for x in lines if x["id"] == rid]
    seq = line["seq"]
    if line["domain"] == "archive":
        sha = _leaf_record(bag, seq)["sha256"]
        (bag / "data/vouchers" / sha).unlink()
        _write_lines(bag / "bfa/vouchers.jsonl", [
            x for x in _lines(bag / "bfa/vouchers.jsonl") if x["sha256"] != sha])
    (bag / f"data/entries/{seq}.leaf").unlink()
    (bag / f"bfa/proofs/{seq}.tlog-proof").unlink()
    _write_lines(bag / "bfa/entries.jsonl", [x for x in lines if x["id"] != rid])
    claims = _json(bag / "bfa/bundle.json")
    claims["counts"]["entries"] -= 1
    claims["counts"]["scoped"] -= line["role"] == "scope"
    claims["counts"]["vouchers"] -= line["domain"] == "archive"
    _write_json(bag / "bfa/bundle.json", claims)
    return int(seq)


def _take_entry(src: Path, bag: Path, rid: str, role: str) -> int:
    """Copy record ``rid``'s leaf, proof and entries.jsonl line from bundle ``src`` into
    ``bag`` (by seq), with ``role``; fix bundle.json's counts."""
    (line,) = [x for x in _lines(src / "bfa/entries.jsonl") if x["id"] == rid]
    seq = line["seq"]
    for rel in (f"data/entries/{seq}.leaf", f"bfa/proofs/{seq}.tlog-proof"):
        if (bag / rel).exists():
            (bag / rel).unlink()
        shutil.copyfile(src / rel, bag / rel)
    lines = [x for x in _lines(bag / "bfa/entries.jsonl") if x["seq"] != seq]
    _write_lines(bag / "bfa/entries.jsonl",
                 sorted([*lines, {**line, "role": role}], key=lambda x: x["seq"]))
    claims = _json(bag / "bfa/bundle.json")
    claims["counts"]["entries"] = len(lines) + 1
    claims["counts"]["scoped"] = sum(x["role"] == "scope" for x in [*lines, {"role": role}])
    _write_json(bag / "bfa/bundle.json", claims)
    return int(seq)


def _edit_findings(bag: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = _json(bag / "bfa/findings.json")
    edit(doc)
    _write_json(bag / "bfa/findings.json", doc)


def _edit_leaf(bag: Path, seq: int, old: bytes, new: bytes) -> bytes:
    path = bag / f"data/entries/{seq}.leaf"
    leaf = path.read_bytes()
    assert leaf.count(old) == 1
    path.write_bytes(leaf.replace(old, new))
    return path.read_bytes()


@dataclass(frozen=True)
class Want:
    """The verdict that must catch an edit: ``check`` naming ``file`` and ``entry``, its
    detail containing ``says``; ``stale`` the file the bag check names when the manifests
    are left as they were (None: whichever it meets first)."""

    check: str
    file: str | None
    entry: int | None = None
    says: str = ""
    stale: str | None = None


@dataclass(frozen=True)
class Tamper:
    """A tamper case: which bundle, what is changed, how the forger seals it (``stale``:
    manifests left as they were; ``hash``: re-hashed, not re-signed; ``sign``: re-signed
    with the forger's own exporter key), and the verdict that must catch it."""

    base: str
    edit: Callable[[Path, Shop, Other], Want]
    seal: str
    text: bool = True
    """Also check the human output (a full verification costs a second: the cases beyond
    the brief's list check the JSON report only)."""


def _t_voucher_flip(bag: Path, shop: Shop, other: Other) -> Want:
    path = _voucher_file(bag)
    _flip(path)
    return Want("vouchers", f"data/vouchers/{path.name}", shop.seq["FR-1"], "FR-1",
                f"data/vouchers/{path.name}")


def _t_leaf_edit(bag: Path, shop: Shop, other: Other) -> Want:
    seq = shop.seq["CA-1"]
    _edit_leaf(bag, seq, b'"amount":"1000.00"', b'"amount":"9000.00"')
    return Want("entries", "bfa/entries.jsonl", seq, "hash", f"data/entries/{seq}.leaf")


def _t_leaf_edit_consistent(bag: Path, shop: Shop, other: Other) -> Want:
    """The leaf edited and every mention of it made to agree: entries.jsonl's hash and the
    proof's extra line. Only the audit path can tell."""
    seq = shop.seq["CA-1"]
    leaf = _edit_leaf(bag, seq, b'"amount":"1000.00"', b'"amount":"9000.00"')
    _write_lines(bag / "bfa/entries.jsonl", [
        {**x, "hash": hashlib.sha256(b"\x00" + leaf).hexdigest()} if x["seq"] == seq else x
        for x in _lines(bag / "bfa/entries.jsonl")])
    proof = bag / f"bfa/proofs/{seq}.tlog-proof"
    lines = proof.read_text("utf-8").split("\n")
    lines[1] = "extra " + base64.b64encode(leaf).decode()
    proof.write_text("\n".join(lines), "utf-8")
    return Want("entries", f"bfa/proofs/{seq}.tlog-proof", seq, "does not prove")


def _t_proof_hash_removed(bag: Path, shop: Shop, other: Other) -> Want:
    seq = shop.seq["COL-1"]
    proof = bag / f"bfa/proofs/{seq}.tlog-proof"
    lines = proof.read_text("utf-8").split("\n")
    assert lines[2] == f"index {seq}" and lines[3]
    del lines[3]
    proof.write_text("\n".join(lines), "utf-8")
    return Want("entries", f"bfa/proofs/{seq}.tlog-proof", seq, "",
                f"bfa/proofs/{seq}.tlog-proof")


def _t_unlisted_payload(bag: Path, shop: Shop, other: Other) -> Want:
    (bag / "data/extra.txt").write_text("planted", "utf-8")
    return Want("bag", "data/extra.txt", stale="data/extra.txt")


def _t_unlisted_tag(bag: Path, shop: Shop, other: Other) -> Want:
    (bag / "bfa/notes.txt").write_text("planted", "utf-8")
    return Want("bag", "bfa/notes.txt", stale="bfa/notes.txt")


def _t_other_checkpoint(bag: Path, shop: Shop, other: Other) -> Want:
    shutil.copyfile(other.note, bag / "bfa/checkpoint.note")
    return Want("checkpoint", "bfa/checkpoint.note", stale="bfa/checkpoint.note")


def _t_foreign_entry(bag: Path, shop: Shop, other: Other) -> Want:
    """CA-1 of another ledger (same id, same seq, its own proof) in place of ours."""
    seq = _take_entry(other.bundle, bag, "CA-1", "scope")
    assert seq == shop.seq["CA-1"]
    return Want("entries", f"bfa/proofs/{seq}.tlog-proof", seq)


def _t_swapped_entry(bag: Path, shop: Shop, other: Other) -> Want:
    """CA-2 (from the break's bundle, proven into the same checkpoint) in place of CA-1,
    which the scoped voucher FR-1 refers to."""
    _drop_entry(bag, "CA-1")
    _take_entry(shop.bundles["break"], bag, "CA-2", "closure")
    seq = shop.seq["FR-1"]
    return Want("closure", f"data/entries/{seq}.leaf", seq, "CA-1")


def _t_closure_record_removed(bag: Path, shop: Shop, other: Other) -> Want:
    _drop_entry(bag, "CA-1")
    seq = shop.seq["FR-1"]
    return Want("closure", f"data/entries/{seq}.leaf", seq, "CA-1")


def _t_naming_record_removed(bag: Path, shop: Shop, other: Other) -> Want:
    """COL-1 names the scoped CA-1; its absence cannot be proven offline (§12.5 step 7),
    but the findings re-derive CA-1 as unsettled, which the bundle does not state."""
    _drop_entry(bag, "COL-1")
    return Want("findings", "bfa/findings.json", None, "UNSETTLED_EVENT")


def _t_finding_deleted(bag: Path, shop: Shop, other: Other) -> Want:
    def edit(doc: dict[str, Any]) -> None:
        doc["breaks"] = [b for b in doc["breaks"] if b["id"] != shop.missing]

    _edit_findings(bag, edit)
    return Want("findings", "bfa/findings.json", None, f"{shop.missing} (MISSING_VOUCHER",
                "bfa/findings.json")


def _t_worked_finding_deleted(bag: Path, shop: Shop, other: Other) -> Want:
    _edit_findings(bag, lambda doc: doc.update(
        breaks=[b for b in doc["breaks"] if b["id"] != shop.unsettled]))
    return Want("findings", "bfa/findings.json", None, "missing")


def _t_finding_changed(bag: Path, shop: Shop, other: Other) -> Want:
    def edit(doc: dict[str, Any]) -> None:
        for b in doc["breaks"]:
            if b["id"] == shop.unsettled:
                b["amounts"] = {"event": "5.00"}

    _edit_findings(bag, edit)
    return Want("findings", "bfa/findings.json", None, "changed")


def _t_finding_detail(key: str, value: str) -> Callable[[Path, Shop, Other], Want]:
    """A re-derivable finding's severity, amount at risk or message edited (a re-signed
    bundle: only the re-derivation can tell)."""
    def tamper(bag: Path, shop: Shop, other: Other) -> Want:
        def edit(doc: dict[str, Any]) -> None:
            for b in doc["breaks"]:
                if b["id"] == shop.unsettled:
                    assert b[key] != value
                    b[key] = value

        _edit_findings(bag, edit)
        return Want("findings", "bfa/findings.json", None, "changed")

    return tamper


def _t_finding_added(bag: Path, shop: Shop, other: Other) -> Want:
    def edit(doc: dict[str, Any]) -> None:
        fake = {**doc["breaks"][0], "id": "BRK-00000000deadbeef", "code": "LATE_SETTLEMENT",
                "workflow": None}
        doc["breaks"].append(fake)

    _edit_findings(bag, edit)
    return Want("findings", "bfa/findings.json", None, "BRK-00000000deadbeef")


def _t_workflow_status(bag: Path, shop: Shop, other: Other) -> Want:
    def edit(doc: dict[str, Any]) -> None:
        for b in doc["breaks"]:
            if b["id"] == shop.unsettled:
                b["workflow"]["status"] = "open"

    _edit_findings(bag, edit)
    return Want("findings", "bfa/findings.json", None, "status")


def _t_history_dropped(bag: Path, shop: Shop, other: Other) -> Want:
    """The resolution's control.break entry removed from the bundle, its seq still named."""
    seq = shop.seq[f"{shop.unsettled}/2"]
    _drop_entry(bag, f"{shop.unsettled}/2")
    return Want("findings", "bfa/findings.json", seq, "history entry")


def _t_disclosed_value(bag: Path, shop: Shop, other: Other) -> Want:
    lines = _lines(bag / "bfa/disclosures.jsonl")
    for x in lines:
        if x["field"] == "person_id":
            x["value"] = P2
    _write_lines(bag / "bfa/disclosures.jsonl", lines)
    return Want("disclosures", "bfa/disclosures.jsonl", shop.seq["BP-1"], "person_id",
                "bfa/disclosures.jsonl")


def _t_disclosures_removed(bag: Path, shop: Shop, other: Other) -> Want:
    (bag / "bfa/disclosures.jsonl").unlink()
    return Want("disclosures", "bfa/disclosures.jsonl", None, "missing")


def _t_counts(bag: Path, shop: Shop, other: Other) -> Want:
    claims = _json(bag / "bfa/bundle.json")
    claims["counts"]["entries"] += 1
    _write_json(bag / "bfa/bundle.json", claims)
    return Want("entries", "bfa/bundle.json")


def _t_claimed_root(bag: Path, shop: Shop, other: Other) -> Want:
    claims = _json(bag / "bfa/bundle.json")
    claims["checkpoint"]["size"] -= 1
    _write_json(bag / "bfa/bundle.json", claims)
    return Want("checkpoint", "bfa/bundle.json")


JSON_ONLY = {"leaf-edited-consistently", "claims-another-checkpoint", "counts-wrong",
             "worked-finding-deleted", "finding-changed", "finding-added",
             "workflow-status-changed", "history-entry-left-out", "disclosures-removed"}
TAMPERS: dict[str, Tamper] = {}
for _name, _base, _edit, _seals in [
    ("voucher-byte", "record", _t_voucher_flip, ("stale", "hash", "sign")),
    ("leaf-edited", "record", _t_leaf_edit, ("stale", "hash", "sign")),
    ("leaf-edited-consistently", "record", _t_leaf_edit_consistent, ("sign",)),
    ("proof-hash-removed", "record", _t_proof_hash_removed, ("stale", "hash", "sign")),
    ("unlisted-payload-file", "record", _t_unlisted_payload, ("stale",)),
    ("unlisted-tag-file", "record", _t_unlisted_tag, ("stale",)),
    ("checkpoint-of-another-ledger", "record", _t_other_checkpoint, ("stale", "sign")),
    ("claims-another-checkpoint", "record", _t_claimed_root, ("sign",)),
    ("entry-of-another-ledger", "record", _t_foreign_entry, ("sign",)),
    ("entry-swapped-from-another-scope", "voucher", _t_swapped_entry, ("sign",)),
    ("closure-record-left-out", "voucher", _t_closure_record_removed, ("stale", "sign")),
    ("naming-record-left-out", "record", _t_naming_record_removed, ("sign",)),
    ("counts-wrong", "record", _t_counts, ("sign",)),
    ("finding-deleted", "break", _t_finding_deleted, ("stale", "hash", "sign")),
    ("worked-finding-deleted", "break", _t_worked_finding_deleted, ("sign",)),
    ("finding-changed", "break", _t_finding_changed, ("sign",)),
    ("finding-severity-lowered", "break", _t_finding_detail("severity", "low"), ("sign",)),
    ("finding-at-risk-lowered", "break", _t_finding_detail("amount_at_risk", "0.01"),
     ("sign",)),
    ("finding-message-changed", "break",
     _t_finding_detail("message", "the event was settled in full"), ("sign",)),
    ("finding-added", "break", _t_finding_added, ("sign",)),
    ("workflow-status-changed", "break", _t_workflow_status, ("sign",)),
    ("history-entry-left-out", "break", _t_history_dropped, ("sign",)),
    ("disclosed-value-changed", "disclose", _t_disclosed_value, ("stale", "sign")),
    ("disclosures-removed", "disclose", _t_disclosures_removed, ("sign",)),
]:
    for _seal in _seals:
        TAMPERS[f"{_name}/{_seal}"] = Tamper(_base, _edit, _seal, _name not in JSON_ONLY)


def _tampered(shop: Shop, other: Other, mallory: Signer, tmp: Path, case: Tamper
              ) -> tuple[Path, Want]:
    bag = _copy(shop.bundles[case.base], tmp / "bag")
    want = case.edit(bag, shop, other)
    if case.seal == "hash":
        reseal(bag)
    elif case.seal == "sign":
        reseal(bag, mallory)
    return bag, want


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampered_bundle_fails(shop: Shop, other: Other, mallory: Signer, tmp_path: Path,
                               name: str) -> None:
    case = TAMPERS[name]
    bag, want = _tampered(shop, other, mallory, tmp_path, case)
    if case.seal == "stale":
        # manifests left as they were: the bag check names the changed (or unlisted) file
        if want.stale is not None:
            assert_fails(bag, shop.key, "bag", want.stale, None)
        else:
            text, report = verify(bag, shop.key)
            assert text.exit_code == 3 and report["ok"] is False, text.output
            first = report["verdicts"][0]
            assert (first["check"], first["ok"]) == ("bag", False), report
            assert first["file"] and f"[{first['file']}" in text.stdout
    elif case.seal == "hash":
        # re-hashed but not re-signed: the signature no longer covers the tag manifest
        assert_fails(bag, shop.key, "signature", "bundle.sig", None)
    else:
        assert_fails(bag, shop.key, want.check, want.file, want.entry, says=want.says,
                     text=case.text)
        # the forger's key is refused when the agency's exporter key is pinned
        pinned = tmp_path / "agency-exporter.key"
        pinned.write_text((shop.bundles[case.base] / "bfa/exporter.key").read_text("utf-8"),
                          "utf-8")
        assert_fails(bag, shop.key, "signature", "bfa/exporter.key", None,
                     "--exporter-key", str(pinned), says="mallory")


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
def test_verifier_key_of_another_ledger(shop: Shop, other: Other) -> None:
    assert_fails(shop.bundles["record"], other.key, "checkpoint", "bfa/checkpoint.note", None)


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
def test_verify_cannot_run(shop: Shop, tmp_path: Path) -> None:
    bag = shop.bundles["record"]
    assert invoke("bundle", "verify", str(tmp_path / "nowhere"), "--key",
                  str(shop.key)).exit_code == 2
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n", "utf-8")
    for key in (garbage, tmp_path / "absent.key"):
        res = invoke("bundle", "verify", str(bag), "--key", str(key))
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output
    res = invoke("bundle", "verify", str(bag), "--key", str(shop.key), "--exporter-key",
                 str(garbage))
    assert res.exit_code == 2, res.output


# ----------------------------------------------------------------------------- 6: proof verify


def test_proof_verify(shop: Shop, other: Other, tmp_path: Path) -> None:
    proof = tmp_path / "CA-1.tlog-proof"
    proof.write_text(ok("prove", "CA-1", *h(shop.home, shop.db)).stdout, "utf-8")
    note = shop.bundles["record"] / "bfa/checkpoint.note"
    assert proof.read_text("utf-8").partition("\n\n")[2] == note.read_text("utf-8")
    res = ok("proof", "verify", str(proof), "--key", str(shop.key))
    assert res.stdout.startswith(f"PROVEN: entry {shop.seq['CA-1']} ")
    out = jok("proof", "verify", str(proof), "--key", str(shop.key))
    assert set(out) == {"ok", "detail", "seq", "tree_size", "record"}
    assert out["ok"] is True and out["seq"] == shop.seq["CA-1"]
    assert out["tree_size"] == _note_size(note.read_text("utf-8"))
    assert out["record"]["id"] == "CA-1" and out["record"]["amount"] == "1000.00"
    # the bundle's proof file verifies alone too
    ok("proof", "verify", str(shop.bundles["record"] / f"bfa/proofs/{shop.seq['CA-1']}"
                                                       ".tlog-proof"), "--key", str(shop.key))
    # against the checkpoint one holds: the same one passes, an older one does not
    ok("proof", "verify", str(proof), "--key", str(shop.key), "--checkpoint", str(note))
    res = ok("proof", "verify", str(proof), "--key", str(shop.key), "--checkpoint",
             str(shop.old_note), code=3)
    assert "INTEGRITY FAILURE" in res.stdout
    assert jok("proof", "verify", str(proof), "--key", str(shop.key), "--checkpoint",
               str(shop.old_note), code=3)["ok"] is False
    # a tampered proof: a hash of the audit path changed, or the leaf
    lines = proof.read_text("utf-8").split("\n")
    for i, line in ((3, lines[3][:5] + ("A" if lines[3][5] != "A" else "B") + lines[3][6:]),
                    (1, "extra " + base64.b64encode(base64.b64decode(lines[1][6:]).replace(
                        b"1000.00", b"9000.00")).decode())):
        bad = tmp_path / f"bad-{i}.tlog-proof"
        bad.write_text("\n".join([*lines[:i], line, *lines[i + 1:]]), "utf-8")
        res = ok("proof", "verify", str(bad), "--key", str(shop.key), code=3)
        assert "INTEGRITY FAILURE" in res.stdout
    # the key of another ledger
    ok("proof", "verify", str(proof), "--key", str(other.key), code=3)
    # an unreadable key, a missing key, an unreadable proof: could not run
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"\xff\xfe not a key")
    for key in (garbage, tmp_path / "absent.key"):
        res = ok("proof", "verify", str(proof), "--key", str(key), code=2)
        assert res.stderr.startswith("bfa: error: "), res.stderr
    res = ok("proof", "verify", str(tmp_path / "absent.tlog-proof"), "--key", str(shop.key),
             code=2)


# ----------------------------------------------------------------------------- 7: Go's sumdb


@pytest.fixture(scope="module")
def go(tmp_path_factory: pytest.TempPathFactory) -> gotools.Go:
    """tests/interop/verify_tlog.go, built as tests/interop/test_go_tools.py builds it."""
    exe = shutil.which("go")
    if exe is None:
        gotools._missing("`go` is not on PATH")
    assert exe is not None
    if not (gotools.DEBIAN_GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        gotools._missing(f"no golang.org/x/mod sources under {gotools.DEBIAN_GOPATH}")
    work = tmp_path_factory.mktemp("go")
    env = {**os.environ, "GO111MODULE": "off", "GOFLAGS": "", "GOTOOLCHAIN": "local",
           "GOPATH": os.pathsep.join([str(gotools.DEBIAN_GOPATH), str(work / "gopath")]),
           "GOCACHE": str(work / "cache")}
    built = subprocess.run([exe, "build", "-o", str(work / "verify_tlog"),
                            str(gotools.GO_SOURCE)], cwd=work, env=env, capture_output=True,
                           text=True, timeout=300)
    if built.returncode != 0 and "cannot find package" in built.stderr:
        gotools._missing(f"go build cannot find x/mod: {built.stderr.strip()}")
    assert built.returncode == 0, built.stderr
    return gotools.Go(work / "verify_tlog")


def test_go_verifies_bundled_proofs(shop: Shop, other: Other, go: gotools.Go) -> None:
    bag = shop.bundles["combined"]
    proofs = sorted((bag / "bfa/proofs").iterdir())
    assert len(proofs) >= 8
    for proof in proofs[:3] + proofs[-3:]:
        out = go.accepts("inclusion", shop.key, proof)
        assert proof.stem in out, out
    go.rejects("inclusion", other.key, proofs[0], because="note has no verifiable signatures")
    since = shop.bundles["person"]
    go.accepts("consistency", shop.key, since / "bfa/since.note", since / "bfa/checkpoint.note",
               since / "bfa/consistency.txt")


# ------------------------------------------- links outside the closure; malformed bundles


@pytest.fixture(scope="module")
def linked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Path, str, Path]]:
    """A ledger (on the first backend enabled) where links exist that no bundle closure
    brings along: a collection settling CA-H by heuristic match (no allocation), a bank
    slip naming the payment that settles BP-S, a newer approval BA-2 of P3 in force over
    BA-1, a voucher whose amount covers CA-V1 and CA-V2, settled by two collections."""
    root = tmp_path_factory.mktemp("linked")
    db, drop = _new_database(request, BACKENDS[0], root)
    try:
        home, key = _ledger(root, db, ORIGIN)
        d = root / "in"
        d.mkdir()
        recs = [
            assessment("CA-H", amount="777.00"), collection("COL-H", amount="777.00"),
            voucher(d, "fiscal_receipt", "FR-H", ["CA-H"]),
            voucher(d, "accounting_voucher", "AV-H", ["COL-H"]),
            _benefit("BP-S", P3, ACC2, OCT, "2026-09"),
            _payment("PAY-S", "BP-S", OCT, "2026-10-06"),
            _voucher(d, "bank_slip", "BS-S", ["PAY-S"], OCT),
            _voucher(d, "accounting_voucher", "AV-S", ["PAY-S"], OCT),
            {"type": "business.enrollment", "id": "EN-3", "region": R,
             "occurred_at": "2025-01-05T09:00:00+08:00", "person_id": P3,
             "insurance": "pension", "effective_date": "2025-01-01"},
            _approval("BA-1", P3, "2026-01", ACC1), _approval("BA-2", P3, "2026-06", ACC2),
            _benefit("BP-Q", P3, ACC2, OCT, "2026-10"),
            _payment("PAY-Q", "BP-Q", OCT, "2026-10-06"),
            _voucher(d, "bank_slip", "BS-Q", ["BP-Q"], OCT),
            _voucher(d, "accounting_voucher", "AV-Q", ["PAY-Q"], OCT),
            assessment("CA-V1", amount="100.00"), assessment("CA-V2", amount="200.00"),
            collection("COL-V1", amount="100.00", allocs=[("CA-V1", "100.00")]),
            collection("COL-V2", amount="200.00", allocs=[("CA-V2", "200.00")]),
            voucher(d, "fiscal_receipt", "FR-V", ["CA-V1", "CA-V2"], amount="300.00"),
            voucher(d, "accounting_voucher", "AV-V", ["COL-V1", "COL-V2"]),
        ]
        ok("ingest", str(write_jsonl(d / "a.jsonl", recs)), *h(home, db))
        ok("checkpoint", *h(home, db))
        yield home, db, key
    finally:
        drop()


def test_linked_ledger_itself_reports_no_break_on_them(linked: tuple[Path, str, Path]
                                                      ) -> None:
    home, db, _key = linked
    named = {r for b in _breaks(home, db) for r in b["records"]}
    assert not named & {"CA-H", "BP-S", "BP-Q", "CA-V1", "CA-V2"}, named
    assert named == {"BA-1", "BA-2", "EN-3"}  # their approval_document, application_form


@pytest.mark.parametrize("scope", [
    pytest.param(["--record", "CA-H"], id="heuristic-match"),
    pytest.param(["--record", "BP-S"], id="slip-names-the-payment"),
    pytest.param(["--record", "BP-Q", "--record", "BA-1"], id="older-approval"),
    pytest.param(["--record", "CA-V1"], id="voucher-amount-over-two-events"),
])
def test_genuine_bundle_with_links_outside_the_closure_verifies(
        linked: tuple[Path, str, Path], tmp_path: Path, scope: list[str]) -> None:
    home, db, key = linked
    _export(home, db, tmp_path / "b", *scope)
    assert_verified(tmp_path / "b", key)


def test_person_scope_holds_every_business_event_of_the_person(
        linked: tuple[Path, str, Path], tmp_path: Path) -> None:
    home, db, _key = linked
    _export(home, db, tmp_path / "b", "--person", P3)
    scoped = {i for i, role in _roles(tmp_path / "b").items() if role == "scope"}
    # FORMAT §12.2: business events whose person_id is the person's, not only money events
    assert scoped == {"BP-S", "BP-Q", "EN-3", "BA-1", "BA-2"}, scoped


def test_closure_holds_the_events_a_scoped_movement_allocates_to(shop: Shop) -> None:
    # CA-1 is the event COL-1 allocates to; FR-1 a voucher naming it (the second hop)
    assert _roles(shop.bundles["collection"]) == {
        "COL-1": "scope", "CA-1": "closure", "AV-1": "closure", "FR-1": "closure"}


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
def test_closure_check_catches_a_missing_allocation_event(shop: Shop, mallory: Signer,
                                                          tmp_path: Path) -> None:
    bag = _copy(shop.bundles["collection"], tmp_path / "bag")
    if "CA-1" in _roles(bag):  # once the export brings it along: leave it out again
        _drop_entry(bag, "CA-1")
        reseal(bag, mallory)
    assert "CA-1" not in _roles(bag)
    seq = shop.seq["COL-1"]
    assert_fails(bag, shop.key, "closure", f"data/entries/{seq}.leaf", seq, says="CA-1",
                 text=False)


def _t_no_checkpoint_note(bag: Path) -> Want:
    (bag / "bfa/checkpoint.note").unlink()
    return Want("checkpoint", "bfa/checkpoint.note")


def _t_checkpoint_not_utf8(bag: Path) -> Want:
    (bag / "bfa/checkpoint.note").write_bytes(b"\xff\xfe\n")
    return Want("checkpoint", "bfa/checkpoint.note")


def _t_no_consistency(bag: Path) -> Want:
    (bag / "bfa/consistency.txt").unlink()
    return Want("consistency", "bfa/consistency.txt")


def _t_voucher_size_text(bag: Path) -> Want:
    lines = _lines(bag / "bfa/vouchers.jsonl")
    lines[0]["size"] = "big"
    _write_lines(bag / "bfa/vouchers.jsonl", lines)
    return Want("vouchers", "bfa/vouchers.jsonl")


def _t_voucher_listed_twice(bag: Path) -> Want:
    lines = _lines(bag / "bfa/vouchers.jsonl")
    _write_lines(bag / "bfa/vouchers.jsonl", [*lines, lines[0]])
    return Want("vouchers", "bfa/vouchers.jsonl", says="a second time")


def _t_voucher_other_records(bag: Path) -> Want:
    lines = _lines(bag / "bfa/vouchers.jsonl")
    lines[0]["records"] = [*lines[0]["records"], "FR-404"]
    _write_lines(bag / "bfa/vouchers.jsonl", lines)
    return Want("vouchers", "bfa/vouchers.jsonl", says="lists other records for file")


def _t_voucher_other_size(bag: Path) -> Want:
    lines = _lines(bag / "bfa/vouchers.jsonl")
    lines[0]["size"] += 1
    _write_lines(bag / "bfa/vouchers.jsonl", lines)
    return Want("vouchers", "bfa/vouchers.jsonl", says="gives another size for file")


def _t_voucher_file_not_named(bag: Path) -> Want:
    sha = hashlib.sha256(b"stray").hexdigest()
    (bag / "data/vouchers" / sha).write_bytes(b"stray")
    return Want("vouchers", f"data/vouchers/{sha}", says="no voucher record")


def _t_voucher_list_names_another_file(bag: Path) -> Want:
    lines = _lines(bag / "bfa/vouchers.jsonl")
    lines.append({"records": [], "sha256": hashlib.sha256(b"x").hexdigest(), "size": 1})
    _write_lines(bag / "bfa/vouchers.jsonl", lines)
    return Want("vouchers", "bfa/vouchers.jsonl", says="lists a file no voucher record")


def _t_history_seq_text(bag: Path) -> Want:
    def edit(doc: dict[str, Any]) -> None:
        for b in doc["breaks"]:
            if b["workflow"] and b["workflow"]["history"]:
                b["workflow"]["history"] = ["x"]

    _edit_findings(bag, edit)
    return Want("findings", "bfa/findings.json")


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
@pytest.mark.parametrize("base,edit", [
    pytest.param("record", _t_no_checkpoint_note, id="checkpoint-note-missing"),
    pytest.param("record", _t_checkpoint_not_utf8, id="checkpoint-note-not-utf8"),
    pytest.param("person", _t_no_consistency, id="consistency-missing"),
    pytest.param("record", _t_voucher_size_text, id="voucher-size-not-a-number"),
    pytest.param("record", _t_voucher_listed_twice, id="voucher-listed-twice"),
    pytest.param("record", _t_voucher_other_records, id="voucher-other-records"),
    pytest.param("record", _t_voucher_other_size, id="voucher-other-size"),
    pytest.param("record", _t_voucher_file_not_named, id="voucher-file-not-named"),
    pytest.param("record", _t_voucher_list_names_another_file, id="voucher-list-extra"),
    pytest.param("break", _t_history_seq_text, id="history-seq-not-a-number"),
])
def test_malformed_bundle_is_a_failed_check(shop: Shop, mallory: Signer, tmp_path: Path,
                                            base: str, edit: Callable[[Path], Want]) -> None:
    """A bundle signed by its maker (no --exporter-key pinned) but malformed: the verifier
    must give a FAIL verdict and exit 3 (§12.5), never 'could not run' or a crash."""
    bag = _copy(shop.bundles[base], tmp_path / "bag")
    want = edit(bag)
    reseal(bag, mallory)
    text, report = verify(bag, shop.key)
    assert text.exit_code == 3, text.output
    first = next(v for v in report["verdicts"] if v["ok"] is False)
    assert (first["check"], first["file"]) == (want.check, want.file), first
    assert want.says in first["detail"], first


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
def test_disclosure_attributed_to_another_record_fails(shop: Shop, mallory: Signer,
                                                       tmp_path: Path) -> None:
    bag = _copy(shop.bundles["disclose"], tmp_path / "bag")
    lines = _lines(bag / "bfa/disclosures.jsonl")
    for x in lines:
        x["id"] = "PAY-1"  # a record of the bundle; the value still opens BP-1's commitment
    _write_lines(bag / "bfa/disclosures.jsonl", lines)
    reseal(bag, mallory)
    assert_fails(bag, shop.key, "disclosures", "bfa/disclosures.jsonl", shop.seq["BP-1"])


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
@pytest.mark.parametrize("name", [*TAMPERS, None])
def test_entries_checked_by_the_pool_in_small_chunks_give_the_same_verdicts(
        shop: Shop, other: Other, mallory: Signer, tmp_path: Path, name: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The entries check runs in chunks on the pool's workers (and on this process when it
    takes a queued chunk over), the stated findings are read by a worker: with chunks of
    three lines, so that a bundle's entries are many chunks, every tamper gets exactly
    the verdicts (check, detail, file, entry) of the checks run one after another."""
    import archive._bundle_verify as bv
    from ledger import Verifier

    bag = (_tampered(shop, other, mallory, tmp_path, TAMPERS[name])[0] if name
           else shop.bundles["break"])
    key = Verifier.from_text(shop.key.read_text("utf-8").strip())
    inline = bv.verify_bundle(bag, key, parallel=False).to_json()
    monkeypatch.setattr(bv, "ENTRY_CHUNK", 3)
    pooled = bv.verify_bundle(bag, key, parallel=True).to_json()
    chunked = bv.verify_bundle(bag, key, parallel=False).to_json()
    assert pooled == inline
    assert chunked == inline
    assert inline["ok"] is (name is None), inline


_DYING: tuple[int, Any] = (0, None)
"""The process whose entry checks go on, and the check (the test below sets them)."""


def _dying_check(*args: Any) -> Any:
    """The entries check, except in a worker of the pool, which it kills."""
    parent, check = _DYING
    if os.getpid() != parent:
        os._exit(9)
    return check(*args)


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
@pytest.mark.parametrize("kind", ["killed", "unpicklable"])
def test_a_worker_that_dies_leaves_no_verdict_on_unfinished_work(
        shop: Shop, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """A worker of the pool killed while it checks entries (or a task that cannot reach
    one): this process checks those entries itself. The verdicts are those of the
    checks run one after another, unless the bag's hashing died with the pool: then the
    bag check fails saying so, and every later verdict is withdrawn."""
    import archive._bundle_verify as bv
    from ledger import Verifier

    key = Verifier.from_text(shop.key.read_text("utf-8").strip())
    inline = bv.verify_bundle(shop.bundles["break"], key, parallel=False).to_json()
    check = bv._check_entries
    if kind == "killed":
        monkeypatch.setattr(sys.modules[__name__], "_DYING", (os.getpid(), check))
        monkeypatch.setattr(bv, "_check_entries", _dying_check)
    else:
        monkeypatch.setattr(bv, "_check_entries", lambda *args: check(*args))
    monkeypatch.setattr(bv, "ENTRY_CHUNK", 3)
    report = bv.verify_bundle(shop.bundles["break"], key, parallel=True).to_json()
    first, *rest = report["verdicts"]
    if first["ok"] is False:
        assert kind == "killed" and "stopped" in first["detail"], report
        assert all(v["ok"] is None for v in rest), report
    else:
        assert report == inline


@pytest.mark.parametrize("shop", BACKENDS[:1], indirect=True)
@pytest.mark.parametrize("name", ["voucher-byte/stale", "unlisted-tag-file/stale",
                                  "leaf-edited/sign", "finding-changed/sign", None])
def test_bag_hashed_in_a_child_gives_the_same_verdicts(
        shop: Shop, other: Other, mallory: Signer, tmp_path: Path, name: str | None) -> None:
    """The bag check runs in a child process beside the others (two cores): whether it
    passes or fails, the verdicts are the ones of the checks run one after another."""
    from archive import verify_bundle
    from ledger import Verifier

    bag = (_tampered(shop, other, mallory, tmp_path, TAMPERS[name])[0] if name
           else shop.bundles["break"])
    key = Verifier.from_text(shop.key.read_text("utf-8").strip())
    inline = verify_bundle(bag, key, parallel=False).to_json()
    beside = verify_bundle(bag, key, parallel=True).to_json()
    assert beside == inline
    assert inline["ok"] is (name is None), inline
    if name and name.endswith("/stale"):
        assert [v["ok"] for v in inline["verdicts"]] == [False] + [None] * (len(CHECKS) - 1)
