"""The research report's answer types."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Finding(BaseModel):
    """One analyst's answer to one subtask."""

    answer: str = Field(min_length=1)


class Report(BaseModel):
    """The merged report."""

    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=1)
