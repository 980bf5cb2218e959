"""Output types and tools that the test crew files name as ``tests.crew.outputs:<name>``."""

from __future__ import annotations

from pydantic import BaseModel

from podium import tool


class Draft(BaseModel):
    title: str
    body: str


class Review(BaseModel):
    approved: bool
    notes: str = ""


@tool(idempotent=True)
def word_count(text: str) -> int:
    """Count the words of a text.

    Args:
        text: the text.
    """
    return len(text.split())


def shout(text: str) -> str:
    """Say it louder (a plain function: the crew makes it a tool)."""
    return text.upper()


NOT_A_MODEL = 42
