"""The board (podium.flow.patterns._board): @mentions routed to members, answers posted back, limits on loops."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from podium import (
    Agent,
    Board,
    ConfigError,
    Conversation,
    Done,
    Limits,
    Post,
    RunStatus,
    Send,
    SQLiteStore,
    TestModel,
    board,
    sequential,
    step,
    supervisor,
)
from podium.flow.patterns._thread import mentions_in
from tests.durability.crashy import Crash


def thread(state: Board) -> list[tuple[int, str, Any, int | None]]:
    return [(p.id, p.sender, p.content, p.reply_to) for p in state.posts]


def member(name: str, answer: Any = None) -> Any:
    """A member that answers ``answer`` (or ``"<name> on #<id>"``) and records what it was asked."""
    asked: list[int] = []

    def fn(state: Board, post: Post) -> Any:
        asked.append(post.id)
        return answer if answer is not None else f"{name} on #{post.id}"

    fn.__name__ = name
    fn.asked = asked  # type: ignore[attr-defined]
    return fn


class Text(BaseModel):
    task: str = ""


# ---------------------------------------------------------------------------------------------- mentions


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("@writer draft it", ["writer"]),
        ("ask @writer, then @editor-in-chief.", ["writer", "editor-in-chief"]),
        ("(@a) @b: @a again, @c-", ["a", "b", "c"]),  # distinct, first appearance; a trailing '-' is not a name's
        ("mail ana@example.com or see https://x.org/@who", []),
        ("not `@code` nor\n```\n@fenced\n```\nbut @real", ["real"]),
        (r"escaped \@writer and @@double and 2@x", []),
        ("@9lives and @_ok", ["_ok"]),
        ("I, @lead, ask @writer", ["writer"]),  # the sender's own name is not a mention
    ],
)
def test_the_mention_grammar(text: str, found: list[str]) -> None:
    assert mentions_in(text, sender="lead") == found


def test_a_post_reads_its_mentions_unless_given() -> None:
    assert Post(sender="a", content="@b and @a").mentions == ["b"]
    assert Post(sender="a", content={"note": "ask @c"}).mentions == ["c"]  # structured: the strings in it
    assert Post(sender="board", content="@b", mentions=[]).mentions == []


class Note(BaseModel):
    summary: str
    steps: list[str] = []
    owners: set[str] = set()


@pytest.mark.parametrize("space", ["\n", "\t", "\r\n"])
def test_a_structured_answer_is_read_from_its_strings_not_its_json(space: str) -> None:
    # in JSON the newline is the two characters '\n', and the 'n' before '@' used to hide the mention
    note = Note(summary=f"Plan ready.{space}@writer please draft it")
    assert Post(sender="lead", content=note).mentions == ["writer"]
    assert Post(sender="lead", content={"todo": [f"x{space}@editor", {"then": f"y{space}@writer"}]}).mentions == [
        "editor",
        "writer",
    ]


def test_a_structured_answer_is_read_in_a_fixed_order() -> None:
    note = Note(summary="@a first", steps=["`@code` is not one", "@b, @lead and @a"], owners={"@d", "@c"})
    assert Post(sender="lead", content=note).mentions == ["a", "b", "c", "d"]  # fields, items; set items sorted
    assert Post(sender="lead", content={"@key": "not a key, @value"}).mentions == ["value"]
    assert Post(sender="lead", content=[1, None, 2.5, "@x"]).mentions == ["x"]


# ---------------------------------------------------------------------------------------------- routing


async def test_a_mention_is_a_request_whose_answer_comes_back_as_a_reply() -> None:
    seen: list[tuple[list[tuple[int, str, Any, int | None]], Post]] = []

    def writer(state: Board, post: Post) -> str:
        seen.append((thread(state), post))
        return "a draft"

    lead = member("lead")
    result = await board([lead, writer]).run("@writer draft the post")

    assert result.status is RunStatus.COMPLETED
    assert result.output == "a draft"
    assert thread(result.state) == [(1, "user", "@writer draft the post", None), (2, "writer", "a draft", 1)]
    assert [(p.kind, p.depth) for p in result.state.posts] == [("message", 0), ("answer", 1)]
    before, request = seen[0]
    assert before == [(1, "user", "@writer draft the post", None)]
    assert (request.id, request.sender, request.mentions) == (1, "user", ["writer"])
    assert lead.asked == []
    assert result.state.members == ["lead", "writer"]


async def test_several_mentions_fan_out_at_once_and_answer_in_message_order() -> None:
    started: list[str] = []
    everyone = asyncio.Event()

    def slow_first(name: str, delay: float) -> Any:
        async def fn(state: Board, post: Post) -> str:
            started.append(name)
            if len(started) == 3:
                everyone.set()
            await asyncio.wait_for(everyone.wait(), 2)  # all three run at the same time
            await asyncio.sleep(delay)
            return f"{name} answers"

        fn.__name__ = name
        return fn

    members = [slow_first("a", 0.05), slow_first("b", 0.0), slow_first("c", 0.02)]
    result = await board(members).run("@c @a hello @b @a")

    assert result.status is RunStatus.COMPLETED
    assert result.state.post(1).mentions == ["c", "a", "b"]  # once each, in the order written
    assert thread(result.state)[1:] == [(2, "c", "c answers", 1), (3, "a", "a answers", 1), (4, "b", "b answers", 1)]
    assert [p.id for p in result.state.replies(1)] == [2, 3, 4]
    assert result.output == "b answers"


async def test_an_answer_that_mentions_another_member_chains() -> None:
    lead = member("lead", "@analyst numbers please, then @writer")
    analyst = member("analyst", "42. @writer use it")
    writer = member("writer")
    result = await board([lead, analyst, writer], opener="lead").run("plan the launch")

    assert result.status is RunStatus.COMPLETED
    assert thread(result.state) == [
        (1, "user", "plan the launch", None),
        (2, "lead", "@analyst numbers please, then @writer", 1),
        (3, "analyst", "42. @writer use it", 2),
        (4, "writer", "writer on #2", 2),
        (5, "writer", "writer on #3", 3),
    ]
    assert [p.depth for p in result.state.posts] == [0, 1, 2, 2, 3]
    assert [p.id for p in result.state.chain(5)] == [1, 2, 3, 5]
    assert writer.asked == [2, 3]
    assert result.output == "writer on #3"


async def test_without_an_opener_a_message_that_mentions_no_one_gets_a_notice() -> None:
    result = await board([member("lead")]).run("hello?")

    assert result.status is RunStatus.COMPLETED
    assert [(p.sender, p.kind) for p in result.state.posts] == [("user", "message"), ("board", "notice")]
    assert (
        result.output
        == "message #1 mentions no member, so no one was asked. The members are lead: mention one as @name."
    )


async def test_a_structured_answer_with_a_mention_on_a_new_line_is_routed() -> None:
    def lead(state: Board, post: Post) -> Note:
        return Note(summary="Plan ready.\n@writer please draft it")

    writer = member("writer", "the draft")
    result = await board([lead, writer], opener="lead").run("go")

    assert result.status is RunStatus.COMPLETED
    assert writer.asked == [2]
    assert result.state.post(2).mentions == ["writer"]
    assert result.output == "the draft"


@pytest.mark.parametrize("name", ["user", "board"])
async def test_a_member_mentioning_the_user_or_the_board_asks_no_one_and_its_answer_stands(name: str) -> None:
    lead = member("lead", f"@{name} here is the plan: ship on Monday")
    result = await board([lead], opener="lead").run("plan the launch")

    assert result.status is RunStatus.COMPLETED
    assert lead.asked == [1]  # not sent back a notice, so not asked again
    assert [(p.sender, p.kind, p.mentions) for p in result.state.posts] == [
        ("user", "message", ["lead"]),
        ("lead", "answer", [name]),
    ]
    assert result.output == f"@{name} here is the plan: ship on Monday"


async def test_a_mention_of_the_user_or_the_board_beside_members_asks_only_the_members() -> None:
    def lead(state: Board, post: Post) -> str:
        return "@user soon. @writer draft, @board note it, @editr check" if post.id == 1 else "@user sorry"

    writer, editor = member("writer"), member("editor")
    result = await board([lead, writer, editor], opener="lead").run("go")

    assert result.status is RunStatus.COMPLETED
    assert [(p.sender, p.mentions) for p in result.state.posts][1:] == [
        ("lead", ["user", "writer", "board", "editr"]),
        ("board", ["lead"]),
        ("writer", []),
        ("lead", ["user"]),
    ]
    notice = result.state.post(3)
    assert notice.kind == "notice"
    assert notice.content == (  # the unknown name only: not 'user', not 'board'
        "message #2 was not delivered to 'editr': no member has that name (did you mean 'editor'?). "
        "The members are lead, writer, editor."
    )
    assert writer.asked == [2]


@pytest.mark.parametrize("opening", ["@board hello", "hello @user"])
async def test_an_opening_that_mentions_only_the_user_or_the_board_goes_to_the_opener(opening: str) -> None:
    lead = member("lead", "hi")
    result = await board([lead], opener="lead").run(opening)
    assert (result.status, result.output, lead.asked) == (RunStatus.COMPLETED, "hi", [1])
    assert "lead" in result.state.post(1).mentions

    alone = await board([member("lead")]).run(opening)
    assert [p.kind for p in alone.state.posts] == ["message", "notice"]
    assert alone.output.startswith("message #1 mentions no member, so no one was asked.")


async def test_a_member_mentioning_itself_is_not_asked_again() -> None:
    lead = member("lead", "as @lead I say: done")
    result = await board([lead], opener="lead").run("go")
    assert lead.asked == [1]
    assert result.state.post(2).mentions == []


async def test_a_workflow_member_gets_the_request_and_answers_with_its_output() -> None:
    def echo(state: Text) -> dict[str, Any]:
        return {"task": f"got: {state.task}"}

    team = sequential(echo, state=Text, name="team", input="task", output="task")
    result = await board({"team": team}).run("@team hello")
    assert result.output == "got: @team hello"
    assert result.state.post(2).mentions == []  # the team's own name, as the sender, is not a mention


async def test_a_board_can_be_a_worker_of_a_supervisor() -> None:
    room = board([member("lead", "@writer go"), member("writer", "the draft")], name="room", opener="lead")

    def router(state: Conversation) -> Any:
        return Send("room", "tides") if state.round == 0 else Done()

    result = await supervisor(router, {"room": room}).run("write")
    assert result.status is RunStatus.COMPLETED
    assert result.output == "the draft"
    turn = result.state.last("room")
    assert turn is not None
    assert (turn.content, turn.about) == ("the draft", "tides")  # the instruction was the board's opening message


# ---------------------------------------------------------------------------------------------- mistakes


async def test_an_unknown_name_from_the_user_is_a_notice_on_the_board() -> None:
    writer = member("writer")
    result = await board([writer, member("editor")]).run("@writr draft it, @editor check it")

    assert result.status is RunStatus.COMPLETED
    notice = result.state.post(2)
    assert (notice.sender, notice.kind, notice.reply_to, notice.mentions) == ("board", "notice", 1, [])
    assert "'writr'" in notice.content
    assert "did you mean 'writer'?" in notice.content
    assert "The members are writer, editor." in notice.content
    assert thread(result.state)[2] == (3, "editor", "editor on #1", 1)  # the known name is still asked
    assert writer.asked == []


async def test_an_unknown_name_from_a_member_is_sent_back_to_it_and_it_can_correct_itself() -> None:
    tries: list[str] = []

    def lead(state: Board, post: Post) -> str:
        tries.append(post.sender)
        return "@writr go" if post.sender == "user" else "sorry: @writer go"

    writer = member("writer")
    result = await board([lead, writer], opener="lead").run("start")

    assert result.status is RunStatus.COMPLETED
    assert tries == ["user", "board"]  # the notice mentions the sender, so it is asked again
    notice = result.state.post(3)
    assert (notice.sender, notice.mentions, notice.reply_to) == ("board", ["lead"], 2)
    assert thread(result.state)[3:] == [(4, "lead", "sorry: @writer go", 3), (5, "writer", "writer on #4", 4)]


async def test_a_storm_of_mentions_is_capped_with_a_notice() -> None:
    names = [f"m{n}" for n in range(8)]
    crowd = [member(n) for n in names]
    loud = member("loud", " ".join(f"@{n}" for n in names))
    result = await board([loud, *crowd], opener="loud", max_mentions=3).run("go")

    assert result.status is RunStatus.COMPLETED
    assert [m.asked for m in crowd] == [[2], [2], [2], [], [], [], [], []]
    notice = result.state.post(3)
    assert notice.kind == "notice"
    assert notice.mentions == []  # told, not asked again (it would storm again)
    assert "only the first 3 were asked" in notice.content
    assert "Not asked: m3, m4, m5, m6, m7." in notice.content


async def test_a_failing_member_fails_the_run_or_becomes_a_notice_to_whoever_asked() -> None:
    def broken(state: Board, post: Post) -> str:
        raise ValueError("no ink")

    lead = member("lead", "@broken write")
    failed = await board([lead, broken], opener="lead").run("go")
    assert failed.status is RunStatus.FAILED
    assert "no ink" in str(failed.error)

    calls: list[str] = []

    def lead_again(state: Board, post: Post) -> str:
        calls.append(post.sender)
        return "@broken write" if post.sender == "user" else "fine, I will"

    lead_again.__name__ = "lead"
    told = await board([lead_again, broken], opener="lead", on_failure="notice").run("go")
    assert told.status is RunStatus.COMPLETED
    notice = told.state.post(3)
    assert (notice.sender, notice.mentions, notice.reply_to) == ("board", ["lead"], 2)
    assert "broken could not answer message #2: ValueError: no ink" in notice.content
    assert calls == ["user", "board"]
    assert told.output == "fine, I will"


# ---------------------------------------------------------------------------------------------- limits


def counting(name: str, other: str) -> Any:
    """Answers ``@other`` with something new each time (so only the board's own bounds can stop it)."""
    count = Counter[str]()

    def fn(state: Board, post: Post) -> str:
        count[name] += 1
        return f"@{other} point {count[name]}"

    fn.__name__ = name
    return fn


async def test_ping_pong_between_two_members_ends_the_run_limited() -> None:
    result = await board([counting("a", "b"), counting("b", "a")], opener="a", max_exchanges=4, max_depth=50).run(
        "start"
    )

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_exchanges"
    assert result.reason is not None
    assert "a and b have addressed each other 5 times in a row (#2 -> #3 -> #4 -> #5 -> #6)" in result.reason
    assert len(result.state.posts) == 6  # the partial thread is kept


async def test_a_loop_that_says_nothing_new_is_stopped_by_no_progress_detection() -> None:
    ping, pong = member("ping", "@pong ping"), member("pong", "@ping pong")
    result = await board([ping, pong], opener="ping", max_exchanges=100, max_depth=100).run("start")

    assert result.status is RunStatus.LIMITED
    assert result.limit == "no_progress"
    assert len(result.state.posts) < 12  # stopped after a few rounds, not at a cap


async def test_a_reply_chain_deeper_than_max_depth_ends_the_run_limited() -> None:
    relay = [counting("a", "b"), counting("b", "c"), counting("c", "a")]  # a round, never the same pair twice
    result = await board(relay, opener="a", max_depth=4).run("start")

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_depth"
    assert result.reason is not None
    assert result.reason == (
        "message #5 by a asks b, whose answers would be 5 replies deep "
        "(the chain #1 user -> #2 a -> #3 b -> #4 c -> #5 a); max_depth=4"
    )
    assert result.state.post(5).depth == 4


async def test_a_member_that_repeats_its_mistake_after_every_notice_is_stopped_as_a_notice_loop() -> None:
    stubborn = member("lead", "@writr go")  # each notice quotes another message number: never a repeat
    result = await board([stubborn, member("writer")], opener="lead").run("start")

    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_depth")
    assert stubborn.asked == [1, 3, 5, 7]
    assert result.reason is not None
    assert "the chain #1 user -> #2 lead -> #3 board -> #4 lead -> #5 board -> #6 lead -> #7 board" in result.reason
    assert "It is a notice loop: lead was sent 4 of the board's notices in this chain (#3, #5, #7, #9)" in (
        result.reason
    )
    assert "message #8 was not delivered to 'writr'" in result.reason


async def test_a_member_that_keeps_asking_a_failing_member_is_stopped_as_a_notice_loop() -> None:
    def broken(state: Board, post: Post) -> str:
        raise ValueError("no ink")

    lead = member("lead", "@broken write")
    result = await board([lead, broken], opener="lead", on_failure="notice", max_depth=4).run("go")

    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_depth")
    assert result.reason is not None
    assert "It is a notice loop: lead was sent 2 of the board's notices in this chain (#3, #5)" in result.reason
    assert "broken could not answer message #4: ValueError: no ink" in result.reason


async def test_a_board_longer_than_max_messages_ends_the_run_limited() -> None:
    crowd = [member(f"m{n}", f"@m{(n + 1) % 4} @m{(n + 2) % 4} {n}") for n in range(4)]
    result = await board(crowd, opener="m0", max_messages=6).run("go")

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_messages"
    assert result.reason is not None
    assert "max_messages=6" in result.reason
    assert len(result.state.posts) <= 6


async def test_the_runs_own_limits_apply() -> None:
    result = await board([counting("a", "b"), counting("b", "a")], opener="a").run("start", limits=Limits(max_steps=5))
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_steps")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least one member"):
        board([])
    with pytest.raises(ConfigError, match="cannot be called 'user'"):
        board({"user": member("x")})
    with pytest.raises(ConfigError, match="could not be mentioned"):
        board({"näme": member("x")})
    with pytest.raises(ConfigError, match=r"opener 'wrtier' is not one of .* \(did you mean 'writer'\?\)"):
        board([member("writer")], opener="wrtier")
    with pytest.raises(ConfigError, match="max_exchanges must be at least 2"):
        board([member("writer")], max_exchanges=1)
    with pytest.raises(ConfigError, match="on_failure"):
        board([member("writer")], on_failure="ignore")


