"""Where the benchmarks run: a work directory, fresh databases and ledgers built on demand.

PostgreSQL: every ledger gets its own fresh database ``bfa_bench_<run>_<label>``
on the server named by ``BFA_BENCH_DATABASE_URL`` (created through that URL's
database, by default ``postgres``), and every database this run created is
dropped at the end (``DROP DATABASE ... WITH (FORCE)``), also after an error or
Ctrl-C. SQLite: a ledger is a file in its home under the work directory.

:class:`Env` builds the generated records and the benchmark ledger lazily, so
``--only verify`` ingests (untimed) what ``ingest`` would otherwise have built.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench._records import RecordsFile, split_file, write_records
from bench._report import fmt_count, log
from ledger import Ledger

ORIGIN = "bench.example/ledger"
BUILD_BATCH = 100_000
"""Lines per batch when a ledger is built as set-up (see :meth:`Env.ingest_untimed`)."""
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class PgServer:
    """Creates and drops this run's databases on one PostgreSQL server."""

    def __init__(self, admin_url: str, run_id: str) -> None:
        self.admin_url = admin_url
        self.run_id = run_id
        self.created: list[str] = []

    def check(self) -> str:
        with psycopg.connect(self.admin_url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"

    def create(self, label: str) -> str:
        """Create a fresh database; return its ``postgresql://`` URL."""
        name = f"bfa_bench_{self.run_id}_{label}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        url = make_url(self.admin_url).set(database=name)
        return url.render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        if name not in self.created:
            return
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)))
                self.created.remove(name)
            except psycopg.Error as e:
                log(f"could not drop database {name}: {e}")


@dataclass
class LedgerHandle:
    """A benchmark ledger: its home, its database URL and the records it holds."""

    backend: str
    label: str
    home: Path
    url: str
    """``postgresql://...`` or ``sqlite:////abs/path/ledger.db``."""
    entries: int = 0
    sample_ids: tuple[str, ...] = ()
    checkpointed_at: int = 0

    @property
    def sqlite_path(self) -> Path:
        db = make_url(self.url).database
        assert db is not None
        return Path(db)

    def open(self) -> Ledger:
        return Ledger.open(str(self.home), self.url)

    def prepare(self) -> None:
        """Untimed set-up for verify and prove: sign a checkpoint of the current tree,
        and on PostgreSQL ``ANALYZE`` (what autovacuum does within about a minute of
        a bulk load; without it the planner's choices, and so the figures, depend
        on whether autovacuum happened to run yet)."""
        if self.checkpointed_at == self.entries:
            return
        led = self.open()
        try:
            led.checkpoint()
        finally:
            led.close()
        if self.backend == "postgresql":
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("ANALYZE")
        self.checkpointed_at = self.entries


@dataclass
class Env:
    """One benchmark run: its options, work directory, records and ledgers."""

    records: int
    workdir: Path
    pg: PgServer | None
    seed: int = 20261123
    _records_file: RecordsFile | None = None
    _split: tuple[Path, Path] | None = None
    main: dict[str, LedgerHandle] = field(default_factory=dict)
    """The ledger of ``records`` entries per backend, once built."""
    handles: list[LedgerHandle] = field(default_factory=list)

    # -- input ----------------------------------------------------------------
    def records_file(self) -> RecordsFile:
        if self._records_file is None:
            path = self.workdir / f"records-{self.records}.jsonl"
            log(f"generating {fmt_count(self.records)} records into {path}")
            self._records_file = write_records(path, self.records, seed=self.seed)
            mb = self._records_file.size_bytes / 1e6
            log(f"generated {fmt_count(self.records)} records, {mb:.0f} MB")
        return self._records_file

    def split(self, first: int) -> tuple[Path, Path]:
        """The records file cut after ``first`` lines (for staged builds)."""
        if self._split is None:
            self._split = split_file(self.records_file(), first, self.workdir)
        return self._split

    # -- ledgers --------------------------------------------------------------
    def new_ledger(self, backend: str, label: str) -> LedgerHandle:
        """An initialised, empty ledger in a fresh database (or SQLite file)."""
        home = self.workdir / f"home-{backend}-{label}"
        if backend == "postgresql":
            assert self.pg is not None
            url = self.pg.create(label)
        else:
            url = f"sqlite:///{(home / 'ledger.db').resolve()}"
        led = Ledger.open(str(home), url, check=False)
        try:
            led.init(ORIGIN)
        finally:
            led.close()
        handle = LedgerHandle(backend, label, home, url)
        self.handles.append(handle)
        return handle

    def ingest_untimed(self, handle: LedgerHandle, path: Path, what: str) -> None:
        """Set-up (not a measurement): ingest ``path`` in batches of ``BUILD_BATCH`` lines.

        On PostgreSQL each batch is followed by ``ANALYZE``: one huge first batch
        into a table without statistics makes ``Ingester._existing`` take a
        plan that scans the table per query (quadratic; see bench/README.md),
        which would turn a 5M set-up into hours. The ``ingest`` benchmark itself
        times the one-file ingest as users run it.
        """
        log(f"{handle.backend}: building ledger '{handle.label}': ingesting {what}")
        led = handle.open()
        try:
            for part in _batches(path, BUILD_BATCH, self.workdir):
                led.ingest([str(part)], None)
                if part != path:
                    part.unlink()
                handle.entries = led.size()  # records and each batch's control.ingest
                if handle.backend == "postgresql":
                    with psycopg.connect(handle.url, autocommit=True) as conn:
                        conn.execute("ANALYZE")
                log(f"{handle.backend}: ledger '{handle.label}' holds "
                    f"{fmt_count(handle.entries)} entries")
        finally:
            led.close()

    def main_ledger(self, backend: str) -> LedgerHandle:
        """The ledger holding all generated records (ingested untimed if not yet built)."""
        if backend not in self.main:
            handle = self.new_ledger(backend, "main")
            rf = self.records_file()
            self.ingest_untimed(handle, rf.path, f"{fmt_count(rf.records)} records")
            handle.sample_ids = rf.sample_ids
            self.main[backend] = handle
        return self.main[backend]

    def drop(self, handle: LedgerHandle) -> None:
        """Free a ledger's disk space (database or home directory)."""
        if handle.backend == "postgresql" and self.pg is not None:
            self.pg.drop(handle.url)
        shutil.rmtree(handle.home, ignore_errors=True)
        if self.main.get(handle.backend) is handle:
            del self.main[handle.backend]

    def drop_backend(self, backend: str) -> None:
        for h in [h for h in self.handles if h.backend == backend]:
            self.drop(h)
            self.handles.remove(h)

    def cleanup(self) -> None:
        for h in list(self.handles):
            self.drop(h)
        self.handles.clear()
        if self.pg is not None:
            self.pg.drop_all()


def _batches(path: Path, lines: int, workdir: Path) -> Iterator[Path]:
    """``path`` itself when it has at most ``lines`` lines, else temporary files of that many."""
    with path.open("rb") as f:
        chunk = list(itertools.islice(f, lines))
        peek = f.readline()
        if not peek:
            yield path
            return
        n = 0
        while chunk:
            part = workdir / f"batch-{n}.jsonl"
            part.write_bytes(b"".join(chunk))
            yield part
            n += 1
            chunk = [peek] if peek else []
            chunk += itertools.islice(f, lines - len(chunk))
            peek = b""


def new_run_id() -> str:
    return secrets.token_hex(4)
