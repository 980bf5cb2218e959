"""The board: a message thread where a message that mentions ``@member`` is a request routed to that member.

A run of :func:`board` is one thread (:class:`Board`, a list of numbered :class:`Post` records). The run's input is
the opening message, posted by ``user``. Then, superstep after superstep, the board step reads the messages posted
since it last looked, and every member each one mentions is asked at once (``Send(member, post)``: a fan-out, in
message order, each member once per message); each answer is posted back as a reply to the message that asked.
An answer may mention members in turn, which continues the conversation. The run ends when no new message
mentions anyone; its output is the last message's content, and the thread is in ``result.state.posts``.

**Mentions** follow the grammar of :mod:`podium.flow.patterns._thread`: ``@name``, not inside words, addresses, URLs
or code; each name once per message; never the sender's own. ``@user`` (who opened the thread) and ``@board`` ask
no one: an answer that mentions only them simply stands.

**Mistakes and limits.** An unknown name is not a crash: the board posts a notice naming it (with a did-you-mean)
and the members; when the sender is a member the notice mentions it, so it is asked again and sees its mistake.
A message that mentions more than ``max_mentions`` members (a storm) reaches the first ones only, and a notice
says who was left out. A message that would make a reply chain deeper than ``max_depth``, a board longer than
``max_messages``, or two members address each other more than ``max_exchanges`` times in a row (ping-pong) ends
the run ``limited``, its ``limit`` naming the bound. The run's :class:`~podium.Limits` apply as well, no-progress
detection included: :meth:`Board.__progress__` counts each distinct message once and no counter. A member that
repeats its mistake after every notice (an unknown name, a member that fails) is stopped by ``max_depth``, whose
reason then says it is a notice loop (each notice quotes another message's number, so it is never a repeat).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podium.errors import ConfigError
from podium.flow._graph import Graph
from podium.flow._step import START, Command, Send
from podium.flow._workflow import Workflow
from podium.flow.patterns._common import StepLike, add_member, describe_failure, named
from podium.flow.patterns._thread import BOARD, NAME, USER, Board, Post, mentions_of, text_of
from podium.runtime._limits import LimitReached, Limits

__all__ = ["board"]


def board(
    members: Mapping[str, StepLike] | Sequence[StepLike],
    *,
    opener: str | None = None,
    name: str = "board",
    max_mentions: int = 5,
    max_depth: int = 8,
    max_messages: int = 50,
    max_exchanges: int = 6,
    on_failure: str = "fail",
    limits: Limits | None = None,
) -> Workflow[Board]:
    """A message board: a message that mentions ``@member`` is a request to that member, whose answer is posted
    back as a reply; mentions in answers continue the conversation (see the module's docstring).

    Each member is called with ``(board, post)`` (or fewer arguments): the :class:`Board` so far and the
    :class:`Post` that mentions it. An agent is asked :meth:`Board.__prompt__`: the request, the thread and who
    can be mentioned. A workflow member runs as a sub-workflow whose input is the request's content. Whatever a
    member returns is its answer's content.

    Run it with the opening message as input: ``await board([lead, writer]).run("@lead plan the launch")``.

    Args:
        opener: the member an opening message that mentions no one is addressed to (without one, such a message
            gets a notice and the run ends).
        max_mentions: the most members one message reaches; the rest get no request, and a notice says so.
        max_depth: the deepest a reply chain may grow (the opening is 0, its answers 1...).
        max_messages: the most messages on the board, notices included.
        max_exchanges: the most messages in a row two members may address to each other in one reply chain.
        on_failure: a member that fails ``"fail"``s the run, or (``"notice"``) the board posts the failure as a
            notice to whoever asked, and goes on.

    Raises:
        ConfigError: no members, a member named ``user`` or ``board`` or with a name no mention can spell, an
            unknown opener, or a bound too low.
    """
    cast = named(members)
    if on_failure not in ("fail", "notice"):
        raise ConfigError(f"on_failure must be 'fail' or 'notice', not {on_failure!r}")
    rules = _Rules(list(cast), opener, max_mentions, max_depth, max_messages, max_exchanges)
    graph: Graph[Board] = Graph(Board, name=name)
    graph.add(rules.route, name=BOARD, routes=tuple(cast), thread=False, max_iterations=max_depth + 2)
    graph.edge(START, BOARD)
    for member_name, member in cast.items():
        options: dict[str, Any] = {"max_iterations": max_depth + 1}
        if on_failure == "notice":
            options["on_error"] = _failed(member_name, rules.known)
        _add(graph, member_name, member, options)
        graph.edge(member_name, BOARD)
    return graph.build(output=_last_word, input=_opening, limits=limits)


@dataclass(frozen=True, slots=True)
class _Rules:
    """The board step: reads the new messages, checks the bounds, posts notices and sends the requests."""

    members: list[str]
    opener: str | None
    max_mentions: int
    max_depth: int
    max_messages: int
    max_exchanges: int
    known: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "known", frozenset(self.members))
        if not self.members:
            raise ConfigError("board() needs at least one member")
        for member in self.members:
            if member in (USER, BOARD):
                raise ConfigError(f"a board member cannot be called {member!r}: the board posts as {member!r}")
            if not NAME.fullmatch(member):
                raise ConfigError(
                    f"board member {member!r} could not be mentioned: a name is letters, digits, '_' and '-', "
                    f"starts with a letter or '_' and does not end with '-'; name it with step(fn, name=...)"
                )
        if self.opener is not None and self.opener not in self.members:
            hint = _did_you_mean(self.opener, self.members)
            raise ConfigError(f"opener {self.opener!r} is not one of the members {self.members}{hint}")
        for bound, least in (("max_mentions", 1), ("max_depth", 1), ("max_messages", 1), ("max_exchanges", 2)):
            if getattr(self, bound) < least:
                raise ConfigError(f"{bound} must be at least {least}, not {getattr(self, bound)}")

    def route(self, state: Board) -> Command:
        """Post the opening (on the first run), then ask every member the new messages mention."""
        posts = list(state.posts)
        added = self._opening(state) if state.routed == 0 and state.task is not None else []
        by_id = {post.id: post for post in posts}
        queue = [*posts[state.routed :], *added]
        sends: list[Send] = []
        for post in queue:  # grows as notices are posted: a notice to a member is routed like any message
            by_id[post.id] = post
            reached = self._reached(post, len(posts) + len(added) + 1, added, queue)
            if reached:
                self._check_depth(by_id, post, reached)
            for target in reached:
                self._check_exchanges(by_id, post, target)
                sends.append(Send(target, post))
        total = len(posts) + len(added)
        if total + len(sends) > self.max_messages:
            due = ", ".join(f"{s.to} (#{s.item.id})" for s in sends)
            raise LimitReached(
                "max_messages",
                f"the board has {total} messages and {len(sends)} more answers are due from {due}; "
                f"max_messages={self.max_messages}",
            )
        update: dict[str, Any] = {"routed": total}
        if added:
            update["posts"] = added
        if state.members != self.members:
            update["members"] = self.members
        return Command(update=update, goto=sends)

    def _opening(self, state: Board) -> list[Post]:
        """The run's input as the opening message, to whom it mentions, else to the opener, else to no one (which
        a notice says: nothing would happen, and the user would not know why)."""
        number = len(state.posts) + 1
        mentions = mentions_of(state.task, sender=USER)
        if self.opener is not None and not _addressed(mentions):
            mentions.append(self.opener)
        opening = Post(id=number, sender=USER, content=state.task, mentions=mentions)
        if _addressed(mentions):
            return [opening]
        text = (
            f"message #{number} mentions no member, so no one was asked. "
            f"The members are {', '.join(self.members)}: mention one as @name."
        )
        return [opening, _notice(opening, text, [], number + 1)]

    def _reached(self, post: Post, number: int, added: list[Post], queue: list[Post]) -> list[str]:
        """The members ``post`` asks; notices (numbered from ``number``) for the names it may not reach."""
        named = [m for m in _addressed(post.mentions) if m != post.sender]  # @user and @board ask no one
        unknown = [m for m in named if m not in self.known]
        known = [m for m in named if m in self.known]
        if unknown:
            hints = "".join(_did_you_mean(u, self.members) for u in unknown)
            text = (
                f"message #{post.id} was not delivered to {', '.join(map(repr, unknown))}: no member has that "
                f"name{hints}. The members are {', '.join(self.members)}."
            )
            back = [post.sender] if post.sender in self.known else []  # the sender sees it: it is asked again
            notice = _notice(post, text, back, number)
            added.append(notice)
            queue.append(notice)
            number += 1
        if len(known) > self.max_mentions:
            text = (
                f"message #{post.id} mentions {len(known)} members; only the first {self.max_mentions} were asked "
                f"(max_mentions={self.max_mentions}). Not asked: {', '.join(known[self.max_mentions :])}."
            )
            added.append(_notice(post, text, [], number))  # told, not asked again: it would storm again
            known = known[: self.max_mentions]
        return known

    def _check_depth(self, by_id: Mapping[int, Post], post: Post, targets: list[str]) -> None:
        if post.depth >= self.max_depth:
            ancestry = _ancestry(by_id, post)
            chain = " -> ".join(f"#{p.id} {p.sender}" for p in ancestry)
            raise LimitReached(
                "max_depth",
                f"message #{post.id} by {post.sender} asks {', '.join(targets)}, whose answers would be "
                f"{post.depth + 1} replies deep (the chain {chain}); max_depth={self.max_depth}"
                + _notice_loop(ancestry),
            )

    def _check_exchanges(self, by_id: Mapping[int, Post], post: Post, target: str) -> None:
        """Ping-pong: the messages in a row, ending with ``post``, that its sender and ``target`` addressed to each
        other in one reply chain."""
        volley: list[Post] = []
        speaker, listener = post.sender, target
        current: Post | None = post
        while current is not None and current.sender == speaker and listener in current.mentions:
            volley.append(current)
            speaker, listener = listener, speaker
            current = by_id.get(current.reply_to) if current.reply_to is not None else None
        if len(volley) > self.max_exchanges:
            chain = " -> ".join(f"#{p.id}" for p in reversed(volley))
            raise LimitReached(
                "max_exchanges",
                f"{post.sender} and {target} have addressed each other {len(volley)} times in a row ({chain}); "
                f"max_exchanges={self.max_exchanges}",
            )


def _notice(about: Post, text: str, mentions: list[str], number: int = 0) -> Post:
    """The board's notice about message ``about``, to ``mentions`` (none: it is only posted)."""
    return Post(
        id=number, sender=BOARD, content=text, mentions=mentions, reply_to=about.id, depth=about.depth + 1,
        kind="notice",
    )  # fmt: skip


