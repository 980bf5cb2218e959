"""The intake desk's events and its two Python members (opening what arrived, filing the summary)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, Field

from podium import Conversation


class Arrival(BaseModel):
    """What started the run: a file in the inbox (``path``), a posted document (``title``, ``text``) or the
    morning sweep (``due``). Fields a trigger's payload has beyond these are ignored."""

    path: str | None = None
    title: str | None = None
    text: str | None = None
    due: str | None = None


class Document(BaseModel):
    """A document to read."""

    title: str
    text: str
    source: str


class Summary(BaseModel):
    """The reader's summary of a document."""

    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=1)
    urgent: bool = False


def open_item(state: Conversation, arrival: Arrival) -> Document:
    """Turn an arrival into a document: read the file, take the posted text, or list what waits in the inbox."""
    if arrival.path is not None:
        path = Path(arrival.path)
        return Document(title=path.stem, text=path.read_text(encoding="utf-8", errors="replace"), source=str(path))
    if arrival.due is not None:
        inbox = Path(__file__).parent / "inbox"
        waiting = sorted(p.name for p in inbox.glob("*.txt"))
        text = f"{len(waiting)} files in the inbox: {', '.join(waiting) or 'none'}"
        return Document(title=f"Morning sweep {arrival.due[:10]}", text=text, source="schedule")
    return Document(title=arrival.title or "Untitled", text=arrival.text or "", source="webhook")


def file_summary(state: Conversation, summary: Summary) -> str:
    """Write the summary to ``$PODIUM_OUTPUT`` (default ``.podium/output``) as Markdown; answer with its path."""
    folder = Path(os.environ.get("PODIUM_OUTPUT", ".podium/output"))
    folder.mkdir(parents=True, exist_ok=True)
    document = next(t.content for t in reversed(state.turns) if isinstance(t.content, Document))
    slug = re.sub(r"[^a-z0-9]+", "-", document.title.lower()).strip("-") or "document"
    path = folder / f"{slug}.md"
    flag = "URGENT " if summary.urgent else ""
    path.write_text(f"# {flag}{summary.title}\n\n{summary.summary}\n\nSource: {document.source}\n", encoding="utf-8")
    return str(path)
