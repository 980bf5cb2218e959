"""The knowledge desk's answer type and its two Python members: a librarian who searches the handbook, and a
recorder who keeps each answer as a fact in the run's namespace of the knowledge base."""

from __future__ import annotations

from pydantic import BaseModel, Field

import podium.knowledge
from podium import Conversation


class Answer(BaseModel):
    """The support agent's answer to the customer."""

    answer: str = Field(min_length=1)
    sources: list[str] = Field(default_factory=list, description="The cites of the passages it used.")


async def find_passages(state: Conversation) -> list[dict[str, str]]:
    """The handbook passages that best match the customer's question (with the librarian's access: the crew's)."""
    hits = await podium.knowledge.current().search(str(state.task), k=3)
    return [{"cite": hit.cite, "section": hit.heading or hit.title, "text": hit.text} for hit in hits]


async def record_answer(state: Conversation) -> Answer:
    """Keep the answer as a fact of this run (its provenance: the recorder, this run and step); pass it on."""
    answer = next(t.content for t in reversed(state.turns) if isinstance(t.content, Answer))
    await podium.knowledge.current().write_fact(
        answer.answer, metadata={"question": str(state.task), "sources": answer.sources}
    )
    return answer
