"""``ReplayModel``: answers from a recorded run's journal, so any real run becomes an offline regression test.

Every agent call to a model is journaled as ``model_called`` (task id, agent, the call's index within the task,
the answer). A replay runs the same workflow on the same input: orchestration is deterministic, so the same tasks
get the same ids, and each agent's n-th call in a task gets the answer recorded for that task, agent and n.
When a task ran more than once in the recorded run (it failed and was resumed, or it waited for a person), the
answer of its last execution is served, the one the run's outcome came from. Tools still run: only models are
replayed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podium.errors import ConfigError, ModelPermanentError
from podium.journal import decode
from podium.journal._events import ModelCalled
from podium.models._types import Message, ModelRequest, ModelResponse, Usage
from podium.runtime._context import context

__all__ = ["ReplayModel"]


class ReplayModel:
    """A model that answers each call with the answer recorded for the same task, agent and call index.

    Args:
        entries: the recorded run's ``model_called`` events, in journal order (other events are ignored).
        name: the model's name.
    """

    def __init__(self, entries: Iterable[Any], *, name: str = "replay") -> None:
        self.name = name
        self._answers: dict[tuple[str, str, int], ModelCalled] = {}
        for event in entries:
            if isinstance(event, ModelCalled):
                self._answers[(event.task_id, event.agent, event.index)] = event  # the last execution wins
        self._calls: dict[tuple[str, str], tuple[object, int]] = {}
        self.served = 0

    def __len__(self) -> int:
        return len(self._answers)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        try:
            ctx = context()
        except ConfigError:
            raise ModelPermanentError("a replay answers only inside a running step", model=self.name) from None
        agent = request.agent or ""
        index = self._next_index(ctx, ctx.task_id, agent)
        recorded = self._answers.get((ctx.task_id, agent, index))
        if recorded is None:
            raise ModelPermanentError(
                f"no recorded answer for task {ctx.task_id} agent {agent!r} call {index}; the replayed run "
                f"took another path than the recorded one",
                model=self.name,
            )
        message = decode(recorded.message)
        if not isinstance(message, Message):
            raise ModelPermanentError(f"the journal's answer for task {ctx.task_id} is not a message", model=self.name)
        self.served += 1
        if request.on_token is not None and message.content:
            request.on_token(message.content)
        usage = Usage(input_tokens=recorded.input_tokens, output_tokens=recorded.output_tokens)  # nothing was paid
        finish = "tool_calls" if message.tool_calls else "stop"
        return ModelResponse(message=message, usage=usage, model=self.name, finish_reason=finish)

    def _next_index(self, execution: object, task_id: str, agent: str) -> int:
        """The index of this call within its task's execution (a new execution of a task counts from 0)."""
        key = (task_id, agent)
        seen, count = self._calls.get(key, (None, 0))
        if seen is not execution:
            count = 0
        self._calls[key] = (execution, count + 1)
        return count
