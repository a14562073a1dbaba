"""Proof bundles: a scope of the ledger exported as a BagIt bag a supervisor checks offline.

:func:`export_bundle` (``bfa bundle export``) writes the bag of FORMAT.md §12:

1. **Scope** (:class:`Scope`): records named by id, the records of a month, of a person
   (found by the person's pseudonym), the records a break names; any mix.
2. **Closure**: each scoped record's links — what its own payload names (allocation
   events, voucher ``refs``, ``corrects``, a return's movement), what names it (the
   movements allocating to it, the vouchers referring to it, its corrections) and its
   heuristic match — and, for each record so gathered, a movement's allocation events, a
   voucher's references and the vouchers referring to it. Voucher files of every voucher
   record in the bundle come along.
3. **Findings**: a reconciliation of the ledger as of ``as_of`` (with the rules given or
   the defaults), kept for the breaks naming a scoped record, with their workflow state;
   their ``control.break`` entries join the bundle as ``history`` entries.
4. **Proofs**: one C2SP tlog-proof per entry against the latest signed checkpoint, and,
   with ``since``, a consistency proof from a checkpoint the supervisor holds.
5. **Disclosure** (optional): clear values of named personal fields with their salts, the
   disclosure recorded as a ``control.disclose`` entry.
6. The bag's ``tagmanifest-sha256.txt`` is signed, as a C2SP signed note, by the
   exporter's own key (``keys/exporter.key``, made on first use; never the ledger's
   signing key), in ``bundle.sig``.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from archive._bagit import BagWriter
from archive._bundle_html import SHOWN, render_index
from archive._bundle_verify import signed_text
from archive._bundle_work import ExportWork, json_document
from archive._store import FileStore
from ledger import (
    Checkpoint,
    ConfigError,
    Disclosed,
    InputError,
    Ledger,
    NotCoveredError,
    NotFoundError,
    Signer,
    disclose,
    entries_by_seq,
    latest_signed,
    now_rfc3339,
    open_checkpoint,
    party_pseudonym,
    prove_entries,
    sign_note,
    write_atomic,
)
from reconcile import (
    RULESET_VERSION,
    Break,
    BreakState,
    Rules,
    Transition,
    get_break,
    histories,
    history,
    ids_naming,
    matched_with,
    rules_digest,
    seqs_of_ids,
    seqs_of_month,
    seqs_of_party,
    stream_report,
    unindexed_business,
    vouchers_naming,
)
from schemas import gettext as _

FORMAT = "bfa-bundle/1"
SIGNATURE = "bundle.sig"
"""The one file of a bundle no tag manifest lists: the signature over one of them."""
DOMAINS = ("business", "finance", "archive")


@dataclass(frozen=True)
class Scope:
    """What a bundle covers; each part optional, the union taken."""

    records: tuple[str, ...] = ()
    periods: tuple[str, ...] = ()
    persons: tuple[str, ...] = ()
    """Clear person ids (pseudonymised with the ledger secret; never written)."""
    breaks: tuple[str, ...] = ()

    def empty(self) -> bool:
        return not (self.records or self.periods or self.persons or self.breaks)


@dataclass
class ExportResult:
    """What :func:`export_bundle` wrote."""

    root: Path
    id: str
    size: int
    entries: int = 0
    scoped: int = 0
    vouchers: int = 0
    breaks: int = 0
    not_reported: int = 0
    """Breaks named by ``--break`` that this reconciliation does not report."""
    disclosed: int = 0
    disclosure_id: str | None = None
    exporter: str = ""
    missing_files: list[str] = field(default_factory=list)


def exporter_signer(ledger: Ledger) -> Signer:
    """This home's exporter key (``keys/exporter.key``), made on first use. Its name is
    ``<origin>/exporter/<identity>`` with the characters a key name may not hold made
    ``_``; it signs bundles only, never checkpoints."""
    path = ledger.home.path / "keys" / "exporter.key"
    if path.exists():
        try:
            return Signer.from_text(path.read_text("utf-8").strip())
        except Exception as e:
            raise ConfigError(_("{path}: not a note signer key: {error}").format(
                path=path, error=e)) from e
    who = "".join(c if c.isalnum() or c in "._-" else "_" for c in ledger.actor().identity)
    signer = Signer.generate(f"{ledger.origin}/exporter/{who or 'unknown'}")
    write_atomic(path, signer.to_text() + "\n", ledger.home.perms)
    return signer


def _scope(ledger: Ledger, conn: Connection, scope: Scope, break_records: Iterable[str],
           work: ExportWork) -> None:
    """Give role ``scope`` to the entries of the scope's records (current and superseded
    versions alike)."""
    seqs, unknown = seqs_of_ids(conn, set(scope.records) | set(break_records))
    if unknown:
        raise NotFoundError(_("no record {id} in the ledger").format(
            id=repr(sorted(unknown)[0])))
    work.add_roles(seqs, "scope")
    for month in scope.periods:
        work.add_roles(seqs_of_month(conn, month), "scope")
    pseudonyms = {party_pseudonym(ledger, p) for p in scope.persons}
    by_person: dict[str, set[int]] = {ps: seqs_of_party(conn, ps) for ps in pseudonyms}
    if pseudonyms:  # enrolments and transfers: read, one chunk at a time
        for chunk in unindexed_business(conn):
            for q, entry in entries_by_seq(conn, chunk).items():
                ps = entry.record.get("person_id")
                if ps in by_person:
                    by_person[str(ps)].add(q)
    for found in by_person.values():
        if not found:
            raise NotFoundError(_("no record of that person in the ledger (person ids are "
                                  "compared exactly as sent)"))
        work.add_roles(found, "scope")


def allocation_events(record: Mapping[str, Any]) -> set[str]:
    """The events a movement's allocations name (INTERCHANGE §7: ``{"event", "amount"}``)."""
    return {str(a["event"]) for a in record.get("allocations") or ()
            if isinstance(a, dict) and "event" in a}


