"""The :class:`Ledger` facade: one object per command, one method per action.

It ties the home (keys, settings), the store and the pieces in this package
together, so that the CLI parses, calls one method here, and renders.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, delete, func, select, text

from ledger import _identity
from ledger import _schema as s
from ledger._access import AccessEvent, access_events
from ledger._append import DeriverFactory, now_rfc3339
from ledger._control import append_control, checked_entry, control_records
from ledger._duties import DUTIES, Duty, grant_sql, held_duties, is_duty_role, role_duties
from ledger._entry import Entry, decode_leaf
from ledger._errors import (
    ConfigError,
    FormatError,
    InputError,
    IntegrityError,
    LedgerIntegrityError,
    MerkleProofError,
    NotCoveredError,
    NotFoundError,
    SignatureError,
    printable,
)
from ledger._files import make_dir, write_atomic
from ledger._home import Home, init_home, resolve_home
from ledger._identity import Actor
from ledger._identity import actor as make_actor
from ledger._ingest import FileReport, Ingester, ProgressFn, RejectSink, VoucherStore
from ledger._merkle import (
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    nodes_needed,
    verify_consistency,
    verify_inclusion,
)
from ledger._note import Checkpoint, Signer, Verifier, open_checkpoint, sign_checkpoint
from ledger._privacy import (
    SECRET_CHECK_KEY,
    Pseudonymizer,
    commitment,
    personal_fields,
    secret_check,
)
from ledger._rotation import ROTATE_SIGNING, KeyChain, key_chain
from ledger._store import Store
from ledger._tlogproof import TLogProof
from ledger._vault import VAULT_CHECK_KEY, Keyring, VaultKey, holder_of, open_value, vault_check
from ledger._verify import (
    Problem,
    VerifyResult,
    check_ledger,
    record_verified,
    verified_size,
)
from schemas import N_, TEXT_PATTERN, EntryView, StatusView, language
from schemas import gettext as _


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    size: int
    root: bytes
    note: str
    created_at: str
    new: bool
    chain_head: bytes | None


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str

    def to_text(self) -> str:
        """C2SP tlog-witness add-checkpoint body: ``old N``, proof lines, blank, checkpoint."""
        lines = [f"old {self.size1}"] + [base64.b64encode(h).decode() for h in self.hashes]
        return "\n".join(lines) + "\n\n" + self.checkpoint


class Ledger:
    """A ledger reached through its home directory and database URL."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.store = Store(home.db_url)
        self._opened: dict[str, Checkpoint] = {}
        self._identity: str | None = None
        """Checkpoint notes whose signature :meth:`_signed` checked, by exact text."""

    @classmethod
    def open(cls, home: str | None = None, db: str | None = None, *, check: bool = True) -> Ledger:
        ledger = cls(resolve_home(home, db))
        if check:
            ledger.store.require_schema(ledger.home.require_origin())
            ledger._finish_signing_rotation()
        return ledger

    @property
    def origin(self) -> str:
        assert self.home.origin is not None
        return self.home.origin

    def close(self) -> None:
        self.store.dispose()

    # -- init -----------------------------------------------------------------
    def init(self, origin: str, group: str | None = None) -> int:
        """Create keys and configuration, migrate the schema, record the origin.

        The home is private to the user running it, or shared by the operating-system
        ``group`` (FORMAT.md §5.4). Returns how many vault values stored in clear by an
        earlier bfa it sealed (FORMAT.md §4.4)."""
        self.home = init_home(self.home, origin, group)
        self._opened.clear()
        self.store.migrate()
        with self.store.writer() as conn:
            have = self.store.get_meta(conn, "origin")
            if have is not None and have != origin:
                raise ConfigError(_("database holds ledger {have}, not {origin}").format(
                    have=repr(have), origin=repr(origin)))
            if have is None:
                self.store.set_meta(conn, "origin", origin)
        self.secret()  # a new ledger records its secret's check value
        self._finish_signing_rotation()  # before it prints the verifier key
        return self.seal_vault()  # and its vault key's; values stored in clear are sealed

    # -- who acts -------------------------------------------------------------
    def actor(self, label: str | None = None) -> Actor:
        """The authenticated identity acting on this ledger (FORMAT.md §2.5): the
        database role that logged in on PostgreSQL, the operating-system account on
        SQLite; ``label`` (``--user``) is kept beside it when it names someone else."""
        if self._identity is None:
            with self.store.reader(snapshot=False) as conn:
                self._identity = check_user(_identity.authenticated(conn), "identity")
        return make_actor(self._identity, None if label is None or not label.strip()
                          else check_user(label, "label (--user, BFA_USER)"))

    # -- the ledger secret ----------------------------------------------------
    def secret(self) -> bytes:
        """The ledger secret, after checking it is this ledger's (FORMAT.md §4.1): its check
        value must equal the one in ``meta.secret_check``. A wrong key (another ledger's,
        or a stale ``BFA_SECRET_KEY``) would make pseudonyms no record shares and erase
        nothing: it is refused before anything is read or written with it.

        A ledger made before the check value learns it on first use, after testing the
        key against a vault row of a person (its party pseudonym must be the row's
        subject) when there is one."""
        raw = self.home.secret()
        want = secret_check(raw)
        with self.store.reader() as conn:
            have = self.store.get_meta(conn, SECRET_CHECK_KEY)
            if have is None:
                v = s.vault.c
                row = conn.execute(select(v.clear_value, v.subject, v.sealed, v.record_id,
                                          v.domain).where(
                    v.field == "person_id", v.subject.is_not(None)).limit(1)).first()
                if row is not None:
                    clear = (str(row[0]) if row[2] is None
                             else self._open_one(str(row[4]), str(row[3]), "person_id",
                                                 str(row[1]), bytes(row[2])))
                    if clear is None or Pseudonymizer(raw).pseudonym(
                            "person_id", clear) != row[1]:
                        have = _BY_THE_VAULT
        if have is None:
            with self.store.writer() as conn:
                if self.store.get_meta(conn, SECRET_CHECK_KEY) is None:
                    self.store.set_meta(conn, SECRET_CHECK_KEY, want)
            return raw
        if have == _BY_THE_VAULT:
            raise ConfigError(
                _("{path}: not this ledger's secret (its check value {want} differs from "
                  "(the ledger's vault)); pseudonyms made with it would match no record. Use "
                  "the ledger's keys/secret.key (check BFA_SECRET_KEY)").format(
                    path=self.home.secret_key_path, want=want))
        if have != want:
            raise ConfigError(
                _("{path}: not this ledger's secret (its check value {want} differs from "
                  "{have}); pseudonyms made with it would match no record. Use the ledger's "
                  "keys/secret.key (check BFA_SECRET_KEY)").format(
                    path=self.home.secret_key_path, want=want, have=have))
        return raw

    def _open_one(self, domain: str, record_id: str, fld: str, subject: str,
                  sealed: bytes) -> str | None:
        """One sealed value opened with this home's vault key, or None when this home
        cannot open it (no vault key, or not the ledger's)."""
        try:
            key = self.vault_key()
            with self.store.reader() as conn:
                holder = holder_of(domain, record_id, subject)
                data_key = Keyring(self.store, key).load(conn, [holder], create=False).get(holder)
            return None if data_key is None else open_value(data_key, sealed, domain,
                                                            record_id, fld)
        except (ConfigError, IntegrityError):
            return None

    # -- the vault key --------------------------------------------------------
    def vault_key(self) -> VaultKey:
        """The vault key, after checking it is this ledger's (FORMAT.md §4.4): its check
        value must equal ``meta.vault_check``. A wrong key would seal values nobody can
        open with the right one, or open nothing: it is refused before it is used. A
        ledger without a check value yet (made before the vault was sealed) learns it here,
        after testing the key on a stored data key when there is one. A rotation that
        committed but stopped before its files moved is finished first (§5.6)."""
        path = self.home.vault_key_path
        assert path is not None
        with self.store.reader() as conn:
            have = self.store.get_meta(conn, VAULT_CHECK_KEY)
        nxt = path.with_name(path.name + ".next")
        if have is not None and nxt.exists():
            pending = _key_file_check(nxt)
            if pending == have and _key_file_check(path) != have:
                self._finish_rotation(path, nxt)
        key = VaultKey(self.home.vault_key())
        opens_stored: bool | None = None
        if have is None:
            with self.store.reader() as conn:
                k = s.vault_keys.c
                row = conn.execute(select(k.holder, k.wrapped).limit(1)).first()
            if row is not None:
                try:
                    key.unwrap(str(row[0]), _raw(row[1], "vault_keys.wrapped"))
                    opens_stored = True
                except IntegrityError:
                    opens_stored = False
        if have is None and opens_stored is not False:
            with self.store.writer() as conn:
                if self.store.get_meta(conn, VAULT_CHECK_KEY) is None:
                    self.store.set_meta(conn, VAULT_CHECK_KEY, key.check)
            return key
        if have is None:
            raise ConfigError(
                _("{path}: not this ledger's vault key (it does not open the data keys the "
                  "ledger holds); values sealed with it could not be opened with the "
                  "ledger's key. Use the ledger's keys/vault.key (check BFA_VAULT_KEY); after "
                  "a rotation ('bfa key rotate --vault') a duty's home takes the new key with "
                  "'bfa init --from HOME --duty …' once its old vault.key is removed; or "
                  "restore it from a key backup ('bfa key restore')").format(path=path))
        if have != key.check:
            raise ConfigError(
                _("{path}: not this ledger's vault key (its check value {check} differs from "
                  "the ledger's {have}); values sealed with it could not be opened with the "
                  "ledger's key. Use the ledger's keys/vault.key (check BFA_VAULT_KEY); after "
                  "a rotation ('bfa key rotate --vault') a duty's home takes the new key with "
                  "'bfa init --from HOME --duty …' once its old vault.key is removed; or "
                  "restore it from a key backup ('bfa key restore')").format(
                    path=path, check=key.check, have=have))
        return key

    def rotate_vault_key(self, label: str | None = None) -> tuple[str, str, int]:
        """Replace the vault key (FORMAT.md §4.4, §5.6): every data key re-wrapped under a
        new one in one transaction, which also records the new check value and appends a
        ``control.key`` entry; then the new key file replaces the old, which is kept under
        ``keys/retired/`` for the backups taken before. Returns (old check, new check,
        data keys re-wrapped)."""
        import secrets

        from ledger._home import write_key_file

        who = self.actor(label)
        old = self.vault_key()
        path = self.home.vault_key_path
        assert path is not None
        nxt = path.with_name(path.name + ".next")
        if nxt.exists() or nxt.is_symlink():  # a rotation that stopped before its commit
            nxt.unlink()
        raw = secrets.token_bytes(32)
        new = VaultKey(raw)
        write_key_file(nxt, raw.hex() + "\n", self.home.perms)
        try:
            done = self._rewrap(old, new, who)
        except BaseException:
            nxt.unlink(missing_ok=True)  # nothing committed: the new key never served
            raise
        self._finish_rotation(path, nxt)
        return old.check, new.check, done

    def _rewrap(self, old: VaultKey, new: VaultKey, who: Actor) -> int:
        """Every data key re-wrapped from ``old`` to ``new``, the new check value and the
        ``control.key`` entry, in one writer transaction; returns the keys re-wrapped."""
        k = s.vault_keys.c
        done = 0
        with self.store.writer() as conn:
            after = ""
            while True:
                rows = conn.execute(select(k.holder, k.wrapped).where(k.holder > after)
                                    .order_by(k.holder).limit(5000)).all()
                if not rows:
                    break
                for holder, wrapped in rows:
                    data_key = old.unwrap(str(holder), bytes(wrapped))
                    conn.execute(s.vault_keys.update().where(k.holder == holder)
                                 .values(wrapped=new.wrap(str(holder), data_key)))
                done += len(rows)
                after = str(rows[-1][0])
            self.store.set_meta(conn, VAULT_CHECK_KEY, new.check)
            append_control(self.store, conn, [{
                "type": "control.key", "id": f"key-{uuid.uuid4()}", **who.members(),
                "action": "rotate-vault", "old_check": old.check, "new_check": new.check,
                "rewrapped": done, "at": now_rfc3339()}], at_is_recorded=False)
        return done

    @staticmethod
    def _finish_rotation(path: Path, nxt: Path) -> None:
        """After the commit: the old key to ``retired/vault-<its check>.key`` beside the
        key file, the new one in its place (each a rename in one directory tree; run
        again after a stop between the two, it does the second)."""
        import os

        old_check = _key_file_check(path)
        if old_check is not None:
            retired = path.parent / "retired"
            retired.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, retired / f"vault-{old_check}.key")
        os.replace(nxt, path)

    def seal_vault(self, progress: Callable[[int], None] | None = None) -> int:
        """Seal the vault values stored in clear (rows written before the vault was
        encrypted, FORMAT.md §4.4); returns how many. Run by ``bfa init``."""
        key = self.vault_key()
        v = s.vault.c
        done = 0
        while True:
            with self.store.writer() as conn:
                rows = conn.execute(
                    select(v.domain, v.record_id, v.field, v.subject, v.salt, v.clear_value)
                    .where(v.clear_value.is_not(None)).limit(5000)).all()
                if not rows:
                    return done
                sealed = Keyring(self.store, key).seal_rows(
                    conn, [tuple(r) for r in rows])
                for domain, rid, fld, _subject, _salt, value in sealed:
                    conn.execute(s.vault.update().where(
                        v.domain == domain, v.record_id == rid, v.field == fld
                    ).values(sealed=value, clear_value=None))
            done += len(rows)
            if progress is not None:
                progress(done)

    # -- key backups ----------------------------------------------------------
    def backup_keys(self, passphrase: str) -> tuple[list[str], str]:
        """The names of this home's keys and the text of their backup (FORMAT.md §5.6),
        after checking each is this ledger's."""
        from ledger._keys import home_keys, seal_backup

        # checked first: loading the vault key may finish a rotation, which changes the file
        if self.home.secret_key_path.exists():
            self.secret()
        vault = self.home.vault_key_path
        if vault is not None and (vault.exists() or vault.with_name(vault.name + ".next")
                                  .exists()):
            self.vault_key()
        keys = home_keys(self.home)
        return list(keys.keys), seal_backup(keys, passphrase, now_rfc3339())

    def check_keys(self) -> list[str]:
        """What a restored home's keys were checked against in the database: the check
        values of the secret and the vault key, the latest signed checkpoint (said in the
        reader's language)."""
        done = []
        if self.home.secret_key_path.exists():
            self.secret()
            done.append(_("ledger secret: check value matches"))
        if self.home.vault_key_path is not None and self.home.vault_key_path.exists():
            self.vault_key()
            done.append(_("vault key: check value matches"))
        with self.store.reader() as conn:
            latest = self.latest_checkpoint(conn)
        if latest is not None:
            self._signed(latest[2], latest[0])
            done.append(_("verifier key: checks the latest checkpoint (size {size})").format(
                size=latest[0]))
        if self.home.signing_key_path.exists():
            signer = self.home.signer()
            if signer.verifier().to_text() != self.home.verifier().to_text():
                raise ConfigError(_("the signing key is not the verifier key's pair"))
            with self.store.reader() as conn:
                self._require_current(conn, signer)
            done.append(_("signing key: pairs with the verifier key and is the one in force"))
        return done

    # -- ingest ---------------------------------------------------------------
    def ingester(
        self,
        vouchers: VoucherStore | None,
        reject_sink: RejectSink | None = None,
        progress: ProgressFn | None = None,
        derive: DeriverFactory | None = None,
        label: str | None = None,
        withdrawals: bool = False,
        bank_records: bool = False,
    ) -> Ingester:
        """An ingester whose batches are recorded as ingested by this process's identity
        (``label`` beside it, :meth:`actor`)."""
        return Ingester(self.store, self.secret(), vouchers, reject_sink=reject_sink,
                        progress=progress, derive=derive, who=self.actor(label),
                        vault_key=self.vault_key(), withdrawals=withdrawals,
                        bank_records=bank_records)

    def ingest(
        self,
        sources: Iterable[str],
        vouchers: VoucherStore | None,
        *,
        stdin: IO[bytes] | None = None,
        reject_sink: RejectSink | None = None,
        progress: ProgressFn | None = None,
        derive: DeriverFactory | None = None,
        label: str | None = None,
    ) -> list[FileReport]:
        """Ingest each source (a path or ``-``) as its own atomic batch.

        ``derive``: keeps derived tables current in each batch's transaction (the
        reconciler passes ``reconcile.Deriver``; ADR 0018). Each batch that appends ends
        with a ``control.ingest`` entry naming this process's identity (and ``label``)."""
        ing = self.ingester(vouchers, reject_sink, progress, derive, label)
        reports: list[FileReport] = []
        for src in sources:
            try:
                if src == "-":
                    if stdin is None:
                        raise InputError(_("no standard input to read"))
                    reports.append(ing.ingest_stream(stdin, "<stdin>", Path.cwd()))
                else:
                    reports.append(ing.ingest_path(Path(src)))
            except InputError as e:
                note_files_before(e, reports)
                raise
        return reports

    def ingest_records(
        self,
        records: Iterable[dict[str, Any]],
        name: str,
        vouchers: VoucherStore | None = None,
        *,
        reject_sink: RejectSink | None = None,
        derive: DeriverFactory | None = None,
        label: str | None = None,
        withdrawals: bool = False,
        bank_records: bool = False,
    ) -> FileReport:
        """Ingest records made in memory (e.g. from a bank statement) as one atomic batch.

        They go through the same pipeline as a JSON Lines file; problems name ``name``
        and the record's position (1-based) as its line. ``withdrawals``: the records
        may carry ``withdrawn`` (an approved withdrawal, FORMAT.md §9.8); ``bank_records``:
        they may correct what a bank-statement import made (a statement import).
        """
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        return self.ingester(vouchers, reject_sink, derive=derive, label=label,
                             withdrawals=withdrawals, bank_records=bank_records).ingest_stream(
            io.BytesIO(data), name, Path(name).resolve().parent)

    # -- checkpoints ----------------------------------------------------------
    def checkpoint(self) -> CheckpointInfo:
        """Sign a checkpoint of the current tree (or return the one that already covers it).

        What came after the last verified checkpoint is verified first: nothing is
        signed over a ledger that fails verification (raises LedgerIntegrityError).
        """
        signer = self.home.signer()
        with self.store.writer() as conn:
            self._require_current(conn, signer)
            return self._sign(conn, signer)

    def require_signer(self) -> None:
        """Refuse early (before a job writes anything) when this home's signing key cannot
        sign: missing, or retired by a rotation (FORMAT.md §5.7)."""
        signer = self.home.signer()
        # a broken history is not refused here: the verification reports it
        with self.store.reader() as conn, contextlib.suppress(LedgerIntegrityError):
            self._require_current(conn, signer)

    def _require_current(self, conn: Connection, signer: Signer) -> KeyChain:
        """The ledger's signing keys, once ``signer`` is the one in force (FORMAT.md §5.7);
        a key that a rotation retired signs nothing."""
        try:
            with language("en"):  # a problem's message is English, as verify words it
                chain = key_chain(conn, signer.verifier(), self.origin)
        except IntegrityError as e:
            raise LedgerIntegrityError(Problem("key-rotation", str(e), None)) from e
        # a rotation entry nobody co-signed is not the ledger's: exit 3 before the key it
        # claims to retire is refused
        c = s.checkpoints.c
        have = set(conn.execute(select(c.tree_size).where(
            c.tree_size.in_([r.seq + 1 for r in chain.rotations]))).scalars())
        missing = chain.uncosigned(have)
        if missing:
            raise LedgerIntegrityError(Problem(
                "key-rotation", f"{missing[0].uncosigned}; nothing signed", missing[0].seq))
        retired = chain.retired_at(signer.verifier())
        if retired is not None:
            raise ConfigError(
                _("{path}: this signing key was retired by the rotation at entry {seq} "
                  "({record}); the ledger now signs with {key}. A duty's home takes the new "
                  "key with 'bfa init --from HOME --duty service' once its old signing.key and "
                  "verifier.key are removed; or restore the current key from a key backup"
                  ).format(path=self.home.signing_key_path, seq=retired.seq,
                           record=retired.record_id, key=chain.current.to_text()))
        return chain

    def _sign(self, conn: Connection, signer: Signer, *more: Signer,
              cosigning: int | None = None) -> CheckpointInfo:
        """Check what is about to be signed and sign it, in the writer transaction
        ``conn`` (so no entry can come between); ``more``: the keys that co-sign the
        checkpoint over the rotation entry at ``cosigning``."""
        # exactly the entries about to be signed are checked
        check = check_ledger(self.store, signer.verifier(), self.origin,
                             since_checkpoint=True, derived=False, conn=conn,
                             cosigning=cosigning)
        if check.problems:
            raise LedgerIntegrityError(check.problems[0])
        size, head = self.store.head(conn)
        if check.root is None or check.tree_size != size:  # cannot happen: same snapshot
            raise IntegrityError(_("the tree checked is not the tree to sign; nothing signed"))
        c = s.checkpoints.c
        row = conn.execute(
            select(c.tree_size, c.root_hash, c.note, c.created_at).where(c.tree_size == size)
        ).first()
        if row is not None:
            return CheckpointInfo(size, bytes(row[1]), row[2], row[3], False, head)
        # the root folded from the entries themselves, never from stored nodes on trust
        root = check.root
        note = sign_checkpoint(Checkpoint(self.origin, size, root), signer, *more)
        created = now_rfc3339()
        conn.execute(s.checkpoints.insert().values(
            tree_size=size, root_hash=root, note=note, created_at=created))
        # entries, chain and stored nodes up to ``size`` were just verified
        self.store.set_meta(conn, "verified_size", str(size))
        return CheckpointInfo(size, root, note, created, True, head)

    def rotate_signing_key(self, label: str | None = None) -> tuple[str, str, CheckpointInfo]:
        """Replace the signing key (FORMAT.md §5.7): in one writer transaction a
        ``control.key`` entry names the key retired and the new one, and the checkpoint
        over it is signed by both; then the new key files replace the old ones (the old
        signing key is deleted). Returns (old verifier key, new verifier key, the
        co-signed checkpoint)."""
        from ledger._home import write_key_file

        who = self.actor(label)
        old = self.home.signer()
        self.home.verifier()  # the pair is whole before anything changes
        path = self.home.signing_key_path
        nxt = path.with_name(path.name + ".next")
        if nxt.exists() or nxt.is_symlink():  # a rotation that stopped before its commit
            nxt.unlink()
        new = Signer.generate(self.origin)
        write_key_file(nxt, new.to_text() + "\n", self.home.perms)
        try:
            with self.store.writer() as conn:
                self._require_current(conn, old)
                append_control(self.store, conn, [{
                    "type": "control.key", "id": f"key-{uuid.uuid4()}", **who.members(),
                    "action": ROTATE_SIGNING, "old_key": old.verifier().to_text(),
                    "new_key": new.verifier().to_text(), "at": now_rfc3339()}],
                    at_is_recorded=False)
                info = self._sign(conn, old, new, cosigning=self.store.head(conn)[0] - 1)
        except BaseException:
            nxt.unlink(missing_ok=True)  # nothing committed: the new key never signed
            raise
        self._finish_signing_rotation()
        return old.verifier().to_text(), new.verifier().to_text(), info

    def _finish_signing_rotation(self) -> None:
        """After a rotation's commit (FORMAT.md §5.7): the verifier key file takes the new
        key, then ``signing.key.next`` replaces ``signing.key``. Run again after a stop
        between the steps (any command does, :meth:`open`), it finishes them; a
        ``signing.key.next`` the ledger never made current is removed."""
        import os

        nxt = self.home.signing_key_path.with_name(self.home.signing_key_path.name + ".next")
        if not nxt.exists():
            return
        try:
            new = Signer.from_text(nxt.read_text(encoding="utf-8").strip())
        except Exception as e:
            raise ConfigError(_("{path}: not a signer key ({reason}); remove it").format(
                path=nxt, reason=e)) from e
        made = new.verifier().to_text()
        with self.store.reader() as conn:
            try:  # a rotation entry made this key, and it is the one in force
                chain = key_chain(conn, new.verifier(), self.origin)
                committed = (chain.current.to_text() == made
                             and any(r.new.to_text() == made for r in chain.rotations))
            except IntegrityError:
                committed = False
        if not committed:
            nxt.unlink()
            return
        # the home's own verifier key file; a copy named by BFA_VERIFIER_KEY is an
        # auditor's, never written (FORMAT.md §5.7)
        own = self.home.path / "keys" / "verifier.key"
        old = own.read_text(encoding="utf-8").strip() if own.exists() else None
        if old is not None and old != made:
            try:  # the retired verifier key is kept: it checks database backups from before
                retired = Verifier.from_text(old)
                keep = own.parent / "retired" / f"verifier-{retired.key_hash:08x}.key"
                make_dir(keep.parent, self.home.perms)
                if not keep.exists():
                    write_atomic(keep, old + "\n", self.home.perms)
            except FormatError:
                pass
        write_atomic(own, made + "\n", self.home.perms)
        os.replace(nxt, self.home.signing_key_path)
        self._opened.clear()

    def latest_checkpoint(self, conn: Connection) -> tuple[int, bytes, str] | None:
        c = s.checkpoints.c
        row = conn.execute(
            select(c.tree_size, c.root_hash, c.note).order_by(c.tree_size.desc()).limit(1)
        ).first()
        return (int(row[0]), bytes(row[1]), str(row[2])) if row else None

    # -- verify ---------------------------------------------------------------
    def verify(
        self,
        *,
        since_checkpoint: bool = False,
        derived: bool = True,
        against: str | None = None,
        progress: ProgressFn | None = None,
    ) -> VerifyResult:
        result = check_ledger(
            self.store, self.home.verifier(), self.origin, since_checkpoint=since_checkpoint,
            derived=derived, against=against, progress=progress,
        )
        record_verified(self.store, result)
        return result

    def status(self) -> StatusView:
        """Size, chain head, latest checkpoint, verified size, and who you are and may
        do (reads only)."""
        with self.store.reader() as conn:
            size, head = self.store.head(conn)
            c = s.checkpoints.c
            row = conn.execute(select(c.tree_size, c.root_hash, c.created_at)
                               .order_by(c.tree_size.desc()).limit(1)).first()
            verified = verified_size(self.store, conn)
            duties = held_duties(conn)
        cp_size = int(row[0]) if row else None
        return StatusView(
            origin=self.origin, database=self.store.display_url(), size=size,
            chain_head=head.hex() if head else None, checkpoint_size=cp_size,
            checkpoint_root=bytes(row[1]).hex() if row else None,
            checkpoint_created_at=str(row[2]) if row else None,
            unsigned=size - (cp_size or 0),
            verified_size=verified, identity=self.actor().identity, duties=duties)

    def size(self) -> int:
        with self.store.reader() as conn:
            return self.store.head(conn)[0]

    # -- lookups --------------------------------------------------------------
    def find_entry(self, conn: Connection, record_id: str, domain: str | None) -> Entry:
        e = s.entries.c
        q = select(e.seq, e.domain, e.leaf, e.entry_hash).where(e.record_id == record_id)
        if domain:
            q = q.where(e.domain == domain)
        rows = conn.execute(q).all()
        if not rows:
            raise NotFoundError(
                _("no record {id} in domain {domain} in the ledger").format(
                    id=repr(record_id), domain=repr(domain)) if domain else
                _("no record {id} in the ledger").format(id=repr(record_id)))
        if len(rows) > 1:
            doms = ", ".join(sorted(r[1] for r in rows))
            raise InputError(_("record id {record} exists in domains {domains}; pass "
                               "--domain").format(record=repr(record_id), domains=doms))
        seq, leaf, stored = int(rows[0][0]), bytes(rows[0][2]), bytes(rows[0][3])
        # the row's index columns are the application role's to write: the leaf must say
        # it holds this record, or a swapped id would prove or show another record
        return checked_entry(seq, leaf, stored, str(rows[0][1]), record_id)

    def entry(self, record_id: str, domain: str | None = None) -> Entry:
        with self.store.reader() as conn:
            return self.find_entry(conn, record_id, domain)

    def entry_at(self, seq: int) -> Entry:
        with self.store.reader() as conn:
            leaf = conn.execute(
                select(s.entries.c.leaf).where(s.entries.c.seq == seq)).scalar()
            if leaf is None:
                raise NotFoundError(_("no entry {seq}").format(seq=seq))
            return decode_leaf(bytes(leaf))

    # -- proofs ---------------------------------------------------------------
    def prove(self, record_id: str, domain: str | None = None) -> tuple[Entry, TLogProof]:
        """C2SP tlog-proof@v1 for a record's entry against the latest checkpoint."""
        with self.store.reader(snapshot=False) as conn:
            entry = self.find_entry(conn, record_id, domain)
            latest = self.latest_checkpoint(conn)
            if latest is None or latest[0] <= entry.seq:
                raise NotCoveredError(
                    _("{domain} record {record} is entry {seq}, not yet covered by a signed "
                      "checkpoint; run 'bfa checkpoint'").format(
                        domain=entry.domain, record=repr(record_id), seq=entry.seq))
            size, _root, note = latest
            nodes = self.store.get_nodes(conn, nodes_needed(inclusion_ranges(entry.seq, size)))
        hashes = tuple(self._proof_hashes(lambda: inclusion_proof(entry.seq, size, nodes)))
        cp = self._signed(note, size)
        try:
            verify_inclusion(entry.entry_hash, entry.seq, size, hashes, cp.root)
        except (MerkleProofError, FormatError) as e:
            raise IntegrityError(
                _("the proof of entry {seq} does not verify against the checkpoint of size "
                  "{size}: {reason}; run 'bfa verify'").format(
                    seq=entry.seq, size=size, reason=e)) from e
        return entry, TLogProof(entry.seq, hashes, note, extra=entry.leaf)

    def _signed(self, note: str, size: int) -> Checkpoint:
        """The stored checkpoint note of ``size``, checked as a verifier would check it:
        signed by the ledger's key in force at that size (§5.7, trusted through the home's
        verifier key), for this ledger, of that size. A warm process
        proving many records checks each note text once (a changed note is new text)."""
        cp = self._opened.get(note)
        if cp is None:
            try:
                with self.store.reader(snapshot=False) as conn:
                    signers = key_chain(conn, self.home.verifier(), self.origin).signers(size)
                cp = open_checkpoint(note, signers, self.origin)
            except (SignatureError, FormatError, IntegrityError) as e:
                raise IntegrityError(
                    _("stored checkpoint of size {size}: {reason}; run 'bfa verify'").format(
                        size=size, reason=e)) from e
            if len(self._opened) >= 16:
                self._opened.clear()
            self._opened[note] = cp
        if cp.size != size:
            raise IntegrityError(_("stored checkpoint of size {size} signs size {signed}; "
                                   "run 'bfa verify'").format(size=size, signed=cp.size))
        return cp

    @staticmethod
    def _proof_hashes(build: Callable[[], list[bytes]]) -> list[bytes]:
        """A proof's hashes; a stored node it needs that is missing is an integrity
        failure (the tree tables lost a row), not a crash."""
        try:
            return build()
        except KeyError as e:  # range_hash: "tree node (level, index) = (l, i) is not ..."
            raise IntegrityError(_("{problem} in the stored tree; run 'bfa verify'").format(
                problem=e.args[0])) from e

    def prove_consistency(self, old: int, new: int | None = None) -> ConsistencyProof:
        """RFC 9162 consistency proof between two signed checkpoints."""
        with self.store.reader() as conn:
            c = s.checkpoints.c
            sizes = dict(
                (int(t), (bytes(r), str(n)))
                for t, r, n in conn.execute(select(c.tree_size, c.root_hash, c.note))
            )
            if not sizes:
                raise NotCoveredError(_("no signed checkpoint yet; run 'bfa checkpoint'"))
            new = max(sizes) if new is None else new
            for size in (old, new):
                if size not in sizes:
                    have = ", ".join(str(x) for x in sorted(sizes)[-5:])
                    raise NotFoundError(_("no signed checkpoint of size {size} (latest: "
                                          "{latest})").format(size=size, latest=have))
            if not 0 < old <= new:
                raise InputError(_("need 0 < OLD_SIZE <= NEW_SIZE, got {old} and {new}")
                                 .format(old=old, new=new))
            nodes = {}
            if old != new:
                nodes = self.store.get_nodes(conn, nodes_needed(consistency_ranges(old, new)))
        hashes: tuple[bytes, ...] = ()
        if old != new:
            hashes = tuple(self._proof_hashes(lambda: consistency_proof(old, new, nodes)))
        cp1, cp2 = self._signed(sizes[old][1], old), self._signed(sizes[new][1], new)
        try:
            verify_consistency(old, new, cp1.root, cp2.root, hashes)
        except (MerkleProofError, FormatError) as e:
            raise IntegrityError(
                _("the consistency proof from size {old} to {new} does not verify against the "
                  "signed checkpoints: {reason}; run 'bfa verify'").format(
                    old=old, new=new, reason=e)) from e
        return ConsistencyProof(old, new, cp1.root, cp2.root, hashes, sizes[new][1])

    def grant_statements(self, role: str, duties: Sequence[Duty]) -> list[str]:
        """The SQL :meth:`grant` runs (FORMAT.md §8.3): the duty roles brought up to date,
        then ``role`` made a member of exactly ``duties`` and of nothing else."""
        if self.store.dialect != "postgresql":
            raise ConfigError(_("roles, grants and duties exist on PostgreSQL only; a SQLite "
                                "ledger is one file: whoever may write it holds every duty"))
        with self.store.reader() as conn:
            names = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                     "AND (starts_with(tablename, 'rc_') OR starts_with(tablename, 'wf_') "
                     "OR starts_with(tablename, 'ar_')) "
                     "ORDER BY tablename")).scalars().all()
            database = str(conn.execute(text("SELECT current_database()")).scalar_one())
        return grant_sql(role, duties, list(names), database)

    def grant(self, role: str, duties: Sequence[Duty], label: str | None = None) -> None:
        """Make ``role`` hold exactly ``duties`` (PostgreSQL only); the grant is appended
        as a ``control.grant`` entry (the access audit lists it)."""
        who = self.actor(label)
        statements = self.grant_statements(role, duties)
        with self.store.writer() as conn:
            # PostgreSQL only warns when a role that owns nothing grants: refuse instead
            owner, me, superuser = conn.exec_driver_sql(
                "SELECT tableowner, current_user, "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
                "FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'entries'"
            ).one()
            if owner != me and not superuser:
                raise ConfigError(_("'db grant' must run as the owner of the ledger tables "
                                    "({owner}) or a superuser, not as {me}").format(
                    owner=repr(owner), me=repr(me)))
            _grantable(conn, role, owner)
            for stmt in statements:
                conn.exec_driver_sql(stmt)
            held = role_duties(conn, role)
            extra = sorted(set(held) - set(duties), key=held.index)
            if extra:  # through another role it is a member of: the grant would mislead
                via = conn.exec_driver_sql(
                    "SELECT string_agg(g.rolname, ', ' ORDER BY g.rolname) "
                    "FROM pg_catalog.pg_auth_members m "
                    "JOIN pg_catalog.pg_roles g ON g.oid = m.roleid "
                    "JOIN pg_catalog.pg_roles r ON r.oid = m.member "
                    "WHERE r.rolname = %(role)s", {"role": role}).scalar()
                raise ConfigError(
                    _("role {role} would still hold {duties} through its membership in {via}; "
                      "revoke that membership first (REVOKE … FROM {name}); nothing was "
                      "granted").format(role=repr(role), duties=", ".join(extra), via=via,
                                        name=role))
            append_control(self.store, conn, [{
                "type": "control.grant", "id": f"grant-{uuid.uuid4()}", **who.members(),
                "role": role, "duties": [d for d in DUTIES if d in duties],
                "statements": len(statements),
                "digest": hashlib.sha256("\n".join(statements).encode()).hexdigest(),
                "at": now_rfc3339()}], at_is_recorded=False)

    def access_log(self, *, since: date | None = None,
                   user: str | None = None) -> list[AccessEvent]:
        """Reveals, forgets, grants (and disclosures, comparisons) from the ledger."""
        with self.store.reader() as conn:
            return list(access_events(conn, since=since, user=user))

    # -- personal data --------------------------------------------------------
    def reveal(self, record_id: str, domain: str | None, label: str | None, purpose: str,
               fields: Iterable[str] | None = None) -> tuple[Entry, dict[str, str]]:
        """Clear values of a record's personal fields, only ``fields`` when given, for a
        stated ``purpose``; the reveal itself (who, what, why) is appended."""
        who = self.actor(label)
        purpose = check_note(purpose, "revealing personal data (its purpose)", limit=500)
        wanted = None if fields is None else personal_fields(fields, "--fields")
        vault_key = self.vault_key()  # checked before the writer opens (it may record it)
        with self.store.writer() as conn:  # commitments need no secret: none is loaded
            entry = self.find_entry(conn, record_id, domain)
            opened = self.open_fields(conn, entry, wanted, Keyring(self.store, vault_key))
            clear = {fld: value for fld, (value, _salt) in opened.items()}
            append_control(self.store, conn, [{
                "type": "control.reveal",
                "id": f"reveal-{uuid.uuid4()}",
                **who.members(),
                "record": {"domain": entry.domain, "id": entry.record_id, "seq": entry.seq},
                "fields": sorted(clear),
                "purpose": purpose,
                "at": now_rfc3339(),
            }], at_is_recorded=False)
        return entry, clear

    def open_fields(self, conn: Connection, entry: Entry, wanted: set[str] | None,
                    keyring: Keyring, *, disclosing: bool = False
                    ) -> dict[str, tuple[str, bytes]]:
        """The clear value and salt of each personal field of ``entry`` the vault holds
        (only ``wanted`` when given), each checked against the entry's commitment (§4.2);
        a vault that fails a check is an :class:`IntegrityError` (§4.6), saying that
        nothing was revealed (or, ``disclosing``, disclosed)."""
        v = s.vault.c
        rows = conn.execute(
            select(v.field, v.salt, v.clear_value, v.sealed, v.subject).where(
                v.domain == entry.domain, v.record_id == entry.record_id)
        ).all()
        commits = entry.record.get("_commitments", {})
        out: dict[str, tuple[str, bytes]] = {}
        for fld, salt, stored, sealed, subject in rows:
            if wanted is not None and fld not in wanted:
                continue
            if sealed is None:
                value = str(stored)  # written before the vault was sealed
            else:
                holder = holder_of(entry.domain, entry.record_id, subject)
                data_key = keyring.load(conn, [holder], create=False).get(holder)
                if data_key is None:
                    raise IntegrityError((
                        _("the vault holds a sealed {field} of {domain} record {record} but no "
                          "data key of its holder: the key was deleted outside 'bfa forget'; "
                          "nothing was disclosed") if disclosing else
                        _("the vault holds a sealed {field} of {domain} record {record} but no "
                          "data key of its holder: the key was deleted outside 'bfa forget'; "
                          "nothing was revealed")
                    ).format(field=fld, domain=entry.domain, record=repr(entry.record_id)))
                value = open_value(data_key, _raw(sealed, "vault.sealed"), entry.domain,
                                   entry.record_id, fld)
            if commits.get(fld) != commitment(bytes(salt), value):
                raise IntegrityError((
                    _("the vault's value of {field} for {domain} record {record} does not open "
                      "the commitment in its entry: the vault was changed; nothing was "
                      "disclosed") if disclosing else
                    _("the vault's value of {field} for {domain} record {record} does not open "
                      "the commitment in its entry: the vault was changed; nothing was "
                      "revealed")
                ).format(field=fld, domain=entry.domain, record=repr(entry.record_id)))
            out[str(fld)] = (value, bytes(salt))
        _check_vault_complete(conn, entry, {str(r[0]): r[4] for r in rows}, wanted)
        return out

    def forget(self, person_id: str, label: str | None = None) -> int:
        """Erase a person's clear values and salts (crypto-shredding); returns rows erased."""
        who = self.actor(label)
        if not person_id.strip():
            raise InputError(_("a person id is needed"))
        pseudo = Pseudonymizer(self.secret())
        subject = pseudo.pseudonym("person_id", person_id)
        with self.store.writer() as conn:
            v = s.vault.c
            n = conn.execute(
                select(func.count()).select_from(s.vault).where(v.subject == subject)
            ).scalar_one()
            conn.execute(delete(s.vault).where(v.subject == subject))
            # the person's data key: a backup that still has their rows cannot open them
            conn.execute(delete(s.vault_keys).where(s.vault_keys.c.holder == subject))
            append_control(self.store, conn, [{
                "type": "control.forget",
                "id": f"forget-{uuid.uuid4()}",
                **who.members(),
                "subject": subject,
                "erased": int(n),
                "at": now_rfc3339(),
            }], at_is_recorded=False)
        return int(n)


