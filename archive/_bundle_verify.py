"""Offline verification of a proof bundle (``bfa bundle verify``; FORMAT.md §12.5).

Needs the bundle and the ledger's verifier key, nothing else: no home, no database of
ours. Each check gives one :class:`Verdict`; a failing check names the first failure by
file and entry. In order:

``bag``          a complete BagIt 1.0 bag: every file listed, no file unlisted (but
                 ``bundle.sig``), every digest right (``archive._bagit.read_bag``);
``signature``    ``bundle.sig`` is a signed note of ``tagmanifest-sha256.txt``'s text by
                 the exporter key in ``bfa/exporter.key`` (or the one given);
``checkpoint``   ``bfa/checkpoint.note`` is signed by the verifier key given, for the
                 bundle's origin, of the size and root ``bfa/bundle.json`` states;
``entries``      every ``data/entries/<seq>.leaf`` is listed once in ``bfa/entries.jsonl``
                 with its domain, kind, id and entry hash, and its tlog-proof proves it
                 into that checkpoint;
``vouchers``     every voucher record's file is in ``data/vouchers/`` and hashes to the
                 record's ``sha256`` and ``size``;
``disclosures``  every disclosed value opens its entry's commitment;
``closure``      everything a scoped record names (and a movement's allocation events)
                 is in the bundle;
``consistency``  with a ``since`` checkpoint: the consistency proof from it;
``findings``     the workflow history entries agree with the states stated, and every
                 finding whose inputs are all in the bundle is re-derived with the
                 bundled rules in a scratch SQLite ledger — missing, added or changed
                 findings fail; the others are listed as not re-derivable here.

Entries are streamed into the scratch ledger, so memory stays flat in the bundle's size.
On two cores a pool of two workers shares the work (ADR 0038): the bag's hashing, the
entries check in chunks of lines, the reading of ``bfa/findings.json``; the verdicts are
those of the checks run one after another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import multiprocessing as mp
import os
import re
import signal
import sqlite3
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any, BinaryIO

import ijson
from sqlalchemy import Connection, select, text

from archive._bagit import BagError, read_bag
from ledger import (
    BfaError,
    Checkpoint,
    FormatError,
    InclusionChecker,
    Ledger,
    TLogProof,
    Verifier,
    commitment,
    decode_leaf,
    entries,
    entry_hash,
    insert_entries,
    leaf_record,
    open_checkpoint,
    open_note,
    scratch_ledger,
    verify_consistency,
    verify_inclusion,
)
from reconcile import RULESET_VERSION, Break, Msg, Rules, derive_breaks, msg, rules_digest
from schemas import N_, current_language, gettext, language

SIGNATURE = "bundle.sig"
FORMAT_NAME = "bfa-bundle/1"
_PAYLOAD = re.compile(r"data/entries/(0|[1-9][0-9]*)\.leaf|data/vouchers/[0-9a-f]{64}")
_TAG = re.compile(r"bfa/proofs/(0|[1-9][0-9]*)\.tlog-proof|(tag)?manifest-sha(256|512)\.txt")
_TAGS = frozenset({
    "bagit.txt", "bag-info.txt", SIGNATURE, "index.html", "bfa/bundle.json",
    "bfa/entries.jsonl", "bfa/vouchers.jsonl", "bfa/checkpoint.note", "bfa/since.note",
    "bfa/consistency.txt", "bfa/findings.json", "bfa/disclosures.jsonl", "bfa/verifier.key",
    "bfa/exporter.key"})
"""The files a bundle may hold (FORMAT.md §12.1); anything else fails the bag check."""
CHECKS = ("bag", "signature", "checkpoint", "entries", "vouchers", "disclosures", "closure",
          "consistency", "findings")
CHECK_NAMES = {
    "bag": N_("the bag check"), "signature": N_("the signature check"),
    "checkpoint": N_("the checkpoint check"), "entries": N_("the entries check"),
    "vouchers": N_("the vouchers check"), "disclosures": N_("the disclosures check"),
    "closure": N_("the closure check"), "consistency": N_("the consistency check"),
    "findings": N_("the findings check")}
"""Each check's name for a reader (:meth:`Verdict.name`); the ids of :data:`CHECKS` are
what programs and tests read, in every language."""

RE_DERIVABLE = frozenset({"UNSETTLED_EVENT", "AMOUNT_MISMATCH", "LATE_SETTLEMENT",
                          "MISSING_VOUCHER"})
"""Codes a bundle's closure holds every input of, when every record the finding names is
in the bundle and one is scoped: an event, the movements allocating to it or matched with
it, their allocations, the vouchers referring to them and what those refer to. Others
depend on records no closure brings along (other payments or approvals of the person,
terminations, the ledger's control entries, statements)."""


class BundleFailure(Exception):
    """A check failed: what (a message, or English text from elsewhere), in which file, at
    which entry. ``reason`` is the English text."""

    def __init__(self, reason: Msg | str, file: str | None = None, entry: int | None = None):
        english = reason.english() if isinstance(reason, Msg) else reason
        super().__init__(english)
        self.reason, self.file, self.entry = english, file, entry
        self.message = reason if isinstance(reason, Msg) else None


@dataclass(frozen=True)
class _Skip:
    """What a check that had nothing to check returns: its verdict is "-" (None)."""

    why: Msg


@dataclass
class Verdict:
    check: str
    ok: bool | None
    """None: not run (an earlier check failed, or nothing to check)."""
    detail: str = ""
    """In English: what ``--json`` holds and programs compare."""
    file: str | None = None
    entry: int | None = None
    detail_msg: Msg | None = field(default=None, repr=False, compare=False)
    """The detail's template and parameters (None: text from elsewhere, English only)."""

    @classmethod
    def of(cls, check: str, ok: bool | None, detail: Msg | str, file: str | None = None,
           entry: int | None = None) -> Verdict:
        """A verdict whose detail is a message (kept beside its English) or plain text."""
        if isinstance(detail, Msg):
            return cls(check, ok, detail.english(), file, entry, detail)
        return cls(check, ok, detail, file, entry)

    def text(self) -> str:
        """The detail in the current language (``detail`` when it has no template)."""
        return self.detail if self.detail_msg is None else self.detail_msg.text()

    def name(self) -> str:
        """The check for a reader: its id, and beside it its name in the current language
        (``bag 包``); the id alone in English."""
        name = CHECK_NAMES.get(self.check)
        if name is None or current_language() == "en":
            return self.check
        return f"{self.check} {gettext(name)}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "file": self.file,
                "entry": self.entry}


class NotRederivable:
    """The findings a verification could not re-derive, in the order found: ``{"id",
    "code", "why"}`` items (``why`` in English, as ``--json`` gives it).

    A bundle of a whole month may leave hundreds of thousands of them: past
    :data:`KEPT` items they go to an anonymous temporary file, one JSON line each, so
    memory stays flat in the bundle's size. Iterating reads them back in order; ``len``
    and the first items (:meth:`head`) cost nothing."""

    KEPT = 1000

    def __init__(self) -> None:
        self._head: list[tuple[str, str, str]] = []
        self._file: IO[bytes] | None = None
        self._n = 0
        self._whys: dict[str, Msg] = {}
        """Each distinct reason by its English text (a handful: one per code)."""

    def add(self, bid: str, code: str, why: Msg) -> None:
        english = why.english()
        self._whys.setdefault(english, why)
        self._n += 1
        if len(self._head) < self.KEPT:
            self._head.append((bid, code, english))
            return
        if self._file is None:
            # closed by close(), or when the report is collected
            self._file = tempfile.TemporaryFile(prefix="bfa-unrederived-")  # noqa: SIM115
        self._file.write(json.dumps([bid, code, english], ensure_ascii=False).encode()
                         + b"\n")

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def head(self, n: int) -> list[dict[str, str]]:
        """The first ``n`` items (at most :data:`KEPT`)."""
        return [self._item(*t) for t in self._head[:n]]

    def why_text(self, item: Mapping[str, str]) -> str:
        """An item's ``why`` in the current language."""
        why = self._whys.get(item["why"])
        return item["why"] if why is None else why.text()

    def __iter__(self) -> Iterator[dict[str, str]]:
        for t in self._head:
            yield self._item(*t)
        if self._file is None:
            return
        f = self._file
        f.flush()
        f.seek(0)
        for raw in f:
            bid, code, english = json.loads(raw)
            yield self._item(bid, code, english)
        f.seek(0, os.SEEK_END)

    @staticmethod
    def _item(bid: str, code: str, english: str) -> dict[str, str]:
        return {"id": bid, "code": code, "why": english}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class BundleReport:
    """Every verdict, and the findings that could not be re-derived here."""

    verdicts: list[Verdict] = field(default_factory=list)
    not_rederivable: NotRederivable = field(default_factory=NotRederivable)
    claims: dict[str, Any] = field(default_factory=dict)

    def not_rederivable_here(self, bid: str, code: str, why: Msg) -> None:
        self.not_rederivable.add(bid, code, why)

    @property
    def ok(self) -> bool:
        return all(v.ok is not False for v in self.verdicts)

    @property
    def first_failure(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.ok is False), None)

    def to_json(self, *, listed: bool = True) -> dict[str, Any]:
        """The report as ``--json`` prints it; ``listed=False`` leaves out
        ``not_rederivable`` (to be streamed from :attr:`not_rederivable`)."""
        out: dict[str, Any] = {
            "ok": self.ok, "verdicts": [v.to_json() for v in self.verdicts],
            "bundle": {k: self.claims.get(k) for k in
                       ("id", "origin", "created_at", "checkpoint", "scope", "counts")}}
        if listed:
            out["not_rederivable"] = list(self.not_rederivable)
        return out


