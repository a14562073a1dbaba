"""Our proofs verify with transparency-log code we did not write: Go's x/mod/sumdb.

``verify_tlog.go`` (next to this file) opens checkpoints with
``golang.org/x/mod/sumdb/note`` and checks audit paths with
``golang.org/x/mod/sumdb/tlog`` (``CheckRecord``, ``CheckTree``), given only the
verifier key that ``bfa key export`` prints. It is built once per session in
GOPATH mode against Debian's sources (no Go module proxy needed)::

    apt-get install -y golang-go golang-golang-x-mod-dev

Without ``go`` these tests are skipped, or fail when ``BFA_REQUIRE_GO=1`` (CI).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from tests._records import payment_event, write_jsonl

HERE = Path(__file__).resolve().parent
GO_SOURCE = HERE / "verify_tlog.go"
DEBIAN_GOPATH = Path("/usr/share/gocode")
INSTALL_HINT = (
    "the Go interop tests need Go and the golang.org/x/mod sources: "
    "apt-get install -y golang-go golang-golang-x-mod-dev "
    "(built with GO111MODULE=off GOPATH=/usr/share/gocode; set BFA_REQUIRE_GO=1 to make "
    "their absence a failure)"
)

# Checkpoints are signed at these tree sizes; proofs are made for these indexes
# right after each checkpoint, while it is the latest one.
SIZES = (1, 2, 7, 33)
PROVE_AT = {1: (0,), 2: (0, 1), 7: (0, 2, 5, 6), 33: (0, 1, 7, 16, 31, 32)}
PAIRS = [(old, new) for old in SIZES for new in SIZES if old <= new]

# What Go says when an audit path does not lead to the signed root (tlog.errProofFailed).
PROOF_FAILED = "invalid transparency proof"


def _missing(why: str) -> None:
    if os.environ.get("BFA_REQUIRE_GO") == "1":
        pytest.fail(f"{why}; {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{why}; {INSTALL_HINT}")


@pytest.fixture(scope="session")
def verify_tlog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go verifier, built once per session (GOPATH mode, private GOCACHE)."""
    go = shutil.which("go")
    if go is None:
        _missing("`go` is not on PATH")
    assert go is not None
    if not (DEBIAN_GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        _missing(f"no golang.org/x/mod sources under {DEBIAN_GOPATH}")
    work = tmp_path_factory.mktemp("go")
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOPATH=os.pathsep.join([str(DEBIAN_GOPATH), str(work / "gopath")]),
        GOCACHE=str(work / "cache"),
        GOFLAGS="",
        GOTOOLCHAIN="local",
    )
    exe = work / "verify_tlog"
    built = subprocess.run([go, "build", "-o", str(exe), str(GO_SOURCE)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0:
        if "cannot find package" in built.stderr:
            _missing(f"go build cannot find x/mod: {built.stderr.strip()}")
        pytest.fail(f"go build verify_tlog.go failed:\n{built.stderr}", pytrace=False)
    return exe


@dataclass(frozen=True)
class Go:
    """Runs the Go verifier; ``accepts`` / ``rejects`` assert its verdict."""

    exe: Path

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.exe), *map(str, args)], capture_output=True, text=True,
                              timeout=60)

    def accepts(self, *args: str | Path) -> str:
        r = self.run(*args)
        assert r.returncode == 0 and r.stdout.startswith("ok "), (
            f"Go rejected {args[0]}: rc={r.returncode} {r.stderr.strip()}")
        return r.stdout

    def rejects(self, *args: str | Path, because: str) -> str:
        r = self.run(*args)
        assert r.returncode == 1, f"Go accepted a bad {args[0]} proof: {r.stdout.strip()}"
        assert because in r.stderr, f"unexpected reason: {r.stderr.strip()}"
        return r.stderr


@pytest.fixture
def go(verify_tlog: Path) -> Go:
    return Go(verify_tlog)


