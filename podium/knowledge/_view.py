"""``AgentKnowledge``: the knowledge base as one agent may use it, its :class:`Access` enforced on every call.

The access is resolved where the agent works: ``run`` is the namespace of the run whose step is running (from
``podium.context()``), so one ``AgentKnowledge`` (and the tools made from it) serves every run. A denied read or
write raises :class:`~podium.errors.KnowledgeAccessError`; through a tool, that is the message the model reads.

The knowledge base may be given, or found when first needed (``kb=None``): then it is the one in the store of the
run whose step is running, which is how a crew's agents use the knowledge base of whatever store their run is in.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeAlias

from podium.errors import ConfigError, KnowledgeError
from podium.knowledge._access import Access, Grant, resolve_namespace
from podium.knowledge._base import KnowledgeBase, SearchMode
from podium.knowledge._embedder import Embedder
from podium.knowledge._records import Hit, Record
from podium.runtime._context import _current

__all__ = ["AgentKnowledge", "KnowledgeSource", "acting_as", "current", "run_knowledge"]

KnowledgeSource: TypeAlias = "KnowledgeBase | Callable[[], Awaitable[KnowledgeBase]] | None"
"""A knowledge base, a coroutine function that gives one when needed, or None: the running run's store's."""

_shared: weakref.WeakKeyDictionary[Any, dict[int, KnowledgeBase]] = weakref.WeakKeyDictionary()
"""Each store's knowledge bases, by embedder: opened once per process, dropped (and closed) with the store."""


async def run_knowledge(*, embedder: Embedder | None = None) -> KnowledgeBase:
    """The knowledge base in the store of the run whose step is running (one per store and embedder, shared).

    Raises:
        ConfigError: not inside a run's step, or the run has no store (``store=False``).
    """
    ctx = _current.get()
    if ctx is None or ctx._run is None:
        raise ConfigError("the run's knowledge base is only available inside a running step")
    journal = ctx._run.journal
    if journal is None:
        raise ConfigError(
            "this run has no store (store=False), and the knowledge base lives in the run's store; run it with one"
        )
    return await shared_knowledge(journal.store, embedder=embedder)


async def shared_knowledge(store: Any, *, embedder: Embedder | None = None) -> KnowledgeBase:
    """The knowledge base of ``store`` (and ``embedder``), opened once per process and kept open."""
    opened = _shared.setdefault(store, {})
    kb = opened.get(id(embedder))
    if kb is None:
        kb = await KnowledgeBase.open(store, embedder=embedder)
        kb = opened.setdefault(id(embedder), kb)  # another task may have opened one meanwhile: keep the first
    return kb


