"""The board's thread: :class:`Post` records, the mention grammar, and the :class:`Board` state.

**Mentions.** ``@name`` where ``name`` is ``[A-Za-z_][A-Za-z0-9_-]*`` without a trailing ``-``, and the ``@`` does
not follow a letter, digit, ``_``, ``.``, ``-``, ``/``, ``\\``, ``@`` or a backtick (so ``ana@example.com``,
``https://x.org/@who`` and ``\\@name`` mention no one), outside inline code and fenced code blocks. A message's
mentions are its distinct names in the order they first appear; its sender's own name is not one (a member
writing about itself does not call itself). A structured answer (a model, dataclass, dict, list...) is read from the
strings in it, each on its own, in a fixed order: fields as declared, dict values as inserted (not keys), list items
in order, set items sorted. ``@user`` and ``@board`` are mentions too, but they ask no member (the board routes only
members' names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Set
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, model_validator

from podium.flow._reducers import Reducer
from podium.runtime._progress import progress_key

__all__ = ["BOARD", "NAME", "USER", "Board", "Post", "mentions_in", "mentions_of", "pinned", "text_of"]

USER = "user"
"""Who posts the opening message."""
BOARD = "board"
"""Who posts notices, and the name of the step that routes messages."""

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?<!-)")
"""What a mention can name: a member whose name does not match cannot be mentioned."""
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_MENTION = re.compile(r"(?<![\w.\-/\\@`])@([A-Za-z_][A-Za-z0-9_-]*)")


def mentions_in(text: str, *, sender: str | None = None) -> list[str]:
    """The names ``text`` mentions, distinct, in the order they first appear; never ``sender``'s own."""
    found: list[str] = []
    for match in _MENTION.finditer(_CODE.sub(" ", text)):
        name = match.group(1).rstrip("-")
        if name and name != sender and name not in found:
            found.append(name)
    return found


def mentions_of(content: Any, *, sender: str | None = None) -> list[str]:
    """The names a message's content mentions: those of each string in it, in the module's order (a string's
    JSON form would hide a mention after a newline or tab, written there as ``\\n@name``)."""
    found: list[str] = []
    for text in _strings(_plain(content)):
        found += [name for name in mentions_in(text, sender=sender) if name not in found]
    return found


def _plain(content: Any) -> Any:
    """Models and dataclasses as dicts, sets kept as sets (so their order can be fixed)."""
    if content is None or isinstance(content, str):
        return content
    try:
        return TypeAdapter(Any).dump_python(content)
    except Exception:
        return content


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, Set):  # iteration order varies between processes: sorted, so a replay reads the same
        for item in sorted(value, key=repr):
            yield from _strings(item)


def text_of(content: Any) -> str:
    """A message's content as text: itself if it is text, else its JSON form."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, BaseModel):
        return content.model_dump_json()
    try:
        return json.dumps(TypeAdapter(Any).dump_python(content, mode="json"))
    except Exception:
        return repr(content)


class Post(BaseModel):
    """One message on a board.

    Attributes:
        id: its number on the board, from 1 (the board numbers messages as they are posted).
        sender: ``user``, a member's name, or ``board`` for a notice.
        content: text, or a member's structured answer.
        mentions: the names it mentions (see the module's grammar); read from ``content`` unless given. ``user``
            and ``board`` may be among them: the board asks no one for those.
        reply_to: the message it answers.
        depth: how many replies deep it is: 0 for the opening, the asking message's depth + 1 for an answer.
        kind: ``message`` (the opening), ``answer``, ``notice`` (from the board) or ``context`` (what was said
            before the board began, when it runs inside a team's conversation).
    """

    model_config = ConfigDict(frozen=True)

    id: int = 0
    sender: str
    content: Any = None
    mentions: list[str] = []
    reply_to: int | None = None
    depth: int = 0
    kind: Literal["message", "answer", "notice", "context"] = "message"

    @model_validator(mode="before")
    @classmethod
    def _read_mentions(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mentions" not in data:
            return {**data, "mentions": mentions_of(data.get("content"), sender=data.get("sender"))}
        return data

    @property
    def text(self) -> str:
        """The content as text."""
        return text_of(self.content)

    def __progress__(self) -> dict[str, Any]:
        """What the message says, for no-progress detection: not its number, depth or place in the thread."""
        return {"sender": self.sender, "kind": self.kind, "content": self.content, "mentions": self.mentions}


def _pin(current: Any, update: Any) -> list[Post]:
    """Append messages, numbering each by its place on the board (in task order, so the numbers are stable)."""
    posts: list[Post] = list(current or [])
    for post in update if isinstance(update, list | tuple) else [update]:
        if isinstance(post, Mapping):
            post = Post.model_validate(post)
        number = len(posts) + 1
        posts.append(post if post.id == number else post.model_copy(update={"id": number}))
    return posts


pinned = Reducer("pinned", _pin)
"""The board's merge rule: messages are appended and numbered."""


class Board(BaseModel):
    """The state of a :func:`board` run: the thread.

    Attributes:
        task: the run's input (the opening message's content).
        members: who may be mentioned.
        posts: every message, numbered from 1.
        routed: how many messages the board step has read (those after it are routed next).
    """

    task: Any = None
    members: list[str] = []
    posts: Annotated[list[Post], pinned] = []
    routed: int = 0

    def post(self, number: int) -> Post:
        """Message ``#number``."""
        return self.posts[number - 1]

    def replies(self, number: int) -> list[Post]:
        """The answers (and notices) to message ``#number``."""
        return [p for p in self.posts if p.reply_to == number]

    def chain(self, number: int) -> list[Post]:
        """Message ``#number`` and the messages it replies to, back to the first: oldest first."""
        chain = [self.post(number)]
        while chain[0].reply_to is not None:
            chain.insert(0, self.post(chain[0].reply_to))
        return chain

    def by(self, sender: str) -> list[Post]:
        """The messages of one sender."""
        return [p for p in self.posts if p.sender == sender]

    def __progress__(self) -> dict[str, Any]:
        """What counts as progress (``Limits.max_repeats``): the task and each distinct message once, not how many
        messages were read or how deep they are (counters that move whatever is said)."""
        said = {progress_key(post): post.__progress__() for post in self.posts}
        return {"task": self.task, "said": list(said.values())}

    def __prompt__(self, item: Any = None) -> str:
        """What an agent on the board is asked (``item``: the message that mentions it): the request first, then
        the thread, then how to answer."""
        lines: list[str] = []
        asking = item if isinstance(item, Post) else None
        if asking is not None:
            about = f" (a reply to #{asking.reply_to})" if asking.reply_to is not None else ""
            lines += [f"{asking.sender} mentions you in message #{asking.id}{about}:", asking.text, ""]
        if self.posts:
            lines.append("The board so far:")
            for post in self.posts:
                about = f" (reply to #{post.reply_to})" if post.reply_to is not None else ""
                lines.append(f"#{post.id} {post.sender}{about}: {post.text}")
            lines.append("")
        where = f" as a reply to #{asking.id}" if asking is not None else ""
        lines.append(
            f"Your answer is posted on the board{where}. To ask members something, mention them in it "
            f"({', '.join('@' + m for m in self.members)}); mention no one when nothing more is needed."
        )
        return "\n".join(lines)
