"""The webhooks' HTTP/1.1 server over a real socket on 127.0.0.1: what it refuses, what it tells a sender, and
how it bounds and ends its connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest

from podium.triggers._http import Handler, HttpServer, Request, Response

HEAD = b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
BODY = b'{"a":1}'


class Recorder:
    """A handler that answers 200 with what it got (after ``delay`` seconds), and keeps the requests."""

    def __init__(self, delay: float = 0.0) -> None:
        self.requests: list[Request] = []
        self.started = asyncio.Event()
        self.delay = delay

    async def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        self.started.set()
        await asyncio.sleep(self.delay)
        return Response(200, {"body": request.body.decode()})


@contextlib.asynccontextmanager
async def listening(handler: Handler, **options: int) -> AsyncIterator[HttpServer]:
    server = HttpServer("127.0.0.1", 0, handler, max_body=1000, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def answer(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["error"]


@pytest.mark.parametrize(
    ("lengths", "error"),
    [
        (b"Content-Length: 100\r\nContent-Length: 7\r\n", "Content-Length has more than one value"),
        (b"Content-Length: 7\r\nContent-Length: 7\r\n", "Content-Length has more than one value"),
        (b"Content-Length: 7, 7\r\n", "Content-Length has more than one value"),
        (b"Content-Length: 0_7\r\n", "Content-Length must be a decimal number"),
        (b"Content-Length: +7\r\n", "Content-Length must be a decimal number"),
        (b"Content-Length: -7\r\n", "Content-Length must be a decimal number"),
        (b"Content-Length: 7.0\r\n", "Content-Length must be a decimal number"),
        (b"Content-Length: \r\n", "Content-Length must be a decimal number"),
    ],
)
async def test_a_content_length_must_be_one_decimal_number(lengths: bytes, error: str) -> None:
    """Else a proxy in front and this server could disagree on where the body ends (RFC 9112 section 6.3)."""
    handler = Recorder()
    async with listening(handler) as server:
        raw = await exchange(server.port, HEAD + lengths + b"\r\n" + BODY)
    assert answer(raw) == (400, error)
    assert handler.requests == []


async def test_content_lengths_with_leading_zeros_or_too_many_digits() -> None:
    handler = Recorder()
    async with listening(handler) as server:
        zeros = await exchange(server.port, HEAD + b"Content-Length: 0007\r\n\r\n" + BODY)
        huge = await exchange(server.port, HEAD + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n" + BODY)
    assert zeros.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer(huge) == (413, "the body is larger than 1000 bytes, the most accepted")
    assert [r.body for r in handler.requests] == [BODY]


@pytest.mark.parametrize(
    ("coding", "status", "error"),
    [
        (b"chunked", 411, "send the body with a Content-Length (chunked bodies are not supported)"),
        (b"gzip, chunked", 411, "send the body with a Content-Length (chunked bodies are not supported)"),
        (b"gzip", 501, "Transfer-Encoding is not supported: send the body as it is, with a Content-Length"),
        (b"identity", 501, "Transfer-Encoding is not supported: send the body as it is, with a Content-Length"),
    ],
)
async def test_a_transfer_encoding_is_refused_even_with_a_content_length(
    coding: bytes, status: int, error: str
) -> None:
    handler = Recorder()
    async with listening(handler) as server:
        raw = await exchange(
            server.port, HEAD + b"Transfer-Encoding: " + coding + b"\r\nContent-Length: 7\r\n\r\n" + BODY
        )
    assert answer(raw) == (status, error)
    assert handler.requests == []


async def test_an_unexpected_error_is_a_bare_500_and_its_details_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("cannot open /srv/secrets/db.sqlite")

    async with listening(broken) as server:
        with caplog.at_level(logging.ERROR, logger="podium.triggers"):
            raw = await exchange(server.port, HEAD + b"Content-Length: 7\r\n\r\n" + BODY)
    assert answer(raw) == (500, "internal server error")
    assert b"RuntimeError" not in raw
    assert b"secrets" not in raw
    [record] = caplog.records
    assert record.name.startswith("podium.triggers")
    assert record.exc_info is not None
    assert "/srv/secrets/db.sqlite" in str(record.exc_info[1])
    assert "POST /h" in record.getMessage()


async def test_closing_hangs_up_on_requests_still_arriving_and_finishes_those_being_answered() -> None:
    handler = Recorder(delay=0.3)
    server = HttpServer("127.0.0.1", 0, handler, max_body=1000)
    await server.start()
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(50)]
    partial = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
    for _, writer in partial:  # a head without its body, and a body cut short
        writer.write(HEAD + b"Content-Length: 7\r\n\r\n{")
    answered = asyncio.create_task(exchange(server.port, HEAD + b"Content-Length: 7\r\n\r\n" + BODY))
    await asyncio.wait_for(handler.started.wait(), 5)
    # idle and partial connections are dropped at once, not waited for (the old server waited 10 s for them)
    await asyncio.wait_for(server.close(), 8)
    assert (await answered).startswith(b"HTTP/1.1 200 OK\r\n")  # the request being answered was finished
    for reader, writer in [*idle, *partial]:
        assert await asyncio.wait_for(reader.read(), 1) == b""  # hung up on, without an answer
        writer.close()
    assert len(handler.requests) == 1


async def test_connections_beyond_max_connections_get_503() -> None:
    handler = Recorder()
    async with listening(handler, max_connections=3) as server:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        refused = await exchange(server.port, HEAD + b"Content-Length: 7\r\n\r\n" + BODY)
        assert answer(refused) == (503, "too many connections; try again shortly")
        assert b"\r\nRetry-After: 1\r\n" in refused
        assert handler.requests == []
        held.pop()[1].close()  # a connection ends: one more is served
        for _ in range(100):
            again = await exchange(server.port, HEAD + b"Content-Length: 7\r\n\r\n" + BODY)
            if not again.startswith(b"HTTP/1.1 503"):
                break
            await asyncio.sleep(0.01)
        assert again.startswith(b"HTTP/1.1 200 OK\r\n")
        for _, writer in held:
            writer.close()
    assert HttpServer("127.0.0.1", 0, handler, max_body=1).max_connections == 64
