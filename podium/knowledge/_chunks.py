"""Splitting a document into chunks: by Markdown headings, then paragraphs, within a size, with some overlap.

A heading (``#`` to ``######``, outside fenced code) starts a new section, and a chunk never spans two sections:
each chunk knows the headings above it (``Refunds > Eligibility``), which is what a search shows and ranks with.
Within a section, paragraphs (and fenced code blocks, whole) are packed into chunks of at most ``max_chars``;
a paragraph longer than that is cut at sentence ends, else at spaces. Each chunk after the first of a section
begins with the last ``overlap`` characters of the one before (cut at a word), so a sentence that straddles a
boundary is found from either side. Every chunk remembers the line where its own text begins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from podium.errors import ConfigError

__all__ = ["Chunk", "Chunking", "chunk_text"]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunking:
    """How documents are split.

    Attributes:
        max_chars: the most characters in one chunk.
        overlap: characters of the previous chunk (of the same section) repeated at the start of the next.
    """

    max_chars: int = 1200
    overlap: int = 150

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise ConfigError(f"chunking: max_chars must be at least 100, not {self.max_chars}")
        if not 0 <= self.overlap <= self.max_chars // 2:
            raise ConfigError(f"chunking: overlap must be between 0 and max_chars / 2, not {self.overlap}")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document: its text, the headings above it, and the line (from 1) where its own text begins."""

    text: str
    heading: str = ""
    line: int = 1


def chunk_text(text: str, chunking: Chunking | None = None) -> list[Chunk]:
    """Split ``text`` (Markdown or plain) into chunks; see the module docstring."""
    rules = chunking or Chunking()
    chunks: list[Chunk] = []
    for heading, paragraphs in _sections(text):
        chunks += _pack(heading, paragraphs, rules)
    if not chunks and text.strip():  # headings only: the headings are the text
        chunks = [Chunk(piece, "", 1) for piece in _pieces(text.strip(), rules.max_chars)]
    return chunks


def _sections(text: str) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """Each section's heading path and its paragraphs (text, first line)."""
    stack: list[str] = []
    paragraphs: list[tuple[str, int]] = []
    current: list[str] = []
    start = 0
    fence: str | None = None

    def close() -> None:
        nonlocal current
        if current:
            paragraphs.append(("\n".join(current).strip("\n"), start))
            current = []

    for number, line in enumerate(text.splitlines(), start=1):
        opened = _FENCE.match(line)
        if fence is not None:  # inside fenced code: everything belongs to the block
            current.append(line)
            if opened and opened.group(1) == fence:
                fence = None
                close()
            continue
        if opened:
            close()
            fence, start, current = opened.group(1), number, [line]
            continue
        heading = _HEADING.match(line)
        if heading:
            close()
            if paragraphs:
                yield " > ".join(stack), paragraphs
                paragraphs = []
            level = len(heading.group(1))
            stack = [*stack[: level - 1], heading.group(2).strip()]
            continue
        if not line.strip():
            close()
            continue
        if not current:
            start = number
        current.append(line)
    close()
    if paragraphs:
        yield " > ".join(stack), paragraphs


def _pack(heading: str, paragraphs: list[tuple[str, int]], rules: Chunking) -> list[Chunk]:
    room = max(rules.max_chars - rules.overlap - 2, rules.max_chars // 2)
    pieces = [(piece, line) for text, first in paragraphs for piece, line in _split(text, first, room)]
    chunks: list[Chunk] = []
    parts: list[str] = []
    line: int | None = None  # where the current chunk's own text (after the overlap) begins
    for piece, piece_line in pieces:
        if line is not None and len("\n\n".join([*parts, piece])) > rules.max_chars:
            done = "\n\n".join(parts)
            chunks.append(Chunk(done, heading, line))
            tail = _tail(done, rules.overlap)
            parts = [tail] if tail and len(tail) + 2 + len(piece) <= rules.max_chars else []
            line = None
        if line is None:
            line = piece_line
        parts.append(piece)
    if line is not None:
        chunks.append(Chunk("\n\n".join(parts), heading, line))
    return chunks


def _split(text: str, first_line: int, room: int) -> Iterator[tuple[str, int]]:
    """A paragraph as pieces of at most ``room`` characters, each with the line where it begins."""
    if len(text) <= room:
        yield text, first_line
        return
    offset = 0
    for piece in _pieces(text, room):
        at = text.find(piece, offset)
        at = offset if at < 0 else at
        yield piece, first_line + text.count("\n", 0, at)
        offset = at + len(piece)


def _pieces(text: str, room: int) -> list[str]:
    """Cut at sentence ends where possible, else at spaces, else anywhere."""
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        for part in _words(sentence, room) if len(sentence) > room else [sentence]:
            joined = f"{current} {part}" if current else part
            if len(joined) <= room:
                current = joined
            else:
                pieces.append(current)
                current = part
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def _words(text: str, room: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > room:  # a word longer than a chunk: cut it
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:room])
            word = word[room:]
        joined = f"{current} {word}" if current else word
        if len(joined) <= room:
            current = joined
        else:
            parts.append(current)
            current = word
    if current:
        parts.append(current)
    return parts


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text``, starting at a word."""
    if overlap <= 0 or len(text) <= overlap:
        return "" if overlap <= 0 else text
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail
