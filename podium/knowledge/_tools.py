"""``knowledge_tools``: ``kb_search``, ``kb_read`` and ``kb_write``, bound to one agent's permissions.

Granted like any tool (``Agent(tools=[*knowledge_tools(...)])``; a crew file's ``knowledge: access:`` does it for
its agents). A denied read or write is an error message the model reads, naming what it may use instead.

``kb_search`` and ``kb_read`` are idempotent. So is ``kb_write``: the record's id is derived from the call's
idempotency key (run, task, tool, arguments, and how many identical calls came before), so the same call made
again (after a crash, in a retried attempt) replaces the same record with the same content: nothing is duplicated.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal

from podium.agents._tool import Tool
from podium.knowledge._access import Access
from podium.knowledge._base import SearchMode
from podium.knowledge._records import Hit, Record
from podium.knowledge._view import AgentKnowledge, KnowledgeSource

__all__ = ["knowledge_tools"]

TOOL_NAMES = ("kb_search", "kb_read", "kb_write")


def knowledge_tools(
    kb: KnowledgeSource | AgentKnowledge,
    agent: str | None = None,
    access: Access | None = None,
    *,
    crew: str | None = None,
    k: int = 5,
    mode: SearchMode | None = None,
) -> list[Tool]:
    """The knowledge tools for one agent: ``kb_search`` and ``kb_read`` if it may read anything, ``kb_write`` if it
    may write anything.

    Args:
        kb: a :class:`KnowledgeBase`, None (the running run's store's), or an :class:`AgentKnowledge` (then the
            other arguments are its own).
        agent: the agent's name.
        access: what it may read and write (:meth:`Access.default` when None).
        crew: the crew's name, for the ``crew`` shorthand.
        k: hits per search, unless the model asks for another number (at most 20).
        mode: the search mode (default: hybrid with an embedder, else keyword).
    """
    if isinstance(kb, AgentKnowledge):
        view = kb
    else:
        if agent is None:
            raise TypeError("knowledge_tools() needs the agent's name")
        view = AgentKnowledge(kb, agent, access, crew=crew, k=k, mode=mode)
    reads = _describe(dict.fromkeys(view.access.read + view.access.write))
    tools = []
    if view.access.read or view.access.write:
        tools += [_search(view, reads), _read(view)]
    if view.access.write:
        tools.append(_write(view))
    return tools


def _search(view: AgentKnowledge, reads: str) -> Tool:
    async def kb_search(query: str, namespace: str = "", limit: int = view.k) -> list[dict[str, Any]]:
        hits = await view.search(query, namespace=namespace or None, k=max(1, min(limit, 20)))
        return [_hit(hit) for hit in hits]

    kb_search.__doc__ = f"""Search the shared knowledge base; the best passages first.

    Args:
        query: what to look for, in words.
        namespace: search only this one of yours: {reads}; empty: all of them.
        limit: at most this many passages (up to 20).
    """
    return Tool(kb_search, idempotent=True)


def _read(view: AgentKnowledge) -> Tool:
    async def kb_read(id: str) -> dict[str, Any]:
        return _record(await view.read(id))

    kb_read.__doc__ = """Read a whole record of the knowledge base (a document or a fact) by its id.

    Args:
        id: the record's id, as kb_search gives it.
    """
    return Tool(kb_read, idempotent=True)


def _write(view: AgentKnowledge) -> Tool:
    writes = _describe(view.access.write)
    default = view.access.write[0] if not view.access.write[0].endswith(":*") else ""

    async def kb_write(
        text: str,
        idempotency_key: str,
        title: str = "",
        kind: Literal["fact", "document"] = "fact",
        namespace: str = default,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        record_id = uuid.uuid5(uuid.NAMESPACE_URL, f"podium-knowledge-tool:{idempotency_key}").hex
        if kind == "fact":
            record = await view.write_fact(text, namespace=namespace or None, metadata=metadata, id=record_id)
        else:
            record = await view.write_document(
                text, title=title, namespace=namespace or None, metadata=metadata, id=record_id
            )
        return {"id": record.id, "namespace": record.namespace, "kind": record.kind}

    kb_write.__doc__ = f"""Write a fact (a short statement) or a document to the shared knowledge base.

    Args:
        text: the fact, or the document's text.
        title: a document's title (facts have none).
        kind: fact or document.
        namespace: where to write: {writes}.
        metadata: key/value pairs to keep with it.
    """
    return Tool(kb_write, idempotent=True)


_MEANINGS = {"crew": "the team's shared notes", "run": "this run's notes", "agent": "your own notes"}


def _describe(entries: Iterable[str]) -> str:
    """Namespaces as a model reads them: ``crew (the team's shared notes), agent:researcher``."""
    return ", ".join(f"{e} ({_MEANINGS[e]})" if e in _MEANINGS else e for e in entries)


def _hit(hit: Hit) -> dict[str, Any]:
    found: dict[str, Any] = {"id": hit.record_id, "namespace": hit.namespace, "title": hit.title}
    if hit.heading:
        found["heading"] = hit.heading
    found["text"] = hit.text
    found["cite"] = hit.cite
    found["score"] = round(hit.score, 4)
    return found


def _record(record: Record) -> dict[str, Any]:
    p = record.provenance
    return {
        "id": record.id,
        "namespace": record.namespace,
        "kind": record.kind,
        "title": record.title,
        "text": record.text,
        "source": record.source,
        "metadata": record.metadata,
        "written_by": {"agent": p.agent, "run_id": p.run_id, "step": p.step},
    }
