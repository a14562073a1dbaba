"""Storage: engines, transactions, the writer lock, bulk appends and node reads.

One code path serves SQLite (embedded default) and PostgreSQL (production). What
differs is kept here: SQLite writers take ``BEGIN IMMEDIATE``; PostgreSQL writers
take a transaction-scoped advisory lock and bulk-append with ``COPY``.

SQLite's write-ahead log is checkpointed in the background, as PostgreSQL's
checkpointer does for its own (:class:`_Checkpointer`, docs/adr/0017): a commit is
durable once its WAL frames are synced (``synchronous=FULL``); copying them into the
database file, and the ``fsync`` of that file, need not hold up the next statement.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    Select,
    SmallInteger,
    String,
    Text,
    and_,
    bindparam,
    collate,
    create_engine,
    event,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ledger import _schema as s
from ledger._errors import ConfigError, DutyError
from schemas import gettext

_LOCK_ID = 0x62666131  # "bfa1": the one advisory lock serialising appends
SQLITE_BUSY_SECONDS = 120
"""How long a SQLite connection waits for another process's write lock before it fails
with "database is locked" (FORMAT.md §8.5)."""
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
IDS_PER_STATEMENT = 500
"""SQLite: ids per IN list when looking rows up by many ids (bound parameters)."""


def _revisions() -> frozenset[str]:
    """Revision ids this bfa knows: migration files are named ``NNNN_<what>.py``, ids ``NNNN``."""
    return frozenset(
        p.name[:4] for p in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


KNOWN_REVISIONS = _revisions()
HEAD_REVISION = max(KNOWN_REVISIONS)


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


CHECKPOINT_BYTES = 4 * 1024 * 1024
"""A SQLite commit starts a background checkpoint when the WAL file is at least this
large and was written since the last checkpoint (SQLite's own default: 1,000 pages)."""


class _Checkpointer:
    """Background ``PRAGMA wal_checkpoint(PASSIVE)`` for one SQLite database file.

    The store's connections run with ``wal_autocheckpoint=0``: otherwise the commit that
    crosses 1,000 WAL pages copies them into the database file and waits for its
    ``fsync`` (0.55 s for the 8 MB a nightly refresh of 15,000 records writes, on the
    development VM). Here a commit only starts a thread, on its own connection, when none
    is running; the ``sqlite3`` module releases the GIL while SQLite works, so the
    caller's next statements run meanwhile. A PASSIVE checkpoint never blocks readers or
    writers, and stopping it halfway (process exit) is safe: the frames stay in the WAL,
    which SQLite replays. When the last connection closes, SQLite checkpoints what is
    left and removes the WAL, as before.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._wal = path + "-wal"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._seen: tuple[int, int] | None = None  # (size, mtime_ns) at the last start

    def _mark(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._wal)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def after_commit(self) -> None:
        mark = self._mark()
        if mark is None or mark[0] < CHECKPOINT_BYTES or mark == self._seen:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._seen = mark
            self._thread = threading.Thread(target=self._run, name="bfa-wal-checkpoint",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            con = sqlite3.connect(self.path, timeout=0)
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            pass  # the next commit's checkpoint, or the last close, does it

    def join(self) -> None:
        """Until the checkpoint started last (if any) has finished."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def settle(self) -> None:
        """Until every committed WAL frame is in the database file: wait for the running
        checkpoint, then checkpoint (here) what was written since it started."""
        self.join()
        with self._lock:
            mark = self._mark()
            if mark is None or mark == self._seen or mark[0] == 0:
                return
            self._seen = mark
            self._run()


@dataclass(frozen=True, slots=True)
class Traits:
    """What the reconciler's set-based statements may count on from the backend."""

    parallel: bool
    """Statements (and ``CREATE TABLE … AS``) may run on parallel workers, if the tables
    they read are not temporary: work tables are ``UNLOGGED`` when the role may create
    them (PostgreSQL)."""
    hash_joins_whole: bool
    """A full run hash-joins its work tables whole: indexes on them cost more than they
    save (PostgreSQL); SQLite's nested loops need them."""
    lookups_by_probe: bool
    """A look-up of the rows a small work table names must be written as one index probe
    per row (a LATERAL subquery): as ``IN`` or a join the planner scanned whole tables
    (PostgreSQL, ADR 0016); SQLite drives ``IN`` by the index itself."""
    threads_share_connection: bool
    """A second thread may use the connection while this one computes (psycopg);
    SQLite's connections stay in their thread."""


_PG_TRAITS = Traits(parallel=True, hash_joins_whole=True, lookups_by_probe=True,
                    threads_share_connection=True)
_SQLITE_TRAITS = Traits(parallel=False, hash_joins_whole=False, lookups_by_probe=False,
                        threads_share_connection=False)

PG_ANALYSIS_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '256MB'",
                        "SET LOCAL random_page_cost = 1.1",
                        "SET LOCAL cursor_tuple_fraction = 1.0")