def _read_json(root: Path, rel: str) -> Any:
    try:
        return json.loads((root / rel).read_text("utf-8"))
    except FileNotFoundError as e:
        raise BundleFailure(msg("missing"), rel) from e
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleFailure(msg("not JSON: {error}", error=e), rel) from e


def signed_text(root: Path, bundle_id: str) -> str:
    """The text the exporter signs (FORMAT.md §12.4): the format, the bundle id and the
    SHA-256 and SHA-512 of the two tag manifests' bytes, one per line."""
    lines = [FORMAT_NAME, bundle_id]
    for alg in ("sha256", "sha512"):
        with (root / f"tagmanifest-{alg}.txt").open("rb") as f:
            lines.append(f"tagmanifest-{alg}.txt {alg} "
                         f"{hashlib.file_digest(f, alg).hexdigest()}")
    return "".join(line + "\n" for line in lines)


def _text(root: Path, rel: str) -> str:
    """A text file of the bundle, its exact bytes as UTF-8 (no newline translation);
    missing or not UTF-8 is a failure naming it."""
    try:
        return (root / rel).read_bytes().decode("utf-8")
    except FileNotFoundError as e:
        raise BundleFailure(msg("missing"), rel) from e
    except UnicodeDecodeError as e:
        raise BundleFailure(msg("not UTF-8 text ({error} at byte {byte})", error=e.reason,
                                byte=e.start), rel) from e
    except OSError as e:
        raise BundleFailure(msg("cannot be read: {error}", error=e.strerror), rel) from e


def _jsonl(root: Path, rel: str) -> Iterator[tuple[int, dict[str, Any]]]:
    path = root / rel
    if not path.is_file():
        raise BundleFailure(msg("missing"), rel)
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            yield n, _json_object(raw, n, rel)


def _json_object(raw: bytes, n: int, rel: str) -> dict[str, Any]:
    """Line ``n`` of JSON Lines file ``rel``: one JSON object, else a failure naming both."""
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise BundleFailure(msg("line {line} is not JSON: {error}", line=n, error=e),
                            rel) from e
    if not isinstance(obj, dict):
        raise BundleFailure(msg("line {line} is not a JSON object", line=n), rel)
    return obj


def verify_bundle(root: Path, key: Verifier, *, exporter_key: Verifier | None = None,
                  progress: Callable[[int], None] | None = None,
                  parallel: bool | None = None) -> BundleReport:
    """Check the bundle in ``root`` against the ledger verifier key ``key`` (module
    docstring). Never raises for a bad bundle: every failure is a verdict.

    With ``parallel`` (by default when the machine has two cores and can fork), a pool of
    :data:`_WORKERS` forked workers hashes the bag's files, checks the entries chunk by
    chunk beside this process (which writes them into the scratch ledger, and checks a
    queued chunk itself rather than wait) and reads the stated findings; the bag's
    verdict still comes first, and when it fails every later verdict is withdrawn as "not
    checked", exactly as when the checks run one after another."""
    report = BundleReport()
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and "fork" in mp.get_all_start_methods()
    # verdicts are data (``--json``): an error's words copied into one stay English
    with tempfile.TemporaryDirectory(prefix="bfa-bundle-") as tmp, language("en"):
        ctx = _Context(root, key, exporter_key, Path(tmp), report, progress)
        steps: list[tuple[str, _Step]] = [
            ("bag", ctx.bag), ("signature", ctx.signature), ("checkpoint", ctx.checkpoint),
            ("entries", ctx.entries), ("vouchers", ctx.vouchers),
            ("disclosures", ctx.disclosures), ("closure", ctx.closure),
            ("consistency", ctx.consistency), ("findings", ctx.findings)]
        pool = (ProcessPoolExecutor(_WORKERS, mp_context=mp.get_context("fork"),
                                    initializer=_quiet_worker)
                if parallel and root.is_dir() else None)
        try:
            if pool is not None:
                ctx.hashing = pool.submit(_bag_files, root)
                ctx.pool = pool
            _run(steps, report, root)
            if ctx.hashing is not None:
                _settle_bag(report, ctx.hashing)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if ctx.ledger is not None:
                ctx.ledger.close()
    return report


_Step = Callable[[], Msg | _Skip]
"""A check: what it found when it passed, :class:`_Skip` when there was nothing to check;
it raises :class:`BundleFailure` when it fails."""

_FATAL = ("bag", "signature", "checkpoint", "entries")
"""Checks after whose failure the others are not run: they would judge unproven bytes."""


def _run(steps: list[tuple[str, _Step]], report: BundleReport, root: Path) -> None:
    failed = False
    for name, step in steps:
        if failed:
            report.verdicts.append(_not_checked(name))
            continue
        try:
            detail = step()
            report.verdicts.append(Verdict.of(name, None, detail.why) if isinstance(
                detail, _Skip) else Verdict.of(name, True, detail))
        except BundleFailure as e:
            report.verdicts.append(Verdict.of(name, False, e.message or e.reason, e.file,
                                              e.entry))
            failed = name in _FATAL
        except (OSError, UnicodeError, ValueError, TypeError, KeyError, AttributeError,
                BfaError) as e:  # a file the signed manifests hold, malformed
            report.verdicts.append(_malformed(name, e, root))
            failed = name in _FATAL


def _malformed(name: str, e: Exception, root: Path) -> Verdict:
    where = getattr(e, "filename", None)
    rel = (str(Path(where).relative_to(root)) if where and Path(where).is_relative_to(root)
           else None)
    return Verdict.of(name, False, msg("malformed or missing: {error_type}: {error}",
                                       error_type=type(e).__name__, error=e), rel)


def _not_checked(name: str) -> Verdict:
    return Verdict.of(name, None, msg("not checked: an earlier check failed"))


def _settle_bag(report: BundleReport, hashing: Future[Verdict]) -> None:
    """Put the child's bag verdict first; when it failed, withdraw every later one."""
    try:
        verdict = hashing.result()
    except BrokenProcessPool as e:  # the child died (killed, out of memory)
        verdict = Verdict.of("bag", False, msg("could not be checked: the hashing process "
                                               "stopped ({error})", error=e))
    first = report.verdicts[0]
    if verdict.ok is False or first.ok is False:
        report.verdicts[0] = verdict if verdict.ok is False else first
        if verdict.ok is False:  # claims of a bag that is not whole are not shown
            report.claims = {}
        for i in range(1, len(report.verdicts)):
            report.verdicts[i] = _not_checked(report.verdicts[i].check)
    else:
        first.detail, first.detail_msg = verdict.detail, verdict.detail_msg


def _bag_files(root: Path, progress: Callable[[int], None] | None = None) -> Verdict:
    """The bag check proper (FORMAT.md §12.5 ``bag``): a complete BagIt bag of a bundle's
    layout whose every file hashes to its manifests. Runs in a child process, or inline."""
    try:
        bag = read_bag(root, unlisted_tags_allowed=frozenset({SIGNATURE}),
                       on_progress=progress)
        for path in bag.payload:
            if not _PAYLOAD.fullmatch(path):
                raise BundleFailure(msg("is no entry leaf or voucher file of a bundle "
                                        "(FORMAT.md §12.1)"), path)
        for path in bag.tag_files:
            if not (_TAG.fullmatch(path) or path in _TAGS):
                raise BundleFailure(msg("is no file of a bundle's layout (FORMAT.md §12.1)"),
                                    path)
    except BagError as e:  # its reason is English text of the BagIt reader
        return Verdict("bag", False, e.reason, e.file)
    except BundleFailure as e:
        return Verdict.of("bag", False, e.message or e.reason, e.file)
    except (OSError, UnicodeError, ValueError) as e:
        return _malformed("bag", e, root)
    return Verdict.of("bag", True, msg("{files} payload file(s), {octets} bytes, all listed",
                                       files=bag.payload_count, octets=bag.payload_octets))


