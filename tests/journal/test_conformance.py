"""Every store podium ships passes the one conformance suite (``podium.journal.conformance``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from podium.journal import MemoryStore, SQLiteStore, Store
from podium.journal._postgres import PostgresStore  # not re-exported: importing psycopg is optional
from podium.journal.conformance import CHECKS, Check, StoreFactory

Kind = Literal["memory", "sqlite", "sqlite-power", "postgres"]
KINDS: tuple[Kind, ...] = ("memory", "sqlite", "sqlite-power", "postgres")


def _params() -> list[object]:
    return [
        pytest.param(
            kind, check, id=f"{kind}-{check.__name__}", marks=[pytest.mark.postgres] if kind == "postgres" else []
        )
        for kind, check in itertools.product(KINDS, CHECKS)
    ]


def _factory(kind: Kind, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes ``kind``'s stores: each fresh one in its own file or database, a second one on the same location."""
    count = itertools.count()
    make: Callable[[Store | None], Store]

    if kind == "memory":

        def make(like: Store | None) -> Store:
            return like if like is not None else MemoryStore()

    elif kind in ("sqlite", "sqlite-power"):
        durability: Literal["process", "power"] = "power" if kind == "sqlite-power" else "process"

        def make(like: Store | None) -> Store:
            path = like.path if isinstance(like, SQLiteStore) and like.path else tmp_path / f"j{next(count)}.db"
            return SQLiteStore(path, durability=durability)

    else:
        url: str = request.getfixturevalue("postgres_store_url")  # one new database per test

        def make(like: Store | None) -> Store:
            if like is None and next(count):
                raise AssertionError("a check asked for two fresh stores; this factory has one database per test")
            return PostgresStore(url, max_connections=4)

    async def factory(like: Store | None = None, /) -> Store:
        store = make(like)
        if store is not like:
            await store.open()
        return store

    return factory


@pytest.mark.parametrize(("kind", "check"), _params())
async def test_store(kind: Kind, check: Check, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    await check(_factory(kind, request, tmp_path))


def test_every_check_is_registered_once() -> None:
    names = [check.__name__ for check in CHECKS]
    assert len(names) == len(set(names)), names
    assert len(names) >= 40, names
    assert all(name.startswith("test_") for name in names), names
