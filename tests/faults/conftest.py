"""Fixtures of the fault-injection suite: flaky servers on loopback, and OpenAI-compatible models pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from podium.models._openai import OpenAICompatible
from tests.faults.server import FlakyServer

Servers = Callable[..., FlakyServer]
Models = Callable[..., OpenAICompatible]


@pytest.fixture
def servers() -> Iterator[Servers]:
    """``servers(rate=..., seed=..., ...)`` starts a :class:`FlakyServer`; all are stopped after the test."""
    started: list[FlakyServer] = []

    def start(**options: Any) -> FlakyServer:
        server = FlakyServer(**options).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
async def models() -> AsyncIterator[Models]:
    """``models(server, name=..., timeout=...)``: an OpenAI-compatible model on the server; closed after the test.

    The timeout (2 s) is what every injected hang costs, and it must be long enough that a healthy answer on a
    loaded 2-core machine never looks like one (at 1 s, a full suite running beside other work saw that happen).
    """
    made: list[OpenAICompatible] = []

    def make(server: FlakyServer, *, name: str = "flaky", timeout: float = 2.0) -> OpenAICompatible:
        model = OpenAICompatible(base_url=server.base_url, model="flaky-1", name=name, timeout=timeout)
        made.append(model)
        return model

    yield make
    for model in made:
        await model.aclose()