ENTRY_CHUNK = 1000
"""Lines of ``bfa/entries.jsonl`` checked as one task (and written as one batch)."""
_WORKERS = 2
"""Processes of the pool (with ``parallel``): the bag's hashing takes one while the other
checks entries; once it is done, both do."""


@dataclass(frozen=True)
class _EntryJob:
    """What checking an entry needs: the bundle's folder and its checkpoint."""

    root: str
    size: int
    root_hash: bytes
    note: bytes
    """``bfa/checkpoint.note``'s bytes, the end of every proof spelled exactly."""


_CheckedEntry = tuple[int, str, str, str, bytes, bytes, str]
"""``(seq, domain, kind, record id, leaf, entry hash, role)`` of a proven entry."""
_Failure = tuple["Msg | str", "str | None", "int | None"] | Exception
"""A :class:`BundleFailure` as ``(reason, file, entry)`` (it crosses processes so), or
another error, raised again by the caller as it would have been raised here."""
_Checked = tuple[list[_CheckedEntry], "_Failure | None"]


def _done(result: _Checked) -> Future[_Checked]:
    """A future already holding ``result``."""
    future: Future[_Checked] = Future()
    future.set_result(result)
    return future


def _check_entries(job: _EntryJob, first: int, lines: list[bytes]) -> _Checked:
    """Check the lines ``first``, ``first + 1``, … of ``bfa/entries.jsonl`` (FORMAT.md
    §12.5 ``entries``): each names a leaf that decodes strictly, whose tlog-proof proves
    it into the checkpoint. Stops at the first failure. Runs in a worker of the pool, or
    inline; pure: the same lines give the same answer anywhere."""
    out: list[_CheckedEntry] = []
    rel = "bfa/entries.jsonl"
    paths = InclusionChecker(job.size, job.root_hash)
    lines64: dict[bytes, bytes] = {}
    try:
        for n, raw in enumerate(lines, first):
            out.append(_entry(job, n, _json_object(raw, n, rel), paths, lines64))
    except BundleFailure as e:
        return out, (e.message or e.reason, e.file, e.entry)
    except Exception as e:  # raised again by the caller, as it would have been here
        return out, e
    return out, None


def _entry(job: _EntryJob, n: int, line: Mapping[str, Any], paths: InclusionChecker,
           lines64: dict[bytes, bytes]) -> _CheckedEntry:
    rel = "bfa/entries.jsonl"
    seq = line.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise BundleFailure(msg("line {line}: seq must be an integer", line=n), rel)
    role = line.get("role")
    if role not in ("scope", "closure", "history"):
        raise BundleFailure(msg("line {line}: unknown role {role}", line=n,
                                role=repr(role)), rel, seq)
    leaf_rel = f"data/entries/{seq}.leaf"
    try:
        with open(os.path.join(job.root, leaf_rel), "rb") as f:
            leaf = f.read()
    except FileNotFoundError as e:
        raise BundleFailure(msg("missing"), leaf_rel, seq) from e
    try:
        entry = decode_leaf(leaf)
    except FormatError as e:
        raise BundleFailure(msg("not a leaf input: {error}", error=e), leaf_rel,
                            seq) from e
    h = entry.entry_hash
    if entry.seq != seq:
        raise BundleFailure(msg("the leaf says it is entry {seq}", seq=entry.seq), leaf_rel,
                            seq)
    if (line.get("domain"), line.get("kind"), line.get("id")) != (
            entry.domain, entry.kind, entry.record_id) or line.get("hash") != h.hex():
        raise BundleFailure(msg("line {line} names another record or hash than the leaf "
                                "holds", line=n), rel, seq)
    proof_rel = f"bfa/proofs/{seq}.tlog-proof"
    try:
        with open(os.path.join(job.root, proof_rel), "rb") as f:
            raw = f.read()
    except FileNotFoundError as e:
        raise BundleFailure(msg("missing"), proof_rel, seq) from e
    path = _exact_proof(raw, seq, leaf, job.note, lines64)
    if path is None:  # not the one spelling the exporter writes: parse it strictly
        try:
            proof = TLogProof.parse(raw.decode("utf-8"))
        except (FormatError, UnicodeDecodeError) as e:
            raise BundleFailure(msg("not a tlog-proof: {error}", error=e), proof_rel,
                                seq) from e
        if (proof.index != seq or proof.extra != leaf
                or proof.checkpoint.encode("utf-8") != job.note):
            raise BundleFailure(msg("proves another entry, leaf or checkpoint than the "
                                    "bundle's"), proof_rel, seq)
        path = proof.hashes
    try:
        paths.verify(h, seq, path)
    except BfaError as e:
        raise BundleFailure(msg("does not prove the entry into the checkpoint: {error}",
                                error=e), proof_rel, seq) from e
    return seq, entry.domain, entry.kind, entry.record_id, leaf, h, str(role)


def _exact_proof(raw: bytes, seq: int, leaf: bytes, note: bytes, known: dict[bytes, bytes]
                 ) -> tuple[bytes, ...] | None:
    """The audit path of a proof spelled exactly as :meth:`TLogProof.marshal` writes it
    for this entry, leaf and the bundle's checkpoint note; None for any other text (which
    :meth:`TLogProof.parse` then judges, naming what is wrong). Checking the bytes
    against the one expected spelling costs a fraction of parsing each proof. ``known``
    holds lines already found to be the one base64 spelling of a 32-byte hash, with the
    hash (neighbouring entries' proofs share most lines)."""
    head = (b"c2sp.org/tlog-proof@v1\nextra " + binascii.b2a_base64(leaf, newline=False)
            + b"\nindex %d\n" % seq)
    tail = b"\n" + note
    if not (raw.startswith(head) and raw.endswith(tail)
            and len(raw) >= len(head) + len(tail)):
        return None
    lines = raw[len(head):len(raw) - len(tail)].split(b"\n")
    if lines.pop() != b"" or len(lines) > 64:
        return None
    path = []
    for line in lines:
        h = known.get(line)
        if h is None:
            try:
                h = binascii.a2b_base64(line, strict_mode=True)
            except binascii.Error:
                return None
            if len(h) != 32 or binascii.b2a_base64(h, newline=False) != line:
                return None
            if len(known) >= 4096:
                known.clear()
            known[line] = h
        path.append(h)
    return tuple(path)


