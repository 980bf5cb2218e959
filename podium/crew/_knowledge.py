"""A crew's ``knowledge:`` section: its sources, each agent's access, and the tools that follow from them.

::

    knowledge:
      sources:
        - {path: docs/, glob: "**/*.md"}              # into the crew's namespace (crew:<crew name>)
        - {path: notes/triage.md, namespace: agent:triage}
      access:
        researcher: {read: [crew, run], write: [run]}  # gets kb_search, kb_read, kb_write
        writer: {read: [crew, run]}                    # gets kb_search, kb_read
        librarian: {read: [crew]}                      # a Python member: podium.knowledge.current()
      search: keyword                                  # or semantic, hybrid (with an embedder)
      embedder: embeddings:make_embedder               # module:attribute, an Embedder or a function making one

The knowledge base is the one in the run's store. The sources are loaded (only what changed) before each
``Crew.run`` and ``resume``, and by the first use of the tools in a process that runs the crew's workflow some
other way (a worker). Mistakes are :class:`~podium.errors.CrewFileError`\\ s with the file, line and field.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.agents._tool import Tool
from podium.crew._format import ChunkingSpec, KnowledgeSpec
from podium.crew._imports import ImportFailed, import_object
from podium.crew._yaml import Locator, Path_, did_you_mean
from podium.errors import ConfigError, KnowledgeError
from podium.knowledge import (
    Access,
    AgentKnowledge,
    Chunking,
    Embedder,
    KnowledgeBase,
    LoadReport,
    Source,
    knowledge_tools,
)
from podium.knowledge._embedder import check_embedder
from podium.knowledge._sources import DEFAULT_GLOBS, load_source, source_files, source_ids
from podium.knowledge._tools import TOOL_NAMES
from podium.knowledge._view import run_knowledge, shared_knowledge

__all__ = ["TOOL_NAMES", "CrewKnowledge", "crew_knowledge"]


@dataclass(slots=True, kw_only=True)
class CrewKnowledge:
    """A crew's knowledge base settings, checked.

    Attributes:
        crew: the crew's name (its namespace is ``crew:<name>``).
        folder: the crew file's folder (sources' paths are relative to it).
        sources: what to load.
        access: each agent's access, by name.
        embedder: for semantic search, if any.
    """

    crew: str
    folder: Path
    sources: tuple[Source, ...]
    access: Mapping[str, Access]
    embedder: Embedder | None = None
    mode: Any = None
    limit: int = 5
    _loaded: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet, repr=False)
    """The stores whose knowledge base has the sources loaded by this process."""

    def view(self, agent: str) -> AgentKnowledge | None:
        """What ``agent`` may do, if the crew gives it access."""
        access = self.access.get(agent)
        if access is None:
            return None
        return AgentKnowledge(self._kb, agent, access, crew=self.crew, k=self.limit, mode=self.mode)

    def tools(self, agent: str) -> list[Tool]:
        """The knowledge tools ``agent`` gets (none without access)."""
        view = self.view(agent)
        return knowledge_tools(view) if view is not None else []

    async def load(self, store: Any) -> list[LoadReport]:
        """Load the sources into ``store``'s knowledge base (only what changed).

        Raises:
            KnowledgeError: a source's file or folder is gone, or a file is not UTF-8 text.
        """
        kb = await shared_knowledge(store, embedder=self.embedder)
        ids = [source_ids(source, self.folder) for source in self.sources]
        reports = []
        for index, source in enumerate(self.sources):
            others = set().union(*(found for n, found in enumerate(ids) if n != index))
            reports.append(await load_source(kb, source, base=self.folder, keep=others))
        self._loaded.add(store)
        return reports

    async def _kb(self) -> KnowledgeBase:
        """The running run's knowledge base, its sources loaded once per store in this process."""
        kb = await run_knowledge(embedder=self.embedder)
        from podium.runtime._context import _current

        ctx = _current.get()
        store = ctx._run.journal.store if ctx is not None and ctx._run is not None else None
        if store is not None and store not in self._loaded:
            await self.load(store)
        return kb