def current_verifier_key(home: str | None = None, db: str | None = None) -> tuple[str, str]:
    """The home's origin and verifier key text (``bfa key export``): read from the home
    alone, unless a signing-key rotation is to be finished first (FORMAT.md §5.7), which
    opens the ledger."""
    h = resolve_home(home, db)
    origin = h.require_origin()
    if h.signing_key_path.with_name(h.signing_key_path.name + ".next").exists():
        Ledger.open(home, db).close()  # opening finishes it
        h = resolve_home(home, db)
    return origin, h.verifier().to_text()


def _check_vault_complete(conn: Connection, entry: Entry, found: dict[str, str | None],
                          wanted: set[str] | None) -> None:
    """A reveal's vault rows against the entry and the forgets after it (FORMAT.md §4.6):
    a committed field without its row is a lost value unless its person was forgotten
    after the entry; a row of a person forgotten after the entry was put back."""
    forgotten_after = {str(rec["subject"]) for _seq, rec in
                       control_records(conn, "forget", after=entry.seq)
                       if isinstance(rec.get("subject"), str)}
    back = sorted(f for f, subject in found.items() if subject in forgotten_after)
    if back:
        raise IntegrityError(
            _("the vault holds {fields} of {domain} record {record}, whose person was "
              "forgotten after it: the values were put back from an older copy of the "
              "database; nothing was revealed").format(
                fields=", ".join(back), domain=entry.domain, record=repr(entry.record_id)))
    subject = entry.record.get("person_id", entry.record.get("payer_id"))
    if subject in forgotten_after:
        return
    lost = sorted(f for f in entry.record.get("_commitments", {})
                  if f not in found and (wanted is None or f in wanted))
    if lost:
        raise IntegrityError(
            _("the vault lost {fields} of {domain} record {record}: a row was deleted "
              "outside 'bfa forget'; nothing was revealed").format(
                fields=", ".join(lost), domain=entry.domain, record=repr(entry.record_id)))