class _Context:
    def __init__(self, root: Path, key: Verifier, exporter: Verifier | None, tmp: Path,
                 report: BundleReport, progress: Callable[[int], None] | None) -> None:
        self.root, self.key, self.exporter, self.tmp = root, key, exporter, tmp
        self.report, self.progress = report, progress
        self.claims: dict[str, Any] = {}
        self.cp: Checkpoint | None = None
        self.note = ""
        self.ledger: Ledger | None = None
        self.hashing: Future[Verdict] | None = None
        self.pool: ProcessPoolExecutor | None = None
        """Workers checking entries beside this process (with ``parallel``)."""
        self.loading: Future[tuple[dict[str, Any] | None, _Failure | None]] | None = None
        """A worker reading ``bfa/findings.json`` (:meth:`_stated`)."""

    # -- bag, signature, checkpoint ------------------------------------------------------
    def bag(self) -> Msg:
        if not self.root.is_dir():
            raise BundleFailure(msg("not a directory"), str(self.root))
        detail = msg("hashing in a child process")  # its verdict replaces this one
        if self.hashing is None:
            verdict = _bag_files(self.root, self.progress)
            if not verdict.ok:
                raise BundleFailure(verdict.detail_msg or verdict.detail, verdict.file)
            assert verdict.detail_msg is not None
            detail = verdict.detail_msg
        claims = _read_json(self.root, "bfa/bundle.json")
        if not isinstance(claims, dict) or claims.get("format") != "bfa-bundle/1":
            raise BundleFailure(msg("not a bfa-bundle/1 claims file"), "bfa/bundle.json")
        self.claims = claims
        self.report.claims = claims
        return detail

    def signature(self) -> Msg:
        sig = self.root / SIGNATURE
        if not sig.is_file():
            raise BundleFailure(msg("missing: the bundle is not signed"), SIGNATURE)
        try:
            claimed = Verifier.from_text(_text(self.root, "bfa/exporter.key").strip())
        except (BfaError, ValueError) as e:
            raise BundleFailure(msg("not a verifier key: {error}", error=e),
                                "bfa/exporter.key") from e
        if self.exporter is not None and self.exporter.to_text() != claimed.to_text():
            raise BundleFailure(msg("the bundle names exporter key {named}, not the one given "
                                    "({given})", named=_key_id(claimed),
                                    given=_key_id(self.exporter)), "bfa/exporter.key")
        try:
            signed = open_note(_text(self.root, SIGNATURE), [claimed])
        except BfaError as e:
            raise BundleFailure(msg("signature does not verify: {error}", error=e),
                                SIGNATURE) from e
        if signed != signed_text(self.root, str(self.claims.get("id"))):
            raise BundleFailure(msg("signs another bundle id or other tag manifests than "
                                    "these"), SIGNATURE)
        if self.exporter is not None:
            return msg("tag manifests signed by exporter key {key} (pinned)", key=_key_id(claimed))
        return msg("tag manifests signed by exporter key {key}, named in the bundle and not "
                   "pinned: anyone may have re-signed it (--exporter-key pins the agency's)",
                   key=_key_id(claimed))

    def checkpoint(self) -> Msg:
        rel = "bfa/checkpoint.note"
        self.note = _text(self.root, rel)
        try:
            self.cp = open_checkpoint(self.note, [self.key], str(self.claims.get("origin")))
        except BfaError as e:
            raise BundleFailure(msg("not signed by the verifier key given ({key}): {error}",
                                    key=self.key.name, error=e), rel) from e
        stated = self.claims.get("checkpoint") or {}
        if stated.get("size") != self.cp.size or stated.get("root") != base64.b64encode(
                self.cp.root).decode():
            raise BundleFailure(msg("bfa/bundle.json states another size or root than the "
                                    "signed checkpoint"), "bfa/bundle.json")
        return msg("size {size}, signed by {key}", size=self.cp.size, key=self.key.name)

    # -- entries --------------------------------------------------------------------------
    def entries(self) -> Msg:
        assert self.cp is not None
        cp = self.cp
        counts: dict[str, int] = {}
        roles: dict[int, str] = {}
        job = _EntryJob(str(self.root), cp.size, cp.root, self.note.encode("utf-8"))
        chunks = self._checked_chunks(job)
        next(chunks)  # the workers check the first chunks while the scratch ledger is made
        self.ledger = scratch_ledger(self.tmp, str(self.claims.get("origin")))
        led = self.ledger

        def rows() -> Iterator[tuple[int, str, str, str, bytes, bytes]]:
            for checked in chunks:
                for seq, domain, kind, rid, leaf, h, role in checked or ():
                    counts[role] = counts.get(role, 0) + 1
                    roles[seq] = role  # read back (and dropped) by the statement beside
                    if self.progress is not None:
                        self.progress(len(leaf))
                    yield seq, domain, kind, rid, leaf, h

        def beside(conn: Connection, seqs: list[int]) -> None:
            conn.exec_driver_sql("INSERT INTO bundle_roles (seq, role) VALUES (?, ?)",
                                 [(q, roles.pop(q)) for q in seqs])

        try:
            n = insert_entries(
                led, rows(), setup="CREATE TABLE bundle_roles (seq INTEGER PRIMARY KEY, "
                                   "role TEXT NOT NULL)", beside=beside)
        except BundleFailure:
            raise
        except Exception as e:  # a seq or (id, domain) twice: the scratch ledger's keys
            raise BundleFailure(msg("an entry is listed twice ({error_type})",
                                    error_type=type(e).__name__), "bfa/entries.jsonl") from e
        for folder in ("data/entries", "bfa/proofs"):
            path = self.root / folder
            on_disk = sum(1 for _ in os.scandir(path)) if path.is_dir() else 0
            if on_disk == n:
                continue
            if folder == "data/entries":
                raise BundleFailure(msg("{count} leaf file(s) under {folder} but {listed} "
                                        "entries listed", count=on_disk, folder=folder,
                                        listed=n), "bfa/entries.jsonl")
            raise BundleFailure(msg("{count} proof file(s) under {folder} but {listed} "
                                    "entries listed", count=on_disk, folder=folder, listed=n),
                                "bfa/entries.jsonl")
        self._count("entries", n)
        self._count("scoped", counts.get("scope", 0))
        return msg("{count} entries proven into the checkpoint of size {size} ({roles})",
                   count=n, size=cp.size,
                   roles=", ".join(f"{v} {k}" for k, v in sorted(counts.items())))

    def _checked_chunks(self, job: _EntryJob) -> Iterator[list[_CheckedEntry] | None]:
        """The entries of ``bfa/entries.jsonl``, checked :data:`ENTRY_CHUNK` lines at a
        time (:func:`_check_entries`), in the file's order; raises the first failure in
        that order. First yields None once the first chunks are handed to the pool (the
        caller makes the scratch ledger meanwhile). With a pool, up to two chunks a worker
        are checked ahead while the caller writes the ones before into the scratch ledger;
        a pool that stops (a worker killed) leaves the rest to this process."""
        rel = "bfa/entries.jsonl"
        path = self.root / rel
        if not path.is_file():
            raise BundleFailure(msg("missing"), rel)
        ahead: deque[tuple[int, list[bytes], Future[_Checked] | None]] = deque()
        limit = 2 * _WORKERS if self.pool is not None else 0
        first = 1

        def submit(f: BinaryIO) -> bool:
            nonlocal first
            lines = list(islice(f, ENTRY_CHUNK))
            if not lines:
                if self.pool is not None and self.loading is None:  # after the last chunk
                    try:
                        self.loading = self.pool.submit(_load_stated, str(self.root),
                                                        str(self.tmp / _STATED_DB))
                    except BrokenProcessPool:
                        self.pool = None
                return False
            future = None
            if self.pool is not None:
                try:
                    future = self.pool.submit(_check_entries, job, first, lines)
                except BrokenProcessPool:
                    self.pool = None
            ahead.append((first, lines, future))
            first += len(lines)
            return True

        def settle() -> list[_CheckedEntry]:
            start, lines, future = ahead[0]
            while future is not None and not future.done():
                # rather than wait, check here a chunk no worker has started
                i = next((i for i in range(len(ahead) - 1, 0, -1)
                          if (f := ahead[i][2]) is not None and f.cancel()), None)
                if i is None:
                    break
                a, b, _ = ahead[i]
                ahead[i] = (a, b, _done(_check_entries(job, a, b)))
            ahead.popleft()
            done: _Checked | None = None
            if future is not None:
                try:
                    done = future.result()
                except BrokenProcessPool:  # a worker died: the rest is checked here
                    self.pool = None
                except Exception:  # the task did not get there or back (pickling): here
                    done = None
            if done is None:
                done = _check_entries(job, start, lines)
            rows, failure = done
            if isinstance(failure, Exception):
                raise failure
            if failure is not None:
                raise BundleFailure(*failure)
            return rows

        with path.open("rb") as f:
            while len(ahead) < limit and submit(f):
                pass
            yield None
            while True:
                submitted = submit(f)
                if not ahead:
                    return
                if not (submitted and len(ahead) <= limit):
                    yield settle()

    def _count(self, what: str, n: int) -> None:
        stated = (self.claims.get("counts") or {}).get(what)
        if stated != n:
            raise BundleFailure(msg("says {stated} {what}, the bundle has {count}",
                                    stated=stated, what=what, count=n), "bfa/bundle.json")

    def _stream(self, where: str = "") -> Iterator[tuple[int, dict[str, Any], str]]:
        """``(seq, record, role)`` of the bundle's entries, from the scratch ledger."""
        assert self.ledger is not None
        q = ("SELECT e.seq, e.leaf, r.role FROM entries e JOIN bundle_roles r ON r.seq = e.seq"
             f" {where} ORDER BY e.seq")
        with self.ledger.store.reader() as conn:
            for seq, leaf, role in conn.execute(text(q)).yield_per(500):
                yield int(seq), leaf_record(bytes(leaf)), str(role)  # checked by entries

    def _held(self, ids: set[str]) -> set[str]:
        """Which of ``ids`` are record ids (not control entries) of the bundle."""
        assert self.ledger is not None
        e = entries.c
        with self.ledger.store.reader(snapshot=False) as conn:
            return {str(x) for x in conn.execute(select(e.record_id).where(
                e.record_id.in_(sorted(ids)), e.domain != "control")).scalars()}

    # -- vouchers, disclosures, closure ----------------------------------------------------
    def vouchers(self) -> Msg:
        """Every voucher record's file is there and hashes to its record; the list in
        ``bfa/vouchers.jsonl`` is exactly those files, each with its size and records.
        The list and the records seen are kept in the scratch ledger, not in memory."""
        assert self.ledger is not None
        rel = "bfa/vouchers.jsonl"
        store = self.ledger.store
        with store.writer() as conn:
            for ddl in _VOUCHER_DDL:
                conn.exec_driver_sql(ddl)
            for n, line in _jsonl(self.root, rel):
                sha, size, records = line.get("sha256"), line.get("size"), line.get("records")
                if not (isinstance(sha, str) and isinstance(size, int)
                        and isinstance(records, list)):
                    raise BundleFailure(msg("line {line}: needs sha256 (text), size (an "
                                            "integer) and records (a list)", line=n), rel)
                if conn.exec_driver_sql("INSERT OR IGNORE INTO bundle_listed VALUES (?, ?, ?)",
                                        (sha, size, _canon(sorted(map(str, records))))
                                        ).rowcount == 0:
                    raise BundleFailure(msg("line {line}: lists file {sha}… a second time",
                                            line=n, sha=sha[:16]), rel)
        seen = 0
        with store.writer() as conn:
            for seq, rec, _role in self._stream("WHERE e.domain = 'archive'"):
                sha = str(rec.get("sha256", ""))
                vrel = f"data/vouchers/{sha}"
                path = self.root / vrel
                if not path.is_file():
                    raise BundleFailure(msg("the file of voucher {voucher} is missing",
                                            voucher=repr(rec.get("id"))), vrel, seq)
                if conn.exec_driver_sql("INSERT OR IGNORE INTO bundle_seen VALUES (?, ?)",
                                        (sha, seq)).rowcount:
                    seen += 1
                    with path.open("rb") as f:
                        digest = hashlib.file_digest(f, "sha256").hexdigest()
                        size = f.tell()
                    if digest != sha or size != int(rec.get("size", -1)):
                        raise BundleFailure(msg("the file of voucher {voucher} does not hash "
                                                "to its record's sha256 and size",
                                                voucher=repr(rec.get("id"))), vrel, seq)
                conn.exec_driver_sql("INSERT INTO bundle_seen_ids VALUES (?, ?)",
                                     (sha, str(rec.get("id"))))
            folder = self.root / "data" / "vouchers"
            if folder.is_dir():
                with os.scandir(folder) as it:
                    for entry in it:
                        conn.exec_driver_sql("INSERT INTO bundle_files VALUES (?)",
                                             (os.fsencode(entry.name),))
            stray = conn.exec_driver_sql(
                "SELECT name FROM bundle_files WHERE CAST(name AS TEXT) NOT IN "
                "(SELECT sha FROM bundle_seen) ORDER BY name LIMIT 1").first()
            if stray is not None:
                raise BundleFailure(msg("a file no voucher record of the bundle names"),
                                    f"data/vouchers/{os.fsdecode(bytes(stray[0]))}")
            # each file as first seen: the records naming it against those listed for it
            current: str | None = None
            ids: list[str] = []
            pending: tuple[str, int | None, str | None] | None = None
            rows = conn.exec_driver_sql(
                "SELECT s.sha, i.rid, l.size, l.records FROM bundle_seen s "
                "JOIN bundle_seen_ids i ON i.sha = s.sha "
                "LEFT JOIN bundle_listed l ON l.sha = s.sha ORDER BY s.seq, i.rid")
            for sha, rid, size, records in chain(rows, [(None, None, None, None)]):
                if sha != current and pending is not None:
                    psha, psize, precords = pending
                    if precords is None or json.loads(precords) != ids:
                        raise BundleFailure(msg("lists other records for file {sha}… than the "
                                                "bundle's voucher records", sha=psha[:16]), rel)
                    if psize != (folder / psha).stat().st_size:
                        raise BundleFailure(msg("gives another size for file {sha}… than it "
                                                "has", sha=psha[:16]), rel)
                    ids = []
                if sha is None:
                    break
                current, pending = sha, (sha, size, records)
                ids.append(str(rid))
            listed = int(conn.exec_driver_sql("SELECT count(*) FROM bundle_listed").scalar_one())
        if listed != seen:
            raise BundleFailure(msg("lists a file no voucher record of the bundle names"), rel)
        self._count("vouchers", seen)
        return msg("{count} voucher file(s) match their records", count=seen)

    def disclosures(self) -> Msg | _Skip:
        rel = "bfa/disclosures.jsonl"
        if not (self.root / rel).is_file():
            if self.claims.get("disclosure"):
                raise BundleFailure(msg("missing, although bfa/bundle.json states a "
                                        "disclosure"), rel)
            self._count("disclosed", 0)
            return _Skip(msg("none (personal data only as pseudonyms)"))
        if not self.claims.get("disclosure"):
            raise BundleFailure(msg("present, although bfa/bundle.json states no disclosure"),
                                rel)
        assert self.ledger is not None
        n = 0
        e = entries.c
        for n, line in _jsonl(self.root, rel):
            seq = line.get("seq")
            with self.ledger.store.reader(snapshot=False) as conn:
                leaf = conn.execute(select(e.leaf).where(e.seq == seq)).scalar()
            if leaf is None:
                raise BundleFailure(msg("line {line}: entry {seq} is not in the bundle",
                                        line=n, seq=seq), rel)
            entry = decode_leaf(bytes(leaf))
            if (line.get("id"), line.get("domain")) != (entry.record_id, entry.domain):
                named = f"{line.get('domain')}:{line.get('id')}"
                held = f"{entry.domain}:{entry.record_id}"
                raise BundleFailure(msg("line {line}: names {named}, but entry {seq} holds "
                                        "{held}", line=n, named=named, seq=seq, held=held),
                                    rel, int(seq) if isinstance(seq, int) else None)
            rec = entry.record
            fld, value = str(line.get("field")), line.get("value")
            fields = (self.claims.get("disclosure") or {}).get("fields")
            if not isinstance(fields, list) or fld not in fields:
                raise BundleFailure(msg("line {line}: discloses {field}, which "
                                        "bfa/bundle.json's disclosure does not name", line=n,
                                        field=fld), rel)
            want = (rec.get("_commitments") or {}).get(fld)
            try:
                salt = bytes.fromhex(str(line.get("salt")))
            except ValueError as err:
                raise BundleFailure(msg("line {line}: salt is not hex", line=n), rel,
                                    seq) from err
            if not isinstance(value, str) or want is None or commitment(salt, value) != want:
                raise BundleFailure(msg("line {line}: the disclosed {field} does not open the "
                                        "entry's commitment", line=n, field=fld),
                                    rel, int(seq) if isinstance(seq, int) else None)
        self._count("disclosed", n)
        return msg("{count} disclosed value(s) open their commitments", count=n)

    def closure(self) -> Msg:
        scope = self.claims.get("scope") or {}
        for rid in scope.get("records") or ():
            if not self._scoped(str(rid)):
                raise BundleFailure(msg("the scope names record {record}, which no scope entry "
                                        "of the bundle holds", record=repr(rid)),
                                    "bfa/bundle.json")
        checked = 0
        pending: list[tuple[int, str, str]] = []  # (seq, record id, id it names)

        def settle() -> None:
            held = self._held({rid for _q, _r, rid in pending})
            for seq, owner, rid in pending:
                if rid not in held:
                    raise BundleFailure(msg("record {owner} names {record}, which the "
                                            "bundle does not hold", owner=repr(owner),
                                            record=repr(rid)), f"data/entries/{seq}.leaf", seq)
            pending.clear()

        for seq, rec, _role in self._stream("WHERE r.role = 'scope'"):
            names = {str(a["event"]) for a in rec.get("allocations") or ()
                     if isinstance(a, dict) and "event" in a}
            names |= {str(x) for x in rec.get("refs") or ()}
            names |= {str(rec[k]) for k in ("corrects", "returns") if rec.get(k)}
            pending += [(seq, str(rec.get("id")), rid) for rid in sorted(names)]
            checked += len(names)
            if len(pending) >= 500:
                settle()
        settle()
        return msg("{count} link(s) of the scoped records are in the bundle", count=checked)

    # -- consistency ---------------------------------------------------------------------
    def consistency(self) -> Msg | _Skip:
        if not self.claims.get("since"):
            for rel in ("bfa/since.note", "bfa/consistency.txt"):
                if (self.root / rel).exists():
                    raise BundleFailure(msg("present, although bfa/bundle.json states no since "
                                            "checkpoint"), rel)
            return _Skip(msg("no --since checkpoint given"))
        assert self.cp is not None
        old_note = _text(self.root, "bfa/since.note")
        body = _text(self.root, "bfa/consistency.txt")
        try:
            old = open_checkpoint(old_note, [self.key], str(self.claims.get("origin")))
        except BfaError as e:
            raise BundleFailure(msg("not signed by the verifier key given: {error}", error=e),
                                "bfa/since.note") from e
        head, _, note = body.partition("\n\n")
        lines = head.split("\n")
        if not lines[0].startswith("old ") or note != self.note:
            raise BundleFailure(msg("not an 'old N' proof towards the bundle's checkpoint"),
                                "bfa/consistency.txt")
        try:
            size = int(lines[0][4:])
            hashes = [base64.b64decode(x, validate=True) for x in lines[1:] if x]
        except (ValueError, binascii.Error) as e:
            raise BundleFailure(msg("malformed: {error}", error=e), "bfa/consistency.txt") from e
        if size != old.size:
            raise BundleFailure(msg("proves from another size than bfa/since.note"),
                                "bfa/consistency.txt")
        if (self.claims.get("since") or {}).get("size") != size:
            raise BundleFailure(msg("states another since size than bfa/since.note's"),
                                "bfa/bundle.json")
        try:
            if size == self.cp.size:
                if hashes or old.root != self.cp.root:
                    raise FormatError("same size, another root")
            else:
                verify_consistency(size, self.cp.size, old.root, self.cp.root, hashes)
        except BfaError as e:
            raise BundleFailure(msg("does not prove the checkpoint extends the one of size "
                                    "{size}: {error}", size=size, error=e),
                                "bfa/consistency.txt") from e
        return msg("the checkpoint of size {size} extends the one of size {since}",
                   size=self.cp.size, since=size)

    # -- findings ------------------------------------------------------------------------
    def findings(self) -> Msg | _Skip:
        """Read ``bfa/findings.json`` as a stream into the scratch ledger, then judge it
        there with set-based SQL: neither the stated nor the re-derived findings are held
        in memory (FORMAT.md §12.5)."""
        assert self.ledger is not None
        rel = "bfa/findings.json"
        top = self._stated()
        stated_n = self._one("SELECT count(*) FROM stated_breaks WHERE gone = 0")
        self._history()
        if top.get("ruleset") != RULESET_VERSION:
            self._named_breaks()
            self._count("breaks", stated_n)
            why = msg("made with rule set {ruleset}, this bfa has {mine}",
                      ruleset=repr(top.get("ruleset")), mine=repr(RULESET_VERSION))
            for bid, code in self._rows(
                    "SELECT bid, code FROM stated_breaks WHERE gone = 0 ORDER BY bid"):
                self.report.not_rederivable_here(bid, code, why)
            return _Skip(msg("{count} finding(s) not re-derivable with this bfa (rule set "
                             "{ruleset})", count=stated_n, ruleset=top.get("ruleset")))
        try:
            rules = Rules.model_validate_json(json.dumps(top.get("rules") or {}))
            as_of = date.fromisoformat(str(top.get("as_of")))
        except ValueError as e:
            raise BundleFailure(msg("rules or as_of unusable: {error}", error=e), rel) from e
        if rules_digest(rules) != top.get("rules_digest"):
            raise BundleFailure(msg("rules_digest is not the digest of the rules stated"), rel)

        def derived(conn: Connection, breaks: list[Break]) -> None:
            _insert_rows(conn.exec_driver_sql, "derived_breaks", "derived_records", (
                (b.id, b.code, b.field, _canon(sorted(b.records)), _canon(dict(b.amounts)),
                 None, None, 0, b.records, _detail(b.severity, b.amount_at_risk, b.message))
                for b in breaks), replace=True)

        # the scratch ledger's tables were derived just now from the verified leaves; the
        # breaks go to the scratch table part by part, never all in memory
        derive_breaks(self.ledger, as_of, rules, derived)
        with self.ledger.store.writer() as conn:
            for ddl in _JUDGE_DDL:
                conn.execute(text(ddl))
        custom = {r.code for r in rules.sql_rules}
        for bid, code, outside in self._rows(_NOT_JUDGED):
            if code in custom:  # SQL the bundle carries is not run here (ADR 0036)
                self.report.not_rederivable_here(bid, code, msg(
                    "{code} is an agency's own SQL rule, which a bundle's verifier does not "
                    "run", code=code))
                continue
            self.report.not_rederivable_here(bid, code, msg(
                "depends on records outside the bundle") if outside else msg(
                "{code} depends on records no bundle closure holds", code=code))
        for bid, code, mine, theirs in self._rows(_COMPARED):
            if mine is None:
                raise BundleFailure(msg("finding {id} ({code}) is not re-derived from the "
                                        "bundle's records (added)", id=bid, code=code), rel)
            raise BundleFailure(msg("finding {id} differs from its re-derivation (changed): "
                                    "stated {stated}, re-derived {derived}", id=bid,
                                    stated=_shown(theirs), derived=_shown(mine)), rel)
        for bid, code, records in self._rows(_UNSTATED):
            raise BundleFailure(msg("finding {id} ({code} on {records}) is re-derived from the "
                                    "bundle's records but not stated (missing)", id=bid,
                                    code=code, records=", ".join(json.loads(records))), rel)
        compared = self._one("SELECT count(*) FROM stated_breaks WHERE gone = 0 AND judged")
        self._named_breaks()
        self._count("breaks", stated_n)
        return msg("{compared} finding(s) re-derived and equal; {count} not re-derivable here",
                   compared=compared, count=len(self.report.not_rederivable))

    def _stated(self) -> dict[str, Any]:
        """``bfa/findings.json`` read into the scratch ledger's ``stated_*`` tables (its
        other top-level members returned): by a worker of the pool into a file of its own
        while the entries were written and the findings re-derived (:meth:`_load_stated`),
        or here, then copied in."""
        assert self.ledger is not None
        future, self.loading = self.loading, None
        done: tuple[dict[str, Any] | None, _Failure | None] | None = None
        if future is not None:
            try:
                done = future.result()
            except Exception:  # a worker died, or the task did not get there or back
                done = None
        if done is None:
            done = _load_stated(str(self.root), str(self.tmp / _STATED_DB))
        top, failure = done
        if isinstance(failure, Exception):
            raise failure
        if failure is not None:
            raise BundleFailure(*failure)
        assert top is not None
        raw = self.ledger.store.engine.raw_connection()
        try:  # the driver's own connection: ATTACH is outside any transaction
            db = raw.driver_connection
            assert isinstance(db, sqlite3.Connection)
            db.execute("ATTACH DATABASE ? AS stated", (str(self.tmp / _STATED_DB),))
            try:
                db.execute("BEGIN IMMEDIATE")
                for ddl in _FINDINGS_DDL:
                    db.execute(ddl)
                for table in _STATED_TABLES:
                    db.execute(f"INSERT INTO main.{table} SELECT * FROM stated.{table}")
                db.execute("COMMIT")
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                db.execute("DETACH DATABASE stated")
        finally:
            raw.close()
        return top

    def _rows(self, query: str) -> Iterator[Any]:
        assert self.ledger is not None
        with self.ledger.store.reader() as conn:
            yield from conn.execute(text(query)).yield_per(500)

    def _one(self, query: str) -> int:
        return int(next(iter(self._rows(query)))[0])

    def _named_breaks(self) -> None:
        for bid in (self.claims.get("scope") or {}).get("breaks") or ():
            assert self.ledger is not None
            with self.ledger.store.reader(snapshot=False) as conn:
                if conn.execute(text("SELECT 1 FROM stated_breaks WHERE bid = :b"),
                                {"b": str(bid)}).first() is None:
                    raise BundleFailure(msg("the scope names break {id}, which neither "
                                            "breaks nor not_reported holds", id=bid),
                                        "bfa/findings.json")

    def _scoped(self, rid: str) -> bool:
        """Whether a record of the bundle with id ``rid`` has the role ``scope``."""
        assert self.ledger is not None
        with self.ledger.store.reader(snapshot=False) as conn:
            return conn.execute(text(
                "SELECT 1 FROM entries e JOIN bundle_roles r ON r.seq = e.seq "
                "WHERE e.record_id = :rid AND e.domain <> 'control' AND r.role = 'scope' "
                "LIMIT 1"), {"rid": rid}).first() is not None

    def _history(self) -> None:
        """Every stated workflow history is every ``control.break`` entry of its break the
        bundle holds, numbered 1, 2, … in order (§2.5), ending in the stated status."""
        rel = "bfa/findings.json"
        for bid, status, _listed in self._rows(
                "SELECT bid, wf_status, hist_len FROM stated_breaks WHERE wf_status IS NOT NULL"
                " AND wf_status <> 'open' AND hist_len = 0 ORDER BY bid LIMIT 1"):
            raise BundleFailure(msg("finding {id}: status {status} with no control.break "
                                    "entry behind it", id=bid, status=repr(status)), rel)
        for bid, i, seq, leaf, wf_status, hist_len in self._rows(
                "SELECT h.bid, h.i, h.seq, e.leaf, s.wf_status, s.hist_len "
                "FROM stated_history h JOIN stated_breaks s ON s.bid = h.bid AND s.gone = h.gone"
                " LEFT JOIN entries e ON e.seq = h.seq ORDER BY h.bid, h.gone, h.i"):
            rec = None if leaf is None else leaf_record(bytes(leaf))
            if rec is None or rec.get("type") != "control.break" or rec.get("break") != bid:
                raise BundleFailure(msg("finding {id}: history entry {seq} is not one of its "
                                        "control.break entries in the bundle", id=bid,
                                        seq=seq), rel, int(seq))
            if rec.get("id") != f"{bid}/{i}":  # transitions are numbered 1, 2, … (§2.5)
                raise BundleFailure(msg("finding {id}: history item {item} is transition "
                                        "{transition}; the history must be every transition, "
                                        "in order", id=bid, item=i,
                                        transition=repr(rec.get("id"))), rel, int(seq))
            if i == hist_len and rec.get("status") != wf_status:
                raise BundleFailure(msg("finding {id}: status {status} is not the one its last "
                                        "transition gives ({given})", id=bid,
                                        status=repr(wf_status), given=repr(rec.get("status"))),
                                    rel)
        for bid, held, listed in self._rows(
                "SELECT s.bid, coalesce(t.n, 0), s.hist_len FROM stated_breaks s LEFT JOIN ("
                "SELECT substr(rtrim(record_id, '0123456789'), 1, "
                "length(rtrim(record_id, '0123456789')) - 1) AS bid, count(*) AS n "
                "FROM entries WHERE domain = 'control' AND kind = 'break' GROUP BY 1) t "
                "ON t.bid = s.bid WHERE s.wf_status IS NOT NULL AND coalesce(t.n, 0) <> "
                "s.hist_len ORDER BY s.bid LIMIT 1"):
            raise BundleFailure(msg("finding {id}: the bundle holds {held} of its "
                                    "transitions, its history lists {listed}", id=bid,
                                    held=held, listed=listed), rel)