def links(record: Mapping[str, Any]) -> set[str]:
    """Ids a record's own payload names (FORMAT.md §12.2): allocation events, ``refs``,
    ``corrects``, ``returns``."""
    out = allocation_events(record) | {str(x) for x in record.get("refs") or ()}
    return out | {str(record[k]) for k in ("corrects", "returns") if record.get(k)}


def _closure(conn: Connection, work: ExportWork) -> None:
    """Give role ``closure`` to the closure of the scoped entries (FORMAT.md §12.2): first
    what they name, what names them and their heuristic match partners; then, for
    everything so added, a movement's allocation events, a voucher's references, and the
    vouchers naming it. Also notes the scoped entries' record ids. A page of entries at a
    time: what was found waits in the work table."""
    for page in work.seqs("scope"):
        entries = entries_by_seq(conn, page)
        ids = {e.record_id for e in entries.values()}
        work.add_ids(ids)
        named: set[str] = set()
        for e in entries.values():
            named |= links(e.record)
        work.hold(seqs_of_ids(conn, named | ids_naming(conn, sorted(ids)))[0])
        work.hold(matched_with(conn, page))
    work.promote("closure")
    for page in work.seqs("closure"):
        added = entries_by_seq(conn, page)
        more = vouchers_naming(conn, sorted({e.record_id for e in added.values()}))
        for e in added.values():
            if e.domain == "finance":
                more |= allocation_events(e.record)
            elif e.domain == "archive":
                more |= {str(x) for x in e.record.get("refs") or ()}
        work.hold(seqs_of_ids(conn, more)[0])
    work.promote("closure")


