"""Every error podium raises on purpose.

One base, :class:`PodiumError`, so ``except PodiumError`` catches podium's complaints and nothing else::

    PodiumError
    ├── ConfigError                  a value given to podium is out of range or misused (also a ValueError)
    │   └── CrewFileError            a crew file or SOUL.md is malformed: file, line, column and field
    ├── AgentError                   an agent could not finish (no answer within its turns)
    │   └── AgentOutputError         its answer did not fit the output schema after re-asking: agent, field, value
    ├── WorkflowDefinitionError      the graph is wrong; raised by ``Graph.build()``, before anything runs
    │   └── StateSchemaError         the state type cannot be used (unknown type, bad merge rule)
    ├── StepError                    a step broke its contract while a run was going
    │   ├── StepFailedError          the step raised; ``__cause__`` is the original exception
    │   ├── StepOutputError          the step returned something podium cannot apply (wrong type, unknown field)
    │   ├── UpdateConflictError      parallel steps wrote one field that has no merge rule
    │   └── RoutingError             a router or a step chose a target that does not exist or was not declared
    ├── JoinStalledError             the run ran out of work while a join still waited for some of its sources
    ├── RunIncompleteError           ``RunResult.unwrap()`` on a run that was limited or cancelled
    ├── TriggerError                 a trigger's event cannot start a run (its payload does not fit): trigger, key
    ├── JournalError                 the journal cannot do what was asked; nothing was written
    │   ├── StoreError               the store cannot be used: it does not connect, or is not a podium journal
    │   ├── RunNotFoundError         no run has that id in this store
    │   ├── RunStateError            the run cannot do that now (resume a completed run, claim an owned one)
    │   ├── LeaseLostError           another process took the run over; this one must stop writing to it
    │   ├── JournalMismatchError     the workflow no longer matches the journal it is resumed from
    │   ├── EncodingError            a value cannot be written to the journal (not JSON, model or dataclass)
    │   └── InterruptError           an answer names no pending question, repeats one, or does not fit it
    ├── KnowledgeError               the knowledge base cannot do what was asked (no such record, a bad source)
    │   └── KnowledgeAccessError     an agent read or wrote a namespace its access does not allow
    └── ModelError                   a model call failed; ``transient`` says whether trying again may help
        ├── ModelTransientError      timeout, 429, 5xx, a dropped connection (``retry_after`` when the server said)
        └── ModelPermanentError      another 4xx, a refused request, an unknown model: trying again will not help

Control-flow signals are deliberately *not* ``PodiumError``: cancellation is ``asyncio.CancelledError``, and a
run that hits a limit is not an error at all but a run that ends with status ``limited``.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AgentOutputError",
    "ConfigError",
    "CrewFileError",
    "EncodingError",
    "InterruptError",
    "JoinStalledError",
    "JournalError",
    "JournalMismatchError",
    "KnowledgeAccessError",
    "KnowledgeError",
    "LeaseLostError",
    "ModelError",
    "ModelPermanentError",
    "ModelTransientError",
    "PodiumError",
    "RoutingError",
    "RunIncompleteError",
    "RunNotFoundError",
    "RunStateError",
    "StateSchemaError",
    "StepError",
    "StepFailedError",
    "StepOutputError",
    "StoreError",
    "TriggerError",
    "UpdateConflictError",
    "WorkflowDefinitionError",
]


class PodiumError(Exception):
    """Base of every error podium raises on purpose."""


class ConfigError(PodiumError, ValueError):
    """A value given to podium is out of range, or an API was used where it cannot work."""


class CrewFileError(ConfigError):
    """A crew file or SOUL.md is malformed.

    Attributes:
        path: the file.
        line: the line (from 1), when known.
        column: the column (from 1), when known.
        field: the field, when known (``agents.writer.tools``).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.field = field
        where = path + (f":{line}" if line else "") + (f":{column}" if line and column else "")
        subject = f"field {field!r}: " if field else ""
        super().__init__(f"{where}: {subject}{message}")


class AgentError(PodiumError):
    """An agent could not finish. Attributes: ``agent``."""

    def __init__(self, message: str, *, agent: str) -> None:
        self.agent = agent
        super().__init__(f"agent {agent!r}: {message}")


class AgentOutputError(AgentError):
    """The agent's answer did not fit its output schema, even after re-asking.

    Attributes:
        agent: the agent.
        field: where in the answer the problem is (``"title"``, ``"items.2.score"``, or ``"answer"``).
        value: the offending value (or the raw text, when it was not JSON at all).
        attempts: how many answers were tried.
    """

    def __init__(self, *, agent: str, field: str, value: object, problem: str, attempts: int) -> None:
        self.field = field
        self.value = value
        self.attempts = attempts
        shown = repr(value)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        super().__init__(f"answer field {field!r} got {shown}: {problem} (after {attempts} attempts)", agent=agent)


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