_VOUCHER_DDL = (
    "CREATE TABLE bundle_listed (sha TEXT PRIMARY KEY, size INTEGER, records TEXT)",
    "CREATE TABLE bundle_seen (sha TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE bundle_seen_ids (sha TEXT NOT NULL, rid TEXT NOT NULL)",
    "CREATE INDEX ix_bundle_seen_ids ON bundle_seen_ids (sha, rid)",
    "CREATE TABLE bundle_files (name BLOB NOT NULL)",
)
"""The vouchers check's scratch tables: the files ``bfa/vouchers.jsonl`` lists (with
their records, sorted, as JSON), each file the voucher records name (by the first entry
naming it), the records naming each, and the names in ``data/vouchers``."""

_FINDINGS_DDL = (
    "CREATE TABLE stated_breaks (bid TEXT NOT NULL, code TEXT, field TEXT, records TEXT, "
    "amounts TEXT, wf_status TEXT, hist_len INTEGER, gone INTEGER NOT NULL, "
    "judged INTEGER NOT NULL DEFAULT 0, detail TEXT, PRIMARY KEY (bid, gone))",
    "CREATE TABLE stated_records (bid TEXT NOT NULL, gone INTEGER NOT NULL, rid TEXT NOT NULL)",
    "CREATE TABLE stated_history (bid TEXT NOT NULL, gone INTEGER NOT NULL, "
    "i INTEGER NOT NULL, seq INTEGER NOT NULL)",
    "CREATE TABLE derived_breaks (bid TEXT PRIMARY KEY, code TEXT, field TEXT, records TEXT, "
    "amounts TEXT, wf_status TEXT, hist_len INTEGER, gone INTEGER NOT NULL, "
    "judged INTEGER NOT NULL DEFAULT 0, detail TEXT)",
    "CREATE TABLE derived_records (bid TEXT NOT NULL, gone INTEGER NOT NULL, rid TEXT NOT NULL)",
)
"""The scratch tables of the findings check: what ``bfa/findings.json`` states (``gone`` 1
for ``not_reported``), what the re-derivation gives, and the records each names."""

