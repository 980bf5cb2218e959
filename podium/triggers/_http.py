"""A minimal HTTP/1.1 server on asyncio streams, enough for webhooks: one request per connection, bodies with a
``Content-Length``, JSON answers. Nothing outside the standard library.

It refuses what it does not handle with the right status rather than guessing: a chunked body (411), a body over
the limit (413), headers too long (431), a request that does not arrive in time (408).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["HttpError", "HttpServer", "Request", "Response"]

_MAX_HEAD = 16 * 1024
_MAX_HEADERS = 100
_READ_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    """Names in lower case."""
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    data: Mapping[str, Any]
    headers: Mapping[str, str] | None = None


class HttpError(Exception):
    """A request refused with ``status`` and a message for the sender."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves ``handler`` on ``host:port`` (port 0: any free port; :attr:`port` tells which).

    Args:
        max_body: the largest body accepted, in bytes.
    """

    def __init__(self, host: str, port: int, handler: Handler, *, max_body: int) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.max_body = max_body
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind and listen.

        Raises:
            OSError: the address cannot be bound (in use, not allowed).
        """
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=_MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening; requests being answered are finished first (they are short)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._connections:
            await asyncio.wait(self._connections, timeout=_READ_SECONDS)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            try:
                async with asyncio.timeout(_READ_SECONDS):
                    request = await _read(reader, writer, self.max_body)
                response = await self.handler(request)
            except HttpError as exc:
                response = Response(exc.status, {"error": exc.message}, exc.headers)
            except TimeoutError:
                response = Response(408, {"error": f"the request did not arrive within {_READ_SECONDS:g} seconds"})
            except (ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception as exc:  # a bug: say so rather than drop the connection
                response = Response(500, {"error": f"{type(exc).__name__}: {exc}"})
            writer.write(_encode(response))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: nobody to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)


async def _read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int) -> Request:
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(414, "the request line is too long") from None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "not an HTTP/1.1 request")
    method, target, _version = parts
    headers = await _headers(reader)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "send the body with a Content-Length (chunked bodies are not supported)")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "Content-Length is not a number") from None
    if length < 0:
        raise HttpError(400, "Content-Length is negative")
    if length > max_body:
        raise HttpError(413, f"the body is {length} bytes; at most {max_body} are accepted")
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    body = await reader.readexactly(length) if length else b""
    return Request(method=method.upper(), path=target.split("?", 1)[0], headers=headers, body=body)


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(431, "a header is too long") from None
        if line == b"\r\n":
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise HttpError(400, f"malformed header line {line[:60]!r}")
        headers[name.lower()] = value.strip()
    raise HttpError(431, f"more than {_MAX_HEADERS} headers")


def _encode(response: Response) -> bytes:
    body = json.dumps(response.data).encode() + b"\n"
    reason = HTTPStatus(response.status).phrase
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (response.headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
