"""A resume refuses a journal that its workflow's structure no longer matches, and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from podium import END, START, Graph, JournalMismatchError, SQLiteStore, Workflow


class Doc(BaseModel):
    text: str = ""


def pipeline(with_review: bool) -> Workflow[Doc]:
    def write(state: Doc) -> dict[str, Any]:
        return {"text": "draft"}

    def review(state: Doc) -> dict[str, Any]:
        return {"text": state.text + " (reviewed)"}

    def publish(state: Doc) -> dict[str, Any]:
        raise RuntimeError("the printer is down")

    graph = Graph(Doc, name="pipeline")
    graph.add(write).add(publish)
    if with_review:
        graph.add(review)
        graph.chain(START, "write", "review", "publish", END)
    else:
        graph.chain(START, "write", "publish", END)
    return graph.build()


async def test_a_changed_structure_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    failed = await pipeline(with_review=False).run(run_id="p", store=store)
    assert failed.status.value == "failed"
    before = await store.read("p")
    info = await store.get_run("p")
    changed = pipeline(with_review=True)
    with pytest.raises(
        JournalMismatchError, match=r"structure changed since the run began: steps removed \[\], added \['review'\]"
    ):
        await changed.resume("p", store=store)
    assert await store.read("p") == before
    assert await store.get_run("p") == info


def test_the_fingerprint_ignores_step_code_but_not_structure() -> None:
    assert pipeline(with_review=False).fingerprint == pipeline(with_review=False).fingerprint
    assert pipeline(with_review=False).fingerprint != pipeline(with_review=True).fingerprint