def crew_knowledge(
    spec: KnowledgeSpec, *, crew: str, agents: Sequence[str], tools: Mapping[str, Any], folder: Path, located: Locator
) -> CrewKnowledge:
    """Check a crew file's ``knowledge:`` section and make it a :class:`CrewKnowledge`.

    Raises:
        CrewFileError: an unknown agent, a bad namespace, a source that does not exist or matches no file, a
            chunking out of range, an embedder that cannot be imported.
    """
    where: Path_ = ("knowledge",)
    if spec.access:
        for name in TOOL_NAMES:
            if name in tools:
                raise located.error(("tools", name), f"{name!r} is the name of a knowledge tool; name yours otherwise")
    access = {}
    for agent, entry in spec.access.items():
        if agent not in agents:
            raise located.error(
                (*where, "access", agent), f"no agent {agent!r} is declared under 'agents'{did_you_mean(agent, agents)}"
            )
        for action in ("read", "write"):
            for index, namespace in enumerate(getattr(entry, action)):
                try:
                    Access(read=[namespace])
                except ConfigError as exc:
                    raise located.error((*where, "access", agent, action, index), str(exc)) from None
        access[agent] = Access(read=entry.read, write=entry.write)
    default_chunking = _chunking(spec.chunking, (*where, "chunking"), located)
    sources = tuple(
        _source(index, source_spec, crew, agents, folder, default_chunking, located)
        for index, source_spec in enumerate(spec.sources)
    )
    embedder = _embedder(spec.embedder, folder, located) if spec.embedder is not None else None
    if spec.search in ("semantic", "hybrid") and embedder is None:
        raise located.error((*where, "search"), f"a {spec.search} search needs an embedder: set knowledge.embedder")
    return CrewKnowledge(
        crew=crew, folder=folder, sources=sources, access=access, embedder=embedder, mode=spec.search, limit=spec.limit
    )


def _source(
    index: int,
    spec: Any,
    crew: str,
    agents: Sequence[str],
    folder: Path,
    chunking: Chunking | None,
    located: Locator,
) -> Source:
    where: Path_ = ("knowledge", "sources", index)
    namespace = spec.namespace
    if namespace == "crew":
        namespace = f"crew:{crew}"
    kind, _, name = namespace.partition(":")
    if kind == "agent" and name not in agents:
        raise located.error(
            (*where, "namespace"), f"no agent {name!r} is declared under 'agents'{did_you_mean(name, agents)}"
        )
    if kind not in ("crew", "agent") or not name:
        raise located.error(
            (*where, "namespace"),
            f"{spec.namespace!r}: sources go into crew (the crew's namespace) or agent:<name>; a run's namespace "
            f"is for what the run writes",
        )
    line, _ = located.mark(where)
    source = Source(
        path=Path(spec.path),
        namespace=namespace,
        glob=spec.glob if spec.glob is not None else DEFAULT_GLOBS,
        chunking=_chunking(spec.chunking, (*where, "chunking"), located) or chunking,
        where=f"{located.file}:{line} (knowledge.sources[{index}])" if line else located.file,
    )
    try:
        files = source_files(source, folder)
    except KnowledgeError:
        looked = folder / spec.path
        raise located.error((*where, "path"), f"no file or folder {spec.path} (looked for {looked})") from None
    if not files:
        globs = ", ".join(source.globs)
        at = (*where, "glob" if spec.glob is not None else "path")
        raise located.error(at, f"no file in {spec.path} matches {globs}")
    return source


def _chunking(spec: ChunkingSpec | None, where: Path_, located: Locator) -> Chunking | None:
    if spec is None:
        return None
    try:
        return Chunking(max_chars=spec.max_chars, overlap=spec.overlap)
    except ConfigError as exc:
        raise located.error((*where, "overlap"), str(exc).removeprefix("chunking: ")) from None


def _embedder(target: str, folder: Path, located: Locator) -> Embedder:
    where: Path_ = ("knowledge", "embedder")
    try:
        found = import_object(target, folder)
    except ImportFailed as exc:
        raise located.error(where, str(exc)) from exc
    if isinstance(found, type) or (not hasattr(found, "embed") and callable(found)):  # a class, a factory
        try:
            found = found()
        except Exception as exc:
            raise located.error(where, f"{target}() failed: {type(exc).__name__}: {exc}") from exc
    try:
        return check_embedder(found)
    except ConfigError as exc:
        raise located.error(where, str(exc)) from None
