"""Triggers: events outside a run that start runs, each event at most once.

::

    import os

    from podium.triggers import Schedule, WatchFolder, Webhook, serve

    triggers = [
        Schedule(cron="0 7 * * MON-FRI", name="morning", timezone="Europe/Berlin"),
        WatchFolder(path="inbox", name="inbox", pattern="*.pdf"),
        Webhook(path="/hooks/tickets", name="tickets", port=8080, secret=os.environ["TICKETS_SECRET"]),
    ]
    await serve(workflow, triggers, store="sqlite:///podium.db", stop=stop_event)

(or ``triggers:`` in a crew file and ``podium serve crew.yaml``).

Each trigger turns what it sees into a :class:`TriggerEvent`: a payload (the run's input, or what ``input=``
makes of it) and an idempotency key (a schedule's due time, a file's name and content hash, a webhook's
``Idempotency-Key`` header or body hash). The run's id is derived from the workflow, the trigger and the key
(:func:`run_id_for`), and the store creates a run atomically only if no run has that id: one event never starts
two runs, whether it is seen twice by one process, by several processes sharing a store, or again after a
restart. The event is journaled with the run (``trigger_fired``), so ``podium show`` tells what started it.

Deduplication lasts as long as the run is kept: after ``store.delete_runs(...)`` removes it, the same event would
start a new run.

Inside a run, steps emit typed events and steps or agents subscribe to them: see ``Graph.on`` and
``event_driven`` (and the ``events`` flow of crew files).
"""

from podium.triggers._clock import SYSTEM_CLOCK, Clock, SystemClock
from podium.triggers._cron import Cron
from podium.triggers._folder import WatchFolder
from podium.triggers._launch import Fired, InputMap, Launcher, TriggerEvent, run_id_for
from podium.triggers._schedule import Schedule
from podium.triggers._serve import Trigger, TriggerHooks, serve
from podium.triggers._webhook import Webhook

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "Cron",
    "Fired",
    "InputMap",
    "Launcher",
    "Schedule",
    "SystemClock",
    "Trigger",
    "TriggerEvent",
    "TriggerHooks",
    "WatchFolder",
    "Webhook",
    "run_id_for",
    "serve",
]