def export_bundle(ledger: Ledger, store: FileStore, out: Path, scope: Scope, *,
                  as_of: date, rules: Rules | None = None, since: str | None = None,
                  disclose_fields: Sequence[str] = (), purpose: str | None = None,
                  label: str | None = None,
                  progress: Callable[[int], Callable[[int], None] | None] | None = None
                  ) -> ExportResult:
    """Write the proof bundle of ``scope`` to the new directory ``out`` (FORMAT.md §12).

    Memory stays flat however large the scope and the ledger: what the export gathers
    waits in a temporary file (:class:`ExportWork`), and the files are written as they
    are read."""
    if scope.empty():
        raise InputError(_("name a scope: --record, --period, --person and/or --break"))
    if disclose_fields and not purpose:
        raise InputError(_("--disclose needs --purpose: why the clear values leave the "
                           "agency"))
    rules = rules or Rules.from_mapping(None)
    note, cp = latest_signed(ledger)
    since_size = _since(ledger, since, cp) if since is not None else None
    named = [get_break(ledger, bid) for bid in scope.breaks]  # unknown: NotFoundError
    scope = Scope(scope.records, scope.periods, scope.persons,
                  tuple(st.break_id for st in named))  # a prefix given: the whole id
    break_records = {rid for st in named for rid in st.records}
    with ExportWork() as work:
        # the findings first: the run checks the derived tables the scope is read from
        stream_report(ledger, as_of, rules, lambda _conn, breaks: work.add_breaks(
            [(b.id, b.records, _break_json(b)) for b in breaks]))
        with ledger.store.reader() as conn:
            _scope(ledger, conn, scope, break_records, work)
            n_scoped = work.count("scope")
            if not n_scoped:
                raise NotFoundError(_("the scope names no record of the ledger"))
            _closure(conn, work)
        n_kept = work.keep(st.break_id for st in named)
        # a break named that this reconciliation no longer reports: as the workflow knows it
        gone = [st for st in named if not work.kept(st.break_id)]
        with ledger.store.reader() as conn:
            for page in work.kept_ids():
                workflow: dict[str, dict[str, Any]] = {}
                for bid, (state, transitions) in histories(ledger.store, conn, page).items():
                    work.add_roles((tr.seq for tr in transitions), "history")
                    workflow[bid] = _workflow_json(state, transitions)
                work.set_workflow(workflow)
        not_reported = [_gone_json(ledger, st) for st in gone]
        for item in not_reported:
            work.add_roles(item["workflow"]["history"], "history")
        late = work.first_at_or_after(cp.size)
        if late is not None:
            raise NotCoveredError(_(
                "entry {seq} of the bundle is not covered by the latest signed checkpoint "
                "(size {size}); run 'bfa checkpoint' first").format(seq=late, size=cp.size))
        disclosed: list[Disclosed] = []
        disclosure_id: str | None = None
        if disclose_fields:
            assert purpose is not None
            disclosed, disclosure_id = disclose(
                ledger, [q for page in work.seqs("scope") for q in page],
                disclose_fields, purpose, _scope_json(scope, ledger, hide=True), label)
        signer = exporter_signer(ledger)
        bundle_id = str(uuid.uuid4())
        made = not out.exists()
        try:
            result = _write(ledger, store, out, signer, bundle_id, note, cp, work, scope,
                            n_kept, not_reported, rules, as_of, since, since_size, disclosed,
                            disclosure_id, disclose_fields, purpose, label, progress,
                            n_scoped)
        except BaseException:
            _remove_partial(out, made)
            raise
    return result


