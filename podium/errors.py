"""Every error podium raises on purpose.

One base, :class:`PodiumError`, so ``except PodiumError`` catches podium's complaints and nothing else::

    PodiumError
    ├── ConfigError                  a value given to podium is out of range or misused (also a ValueError)
    ├── WorkflowDefinitionError      the graph is wrong; raised by ``Graph.build()``, before anything runs
    │   └── StateSchemaError         the state type cannot be used (unknown type, bad merge rule)
    ├── StepError                    a step broke its contract while a run was going
    │   ├── StepFailedError          the step raised; ``__cause__`` is the original exception
    │   ├── StepOutputError          the step returned something podium cannot apply (wrong type, unknown field)
    │   ├── UpdateConflictError      parallel steps wrote one field that has no merge rule
    │   └── RoutingError             a router or a step chose a target that does not exist or was not declared
    ├── JoinStalledError             the run ran out of work while a join still waited for some of its sources
    └── RunIncompleteError           ``RunResult.unwrap()`` on a run that was limited or cancelled

Control-flow signals are deliberately *not* ``PodiumError``: cancellation is ``asyncio.CancelledError``, and a
run that hits a limit is not an error at all but a run that ends with status ``limited``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "JoinStalledError",
    "PodiumError",
    "RoutingError",
    "RunIncompleteError",
    "StateSchemaError",
    "StepError",
    "StepFailedError",
    "StepOutputError",
    "UpdateConflictError",
    "WorkflowDefinitionError",
]


class PodiumError(Exception):
    """Base of every error podium raises on purpose."""


class ConfigError(PodiumError, ValueError):
    """A value given to podium is out of range, or an API was used where it cannot work."""


class WorkflowDefinitionError(PodiumError):
    """The workflow is wrong as written; found by ``Graph.build()`` before any run starts.

    Attributes:
        workflow: name of the workflow being built.
        where: the step, edge or field the problem is at.
    """

    def __init__(self, message: str, *, workflow: str, where: str | None = None) -> None:
        self.workflow = workflow
        self.where = where
        at = f" at {where}" if where else ""
        super().__init__(f"workflow {workflow!r}{at}: {message}")


class StateSchemaError(WorkflowDefinitionError):
    """The state type cannot be used: not a pydantic model or dataclass, or a merge rule is malformed."""


class StepError(PodiumError):
    """A step broke its contract during a run.

    Attributes:
        run_id: the run the step belongs to.
        step: the step's name (its path, for steps inside sub-workflows).
        attempt: which attempt of the step failed, starting at 1.
    """

    def __init__(self, message: str, *, run_id: str, step: str, attempt: int = 1) -> None:
        self.run_id = run_id
        self.step = step
        self.attempt = attempt
        super().__init__(f"step {step!r} (run {run_id}, attempt {attempt}): {message}")


class StepFailedError(StepError):
    """The step raised an exception; the original one is ``__cause__``."""


class StepOutputError(StepError):
    """The step returned a value podium cannot apply to the state."""


class UpdateConflictError(StepError):
    """Two steps of one superstep wrote the same field, and that field has no merge rule.

    Attributes:
        field: the state field both wrote.
        writers: the tasks that wrote it, in task order (``step@task_id`` for the tasks of a dynamic fan-out).
    """

    def __init__(self, *, run_id: str, field: str, writers: tuple[str, ...], step: str | None = None) -> None:
        self.field = field
        self.writers = writers
        names = ", ".join(repr(w) for w in writers)
        super().__init__(
            f"field {field!r} was written by {names} in the same superstep and has no merge rule; "
            f"declare one, e.g. Annotated[..., reducers.append], or make the steps write different fields",
            run_id=run_id,
            step=step or writers[-1],
        )


class RoutingError(StepError):
    """A step or router chose a next step that does not exist or that it did not declare."""


class JoinStalledError(PodiumError):
    """The run has nothing left to do, yet a join is still waiting for some of its sources.

    Attributes:
        run_id: the run.
        join: the join's target step.
        waiting_for: the sources that never arrived.
    """

    def __init__(self, *, run_id: str, join: str, waiting_for: tuple[str, ...]) -> None:
        self.run_id = run_id
        self.join = join
        self.waiting_for = waiting_for
        super().__init__(
            f"run {run_id}: join into {join!r} can never fire; it still waits for {list(waiting_for)} "
            f"and no step is left that could reach them"
        )


class RunIncompleteError(PodiumError):
    """``RunResult.unwrap()`` was called on a run that ended without completing (limited or cancelled).

    Attributes:
        run_id: the run.
        status: ``"limited"`` or ``"cancelled"``.
        reason: why it ended.
    """

    def __init__(self, *, run_id: str, status: str, reason: str) -> None:
        self.run_id = run_id
        self.status = status
        self.reason = reason
        super().__init__(f"run {run_id} ended {status}: {reason}")
