"""Fixtures shared by the whole suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_default_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test's default store is a fresh in-memory one: runs that name no store are still journaled (as by
    default), but tests neither litter the working folder with ``.podium/`` nor see each other's runs."""
    monkeypatch.setenv("PODIUM_STORE", f"memory://test-{uuid.uuid4().hex}")
    yield
