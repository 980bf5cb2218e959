"""What the knowledge base holds and hands back: namespaces, records with their provenance, and search hits."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from podium.errors import ConfigError

__all__ = ["Hit", "Namespace", "NamespaceKind", "Provenance", "Record", "RecordKind", "content_hash"]

NamespaceKind: TypeAlias = Literal["crew", "run", "agent"]
RecordKind: TypeAlias = Literal["document", "fact"]
KINDS: tuple[NamespaceKind, ...] = ("crew", "run", "agent")
_NAME = re.compile(r"[^\s:*][^\s*]{0,199}")


@dataclass(frozen=True, slots=True)
class Namespace:
    """Where a record lives: a crew's shared shelf, one run's notes, or one agent's own notes.

    Written ``kind:name``: ``crew:support-desk``, ``run:<run id>``, ``agent:writer``. Every API that takes a
    namespace takes that string too.
    """

    kind: NamespaceKind
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"a namespace is crew:<name>, run:<run id> or agent:<name>, not {self.kind}:{self.name}")
        if not _NAME.fullmatch(self.name):
            raise ConfigError(
                f"namespace name {self.name!r} must be 1 to 200 characters without spaces or '*', not starting with ':'"
            )

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str | Namespace) -> Namespace:
        """``"crew:desk"`` → ``Namespace("crew", "desk")``.

        Raises:
            ConfigError: not ``kind:name`` with a known kind.
        """
        if isinstance(text, Namespace):
            return text
        kind, colon, name = str(text).partition(":")
        if not colon or kind not in KINDS:
            raise ConfigError(f"a namespace is crew:<name>, run:<run id> or agent:<name>, not {text!r}")
        return cls(kind, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Who wrote a record, where and when: part of the audit trail (the run's journal has the rest).

    Attributes:
        agent: the agent (or crew member) that wrote it; None for code that wrote it directly, and for sources.
        run_id: the run it was written in, if any.
        step: the step's path in that run.
        task_id: the task (one execution of the step) in that run.
        at: when, seconds since the epoch (the writer's clock).
    """

    agent: str | None = None
    run_id: str | None = None
    step: str | None = None
    task_id: str | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A document (split into chunks for search) or a fact (a short statement, one chunk).

    Attributes:
        id: unique in the knowledge base; writing the same id again replaces the record (or changes nothing when
            its content is the same).
        namespace: ``kind:name``.
        kind: ``"document"`` or ``"fact"``.
        title: a document's title (a fact's is usually empty).
        text: the whole text.
        source: where it came from (a file loaded from a crew's sources: ``docs/refunds.md``), if anywhere.
        metadata: JSON values (a fact's key/value pairs).
        content_hash: SHA-256 of kind, title, text, source and metadata: what decides whether a write changes it.
        provenance: who wrote it last (a write that changes nothing keeps the earlier writer).
        chunks: how many chunks it was split into.
    """

    id: str
    namespace: str
    kind: RecordKind
    title: str
    text: str
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    content_hash: str
    provenance: Provenance
    chunks: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """One chunk found by a search, best first.

    Attributes:
        record_id: the record it belongs to (``read`` it for the whole text).
        namespace: the record's namespace.
        kind: the record's kind.
        title: the record's title.
        heading: the headings above the chunk in its document (``Refunds > Eligibility``), if any.
        text: the chunk's text.
        source: the record's source, if any.
        line: the line of the source where the chunk begins (from 1).
        chunk: the chunk's place in the record (from 0).
        score: higher is better; comparable within one search only (bm25 or ts_rank for keyword searches,
            cosine similarity for semantic ones, fused reciprocal ranks for hybrid ones).
        provenance: who wrote the record.
    """

    record_id: str
    namespace: str
    kind: RecordKind
    title: str
    heading: str
    text: str
    source: str | None
    line: int
    chunk: int
    score: float
    provenance: Provenance

    @property
    def cite(self) -> str:
        """Where the chunk is: ``docs/refunds.md:12``, or the record's id."""
        return f"{self.source}:{self.line}" if self.source else self.record_id


def content_hash(kind: str, title: str, text: str, source: str | None, metadata: dict[str, Any]) -> str:
    """The hash that decides whether writing a record again changes it."""
    canonical = json.dumps([kind, title, text, source, metadata], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