def _key_file_check(path: Path) -> str | None:
    """The check value of the vault key in ``path``; None when there is no usable key."""
    try:
        return vault_check(bytes.fromhex(path.read_text(encoding="utf-8").strip()))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _raw(value: object, column: str) -> bytes:
    """A binary column's value; anything else was written there outside bfa."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise IntegrityError(_("{column} holds a {type}, not bytes: the vault was changed "
                           "outside bfa; nothing was revealed").format(
        column=column, type=type(value).__name__))


_PRINTABLE = re.compile(TEXT_PATTERN)

_BY_THE_VAULT = "(the ledger's vault)"
"""What :meth:`Ledger.secret` compares a secret with when a vault row says it is not the
ledger's (a ledger made before the check value)."""


def _grantable(conn: Connection, role: str, owner: str) -> None:
    """Refuse a role that grants cannot restrict: a superuser, a member of the ledger
    tables' owner, or the owner of anything in the schema (it could alter or drop it)."""
    row = conn.exec_driver_sql(
        "SELECT r.rolsuper, pg_has_role(r.oid, o.oid, 'MEMBER'), "
        "(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        " WHERE n.nspname = current_schema() AND c.relowner = r.oid) "
        "FROM pg_roles r, pg_roles o WHERE r.rolname = %(role)s AND o.rolname = %(owner)s",
        {"role": role, "owner": owner}).first()
    if role.lower().startswith("pg_") or role.lower() == "public":
        raise ConfigError(_("{role} is one of PostgreSQL's own roles; grant duties to the "
                            "login role of a person or service account").format(role=repr(role)))
    if row is None:
        name = role if role == role.lower() else f'"{role}"'  # unquoted SQL folds case
        raise ConfigError(_("there is no database role {role}; create it first (CREATE ROLE "
                            "{name} LOGIN)").format(role=repr(role), name=name))
    superuser, member, owns = row
    if is_duty_role(role):
        raise ConfigError(_("{role} is the group role of a duty; grant duties to the login "
                            "role of a person or service account").format(role=repr(role)))
    if superuser:
        raise ConfigError(_("role {role} is a superuser: no grant can restrict it; give the "
                            "application a role of its own").format(role=repr(role)))
    if member:
        raise ConfigError(_("role {role} is a member of the tables' owner {owner}: no grant "
                            "can restrict it; give the application a role of its own").format(
            role=repr(role), owner=repr(owner)))
    if owns:
        raise ConfigError(_("role {role} owns {count} tables, indexes or sequences in the "
                            "ledger's schema: an owner can alter or drop them; give the "
                            "application a role that owns nothing").format(
            role=repr(role), count=owns))


