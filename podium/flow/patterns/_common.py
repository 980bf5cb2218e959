"""What the pattern builders share: the conversation state of agent teams, and adapters over step-likes.

The team patterns (supervisor, hierarchical, handoff, debate, vote, planner) run over a :class:`Conversation`:
the task, an append-only list of :class:`Turn` records (who said what, in which round) and the result. Each
member is a callable that receives the conversation (and, where the pattern sends one, an item such as an
instruction or a subtask) and returns what it has to say; the pattern turns that into a turn. The graph
patterns (sequential, parallel, loop, event-driven) run over the user's own state type instead.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, ConfigDict

from podium.flow._graph import Graph
from podium.flow._reducers import append
from podium.flow._step import StepSpec, arity_of, is_async_callable
from podium.flow._workflow import Workflow
from podium.runtime._progress import progress_key

__all__ = ["Conversation", "StepLike", "Turn", "add_member", "describe_failure", "name_of"]

StepLike: TypeAlias = Callable[..., Any] | Workflow[Any] | StepSpec
"""What a pattern accepts as a step: a callable, a workflow, or a ``step(...)`` spec."""


class Turn(BaseModel):
    """One contribution to a conversation."""

    model_config = ConfigDict(frozen=True)

    speaker: str
    content: Any = None
    round: int = 0
    kind: str = "message"
    """``message``, ``route``, ``handoff``, ``ballot``, ``plan``, ``verdict`` or ``error``."""
    about: Any = None
    """What the turn answers, when it answers an item: a subtask, an instruction, the candidates of a tie."""

    def __progress__(self) -> dict[str, Any]:
        """What the turn says, for no-progress detection (``Limits.max_repeats``): all but its round."""
        return {"speaker": self.speaker, "kind": self.kind, "content": self.content, "about": self.about}


class Conversation(BaseModel):
    """The state of the team patterns.

    Attributes:
        task: what the team was asked (the run's input when it is not a mapping).
        turns: every contribution, in task order.
        round: the current round (supervisor decisions, debate rounds, handoffs).
        result: the team's answer; the workflow's output.
    """

    task: Any = None
    turns: Annotated[list[Turn], append] = []
    round: int = 0
    result: Any = None

    def __progress__(self) -> dict[str, Any]:
        """What counts as progress (``Limits.max_repeats``): the task, the result, and each distinct turn once (a
        turn that repeats one said before adds nothing), not the round: a counter moves whatever happens."""
        said = dict.fromkeys(_key_of(turn) for turn in self.turns)  # each turn serialized once, ever
        return {"task": self.task, "said": list(said), "result": self.result}

    def by(self, speaker: str) -> list[Turn]:
        """The turns of one speaker."""
        return [t for t in self.turns if t.speaker == speaker]

    def last(self, speaker: str | None = None) -> Turn | None:
        """The latest turn, of anyone or of ``speaker``."""
        for turn in reversed(self.turns):
            if speaker is None or turn.speaker == speaker:
                return turn
        return None


_TURN_KEYS: dict[int, str] = {}
"""Each turn's progress digest by the turn's id, computed once (and forgotten with the turn): a conversation's view
lists them rather than re-serializing every turn at every superstep, which made long loops quadratic. By id, not
by value: hashing a turn's value costs about what serializing it does."""


def _key_of(turn: Turn) -> str:
    key = _TURN_KEYS.get(id(turn))
    if key is None:
        key = _TURN_KEYS[id(turn)] = progress_key(turn).hex()
        weakref.finalize(turn, _TURN_KEYS.pop, id(turn), None)
    return key


def name_of(step: StepLike) -> str:
    """The name a step-like goes by: its spec's name, a workflow's name, or a function's ``__name__``."""
    if isinstance(step, StepSpec):
        return step.name or name_of(step.fn)
    if isinstance(step, Workflow):
        return step.name
    name = getattr(step, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise TypeError(f"cannot tell the name of {step!r}; wrap it as step(fn, name='...')")
    return name


def named(steps: Sequence[StepLike] | Mapping[str, StepLike]) -> dict[str, StepLike]:
    """Members by name, from a mapping or from a sequence of named step-likes."""
    if isinstance(steps, Mapping):
        return dict(steps)
    members: dict[str, StepLike] = {}
    for member in steps:
        members[name_of(member)] = member
    return members


def add_member(
    graph: Graph[Any],
    name: str,
    member: StepLike,
    turn: Callable[[Any, Any, Any], Any],
    **options: Any,
) -> None:
    """Add ``member`` to ``graph`` as step ``name``; ``turn(state, item, answer)`` makes its update.

    A callable member keeps its own signature (``()``, ``(state)`` or ``(state, item)``) and sync members run
    in a thread. A workflow member runs as a sub-workflow whose input is the item (or the conversation's task)
    and whose output becomes the answer.
    """
    if isinstance(member, StepSpec):
        options = {**member.options, **options}
        member = member.fn
    _adapt_recovery(options, turn)
    if isinstance(member, Workflow):
        child = member

        def child_input(state: Any, item: Any = None) -> Any:
            return child.input_state(item if item is not None else getattr(state, "task", None))

        def child_output(final: Any, state: Any, item: Any) -> Any:
            return turn(state, item, child.output_of(final))

        graph.add(child, name=name, input=child_input, output=child_output, **options)
        return
    graph.add(_adapt(member, turn), name=name, **options)


def _adapt_recovery(options: dict[str, Any], turn: Callable[[Any, Any, Any], Any]) -> None:
    """A member's fallbacks answer like the member (their answers become turns too), and so does a person it
    escalates to."""
    from podium.runtime._escalate import Escalate

    if options.get("fallbacks"):
        options["fallbacks"] = [_adapt(fallback, turn) for fallback in options["fallbacks"]]
    handler = options.get("on_error")
    if isinstance(handler, Escalate) and handler.answer is None:
        options["on_error"] = handler.answered_by(turn)


def _adapt(fn: Callable[..., Any], turn: Callable[[Any, Any, Any], Any]) -> Callable[..., Any]:
    """Wrap a member callable so its answer becomes ``turn(state, item, answer)``.

    The wrapper always accepts an item, and passes the member only the arguments its signature takes.
    """
    arity = arity_of(fn)
    is_async = is_async_callable(fn)

    async def member(state: Any, item: Any = None) -> Any:
        args = (state, item)[:arity]
        answer = await fn(*args) if is_async else await asyncio.to_thread(fn, *args)
        return turn(state, item, answer)

    member.__name__ = getattr(fn, "__name__", "member")
    member.__doc__ = getattr(fn, "__doc__", None)
    return member


def describe_failure(error: BaseException) -> str:
    """One line for a failed member's turn: the original exception, or podium's message when it says more."""
    cause = error.__cause__
    if cause is None or not str(cause):
        return str(error)
    return f"{type(cause).__name__}: {cause}"
