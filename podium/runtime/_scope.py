"""Scopes: what one sub-workflow invocation with limits of its own has spent, checked against those limits.

The run keeps its own totals and each agent's (:class:`~podium.runtime._task.Run`). A sub-workflow that runs with
limits (``Graph.add(child, limits=...)`` or the child's ``build(limits=...)``) gets a :class:`Scope` for each
invocation: the scheduler registers it under the invocation's task-id prefix, and every task inside (nested
sub-workflows included) finds the innermost scope it runs in by that prefix. A model call inside is checked
against the run, the agent and every enclosing scope, and its usage is added to all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podium.models._types import Usage
from podium.runtime._limits import Budget, LimitReached, Limits

if TYPE_CHECKING:
    from collections.abc import Iterator

    from podium.runtime._task import Run

__all__ = ["Scope", "check_spent"]


def check_spent(bound: Limits | Budget, usage: Usage, calls: int, whose: str | None = None, where: str = "") -> None:
    """Raise :class:`LimitReached` if ``usage`` and ``calls`` reached one of ``bound``'s model budgets.

    Args:
        whose: who the bound belongs to (``"agent 'writer'"``); None for the run's own.
        where: said after the bound, for an agent's bound inside a sub-workflow (``" in sub-workflow ..."``).
    """
    tokens = usage.input_tokens + usage.output_tokens
    calls_made = f"{calls} call" if calls == 1 else f"{calls} calls"
    if bound.max_model_calls is not None and calls >= bound.max_model_calls:
        said = f"max_model_calls={bound.max_model_calls}"
        raise LimitReached(
            "max_model_calls",
            f"{said} reached" if whose is None else f"{whose} reached its {said}{where}: {calls_made} made",
        )
    if bound.max_tokens is not None and tokens >= bound.max_tokens:
        said = f"max_tokens={bound.max_tokens}"
        raise LimitReached(
            "max_tokens",
            f"{said} reached: {tokens} tokens used"
            if whose is None
            else f"{whose} reached its {said}{where}: {tokens} tokens used",
        )
    if bound.max_cost_usd is not None and usage.cost_usd >= bound.max_cost_usd:
        said = f"max_cost_usd={bound.max_cost_usd:g}"
        raise LimitReached(
            "max_cost_usd",
            f"{said} reached: ${usage.cost_usd:.4f} spent"
            if whose is None
            else f"{whose} reached its {said}{where}: ${usage.cost_usd:.4f} spent",
        )


def has_model_budget(bound: Limits | Budget) -> bool:
    return bound.max_tokens is not None or bound.max_cost_usd is not None or bound.max_model_calls is not None


class Scope:
    """One invocation of a sub-workflow that has limits: its steps and model spending, and its enclosing scope.

    Attributes:
        name: how reasons name it: ``sub-workflow 'team' (task 3.1)``.
        prefix: the task-id prefix of its tasks (``"3.1/"``).
        parent: the innermost scope enclosing it, if any.
    """

    __slots__ = ("agents", "calls", "limits", "name", "parent", "prefix", "run", "spent", "steps")

    def __init__(self, run: Run, limits: Limits, path: str, prefix: str, parent: Scope | None) -> None:
        self.run = run
        self.limits = limits
        self.name = f"sub-workflow {path!r} (task {prefix[:-1]})"
        self.prefix = prefix
        self.parent = parent
        self.steps = 0
        self.calls = 0
        self.spent = Usage()
        self.agents: dict[str, tuple[Usage, int]] = {}
        for task_id, agent, usage in run.spent_before:  # earlier attempts (retried, or before a crash) count
            if task_id.startswith(prefix):
                self._add(agent, usage)

    def chain(self) -> Iterator[Scope]:
        """This scope and those enclosing it, innermost first."""
        scope: Scope | None = self
        while scope is not None:
            yield scope
            scope = scope.parent

    def add_usage(self, agent: str, usage: Usage) -> None:
        """Count a model call's usage here, in every enclosing scope, and in the run's and the agent's totals."""
        for scope in self.chain():
            scope._add(agent, usage)
        self.run.add_usage(agent, usage)

    def check_budget(self, agent: str | None = None, budget: Budget | None = None) -> None:
        """Raise :class:`LimitReached` if the run, the agent or any enclosing scope has spent its budget."""
        self.run.check_budget(agent, budget)
        for scope in self.chain():
            limits = scope.limits
            if has_model_budget(limits):
                check_spent(limits, scope.spent, scope.calls, scope.name)
            named = limits.agents.get(agent) if agent is not None and limits.agents else None
            if named is not None:
                assert agent is not None
                spent, calls = scope.agents.get(agent, (Usage(), 0))
                check_spent(named, spent, calls, f"agent {agent!r}", f" in {scope.name}")

    def take_steps(self, count: int) -> None:
        """Count a superstep's ``count`` tasks here and in every enclosing scope, unless one's ``max_steps`` forbids."""
        for scope in self.chain():
            bound = scope.limits.max_steps
            if bound is not None and scope.steps + count > bound:
                raise LimitReached(
                    "max_steps",
                    f"{scope.name} reached its max_steps={bound}: {scope.steps} steps ran and {count} more were due",
                )
        for scope in self.chain():
            scope.steps += count

    def max_iterations(self) -> tuple[int, str] | None:
        """The smallest ``max_iterations`` of this scope and those enclosing it, and the scope it comes from."""
        found: tuple[int, str] | None = None
        for scope in self.chain():
            bound = scope.limits.max_iterations
            if bound is not None and (found is None or bound < found[0]):
                found = (bound, scope.name)
        return found

    def max_repeats(self) -> int | None:
        """The smallest ``max_repeats`` of this scope and those enclosing it."""
        bounds = [s.limits.max_repeats for s in self.chain() if s.limits.max_repeats is not None]
        return min(bounds) if bounds else None

    def _add(self, agent: str, usage: Usage) -> None:
        self.spent += usage
        self.calls += 1
        if agent in self.limits.agents:
            spent, calls = self.agents.get(agent, (Usage(), 0))
            self.agents[agent] = (spent + usage, calls + 1)
