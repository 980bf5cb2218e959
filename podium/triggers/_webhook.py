"""``Webhook``: start a run for each JSON document POSTed to a path.

::

    POST /hooks/tickets HTTP/1.1
    Content-Type: application/json
    Idempotency-Key: ticket-4711            (optional)
    X-Podium-Secret: ...                    (when the hook has a secret)

    {"subject": "Refund", "text": "..."}

    → 202 {"run_id": "tickets-…", "status": "accepted"}       a run was journaled (it runs soon)
    → 200 {"run_id": "tickets-…", "status": "duplicate", …}   this event started that run before
    → 400 bad JSON, an empty body or a bad Idempotency-Key · 401 a missing or wrong secret · 404 no hook there
    → 405 not a POST · 413 too large · 415 not JSON · 422 the JSON does not fit the workflow's input
    → 411/501 a Transfer-Encoding (send a Content-Length)
    → 503 the journal cannot be written now, or too many connections (try again; nothing was started)

The event's key is the ``Idempotency-Key`` header if the sender gives one, else a hash of the (canonical) JSON
body: a sender that retries a request, or sends the same document twice, starts one run. The first request with a
key wins: a later one with the same key gets its run id whatever its body. The payload is the body.

The server binds ``127.0.0.1`` unless told otherwise: expose it through a reverse proxy that does TLS. Webhooks
that share a host and port share one server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from podium.errors import ConfigError, TriggerError
from podium.triggers._http import HttpError, Request, Response
from podium.triggers._launch import Fired, InputMap, TriggerEvent

__all__ = ["HookRoutes", "Webhook"]

_log = logging.getLogger(__name__)

_MAX_KEY = 255
_MAX_DEPTH = 64
"""Deeper JSON is refused: nobody's webhook sends it, and the journal's encoder recurses."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """Start a run for each JSON document POSTed to ``path``.

    Args:
        path: where it is served (``/hooks/tickets``).
        name: the trigger's name (in run ids and the journal).
        host: the address to bind; ``127.0.0.1`` (this machine only) unless you mean otherwise.
        port: the port; 0 picks a free one.
        secret: if set, requests must carry it in ``secret_header`` (its UTF-8 bytes, compared in constant time).
        secret_header: the header that carries the secret.
        max_body: the largest body accepted, in bytes.
        input: how the payload (the JSON body) becomes the run's input (see :data:`~podium.triggers.InputMap`).
    """

    source: ClassVar[str] = "webhook"

    path: str = "/hooks"
    name: str = "webhook"
    host: str = "127.0.0.1"
    port: int = 8080
    secret: str | None = field(default=None, repr=False)
    secret_header: str = "X-Podium-Secret"
    max_body: int = 1 << 20
    input: InputMap = None

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or "?" in self.path or " " in self.path:
            raise ConfigError(f"webhook {self.name!r}: path {self.path!r} must start with '/' (no query, no spaces)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"webhook {self.name!r}: port {self.port} is not between 0 and 65535")
        if self.max_body < 1:
            raise ConfigError(f"webhook {self.name!r}: max_body must be at least 1 byte")
        if self.secret == "":
            raise ConfigError(f"webhook {self.name!r}: the secret is empty")


class HookRoutes:
    """The webhooks served at one address: checks each request and fires its hook's event.

    Args:
        hooks: webhooks with one host and port, each at its own path.
        fire: ``fire(hook, event)`` starts (or finds) the event's run.

    Raises:
        ConfigError: two of them have the same path.
    """

    def __init__(self, hooks: Sequence[Webhook], fire: Callable[[Webhook, TriggerEvent], Awaitable[Fired]]) -> None:
        self.routes: dict[str, Webhook] = {}
        for hook in hooks:
            other = self.routes.setdefault(hook.path, hook)
            if other is not hook:
                raise ConfigError(
                    f"webhooks {other.name!r} and {hook.name!r} are both at {hook.host}:{hook.port}{hook.path}"
                )
        self.fire = fire

    async def handle(self, request: Request) -> Response:
        hook = self.routes.get(request.path)
        if hook is None:
            raise HttpError(404, "no webhook at this path")  # nor which paths there are: the sender may be anyone
        if request.method != "POST":
            raise HttpError(405, f"send a POST to {hook.path}, not a {request.method}", {"Allow": "POST"})
        _check_secret(hook, request)
        if len(request.body) > hook.max_body:  # the server's limit is that of its most generous hook
            raise HttpError(413, f"the body is {len(request.body)} bytes; at most {hook.max_body} are accepted")
        data = _json(request)
        event = TriggerEvent(trigger=hook.name, source="webhook", key=_key(request, data), payload=data)
        try:
            fired = await self.fire(hook, event)
        except TriggerError as exc:
            raise HttpError(422, str(exc)) from None
        except Exception:  # the details (a path, a database's message) are for the operator, not the sender
            _log.warning("webhook %r: the run could not be journaled", hook.name, exc_info=True)
            message = "the run could not be journaled now; nothing was started, try again"
            raise HttpError(503, message, {"Retry-After": "1"}) from None
        if fired.created:
            return Response(202, {"run_id": fired.run_id, "status": "accepted"})
        return Response(200, {"run_id": fired.run_id, "status": "duplicate", "run_status": fired.status})


def _check_secret(hook: Webhook, request: Request) -> None:
    if hook.secret is None:
        return
    given = request.headers.get(hook.secret_header.lower(), "").encode("latin-1")  # the bytes sent
    if not hmac.compare_digest(given, hook.secret.encode()):
        raise HttpError(401, f"the {hook.secret_header} header is missing or wrong")


def _json(request: Request) -> Any:
    kind = request.headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise HttpError(415, f"send JSON (Content-Type: application/json), not {kind}")
    if not request.body.strip():
        raise HttpError(400, "the body is empty; send a JSON document")
    try:
        data = json.loads(request.body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise HttpError(400, "the body is not UTF-8 text") from None
    except ValueError as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    except RecursionError:
        data = _TOO_DEEP
    if data is _TOO_DEEP or _deeper_than(data, _MAX_DEPTH):
        raise HttpError(400, f"the body's JSON is nested deeper than {_MAX_DEPTH} levels")
    return data


_TOO_DEEP = object()


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether arrays and objects in ``data`` nest more than ``limit`` deep (counted level by level, without
    recursing)."""
    level = [data]
    for _ in range(limit):
        level = [child for item in level for child in _children(item)]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def _children(item: Any) -> list[Any]:
    if isinstance(item, dict):
        return list(item.values())
    return item if isinstance(item, list) else []


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _key(request: Request, data: Any) -> str:
    given = request.headers.get("idempotency-key")
    if given is None:
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "body-sha256:" + hashlib.sha256(canonical.encode()).hexdigest()  # the same JSON, whatever its spacing
    if not 0 < len(given) <= _MAX_KEY or not given.isprintable():
        raise HttpError(400, f"the Idempotency-Key header must be 1 to {_MAX_KEY} printable characters")
    return f"key:{given}"