def note_files_before(error: InputError, reports: list[FileReport]) -> None:
    """Add to ``error`` (a refused file of several) which earlier files stay appended:
    each file is its own committed batch (FORMAT.md §9.1)."""
    if reports:
        error.add_note(_("the files before it stay appended: {files}").format(files=", ".join(
            _("{file} ({appended} appended, {duplicates} duplicates, {rejected} rejected)")
            .format(file=r.file, appended=r.appended, duplicates=r.duplicates,
                    rejected=r.rejected) for r in reports)))


def _one_line(text: str) -> bool:
    """Printable text on one line: no control characters, no line or paragraph
    separators (U+2028, U+2029), no whitespace at either end."""
    return _PRINTABLE.fullmatch(text) is not None and printable(text) == text


def check_user(user: str | None, role: str = "") -> str:
    """A user name recorded in the ledger: 1 to 128 characters, no control characters
    (leading and trailing whitespace dropped); else :class:`InputError`.

    ``role`` names it in the message (``"assignee"``); by default it is the acting user."""
    u = (user or "").strip()
    if not u or len(u) > 128 or not _one_line(u):
        if role:
            template = _USER_ROLES.get(role)
            value = repr(printable(u[:140]))
            raise InputError(
                _(template).format(value=value) if template is not None else
                f"the {role} must be a user name of 1 to 128 characters without control "
                f"characters, not {value}")
        raise InputError(_("an acting user is needed (--user or BFA_USER): 1 to 128 "
                           "characters without control characters"))
    return u