# ---------------------------------------------------------------------------------------------- agents


async def test_an_agent_is_asked_the_request_and_the_thread_and_may_mention_others() -> None:
    model = TestModel({"lead": ["@writer please draft it"], "writer": ["the draft"]})
    lead = Agent("lead", role="Lead", model=model)
    writer = Agent("writer", role="Writer", model=model)
    result = await board([lead, writer], opener="lead").run("a post on tides")

    assert thread(result.state) == [
        (1, "user", "a post on tides", None),
        (2, "lead", "@writer please draft it", 1),
        (3, "writer", "the draft", 2),
    ]
    prompt = next(r for r in model.calls if r.agent == "writer").messages[-1].content
    assert prompt.startswith("lead mentions you in message #2 (a reply to #1):\n@writer please draft it\n")
    assert "#1 user: a post on tides" in prompt
    assert "posted on the board as a reply to #2" in prompt
    assert "(@lead, @writer)" in prompt


# ---------------------------------------------------------------------------------------------- durability


async def test_a_crash_in_the_middle_of_a_fan_out_resumes_without_asking_finished_members_again(
    tmp_path: Path,
) -> None:
    calls: Counter[str] = Counter()
    crash = {"armed": True}
    fast_done = asyncio.Event()

    async def fast(state: Board, post: Post) -> str:
        calls["fast"] += 1
        fast_done.set()
        return "fast answer"

    async def slow(state: Board, post: Post) -> str:
        calls["slow"] += 1
        await asyncio.wait_for(fast_done.wait(), 2)
        await asyncio.sleep(0.05)  # the sibling's completion is journaled first
        if crash["armed"]:
            raise Crash
        return "slow answer @closer"

    closer = member("closer", "closed")
    workflow = board([step(fast, name="fast"), step(slow, name="slow"), closer])
    store = SQLiteStore(tmp_path / "board.db")
    try:
        with pytest.raises(Crash):
            await workflow.run("@fast @slow go", run_id="r1", store=store)
        crash["armed"] = False
        result = await workflow.resume("r1", store=store)
    finally:
        await store.close()

    assert result.status is RunStatus.COMPLETED
    assert calls == Counter({"fast": 1, "slow": 2})  # the finished answer was read back from the journal
    assert closer.asked == [3]
    assert thread(result.state) == [
        (1, "user", "@fast @slow go", None),
        (2, "fast", "fast answer", 1),
        (3, "slow", "slow answer @closer", 1),
        (4, "closer", "closed", 3),
    ]
