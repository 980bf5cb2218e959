"""PostgresStore beyond the conformance suite: connecting, refusing what is not its journal, leases across machines."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from podium.errors import RunStateError, StoreError
from podium.journal import _postgres
from podium.journal._postgres import PostgresStore

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(postgres_store_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(postgres_store_url)
    await opened.open()
    yield opened
    await opened.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _tables(url: str) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in await cur.fetchall()}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://podium:s3cret-pw@127.0.0.1:{port}/journal",
        "postgresql://podium:s3cret-pw@/journal?host=/nonexistent/podium-socket-dir",
        "host=127.0.0.1 port={port} user=podium password=s3cret-pw dbname=journal",
    ],
    ids=["tcp-port-closed", "missing-socket-dir", "keyword-form"],
)
async def test_an_unreachable_server_fails_fast_without_the_password(url: str) -> None:
    store = PostgresStore(url.format(port=_free_port()), connect_timeout=5)
    assert "s3cret-pw" not in store.url, store.url
    assert "***" in store.url, store.url
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect") as caught:
        await store.open()
    assert time.monotonic() - started < 4, "a refused connection is reported at once, not after the timeout"
    assert "s3cret-pw" not in str(caught.value), str(caught.value)
    assert "s3cret-pw" not in caught.value.url, caught.value.url
    assert "journal" in str(caught.value), "the message names the database it tried"


def test_missing_psycopg_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_postgres, "_missing", ImportError("No module named 'psycopg'"))
    with pytest.raises(StoreError, match=r"pip install 'podium\[postgres\]'") as caught:
        PostgresStore("postgresql://u:s3cret-pw@db/x")
    assert "s3cret-pw" not in str(caught.value)


async def test_a_journal_of_another_version_is_refused(postgres_store_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_store_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE podium_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        await conn.execute("INSERT INTO podium_meta VALUES ('schema', 'podium-journal'), ('version', '2')")
    with pytest.raises(StoreError, match="version 2"):
        await PostgresStore(postgres_store_url).open()
    assert await _tables(postgres_store_url) == {"podium_meta"}, "nothing was created"


async def test_podium_tables_without_podium_meta_are_refused(postgres_store_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_store_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE podium_runs (id INT)")
    with pytest.raises(StoreError, match="no podium_meta"):
        await PostgresStore(postgres_store_url).open()
    assert await _tables(postgres_store_url) == {"podium_runs"}


async def test_a_shared_database_with_other_tables_is_fine(postgres_store_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_store_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE invoices (id INT)")
        await conn.execute("INSERT INTO invoices VALUES (1)")
    store = PostgresStore(postgres_store_url)
    await store.open()
    try:
        await store.create_run("r1", "wf", [], owner=None, lease_seconds=30, at=time.time())
        stats = await store.stats()
        assert (stats.runs, stats.bytes > 0) == (1, True), stats
    finally:
        await store.close()
    assert await _tables(postgres_store_url) == {
        "invoices", "podium_meta", "podium_runs", "podium_events", "podium_questions"
    }  # fmt: skip


async def test_several_processes_opening_a_fresh_database_at_once(postgres_store_url: str) -> None:
    stores = [PostgresStore(postgres_store_url, max_connections=2) for _ in range(6)]
    try:
        await asyncio.gather(*(s.open() for s in stores))  # each creates the schema if absent, one at a time
        await stores[0].create_run("r1", "wf", [], owner=None, lease_seconds=30, at=time.time())
        assert [i.run_id for i in await stores[5].list_runs()] == ["r1"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_opening_one_store_from_many_tasks_makes_one_pool(
    postgres_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[object] = []

    class CountedPool(AsyncConnectionPool[Any]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(_postgres, "AsyncConnectionPool", CountedPool)
    store = PostgresStore(postgres_store_url)
    try:
        await asyncio.gather(*(store.open() for _ in range(5)))  # runs starting at once share one store object
        assert len(pools) == 1, f"{len(pools)} pools: the open() calls did not wait for each other"
    finally:
        await store.close()


async def test_two_pools_contending_give_each_run_to_one_owner(postgres_store_url: str) -> None:
    first, second = PostgresStore(postgres_store_url), PostgresStore(postgres_store_url)
    await first.open()
    await second.open()
    try:
        for i in range(40):
            await first.create_run(f"r{i}", "wf", [], owner=None, lease_seconds=30, at=time.time() + i * 1e-3)

        async def worker(store: PostgresStore, name: str) -> list[str]:
            taken: list[str] = []
            # a new owner id per claim, as podium's workers do (claim_next may hand an owner back its own run)
            while info := await store.claim_next(f"{name}/{len(taken)}", workflows=["wf"], lease_seconds=30,
                                                 at=time.time()):  # fmt: skip
                assert info.owner == f"{name}/{len(taken)}"
                taken.append(info.run_id)
            return taken

        lists = await asyncio.gather(*(worker(s, f"{n}-{i}") for i in range(8) for n, s in enumerate((first, second))))
        taken = sorted(run_id for runs in lists for run_id in runs)
        assert taken == sorted(f"r{i}" for i in range(40)), "each run went to exactly one worker"
        assert sum(1 for runs in lists if runs) > 2, "the work was actually shared"
    finally:
        await first.close()
        await second.close()


async def test_leases_use_the_database_clock(store: PostgresStore) -> None:
    hour = 3600.0
    # A worker whose clock is an hour behind takes a 60 s lease: it is live for 60 s of the database's time, not
    # an hour in the past (which another worker would take over at once).
    await store.create_run("r1", "wf", [], owner="slow-clock", lease_seconds=60, at=time.time() - hour)
    info = await store.get_run("r1")
    assert info.lease_until == pytest.approx(time.time() + 60, abs=5), info
    with pytest.raises(RunStateError):
        await store.claim("r1", "fast-clock", lease_seconds=60, at=time.time() + hour)
    assert await store.claim_next("fast-clock", workflows=["wf"], lease_seconds=60, at=time.time() + hour) is None
    # Once the database's clock passes the lease, any worker may take over, whatever its own clock says.
    await store.create_run("r2", "wf", [], owner="slow-clock", lease_seconds=0.2, at=time.time() + hour)
    with pytest.raises(RunStateError):
        await store.claim("r2", "other", lease_seconds=60, at=time.time() - hour)
    await asyncio.sleep(0.4)
    assert (await store.claim("r2", "other", lease_seconds=60, at=time.time() - hour)).owner == "other"
    got = await store.claim_next("third", workflows=["wf"], lease_seconds=60, at=time.time() - hour)
    assert got is None, "r1's lease is still live and r2's belongs to 'other' now"
    assert (await store.get_run("r2")).created_at == pytest.approx(time.time() + hour, abs=5), "at is kept for times"


async def test_the_url_attribute_hides_the_password() -> None:
    assert PostgresStore("postgresql://u:p%40ss@h:5432/db").url == "postgresql://u:***@h:5432/db"
    assert (
        PostgresStore("postgresql://u@h/db?password=pw&sslmode=off").url
        == "postgresql://u@h/db?password=***&sslmode=off"
    )
    assert PostgresStore("postgresql://u:@h/db").url == "postgresql://u:@h/db"
    assert PostgresStore("dbname=x password='a b' host=h").url == "dbname=x password=*** host=h"