_USER_ROLES = {
    "identity": N_("the identity must be a user name of 1 to 128 characters without "
                   "control characters, not {value}"),
    "label (--user, BFA_USER)": N_("the label (--user, BFA_USER) must be a user name of 1 to "
                                   "128 characters without control characters, not {value}"),
    "assignee": N_("the assignee must be a user name of 1 to 128 characters without control "
                   "characters, not {value}"),
}
""":func:`check_user`'s message for each ``role`` its callers name, whole (a role not
listed is said in English)."""


def check_note(note: str | None, purpose: str, limit: int = 2000) -> str:
    """A note recorded in the ledger: 1 to ``limit`` characters on one line (no control
    characters or line separators: whatever prints it shows one line), trimmed; else
    :class:`InputError` saying the note is needed ``purpose``."""
    n = (note or "").strip()
    if not n:
        template = _NOTE_PURPOSES.get(purpose)
        raise InputError(_(template) if template is not None else f"{purpose} needs a note")
    if len(n) > limit or not _one_line(n):
        raise InputError(_("a note is one line of at most {limit} characters without control "
                           "characters or line breaks (write several sentences on one line)")
                         .format(limit=limit))
    return n


_NOTE_PURPOSES = {
    "revealing personal data (its purpose)":
        N_("revealing personal data (its purpose) needs a note"),
    "disclosing personal data (its purpose)":
        N_("disclosing personal data (its purpose) needs a note"),
    "withdrawing a statement (--reason)": N_("withdrawing a statement (--reason) needs a note"),
    "cancelling a withdrawal (--reason)": N_("cancelling a withdrawal (--reason) needs a note"),
    "resolving a break (what was done)": N_("resolving a break (what was done) needs a note"),
    "reopening a break (why)": N_("reopening a break (why) needs a note"),
    "placing a hold (--reason)": N_("placing a hold (--reason) needs a note"),
    "releasing a hold (--reason)": N_("releasing a hold (--reason) needs a note"),
    "an appraisal (--opinion)": N_("an appraisal (--opinion) needs a note"),
}
""":func:`check_note`'s message for each ``purpose`` its callers (here, in the reconciler
and in the archive) name, whole: a purpose not listed is said in English."""


def entry_view(entry: Entry) -> EntryView:
    """The entry as its JSON view (what ``bfa show --entry --json`` prints)."""
    return EntryView(
        seq=entry.seq, domain=entry.domain, kind=entry.kind, record_id=entry.record_id,
        recorded_at=entry.recorded_at, prev_hash=entry.prev_hash.hex(),
        entry_hash=entry.entry_hash.hex(), payload=entry.record,
    )