def _write(ledger: Ledger, store: FileStore, out: Path, signer: Signer, bundle_id: str,
           note: str, cp: Checkpoint, work: ExportWork, scope: Scope, n_kept: int,
           not_reported: list[dict[str, Any]], rules: Rules,
           as_of: date, since: str | None, since_size: int | None,
           disclosed: list[Disclosed], disclosure_id: str | None,
           disclose_fields: Sequence[str], purpose: str | None, label: str | None,
           progress: Callable[[int], Callable[[int], None] | None] | None,
           n_scoped: int) -> ExportResult:
    """Write the bag (FORMAT.md §12.1) of an export :func:`export_bundle` prepared."""
    result = ExportResult(out, bundle_id, cp.size, exporter=signer.name,
                          disclosure_id=disclosure_id, disclosed=len(disclosed))
    n_entries = work.count()
    tick = progress(n_entries) if progress is not None else None
    writer = BagWriter(out)
    view_entries: list[dict[str, Any]] = []  # the first ones, for index.html
    lines_path = work.file("entries.jsonl")
    role_of: dict[int, str] = {}  # of the entries read ahead of the proofs (a chunk or so)

    def seqs() -> Iterator[int]:
        for page in work.roles():
            role_of.update(page)
            yield from (q for q, _role in page)

    with lines_path.open("wb") as lines:
        for entry, proof in prove_entries(ledger, seqs(), note, cp):
            writer.add_payload(f"entries/{entry.seq}.leaf", entry.leaf)
            writer.add_tag(f"bfa/proofs/{entry.seq}.tlog-proof", proof.marshal().encode())
            line = {"seq": entry.seq, "domain": entry.domain, "kind": entry.kind,
                    "id": entry.record_id, "hash": entry.entry_hash.hex(),
                    "role": role_of.pop(entry.seq)}
            lines.write(_jsonl(line))
            if len(view_entries) < SHOWN:
                view_entries.append(line)
            if entry.domain == "archive" and "sha256" in entry.record:
                work.add_voucher(str(entry.record["sha256"]), entry.seq,
                                 int(entry.record["size"]), entry.record_id)
            if tick is not None:
                tick(1)
    vouchers_path = work.file("vouchers.jsonl")
    n_vouchers = 0
    with vouchers_path.open("wb") as listed:
        for v in work.vouchers():
            n_vouchers += 1
            listed.write(_jsonl(v))
            sha = str(v["sha256"])
            path = store.path_of(sha)
            if not path.is_file():
                result.missing_files.append(sha)
                continue
            got = writer.add_payload(f"vouchers/{sha}", path)
            if got.sha256 != sha:
                result.missing_files.append(sha)
    if result.missing_files:
        raise InputError(_(
            "{count} voucher file(s) of the bundle are missing from the archive or changed "
            "(first: sha256 {sha256}); run 'bfa archive audit' and restore them, then export "
            "again").format(count=len(result.missing_files),
                            sha256=result.missing_files[0]))
    head = {
        "as_of": as_of.isoformat(), "ruleset": RULESET_VERSION, "rules": rules.describe(),
        "rules_digest": rules_digest(rules),
        "not_reported": not_reported,
    }
    findings_path = work.file("findings.json")
    with findings_path.open("w", encoding="utf-8", newline="") as text:
        text.writelines(json_document(head, "breaks", work.kept_breaks()))
    writer.add_tag("bfa/entries.jsonl", lines_path)
    writer.add_tag("bfa/vouchers.jsonl", vouchers_path)
    writer.add_tag("bfa/findings.json", findings_path)
    writer.add_tag("bfa/checkpoint.note", note.encode())
    writer.add_tag("bfa/verifier.key", (ledger.home.verifier().to_text() + "\n").encode())
    writer.add_tag("bfa/exporter.key", (signer.verifier().to_text() + "\n").encode())
    if since is not None and since_size is not None:
        consistency = ledger.prove_consistency(since_size, cp.size)
        writer.add_tag("bfa/since.note", since.encode())
        writer.add_tag("bfa/consistency.txt", consistency.to_text().encode())
    if disclosed:
        writer.add_tag("bfa/disclosures.jsonl", b"".join(_jsonl({
            "seq": d.seq, "domain": d.domain, "id": d.record_id, "field": d.field,
            "value": d.value, "salt": d.salt.hex()}) for d in disclosed))
    claims = {
        "format": FORMAT, "id": bundle_id, "origin": ledger.origin,
        "created_at": now_rfc3339(), "exporter": {"key": signer.name,
                                                  "user": ledger.actor(label).identity},
        "scope": _scope_json(scope, ledger, hide=True),
        "checkpoint": {"size": cp.size, "root": base64.b64encode(cp.root).decode()},
        "counts": {"entries": n_entries, "scoped": n_scoped, "vouchers": n_vouchers,
                   "breaks": n_kept, "disclosed": len(disclosed)},
        "since": None if since_size is None else {"size": since_size},
        "disclosure": None if not disclosed else {
            "id": disclosure_id, "fields": sorted(set(disclose_fields)), "purpose": purpose},
    }
    writer.add_tag("bfa/bundle.json", _json(claims))
    writer.add_tag("index.html", render_index(
        claims, view_entries, head, list(work.kept_breaks(SHOWN)),
        list(work.vouchers(SHOWN))).encode())
    writer.finish({
        "Source-Organization": ledger.origin, "External-Identifier": bundle_id,
        "External-Description": "BFA Ledger proof bundle (FORMAT.md §12); check it with: "
                                "bfa bundle verify DIR --key VERIFIER_KEY",
        "Bfa-Bundle-Format": FORMAT, "Bfa-Checkpoint-Size": str(cp.size)})
    (out / SIGNATURE).write_bytes(sign_note(signed_text(out, bundle_id), signer).encode())
    result.entries, result.scoped = n_entries, n_scoped
    result.vouchers, result.breaks = n_vouchers, n_kept
    result.not_reported = len(not_reported)
    return result


