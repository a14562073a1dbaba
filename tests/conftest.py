"""Shared fixtures: the third-party vectors folder and one fresh database per backend.

PostgreSQL comes from ``BFA_TEST_DATABASE_URL`` (a server URL; each test gets its
own new database on it). Without it, a PostgreSQL container is started with
testcontainers when a Docker engine answers; otherwise PostgreSQL tests fail
with a message saying how to provide a server. ``BFA_TEST_BACKENDS=sqlite``
limits a local run to SQLite.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests._vectors import vectors_dir

BACKENDS = [b for b in os.environ.get("BFA_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]

# the tests read English unless they ask for Chinese: the locale of the machine running
# them must not decide (bfa follows LC_ALL/LANG, cli/_i18n.py); subprocesses inherit it
os.environ["LC_ALL"] = "C.UTF-8"
for _var in ("BFA_LANG", "LANGUAGE"):
    os.environ.pop(_var, None)


@pytest.fixture(autouse=True)
def _english_after_each_test() -> Iterator[None]:
    """A test that switched the language (``bfa --lang zh_CN`` through CliRunner, or
    ``schemas.set_language``) leaves the next one in the locale's (English)."""
    yield
    import schemas
    from cli import _i18n

    schemas.set_language(None)
    _i18n.use("en")


@pytest.fixture(autouse=True)
def _labels_stand_for_identities(request: pytest.FixtureRequest,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Several officers on one machine: a test's ``--user`` label is the acting identity
    (tests/_identity.py), except in tests marked ``real_identity``."""
    if request.node.get_closest_marker("real_identity") is None:
        from tests._identity import install

        install(monkeypatch)


@pytest.fixture(scope="session")
def vectors() -> Path:
    """Path of ``tests/vectors`` (third-party test material, sources in its README)."""
    return vectors_dir()


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL (psycopg form) on which tests may create databases."""
    url = os.environ.get("BFA_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg:
            yield pg.get_connection_url()
        return
    pytest.fail(
        "PostgreSQL tests need a server: set BFA_TEST_DATABASE_URL="
        "postgresql://postgres@127.0.0.1:5432/postgres (any server where the user may CREATE "
        "DATABASE), start a Docker engine for testcontainers, or run only SQLite with "
        "BFA_TEST_BACKENDS=sqlite",
        pytrace=False,
    )


def _admin_dsn(server: str) -> str:
    u = make_url(server.replace("postgresql+psycopg://", "postgresql://"))
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


class Dropper:
    """Drops the tests' PostgreSQL databases (and the rules role revision 0019 made for
    each: roles are the server's) in a thread of its own, one after the other.

    PostgreSQL 15's ``DROP DATABASE`` waits for a checkpoint it forces (0.1-0.3 s on a
    busy disk); a test that is over need not wait for it. The drops are the same as
    before, only not waited for; :meth:`close` (end of the session) waits for all of them
    and fails the session if one failed."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.names: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="bfa-test-dropper", daemon=True)
        self.thread.start()

    def drop(self, name: str) -> None:
        self.names.put(name)

    def _run(self) -> None:
        while (name := self.names.get()) is not None:
            try:
                drop_database(self.admin, name)
            except Exception as e:  # reported by close()
                self.errors.append(f"{name}: {e}")

    def close(self) -> None:
        self.names.put(None)
        self.thread.join()
        assert not self.errors, self.errors


def create_database(admin: str) -> tuple[str, str]:
    """A new, empty database on the server of ``admin``: (its name, its URL)."""
    name = f"bfa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        # the rules role revision 0019 made for that database (roles are the server's)
        conn.execute(f'DROP ROLE IF EXISTS "bfa_rules_{name}"')


@pytest.fixture(scope="session")
def pg_dropper(pg_server: str) -> Iterator[Dropper]:
    """The session's :class:`Dropper` (one thread per pytest-xdist worker)."""
    dropper = Dropper(_admin_dsn(pg_server))
    yield dropper
    dropper.close()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL for each test, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    dropper: Dropper = request.getfixturevalue("pg_dropper")
    name, url = create_database(dropper.admin)
    try:
        yield url
    finally:
        dropper.drop(name)


@pytest.fixture
def backend(db_url: str) -> str:
    return "postgresql" if db_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def ledger_home(tmp_path: Path, db_url: str) -> Iterator[dict[str, Any]]:
    """An initialised ledger: ``{"home": path, "db": url}`` (keys under tmp_path)."""
    from ledger import Ledger

    home = tmp_path / "home"
    led = Ledger.open(str(home), db_url, check=False)
    led.init("test.bfa.example/ledger")
    led.close()
    yield {"home": str(home), "db": db_url}


@pytest.fixture
def led(ledger_home: dict[str, Any]) -> Iterator[Any]:
    """An open :class:`ledger.Ledger` on a fresh database."""
    from ledger import Ledger

    ledger = Ledger.open(ledger_home["home"], ledger_home["db"])
    yield ledger
    ledger.close()
