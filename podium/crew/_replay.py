"""``replay``: run a crew again on a recorded run's input, its models answering from the recorded journal.

The replay is a new run (in the same store). Its agents all use a :class:`~podium.models._replay.ReplayModel`
over the recorded ``model_called`` events; questions the recorded run asked are answered again with the recorded
answers. Equal outcomes (status and output) mean the crew still does what it did: a real run made into an
offline regression test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium import Conversation, Hooks, RunResult, RunStatus, Store, answer, open_store
from podium.crew._crew import load_crew
from podium.errors import EncodingError, RunStateError
from podium.journal import DEFAULT_STORE_URL, decode, encode
from podium.models._replay import ReplayModel

__all__ = ["Replay", "replay"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Replay:
    """A replay's outcome next to the recorded one (outputs in their journal encoding, None if not encodable).

    Attributes:
        result: the replayed run's result.
        recorded_run_id: the run that was replayed.
        recorded_status: how it ended.
        recorded_output: its output.
        output: the replay's output.
        model_calls: model calls answered from the recording.
    """

    result: RunResult[Conversation]
    recorded_run_id: str
    recorded_status: str
    recorded_output: Any
    output: Any
    model_calls: int

    @property
    def equal(self) -> bool:
        """Whether the replay ended as the recorded run did, with the same output."""
        return self.result.status.value == self.recorded_status and self.output == self.recorded_output


async def replay(
    path: str | Path, run_id: str, *, store: Store | str | None = None, hooks: Sequence[Hooks] = ()
) -> Replay:
    """Replay run ``run_id`` of the crew at ``path``; see the module docstring.

    Args:
        store: where the recorded run is (and the replay goes); the crew's store, else the default one.

    Raises:
        CrewFileError: the crew file is malformed.
        RunNotFoundError: no such run.
        RunStateError: it has not finished, or it is a run of another crew.
    """
    if store is None:
        import os

        store = load_crew(path).store or os.environ.get("PODIUM_STORE") or DEFAULT_STORE_URL
    opened = open_store(store) if isinstance(store, str) else store
    await opened.open()
    info = await opened.get_run(run_id)
    entries = [entry.event for entry in await opened.read(run_id)]
    accepted = next((e for e in entries if e.kind == "run_accepted"), None)
    finished = next((e for e in reversed(entries) if e.kind == "run_finished"), None)
    if accepted is None or finished is None or accepted.kind != "run_accepted" or finished.kind != "run_finished":
        raise RunStateError(
            "it has not finished: there is no outcome to compare with", run_id=run_id, status=info.status
        )
    model = ReplayModel(entries)
    crew = load_crew(path, model=model)
    if info.workflow != crew.name:
        raise RunStateError(
            f"it is a run of {info.workflow!r}, not of crew {crew.name!r}", run_id=run_id, status=info.status
        )
    answers = {q.interrupt_id: q.answer for q in await opened.questions(run_id) if q.answered}
    result = await crew.run(decode(accepted.state), store=opened, hooks=hooks)
    while result.status is RunStatus.WAITING and all(q in answers for q in result.waiting):
        for question in result.waiting:
            await answer(result.run_id, question, decode(answers[question]), store=opened)
        result = await crew.resume(result.run_id, store=opened, hooks=hooks)
    return Replay(
        result=result,
        recorded_run_id=run_id,
        recorded_status=finished.status,
        recorded_output=finished.output,
        output=_encoded(result.output),
        model_calls=model.served,
    )


def _encoded(value: Any) -> Any:
    try:
        return encode(value)
    except EncodingError:
        return None
