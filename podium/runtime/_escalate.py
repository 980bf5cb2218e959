"""Escalation: a step that fails for good becomes a question to a person, whose answer is the step's output.

::

    graph.add(write, into="draft", retry=RetryPolicy(), on_error=escalate("The writer is stuck: write the draft?"))

When ``write`` fails (after its retries and fallbacks), a question of kind ``escalate`` is journaled, its prompt
naming the step, the error's type and its message (its value is the :class:`~podium.Failure`), and once the rest of
the superstep has finished the run ends ``waiting``. The person answers with an :class:`Escalation`:

- ``Escalation(value=...)``: the value is the step's output, checked against ``schema`` (by default the type of the
  step's ``into`` field; without ``into``, a dict of field updates) when the answer is given;
- ``Escalation(decision="retry")``: run the step again;
- ``Escalation(decision="abort", comment=...)``: let the failure stand: the step fails, and with it the run.

As with every question, the step runs again from its start when the run resumes. So **the failing step is run
again on resume, with its retry policy and fallbacks** (their calls and waits are paid again): if it succeeds this
time, its own output is used and the answer is not; if it fails again, the recorded answer is used (``retry`` was
that re-run: if it failed again, the person is asked again). From the command line: ``podium approve RUN --value
JSON`` answers, ``podium approve RUN`` retries, ``podium reject RUN`` aborts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError, model_validator

from podium.errors import StepError
from podium.flow._state import every_error
from podium.runtime._context import context
from podium.runtime._divert import Failure
from podium.runtime._interrupt import pending_answer

__all__ = ["Aborted", "Escalate", "Escalation", "escalate"]

T = TypeVar("T")


class Escalation(BaseModel, Generic[T]):
    """A person's answer to an escalated failure (see :func:`escalate`).

    Attributes:
        decision: ``answer`` (``value`` is the step's output), ``retry`` (run the step again) or ``abort`` (the
            step fails).
        value: the step's output, for ``answer``.
        comment: a note, kept in the journal (and in the error, for ``abort``).
    """

    decision: Literal["answer", "retry", "abort"] = "answer"
    value: T | None = None
    comment: str | None = None

    @model_validator(mode="after")
    def _answer_has_a_value(self) -> Escalation[T]:
        if self.decision == "answer" and self.value is None:
            raise ValueError("an answer needs a value (the step's output), or decide 'retry' or 'abort'")
        return self


class Aborted(Exception):
    """A person answered an escalation with ``abort``: the step's failure stands."""

    def __init__(self, comment: str | None) -> None:
        super().__init__(comment or "")
        self.comment = comment


@dataclass(frozen=True, slots=True)
class Escalate:
    """An ``on_error`` handler that asks a person what the failed step's output is (see :func:`escalate`)."""

    prompt: str | None = None
    schema: Any = None
    into: str | None = None
    """The step's ``into`` field (set by ``Graph.add``): its type is the answer's when no schema is given."""
    answer: Callable[[Any, Any, Any], Any] | None = None
    """``answer(state, item, value)``: the step's return value for the person's value (pattern members make a turn
    of it); the value itself when None."""

    def for_step(self, into: str | None) -> Escalate:
        """This escalation for a step that stores its value in ``into``."""
        return dataclasses.replace(self, into=into)

    def answered_by(self, answer: Callable[[Any, Any, Any], Any]) -> Escalate:
        """This escalation, with ``answer(state, item, value)`` making the step's return value."""
        return dataclasses.replace(self, answer=answer)

    def __call__(self, state: Any, error: StepError, item: Any = None) -> Any:
        ctx = context()
        value_type = self._value_type(state)
        schema: Any = Escalation[value_type]  # type: ignore[valid-type]
        failure = Failure.of(error, item)
        problem = ""
        number = 0
        while True:  # answers to earlier questions of this task that said "retry": the step has run again since
            number += 1
            reply = pending_answer(
                f"{ctx.task_id}#escalation-{number}",
                self._question(failure, problem),
                schema=schema,
                value=failure,
                kind="escalate",
            )
            if reply.decision == "retry":
                problem = "It was run again, as asked, and failed again."
                continue
            if reply.decision == "abort":
                raise Aborted(reply.comment)
            try:
                value = TypeAdapter(value_type).validate_python(reply.value)
            except ValidationError as exc:  # a type that could not be checked when the answer was given
                problem = f"The answer given does not fit: {every_error(exc, 'value')}."
                continue
            if self.answer is not None:
                return self.answer(state, item, value)
            if self.into is None and isinstance(value, BaseModel):  # its fields are the update
                return {name: getattr(value, name) for name in type(value).model_fields}
            return value

    def _value_type(self, state: Any) -> Any:
        if self.schema is not None:
            return self.schema
        if self.answer is not None:  # a pattern member's answer
            return Any
        if self.into is None:  # the step's update (a plain class, so the answer is checked when given)
            return dict
        return field_type(type(state), self.into)

    def _question(self, failure: Failure, problem: str) -> str:
        lines = [
            self.prompt or "A step failed and needs a person.",
            "",
            f"Step {failure.step!r} failed ({failure.error_type}): {failure.message}",
        ]
        if problem:
            lines.append(problem)
        lines.append(
            "Answer with the step's output as the value, or decide 'retry' (run the step again) "
            "or 'abort' (let it fail)."
        )
        return "\n".join(lines)


def escalate(prompt: str | None = None, *, schema: Any = None) -> Escalate:
    """``on_error`` that asks a person when the step fails for good; their answer becomes the step's output.

    Args:
        prompt: what to ask; the step, the error's type and its message are added to it.
        schema: the answer value's type; by default the type of the step's ``into`` field, or (without ``into``)
            a dict of field updates. An importable class is checked when the answer is given; any other type when
            the run resumes (an answer that does not fit is asked again).
    """
    return Escalate(prompt, schema)


def field_type(state_type: type[Any], name: str) -> Any:
    """The declared type of a state field, without its ``None`` (``Any`` when it cannot be told)."""
    fields = getattr(state_type, "model_fields", None)
    if isinstance(fields, dict) and name in fields:
        declared = fields[name].annotation
    else:
        try:
            declared = typing.get_type_hints(state_type).get(name, Any)
        except Exception:
            return Any
    options = [arg for arg in typing.get_args(declared) if arg is not type(None)]
    if typing.get_origin(declared) in (typing.Union, types.UnionType) and len(options) == 1:
        return options[0]  # an answer is a value: Draft, for a field typed Draft | None
    return declared
