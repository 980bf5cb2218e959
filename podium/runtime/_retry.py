"""Retry policies: how a failing step, agent or model call is tried again, and which failures are worth it.

A failure is **transient** when trying again may help: a timeout, a dropped or refused connection, a model
server's 408/409/425/429/5xx (:class:`~podium.errors.ModelTransientError`). Everything else is **permanent**: a
model's other 4xx, an answer that still does not fit its schema after the re-asks, a step that returned the wrong
thing, a refused permission, a bug. Only transient failures are retried, unless a policy names more types.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from podium.errors import ConfigError, ModelError

__all__ = ["RetryPolicy", "is_transient", "retry_after"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Try again with exponential backoff: 1 s, 2 s, 4 s... by default, with a little jitter.

    Attributes:
        max_attempts: attempts in all, the first included (1: never retry).
        initial_interval: seconds before the second attempt.
        backoff: each further wait is this many times the one before.
        max_interval: the longest wait. A server asking (``Retry-After``) for a longer one is not retried: the
            failure goes on to the fallbacks, or fails the call, rather than stalling the run.
        jitter: up to this fraction of a wait is added or taken away, so that many runs failing together do not
            retry together. It is derived from the task and the attempt, so a replay waits the same.
        retry_on: further exception types to treat as transient (a flaky API of your own, say).
        non_retryable: exception types never retried, even when they would be transient.
    """

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = ()
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be at least 1, not {self.max_attempts}")
        if self.initial_interval < 0 or self.max_interval < 0 or self.backoff < 1 or not 0 <= self.jitter < 1:
            raise ConfigError(
                "RetryPolicy needs initial_interval >= 0, max_interval >= 0, backoff >= 1 and 0 <= jitter < 1"
            )

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether a failure of attempt number ``attempt`` (from 1) is to be tried again."""
        if attempt >= self.max_attempts or _matches(error, self.non_retryable):
            return False
        asked = retry_after(error)
        if asked is not None and asked > self.max_interval:
            return False  # the server wants a longer pause than this policy waits: let a fallback take over
        return is_transient(error) or _matches(error, self.retry_on)

    def delay(self, attempt: int, key: str, error: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt``: the backoff (jittered), or longer if the server
        asked for it (``Retry-After``). ``key`` (a task id) makes the jitter the same on a replay."""
        wait = min(self.initial_interval * self.backoff ** (attempt - 1), self.max_interval)
        if self.jitter:
            digest = hashlib.blake2b(f"{key}#{attempt}".encode(), digest_size=8).digest()
            spread = int.from_bytes(digest, "big") / 2**64 * 2 - 1  # in [-1, 1)
            wait *= 1 + self.jitter * spread
        asked = retry_after(error) if error is not None else None
        return max(wait, asked) if asked is not None else wait


def is_transient(error: BaseException) -> bool:
    """Whether trying again may help: a model's transient error, a timeout or a connection failure, found on the
    error or on what caused it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModelError):
            return current.transient
        if isinstance(current, TimeoutError | ConnectionError):
            return True
        current = current.__cause__
    return False


def retry_after(error: BaseException) -> float | None:
    """The wait a server asked for (``Retry-After``), found on the error or on what caused it."""
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, ModelError) and current.retry_after is not None:
            return current.retry_after
        current = current.__cause__
    return None


def _matches(error: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return False
        if types and isinstance(current, types):
            return True
        current = current.__cause__
    return False
