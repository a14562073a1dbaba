"""What the ledger hands a proof bundle (FORMAT.md §12): entries by ``seq``, many inclusion
proofs against one signed checkpoint, and disclosed personal values with their openings.

- :func:`latest_signed` — the latest checkpoint, checked as a verifier checks it;
- :func:`entries_by_seq` — entries read by ``seq``, each row checked against its leaf;
- :func:`prove_entries` — C2SP tlog-proofs for many entries, the tree nodes of a chunk of
  entries read in one query (the audit paths of neighbouring entries share most nodes),
  each proof checked before it is returned;
- :func:`disclose` — clear values and salts of personal fields of many entries, each
  checked against its commitment, recorded as one ``control.disclose`` entry.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, select, text

from ledger import _schema as s
from ledger._append import now_rfc3339
from ledger._control import append_control, checked_entry
from ledger._entry import Entry
from ledger._errors import FormatError, IntegrityError, MerkleProofError, NotCoveredError
from ledger._merkle import (
    CompactRange,
    inclusion_proof,
    inclusion_ranges,
    nodes_needed,
    verify_inclusion,
)
from ledger._note import Checkpoint
from ledger._privacy import personal_fields
from ledger._tlogproof import TLogProof
from ledger._vault import Keyring
from schemas import gettext

if TYPE_CHECKING:
    from ledger._ledger import Ledger

CHUNK = 256


def latest_signed(ledger: Ledger) -> tuple[str, Checkpoint]:
    """The latest stored checkpoint note and its parsed, signature-checked content."""
    with ledger.store.reader(snapshot=False) as conn:
        latest = ledger.latest_checkpoint(conn)
    if latest is None:
        raise NotCoveredError(gettext("no signed checkpoint yet; run 'bfa checkpoint'"))
    size, _root, note = latest
    return note, ledger._signed(note, size)


def entries_by_seq(conn: Connection, seqs: Sequence[int]) -> dict[int, Entry]:
    """The entries at ``seqs`` (absent ones left out), each checked against its row."""
    e = s.entries.c
    out: dict[int, Entry] = {}
    for i in range(0, len(seqs), 500):
        for seq, leaf, h, domain, rid in conn.execute(
                select(e.seq, e.leaf, e.entry_hash, e.domain, e.record_id)
                .where(e.seq.in_(list(seqs[i:i + 500])))):
            out[int(seq)] = checked_entry(int(seq), bytes(leaf), bytes(h), str(domain),
                                          str(rid))
    return out


def prove_entries(ledger: Ledger, seqs: Iterable[int], note: str, cp: Checkpoint
                  ) -> Iterator[tuple[Entry, TLogProof]]:
    """``(entry, proof)`` for each of ``seqs`` (in the order given) against the checkpoint
    ``note`` (parsed: ``cp``); an entry it does not cover is :class:`NotCoveredError`."""
    chunk: list[int] = []
    for seq in seqs:
        chunk.append(seq)
        if len(chunk) >= CHUNK:
            yield from _prove_chunk(ledger, chunk, note, cp)
            chunk = []
    yield from _prove_chunk(ledger, chunk, note, cp)


def _prove_chunk(ledger: Ledger, seqs: list[int], note: str, cp: Checkpoint
                 ) -> Iterator[tuple[Entry, TLogProof]]:
    if not seqs:
        return
    size = cp.size
    late = [q for q in seqs if q >= size]
    if late:
        raise NotCoveredError(gettext("entry {seq} is not covered by the checkpoint of size "
                                      "{size}; run 'bfa checkpoint'").format(
            seq=late[0], size=size))
    with ledger.store.reader() as conn:
        entries = entries_by_seq(conn, seqs)
        wanted: set[tuple[int, int]] = set()
        for q in seqs:
            wanted |= set(nodes_needed(inclusion_ranges(q, size)))
        nodes = ledger.store.get_nodes(conn, sorted(wanted))
    for q in seqs:
        entry = entries.get(q)
        if entry is None:
            raise IntegrityError(gettext("entry {seq} is missing from the ledger; run 'bfa "
                                         "verify'").format(seq=q))
        hashes = tuple(ledger._proof_hashes(partial(inclusion_proof, q, size, nodes)))
        try:
            verify_inclusion(entry.entry_hash, q, size, hashes, cp.root)
        except (MerkleProofError, FormatError) as e:
            raise IntegrityError(gettext(
                "the proof of entry {seq} does not verify against the checkpoint of size "
                "{size}: {reason}; run 'bfa verify'").format(seq=q, size=size, reason=e)) from e
        yield entry, TLogProof(q, hashes, note, extra=entry.leaf)


@dataclass(frozen=True, slots=True)
class Disclosed:
    """One personal value disclosed: where it is, the clear value and its salt (§4.2)."""

    seq: int
    domain: str
    record_id: str
    field: str
    value: str
    salt: bytes


def disclose(ledger: Ledger, seqs: Sequence[int], fields: Iterable[str], purpose: str,
             scope: dict[str, object], label: str | None = None) -> tuple[list[Disclosed], str]:
    """The clear values of ``fields`` of the entries at ``seqs`` (each checked against its
    commitment), and the id of the ``control.disclose`` entry appended for them (who,
    purpose, fields, records; FORMAT.md §12.4)."""
    from ledger._ledger import check_note

    wanted = personal_fields(fields, "--disclose")
    purpose = check_note(purpose, "disclosing personal data (its purpose)", limit=500)
    who = ledger.actor(label)
    vault_key = ledger.vault_key()
    out: list[Disclosed] = []
    with ledger.store.writer() as conn:
        keyring = Keyring(ledger.store, vault_key)
        entries = entries_by_seq(conn, seqs)
        records = []
        for q in seqs:
            entry = entries[q]
            opened = ledger.open_fields(conn, entry, wanted, keyring, disclosing=True)
            if opened:
                records.append({"domain": entry.domain, "id": entry.record_id, "seq": q})
            out += [Disclosed(q, entry.domain, entry.record_id, f, v, salt)
                    for f, (v, salt) in sorted(opened.items())]
        rid = f"disclose-{uuid.uuid4()}"
        append_control(ledger.store, conn, [{
            "type": "control.disclose", "id": rid, **who.members(),
            "fields": sorted(wanted), "purpose": purpose, "records": records,
            "scope": scope, "at": now_rfc3339()}], at_is_recorded=False)
    return out, rid


def party_pseudonym(ledger: Ledger, value: str) -> str:
    """The party pseudonym of a person or party id (FORMAT.md §4.1), with this home's
    ledger secret (checked to be the ledger's)."""
    from ledger._privacy import Pseudonymizer

    return Pseudonymizer(ledger.secret()).pseudonym("person_id", value)


def party_pseudonyms(ledger: Ledger) -> Callable[[str], str]:
    """A function giving the party pseudonym of many person ids with one check of this
    home's ledger secret (``bfa compare``: a whole list)."""
    from ledger._privacy import Pseudonymizer

    pseudo = Pseudonymizer(ledger.secret())
    return lambda value: pseudo.pseudonym("person_id", value)


def scratch_ledger(folder: Path, origin: str) -> Ledger:
    """A keyless ledger in a new SQLite file under ``folder``, for rows copied in as they
    are (a proof bundle's entries, re-derived offline; FORMAT.md §12.5). It reads no
    environment variable and no home: nothing of the caller's own ledger is touched."""
    from ledger._home import Home
    from ledger._ledger import Ledger

    missing = folder / "no-key"
    db = folder / "scratch.db"
    shutil.copyfile(_empty_schema(), db)
    home = Home(path=folder, db_url=f"sqlite:///{db}", origin=origin,
                signing_key_path=missing, secret_key_path=missing)
    led = Ledger(home)
    event.listen(led.store.engine, "connect", _scratch_settings)
    with led.store.writer() as conn:
        led.store.set_meta(conn, "origin", origin)
    return led


SCRATCH_SETTINGS = ("PRAGMA synchronous=OFF", "PRAGMA secure_delete=OFF",
                    "PRAGMA cache_size=-2048")
"""A scratch ledger's connections, after the store's own settings: a throwaway file in a
temporary folder needs no ``fsync`` at each commit and no zeroing of freed pages (its
rows are a bundle's, which the reader holds anyway); each connection's page cache stays
at 2 MiB, SQLite's default, whatever the bundle's size."""


def _scratch_settings(dbapi_conn: Any, _rec: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in SCRATCH_SETTINGS:
        cur.execute(pragma)
    cur.close()


_TEMPLATE: list[Path] = []


def _empty_schema() -> Path:
    """An SQLite file migrated to the newest revision, made once per process (migrating
    costs most of a small bundle's verification) and removed at exit."""
    if _TEMPLATE and _TEMPLATE[0].is_file():
        return _TEMPLATE[0]
    from ledger._store import Store

    folder = Path(tempfile.mkdtemp(prefix="bfa-scratch-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "empty.db"
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
    finally:
        store.dispose()
    _TEMPLATE[:] = [path]
    return path


def insert_entries(ledger: Ledger, rows: Iterable[tuple[int, str, str, str, bytes, bytes]],
                   *, setup: str | None = None,
                   beside: Callable[[Connection, list[int]], None] | None = None) -> int:
    """Copy entries ``(seq, domain, kind, record_id, leaf, entry_hash)`` into a scratch
    ledger as they are (gaps in ``seq`` allowed); returns how many. ``setup`` is a
    statement run first (a table of the caller's); ``beside`` is called with the
    connection and the ``seq`` of each chunk written, in the same transaction."""
    n = 0
    batch: list[tuple[int, str, str, str, bytes, bytes]] = []
    e = s.entries
    insert = (f"INSERT INTO {e.name} ({e.c.seq.name}, {e.c.domain.name}, {e.c.kind.name}, "
              f"{e.c.record_id.name}, {e.c.leaf.name}, {e.c.entry_hash.name}) "
              "VALUES (?, ?, ?, ?, ?, ?)")  # content_digest: its default, NULL
    with ledger.store.writer() as conn:
        if setup is not None:
            conn.execute(text(setup))

        def flush() -> None:  # a scratch ledger is SQLite: its driver's executemany
            conn.exec_driver_sql(insert, batch)
            if beside is not None:
                beside(conn, [r[0] for r in batch])

        for row in rows:
            batch.append(row)
            if len(batch) >= 1000:
                flush()
                n += len(batch)
                batch = []
        if batch:
            flush()
            n += len(batch)
        # not a tree: the entries have gaps. The reconciler appends its control.reconcile
        # record after them, which needs the right edge of a tree of that size; placeholder
        # nodes give it one (nothing here is ever proven or signed)
        size, _ = ledger.store.head(conn)
        edge = [{"level": level, "idx": idx, "hash": bytes(32)}
                for level, idx in CompactRange.frontier_nodes(size)]
        if edge:
            conn.execute(s.tree_nodes.insert(), edge)
    return n