"""Settings of a reconciliation run on PostgreSQL: JIT compilation costs more than it
saves on these statements; hash joins and aggregates get room in memory (256 MB a node:
at two million events the vouchers' targets, about 200 MB, are hashed in one batch instead
of spilling to disk; a bound, whatever the ledger's size); and index
look-ups are priced for data in memory or on SSD (the default assumes spinning disks and
makes an incremental run scan whole tables instead of looking up its few thousand rows).
A run's statements are read through cursors (streamed): planned for all their rows, not for
the first tenth (the default chose per-row subplans: a full run at a million events took
32 s instead of 23 s)."""


class Store:
    """A ledger database, SQLite or PostgreSQL, selected by URL."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        try:
            parsed = make_url(self.url)
        except Exception as e:
            raise ConfigError(gettext("database URL {url} is not valid: {reason}").format(
                url=repr(url), reason=e)) from e
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(gettext("database {dialect} is not supported (sqlite, "
                                      "postgresql)").format(dialect=repr(self.dialect)))
        self._checkpointer: _Checkpointer | None = None
        self.engine: Engine = self._make_engine()

    def _make_engine(self) -> Engine:
        if self.dialect == "sqlite":
            db = make_url(self.url).database
            if db and db != ":memory:":
                self._checkpointer = _Checkpointer(db)
            engine = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
                cur.execute("PRAGMA wal_autocheckpoint=0")  # _Checkpointer does it
                # a forgotten person's values are overwritten with zeros in the pages, not
                # left for whoever copies the file (FORMAT.md §4.6)
                cur.execute("PRAGMA secure_delete=ON")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
                conn.exec_driver_sql(f"BEGIN {mode}")

            return engine
        return create_engine(self.url, pool_pre_ping=True)

    def dispose(self) -> None:
        if self._checkpointer is not None:  # the last connection's close does the rest
            self._checkpointer.join()
        self.engine.dispose()

    def wait_checkpoint(self) -> None:
        """SQLite: until every committed WAL frame is in the database file (the running
        background checkpoint, then one for what came after it). No-op on PostgreSQL."""
        if self._checkpointer is not None:
            self._checkpointer.settle()

    # -- schema ---------------------------------------------------------------
    def migrate(self, target: str = "head") -> None:
        """Bring the schema to the newest revision, or to ``target`` (Alembic)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        db = make_url(self.url).database if self.dialect == "sqlite" else None
        if db and db != ":memory:":  # only creating a ledger makes its directory
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        rev = self.schema_revision()
        if rev is not None:
            self._known(rev)
        with self._connect_checked() as conn, conn.begin():
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)

    def schema_revision(self) -> str | None:
        with self._connect_checked() as conn:
            return self._revision(conn)

    @staticmethod
    def _revision(conn: Connection) -> str | None:
        try:
            rev = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except SQLAlchemyError:
            return None
        return None if rev is None else str(rev)

    def require_schema(self, origin: str | None = None) -> None:
        """The schema is at this bfa's revision and, given ``origin``, the database holds
        that ledger (a home paired with another ledger's database is refused). One
        connection: every command that opens the ledger pays for this check."""
        path = self.engine.url.database
        if self.dialect == "sqlite" and path and path != ":memory:" and not Path(path).exists():
            # connecting would create an empty file: only 'bfa init' makes databases
            raise ConfigError(gettext("no ledger in {database}; run 'bfa init' first").format(
                database=self.display_url()))
        with self._connect_checked() as conn:
            rev = self._revision(conn)
            if rev is None:
                conn.rollback()  # the failed read ended the transaction
                if conn.dialect.name == "postgresql" and conn.exec_driver_sql(
                        "SELECT to_regclass('alembic_version') IS NOT NULL").scalar():
                    # the ledger is there, but this role may not read it (FORMAT.md §8.3)
                    raise DutyError(gettext(
                        "role {role} holds no duty in {database}: duties belong to one "
                        "ledger's database; its owner grants them (bfa db grant ROLE --duty "
                        "D)").format(
                        role=repr(conn.exec_driver_sql("SELECT current_user").scalar()),
                        database=self.display_url()))
                raise ConfigError(gettext("no ledger in {database}; run 'bfa init' first")
                                  .format(database=self.display_url()))
            self._known(rev)
            if rev != HEAD_REVISION:
                raise ConfigError(
                    gettext("ledger schema is at revision {revision}, this bfa needs {head}; "
                            "run 'bfa init' to migrate").format(revision=rev, head=HEAD_REVISION)
                )
            have = None if origin is None else self.get_meta(conn, "origin")
        if have is not None and have != origin:
            raise ConfigError(
                gettext("database {database} holds ledger {have}, not this home's {origin}; "
                        "check --db / BFA_DATABASE_URL and --home / BFA_HOME").format(
                    database=self.display_url(), have=repr(have), origin=repr(origin))
            )

    def _known(self, rev: str) -> None:
        if rev not in KNOWN_REVISIONS:
            raise ConfigError(
                gettext("ledger schema is at revision {revision}, which this bfa (revision "
                        "{head}) does not know: the database was made or migrated by a newer "
                        "bfa; use that version").format(revision=rev, head=HEAD_REVISION)
            )

    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def _connect_checked(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as e:
            reason = " ".join(str(e.orig).split())  # the driver's text may span lines
            raise ConfigError(gettext("cannot open database {database}: {reason}").format(
                database=self.display_url(), reason=reason)) from e
        try:
            yield conn
        finally:
            conn.close()

    # -- transactions ---------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator[Connection]:
        """A transaction holding the one append lock; commits on success."""
        with self._connect_checked() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
                yield conn
        if self._checkpointer is not None:
            self._checkpointer.after_commit()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Hold a database-wide lock called ``name`` for the block, if no one else does.

        Yields whether it was taken (never waits). On PostgreSQL it is a session-level
        advisory lock on a connection of its own, so every host sharing the database
        sees it, and the server frees it when that connection ends (a killed process
        leaves no stale lock). SQLite's database is one file on one host: it yields True
        and the caller's lock file in the home does the job.

        The lock belongs to a server session, so it needs a direct connection or a
        session-pooling proxy: behind PgBouncer in transaction-pooling mode the session
        changes under the lock and it guards nothing.
        """
        if self.dialect != "postgresql":
            yield True
            return
        with self._connect_checked() as conn:
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                      {"k": key}).scalar())
            conn.commit()
            try:
                yield taken
            finally:
                if taken:
                    self._unlock(conn, key)

    @staticmethod
    def _unlock(conn: Connection, key: int) -> None:
        """Release :meth:`exclusive`'s lock without masking the block's own outcome.

        When the unlock cannot run (the connection broke, a statement failed), the
        connection is invalidated instead of returned to the pool: the server ends the
        session, which frees its advisory locks.
        """
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
        except SQLAlchemyError:
            conn.invalidate()

    @contextmanager
    def reader(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both backends).

        ``snapshot=False``: on PostgreSQL, statements in autocommit instead, which saves
        the ``BEGIN`` and ``COMMIT`` round trips. Only for reads whose answer no later
        commit can change: rows of the append-only tables below a size read first
        (a proof reads an entry, then a checkpoint, then nodes under that checkpoint's
        size, all written before the checkpoint was). SQLite keeps its transaction,
        which costs no round trip.
        """
        with self._connect_checked() as conn:
            if self.dialect == "postgresql" and not snapshot:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
                return
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # -- reads ----------------------------------------------------------------
    @staticmethod
    def head(conn: Connection) -> tuple[int, bytes | None]:
        """(number of entries, entry hash of the last one)."""
        row = conn.execute(
            select(s.entries.c.seq, s.entries.c.entry_hash)
            .order_by(s.entries.c.seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return 0, None
        return int(row[0]) + 1, bytes(row[1])

    @staticmethod
    def get_nodes(
        conn: Connection, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Hashes of complete subtrees ``(level, index)``; level 0 reads entry hashes.

        One statement (one round trip) per 500 keys: a ``UNION ALL`` of the entry
        hashes by ``seq`` and the stored nodes by primary key. PostgreSQL gets the
        nodes as one row-value ``IN``; SQLite, which does not always plan a row-value
        list on the index, one indexed arm per level.
        """
        keys = list(keys)
        found: dict[tuple[int, int], bytes] = {}
        pg = conn.dialect.name == "postgresql"
        e, n = s.entries.c, s.tree_nodes.c
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            leaves = [idx for level, idx in part if level == 0]
            inner = [(level, idx) for level, idx in part if level > 0]
            arms: list[Select[tuple[int, int, bytes]]] = []
            if leaves:
                arms.append(select(literal(0, SmallInteger), e.seq, e.entry_hash)
                            .where(e.seq.in_(leaves)))
            if inner and pg:
                arms.append(select(n.level, n.idx, n.hash)
                            .where(tuple_(n.level, n.idx).in_(inner)))
            elif inner:
                by_level: dict[int, list[int]] = {}
                for level, idx in inner:
                    by_level.setdefault(level, []).append(idx)
                arms += [select(n.level, n.idx, n.hash)
                         .where(n.level == level, n.idx.in_(idxs))
                         for level, idxs in sorted(by_level.items())]
            if not arms:
                continue
            q = arms[0] if len(arms) == 1 else union_all(*arms)
            for level, idx, h in conn.execute(q):
                found[(int(level), int(idx))] = bytes(h)
        return found

    # -- many ids at once: the one way every module looks rows up by a list of ids ------
    @staticmethod
    def _ids_table(ids: Sequence[str]) -> Any:
        """PostgreSQL: the ids as a table ``u(id)``, sent as one string the server cuts at
        U+001F (no id the ledger keeps holds it: RECORD_ID_PATTERN, break ids). One
        parameter plans cheaply whatever the count (many bound parameters cost more to
        plan than the look-ups), and a string costs less Python than a text[] (ADR 0016,
        bench/README.md)."""
        sep: Any = bindparam("ids_sep", "\x1f")
        return (func.unnest(func.string_to_array(bindparam("ids", "\x1f".join(ids)), sep))
                .table_valued("id").render_derived(name="u"))

    @staticmethod
    def select_by_ids(conn: Connection, key: ColumnElement[str], ids: Sequence[str],
                      columns: Sequence[ColumnElement[Any]],
                      where: Sequence[ColumnElement[bool]] = ()) -> list[Any]:
        """Rows of ``columns`` whose ``key`` is one of ``ids`` (and ``where``), by the index
        on ``key``: on PostgreSQL joined from the ids as a table (the join keeps the
        planner on index look-ups; with ``= ANY(array)`` or ``IN`` it chose to scan whole
        tables), on SQLite IN lists of 500 sorted ids. Rows come in no given order."""
        if not ids:
            return []
        if conn.dialect.name == "postgresql":
            u = Store._ids_table(ids)
            table = key.table
            q = select(*columns).select_from(u.join(table, key == u.c.id)).where(*where)
            return list(conn.execute(q))
        ordered = sorted(set(ids))
        return [row for i in range(0, len(ordered), IDS_PER_STATEMENT) for row in conn.execute(
            select(*columns).where(key.in_(ordered[i:i + IDS_PER_STATEMENT]), *where))]

    @staticmethod
    def id_conditions(conn: Connection, key: ColumnElement[str],
                      ids: Sequence[str]) -> Iterator[ColumnElement[bool]]:
        """Conditions that together select the rows whose ``key`` is one of ``ids`` (for
        UPDATE and DELETE): one on PostgreSQL (the ids as a table), IN lists of 500 on
        SQLite."""
        if not ids:
            return
        if conn.dialect.name == "postgresql":
            u = Store._ids_table(ids)
            yield key.in_(select(u.c.id))
            return
        for i in range(0, len(ids), IDS_PER_STATEMENT):
            yield key.in_(list(ids[i:i + IDS_PER_STATEMENT]))

    def entries_by_ids(self, conn: Connection, domain: str, ids: Sequence[str]
                       ) -> dict[str, tuple[int, bytes, bytes]]:
        """``record_id -> (seq, leaf, entry_hash)`` of the entries of ``domain`` with one
        of ``ids``, by the unique index ``(record_id, domain)``."""
        e = s.entries.c
        return {str(rid): (int(seq), bytes(leaf), bytes(h)) for rid, seq, leaf, h in
                self.select_by_ids(conn, e.record_id, ids,
                                   (e.record_id, e.seq, e.leaf, e.entry_hash),
                                   (e.domain == domain,))}

    @staticmethod
    def nodes_in_ranges(conn: Connection, spans: dict[int, tuple[int, int]]
                        ) -> dict[tuple[int, int], bytes]:
        """The stored nodes ``(level, idx)`` with ``lo <= idx < hi`` for each ``level: (lo,
        hi)`` (levels >= 1): one primary-key range scan per level, which reads the nodes a
        run of entries completed in key order (much cheaper than looking them up one by
        one)."""
        n = s.tree_nodes.c
        found: dict[tuple[int, int], bytes] = {}
        for level, (lo, hi) in sorted(spans.items()):
            for idx, h in conn.execute(select(n.idx, n.hash).where(
                    n.level == level, n.idx >= lo, n.idx < hi)):
                found[(level, int(idx))] = bytes(h)
        return found

    @staticmethod
    def node_beyond(conn: Connection, size: int) -> tuple[int, int] | None:
        """A stored tree node ``(level, index)`` that is not a complete subtree of the
        first ``size`` leaves (or no node at all: level below 1, negative index), if any:
        one primary-key range probe per level."""
        n = s.tree_nodes.c
        top = max(size.bit_length(), 1)
        cond = or_(n.level < 1, n.idx < 0, n.level > top,
                   *(and_(n.level == level, n.idx >= size >> level)
                     for level in range(1, top + 1)))
        row = conn.execute(select(n.level, n.idx).where(cond).limit(1)).first()
        return None if row is None else (int(row[0]), int(row[1]))

    def may(self, conn: Connection, privilege: str, table: str) -> bool:
        """Whether the connection's role holds ``privilege`` (``INSERT``, ``UPDATE``) on
        ``table``. PostgreSQL asks the catalogue; SQLite has no roles, so whoever opened
        the file holds every right (FORMAT.md §8.3)."""
        if self.dialect != "postgresql":
            return True
        return bool(conn.execute(text("SELECT has_table_privilege(current_user, :t, :p)"),
                                 {"t": table, "p": privilege}).scalar_one())

    # -- what the reconciler's set-based statements ask of the backend ------------------
    @staticmethod
    def traits(conn: Connection) -> Traits:
        """How this backend runs large analytical statements (:class:`Traits`)."""
        return _PG_TRAITS if conn.dialect.name == "postgresql" else _SQLITE_TRAITS

    @staticmethod
    def tune_analysis(conn: Connection) -> None:
        """Settings for the rest of the transaction, for a run of set-based statements
        (PostgreSQL: :data:`PG_ANALYSIS_SETTINGS`; SQLite needs none)."""
        if conn.dialect.name == "postgresql":
            for sql in PG_ANALYSIS_SETTINGS:
                conn.exec_driver_sql(sql)

    @staticmethod
    def whole_joins(conn: Connection, on: bool) -> None:
        """For the rest of the transaction (or until called again): statements that join
        large work tables whole use hash joins only (PostgreSQL: no nested loops, whose
        per-row probes a misjudged estimate of a table made a moment ago can choose for a
        million rows); ``on=False`` allows them again (reads by key). SQLite: nothing."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL enable_nestloop = {'off' if on else 'on'}")

    @staticmethod
    def work_mem(conn: Connection, size: str) -> None:
        """Memory for each sort and hash of this transaction's statements (PostgreSQL
        ``work_mem``, e.g. ``"256MB"``): a statement that hashes a million rows whole
        writes them out in batches and reads them back when they do not fit. SQLite:
        nothing."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{size}'")

    @staticmethod
    def temp_buffers(conn: Connection, size: str) -> bool:
        """Memory for temporary tables in this transaction (PostgreSQL ``temp_buffers``,
        e.g. ``"256MB"``), which the server allows only before the session's first
        temporary table; returns whether it was set. SQLite keeps them in its own cache."""
        if conn.dialect.name != "postgresql":
            return False
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"SET LOCAL temp_buffers = '{size}'")
        except SQLAlchemyError:
            return False
        return True

    @staticmethod
    def may_create_tables(conn: Connection) -> bool:
        """Whether the role may create tables in its schema (PostgreSQL asks the
        catalogue: a duty's role made by ``bfa db grant`` may not); SQLite: yes."""
        if conn.dialect.name != "postgresql":
            return True
        return bool(conn.exec_driver_sql(
            "SELECT has_schema_privilege(current_schema(), 'CREATE')").scalar())

    @staticmethod
    def create_table_as(conn: Connection, name: str, rows: Select[Any],
                        *, unlogged: bool) -> None:
        """``CREATE [UNLOGGED] TABLE name AS rows`` (PostgreSQL: built by parallel workers
        when the planner chooses; the statement's parameters rendered in)."""
        compiled = rows.compile(dialect=conn.dialect,
                                compile_kwargs={"render_postcompile": True})
        kind = "UNLOGGED TABLE" if unlogged else "TABLE"
        conn.exec_driver_sql(f"CREATE {kind} {name} AS {compiled}", compiled.params)

    @staticmethod
    def analyze_table(conn: Connection, name: str) -> None:
        """Planner statistics of a table made just now (PostgreSQL; autovacuum has not
        seen it). SQLite plans from its indexes."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {name}")

    @staticmethod
    def estimate_rows(conn: Connection, table: str) -> int | None:
        """About how many rows ``table`` holds, without counting: PostgreSQL's planner
        estimate (fresh after ``ANALYZE``), SQLite's rowid span; None when not known."""
        if conn.dialect.name == "postgresql":
            est = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = %(t)s::regclass", {"t": table}
            ).scalar()
            return int(float(est)) if est is not None and float(est) > 0 else None
        span = conn.exec_driver_sql(
            f"SELECT max(rowid) - min(rowid) + 1 FROM {table}").scalar()
        return None if span is None else int(span)

    @staticmethod
    def code_point_order(conn: Connection, col: ColumnElement[str]) -> ColumnElement[str]:
        """``col`` ordered by Unicode code point (the order of its UTF-8 bytes), whatever
        the database's collation: PostgreSQL ``COLLATE "C"``, SQLite's ``BINARY``."""
        return collate(col, "C") if conn.dialect.name == "postgresql" else col

    def get_meta(self, conn: Connection, key: str) -> str | None:
        return conn.execute(select(s.meta.c.value).where(s.meta.c.key == key)).scalar()

    def set_meta(self, conn: Connection, key: str, value: str) -> None:
        if self.get_meta(conn, key) is None:
            conn.execute(s.meta.insert().values(key=key, value=value))
        else:
            conn.execute(s.meta.update().where(s.meta.c.key == key).values(value=value))

    def analyze(self) -> None:
        """Refresh planner statistics of the ledger tables after a large append (PostgreSQL)."""
        if self.dialect != "postgresql":
            return
        with self._connect_checked() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("ANALYZE entries, tree_nodes, vault")

    # -- bulk writes ----------------------------------------------------------
    def copy_rows(
        self, conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Append rows in bulk: psycopg COPY on PostgreSQL, executemany on SQLite.

        The ledger's own tables go through binary COPY (their column types are known
        here): leaves and hashes travel as raw bytes instead of hex text, which the
        server would decode again; other tables (the reconciler's) use text COPY.
        """
        if not rows:
            return
        cols = ", ".join(columns)
        if self.dialect == "postgresql":
            raw = conn.connection.driver_connection
            assert raw is not None
            types = _binary_types(table, tuple(columns))
            fmt = " (FORMAT BINARY)" if types else ""
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN{fmt}") as cp:
                if types:
                    cp.set_types(types)
                for r in rows:
                    cp.write_row(r)
        else:
            marks = ", ".join("?" for _ in columns)
            conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(rows))


    @property
    def takes_copy_text(self) -> bool:
        """Whether :meth:`copy_text` takes rows already encoded (PostgreSQL); SQLite takes
        them as tuples (:meth:`copy_rows`)."""
        return self.dialect == "postgresql"

    def copy_text(self, conn: Connection, table: str, columns: Sequence[str],
                  data: bytes) -> None:
        """Append rows already written in PostgreSQL's COPY text format
        (:func:`copy_text_line`, one per row): one COPY of ``data`` as it is. For rows
        encoded elsewhere (another process), so that this one only passes bytes on."""
        if not data:
            return
        raw = conn.connection.driver_connection
        assert raw is not None and self.dialect == "postgresql"
        with raw.cursor() as cur, cur.copy(
                f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            cp.write(data)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text_line(values: Sequence[str | int | None]) -> str:
    """One row in PostgreSQL's COPY text format: tab-separated, ``\\N`` for NULL,
    backslash, tab, newline and carriage return escaped, ending in a newline."""
    line = "\t".join(["\\N" if v is None else str(v) for v in values])
    # nearly every row needs no escape: its tabs are the separators and its backslashes
    # those of the NULLs, and it holds no line end (one look at the row, not a
    # translation of each value)
    if (line.count("\t") == len(values) - 1 and line.count("\\") == values.count(None)
            and "\n" not in line and "\r" not in line):
        return line + "\n"
    return "\t".join(["\\N" if v is None else str(v).translate(_COPY_ESCAPES)
                      for v in values]) + "\n"


_PG_BINARY_NAMES: dict[type[Any], str] = {
    BigInteger: "int8",
    SmallInteger: "int2",
    Integer: "int4",
    LargeBinary: "bytea",
    String: "text",  # varchar(n) has the binary form of text; the server checks n
    Text: "text",
}


@cache
def _binary_types(table: str, columns: tuple[str, ...]) -> list[str] | None:
    """psycopg type names for a binary COPY into a ledger table, or None (use text)."""
    t = s.metadata.tables.get(table)
    if t is None:
        return None
    names = [_PG_BINARY_NAMES.get(type(t.c[c].type)) for c in columns]
    return None if None in names else [n for n in names if n is not None]

