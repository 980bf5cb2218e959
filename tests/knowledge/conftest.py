"""Knowledge bases to test against: one in a SQLite journal's file, one in a PostgreSQL journal's database.

The PostgreSQL tests share one database (made once, its knowledge tables emptied before each test): creating a
database per test would cost a third of a second each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from podium.journal import SQLiteStore
from podium.knowledge import KnowledgeBase
from tests.conftest import scratch_database


@pytest.fixture(scope="session")
def knowledge_postgres_url(postgres_url: str) -> Iterator[str]:
    with scratch_database(postgres_url, "kb") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def kb(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KnowledgeBase]:
    """An empty knowledge base, in SQLite and in PostgreSQL."""
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "journal.db")
        opened = await KnowledgeBase.open(store)
        yield opened
        await opened.close()
        await store.close()
        return
    from podium.journal._postgres import PostgresStore

    pg = PostgresStore(request.getfixturevalue("knowledge_postgres_url"))
    opened = await KnowledgeBase.open(pg)
    async with pg.transaction() as cur:
        await cur.execute("TRUNCATE podium_kb_records, podium_kb_chunks")
    yield opened
    await opened.close()
    await pg.close()
