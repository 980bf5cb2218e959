"""A crew file's ``triggers:`` made into :mod:`podium.triggers` objects, checked where the file can tell.

::

    triggers:
      morning:
        schedule: {cron: "0 7 * * MON-FRI", timezone: Europe/Berlin, catch_up: 3600}
        input: "Sweep the inbox ({due})"          # the run's task; without it the payload is the task
      inbox:
        folder: {path: inbox, pattern: "*.txt", settle: 2}     # relative to the crew file
      tickets:
        webhook: {path: /hooks/tickets, port: 8080, secret_env: TICKETS_SECRET}

Checked when the file is loaded: cron expressions, time zones, and the fields an ``input`` template names (a
schedule's payload has ``trigger``, ``due`` and ``cron``; a folder's ``path``, ``name``, ``size`` and ``sha256``; a
webhook's is the JSON body, so its fields are known only when a request comes). Checked when serving starts (see
:func:`secret_problems` and ``podium serve``): that watched folders exist, webhook ports are free and secrets set.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path

from podium.crew import _format as fmt
from podium.crew._yaml import Locator, Path_, did_you_mean
from podium.errors import ConfigError
from podium.triggers import Schedule, Trigger, WatchFolder, Webhook

__all__ = ["crew_triggers", "secret_problems"]

_PAYLOADS = {"schedule": ("trigger", "due", "cron"), "folder": ("path", "name", "size", "sha256")}


def crew_triggers(specs: Mapping[str, fmt.TriggerSpec], folder: Path, located: Locator) -> dict[str, Trigger]:
    """The triggers of a crew file, by name.

    Raises:
        CrewFileError: a cron expression, a time zone or an input template is wrong (pointing at it).
    """
    made: dict[str, Trigger] = {}
    for name, spec in specs.items():
        where: Path_ = ("triggers", name)
        if spec.input is not None:
            _check_template(spec, where, located)
        try:
            made[name] = _make(name, spec, folder)
        except ConfigError as exc:
            at: Path_ = (*where, _kind(spec))
            if spec.schedule is not None:
                at = (*at, "timezone" if "time zone" in str(exc) else "cron")
            raise located.error(at, str(exc)) from None
    return made


def secret_problems(specs: Mapping[str, fmt.TriggerSpec]) -> list[str]:
    """Webhooks whose ``secret_env`` names a variable that is not set (serving them would accept anyone)."""
    return [
        f"webhook {name!r}: its secret's environment variable {spec.webhook.secret_env} is not set"
        for name, spec in specs.items()
        if spec.webhook is not None and spec.webhook.secret_env and not os.environ.get(spec.webhook.secret_env)
    ]


def _make(name: str, spec: fmt.TriggerSpec, folder: Path) -> Trigger:
    if spec.schedule is not None:
        s = spec.schedule
        return Schedule(cron=s.cron, name=name, timezone=s.timezone, catch_up=s.catch_up, input=spec.input)
    if spec.folder is not None:
        f = spec.folder
        return WatchFolder(
            path=folder / f.path,
            name=name,
            pattern=f.pattern,
            recursive=f.recursive,
            settle=f.settle,
            poll=f.poll,
            input=spec.input,
        )
    assert spec.webhook is not None
    w = spec.webhook
    secret = (os.environ.get(w.secret_env) or None) if w.secret_env else None  # unset: see secret_problems
    return Webhook(
        path=w.path,
        name=name,
        host=w.host,
        port=w.port,
        secret=secret,
        secret_header=w.secret_header,
        max_body=w.max_body,
        input=spec.input,
    )


def _check_template(spec: fmt.TriggerSpec, where: Path_, located: Locator) -> None:
    assert spec.input is not None
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(spec.input) if field is not None]
    except ValueError as exc:
        raise located.error((*where, "input"), f"is not a template: {exc} (write {{{{ and }}}} for braces)") from None
    kind = _kind(spec)
    known = _PAYLOADS.get(kind)
    for field in names:
        top = field.split(".", 1)[0].split("[", 1)[0]
        if not top:
            raise located.error((*where, "input"), "name the payload's fields in the template ({name}), not {}")
        if known is not None and top not in known:
            raise located.error(
                (*where, "input"),
                f"names {top!r}, which a {kind}'s payload does not have{did_you_mean(top, known)}; "
                f"it has {list(known)}",
            )


def _kind(spec: fmt.TriggerSpec) -> str:
    return "schedule" if spec.schedule is not None else "folder" if spec.folder is not None else "webhook"