def _key_id(key: Verifier) -> str:
    """A verifier key as a reader tells two apart: its name and key hash."""
    return f"{key.name}+{key.key_hash:08x}"


def _quiet_worker() -> None:
    """A worker leaves Ctrl-C to the verifier (the whole process group gets it): the
    command stops once, without a traceback from each worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_CODES = ", ".join(f"'{c}'" for c in sorted(RE_DERIVABLE))
_JUDGE_DDL = (
    "CREATE TABLE held_records AS SELECT e.record_id AS rid, max(r.role = 'scope') AS scoped"
    " FROM entries e JOIN bundle_roles r ON r.seq = e.seq WHERE e.domain <> 'control'"
    " GROUP BY e.record_id",
    "CREATE UNIQUE INDEX held_records_rid ON held_records (rid)",
    "CREATE INDEX stated_records_bid ON stated_records (bid, gone)",
    "CREATE INDEX derived_records_bid ON derived_records (bid)",
    *(f"UPDATE {t}_breaks SET judged = 1 WHERE gone = 0 AND code IN ({_CODES}) "
      f"AND EXISTS (SELECT 1 FROM {t}_records x JOIN held_records h ON h.rid = x.rid "
      f"WHERE x.bid = {t}_breaks.bid AND x.gone = 0 AND h.scoped) "
      f"AND NOT EXISTS (SELECT 1 FROM {t}_records x LEFT JOIN held_records h ON h.rid = x.rid"
      f" WHERE x.bid = {t}_breaks.bid AND x.gone = 0 AND h.rid IS NULL)"
      for t in ("stated", "derived")),
)
"""Which findings are judged (compared with their re-derivation): a code of
:data:`RE_DERIVABLE` whose every record the bundle holds, one of them scoped."""

_NOT_JUDGED = (
    "SELECT s.bid, s.code, CASE WHEN s.code IN (" + _CODES + ") OR EXISTS ("
    "SELECT 1 FROM stated_records x LEFT JOIN held_records h ON h.rid = x.rid "
    "WHERE x.bid = s.bid AND x.gone = 0 AND h.rid IS NULL) "
    "THEN 1 ELSE 0 END "
    "FROM stated_breaks s WHERE s.gone = 0 AND NOT s.judged ORDER BY s.bid")
_COMPARED = (
    "SELECT s.bid, s.code, CASE WHEN d.bid IS NOT NULL THEN "
    "json_array(d.code, d.field, d.records, d.amounts, d.detail) END, "
    "json_array(s.code, s.field, s.records, s.amounts, s.detail) "
    "FROM stated_breaks s LEFT JOIN derived_breaks d ON d.bid = s.bid "
    "WHERE s.gone = 0 AND s.judged AND (d.bid IS NULL OR d.code IS NOT s.code OR "
    "d.field IS NOT s.field OR d.records IS NOT s.records OR d.amounts IS NOT s.amounts OR "
    "d.detail IS NOT s.detail) "
    "ORDER BY s.bid LIMIT 1")
_UNSTATED = (
    "SELECT d.bid, d.code, d.records FROM derived_breaks d WHERE d.judged AND NOT EXISTS ("
    "SELECT 1 FROM stated_breaks s WHERE s.bid = d.bid AND s.gone = 0) ORDER BY d.bid LIMIT 1")


def _canon(value: Any) -> str:
    """One spelling of a value for comparing in SQL."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _scalar(value: Any) -> str | None:
    """A stated code or field as text (anything but a string or null spelled as JSON)."""
    return value if value is None or isinstance(value, str) else _canon(value)


