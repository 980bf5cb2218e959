"""A board from a crew file: agents and Python members answer the messages that mention them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium import Board, RunResult, RunStatus, TestModel
from podium.crew import load_crew
from podium.errors import CrewFileError
from tests.crew.conftest import WriteCrew

CREW = """
name: room
model: test
agents:
  chair: {call: "members:chair"}
  writer: {role: Writer}
  editor: {role: Editor}
flow:
  board:
    members: [chair, writer, editor]
    opener: chair
    max_mentions: 2
"""
MEMBERS = {
    "members.py": """
    def chair(board, post):
        if post.sender == "user":
            return f"@writer draft {board.task}. @editor stand by"
        return "thanks"
    """
}


async def run(path: Path, task: str = "tides", **scripts: list[Any]) -> tuple[RunResult[Any], TestModel]:
    model = TestModel(scripts)
    result = await load_crew(path).run(task, model=model)
    return result, model


def thread(result: RunResult[Any]) -> list[tuple[int, str, Any, int | None]]:
    state = result.state
    assert isinstance(state, Board)
    return [(p.id, p.sender, p.content, p.reply_to) for p in state.posts]


async def test_mentions_route_to_agents_and_python_members(write_crew: WriteCrew) -> None:
    path = write_crew(CREW, files=MEMBERS)
    result, model = await run(path, writer=["a draft. @editor your turn"], editor=["ok", "looks good @chair"])

    assert result.status is RunStatus.COMPLETED
    assert thread(result) == [
        (1, "user", "tides", None),
        (2, "chair", "@writer draft tides. @editor stand by", 1),
        (3, "writer", "a draft. @editor your turn", 2),
        (4, "editor", "ok", 2),
        (5, "editor", "looks good @chair", 3),
        (6, "chair", "thanks", 5),
    ]
    assert result.output == "thanks"
    prompt = [r for r in model.calls if r.agent == "editor"][1].messages[-1].content
    assert prompt.startswith("writer mentions you in message #3 (a reply to #2):\na draft. @editor your turn")
    assert "#2 chair (reply to #1): @writer draft tides. @editor stand by" in prompt
    assert "(@chair, @writer, @editor)" in prompt


async def test_an_agents_unknown_mention_comes_back_to_it(write_crew: WriteCrew) -> None:
    path = write_crew(CREW, files=MEMBERS)
    result, _ = await run(path, writer=["ask @edtor", "sorry, no more"], editor=["ok"])

    posts = thread(result)
    notice = next(p for p in posts if p[1] == "board")
    assert "did you mean 'editor'?" in notice[2]
    assert posts[-1][1:] == ("writer", "sorry, no more", notice[0])  # the writer was asked again, with the notice


async def test_a_board_inside_a_sequence_sees_what_was_said_before(write_crew: WriteCrew) -> None:
    text = CREW.replace(
        "flow:\n  board:\n    members: [chair, writer, editor]\n    opener: chair\n    max_mentions: 2\n",
        "flow:\n  sequential:\n    - editor\n    - board: {members: [writer], opener: writer}\n",
    )
    path = write_crew(text, files=MEMBERS)
    result, model = await run(path, editor=["three notes"], writer=["the post"])

    assert result.status is RunStatus.COMPLETED
    assert result.output == "the post"
    assert [(t.speaker, t.content) for t in result.state.turns] == [("editor", "three notes"), ("board", "the post")]
    prompt = next(r for r in model.calls if r.agent == "writer").messages[-1].content
    assert "#1 editor: three notes" in prompt
    assert "#2 user: tides" in prompt


async def test_limits_of_the_board_come_from_the_file(write_crew: WriteCrew) -> None:
    text = CREW.replace("max_mentions: 2", "max_mentions: 2\n    max_exchanges: 2")
    path = write_crew(text.replace("opener: chair", "opener: writer"), files=MEMBERS, name="pingpong.yaml")
    result, _ = await run(path, writer=["@editor one", "@editor two"], editor=["@writer one", "@writer two"])
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_exchanges")
    assert "writer and editor have addressed each other 3 times in a row" in str(result.reason)


def test_the_outline_shows_the_board(write_crew: WriteCrew) -> None:
    crew = load_crew(write_crew(CREW, files=MEMBERS))
    assert crew.outline() == [
        "board (opener: chair, max_mentions: 2, max_depth: 8)",
        "  chair",
        "  writer",
        "  editor",
    ]
    assert crew.workflow.step_paths() == ["board", "chair", "writer", "editor"]


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("opener: chair", "opener: chiar", "flow.board.opener", "'chiar' is not a member of the board"),
        ("[chair, writer, editor]", "[chair, writer, editr]", "flow.board.members[2]", "no agent 'editr'"),
        ("max_mentions: 2", "max_mention: 2", "flow.board.max_mention", "did you mean 'max_mentions'?"),
        ("max_mentions: 2", "max_mentions: 0", "flow.board.max_mentions", "greater than or equal to 1"),
        ("[chair, writer, editor]", "[chair, writer, {name: user, sequential: [editor]}]",
         "flow.board.members[2]", "a board member cannot be called 'user'"),
    ],
)  # fmt: skip
def test_mistakes_in_a_board_are_located(write_crew: WriteCrew, old: str, new: str, field: str, message: str) -> None:
    path = write_crew(CREW.replace(old, new), files=MEMBERS)
    with pytest.raises(CrewFileError) as caught:
        load_crew(path)
    assert caught.value.path == str(path)
    assert caught.value.line is not None
    assert caught.value.field == field
    assert message in str(caught.value)
