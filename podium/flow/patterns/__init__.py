"""Pattern builders: each makes a :class:`~podium.Workflow` for one way agents work together."""

from podium.flow.patterns._board import board
from podium.flow.patterns._common import Conversation, StepLike, Turn
from podium.flow.patterns._deliberate import Tally, debate, vote
from podium.flow.patterns._graphs import event_driven, loop, parallel, sequential
from podium.flow.patterns._planner import planner
from podium.flow.patterns._team import Done, Handoff, handoff, hierarchical, supervisor
from podium.flow.patterns._thread import Board, Post

__all__ = [
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
]