def _addressed(mentions: list[str]) -> list[str]:
    """The mentions that name someone the board could ask: not ``user``, not ``board``."""
    return [m for m in mentions if m not in (USER, BOARD)]


def _notice_loop(chain: list[Post]) -> str:
    """What a depth reason adds when ``chain`` sent a member the board's notices again and again: each quotes
    another message's number, so no-progress detection never sees a repeat, and only ``max_depth`` ends it."""
    notices = [p for p in chain if p.kind == "notice" and p.sender == BOARD and p.mentions]
    sent = Counter(m for p in notices for m in p.mentions)
    looping = [f"{member} was sent {times}" for member, times in sent.items() if times > 1]
    if not looping:
        return ""
    ids = ", ".join(f"#{p.id}" for p in notices)
    return (
        f". It is a notice loop: {' and '.join(looping)} of the board's notices in this chain ({ids}), and each "
        f"answer brought another; the last: {text_of(notices[-1].content)!r}. Fix what they say (in the member's "
        f"instructions, or the member that fails), or lower max_depth to stop such a loop sooner"
    )


def _ancestry(by_id: Mapping[int, Post], post: Post) -> list[Post]:
    """``post`` and the messages it replies to, oldest first."""
    chain = [post]
    while chain[0].reply_to is not None and chain[0].reply_to in by_id:
        chain.insert(0, by_id[chain[0].reply_to])
    return chain