class AgentKnowledge:
    """What one agent may do with the knowledge base.

    Args:
        kb: the knowledge base, or None for the running run's store's (see the module docstring), or a coroutine
            function that returns one.
        agent: the agent's name (its own namespace, and the provenance of what it writes).
        access: what it may read and write; :meth:`Access.default` when None.
        crew: the crew's name, for the ``crew`` shorthand.
        k: how many hits a search returns unless asked for another number.
        mode: the search mode (default: hybrid if the knowledge base has an embedder, else keyword).
    """

    def __init__(
        self,
        kb: KnowledgeSource,
        agent: str,
        access: Access | None = None,
        *,
        crew: str | None = None,
        k: int = 5,
        mode: SearchMode | None = None,
    ) -> None:
        self._kb = kb
        self.agent = agent
        self.access = access if access is not None else Access.default()
        self.crew = crew
        self.k = k
        self.mode = mode
        if crew is None and "crew" in (*self.access.read, *self.access.write):
            raise ConfigError(f"agent {agent!r}: its access names 'crew', so give the crew's name (crew=...)")

    def __repr__(self) -> str:
        return f"<AgentKnowledge {self.agent}: read {list(self.access.read)}, write {list(self.access.write)}>"

    async def knowledge_base(self) -> KnowledgeBase:
        if isinstance(self._kb, KnowledgeBase):
            return self._kb
        if self._kb is None:
            return await run_knowledge()
        return await self._kb()

    def grant(self) -> Grant:
        """The namespaces it may read and write here and now (``run`` is the running run's)."""
        ctx = _current.get()
        return self.access.grant(agent=self.agent, crew=self.crew, run_id=ctx.run_id if ctx is not None else None)

    def namespace(self, entry: str | None, *, action: str = "write") -> str:
        """A namespace argument (a shorthand or ``kind:name``) made concrete; None: the first it may write."""
        grant = self.grant()
        if entry is None or entry == "":
            concrete = [n for n in (grant.write if action == "write" else grant.read) if not n.endswith(":*")]
            if not concrete:
                raise KnowledgeError(f"agent {self.agent!r} may {action} no namespace here")
            return concrete[0]
        ctx = _current.get()
        return resolve_namespace(
            entry.strip(), agent=self.agent, crew=self.crew, run_id=ctx.run_id if ctx is not None else None
        )

    async def search(
        self, query: str, *, namespace: str | None = None, k: int | None = None, mode: SearchMode | None = None
    ) -> list[Hit]:
        """Search what it may read, or one namespace of it.

        Raises:
            KnowledgeAccessError: ``namespace`` is one it may not read.
        """
        grant = self.grant()
        if namespace:
            chosen = self.namespace(namespace, action="read")
            grant.check("read", chosen)
            spaces: Sequence[str] = [chosen]
        else:
            spaces = grant.read
        kb = await self.knowledge_base()
        return await kb.search(query, namespaces=spaces, k=k or self.k, mode=mode or self.mode)

    async def read(self, record_id: str) -> Record:
        """A record it may read.

        Raises:
            KnowledgeError: there is no such record.
            KnowledgeAccessError: it is in a namespace it may not read.
        """
        record = await (await self.knowledge_base()).read(record_id)
        self.grant().check("read", record.namespace)
        return record

    async def write_fact(
        self, text: str, *, namespace: str | None = None, metadata: dict[str, Any] | None = None, id: str | None = None
    ) -> Record:
        """Write a fact into ``namespace`` (default: the first it may write).

        Raises:
            KnowledgeAccessError: it may not write there (or the record ``id`` is somewhere it may not write).
        """
        kb, space = await self._writable(namespace, id)
        return await kb.write_fact(space, text, metadata=metadata, id=id, agent=self.agent)

    async def write_document(
        self,
        text: str,
        *,
        title: str = "",
        namespace: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> Record:
        """Write a document (chunked); see :meth:`write_fact`."""
        kb, space = await self._writable(namespace, id)
        return await kb.write_document(
            space, text, title=title, source=source, metadata=metadata, id=id, agent=self.agent
        )

    async def _writable(self, namespace: str | None, record_id: str | None) -> tuple[KnowledgeBase, str]:
        space = self.namespace(namespace)
        grant = self.grant()
        grant.check("write", space)
        kb = await self.knowledge_base()
        if record_id is not None:  # replacing a record moves it: the agent must be allowed where it is now, too
            existing = await kb.find(record_id)
            if existing is not None:
                grant.check("write", existing.namespace)
        return kb, space


_member: ContextVar[AgentKnowledge | None] = ContextVar("podium_knowledge", default=None)


def current() -> AgentKnowledge:
    """The knowledge base as the running crew member may use it: a Python member (``call:``) of a crew whose
    ``knowledge: access:`` names it.

    Raises:
        ConfigError: no crew member with knowledge access is running here.
    """
    found = _member.get()
    if found is None:
        raise ConfigError(
            "podium.knowledge.current() works inside a crew member that has knowledge access (knowledge: access: "
            "in the crew file); elsewhere make an AgentKnowledge"
        )
    return found


@contextlib.contextmanager
def acting_as(view: AgentKnowledge | None) -> Iterator[None]:
    """Within this block, :func:`current` is ``view``."""
    token = _member.set(view)
    try:
        yield
    finally:
        _member.reset(token)
