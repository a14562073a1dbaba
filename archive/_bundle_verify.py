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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, text

from archive._bagit import BagError, read_bag
from ledger import (
    BfaError,
    Checkpoint,
    FormatError,
    Ledger,
    TLogProof,
    Verifier,
    commitment,
    decode_leaf,
    entries,
    entry_hash,
    insert_entries,
    open_checkpoint,
    open_note,
    scratch_ledger,
    verify_consistency,
    verify_inclusion,
)
from reconcile import RULESET_VERSION, Rules, rules_digest, run_reconcile

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

RE_DERIVABLE = frozenset({"UNSETTLED_EVENT", "AMOUNT_MISMATCH", "LATE_SETTLEMENT",
                          "MISSING_VOUCHER"})
"""Codes a bundle's closure holds every input of, when every record the finding names is
in the bundle and one is scoped: an event, the movements allocating to it or matched with
it, their allocations, the vouchers referring to them and what those refer to. Others
depend on records no closure brings along (other payments or approvals of the person,
terminations, the ledger's control entries, statements)."""


class BundleFailure(Exception):
    """A check failed: what, in which file, at which entry."""

    def __init__(self, reason: str, file: str | None = None, entry: int | None = None):
        super().__init__(reason)
        self.reason, self.file, self.entry = reason, file, entry


@dataclass
class Verdict:
    check: str
    ok: bool | None
    """None: not run (an earlier check failed, or nothing to check)."""
    detail: str = ""
    file: str | None = None
    entry: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "file": self.file,
                "entry": self.entry}


@dataclass
class BundleReport:
    """Every verdict, and the findings that could not be re-derived here."""

    verdicts: list[Verdict] = field(default_factory=list)
    not_rederivable: list[dict[str, Any]] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(v.ok is not False for v in self.verdicts)

    @property
    def first_failure(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.ok is False), None)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "verdicts": [v.to_json() for v in self.verdicts],
                "not_rederivable": self.not_rederivable,
                "bundle": {k: self.claims.get(k) for k in
                           ("id", "origin", "created_at", "checkpoint", "scope", "counts")}}


def _read_json(root: Path, rel: str) -> Any:
    try:
        return json.loads((root / rel).read_text("utf-8"))
    except FileNotFoundError as e:
        raise BundleFailure("missing", rel) from e
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleFailure(f"not JSON: {e}", rel) from e


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
        raise BundleFailure("missing", rel) from e
    except UnicodeDecodeError as e:
        raise BundleFailure(f"not UTF-8 text ({e.reason} at byte {e.start})", rel) from e
    except OSError as e:
        raise BundleFailure(f"cannot be read: {e.strerror}", rel) from e


def _jsonl(root: Path, rel: str) -> Iterator[tuple[int, dict[str, Any]]]:
    path = root / rel
    if not path.is_file():
        raise BundleFailure("missing", rel)
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                obj = json.loads(raw)
            except ValueError as e:
                raise BundleFailure(f"line {n} is not JSON: {e}", rel) from e
            if not isinstance(obj, dict):
                raise BundleFailure(f"line {n} is not a JSON object", rel)
            yield n, obj


def verify_bundle(root: Path, key: Verifier, *, exporter_key: Verifier | None = None,
                  progress: Callable[[int], None] | None = None) -> BundleReport:
    """Check the bundle in ``root`` against the ledger verifier key ``key`` (module
    docstring). Never raises for a bad bundle: every failure is a verdict."""
    report = BundleReport()
    with tempfile.TemporaryDirectory(prefix="bfa-bundle-") as tmp:
        ctx = _Context(root, key, exporter_key, Path(tmp), report, progress)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("bag", ctx.bag), ("signature", ctx.signature), ("checkpoint", ctx.checkpoint),
            ("entries", ctx.entries), ("vouchers", ctx.vouchers),
            ("disclosures", ctx.disclosures), ("closure", ctx.closure),
            ("consistency", ctx.consistency), ("findings", ctx.findings)]
        failed = False
        for name, step in steps:
            if failed:
                report.verdicts.append(Verdict(name, None, "not checked: an earlier check "
                                                             "failed"))
                continue
            try:
                detail = step()
                report.verdicts.append(Verdict(name, None if detail.startswith("-") else True,
                                               detail.lstrip("- ")))
            except BundleFailure as e:
                report.verdicts.append(Verdict(name, False, e.reason, e.file, e.entry))
                failed = name in ("bag", "signature", "checkpoint", "entries")
            except (OSError, UnicodeError, ValueError, TypeError, KeyError, AttributeError,
                    BfaError) as e:  # a file the signed manifests hold, malformed
                where = getattr(e, "filename", None)
                rel = (str(Path(where).relative_to(root)) if where and Path(where)
                       .is_relative_to(root) else None)
                report.verdicts.append(Verdict(
                    name, False, f"malformed or missing: {type(e).__name__}: {e}", rel))
                failed = name in ("bag", "signature", "checkpoint", "entries")
        if ctx.ledger is not None:
            ctx.ledger.close()
    return report