class Log:
    """A ledger grown to each of SIZES, with proofs from the library or the real CLI."""

    def __init__(self, home: dict[str, Any], work: Path) -> None:
        self.home = home
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.led = Ledger.open(home["home"], home["db"])
        self.size = 0
        self.ids: list[tuple[str, str]] = []  # (record id, domain) of each entry, by index
        self.payments = 0
        self.notes: dict[int, Path] = {}

    def close(self) -> None:
        self.led.close()

    def cli(self, *args: str) -> bytes:
        env = dict(os.environ)
        env.update(BFA_HOME=self.home["home"], BFA_DATABASE_URL=self.home["db"], BFA_USER="go")
        r = subprocess.run([sys.executable, "-m", "cli", *args], env=env, cwd=self.work,
                           capture_output=True, timeout=120)
        assert r.returncode == 0, f"bfa {' '.join(args)}: {r.stderr.decode()}"
        return r.stdout

    def grow_to(self, size: int) -> None:
        """Append exactly ``size - self.size`` entries: a batch of payments ends with its
        ``control.ingest`` entry (FORMAT.md §2.5), so one more entry is a ``control.forget``."""
        grow = size - self.size
        if grow == 1:
            self.led.forget("P-nobody")
        else:
            first, self.payments = self.payments, self.payments + grow - 1
            batch = write_jsonl(self.work / f"batch-{size}.jsonl",
                                [payment_event(i) for i in range(first, self.payments)])
            self.led.ingest([str(batch)], None)
        assert self.led.size() == size
        for seq in range(self.size, size):
            entry = self.led.entry_at(seq)
            self.ids.append((entry.record_id, entry.domain))
        self.size = size

    def record(self, index: int) -> str:
        return self.ids[index][0]

    def checkpoint(self, *, cli: bool) -> Path:
        path = self.work / f"cp-{self.size}.note"
        if cli:
            self.cli("checkpoint", "--out", str(path))
        else:
            path.write_text(self.led.checkpoint().note, encoding="utf-8")
        self.notes[self.size] = path
        return path

    def prove(self, index: int, *, cli: bool) -> Path:
        path = self.work / f"proof-{self.size}-{index}.tlog-proof"
        if cli:
            rid, domain = self.ids[index]
            path.write_bytes(self.cli("prove", rid, "--domain", domain))
        else:
            entry, proof = self.led.prove(*self.ids[index])
            assert entry.seq == index
            path.write_text(proof.marshal(), encoding="utf-8")
        return path

    def consistency(self, old: int, new: int, *, cli: bool) -> Path:
        path = self.work / f"consistency-{old}-{new}.txt"
        if cli:
            path.write_bytes(self.cli("prove", "--consistency", str(old), str(new)))
        else:
            path.write_text(self.led.prove_consistency(old, new).to_text(), encoding="utf-8")
        return path


@pytest.fixture
def log(ledger_home: dict[str, Any], tmp_path: Path) -> Iterator[Log]:
    lg = Log(ledger_home, tmp_path / "log")
    yield lg
    lg.close()


@pytest.fixture
def built(log: Log) -> Log:
    """The log of SIZES with checkpoints made in-process (no CLI), for negative cases."""
    for size in SIZES:
        log.grow_to(size)
        log.checkpoint(cli=False)
    return log


# -- editing proof texts -------------------------------------------------------


def _edit_line(text: str, lineno: int, edit: Callable[[str], str]) -> str:
    """``text`` with line ``lineno`` (1-based, before the checkpoint) replaced by ``edit(line)``."""
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    lines[lineno - 1] = edit(lines[lineno - 1])
    return "\n".join(lines) + sep + note


def _flip_bit(bit: int) -> Callable[[str], str]:
    """An edit flipping one bit of a base64 line (optionally after a ``word `` prefix)."""

    def edit(line: str) -> str:
        prefix, _, b64 = line.rpartition(" ")
        raw = bytearray(base64.b64decode(b64, validate=True))
        raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
        return (prefix + " " if prefix else "") + base64.b64encode(bytes(raw)).decode()

    return edit


def _replace_with(new: str) -> Callable[[str], str]:
    """An edit replacing the whole line with ``new``."""
    return lambda _old: new


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _hash_lines(text: str, first: int) -> list[int]:
    """Line numbers (1-based) of the hash lines: from ``first`` to the empty line."""
    head = text.partition("\n\n")[0].split("\n")
    return list(range(first, len(head) + 1))


# -- tests ---------------------------------------------------------------------


def test_cli_proofs_verify_with_go(log: Log, go: Go) -> None:
    """Inclusion at many indexes of trees 1, 2, 7, 33 and consistency between every pair."""
    vkey = log.cli("key", "export").decode().strip()
    assert vkey.startswith(log.led.origin + "+")
    for size in SIZES:
        log.grow_to(size)
        log.checkpoint(cli=True)
        for index in PROVE_AT[size]:
            # The last index of each tree through the real CLI; both ways give the same text.
            by_cli = index == PROVE_AT[size][-1]
            proof = log.prove(index, cli=by_cli)
            if by_cli:
                same = log.led.prove(*log.ids[index])[1].marshal()
                assert proof.read_text(encoding="utf-8") == same
            out = go.accepts("inclusion", vkey, proof)
            assert f" index={index} size={size} " in out, out
    # Go's RecordHash of the 'extra' line is our leaf hash of the bytes `bfa show --raw` writes.
    raw = log.cli("show", log.record(16), "--entry", "--raw")
    proof_text = (log.work / "proof-33-16.tlog-proof").read_text(encoding="utf-8")
    assert proof_text.split("\n")[1] == "extra " + base64.b64encode(raw).decode()
    leaf_hash = hashlib.sha256(b"\x00" + raw).digest()
    assert leaf_hash == log.led.entry(log.record(16)).entry_hash
    out = go.accepts("inclusion", vkey, log.work / "proof-33-16.tlog-proof")
    assert f" leaf={base64.b64encode(leaf_hash).decode()}" in out

    for old, new in PAIRS:
        proof = log.consistency(old, new, cli=(old, new) in {(1, 33), (2, 7)})
        out = go.accepts("consistency", vkey, log.notes[old], log.notes[new], proof)
        assert f" old={old} new={new} " in out, out


