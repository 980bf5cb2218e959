"""podium: durable orchestration for teams of AI agents.

The public API is re-exported here; everything else is private (``_``-prefixed modules).
"""

from typing import TYPE_CHECKING, Any

from podium import reducers
from podium.errors import (
    AgentError,
    AgentOutputError,
    ConfigError,
    CrewFileError,
    EncodingError,
    InterruptError,
    JoinStalledError,
    JournalError,
    JournalMismatchError,
    KnowledgeAccessError,
    KnowledgeError,
    LeaseLostError,
    ModelError,
    ModelPermanentError,
    ModelTransientError,
    PodiumError,
    RoutingError,
    RunIncompleteError,
    RunNotFoundError,
    RunStateError,
    StateSchemaError,
    StepError,
    StepFailedError,
    StepOutputError,
    StoreError,
    TriggerError,
    UpdateConflictError,
    WorkflowDefinitionError,
)
from podium.flow._graph import Graph
from podium.flow._reducers import Reducer
from podium.flow._step import END, START, Command, Send, StepSpec, step
from podium.flow._workflow import Workflow
from podium.journal import MemoryStore, Question, RunInfo, Store, open_store
from podium.models._types import Model, Usage
from podium.observe._hooks import Hooks
from podium.runtime._context import StepContext, context
from podium.runtime._handle import RunHandle
from podium.runtime._interrupt import Approval, answer, approve, ask
from podium.runtime._limits import Budget, LimitReached, Limits
from podium.runtime._result import RunResult, RunStatus
from podium.runtime._retry import RetryPolicy
from podium.runtime._runner import Checkpoint, JournalOptions
from podium.runtime._worker import Worker

if TYPE_CHECKING:
    from podium.agents._agent import Agent
    from podium.agents._tool import InFlightCall, Tool, tool
    from podium.flow.patterns import (
        Board,
        Conversation,
        Done,
        Handoff,
        Post,
        StepLike,
        Tally,
        Turn,
        board,
        debate,
        event_driven,
        handoff,
        hierarchical,
        loop,
        parallel,
        planner,
        sequential,
        supervisor,
        vote,
    )
    from podium.journal._sqlite import SQLiteStore
    from podium.knowledge import Access, AgentKnowledge, KnowledgeBase, knowledge_tools
    from podium.models import TestModel, use_model
    from podium.runtime._divert import Failure, divert
    from podium.runtime._escalate import Escalation, escalate

__version__ = "0.1.0"

# Agents, patterns (their pydantic state types) and failure handlers load on first use: a process that only runs
# its own graphs does not pay for them (W3 measures exactly that).
_LAZY = {
    "Board": "podium.flow.patterns",
    "Conversation": "podium.flow.patterns",
    "Done": "podium.flow.patterns",
    "Handoff": "podium.flow.patterns",
    "Post": "podium.flow.patterns",
    "StepLike": "podium.flow.patterns",
    "Tally": "podium.flow.patterns",
    "Turn": "podium.flow.patterns",
    "board": "podium.flow.patterns",
    "debate": "podium.flow.patterns",
    "event_driven": "podium.flow.patterns",
    "handoff": "podium.flow.patterns",
    "hierarchical": "podium.flow.patterns",
    "loop": "podium.flow.patterns",
    "parallel": "podium.flow.patterns",
    "planner": "podium.flow.patterns",
    "sequential": "podium.flow.patterns",
    "supervisor": "podium.flow.patterns",
    "vote": "podium.flow.patterns",
    "Failure": "podium.runtime._divert",
    "divert": "podium.runtime._divert",
    "Escalation": "podium.runtime._escalate",
    "escalate": "podium.runtime._escalate",
    "Agent": "podium.agents._agent",
    "Tool": "podium.agents._tool",
    "InFlightCall": "podium.agents._tool",
    "tool": "podium.agents._tool",
    "TestModel": "podium.models",
    "use_model": "podium.models",
    "SQLiteStore": "podium.journal._sqlite",
    "Access": "podium.knowledge",
    "AgentKnowledge": "podium.knowledge",
    "KnowledgeBase": "podium.knowledge",
    "knowledge_tools": "podium.knowledge",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'podium' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    # workflow model
    "END",
    "START",
    "Command",
    "Graph",
    "Reducer",
    "Send",
    "StepSpec",
    "Workflow",
    "reducers",
    "step",
    # patterns
    "Board",
    "Conversation",
    "Done",
    "Handoff",
    "Post",
    "StepLike",
    "Tally",
    "Turn",
    "board",
    "debate",
    "event_driven",
    "handoff",
    "hierarchical",
    "loop",
    "parallel",
    "planner",
    "sequential",
    "supervisor",
    "vote",
    # running
    "Budget",
    "Failure",
    "LimitReached",
    "Limits",
    "RetryPolicy",
    "RunHandle",
    "RunResult",
    "RunStatus",
    "StepContext",
    "context",
    "divert",
    # durability: journal, stores, people in the loop
    "Approval",
    "Checkpoint",
    "Escalation",
    "JournalOptions",
    "MemoryStore",
    "Question",
    "RunInfo",
    "SQLiteStore",
    "Store",
    "Worker",
    "answer",
    "approve",
    "ask",
    "escalate",
    "open_store",
    # agents communicating: the knowledge base
    "Access",
    "AgentKnowledge",
    "KnowledgeBase",
    "knowledge_tools",
    # observing
    "Hooks",
    # agents and models
    "Agent",
    "Model",
    "TestModel",
    "Tool",
    "InFlightCall",
    "Usage",
    "tool",
    "use_model",
    # errors
    "AgentError",
    "AgentOutputError",
    "ConfigError",
    "CrewFileError",
    "EncodingError",
    "InterruptError",
    "JournalError",
    "JournalMismatchError",
    "KnowledgeAccessError",
    "KnowledgeError",
    "LeaseLostError",
    "ModelError",
    "ModelPermanentError",
    "ModelTransientError",
    "RunNotFoundError",
    "RunStateError",
    "StoreError",
    "JoinStalledError",
    "PodiumError",
    "RoutingError",
    "RunIncompleteError",
    "StateSchemaError",
    "StepError",
    "StepFailedError",
    "StepOutputError",
    "TriggerError",
    "UpdateConflictError",
    "WorkflowDefinitionError",
]