class _Context:
    def __init__(self, root: Path, key: Verifier, exporter: Verifier | None, tmp: Path,
                 report: BundleReport, progress: Callable[[int], None] | None) -> None:
        self.root, self.key, self.exporter, self.tmp = root, key, exporter, tmp
        self.report, self.progress = report, progress
        self.claims: dict[str, Any] = {}
        self.cp: Checkpoint | None = None
        self.note = ""
        self.ledger: Ledger | None = None

    # -- bag, signature, checkpoint ------------------------------------------------------
    def bag(self) -> str:
        if not self.root.is_dir():
            raise BundleFailure("not a directory", str(self.root))
        try:
            bag = read_bag(self.root, unlisted_tags_allowed=frozenset({SIGNATURE}),
                           on_progress=self.progress)
        except BagError as e:
            raise BundleFailure(e.reason, e.file) from e
        for path in bag.payload:
            if not _PAYLOAD.fullmatch(path):
                raise BundleFailure("is no entry leaf or voucher file of a bundle (FORMAT.md "
                                    "§12.1)", path)
        for path in bag.tag_files:
            if not (_TAG.fullmatch(path) or path in _TAGS):
                raise BundleFailure("is no file of a bundle's layout (FORMAT.md §12.1)", path)
        claims = _read_json(self.root, "bfa/bundle.json")
        if not isinstance(claims, dict) or claims.get("format") != "bfa-bundle/1":
            raise BundleFailure("not a bfa-bundle/1 claims file", "bfa/bundle.json")
        self.claims = claims
        self.report.claims = claims
        return f"{bag.payload_count} payload file(s), {bag.payload_octets} bytes, all listed"

    def signature(self) -> str:
        sig = self.root / SIGNATURE
        if not sig.is_file():
            raise BundleFailure("missing: the bundle is not signed", SIGNATURE)
        try:
            claimed = Verifier.from_text(_text(self.root, "bfa/exporter.key").strip())
        except (BfaError, ValueError) as e:
            raise BundleFailure(f"not a verifier key: {e}", "bfa/exporter.key") from e
        if self.exporter is not None and self.exporter.to_text() != claimed.to_text():
            raise BundleFailure(f"the bundle names exporter key {claimed.name!r}, not the "
                                f"one given ({self.exporter.name!r})", "bfa/exporter.key")
        try:
            signed = open_note(_text(self.root, SIGNATURE), [claimed])
        except BfaError as e:
            raise BundleFailure(f"signature does not verify: {e}", SIGNATURE) from e
        if signed != signed_text(self.root, str(self.claims.get("id"))):
            raise BundleFailure("signs another bundle id or other tag manifests than these",
                                SIGNATURE)
        who = "pinned" if self.exporter is not None else "named in the bundle"
        return f"tag manifests signed by exporter key {claimed.name} ({who})"

    def checkpoint(self) -> str:
        rel = "bfa/checkpoint.note"
        self.note = _text(self.root, rel)
        try:
            self.cp = open_checkpoint(self.note, [self.key], str(self.claims.get("origin")))
        except BfaError as e:
            raise BundleFailure(f"not signed by the verifier key given "
                                f"({self.key.name}): {e}", rel) from e
        stated = self.claims.get("checkpoint") or {}
        if stated.get("size") != self.cp.size or stated.get("root") != base64.b64encode(
                self.cp.root).decode():
            raise BundleFailure("bfa/bundle.json states another size or root than the "
                                "signed checkpoint", "bfa/bundle.json")
        return f"size {self.cp.size}, signed by {self.key.name}"

    # -- entries --------------------------------------------------------------------------
    def entries(self) -> str:
        assert self.cp is not None
        cp = self.cp
        self.ledger = scratch_ledger(self.tmp, str(self.claims.get("origin")))
        led = self.ledger
        counts: dict[str, int] = {}
        roles: dict[int, str] = {}

        def rows() -> Iterator[tuple[int, str, str, str, bytes, bytes]]:
            for n, line in _jsonl(self.root, "bfa/entries.jsonl"):
                row = self._entry(n, line, cp)
                role = str(line.get("role"))
                counts[role] = counts.get(role, 0) + 1
                roles[row[0]] = role  # read back (and dropped) by the statement beside
                yield row

        def beside(conn: Connection, seqs: list[int]) -> None:
            conn.execute(text("INSERT INTO bundle_roles (seq, role) VALUES (:seq, :role)"),
                         [{"seq": q, "role": roles.pop(q)} for q in seqs])

        try:
            n = insert_entries(
                led, rows(), setup="CREATE TABLE bundle_roles (seq INTEGER PRIMARY KEY, "
                                   "role TEXT NOT NULL)", beside=beside)
        except BundleFailure:
            raise
        except Exception as e:  # a seq or (id, domain) twice: the scratch ledger's keys
            raise BundleFailure(f"an entry is listed twice ({type(e).__name__})",
                                "bfa/entries.jsonl") from e
        for folder, what in (("data/entries", "leaf"), ("bfa/proofs", "proof")):
            path = self.root / folder
            on_disk = sum(1 for _ in path.iterdir()) if path.is_dir() else 0
            if on_disk != n:
                raise BundleFailure(f"{on_disk} {what} file(s) under {folder} but {n} "
                                    "entries listed", "bfa/entries.jsonl")
        self._count("entries", n)
        self._count("scoped", counts.get("scope", 0))
        return (f"{n} entries proven into the checkpoint of size {cp.size} "
                f"({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))})")

    def _count(self, what: str, n: int) -> None:
        stated = (self.claims.get("counts") or {}).get(what)
        if stated != n:
            raise BundleFailure(f"says {stated} {what}, the bundle has {n}", "bfa/bundle.json")

    def _entry(self, n: int, line: Mapping[str, Any], cp: Checkpoint
               ) -> tuple[int, str, str, str, bytes, bytes]:
        rel = "bfa/entries.jsonl"
        seq = line.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BundleFailure(f"line {n}: seq must be an integer", rel)
        if line.get("role") not in ("scope", "closure", "history"):
            raise BundleFailure(f"line {n}: unknown role {line.get('role')!r}", rel, seq)
        leaf_rel = f"data/entries/{seq}.leaf"
        try:
            leaf = (self.root / leaf_rel).read_bytes()
        except FileNotFoundError as e:
            raise BundleFailure("missing", leaf_rel, seq) from e
        try:
            entry = decode_leaf(leaf)
        except FormatError as e:
            raise BundleFailure(f"not a leaf input: {e}", leaf_rel, seq) from e
        h = entry_hash(leaf)
        if entry.seq != seq:
            raise BundleFailure(f"the leaf says it is entry {entry.seq}", leaf_rel, seq)
        if (line.get("domain"), line.get("kind"), line.get("id")) != (
                entry.domain, entry.kind, entry.record_id) or line.get("hash") != h.hex():
            raise BundleFailure(f"line {n} names another record or hash than the leaf holds",
                                rel, seq)
        proof_rel = f"bfa/proofs/{seq}.tlog-proof"
        try:
            proof = TLogProof.parse((self.root / proof_rel).read_bytes().decode("utf-8"))
        except FileNotFoundError as e:
            raise BundleFailure("missing", proof_rel, seq) from e
        except (FormatError, UnicodeDecodeError) as e:
            raise BundleFailure(f"not a tlog-proof: {e}", proof_rel, seq) from e
        if proof.index != seq or proof.extra != leaf or proof.checkpoint != self.note:
            raise BundleFailure("proves another entry, leaf or checkpoint than the bundle's",
                                proof_rel, seq)
        try:
            verify_inclusion(h, seq, cp.size, proof.hashes, cp.root)
        except BfaError as e:
            raise BundleFailure(f"does not prove the entry into the checkpoint: {e}",
                                proof_rel, seq) from e
        if self.progress is not None:
            self.progress(len(leaf))
        return seq, entry.domain, entry.kind, entry.record_id, leaf, h

    def _stream(self, where: str = "") -> Iterator[tuple[int, dict[str, Any], str]]:
        """``(seq, record, role)`` of the bundle's entries, from the scratch ledger."""
        assert self.ledger is not None
        q = ("SELECT e.seq, e.leaf, r.role FROM entries e JOIN bundle_roles r ON r.seq = e.seq"
             f" {where} ORDER BY e.seq")
        with self.ledger.store.reader() as conn:
            for seq, leaf, role in conn.execute(text(q)).yield_per(500):
                yield int(seq), decode_leaf(bytes(leaf)).record, str(role)

    def _held(self, ids: set[str]) -> set[str]:
        """Which of ``ids`` are record ids (not control entries) of the bundle."""
        assert self.ledger is not None
        e = entries.c
        with self.ledger.store.reader(snapshot=False) as conn:
            return {str(x) for x in conn.execute(select(e.record_id).where(
                e.record_id.in_(sorted(ids)), e.domain != "control")).scalars()}

    def _has(self, rid: str) -> bool:
        """Whether the bundle holds a record (not a control entry) with id ``rid``."""
        assert self.ledger is not None
        e = entries.c
        with self.ledger.store.reader(snapshot=False) as conn:
            return conn.execute(select(e.seq).where(e.record_id == rid, e.domain != "control")
                                .limit(1)).first() is not None

    # -- vouchers, disclosures, closure ----------------------------------------------------
    def vouchers(self) -> str:
        listed: dict[str, tuple[int, list[str]]] = {}
        for n, line in _jsonl(self.root, "bfa/vouchers.jsonl"):
            sha, size, records = line.get("sha256"), line.get("size"), line.get("records")
            if not (isinstance(sha, str) and isinstance(size, int) and isinstance(records, list)):
                raise BundleFailure(f"line {n}: needs sha256 (text), size (an integer) and "
                                    "records (a list)", "bfa/vouchers.jsonl")
            if sha in listed:
                raise BundleFailure(f"line {n}: lists file {sha[:16]}… a second time",
                                    "bfa/vouchers.jsonl")
            listed[sha] = (size, sorted(map(str, records)))
            if n > 10_000_000:
                break
        seen: dict[str, list[str]] = {}
        for seq, rec, _role in self._stream("WHERE e.domain = 'archive'"):
            sha = str(rec.get("sha256", ""))
            rel = f"data/vouchers/{sha}"
            path = self.root / rel
            if not path.is_file():
                raise BundleFailure(f"the file of voucher {rec.get('id')!r} is missing", rel,
                                    seq)
            if sha not in seen:
                with path.open("rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                    size = f.tell()
                if digest != sha or size != int(rec.get("size", -1)):
                    raise BundleFailure(f"the file of voucher {rec.get('id')!r} does not "
                                        "hash to its record's sha256 and size", rel, seq)
            seen.setdefault(sha, []).append(str(rec.get("id")))
        folder = self.root / "data" / "vouchers"
        extra = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        stray = [x for x in extra if x not in seen]
        if stray:
            raise BundleFailure("a file no voucher record of the bundle names",
                                f"data/vouchers/{stray[0]}")
        for sha, ids in seen.items():
            if listed.get(sha, (0, []))[1] != sorted(ids):
                raise BundleFailure(f"lists other records for file {sha[:16]}… than the "
                                    "bundle's voucher records", "bfa/vouchers.jsonl")
            if listed[sha][0] != (self.root / "data" / "vouchers" / sha).stat().st_size:
                raise BundleFailure(f"gives another size for file {sha[:16]}… than it has",
                                    "bfa/vouchers.jsonl")
        if len(listed) != len(seen):
            raise BundleFailure("lists a file no voucher record of the bundle names",
                                "bfa/vouchers.jsonl")
        self._count("vouchers", len(seen))
        return f"{len(seen)} voucher file(s) match their records"

    def disclosures(self) -> str:
        rel = "bfa/disclosures.jsonl"
        if not (self.root / rel).is_file():
            if self.claims.get("disclosure"):
                raise BundleFailure("missing, although bfa/bundle.json states a disclosure",
                                    rel)
            self._count("disclosed", 0)
            return "- none (personal data only as pseudonyms)"
        if not self.claims.get("disclosure"):
            raise BundleFailure("present, although bfa/bundle.json states no disclosure", rel)
        assert self.ledger is not None
        n = 0
        e = entries.c
        for n, line in _jsonl(self.root, rel):
            seq = line.get("seq")
            with self.ledger.store.reader(snapshot=False) as conn:
                leaf = conn.execute(select(e.leaf).where(e.seq == seq)).scalar()
            if leaf is None:
                raise BundleFailure(f"line {n}: entry {seq} is not in the bundle", rel)
            entry = decode_leaf(bytes(leaf))
            if (line.get("id"), line.get("domain")) != (entry.record_id, entry.domain):
                raise BundleFailure(f"line {n}: names {line.get('domain')}:{line.get('id')}, "
                                    f"but entry {seq} holds {entry.domain}:{entry.record_id}",
                                    rel, int(seq) if isinstance(seq, int) else None)
            rec = entry.record
            fld, value = str(line.get("field")), line.get("value")
            fields = (self.claims.get("disclosure") or {}).get("fields")
            if not isinstance(fields, list) or fld not in fields:
                raise BundleFailure(f"line {n}: discloses {fld}, which bfa/bundle.json's "
                                    "disclosure does not name", rel)
            want = (rec.get("_commitments") or {}).get(fld)
            try:
                salt = bytes.fromhex(str(line.get("salt")))
            except ValueError as err:
                raise BundleFailure(f"line {n}: salt is not hex", rel, seq) from err
            if not isinstance(value, str) or want is None or commitment(salt, value) != want:
                raise BundleFailure(f"line {n}: the disclosed {fld} does not open the "
                                    "entry's commitment", rel, int(seq) if isinstance(
                                        seq, int) else None)
        self._count("disclosed", n)
        return f"{n} disclosed value(s) open their commitments"

    def closure(self) -> str:
        scope = self.claims.get("scope") or {}
        for rid in scope.get("records") or ():
            if not self._scoped(str(rid)):
                raise BundleFailure(f"the scope names record {rid!r}, which no scope entry "
                                    "of the bundle holds", "bfa/bundle.json")
        checked = 0
        pending: list[tuple[int, str, str]] = []  # (seq, record id, id it names)

        def settle() -> None:
            held = self._held({rid for _q, _r, rid in pending})
            for seq, owner, rid in pending:
                if rid not in held:
                    raise BundleFailure(f"record {owner!r} names {rid!r}, which the bundle "
                                        "does not hold", f"data/entries/{seq}.leaf", seq)
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
        return f"{checked} link(s) of the scoped records are in the bundle"

    # -- consistency ---------------------------------------------------------------------
    def consistency(self) -> str:
        if not self.claims.get("since"):
            for rel in ("bfa/since.note", "bfa/consistency.txt"):
                if (self.root / rel).exists():
                    raise BundleFailure("present, although bfa/bundle.json states no since "
                                        "checkpoint", rel)
            return "- no since checkpoint"
        assert self.cp is not None
        old_note = _text(self.root, "bfa/since.note")
        body = _text(self.root, "bfa/consistency.txt")
        try:
            old = open_checkpoint(old_note, [self.key], str(self.claims.get("origin")))
        except BfaError as e:
            raise BundleFailure(f"not signed by the verifier key given: {e}",
                                "bfa/since.note") from e
        head, _, note = body.partition("\n\n")
        lines = head.split("\n")
        if not lines[0].startswith("old ") or note != self.note:
            raise BundleFailure("not an 'old N' proof towards the bundle's checkpoint",
                                "bfa/consistency.txt")
        try:
            size = int(lines[0][4:])
            hashes = [base64.b64decode(x, validate=True) for x in lines[1:] if x]
        except (ValueError, binascii.Error) as e:
            raise BundleFailure(f"malformed: {e}", "bfa/consistency.txt") from e
        if size != old.size:
            raise BundleFailure("proves from another size than bfa/since.note",
                                "bfa/consistency.txt")
        if (self.claims.get("since") or {}).get("size") != size:
            raise BundleFailure("states another since size than bfa/since.note's",
                                "bfa/bundle.json")
        try:
            if size == self.cp.size:
                if hashes or old.root != self.cp.root:
                    raise FormatError("same size, another root")
            else:
                verify_consistency(size, self.cp.size, old.root, self.cp.root, hashes)
        except BfaError as e:
            raise BundleFailure(f"does not prove the checkpoint extends the one of size "
                                f"{size}: {e}", "bfa/consistency.txt") from e
        return f"the checkpoint of size {self.cp.size} extends the one of size {size}"

    # -- findings ------------------------------------------------------------------------
    def findings(self) -> str:
        rel = "bfa/findings.json"
        doc = _read_json(self.root, rel)
        if not isinstance(doc, dict) or not isinstance(doc.get("breaks"), list):
            raise BundleFailure("not a findings document", rel)
        stated = {str(b.get("id")): b for b in doc["breaks"] if isinstance(b, dict)}
        if len(stated) != len(doc["breaks"]):
            raise BundleFailure("lists a break twice (or an item that is no object)", rel)
        self._history(stated)
        gone = {str(b.get("id")): b for b in doc.get("not_reported") or ()
                if isinstance(b, dict)}
        self._history(gone)
        if doc.get("ruleset") != RULESET_VERSION:
            self._named_breaks(stated, gone)
            self._count("breaks", len(stated))
            self.report.not_rederivable = [
                {"id": k, "code": b.get("code"),
                 "why": f"made with rule set {doc.get('ruleset')!r}, this bfa has "
                        f"{RULESET_VERSION!r}"} for k, b in sorted(stated.items())]
            return (f"- {len(stated)} finding(s) not re-derivable with this bfa (rule set "
                    f"{doc.get('ruleset')})")
        try:
            rules = Rules.model_validate_json(json.dumps(doc.get("rules") or {}))
            as_of = date.fromisoformat(str(doc.get("as_of")))
        except ValueError as e:
            raise BundleFailure(f"rules or as_of unusable: {e}", rel) from e
        if rules_digest(rules) != doc.get("rules_digest"):
            raise BundleFailure("rules_digest is not the digest of the rules stated", rel)
        assert self.ledger is not None
        derived = {b.id: b for b in run_reconcile(self.ledger, as_of, rules, full=True).breaks}

        def judged(records: list[str], code: str) -> bool:
            return (code in RE_DERIVABLE and bool(records)
                    and all(self._has(r) for r in records)
                    and any(self._scoped(r) for r in records))

        compared = 0
        for bid, b in sorted(stated.items()):
            records = [str(x) for x in b.get("records") or ()]
            if not judged(records, str(b.get("code"))):
                self.report.not_rederivable.append(
                    {"id": bid, "code": b.get("code"),
                     "why": "depends on records outside the bundle"
                     if not all(self._has(r) for r in records)
                     or str(b.get("code")) in RE_DERIVABLE
                     else f"{b.get('code')} depends on records no bundle closure holds"})
                continue
            compared += 1
            got = derived.get(bid)
            if got is None:
                raise BundleFailure(f"finding {bid} ({b.get('code')}) is not re-derived from "
                                    "the bundle's records (added)", rel)
            mine = (got.code, got.field, sorted(got.records), dict(got.amounts))
            theirs = (b.get("code"), b.get("field"), sorted(records), b.get("amounts"))
            if mine != theirs:
                raise BundleFailure(f"finding {bid} differs from its re-derivation "
                                    f"(changed): stated {theirs}, re-derived {mine}", rel)
        for bid, got in sorted(derived.items()):
            if bid not in stated and judged(list(got.records), got.code):
                raise BundleFailure(f"finding {bid} ({got.code} on "
                                    f"{', '.join(got.records)}) is re-derived from the "
                                    "bundle's records but not stated (missing)", rel)
        self._named_breaks(stated, gone)
        self._count("breaks", len(stated))
        return (f"{compared} finding(s) re-derived and equal; "
                f"{len(self.report.not_rederivable)} not re-derivable here")

    def _transitions(self, bid: str) -> int:
        """How many ``control.break`` entries of break ``bid`` the bundle holds."""
        assert self.ledger is not None
        e = entries.c
        with self.ledger.store.reader(snapshot=False) as conn:
            return len(conn.execute(select(e.seq).where(
                e.domain == "control", e.kind == "break",
                e.record_id.like(f"{bid}/%"))).all())

    def _named_breaks(self, stated: Mapping[str, Any], gone: Mapping[str, Any]) -> None:
        for bid in (self.claims.get("scope") or {}).get("breaks") or ():
            if str(bid) not in stated and str(bid) not in gone:
                raise BundleFailure(f"the scope names break {bid}, which neither breaks nor "
                                    "not_reported holds", "bfa/findings.json")

    def _scoped(self, rid: str) -> bool:
        """Whether a record of the bundle with id ``rid`` has the role ``scope``."""
        assert self.ledger is not None
        with self.ledger.store.reader(snapshot=False) as conn:
            return conn.execute(text(
                "SELECT 1 FROM entries e JOIN bundle_roles r ON r.seq = e.seq "
                "WHERE e.record_id = :rid AND e.domain <> 'control' AND r.role = 'scope' "
                "LIMIT 1"), {"rid": rid}).first() is not None

    def _history(self, stated: Mapping[str, Mapping[str, Any]]) -> None:
        assert self.ledger is not None
        e = entries.c
        for bid, b in stated.items():
            wf = b.get("workflow")
            if not wf:
                continue
            last = None
            history = wf.get("history") or []
            if wf.get("status") != "open" and not history:
                raise BundleFailure(f"finding {bid}: status {wf.get('status')!r} with no "
                                    "control.break entry behind it", "bfa/findings.json")
            for i, seq in enumerate(history, 1):
                if not isinstance(seq, int) or isinstance(seq, bool):
                    raise BundleFailure(f"finding {bid}: history holds {seq!r}, not an entry "
                                        "number", "bfa/findings.json")
                with self.ledger.store.reader(snapshot=False) as conn:
                    leaf = conn.execute(select(e.leaf).where(e.seq == seq)).scalar()
                rec = None if leaf is None else decode_leaf(bytes(leaf)).record
                if rec is None or rec.get("type") != "control.break" or rec.get(
                        "break") != bid:
                    raise BundleFailure(f"finding {bid}: history entry {seq} is not one of "
                                        "its control.break entries in the bundle",
                                        "bfa/findings.json", int(seq))
                if rec.get("id") != f"{bid}/{i}":  # transitions are numbered 1, 2, … (§2.5)
                    raise BundleFailure(f"finding {bid}: history item {i} is transition "
                                        f"{rec.get('id')!r}; the history must be every "
                                        "transition, in order", "bfa/findings.json", seq)
                last = rec
            held = self._transitions(bid)
            if held != len(history):
                raise BundleFailure(f"finding {bid}: the bundle holds {held} of its "
                                    f"transitions, its history lists {len(history)}",
                                    "bfa/findings.json")
            if last is not None and last.get("status") != wf.get("status"):
                raise BundleFailure(f"finding {bid}: status {wf.get('status')!r} is not the "
                                    f"one its last transition gives ({last.get('status')!r})",
                                    "bfa/findings.json")


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
