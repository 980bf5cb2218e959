"""From a trigger's event to a journaled run, exactly once per event.

Every event carries an idempotency key (a schedule's due time, a file's path and content hash, a webhook's
``Idempotency-Key`` or body hash). The run's id is derived from the workflow, the trigger's name and that key
(:func:`run_id_for`), and the run is created with the store's atomic ``create_run``, which refuses an id that
exists: so the same event seen twice (by one process or by several sharing a store, before or after a restart)
starts one run, and the second sighting is told which run that was. The event is journaled with the run, in the
same transaction: ``trigger_fired`` follows ``run_accepted`` (``podium show`` prints it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import ValidationError

from podium.errors import EncodingError, RunNotFoundError, RunStateError, TriggerError
from podium.journal._codec import encode
from podium.journal._events import TriggerFired

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow
    from podium.journal._store import Store

__all__ = ["Fired", "InputMap", "Launcher", "Source", "TriggerEvent", "run_id_for", "task_of"]

Source: TypeAlias = Literal["schedule", "folder", "webhook"]

InputMap: TypeAlias = "str | Callable[[Any], Any] | None"
"""How an event's payload becomes the run's input: None for the payload itself, a template string formatted
with the payload's fields (``"Summarize {name}"``), or ``fn(payload) -> input``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerEvent:
    """Something a trigger saw that should start a run.

    Attributes:
        trigger: the trigger's name.
        source: what kind of trigger saw it.
        key: the event's idempotency key: the same event always has the same key.
        payload: what it saw, as JSON-ready data (the due time, the file, the request's body).
    """

    trigger: str
    source: Source
    key: str
    payload: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Fired:
    """What became of an event.

    Attributes:
        event: the event.
        run_id: the run it started, or the run an earlier sighting of it started.
        created: False when the event was seen before (a duplicate): no run was started.
        status: the run's status as the store had it (``pending`` for a new one).
    """

    event: TriggerEvent
    run_id: str
    created: bool
    status: str


def run_id_for(workflow: str, trigger: str, key: str) -> str:
    """The id of the run that the event with ``key`` of ``trigger`` starts for ``workflow``: readable by the
    trigger's name, unique by a hash of all three."""
    digest = hashlib.sha256(f"{workflow}\x00{trigger}\x00{key}".encode()).hexdigest()[:32]
    return f"{trigger}-{digest}"


def task_of(mapping: InputMap, payload: Any) -> Any:
    """The run's input for ``payload`` (see :data:`InputMap`).

    Raises:
        ValueError: a template names a field the payload does not have, or the payload is not a mapping.
    """
    if mapping is None:
        return payload
    if callable(mapping):
        return mapping(payload)
    if not isinstance(payload, Mapping):
        raise ValueError(f"the input template {mapping!r} needs a JSON object, not a {type(payload).__name__}")
    try:
        return mapping.format_map(payload)
    except KeyError as exc:
        raise ValueError(
            f"the input template {mapping!r} names {exc.args[0]!r}, which the event does not have; it has "
            f"{sorted(payload)}"
        ) from None
    except (IndexError, AttributeError, ValueError) as exc:
        raise ValueError(f"the input template {mapping!r} does not fit the event: {exc}") from None


class Launcher:
    """Starts one workflow's runs from events, each at most once.

    Args:
        workflow: what the runs run.
        store: where they are journaled (and deduplicated).
        submitted: called after a new run was journaled (a worker in this process can claim it at once).
    """

    def __init__(self, workflow: Workflow[Any], store: Store, *, submitted: Callable[[], None] | None = None) -> None:
        self.workflow = workflow
        self.store = store
        self.submitted = submitted

    async def fire(self, event: TriggerEvent, input: InputMap = None) -> Fired:
        """Journal a pending run for ``event`` (with its ``trigger_fired`` record), unless one exists.

        Raises:
            TriggerError: the payload does not make an input the workflow accepts (nothing is journaled).
            JournalError: the store cannot be written (nothing is journaled; the event may be tried again).
        """
        run_id = run_id_for(self.workflow.name, event.trigger, event.key)
        try:
            state = self.workflow.input_state(task_of(input, event.payload))
        except ValidationError as exc:
            problem = _first_problem(exc)
            raise TriggerError(
                f"the event does not fit workflow {self.workflow.name!r}: {problem}",
                trigger=event.trigger,
                key=event.key,
            ) from None
        except (ValueError, TypeError) as exc:
            raise TriggerError(str(exc), trigger=event.trigger, key=event.key) from exc
        try:
            payload = encode(event.payload)
            record = TriggerFired(trigger=event.trigger, source=event.source, key=event.key, payload=payload)
            await self.workflow.submit(state, run_id=run_id, store=self.store, records=[record])
        except (EncodingError, RecursionError) as exc:  # the event itself is the problem: trying again won't help
            raise TriggerError(f"the event cannot be journaled: {exc}", trigger=event.trigger, key=event.key) from exc
        except RunStateError as refused:
            try:
                info = await self.store.get_run(run_id)
            except RunNotFoundError:  # refused for another reason than a duplicate
                raise refused from None
            return Fired(event=event, run_id=run_id, created=False, status=info.status)
        if self.submitted is not None:
            self.submitted()
        return Fired(event=event, run_id=run_id, created=True, status="pending")


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "the input"
    return f"{where}: {error['msg']}" + (f" ({len(exc.errors())} problems)" if len(exc.errors()) > 1 else "")