def test_go_rejects_flipped_proof_bits(built: Log, go: Go) -> None:
    vkey = built.led.home.verifier().to_text()
    path = built.prove(7, cli=False)
    text = path.read_text(encoding="utf-8")
    go.accepts("inclusion", vkey, path)
    hash_lines = _hash_lines(text, first=4)  # header, extra, index, then the audit path
    assert len(hash_lines) == 6
    for lineno in hash_lines:
        for bit in (0, 131, 255):
            bad = _write(built.work / "bad.tlog-proof", _edit_line(text, lineno, _flip_bit(bit)))
            go.rejects("inclusion", vkey, bad, because=PROOF_FAILED)

    notes = built.notes
    for old, new in [(1, 33), (2, 7), (7, 33)]:
        path = built.consistency(old, new, cli=False)
        text = path.read_text(encoding="utf-8")
        go.accepts("consistency", vkey, notes[old], notes[new], path)
        for lineno in _hash_lines(text, first=2):  # "old N", then the proof
            bad = _write(built.work / "bad.txt", _edit_line(text, lineno, _flip_bit(77)))
            go.rejects("consistency", vkey, notes[old], notes[new], bad, because=PROOF_FAILED)


def test_go_rejects_tampered_leaf_index_and_path(built: Log, go: Go) -> None:
    vkey = built.led.home.verifier().to_text()
    path = built.prove(16, cli=False)
    text = path.read_text(encoding="utf-8")
    go.accepts("inclusion", vkey, path)
    bad = built.work / "bad.tlog-proof"

    # The 'extra' leaf bytes: one flipped bit, or a changed amount in the record JSON.
    for bit in (0, 8 * 40 + 3, 8 * 200):
        go.rejects("inclusion", vkey, _write(bad, _edit_line(text, 2, _flip_bit(bit))),
                   because=PROOF_FAILED)
    leaf = base64.b64decode(text.split("\n")[1].removeprefix("extra "))
    forged = leaf.replace(b'"amount":"3456.78"', b'"amount":"9456.78"')
    assert forged != leaf
    forged_line = "extra " + base64.b64encode(forged).decode()
    go.rejects("inclusion", vkey, _write(bad, _edit_line(text, 2, _replace_with(forged_line))),
               because=PROOF_FAILED)

    # Another index, one hash fewer or one more.
    for other in (15, 17, 0, 32):
        moved = _edit_line(text, 3, _replace_with(f"index {other}"))
        go.rejects("inclusion", vkey, _write(bad, moved), because=PROOF_FAILED)
    head, _, note = text.partition("\n\n")
    go.rejects("inclusion", vkey, _write(bad, head.rsplit("\n", 1)[0] + "\n\n" + note),
               because=PROOF_FAILED)
    extra_hash = base64.b64encode(bytes(32)).decode()
    go.rejects("inclusion", vkey, _write(bad, head + "\n" + extra_hash + "\n\n" + note),
               because=PROOF_FAILED)

    # The signed checkpoint itself: any change to its text breaks the signature.
    forged_note = note.replace("\n33\n", "\n34\n", 1)
    assert forged_note != note
    go.rejects("inclusion", vkey, _write(bad, head + "\n\n" + forged_note),
               because="invalid signature for key")


def test_go_rejects_another_ledgers_key(built: Log, go: Go, tmp_path: Path) -> None:
    vkey = built.led.home.verifier().to_text()
    proof = built.prove(5, cli=False)
    consistency = built.consistency(2, 33, cli=False)
    notes = built.notes
    go.accepts("inclusion", vkey, proof)
    go.accepts("consistency", vkey, notes[2], notes[33], consistency)

    # Another ledger under the same origin name (a different key, so another key hash),
    # and one under another name: neither key opens our checkpoints.
    for k, origin in enumerate([built.led.origin, "other.bfa.example/ledger"]):
        other = Ledger.open(str(tmp_path / f"other{k}"), f"sqlite:///{tmp_path / f'other{k}.db'}",
                            check=False)
        try:
            other.init(origin)
            other_vkey = other.home.verifier().to_text()
        finally:
            other.close()
        assert other_vkey.split("+")[0] == origin and other_vkey != vkey
        go.rejects("inclusion", other_vkey, proof, because="note has no verifiable signatures")
        go.rejects("consistency", other_vkey, notes[2], notes[33], consistency,
                   because="note has no verifiable signatures")
