"""The review board's answer types."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Draft(BaseModel):
    """A draft explanation."""

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1)


class Critique(BaseModel):
    """The critic's verdict on a revision."""

    approved: bool
    notes: str = ""