class TriggerError(PodiumError):
    """An event a trigger saw cannot start a run: its payload does not fit the workflow's input. Nothing was
    journaled; the same event will be refused again, so fix the trigger's ``input`` or the sender.

    Attributes:
        trigger: the trigger's name.
        key: the event's idempotency key.
    """

    def __init__(self, message: str, *, trigger: str, key: str) -> None:
        self.trigger = trigger
        self.key = key
        super().__init__(f"trigger {trigger!r}: {message}")


class JournalError(PodiumError):
    """The journal cannot do what was asked. Whatever raised this wrote nothing."""


class StoreError(JournalError):
    """The store cannot be used: its URL does not connect, or its file or database is not a podium journal.

    Attributes:
        url: the store's URL or path (passwords removed).
    """

    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")


class RunNotFoundError(JournalError):
    """No run with this id is in the store."""

    def __init__(self, run_id: str, *, url: str = "") -> None:
        self.run_id = run_id
        where = f" in {url}" if url else ""
        super().__init__(f"no run {run_id!r}{where}; 'podium runs' lists the runs it has")


class RunStateError(JournalError):
    """The run is in a state that does not allow this (resuming a completed run, claiming an owned one).

    Attributes:
        run_id: the run.
        status: its status.
    """

    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"run {run_id} ({status}): {message}")


class LeaseLostError(JournalError):
    """Another process owns the run now (this one's lease ran out); this process stopped working on it."""

    def __init__(self, *, run_id: str, owner: str) -> None:
        self.run_id = run_id
        self.owner = owner
        super().__init__(f"run {run_id}: worker {owner} no longer holds its lease; another worker took it over")


class JournalMismatchError(JournalError):
    """Resuming replayed a journal that the workflow's code no longer matches (a step renamed, a route changed).

    Attributes:
        run_id: the run.
        task_id: where the journal and the workflow part ways.
    """

    def __init__(self, message: str, *, run_id: str, task_id: str) -> None:
        self.run_id = run_id
        self.task_id = task_id
        super().__init__(f"run {run_id}, task {task_id}: {message}; resume it with the workflow version that began it")


class EncodingError(JournalError):
    """A value cannot be journaled: use JSON values, pydantic models, dataclasses, enums, dates, UUIDs or bytes."""


class InterruptError(JournalError):
    """An answer names no pending question, repeats one already answered, or does not fit its schema.

    Attributes:
        run_id: the run.
        interrupt_id: the question.
    """

    def __init__(self, message: str, *, run_id: str, interrupt_id: str) -> None:
        self.run_id = run_id
        self.interrupt_id = interrupt_id
        super().__init__(f"run {run_id}, question {interrupt_id!r}: {message}")


class KnowledgeError(PodiumError):
    """The knowledge base cannot do what was asked: no such record, a source file that cannot be read, a search
    mode it is not set up for. Whatever raised this wrote nothing."""


class KnowledgeAccessError(KnowledgeError):
    """An agent tried to read or write a namespace that its :class:`~podium.knowledge.Access` does not allow.

    Through a knowledge tool this is the error message the model reads, so it says what the agent may do instead.

    Attributes:
        agent: the agent.
        action: ``"read"`` or ``"write"``.
        namespace: the namespace it asked for.
        allowed: the namespaces it may use for that action.
    """

    def __init__(self, *, agent: str, action: str, namespace: str, allowed: list[str]) -> None:
        self.agent = agent
        self.action = action
        self.namespace = namespace
        self.allowed = allowed
        verb = "read" if action == "read" else "write to"
        may = ", ".join(repr(a) for a in allowed) if allowed else "none"
        super().__init__(f"agent {agent!r} may not {verb} namespace {namespace!r}; it may {verb}: {may}")


class ModelError(PodiumError):
    """A call to a model failed.

    Attributes:
        model: the model's name (``openai:gpt-4.1-mini``).
        status: the HTTP status, if the server answered.
        transient: whether the same call may succeed if tried again.
        retry_after: seconds the server asked to wait, if it said.
    """

    transient = False

    def __init__(
        self, message: str, *, model: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.model = model
        self.status = status
        self.retry_after = retry_after
        code = f" (HTTP {status})" if status else ""
        super().__init__(f"model {model}{code}: {message}")


class ModelTransientError(ModelError):
    """Timeout, rate limit (429), server error (5xx) or a dropped connection: worth trying again."""

    transient = True


class ModelPermanentError(ModelError):
    """A request the model's server refuses for good: bad request, auth, unknown model, a context too long."""
