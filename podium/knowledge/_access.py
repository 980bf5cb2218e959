"""Per-agent permissions: which namespaces an agent may read and write.

An :class:`Access` is written with shorthands that are resolved where the agent works: ``crew`` (the crew's
shared namespace), ``run`` (the namespace of the run it is working in), ``agent`` (its own notes), a full
``kind:name`` (``agent:researcher``: another agent's notes) or ``kind:*`` (every namespace of a kind:
``run:*`` reads what every run wrote). Writing a namespace implies reading it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from podium.errors import ConfigError, KnowledgeAccessError
from podium.knowledge._records import KINDS, Namespace

__all__ = ["Access", "Grant", "resolve_namespace"]

SHORTHANDS = ("crew", "run", "agent")


@dataclass(frozen=True, slots=True, init=False)
class Access:
    """Which namespaces one agent may read and write (see the module docstring for the entries).

    Args:
        read: namespaces it may read (search and read).
        write: namespaces it may write (and so read too).
    """

    read: tuple[str, ...]
    write: tuple[str, ...]

    def __init__(self, read: Iterable[str] = (), write: Iterable[str] = ()) -> None:
        if isinstance(read, str) or isinstance(write, str):
            raise ConfigError("Access(read=..., write=...) takes lists of namespaces, not a string")
        object.__setattr__(self, "read", tuple(read))
        object.__setattr__(self, "write", tuple(write))
        for entry in (*self.read, *self.write):
            check_entry(entry)

    @classmethod
    def default(cls) -> Access:
        """Read the crew's namespace; read and write the run's and the agent's own."""
        return cls(read=["crew"], write=["run", "agent"])

    def grant(self, *, agent: str, crew: str | None, run_id: str | None) -> Grant:
        """The concrete namespaces (and ``kind:*`` patterns) this access gives ``agent`` now.

        ``run`` gives nothing outside a run; ``crew`` needs the crew's name.

        Raises:
            ConfigError: the access names ``crew`` and ``crew`` is None.
        """
        write = _resolve(self.write, agent=agent, crew=crew, run_id=run_id)
        read = _resolve(self.read, agent=agent, crew=crew, run_id=run_id)
        return Grant(agent=agent, read=tuple(dict.fromkeys([*read, *write])), write=tuple(write))


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """An agent's resolved permissions: namespaces, or ``kind:*`` patterns."""

    agent: str
    read: tuple[str, ...]
    write: tuple[str, ...]

    def allows(self, action: Literal["read", "write"], namespace: str | Namespace) -> bool:
        text = str(namespace)
        kind = text.partition(":")[0]
        allowed = self.read if action == "read" else self.write
        return text in allowed or f"{kind}:*" in allowed

    def check(self, action: Literal["read", "write"], namespace: str | Namespace) -> None:
        """Raise :class:`KnowledgeAccessError` unless ``action`` on ``namespace`` is allowed."""
        if not self.allows(action, namespace):
            allowed = self.read if action == "read" else self.write
            raise KnowledgeAccessError(agent=self.agent, action=action, namespace=str(namespace), allowed=list(allowed))


def check_entry(entry: str) -> None:
    """Raise ConfigError unless ``entry`` is a shorthand, ``kind:name`` or ``kind:*``."""
    if entry in SHORTHANDS:
        return
    kind, colon, name = entry.partition(":")
    if colon and kind in KINDS and name == "*":
        return
    try:
        Namespace.parse(entry)
    except ConfigError:
        raise ConfigError(
            f"{entry!r} is not a namespace: use crew, run, agent (its own), kind:name (agent:researcher) or "
            f"kind:* (run:*)"
        ) from None


def resolve_namespace(entry: str | Namespace, *, agent: str | None, crew: str | None, run_id: str | None) -> str:
    """A shorthand (``crew``, ``run``, ``agent``) made concrete, or a ``kind:name`` checked.

    Raises:
        ConfigError: a shorthand with nothing to refer to (``run`` outside a run), or not a namespace.
    """
    if isinstance(entry, Namespace):
        return str(entry)
    if entry == "crew":
        if crew is None:
            raise ConfigError("'crew' names the crew's namespace, and no crew name was given")
        return str(Namespace("crew", crew))
    if entry == "run":
        if run_id is None:
            raise ConfigError("'run' names the namespace of the running run, and no run is running here")
        return str(Namespace("run", run_id))
    if entry == "agent":
        if agent is None:
            raise ConfigError("'agent' names the agent's own namespace, and no agent was given")
        return str(Namespace("agent", agent))
    return str(Namespace.parse(entry))


def _resolve(entries: Iterable[str], *, agent: str, crew: str | None, run_id: str | None) -> list[str]:
    resolved = []
    for entry in entries:
        if entry == "run" and run_id is None:
            continue  # outside a run there is no run namespace to give
        if entry.endswith(":*"):
            resolved.append(entry)
        else:
            resolved.append(resolve_namespace(entry, agent=agent, crew=crew, run_id=run_id))
    return list(dict.fromkeys(resolved))
