"""A scripted HTTP/1.1 server on 127.0.0.1 for the providers' tests: a real socket, the real wire formats.

It records every request (method, path, headers, body) and answers each with the next scripted :class:`Reply`:
a JSON or raw body, a stream of server-sent events (chunked, flushed one event at a time), or silence until the
client hangs up (which it records, so tests can see that cancelling a call closes its connection).
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """One request the server received; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A scripted answer.

    Attributes:
        status: the HTTP status.
        body: a JSON value, or ``str``/``bytes`` sent as they are.
        headers: extra response headers.
        events: server-sent events (already formatted, each ending in a blank line), sent chunked.
        hang: answer nothing (after the events, if any) until the client closes the connection.
    """

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    events: Sequence[str] | None = None
    hang: bool = False


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event: ``data`` as JSON (a ``str`` as it is), with an optional ``event:`` name."""
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


class WireServer:
    """The server; use it as a context manager. ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.arrived = threading.Event()  # set when a request arrives
        self.disconnected = threading.Event()  # set when a client hangs up on a request left waiting
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Quiet(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def reply(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self._replies.extend(replies)

    def __enter__(self) -> WireServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _take(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            self.arrived.set()
            if self._replies:
                return self._replies.pop(0)
        return Reply(status=500, body={"error": {"message": "the test scripted no reply for this request"}})

    def _wait_for_hang_up(self, sock: socket.socket) -> None:
        while not self._stopping.is_set():
            readable, _, _ = select.select([sock], [], [], 0.05)
            if not readable:
                continue
            try:
                if sock.recv(4096):
                    continue
            except OSError:
                pass
            self.disconnected.set()
            return


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client closing its idle keep-alive connection
            super().handle_error(request, client_address)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _handler(server: WireServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server._take(Recorded(method="POST", path=self.path, headers=headers, body=body))
            if reply.events is not None:
                self._send_events(reply)
            elif not reply.hang:
                self._send_body(reply)
            if reply.hang:
                self.close_connection = True
                server._wait_for_hang_up(self.connection)

        def _send_body(self, reply: Reply) -> None:
            if isinstance(reply.body, bytes | str):
                data = reply.body.encode() if isinstance(reply.body, str) else reply.body
                kind = "text/plain"
            else:
                data, kind = json.dumps(reply.body).encode(), "application/json"
            self.send_response(reply.status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_events(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            for event in reply.events or ():
                data = event.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if not reply.hang:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return Handler
