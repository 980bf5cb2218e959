"""Pattern builders: each makes a :class:`~podium.Workflow` for one way agents work together."""

from podium.flow.patterns._common import Conversation, StepLike, Turn
from podium.flow.patterns._deliberate import Tally, debate, vote
from podium.flow.patterns._graphs import event_driven, loop, parallel, sequential
from podium.flow.patterns._planner import planner
from podium.flow.patterns._team import Done, Handoff, handoff, hierarchical, supervisor

__all__ = [
    "Conversation",
    "Done",
    "Handoff",
    "StepLike",
    "Tally",
    "Turn",
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
]
