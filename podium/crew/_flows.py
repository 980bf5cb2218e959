"""Building a crew's flow: each pattern key becomes the pattern builder's workflow over a ``Conversation``.

The team patterns (supervisor, hierarchical, handoff, debate, vote, planner) already run over a conversation; a
``board`` runs over its own thread (a :class:`~podium.Board`), and its members are asked the messages that
mention them.
For ``sequential``, ``parallel`` and ``loop`` each member is wrapped so its answer becomes a turn (and the
result), and podium's own builders are used with ``state=Conversation``.

A nested flow is a sub-workflow. As a step of ``sequential``, ``parallel`` or ``loop`` it works on a copy of the
conversation so far; as a member of the other patterns it starts a conversation of its own whose task is what it
was sent (a supervisor's instruction, a planner's subtask) or the team's task. Either way its result is one turn
(and the answer) in the outer conversation. It is named by its ``name:``, else by its pattern (``parallel``,
``parallel_2``... when a flow has several).

An ``events`` flow is ``event_driven`` over the conversation: the run's task is validated into the ``start``
event, each subscriber gets the event it reacts to as its part, its answer becomes a turn, and an answer that is
one of the crew's declared events is emitted (Python members may also ``podium.context().emit(...)``). The result
is the last answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from podium import (
    ConfigError,
    Conversation,
    CrewFileError,
    Limits,
    StepSpec,
    Turn,
    Workflow,
    WorkflowDefinitionError,
    board,
    context,
    debate,
    escalate,
    event_driven,
    handoff,
    hierarchical,
    loop,
    parallel,
    planner,
    sequential,
    step,
    supervisor,
    vote,
)
from podium.crew import _format as fmt
from podium.crew._members import Roster
from podium.crew._yaml import Locator, Path_, did_you_mean

__all__ = ["FlowBuilder"]

Built = Callable[..., Any] | Workflow[Any] | StepSpec


class FlowBuilder:
    """Turns a validated ``flow:`` into a workflow, checking every name it uses against the crew."""

    def __init__(self, roster: Roster, locator: Locator, events: Mapping[str, type[BaseModel]] | None = None) -> None:
        self.roster = roster
        self.locator = locator
        self.events = dict(events or {})

    def build(self, flow: Any, path: Path_, name: str, limits: Limits | None = None) -> Workflow[Conversation]:
        """The workflow for one flow mapping at ``path``.

        Raises:
            CrewFileError: a name is unknown, or the pattern refused its settings (pointing at ``path``).
        """
        pattern = str(fmt.pattern_of(flow))
        at = (*path, pattern)
        try:
            built: Workflow[Conversation] = getattr(self, f"_{pattern}")(getattr(flow, pattern), at, name, limits)
        except CrewFileError:
            raise
        except (WorkflowDefinitionError, ConfigError) as exc:
            raise self.locator.error(at, str(exc)) from exc
        return built

    # -- members ----------------------------------------------------------------------------------------------

    def _members(
        self, values: Sequence[Any], path: Path_, *, repeat: bool = False, goto: bool = False
    ) -> list[tuple[str, str, Built]]:
        """``(step name, speaker, member)`` for each value: an agent that answers (with its failure handling, if it
        has some), or a nested flow.

        Args:
            repeat: an agent may appear more than once (its steps are named ``writer``, ``writer_2``...).
            goto: a member's ``on_error: {goto: ...}`` may name another of these members.
        """
        taken: dict[str, int] = {}
        members = []
        for index, value in enumerate(values):
            where = (*path, index)
            speaker = self._name(value, where, taken, repeat)
            step_name = speaker if taken[speaker] == 1 else f"{speaker}_{taken[speaker]}"
            members.append((step_name, speaker, self._member(value, where, speaker)))
        names = [step_name for step_name, _, _ in members]
        for index, value in enumerate(values):
            target = value.on_error.goto if isinstance(value, fmt.MemberSpec) and value.on_error else None
            if target is None:
                continue
            where = (*path, index, "on_error", "goto")
            if not goto:
                raise self.locator.error(where, "goto is for members of sequential and loop flows and team workers")
            if target not in names or target == names[index]:
                others = [n for n in names if n != names[index]]
                raise self.locator.error(where, f"{target!r} is not another member here{did_you_mean(target, others)}")
        return members

    def _name(self, value: Any, where: Path_, taken: dict[str, int], repeat: bool) -> str:
        if isinstance(value, str):
            self.roster.check(value, where)
            name = value
        elif isinstance(value, fmt.MemberSpec):
            self.roster.check(value.agent, (*where, "agent"))
            name = value.agent
        else:
            name = value.name or str(fmt.pattern_of(value))
            if value.name is None and name in taken:  # the second nested parallel is parallel_2, and so on
                base, number = name, 2
                while f"{base}_{number}" in taken:
                    number += 1
                name = f"{base}_{number}"
        if name in taken and not (repeat and isinstance(value, str | fmt.MemberSpec)):
            raise self.locator.error(where, f"{name!r} appears twice here; members of one pattern need distinct names")
        taken[name] = taken.get(name, 0) + 1
        return name

    def _member(self, value: Any, where: Path_, name: str) -> Built:
        if isinstance(value, str):
            return self.roster.answerer(value)
        if isinstance(value, fmt.MemberSpec):
            return self._handled(value, where, name)
        return self.build(value, where, name)

    def _handled(self, value: fmt.MemberSpec, where: Path_, name: str) -> StepSpec:
        """An agent member with its ``fallbacks`` and ``on_error``, as a step spec."""
        options: dict[str, Any] = {}
        alternatives = []
        for index, other in enumerate(value.fallbacks or ()):
            at = (*where, "fallbacks", index)
            self.roster.check(other, at)
            if other == value.agent:
                raise self.locator.error(at, f"{other!r} is the member itself")
            alternatives.append(self.roster.answerer(other))
        if alternatives:
            options["fallbacks"] = alternatives
        handling = value.on_error
        if handling is not None and handling.escalate is not None:
            options["on_error"] = escalate(handling.escalate, schema=self.roster.output_of(value.agent) or str)
        elif handling is not None:
            options["on_error"] = handling.goto  # checked against the other members by _members
        return step(self.roster.answerer(value.agent), name=name, **options)

    def _one(self, value: Any, where: Path_) -> tuple[str, Built]:
        name = self._name(value, where, {}, False)
        if isinstance(value, fmt.MemberSpec) and value.on_error is not None and value.on_error.goto is not None:
            raise self.locator.error((*where, "on_error", "goto"), "goto names another member of a list of them")
        return name, self._member(value, where, name)

    def _mapping(self, values: Sequence[Any], path: Path_, *, goto: bool = False) -> dict[str, Built]:
        return {name: member for name, _, member in self._members(values, path, goto=goto)}

    # -- patterns over the conversation that podium builds over any state -----------------------------------

    def _sequential(self, values: Sequence[Any], at: Path_, name: str, limits: Limits | None) -> Workflow[Any]:
        steps = [_as_step(n, speaker, m) for n, speaker, m in self._members(values, at, repeat=True, goto=True)]
        return sequential(*steps, state=Conversation, name=name, output="result", input="task", limits=limits)

    def _parallel(self, options: fmt.ParallelOptions, at: Path_, name: str, limits: Limits | None) -> Workflow[Any]:
        branches = self._members(options.branches, (*at, "branches"))
        merge = None
        if options.merge is not None:
            merge_name, merge_member = self._one(options.merge, (*at, "merge"))
            if any(merge_name == n for n, _, _ in branches):
                raise self.locator.error((*at, "merge"), f"{merge_name!r} is a branch too; the merge must be another")
            merge = _as_step(merge_name, merge_name, merge_member)
        speakers = [speaker for _, speaker, _ in branches]
        return parallel(
            *[_as_step(n, speaker, m, result=False) for n, speaker, m in branches],
            merge=merge,
            state=Conversation,
            name=name,
            output=_result_or_answers(speakers),
            input="task",
            on_branch_failure=options.on_branch_failure,
            limits=limits,
        )

    def _loop(self, options: fmt.LoopOptions, at: Path_, name: str, limits: Limits | None) -> Workflow[Any]:
        body = self._members(options.body, (*at, "body"), repeat=True, goto=True)
        until = self._until(options.until, [speaker for _, speaker, _ in body], (*at, "until"))
        return loop(
            *[_as_step(n, speaker, m) for n, speaker, m in body],
            until=until,
            max_iterations=options.max_iterations,
            on_max=options.on_max,
            state=Conversation,
            name=name,
            output="result",
            input="task",
            limits=limits,
        )

    def _until(self, until: fmt.Until | None, speakers: list[str], at: Path_) -> Callable[[Conversation], bool]:
        if until is None:
            return _never
        self.roster.check(until.agent, (*at, "agent"))
        if until.agent not in speakers:
            raise self.locator.error(
                (*at, "agent"),
                f"{until.agent!r} is not a member of the loop's body{did_you_mean(until.agent, speakers)}",
            )
        output = self.roster.output_of(until.agent)
        fields = list(output.model_fields) if isinstance(output, type) and issubclass(output, BaseModel) else None
        if fields is None:
            raise self.locator.error(
                (*at, "field"),
                f"{until.agent!r} answers in text; give it an output type with a {until.field!r} field",
            )
        if until.field not in fields:
            raise self.locator.error(
                (*at, "field"),
                f"{until.agent!r} answers with {output.__name__}, which has no field {until.field!r}"
                f"{did_you_mean(until.field, fields)}; its fields are {fields}",
            )
        agent, field = until.agent, until.field

        def done(state: Conversation) -> bool:
            turn = state.last(agent)
            return turn is not None and bool(getattr(turn.content, field, False))

        return done

    # -- the team patterns ----------------------------------------------------------------------------------

    def _supervisor(self, options: fmt.SupervisorOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        workers = self._mapping(options.workers, (*at, "workers"), goto=True)
        router = self.roster.router(options.router, list(workers), (*at, "router"))
        return supervisor(
            router, workers, name=name, max_rounds=options.max_rounds, on_max=options.on_max, limits=limits
        )

    def _hierarchical(self, options: fmt.HierarchicalOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        teams: dict[str, Any] = {}
        for team_name, team in options.teams.items():
            where = (*at, "teams", team_name)
            if isinstance(team, fmt.TeamSpec):
                workers = self._mapping(team.workers, (*where, "workers"), goto=True)
                router = self.roster.router(team.router, list(workers), (*where, "router"), "a team's router")
                teams[team_name] = (router, workers)
            else:
                teams[team_name] = self.build(team, where, team_name)
        lead = self.roster.router(options.lead, list(teams), (*at, "lead"), "the lead")
        return hierarchical(lead, teams, name=name, max_rounds=options.max_rounds, limits=limits)

    def _handoff(self, options: fmt.HandoffOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        taken: dict[str, int] = {}
        names = [self._name(agent, (*at, "agents", i), taken, False) for i, agent in enumerate(options.agents)]
        if options.start not in names:
            raise self.locator.error(
                (*at, "start"),
                f"{options.start!r} is not one of the handoff's agents{did_you_mean(options.start, names)}",
            )
        members = {
            agent: self.roster.handoff(agent, [n for n in names if n != agent], (*at, "agents", i))
            for i, agent in enumerate(names)
        }
        return handoff(members, start=options.start, name=name, max_handoffs=options.max_handoffs, limits=limits)

    def _debate(self, options: fmt.DebateOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        debaters = self._mapping(options.debaters, (*at, "debaters"))
        _, judge = self._one(options.judge, (*at, "judge"))
        return debate(debaters, judge, rounds=options.rounds, name=name, limits=limits)

    def _vote(self, options: fmt.VoteOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        where = (*at, "voters")
        if options.options is None:
            voters = self._mapping(options.voters, where)
        else:
            voters = {}
            for index, value in enumerate(options.voters):
                if not isinstance(value, str):
                    raise self.locator.error((*where, index), "a vote with options takes agents as voters")
                self._name(value, (*where, index), dict.fromkeys(voters, 1), False)
                voters[value] = self.roster.chooser(value, options.options, (*where, index), "a voter")
        for voter in options.weights or {}:
            if voter not in voters:
                raise self.locator.error(
                    (*at, "weights", voter), f"{voter!r} is not a voter{did_you_mean(voter, voters)}"
                )
        judge = None
        if options.judge is not None:
            self.roster.check(options.judge, (*at, "judge"))
            judge = (
                self.roster.answerer(options.judge)
                if options.options is None
                else self.roster.chooser(options.judge, options.options, (*at, "judge"), "the vote's judge")
            )
        return vote(
            voters,
            rule=options.rule,
            quorum=options.quorum,
            weights=options.weights,
            choice=_ballot,
            judge=judge,
            name=name,
            limits=limits,
        )

    def _events(self, options: fmt.EventsOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        start = self._event_type(options.start, (*at, "start"))
        emits = tuple(self.events.values())
        handlers: dict[type, list[Any]] = {}
        made: dict[str, tuple[Any, Any]] = {}  # one step per agent, whatever it subscribes to
        for event_name, values in options.on.items():
            where = (*at, "on", event_name)
            kind = self._event_type(event_name, where)
            for index, (step_name, speaker, member) in enumerate(self._members(values, where)):
                value = values[index]
                if isinstance(member, Workflow):
                    raise self.locator.error((*where, index), "an event's subscribers are agents, not flows")
                if step_name in made and made[step_name][0] != value:
                    raise self.locator.error(
                        (*where, index), f"{step_name!r} subscribes elsewhere with other options; give them once"
                    )
                if step_name not in made:
                    made[step_name] = (value, _as_step(step_name, speaker, member, result=False, emits=emits))
                handlers.setdefault(kind, []).append(made[step_name][1])

        def begin(state: Conversation) -> list[Any]:
            return [_as_event(start, state.task)]

        def task(value: Any) -> dict[str, Any]:
            return {"task": _as_event(start, value)}

        return event_driven(
            handlers, source=begin, state=Conversation, name=name, output=_last_answer, input=task, limits=limits
        )

    def _event_type(self, name: str, where: Path_) -> type[BaseModel]:
        kind = self.events.get(name)
        if kind is None:
            raise self.locator.error(
                where, f"no event {name!r} is declared under 'events'{did_you_mean(name, self.events)}"
            )
        return kind

    def _planner(self, options: fmt.PlannerOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        plan = self.roster.planner(options.plan, (*at, "plan"), options.max_subtasks)
        _, worker = self._one(options.worker, (*at, "worker"))
        _, synthesize = self._one(options.synthesize, (*at, "synthesize"))
        return planner(
            plan,
            worker,
            synthesize,
            max_subtasks=options.max_subtasks,
            on_subtask_failure=options.on_subtask_failure,
            name=name,
            limits=limits,
        )

    def _board(self, options: fmt.BoardOptions, at: Path_, name: str, limits: Limits | None) -> Any:
        where = (*at, "members")
        members = self._mapping(options.members, where)
        for index, member in enumerate(members):
            if member in ("user", "board"):
                raise self.locator.error(
                    (*where, index), f"a board member cannot be called {member!r}: the board posts as {member!r}"
                )
        if options.opener is not None and options.opener not in members:
            raise self.locator.error(
                (*at, "opener"),
                f"{options.opener!r} is not a member of the board{did_you_mean(options.opener, members)}",
            )
        return board(
            members,
            opener=options.opener,
            name=name,
            max_mentions=options.max_mentions,
            max_depth=options.max_depth,
            max_messages=options.max_messages,
            max_exchanges=options.max_exchanges,
            on_failure=options.on_failure,
            limits=limits,
        )


def _as_step(name: str, speaker: str, member: Built, *, result: bool = True, emits: tuple[type, ...] = ()) -> Any:
    """A member as a step over the conversation: its answer becomes a turn (and, with ``result``, the result); an
    answer that is an instance of one of ``emits`` is also emitted as an event."""

    def update(answer: Any) -> dict[str, Any]:
        said = {"turns": Turn(speaker=speaker, content=answer)}
        return {**said, "result": answer} if result else said

    if isinstance(member, Workflow):
        child = member

        def conversation_so_far(state: Conversation) -> Conversation:
            return Conversation(task=state.task, turns=list(state.turns))

        def answered(final: Any) -> dict[str, Any]:
            return update(child.output_of(final))

        return step(child, name=name, input=conversation_so_far, output=answered)

    options: dict[str, Any] = {}
    if isinstance(member, StepSpec):  # an agent with its failure handling: its alternatives answer alike
        options = dict(member.options)
        member = member.fn
        if options.get("fallbacks"):
            options["fallbacks"] = [
                _answering(f, getattr(f, "__name__", name), update, emits) for f in options["fallbacks"]
            ]
        answered_by = getattr(options.get("on_error"), "answered_by", None)  # an escalation: a person answers
        if answered_by is not None:
            options["on_error"] = answered_by(lambda state, item, value: update(value))
    return step(_answering(member, name, update, emits), name=name, **options)


def _answering(
    agent: Any, name: str, update: Callable[[Any], dict[str, Any]], emits: tuple[type, ...] = ()
) -> Callable[..., Any]:
    """``agent`` as a step over the conversation, its answer made a turn by ``update`` (and emitted, if it is an
    instance of one of ``emits``)."""

    async def answer(state: Conversation, item: Any = None) -> dict[str, Any]:
        said = await agent(state, item)
        if emits and isinstance(said, emits):
            context().emit(said)
        return update(said)

    answer.__name__ = name
    return answer


def _last_answer(state: Conversation) -> Any:
    return state.turns[-1].content if state.turns else None


def _as_event(kind: type[BaseModel], value: Any) -> BaseModel:
    """``value`` (an instance, JSON text, or data) as the event ``kind``.

    Raises:
        pydantic.ValidationError: it does not fit.
    """
    if isinstance(value, kind):
        return value
    if isinstance(value, str | bytes):
        return kind.model_validate_json(value)
    return kind.model_validate(value)


def _result_or_answers(speakers: list[str]) -> Callable[[Conversation], Any]:
    def output(state: Conversation) -> Any:
        if state.result is not None:
            return state.result
        return [turn.content if (turn := state.last(s)) is not None else None for s in speakers]

    return output


def _ballot(answer: Any) -> Any:
    """What a ballot counts for: the answer itself when it is a plain value, else its JSON."""
    if isinstance(answer, str | int | float | bool) or answer is None:
        return answer.strip() if isinstance(answer, str) else answer
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    return repr(answer)


def _never(state: Conversation) -> bool:
    return False
