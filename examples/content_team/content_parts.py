"""The content team's answer types and its publisher (a plain Python member: no model decides what is written)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, Field

from podium import Conversation


class Research(BaseModel):
    """The researcher's findings."""

    facts: list[str] = Field(min_length=1, max_length=8)


class Draft(BaseModel):
    """A post: the writer's, then the SEO editor's."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1)


def publish(state: Conversation) -> str:
    """Write the latest draft to ``$PODIUM_OUTPUT`` (default ``.podium/output``) as Markdown; answer with its path."""
    draft = next(t.content for t in reversed(state.turns) if isinstance(t.content, Draft))
    research = next((t.content for t in state.turns if isinstance(t.content, Research)), Research(facts=["-"]))
    folder = Path(os.environ.get("PODIUM_OUTPUT", ".podium/output"))
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", str(state.task).lower()).strip("-") or "post"
    path = folder / f"{slug}.md"
    facts = "\n".join(f"- {fact}" for fact in research.facts)
    path.write_text(f"# {draft.title}\n\n{draft.body}\n\n## Sources\n\n{facts}\n", encoding="utf-8")
    return str(path)
