"""Small workflows the knowledge tests run: an agent answering a question, over a one-field state."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from podium import END, START, Graph, Workflow


class Question(BaseModel):
    question: str = ""
    answer: str = ""


def answering(agent: Any, *, name: str = "desk") -> Workflow[Question]:
    """``START -> agent -> END``; the agent's answer goes into ``answer`` (the output)."""
    graph = Graph(Question, name=name)
    graph.add(agent, into="answer")
    graph.chain(START, agent.name, END)
    return graph.build(output="answer", input="question")
