"""Sources: files and folders loaded into the knowledge base as documents, one per file, chunked.

Loading is a sync, and idempotent: a file whose content is what is stored (by content hash) writes nothing, a
changed one replaces its record, and a file that is gone from a folder (or no longer matches its globs) has its
record deleted: a folder's source owns the records of its files in its namespace, except those another source
loaded with it (``keep``) still has. A record's id is ``source:<namespace>:<path>``, its ``source`` the path
relative to the folder the sources are declared from (a crew file's). Sources are not a run's writes: they are
never journaled, and their provenance names no agent or run, even when a run's first use of the knowledge base
loads them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from podium.errors import KnowledgeError
from podium.knowledge._backend import RecordFilter, Scope
from podium.knowledge._chunks import Chunking, chunk_text
from podium.knowledge._records import content_hash
from podium.runtime._context import _current

if TYPE_CHECKING:
    from podium.knowledge._base import KnowledgeBase

__all__ = ["DEFAULT_GLOBS", "LoadReport", "Source", "load_source", "record_id", "source_files", "source_ids"]

DEFAULT_GLOBS = ("**/*.md", "**/*.txt")
_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A file, or a folder's files, to load into a namespace.

    Attributes:
        path: the file or folder.
        namespace: ``kind:name``.
        glob: which files of a folder (``**/`` descends into sub-folders); hidden files and folders are skipped.
        chunking: how the files are split (the knowledge base's default when None).
        where: where the source was declared (``crew.yaml:12 (knowledge.sources[0])``), for errors.
    """

    path: Path
    namespace: str
    glob: str | Sequence[str] = DEFAULT_GLOBS
    chunking: Chunking | None = None
    where: str | None = None

    @property
    def globs(self) -> tuple[str, ...]:
        return (self.glob,) if isinstance(self.glob, str) else tuple(self.glob)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadReport:
    """What loading a source did, by file (``source`` paths)."""

    namespace: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def source_files(source: Source, base: Path) -> list[tuple[Path, str]]:
    """The source's files and their labels (paths relative to ``base``), in order.

    Raises:
        KnowledgeError: the path does not exist.
    """
    path = source.path if source.path.is_absolute() else base / source.path
    if path.is_file():
        return [(path, _label(path, base))]
    if not path.is_dir():
        raise KnowledgeError(f"{_at(source)}no file or folder at {path}")
    found: dict[Path, None] = {}
    for pattern in source.globs:
        for file in sorted(path.glob(pattern)):
            parts = file.relative_to(path).parts
            if file.is_file() and not any(part.startswith(".") for part in parts):
                found[file] = None
    return [(file, _label(file, base)) for file in sorted(found)]


def source_ids(source: Source, base: Path) -> set[str]:
    """The record ids of the source's files as they are now."""
    return {record_id(source.namespace, label) for _, label in source_files(source, base)}


def record_id(namespace: str, label: str) -> str:
    return f"source:{namespace}:{label}"


async def load_source(
    kb: KnowledgeBase, source: Source, *, base: Path, keep: AbstractSet[str] = frozenset()
) -> LoadReport:
    """Load ``source`` into ``kb`` (see the module docstring).

    Args:
        keep: record ids not to delete even if this source no longer has them (other sources' files).

    Raises:
        KnowledgeError: the path does not exist, or a file is not UTF-8 text.
    """
    token = _current.set(None)  # not the run's writes, whichever step first needed the knowledge base
    try:
        return await _load(kb, source, base, keep)
    finally:
        _current.reset(token)


async def _load(kb: KnowledgeBase, source: Source, base: Path, keep: AbstractSet[str]) -> LoadReport:
    report = LoadReport(namespace=source.namespace)
    files = source_files(source, base)
    present = set()
    for file, label in files:
        text = _read(file, label, source)
        title = _title(text) or file.stem
        this_id = record_id(source.namespace, label)
        present.add(this_id)
        stored = await kb.find(this_id)
        digest = content_hash("document", title, text, label, {})
        if stored is not None and stored.namespace == source.namespace and stored.content_hash == digest:
            report.unchanged.append(label)  # the common case: no chunking, no embedding, no write
            continue
        chunks = chunk_text(text, source.chunking or kb.chunking)
        action, _ = await kb.put(
            "document", source.namespace, text, title=title, source=label, id=this_id, chunks=chunks
        )
        {"created": report.created, "updated": report.updated}.get(action, report.unchanged).append(label)
    root = source.path if source.path.is_absolute() else base / source.path
    if root.is_dir():
        folder = _label(root, base)
        # the base folder itself (label "."): its files' labels have no folder part, so the prefix is the namespace's
        # and only relative labels (this base's files, not absolute paths from elsewhere) are this source's
        prefix = record_id(source.namespace, "" if folder == "." else f"{folder}/")
        stored_ids = await kb.backend.records(
            RecordFilter(scope=Scope((source.namespace,)), id_prefix=prefix), limit=1_000_000
        )
        gone = [
            r.id
            for r in stored_ids
            if r.id not in present and r.id not in keep and not (folder == "." and r.id[len(prefix) :].startswith("/"))
        ]
        report.deleted.extend(r.source or r.id for r in await kb.delete_many(gone))
    return report


def _read(file: Path, label: str, source: Source) -> str:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise KnowledgeError(f"{_at(source)}cannot read {label}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise KnowledgeError(
            f"{_at(source)}{label}:{line} is not UTF-8 text ({exc.reason}); give the source a glob that leaves it out"
        ) from None


def _title(text: str) -> str | None:
    match = _TITLE.search(text[:4000])
    return match.group(1).strip() if match else None


def _label(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _at(source: Source) -> str:
    return f"{source.where}: " if source.where else ""