def _detail(severity: Any, at_risk: Any, message: Any) -> str:
    """The rest of a finding that its re-derivation gives too, in one spelling: its
    severity, amount at risk and message (FORMAT.md §12.5)."""
    return _canon([severity, at_risk, message])


def _shown(row: str | None) -> str:
    """A compared row (code, field, records, amounts, the rest) as it is shown in a
    failure."""
    if row is None:
        return "nothing"
    code, fld, records, amounts, detail = json.loads(row)
    severity, at_risk, message = json.loads(detail) if detail else [None] * 3
    return repr((code, fld, json.loads(records or "null"), json.loads(amounts or "null"),
                 severity, at_risk, message))


_Row = tuple[str, Any, Any, str, str, Any, Any, int, Any, str]


def _insert_rows(executemany: Callable[[str, list[Any]], Any], table: str,
                 records_table: str, rows: Iterable[_Row], *, replace: bool = False) -> None:
    """Insert findings ``(bid, code, field, records, amounts, wf_status, hist_len, gone,
    record ids, detail)`` and the records each names, 1,000 at a time; with ``replace``, a
    finding whose id is there already replaces it (its records are the same: an id covers
    them)."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    batch: list[_Row] = []

    def flush() -> None:  # SQLite: its driver's executemany
        executemany(
            f"{verb} INTO {table} (bid, code, field, records, amounts, wf_status, hist_len, "
            "gone, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*r[:8], r[9]) for r in batch])
        recs = [(r[0], r[7], str(x)) for r in batch for x in r[8]]
        if recs:
            executemany(f"INSERT INTO {records_table} (bid, gone, rid) VALUES (?, ?, ?)",
                        recs)
        batch.clear()

    for row in rows:
        batch.append(row)
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()


_HISTORY_INSERT = "INSERT INTO stated_history (bid, gone, i, seq) VALUES (?, ?, ?, ?)"


_STATED_DB = "stated.db"
_STATED_TABLES = ("stated_breaks", "stated_records", "stated_history")


def _load_stated(root: str, db: str) -> tuple[dict[str, Any] | None, _Failure | None]:
    """Read ``bfa/findings.json`` of the bundle in ``root`` into the ``stated_*`` tables
    of a new SQLite file ``db`` (:func:`_load_findings`); returns its other top-level
    members, or the failure (as :func:`_check_entries` does). Runs in a worker of the
    pool, or inline; it reads nothing but the file."""
    try:
        if os.path.exists(db):
            os.remove(db)
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN")
            for ddl in _FINDINGS_DDL:
                if ddl.split()[2] in _STATED_TABLES:
                    conn.execute(ddl)
            top = _load_findings(Path(root) / "bfa/findings.json", conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
    except BundleFailure as e:
        return None, (e.message or e.reason, e.file, e.entry)
    except Exception as e:  # raised again by the caller, as it would have been here
        return None, e
    return top, None


def _load_findings(path: Path, conn: sqlite3.Connection) -> dict[str, Any]:
    """Stream ``bfa/findings.json`` into the scratch tables: each item of ``breaks`` and
    ``not_reported`` is built alone (ijson), checked and inserted; the other top-level
    members are returned. Fails naming the file when it is no findings document."""
    rel = "bfa/findings.json"
    top: dict[str, Any] = {}
    seen: set[str] = set()
    history: list[tuple[str, int, int, int]] = []

    def rows() -> Iterator[_Row]:
        for where, item in _findings_items(path, top, seen):
            gone = 1 if where == "not_reported" else 0
            if not isinstance(item, dict):
                raise BundleFailure(msg("{where} holds an item that is no object",
                                        where=where), rel)
            bid = str(item.get("id"))
            records = [str(x) for x in item.get("records") or ()] if gone == 0 else []
            wf = item.get("workflow")
            status: Any = None
            listed: list[Any] = []
            if wf:
                if not isinstance(wf, dict):
                    raise BundleFailure(msg("finding {id}: workflow is no object", id=bid),
                                        rel)
                status = str(wf.get("status"))
                listed = list(wf.get("history") or [])
                for i, seq in enumerate(listed, 1):
                    if not isinstance(seq, int) or isinstance(seq, bool):
                        raise BundleFailure(msg("finding {id}: history holds {value}, not "
                                                "an entry number", id=bid, value=repr(seq)),
                                            rel)
                    history.append((bid, gone, i, seq))
            if len(history) >= 1000:
                conn.executemany(_HISTORY_INSERT, history)
                history.clear()
            yield (bid, _scalar(item.get("code")), _scalar(item.get("field")),
                   _canon(sorted(records)),
                   _canon(item.get("amounts")), status, len(listed), gone, records,
                   _detail(item.get("severity"), item.get("amount_at_risk"),
                           item.get("message")))

    try:
        _insert_rows(conn.executemany, "stated_breaks", "stated_records", rows())
    except sqlite3.IntegrityError as e:
        raise BundleFailure(msg("lists a break twice"), rel) from e
    if history:
        conn.executemany(_HISTORY_INSERT, history)
    if "breaks" not in seen:
        raise BundleFailure(msg("not a findings document (no list of breaks)"), rel)
    return top


def _findings_items(path: Path, top: dict[str, Any], seen: set[str]
                    ) -> Iterator[tuple[str, Any]]:
    """``(member, item)`` for each item of the top-level arrays ``breaks`` and
    ``not_reported``; every other top-level member goes into ``top``; ``seen`` gets the
    names of the two arrays found. Numbers with a fraction are floats, as ``json.loads``
    reads them."""
    rel = "bfa/findings.json"
    arrays = {"breaks.item": "breaks", "not_reported.item": "not_reported"}
    builder: ijson.ObjectBuilder | None = None
    depth = 0
    where = ""
    try:
        with path.open("rb") as f:
            events = ijson.parse(f, use_float=True)
            first = next(events, None)
            if first is None or first[:2] != ("", "start_map"):
                raise BundleFailure(msg("not a findings document"), rel)
            for prefix, event, value in events:
                if builder is None:
                    if prefix in arrays or (prefix and "." not in prefix
                                            and prefix not in ("breaks", "not_reported")):
                        where = arrays.get(prefix, prefix)
                        builder, depth = ijson.ObjectBuilder(), 0
                    elif prefix in ("breaks", "not_reported") and event == "start_array":
                        seen.add(prefix)
                        continue
                    elif prefix in ("breaks", "not_reported") and event not in (
                            "end_array",):
                        raise BundleFailure(msg("not a findings document ({member} is not "
                                                "a list)", member=prefix), rel)
                    else:
                        continue
                builder.event(event, value)
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                if depth == 0:
                    if where in ("breaks", "not_reported"):
                        yield where, builder.value
                    else:
                        top[where] = builder.value
                    builder = None
    except FileNotFoundError as e:
        raise BundleFailure(msg("missing"), rel) from e
    except (ijson.JSONError, UnicodeDecodeError) as e:
        raise BundleFailure(msg("not JSON: {error}", error=e), rel) from e


@dataclass(frozen=True)
class ProofResult:
    """``bfa proof verify``: whether the proof holds, and the entry it proves."""

    ok: bool
    detail: str
    seq: int | None = None
    size: int | None = None
    record: dict[str, Any] | None = None


def verify_proof(text_: str, key: Verifier, held: str | None = None) -> ProofResult:
    """Check a C2SP tlog-proof with the ledger verifier ``key`` (FORMAT.md §7.1); with
    ``held``, the proof's checkpoint must be that checkpoint (same size and root)."""
    try:
        proof = TLogProof.parse(text_)
    except FormatError as e:
        return ProofResult(False, f"not a tlog-proof: {e}")
    if proof.extra is None:
        return ProofResult(False, "the proof carries no entry (no 'extra' line)")
    try:
        cp = open_checkpoint(proof.checkpoint, [key])
    except BfaError as e:
        return ProofResult(False, f"its checkpoint is not signed by {key.name}: {e}")
    try:
        entry = decode_leaf(proof.extra)
    except FormatError as e:
        return ProofResult(False, f"its entry is not a leaf input: {e}")
    if entry.seq != proof.index:
        return ProofResult(False, f"the entry says it is entry {entry.seq}, the proof "
                                  f"index is {proof.index}")
    try:
        verify_inclusion(entry_hash(proof.extra), proof.index, cp.size, proof.hashes, cp.root)
    except BfaError as e:
        return ProofResult(False, f"entry {proof.index} is not in the checkpoint of size "
                                  f"{cp.size}: {e}", proof.index, cp.size)
    if held is not None:
        try:
            mine = open_checkpoint(held, [key], cp.origin)
        except BfaError as e:
            return ProofResult(False, f"--checkpoint: not signed by {key.name}: {e}")
        if (mine.size, mine.root) != (cp.size, cp.root):
            return ProofResult(False, f"the proof is against the checkpoint of size "
                                      f"{cp.size}, yours is of size {mine.size} (ask for a "
                                      "proof against yours, or a consistency proof)",
                               proof.index, cp.size)
    return ProofResult(True, f"entry {proof.index} is in the checkpoint of size {cp.size}",
                       proof.index, cp.size, entry.record)
