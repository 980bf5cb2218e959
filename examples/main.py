"""The main job: a content team that plans research, writes, reviews by vote and revises until approved.

Until podium's LLM agents land, the team's members are plain Python functions; the orchestration is real:
a planner fans research out into parallel sub-workflows, a writer drafts, three reviewers vote, and a revision
loop runs until the vote approves or the loop's maximum is reached, all inside one workflow with limits, journaled
step by step in a SQLite file (``.podium/podium.db`` unless ``--store`` says otherwise).

    bash scripts/main.sh --topic "tidal power"
    bash scripts/main.sh --resume RUN_ID          # finish a run that was interrupted (Ctrl-C, kill -9, a crash)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Annotated, Any

from pydantic import BaseModel

from podium import (
    END,
    START,
    Command,
    Conversation,
    Graph,
    Hooks,
    Limits,
    RunResult,
    Tally,
    context,
    open_store,
    planner,
    reducers,
    sequential,
    step,
    vote,
)


class Article(BaseModel):
    """The team's shared state."""

    topic: str = ""
    findings: Annotated[list[str], reducers.append] = []
    draft: str = ""
    revisions: int = 0
    review: Tally | None = None
    log: Annotated[list[str], reducers.append] = []


# -- research: a planner whose worker is itself a two-step pipeline ------------------------------------------


class Lead(BaseModel):
    question: str = ""
    sources: list[str] = []
    summary: str = ""


async def gather_sources(state: Lead) -> dict[str, Any]:
    await asyncio.sleep(0.05)  # stands in for a search call; the branches overlap
    return {"sources": [f"{state.question} (source {n})" for n in (1, 2)]}


def summarize(state: Lead) -> str:
    return f"{state.question}: {len(state.sources)} sources agree"


investigate = sequential(
    gather_sources, step(summarize, into="summary"), state=Lead, input="question", output="summary", name="investigate"
)


def plan(state: Conversation) -> list[str]:
    return [f"history of {state.task}", f"economics of {state.task}", f"risks of {state.task}"]


def collect(state: Conversation) -> list[str]:
    return [str(turn.content) for turn in state.turns if turn.kind == "subtask"]


research_team = planner(plan, step(investigate, name="investigate"), collect, name="research")


# -- review: three reviewers vote on the draft ------------------------------------------------------------------


def clarity(state: Conversation) -> str:
    return "approve" if "In short" in str(state.task) else "revise"


def accuracy(state: Conversation) -> str:
    return "approve" if str(state.task).count("sources agree") >= 3 else "revise"


def style(state: Conversation) -> str:
    text = str(state.task)
    return "approve" if len(text) < 600 and text.rstrip().endswith(".") else "revise"


review_board = vote([clarity, accuracy, style], rule="majority", name="review")


# -- the team ---------------------------------------------------------------------------------------------------


def write(state: Article) -> dict[str, Any]:
    body = "\n".join(f"- {finding}" for finding in state.findings)
    draft = f"# {state.topic.title()}\n\n{body}\n"
    return {"draft": draft, "log": f"wrote a draft at {context().now():%H:%M:%S}"}


def revise(state: Article) -> dict[str, Any]:
    return {
        "draft": state.draft + "\nIn short: the sources agree.\n",
        "revisions": state.revisions + 1,
        "log": f"revision {state.revisions + 1}",
    }


def decide(state: Article) -> Command:
    approved = state.review is not None and state.review.decision == "approve"
    if approved or state.revisions >= 3:
        return Command(update={"log": "approved" if approved else "gave up after 3 revisions"}, goto=END)
    return Command(goto="revise")


def build() -> Any:
    graph = Graph(Article, name="content_team")
    graph.add(research_team, name="research", input=lambda s: s.topic, into="findings")
    graph.add(write)
    graph.add(review_board, name="review", input=lambda s: s.draft, into="review")
    graph.add(decide, routes=("revise", END), thread=False)
    graph.add(revise)
    graph.chain(START, "research", "write", "review", "decide")
    graph.edge("revise", "review")
    return graph.build(output="draft", input="topic", limits=Limits(max_steps=200, max_seconds=60))


class Progress(Hooks):
    def on_step_finish(
        self, *, run_id: str, step: str, task_id: str, attempt: int, update: Any, duration: float
    ) -> None:
        print(f"  {task_id:>14}  {step:<40} {duration * 1000:7.1f} ms", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topic", default="tidal power")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the article")
    parser.add_argument("--store", default="sqlite:///.podium/podium.db", help="where to journal the run")
    parser.add_argument("--resume", metavar="RUN_ID", help="resume this run from its journal instead")
    return asyncio.run(_main(parser.parse_args(argv)))


async def _main(args: argparse.Namespace) -> int:
    workflow = build()
    store = open_store(args.store)
    hooks = [] if args.json else [Progress()]
    result: RunResult[Article]
    if args.resume:
        result = await workflow.resume(args.resume, store=store, hooks=hooks)
    else:
        result = await workflow.run(args.topic, store=store, hooks=hooks)
    events = len(await store.read(result.run_id))
    await store.close()
    if args.json:
        summary = {
            "run_id": result.run_id,
            "status": result.status.value,
            "output": result.output,
            "steps": result.steps,
            "seconds": round(result.duration, 3),
            "log": result.state.log,
            "journal": store.url,
            "events": events,
        }
        print(json.dumps(summary))
    else:
        print(f"\nrun {result.run_id}: {result.status.value} in {result.duration:.2f} s, {result.steps} steps")
        print(f"journal: {store.url} ({events} events for this run)")
        print("\n".join(f"  {line}" for line in result.state.log))
        print()
        print(result.output if result.ok else f"error: {result.reason}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
