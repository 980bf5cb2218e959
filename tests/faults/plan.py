"""Which requests a flaky server fails, and how: the kinds of fault, what a client can tell them apart by, and a
plan that picks them from a seed and the request alone (so concurrent runs get the same faults whatever order their
requests arrive in)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence

__all__ = ["PERMANENT", "TRANSIENT", "Fault", "FaultPlan", "observed"]


class Fault(enum.StrEnum):
    """What the server can do instead of answering well."""

    RATE_LIMITED = "rate_limited"
    """429 with ``retry-after-ms`` and ``Retry-After`` headers (as OpenAI sends them)."""
    RATE_LIMITED_BARE = "rate_limited_bare"
    """429 with no header saying how long to wait."""
    SERVER_ERROR = "server_error"
    """500 with OpenAI's error body."""
    BAD_GATEWAY = "bad_gateway"
    """502 with a proxy's HTML page."""
    UNAVAILABLE = "unavailable"
    """503 with a plain-text body."""
    BAD_REQUEST = "bad_request"
    """400 (the context is too long, say): the one permanent fault."""
    HANG = "hang"
    """Nothing (after the first event, when streaming) until the client hangs up: a timeout."""
    TRICKLE = "trickle"
    """Headers, then a byte (a space, or a keep-alive comment when streaming) every ``trickle_gap`` seconds, and
    never an answer: each read comes in time, the answer never does."""
    DROP = "drop"
    """The connection closed without a response."""
    TRUNCATED = "truncated"
    """Headers and part of the body (or of the stream), then the connection closed."""
    NOT_JSON = "not_json"
    """200 with a body (or a stream event) that is not JSON: HTML, JSON cut short, or JSON nested too deep to read."""
    MISSING_FIELDS = "missing_fields"
    """200 with JSON that is not a completion (no choices, no message...), or a stream that never finishes."""
    OFF_SCHEMA = "off_schema"
    """A well-formed completion whose content does not fit the request's JSON Schema (prose, an array...)."""


TRANSIENT = frozenset(Fault) - {Fault.BAD_REQUEST, Fault.OFF_SCHEMA}
"""Faults the client must classify as :class:`~podium.errors.ModelTransientError`."""
PERMANENT = frozenset({Fault.BAD_REQUEST})
"""Faults the client must classify as :class:`~podium.errors.ModelPermanentError`."""


def observed(kind: Fault) -> str:
    """What a client can tell a fault apart by (a status, a timeout, a broken connection, a malformed body); the
    journal's ``model_failed`` messages are grouped the same way by the tests."""
    return {
        Fault.RATE_LIMITED: "http-429",
        Fault.RATE_LIMITED_BARE: "http-429",
        Fault.SERVER_ERROR: "http-500",
        Fault.BAD_GATEWAY: "http-502",
        Fault.UNAVAILABLE: "http-503",
        Fault.BAD_REQUEST: "http-400",
        Fault.HANG: "timeout",
        Fault.TRICKLE: "timeout",
        Fault.DROP: "connection",
        Fault.TRUNCATED: "connection",
        Fault.NOT_JSON: "malformed",
        Fault.MISSING_FIELDS: "malformed",
        Fault.OFF_SCHEMA: "off-schema",
    }[kind]


class FaultPlan:
    """Which requests fail, and how: a pure function of the seed, the rate, the weights and the request.

    Args:
        rate: the share of requests answered with a fault (0 to 1).
        seed: makes the choice of faulty requests (and of their kinds) reproducible.
        faults: the kinds to inject, with weights (a sequence: equal weights).
    """

    def __init__(self, *, rate: float, seed: int = 0, faults: Mapping[Fault, float] | Sequence[Fault] = tuple(Fault)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], not {rate}")
        weights = dict(faults) if isinstance(faults, Mapping) else dict.fromkeys(faults, 1.0)
        self.rate = rate
        self.seed = seed
        self.kinds = [k for k, w in weights.items() if w > 0]
        total = sum(weights[k] for k in self.kinds)
        self._cumulative = [sum(weights[k] for k in self.kinds[: i + 1]) / total for i in range(len(self.kinds))]

    def draw(self, raw: bytes, seen: int = 0) -> tuple[Fault | str, int]:
        """The fate of a request whose body is ``raw``, received ``seen`` times before: ``"ok"`` or a fault, and
        which form of it (a number to pick a body or a wrong answer with)."""
        digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
        draw = hashlib.blake2b(f"{self.seed}:{digest}:{seen}".encode(), digest_size=16).digest()
        kind: Fault | str = "ok"
        if _unit(draw[:7]) < self.rate and self.kinds:
            pick = _unit(draw[7:14])
            kind = next((k for k, c in zip(self.kinds, self._cumulative, strict=True) if pick < c), self.kinds[-1])
        return kind, draw[15]


def _unit(data: bytes) -> float:
    return int.from_bytes(data, "big") / float(2 ** (8 * len(data)))
