"""A minimal HTTP/1.1 server on asyncio streams, enough for webhooks: one request per connection, bodies with a
``Content-Length``, JSON answers. Nothing outside the standard library.

It refuses what it does not handle with the right status rather than guessing: a chunked body (411) or another
transfer coding (501), a ``Content-Length`` that is not one decimal number (400: with two, a proxy in front and
this server could disagree on where the body ends), a body over the limit (413), headers too long (431), a request
that does not arrive in time (408), a connection beyond ``max_connections`` (503). An unexpected error is a bare
500 for the sender; its details go to the ``podium.triggers`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["HttpError", "HttpServer", "Request", "Response"]

_MAX_HEAD = 16 * 1024
_MAX_HEADERS = 100
_READ_SECONDS = 10.0
_MAX_DIGITS = 18
"""A longer ``Content-Length`` is over any limit (and ``int()`` refuses very long strings)."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    """Names in lower case; values decoded as latin-1 (``value.encode("latin-1")`` gives the bytes sent), those of
    a repeated header joined with ``", "``."""
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
        max_connections: connections served at once; one more is answered 503 and closed, so that at most this
            many bodies are buffered.
    """

    def __init__(self, host: str, port: int, handler: Handler, *, max_body: int, max_connections: int = 64) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.max_body = max_body
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._arriving: set[asyncio.StreamWriter] = set()
        """Connections whose request has not arrived in full: closing hangs up on them."""
        self._closing = False

    async def start(self) -> None:
        """Bind and listen.

        Raises:
            OSError: the address cannot be bound (in use, not allowed).
        """
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=_MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and hang up on connections whose request is still arriving (idle ones too); requests
        that have arrived are answered first (for up to 10 seconds, then cancelled: they are short)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in self._arriving:
            writer.transport.abort()  # the read fails at once, as if the client had gone away
        if self._connections:
            _, late = await asyncio.wait(self._connections, timeout=_READ_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback rather than a coroutine, so a connection is counted the moment it is accepted.
        if self._closing or len(self._connections) >= self.max_connections:
            message = "the server is stopping" if self._closing else "too many connections; try again shortly"
            writer.write(_encode(Response(503, {"error": message}, {"Retry-After": "1"})))
            writer.close()  # sends the answer first; the request is never read
            return
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("webhook server on %s:%s: a connection failed", self.host, self.port, exc_info=exc)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await self._respond(reader, writer)
            writer.write(_encode(response))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away (or closing hung up on it): nobody to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Response:
        request = None
        try:
            self._arriving.add(writer)
            try:
                async with asyncio.timeout(_READ_SECONDS):
                    request = await _read(reader, writer, self.max_body)
            finally:
                self._arriving.discard(writer)
            return await self.handler(request)
        except HttpError as exc:
            return Response(exc.status, {"error": exc.message}, exc.headers)
        except TimeoutError:
            return Response(408, {"error": f"the request did not arrive within {_READ_SECONDS:g} seconds"})
        except (ConnectionError, asyncio.IncompleteReadError):
            raise
        except Exception:  # a bug: answer, and keep the details (paths, messages) for the operator
            what = f"{request.method} {request.path}" if request is not None else "a request"
            _log.exception("webhook server on %s:%s: unexpected error answering %s", self.host, self.port, what)
            return Response(500, {"error": "internal server error"})


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
    coding = headers.get("transfer-encoding")
    if coding is not None:  # with a Content-Length too, a proxy might read the body one way and this server another
        if "chunked" in coding.lower():
            raise HttpError(411, "send the body with a Content-Length (chunked bodies are not supported)")
        raise HttpError(501, "Transfer-Encoding is not supported: send the body as it is, with a Content-Length")
    length = _content_length(headers.get("content-length", "0"), max_body)
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
        name, value = name.lower(), value.strip()
        # a repeated header is one list (RFC 9110 section 5.3), never "the last one wins"
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    raise HttpError(431, f"more than {_MAX_HEADERS} headers")


def _content_length(value: str, max_body: int) -> int:
    """The body's length: ASCII digits only (RFC 9110 section 8.6), not what ``int()`` would take (``+7``,
    ``0_7``)."""
    if "," in value:
        raise HttpError(400, "Content-Length has more than one value")
    if not (value.isascii() and value.isdigit()):
        raise HttpError(400, "Content-Length must be a decimal number")
    digits = value.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        raise HttpError(413, f"the body is larger than {max_body} bytes, the most accepted")
    length = int(digits)
    if length > max_body:
        raise HttpError(413, f"the body is {length} bytes; at most {max_body} are accepted")
    return length


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