def _add(graph: Graph[Board], name: str, member: StepLike, options: dict[str, Any]) -> None:
    """A member as a step that answers the message it is sent; a workflow member gets the request's content."""
    turn = _answer(name)
    if not isinstance(member, Workflow):
        add_member(graph, name, member, turn, **options)
        return
    child = member

    def child_input(state: Board, post: Post) -> Any:
        return child.input_state(post.content)

    def child_output(final: Any, state: Board, post: Post) -> Any:
        return turn(state, post, child.output_of(final))

    graph.add(child, name=name, input=child_input, output=child_output, **options)


def _answer(sender: str) -> Callable[[Board, Post, Any], Any]:
    def turn(state: Board, post: Post, answer: Any) -> Any:
        return {"posts": Post(sender=sender, content=answer, reply_to=post.id, depth=post.depth + 1, kind="answer")}

    return turn


def _failed(member: str, known: frozenset[str]) -> Callable[[Board, Exception, Post], Any]:
    def on_error(state: Board, error: Exception, post: Post) -> Any:
        text = f"{member} could not answer message #{post.id}: {describe_failure(error)}"
        return {"posts": _notice(post, text, [post.sender] if post.sender in known else [])}

    return on_error


def _opening(value: Any) -> Any:
    """The run's input as the board's start: the task, after what a team said before (when the board runs inside a
    team's conversation, which has a ``task`` and ``turns``); the board step posts the task as the opening."""
    turns = getattr(value, "turns", None)
    if turns is None or not hasattr(value, "task"):
        return {"task": value}
    said = [
        Post(id=n, sender=str(turn.speaker), content=turn.content, mentions=[], kind="context")
        for n, turn in enumerate(turns, start=1)
    ]
    return {"task": value.task, "posts": said}


def _last_word(state: Board) -> Any:
    return state.posts[-1].content if state.posts else None


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
