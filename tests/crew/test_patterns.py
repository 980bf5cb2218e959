"""Every pattern from a crew file builds and runs on the test model; routing agents answer scripted decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium import Conversation, RunResult, RunStatus, Tally, TestModel, answer
from podium.crew import load_crew
from tests.crew.conftest import WriteCrew
from tests.crew.outputs import Review

AGENTS = """
name: team
model: test
outputs:
  Review: tests.crew.outputs:Review
agents:
  researcher: {role: Researcher}
  writer: {role: Writer}
  editor: {role: Editor}
  critic: {role: Critic, output: Review}
  manager: {role: Manager}
  judge: {role: Judge}
"""


async def run(path: Path, task: str = "tides", **scripts: list[Any]) -> tuple[RunResult[Conversation], TestModel]:
    model = TestModel(scripts)
    result = await load_crew(path).run(task, model=model)
    return result, model


def said(result: RunResult[Conversation]) -> list[tuple[str, Any]]:
    return [(t.speaker, t.content) for t in result.state.turns if t.kind == "message"]


def prompt_of(model: TestModel, agent: str, call: int = 0) -> str:
    requests = [r for r in model.calls if r.agent == agent]
    return requests[call].messages[-1].content


async def test_sequential_passes_the_conversation_along(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  sequential: [researcher, writer]\n")
    result, model = await run(path, researcher=["three facts"], writer=["a post"])
    assert (result.status, result.output) == (RunStatus.COMPLETED, "a post")
    assert said(result) == [("researcher", "three facts"), ("writer", "a post")]
    assert "Task: tides" in prompt_of(model, "writer")
    assert "- researcher: three facts" in prompt_of(model, "writer")


async def test_an_agent_may_come_back_in_a_sequence(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  sequential: [writer, editor, writer]\n")
    crew = load_crew(path)
    assert crew.workflow.step_paths() == ["writer", "editor", "writer_2"]
    result, _ = await run(path, writer=["draft", "final"], editor=["notes"])
    assert said(result) == [("writer", "draft"), ("editor", "notes"), ("writer", "final")]
    assert result.output == "final"


async def test_parallel_merges_or_lists_the_answers(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  parallel: {branches: [researcher, writer], merge: editor}\n")
    result, model = await run(path, researcher=["facts"], writer=["draft"], editor=["merged"])
    assert result.output == "merged"
    assert "- researcher: facts" in prompt_of(model, "editor")
    assert "- writer: draft" in prompt_of(model, "editor")
    path = write_crew(AGENTS + "flow:\n  parallel: {branches: [researcher, writer]}\n", name="lists.yaml")
    result, _ = await run(path, researcher=["facts"], writer=["draft"])
    assert result.output == ["facts", "draft"]


async def test_supervisor_router_picks_workers_with_instructions_until_done(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  supervisor: {router: manager, workers: [writer, editor], max_rounds: 5}\n")
    decisions = [{"next": "writer", "instruction": "draft it"}, {"next": "editor"}, {"next": "done", "result": "ok"}]
    result, model = await run(path, manager=decisions, writer=["draft"], editor=["edited"])
    assert (result.status, result.output) == (RunStatus.COMPLETED, "ok")
    assert said(result) == [("writer", "draft"), ("editor", "edited")]
    assert "Your part now: draft it" in prompt_of(model, "writer")
    schema = model.calls[0].output_schema
    assert schema is not None
    assert schema["properties"]["next"]["enum"] == ["writer", "editor", "done"]


async def test_a_supervisor_done_without_a_result_gives_the_last_answer(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  supervisor: {router: manager, workers: [writer]}\n")
    result, _ = await run(path, manager=[{"next": "writer"}, {"next": "done"}], writer=["the post"])
    assert result.output == "the post"


async def test_a_supervisor_that_never_finishes_is_limited(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  supervisor: {router: manager, workers: [writer], max_rounds: 2}\n")
    result, _ = await run(path, manager=[{"next": "writer"}] * 5)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_rounds")


async def test_hierarchical_lead_routes_to_teams_and_to_flows(write_crew: WriteCrew) -> None:
    flow = """
    flow:
      hierarchical:
        lead: manager
        teams:
          content: {router: editor, workers: [writer, researcher]}
          review: {sequential: [critic]}
    """
    path = write_crew(AGENTS + flow.replace("\n    ", "\n"))
    lead = [{"next": "content", "instruction": "write about tides"}, {"next": "review"}, {"next": "done"}]
    result, model = await run(
        path,
        manager=lead,
        editor=[{"next": "writer"}, {"next": "done"}],
        writer=["the post"],
        critic=[{"approved": True}],
    )
    assert result.status is RunStatus.COMPLETED
    assert result.output == Review(approved=True)
    assert said(result) == [("content", "the post"), ("review", Review(approved=True))]
    assert "Task: write about tides" in prompt_of(model, "writer")  # the team's task is the lead's instruction


async def test_handoff_agents_answer_or_pass_the_task_on(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  handoff: {start: manager, agents: [manager, writer], max_handoffs: 3}\n")
    result, model = await run(
        path,
        manager=[{"handoff_to": "writer", "note": "needs a post"}],
        writer=[{"handoff_to": "none", "answer": "the post"}],
    )
    assert (result.status, result.output) == (RunStatus.COMPLETED, "the post")
    first = result.state.turns[0]
    assert (first.speaker, first.kind, first.content) == ("manager", "handoff", "needs a post")
    assert "manager (handoff): needs a post" in prompt_of(model, "writer")


async def test_debate_runs_rounds_then_the_judge_decides(write_crew: WriteCrew) -> None:
    path = write_crew(AGENTS + "flow:\n  debate: {debaters: [writer, editor], judge: judge, rounds: 2}\n")
    result, model = await run(path, writer=["yes", "still yes"], editor=["no", "still no"], judge=["yes wins"])
    assert result.output == "yes wins"
    assert [r.agent for r in model.calls].count("writer") == 2
    assert "- editor: no" in prompt_of(model, "writer", 1)


async def test_vote_with_options_tallies_the_choices(write_crew: WriteCrew) -> None:
    flow = "flow:\n  vote: {voters: [writer, editor, researcher], options: [publish, hold], rule: majority}\n"
    result, model = await run(
        write_crew(AGENTS + flow),
        writer=[{"choice": "publish"}],
        editor=[{"choice": "hold", "reason": "too long"}],
        researcher=[{"choice": "publish"}],
    )
    tally = result.output
    assert isinstance(tally, Tally)
    assert (tally.decision, tally.decided, tally.counts) == ("publish", True, {"publish": 2.0, "hold": 1.0})
    schema = model.calls[0].output_schema
    assert schema is not None
    assert schema["properties"]["choice"]["enum"] == ["publish", "hold"]


async def test_a_weighted_vote_and_a_judge_for_ties(write_crew: WriteCrew) -> None:
    weighted = "flow:\n  vote: {voters: [writer, editor], rule: weighted, weights: {writer: 1, editor: 3}}\n"
    result, _ = await run(write_crew(AGENTS + weighted), writer=["A"], editor=["B"])
    assert result.output.decision == "B"
    tie = "flow:\n  vote: {voters: [writer, editor], rule: plurality, options: [A, B], judge: judge}\n"
    path = write_crew(AGENTS + tie, name="tie.yaml")
    result, _ = await run(path, writer=[{"choice": "A"}], editor=[{"choice": "B"}], judge=[{"choice": "B"}])
    assert (result.output.decision, result.output.by_judge) == ("B", True)


async def test_loop_until_the_critic_approves(write_crew: WriteCrew) -> None:
    flow = "flow:\n  loop: {body: [writer, critic], max_iterations: 5, until: {agent: critic, field: approved}}\n"
    result, _ = await run(
        write_crew(AGENTS + flow),
        writer=["draft 1", "draft 2"],
        critic=[{"approved": False, "notes": "shorter"}, {"approved": True}],
    )
    assert result.status is RunStatus.COMPLETED
    assert result.output == Review(approved=True)
    assert [s for s, _ in said(result)] == ["writer", "critic", "writer", "critic"]


async def test_loop_stops_or_limits_at_its_maximum(write_crew: WriteCrew) -> None:
    flow = "flow:\n  loop: {body: [writer], max_iterations: 2}\n"
    result, _ = await run(write_crew(AGENTS + flow), writer=["one", "two", "three"])
    assert (result.status, result.output) == (RunStatus.COMPLETED, "two")
    flow = "flow:\n  loop: {body: [writer], max_iterations: 2, on_max: limit}\n"
    result, _ = await run(write_crew(AGENTS + flow, name="limit.yaml"), writer=["one", "two", "three"])
    assert result.status is RunStatus.LIMITED


async def test_planner_fans_subtasks_out_and_synthesizes(write_crew: WriteCrew) -> None:
    flow = "flow:\n  planner: {plan: manager, worker: researcher, synthesize: writer, max_subtasks: 3}\n"
    result, model = await run(
        write_crew(AGENTS + flow),
        manager=[{"subtasks": ["costs", "sites"]}],
        researcher=["cheap", "coasts"],
        writer=["summary"],
    )
    assert result.output == "summary"
    assert sorted(prompt_of(model, "researcher", i).rsplit("Your part now: ", 1)[1] for i in (0, 1)) == [
        "costs",
        "sites",
    ]
    assert [(t.about, t.content) for t in result.state.turns if t.kind == "subtask"] == [
        ("costs", "cheap"),
        ("sites", "coasts"),
    ]


async def test_nested_flows_run_as_sub_workflows_over_the_conversation(write_crew: WriteCrew) -> None:
    flow = """
    flow:
      sequential:
        - researcher
        - parallel:
            branches: [{sequential: [writer, editor]}, {name: second, sequential: [critic]}]
            merge: judge
    """
    path = write_crew(AGENTS + flow.replace("\n    ", "\n"))
    crew = load_crew(path)
    assert crew.workflow.step_paths() == [
        "researcher",
        "parallel",
        "parallel/sequential",
        "parallel/sequential/writer",
        "parallel/sequential/editor",
        "parallel/second",
        "parallel/second/critic",
        "parallel/judge",
    ]
    result, model = await run(path, researcher=["facts"], writer=["draft"], editor=["edited"], judge=["verdict"])
    assert result.output == "verdict"
    assert "- researcher: facts" in prompt_of(model, "writer")  # a nested flow sees the conversation so far
    assert said(result) == [("researcher", "facts"), ("parallel", "verdict")]


async def test_every_pattern_runs_unscripted_on_the_test_model(write_crew: WriteCrew) -> None:
    flows = [
        "sequential: [researcher, writer]",
        "parallel: {branches: [researcher, writer], merge: editor}",
        "supervisor: {router: manager, workers: [writer]}",
        "hierarchical: {lead: manager, teams: {t: {router: editor, workers: [writer]}}}",
        "handoff: {start: manager, agents: [manager, writer]}",
        "debate: {debaters: [writer, editor], judge: judge}",
        "vote: {voters: [writer, editor], options: [approve, hold]}",
        "loop: {body: [writer, critic], max_iterations: 3, until: {agent: critic, field: approved}}",
        "planner: {plan: manager, worker: researcher, synthesize: writer}",
    ]
    for index, flow in enumerate(flows):
        path = write_crew(AGENTS + f"flow:\n  {flow}\n", name=f"crew{index}.yaml")
        result = await load_crew(path).run("tides")
        assert result.status is RunStatus.COMPLETED, (flow, result.reason)


async def test_an_approval_waits_for_a_person_then_uses_their_answer(write_crew: WriteCrew, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    crew_text = AGENTS.replace("editor: {role: Editor}", "editor: {role: Editor, approval: 'Publish this?'}")
    crew = load_crew(write_crew(crew_text + "flow:\n  sequential: [writer, editor]\n"))
    model = TestModel({"writer": ["draft"] * 3, "editor": ["edited"] * 6})
    waiting = await crew.run("tides", model=model, store=store)
    assert (waiting.status, waiting.waiting) == (RunStatus.WAITING, ("2.0#1",))
    await answer(waiting.run_id, "2.0#1", {"decision": "approve"}, store=store)
    done = await crew.resume(waiting.run_id, model=model, store=store)
    assert (done.status, done.output) == (RunStatus.COMPLETED, "edited")

    edited = await crew.run("tides", model=model, store=store)
    await answer(edited.run_id, "2.0#1", {"decision": "edit", "value": "better"}, store=store)
    assert (await crew.resume(edited.run_id, model=model, store=store)).output == "better"

    rejected = await crew.run("tides", model=model, store=store)
    await answer(rejected.run_id, "2.0#1", {"decision": "reject", "comment": "no"}, store=store)
    failed = await crew.resume(rejected.run_id, model=model, store=store)
    assert failed.status is RunStatus.FAILED
    assert "a person rejected its answer: no" in str(failed.reason)


@pytest.mark.parametrize("as_soul", [True, False])
async def test_agents_come_from_soul_files_with_crew_overrides(write_crew: WriteCrew, as_soul: bool) -> None:
    soul = """
    ---
    name: somebody
    role: Senior writer
    goal: Write clearly
    tools: [count]
    ---
    You write for busy engineers.
    """
    spec = "{soul: agents/writer.md, goal: Write briefly}" if as_soul else "{role: Senior writer, goal: Write briefly}"
    crew = load_crew(
        write_crew(
            f"""
            name: souls
            model: test
            tools:
              count: tests.crew.outputs:word_count
              shout: tests.crew.outputs:shout
            agents:
              writer: {spec}
              loud: {{role: Crier, tools: [shout], model: openai:gpt-4.1-mini}}
            flow:
              sequential: [writer, loud]
            """,
            files={"agents/writer.md": soul},
        )
    )
    writer = crew.agents["writer"]
    assert (writer.name, writer.role, writer.goal) == ("writer", "Senior writer", "Write briefly")
    assert list(writer.tools) == (["count"] if as_soul else [])
    assert ("busy engineers" in writer.instructions) is as_soul
    assert list(crew.agents["loud"].tools) == ["shout"]
    assert crew.agents["loud"].model == "openai:gpt-4.1-mini"
    forced = load_crew(crew.path, model="test")
    assert forced.agents["loud"].model is None
    assert forced.model == "test"


async def test_a_crew_file_sets_limits_store_and_model(write_crew: WriteCrew, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'crew.db'}"
    text = AGENTS + f"store: {store}\nlimits: {{max_steps: 1}}\nflow:\n  sequential: [researcher, writer]\n"
    crew = load_crew(write_crew(text))
    assert (crew.name, crew.model, crew.store) == ("team", "test", store)
    assert crew.limits is not None
    assert crew.limits.max_steps == 1
    result = await crew.run("tides")
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_steps")
    assert result.run_id in [info.run_id for info in await crew_store_runs(store)]


async def crew_store_runs(url: str) -> list[Any]:
    from podium import open_store

    store = open_store(url)
    await store.open()
    return await store.list_runs()


async def test_each_crew_imports_its_own_modules(write_crew: WriteCrew, tmp_path: Path) -> None:
    tools = "from podium import tool\n\n@tool\ndef say() -> str:\n    '''Say it.'''\n    return {!r}\n"
    crews = []
    for word in ("first", "second"):
        folder = tmp_path / word
        folder.mkdir()
        (folder / "local_tools.py").write_text(tools.format(word))
        crews.append(
            write_crew(
                "name: t\ntools: {say: local_tools:say}\nagents: {a: {tools: [say]}}\nflow: {sequential: [a]}\n",
                name=f"{word}/crew.yaml",
            )
        )
    for crew_path, word in zip([*crews, crews[0]], ["first", "second", "first"], strict=True):
        said_tool = load_crew(crew_path).tools["say"]
        assert (await said_tool({})).value == word


async def test_plain_functions_become_tools_named_by_the_crew(write_crew: WriteCrew) -> None:
    text = """
    name: t
    tools: {loud: tests.crew.outputs:shout, words: tests.crew.outputs:word_count}
    agents: {a: {tools: [loud, words]}}
    flow: {sequential: [a]}
    """
    crew = load_crew(write_crew(text))
    assert {name: tool.name for name, tool in crew.tools.items()} == {"loud": "loud", "words": "words"}
    assert crew.tools["words"].idempotent
    assert (await crew.tools["loud"]({"text": "hi"})).value == "HI"
