"""Where sync steps run: podium's own pool of worker threads.

Not the event loop's default executor, on purpose: ``asyncio.run`` waits for that executor's threads when it
closes, so one stuck sync step would hold ``run_sync()`` past the run's deadline. A thread cannot be interrupted;
a step that outlives its run finishes in the background and its result is discarded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["run_in_thread"]

_MAX_THREADS = 64
"""Enough for a wide fan-out of sync steps that wait on I/O; threads are started only as they are needed."""

_pool: ThreadPoolExecutor | None = None


def run_in_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run ``fn(*args)`` in a worker thread with the caller's context variables (so ``podium.context()`` works)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_MAX_THREADS, thread_name_prefix="podium-step")
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return asyncio.get_running_loop().run_in_executor(_pool, call)
