"""Crew files: a team of agents and how they work together, in one YAML file with SOUL.md files beside it.

::

    name: content-team                      # required: the workflow's name in the journal (podium runs, resume)
    description: Research, write and polish a post
    model: local                            # agents without a model of their own use this one: test, local,
                                            # openai:<m>, ollama:<m>, anthropic:<m>, http://host/v1#<m>
    store: sqlite:///.podium/podium.db      # optional: where runs are journaled (relative to the working folder)
    limits: {max_steps: 60, max_iterations: 20, max_seconds: 600}
    tools:                                  # name -> module:attribute, a podium Tool or a plain function
      publish_markdown: tools:publish_markdown
    outputs:                                # name -> module:Class, a pydantic model
      Draft: models:Draft
    agents:
      researcher: {soul: agents/researcher.md}            # a SOUL.md, relative to this file
      writer: {soul: agents/writer.md, output: Draft}     # fields here override the SOUL.md's
      seo: {role: SEO editor, goal: Improve the title, output: Draft, tools: [publish_markdown]}
      editor: {role: Editor, approval: "Publish this?"}   # a person approves its answer first
    flow:
      sequential: [researcher, writer, seo, editor]

**Agents.** The key is the agent's name (a SOUL.md's own ``name`` is replaced by it, so one SOUL.md can serve
several agents). Fields: ``soul``, ``role``, ``goal``, ``backstory``, ``instructions``, ``rules``, ``model``,
``tools`` (names under ``tools:``), ``output`` (a name under ``outputs:``), ``max_reasks``, ``max_turns``,
``temperature``, and ``approval``: a question put to a person with the agent's answer before the answer is used;
the run waits (``podium approve`` / ``podium reject``), an edit replaces the answer, a rejection fails the step.

**Flow.** A mapping with one pattern key (and an optional ``name``). Agents work over the team's conversation:
the task is the run's input, each answer is a turn, and the result (the run's output) is the last answer unless
the pattern says otherwise:

==================  ==========================================================================================
``sequential``      ``[a, b, c]``: one after another, each seeing the conversation so far
``parallel``        ``{branches: [a, b], merge: m, on_branch_failure: cancel|finish}``: the branches at once,
                    then ``merge``; without a merge the result is the list of the branches' answers
``supervisor``      ``{router: r, workers: [a, b], max_rounds: 10}``: the router picks the next worker (with an
                    instruction) or ``done``
``hierarchical``    ``{lead: l, teams: {t: {router: r, workers: [a, b]}}, max_rounds: 10}``: the lead picks a
                    team; a team may also be a flow
``handoff``         ``{start: a, agents: [a, b], max_handoffs: 10}``: an agent answers or hands off to another
``debate``          ``{debaters: [a, b], judge: j, rounds: 2}``
``vote``            ``{voters: [a, b, c], rule: majority|plurality|unanimous|quorum|weighted, quorum: N,
                    weights: {a: 2}, options: [approve, reject], judge: j}``: the result is a ``Tally``; with
                    ``options`` each voter answers ``{choice, reason}`` with one of them
``loop``            ``{body: [writer, critic], max_iterations: N, until: {agent: critic, field: approved},
                    on_max: stop|limit}``: rounds until ``critic``'s latest answer has a truthy ``approved``
``planner``         ``{plan: p, worker: w, synthesize: s, max_subtasks: 20, on_subtask_failure: fail|skip}``
``board``           ``{members: [a, b, c], opener: a, max_mentions: 5, max_depth: 8, max_messages: 50,
                    max_exchanges: 6, on_failure: fail|notice}``: a message thread; a message that mentions
                    ``@b`` asks ``b``, whose answer is posted back as a reply (see :func:`podium.board`)
==================  ==========================================================================================

Routers, leads, handoff agents, planners and voters with ``options`` get an automatic output schema (see
:mod:`podium.crew._members`), so they cannot have an ``output`` of their own. Wherever a member is expected an
inline flow may be given instead of an agent's name (``branches: [{sequential: [a, b]}, c]``): it runs as a
sub-workflow (see :mod:`podium.crew._flows` for what it sees).

**Events and triggers.** ``events:`` declares typed events (name → ``module:Class``); the ``events`` flow
(``{start: Arrival, on: {Arrival: [opener], Document: [reader]}}``) subscribes agents to them, each getting the
event as its part, and an answer that is a declared event is emitted in turn. ``triggers:`` declares what starts
runs from outside (a ``schedule``, a watched ``folder``, a ``webhook``; see :mod:`podium.crew._triggers`), served
by ``podium serve``; one event never starts two runs.

**Knowledge.** A ``knowledge:`` section declares the shared knowledge base's ``sources`` (files and folders
loaded, chunked, into the run's store before each run: only what changed) and each agent's ``access`` (its
``kb_search``, ``kb_read`` and ``kb_write`` tools follow from it); see :mod:`podium.crew._knowledge`.

**Imports.** ``module:attribute`` paths are imported with the crew file's folder first on ``sys.path`` (it stays
there, so the journal finds the output types again), then the working directory.

**Errors.** Every mistake is a :class:`~podium.errors.CrewFileError` with the file, line, column and field
(``agents.writer.output``, ``flow.supervisor.workers[2]``): unknown keys (with a did-you-mean), unknown agents,
tools or output types, a missing or malformed SOUL.md (the latter with its own file and line), YAML syntax, and
imports that fail. ``crew_schema()`` (``podium schema``) is the format's JSON Schema.

**Also here.** ``scaffold(folder)`` writes a crew to start from (``podium init``); ``await replay(path, run_id)``
runs a crew again with its models answering from a recorded run's journal and compares the outcomes
(``podium replay``).
"""

from podium.crew._crew import Crew, load_crew
from podium.crew._format import crew_schema
from podium.crew._replay import Replay, replay
from podium.crew._scaffold import scaffold

__all__ = ["Crew", "Replay", "crew_schema", "load_crew", "replay", "scaffold"]