def _remove_partial(out: Path, made: bool) -> None:
    """What a failed export wrote: the directory it made, or everything it put into the
    empty one it was given (never a bundle half-written)."""
    if not out.is_dir():
        return
    if made:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _since(ledger: Ledger, since: str, cp: Checkpoint) -> int:
    """The size of the supervisor's checkpoint ``since`` (signed by the ledger's key)."""
    try:
        old = open_checkpoint(since, [ledger.home.verifier()], ledger.origin)
    except Exception as e:
        raise InputError(_("--since: not a checkpoint of this ledger signed by its key: "
                           "{error}").format(error=e)) from e
    if old.size > cp.size:
        raise InputError(_("--since: the checkpoint of size {size} is newer than the latest "
                           "one ({latest})").format(size=old.size, latest=cp.size))
    return old.size


def _break_json(b: Break) -> dict[str, Any]:
    """A break of ``findings.json`` but its ``workflow`` (added once looked up)."""
    return {"id": b.id, "code": b.code, "severity": b.severity, "field": b.field,
            "records": list(b.records), "amounts": dict(sorted(b.amounts.items())),
            "message": b.message, "amount_at_risk": b.amount_at_risk, "evidence": b.evidence}


def _workflow_json(state: BreakState, transitions: Sequence[Transition]) -> dict[str, Any]:
    return {"status": state.status, "assignee": state.assignee,
            "resolved_by": state.resolved_by, "approved_by": state.approved_by,
            "reason": state.reason, "note": state.note,
            "history": sorted(tr.seq for tr in transitions)}


def _gone_json(ledger: Ledger, st: BreakState) -> dict[str, Any]:
    """A break the scope names that the bundle's reconciliation does not report (resolved
    since, or judged differently as of another date): its last snapshot and workflow."""
    _state, transitions = history(ledger, st.break_id)
    return {"id": st.break_id, "code": st.code, "severity": st.severity, "field": st.field,
            "records": list(st.records), "amounts": dict(sorted(st.amounts.items())),
            "message": st.message, "evidence": st.evidence,
            "workflow": _workflow_json(st, transitions)}


def _scope_json(scope: Scope, ledger: Ledger, *, hide: bool) -> dict[str, Any]:
    persons = sorted(party_pseudonym(ledger, p) for p in scope.persons)
    return {"records": sorted(scope.records), "periods": sorted(scope.periods),
            "persons": persons if hide else sorted(scope.persons),
            "breaks": sorted(scope.breaks)}


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def _jsonl(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            + "\n").encode()


__all__ = ["FORMAT", "SIGNATURE", "ExportResult", "Scope", "export_bundle", "exporter_signer"]
