"""The board room's Python members and answer types.

The chair and the analyst are plain functions (``call:`` in the crew file), so the routing is the same on every
model: each is called with the board so far and the message that mentions it, and what it returns is posted as
its answer. Their ``@mentions`` are requests to other members.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from podium import Board, Post


class Risks(BaseModel):
    """The engineer's answer."""

    summary: str = Field(min_length=1, description="The main technical risks, in a sentence or two.")


class Memo(BaseModel):
    """The writer's answer, and the board's result."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1)


def chair(board: Board, post: Post) -> str:
    """Opens the meeting: asks the analyst and the engineer at once."""
    topic = board.task
    return f"@analyst estimate what {topic} would cost. @engineer what are the technical risks of {topic}?"


def analyst(board: Board, post: Post) -> str:
    """Answers with a rough estimate, and asks the writer to put the board's answers into a memo."""
    size = len(str(board.task))
    return (
        f"A first estimate for {board.task}: {size * 12} million, paid back in about {size // 2 + 5} years. "
        f"@writer please write the memo from the estimate and the engineer's risks."
    )
