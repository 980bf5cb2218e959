"""A flaky OpenAI-compatible chat-completions server on 127.0.0.1: a real socket, the real wire format.

It answers ``POST /v1/chat/completions`` as OpenAI does (JSON, or server-sent events when the request says
``"stream": true``; tool calls; ``response_format`` with a JSON Schema, whose answers fit the schema), and at a set
rate answers with a fault instead (:class:`~tests.faults.plan.Fault`): a 429 with or without ``Retry-After``, a
500/502/503, a 400, silence until the client gives up, bytes trickled in time for every read but never an answer,
a dropped connection, a body cut short, a body that is not JSON, JSON without the fields of a completion, or a
well-formed completion whose content does not fit the requested schema.

Which requests fail is deterministic given the seed (:class:`~tests.faults.plan.FaultPlan`): the decision is a hash
of the seed, the request's body and how many times that body was received before (a retry of the same call is a new
draw). So it does not depend on how concurrent runs' requests interleave, and two batches of the same runs get the
same faults. Every request's fate is recorded (:attr:`FlakyServer.served`, :attr:`FlakyServer.injected`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import select
import socket
import sys
import threading
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.faults.answers import Answer, Chat, off_schema, read_chat, schema_answer
from tests.faults.plan import Fault, FaultPlan

__all__ = ["Canned", "FlakyServer", "Served"]


@dataclass(frozen=True, kw_only=True)
class Canned:
    """A reply sent as it is, for a hostile answer no :class:`Fault` describes (recorded as ``"canned"``)."""

    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Served:
    """One request and what the server did with it (``kind``: ``"ok"`` or a :class:`Fault`), and why: ``"draw"``
    (the fault plan), ``"forced"`` (:meth:`FlakyServer.force`) or ``"outage"``."""

    kind: Fault | str
    agent: str
    stream: bool
    cause: str = "draw"


@dataclass
class _Plan:
    kind: Fault | str | Canned
    chat: Chat
    variant: int
    message: dict[str, Any] = field(default_factory=dict)


class FlakyServer:
    """The server; use it as a context manager. ``base_url`` is ``http://127.0.0.1:<port>/v1``.

    Args:
        rate: the share of requests answered with a fault (0 to 1).
        seed: makes the choice of faulty requests (and of their kinds) reproducible.
        faults: the kinds to inject, with weights (a sequence: equal weights); default every :class:`Fault`.
        answer: makes healthy answers; default :func:`schema_answer`.
        usage: ``(prompt_tokens, completion_tokens)`` reported for every healthy answer.
        retry_after_ms: the wait a :attr:`Fault.RATE_LIMITED` answer asks for.
        trickle_gap: seconds between the bytes of a :attr:`Fault.TRICKLE` answer (keep it under the client's
            timeout).
    """

    def __init__(
        self,
        *,
        rate: float = 0.0,
        seed: int = 0,
        faults: Mapping[Fault, float] | Sequence[Fault] = tuple(Fault),
        answer: Answer | None = None,
        usage: tuple[int, int] = (80, 20),
        retry_after_ms: int = 20,
        trickle_gap: float = 0.1,
    ) -> None:
        self.plan = FaultPlan(rate=rate, seed=seed, faults=faults)
        self.answer = answer or schema_answer
        self.usage = usage
        self.retry_after_ms = retry_after_ms
        self.trickle_gap = trickle_gap
        self.served: list[Served] = []
        self._forced: deque[tuple[Fault | str | Canned, int | None]] = deque()
        self._outage: Fault | None = None
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self.connections = 0
        """Connections accepted so far."""
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.base_url = f"{self.url}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    # -- control ---------------------------------------------------------------------------------------------

    def force(self, *kinds: Fault | str | Canned, variant: int | None = None) -> None:
        """Answer the next requests with these kinds (``"ok"`` for a healthy answer), in order, before any draw;
        ``variant`` picks among a fault's forms (which body, which wrong content), else the draw does."""
        with self._lock:
            self._forced.extend((kind, variant) for kind in kinds)

    def outage(self, kind: Fault = Fault.UNAVAILABLE) -> None:
        """Answer every request with ``kind`` until :meth:`heal` (forced answers come first, an outage before the
        draw)."""
        with self._lock:
            self._outage = kind

    def heal(self) -> None:
        """End an :meth:`outage`."""
        with self._lock:
            self._outage = None

    @property
    def injected(self) -> Counter[Fault]:
        """Faults answered so far, by kind."""
        with self._lock:
            return Counter(Fault(s.kind) for s in self.served if s.kind not in ("ok", "canned"))

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.served)

    def count(self, kind: Fault | str) -> int:
        with self._lock:
            return sum(1 for s in self.served if s.kind == kind)

    # -- life ------------------------------------------------------------------------------------------------

    def __enter__(self) -> FlakyServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:  # keep-alive connections whose handler threads wait for a next request
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    # -- deciding --------------------------------------------------------------------------------------------

    def _plan(self, raw: bytes) -> _Plan:
        chat = read_chat(raw)
        digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
        with self._lock:
            seen = self._seen[digest]
            self._seen[digest] += 1
            forced = self._forced.popleft() if self._forced else None
            outage = self._outage
        kind: Fault | str | Canned
        kind, variant = self.plan.draw(raw, seen)
        cause = "draw"
        if forced is not None:
            kind, variant, cause = forced[0], variant if forced[1] is None else forced[1], "forced"
        elif outage is not None:
            kind, cause = outage, "outage"
        if kind == Fault.OFF_SCHEMA and chat.schema is None:
            kind = "ok"  # any text fits an agent that asked for text
        plan = _Plan(kind=kind, chat=chat, variant=variant)
        if kind == "ok":
            plan.message = self.answer(chat)
        elif kind == Fault.OFF_SCHEMA:
            plan.message = {"content": off_schema(chat.schema or {}, variant)}
        with self._lock:
            recorded = "canned" if isinstance(kind, Canned) else kind
            self.served.append(Served(kind=recorded, agent=chat.agent, stream=chat.stream, cause=cause))
        return plan

    def _completion(self, message: dict[str, Any]) -> dict[str, Any]:
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        prompt, completion = self.usage
        return {
            "id": "chatcmpl-flaky",
            "object": "chat.completion",
            "created": 1,
            "model": "flaky",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    def _chunks(self, message: dict[str, Any]) -> list[str]:
        """A healthy streamed answer: the text in pieces, tool calls in fragments, finish, usage, [DONE]."""
        events = [_chunk({"role": "assistant", "content": ""})]
        text = str(message.get("content") or "")
        for start in range(0, len(text), 16):
            events.append(_chunk({"content": text[start : start + 16]}))
        for index, call in enumerate(message.get("tool_calls") or ()):
            function = call["function"]
            head = {"index": index, "id": call["id"], "type": "function"}
            events.append(_chunk({"tool_calls": [{**head, "function": {"name": function["name"], "arguments": ""}}]}))
            arguments = function["arguments"]
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                events.append(_chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        events.append(_chunk({}, finish="tool_calls" if message.get("tool_calls") else "stop"))
        prompt, completion = self.usage
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        events.append(_sse({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage}))
        events.append("data: [DONE]\n\n")
        return events

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
            return


# -- faults ----------------------------------------------------------------------------------------------------


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


_RATE_LIMITED = "Rate limit reached for requests."
_REFUSALS: dict[Fault, tuple[int, Any]] = {
    Fault.RATE_LIMITED_BARE: (429, _error(_RATE_LIMITED, "requests")),
    Fault.SERVER_ERROR: (500, _error("The server had an error while processing your request.", "server_error")),
    Fault.BAD_GATEWAY: (502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"),
    Fault.UNAVAILABLE: (503, "upstream connect error or disconnect/reset before headers"),
    Fault.BAD_REQUEST: (400, _error("This model's maximum context length is 8192 tokens.", "invalid_request_error")),
}
"""Faults that are a status and a body."""
_CHUNKED = {"Transfer-Encoding": "chunked"}

_NOT_JSON = (
    "<html><body><h1>It works!</h1></body></html>",
    '{"id": "chatcmpl-1", "choices": [{"index": 0, "message": ',
    "[" * 100_000 + "]" * 100_000,  # JSON too deep for any parser's stack
)
_MISSING = (
    {"id": "chatcmpl-1", "object": "chat.completion", "choices": []},
    {"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop"}]},
    {"object": "list", "data": [{"id": "m", "object": "model"}]},
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": 42}}]},
)


def _sse(data: Any) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _sse({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "flaky", "choices": [choice]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's 5 drops the connections of a burst of concurrent runs: timeouts that no fault caused
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError | OSError):  # a client that hung up first
            super().handle_error(request, client_address)


def _handler(server: FlakyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)
                server.connections += 1

        def finish(self) -> None:
            with server._lock:
                server._connections.discard(self.connection)
            super().finish()

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            plan = server._plan(raw)
            kind = plan.kind
            if isinstance(kind, Canned):
                self._send(kind.status, kind.body, kind.headers)
            elif kind == "ok" or kind == Fault.OFF_SCHEMA:
                self._answer(plan.message, plan.chat.stream)
            elif kind in _REFUSALS:
                status, body = _REFUSALS[Fault(kind)]
                self._send(status, body)
            elif kind == Fault.RATE_LIMITED:
                wait = server.retry_after_ms
                headers = {"retry-after-ms": str(wait), "Retry-After": str(max(1, wait // 1000))}
                self._send(429, _error(f"{_RATE_LIMITED} Please try again in {wait}ms.", "requests"), headers)
            else:
                self.close_connection = True  # what follows leaves the connection unusable
                getattr(self, f"_{kind}")(plan)

        def _answer(self, message: dict[str, Any], stream: bool) -> None:
            if stream:
                self._events(server._chunks(message))
            else:
                self._send(200, server._completion(message))

        def _hang(self, plan: _Plan) -> None:
            if plan.chat.stream:
                self._events(server._chunks({"content": "Thinking about it"})[:2], end=False)
            server._wait_for_hang_up(self.connection)

        def _trickle(self, plan: _Plan) -> None:
            self._head(200, "text/event-stream" if plan.chat.stream else "application/json", _CHUNKED)
            piece = b": keep-alive\n\n" if plan.chat.stream else b" "
            while not server._stopping.wait(server.trickle_gap):
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return

        def _drop(self, plan: _Plan) -> None:
            pass  # not a byte: the connection closes

        def _truncated(self, plan: _Plan) -> None:
            if plan.chat.stream:
                self._events(server._chunks({"content": "Half of an answer that"})[:2], end=False)
                return
            data = json.dumps(server._completion({"content": "cut"})).encode()
            self._head(200, "application/json", {"Content-Length": str(len(data))})
            self.wfile.write(data[: len(data) // 2])

        def _not_json(self, plan: _Plan) -> None:
            body = _NOT_JSON[plan.variant % len(_NOT_JSON)]
            if plan.chat.stream:
                self._events([_chunk({"content": "ok"}), _sse(body.replace("\n", " "))])
            else:
                self._send(200, body)

        def _missing_fields(self, plan: _Plan) -> None:
            if plan.chat.stream:  # no choices, no finish, no [DONE]
                self._events([_sse({"id": "c", "object": "chat.completion.chunk"})] * 2)
            else:
                self._send(200, _MISSING[plan.variant % len(_MISSING)])

        def _head(self, status: int, kind: str, headers: Mapping[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

        def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
            if isinstance(body, str):
                data, kind = body.encode(), "text/html" if body.startswith("<") else "text/plain"
            else:
                data, kind = json.dumps(body).encode(), "application/json"
            self._head(status, kind, {"Content-Length": str(len(data)), **(headers or {})})
            self.wfile.write(data)

        def _events(self, events: Sequence[str], *, end: bool = True) -> None:
            self._head(200, "text/event-stream", {"Cache-Control": "no-cache", **_CHUNKED})
            for event in events:
                data = event.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if end:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return Handler
