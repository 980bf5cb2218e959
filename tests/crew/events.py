"""Event types and Python members that the test crew files name as ``tests.crew.events:<name>``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from podium import context


class Ticket(BaseModel):
    id: int
    text: str


class Triaged(BaseModel):
    id: int
    queue: str


class Closed(BaseModel):
    id: int


def triage(state: Any, ticket: Ticket) -> Triaged:
    """Answers with an event: it is emitted."""
    return Triaged(id=ticket.id, queue="billing" if "charge" in ticket.text else "technical")


def close_all(state: Any, triaged: Triaged) -> str:
    """Emits events itself, and answers in text."""
    for n in range(2):
        context().emit(Closed(id=triaged.id * 10 + n))
    return f"closing {triaged.id}"


def not_a_model() -> None:
    """Not a pydantic model: cannot be an event type."""
