"""Fixtures for the model providers' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.models._wire import WireServer


@pytest.fixture
def server() -> Iterator[WireServer]:
    """A scripted HTTP/1.1 server on 127.0.0.1, stopped after the test."""
    with WireServer() as wire:
        yield wire
