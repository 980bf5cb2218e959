"""Human-in-the-loop: a step asks a person, the run waits (the process may exit), an answer resumes it.

::

    def publish(state: Post) -> dict:
        review = podium.approve("Publish this post?", value=state.draft)
        if not review.approved:
            return {"status": "rejected"}
        return {"published": review.value}      # the draft, or the person's edit of it

The first time the step runs, ``approve`` finds no answer in the journal: the question is journaled, the step
stops there, and once the rest of its superstep has finished the run ends with status ``waiting``. When the
question is answered (``podium.answer(...)``, checked against its schema) and the run is resumed, the step runs
again from its start and this time ``approve`` returns the answer. So code before the question runs again:
keep side effects after it, or in a step of their own.

A step's ``on_error`` may ask too: :func:`~podium.escalate` turns a failure into a question whose answer is the
step's output (see :mod:`podium.runtime._escalate`).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from podium.errors import ConfigError, InterruptError
from podium.flow._state import every_error
from podium.journal._codec import decode, encode, resolve_class
from podium.journal._events import InterruptAsked
from podium.runtime._context import context

__all__ = ["Approval", "Interrupted", "answer", "approve", "ask", "check_answer", "pending_answer"]

T = TypeVar("T")


class Approval(BaseModel):
    """A person's review of a proposal: approve it, reject it, or approve an edited version (``value``)."""

    decision: Literal["approve", "reject", "edit"]
    value: Any = None
    comment: str | None = None

    @property
    def approved(self) -> bool:
        """True for ``approve`` and ``edit``."""
        return self.decision != "reject"


class Interrupted(BaseException):
    """Raised inside a step by :func:`ask` when its question has no answer yet; the runtime catches it."""

    def __init__(self, question: InterruptAsked) -> None:
        super().__init__(question.prompt)
        self.question = question


@overload
def ask(prompt: str, *, schema: type[T], value: Any = None, kind: str = "answer") -> T: ...
@overload
def ask(prompt: str, *, schema: None = None, value: Any = None, kind: str = "answer") -> Any: ...


def ask(prompt: str, *, schema: type[Any] | None = None, value: Any = None, kind: str = "answer") -> Any:
    """Ask a person; return their answer (an instance of ``schema`` when given) once there is one.

    Args:
        prompt: the question, as the person will see it.
        schema: the answer's type (a pydantic model, or any type pydantic validates); answers that do not fit it
            are refused when given. Must be importable (defined at a module's top level).
        value: what the question is about (a draft to approve, say), shown with it.
        kind: how to present it: ``answer``, ``approve``...

    Raises:
        ConfigError: called outside a step, or in a run without a journal.
    """
    ctx = context()
    ctx._asked += 1
    answer = pending_answer(f"{ctx.task_id}#{ctx._asked}", prompt, schema=schema, value=value, kind=kind)
    return TypeAdapter(schema).validate_python(answer) if schema is not None else answer


def pending_answer(interrupt_id: str, prompt: str, *, schema: type[Any] | None, value: Any, kind: str) -> Any:
    """The journaled answer (decoded) to the running step's question ``interrupt_id``; if there is none yet,
    raise :class:`Interrupted` to journal the question and stop the step.

    Raises:
        ConfigError: called outside a step, or in a run without a journal.
    """
    ctx = context()
    if ctx._answers is None:
        raise ConfigError(
            f"step {ctx.step!r} asked a person, but its run has no journal to wait in; run it with a store"
        )
    if interrupt_id in ctx._answers:
        return decode(ctx._answers[interrupt_id])
    raise Interrupted(
        InterruptAsked(
            interrupt_id=interrupt_id,
            task_id=ctx.task_id,
            step=ctx.step,
            prompt=prompt,
            ask=kind,
            schema=_path(schema),
            json_schema=TypeAdapter(schema).json_schema() if schema is not None else None,
            value=encode(value),
        )
    )


def approve(prompt: str, *, value: Any = None) -> Approval:
    """Ask a person to approve, reject or edit ``value``; see :func:`ask`."""
    return ask(prompt, schema=Approval, value=value, kind="approve")


def check_answer(run_id: str, interrupt_id: str, schema: str | None, answer: Any) -> Any:
    """Validate an answer against the question's schema; return it encoded for the journal.

    ``schema`` is ``module:Class``, or ``module:Generic[module:Arg, ...]`` for a generic pydantic model (the answer
    is then journaled as the unparametrized class, which a resumed run can import).

    Raises:
        InterruptError: the answer does not fit, or the schema's type cannot be imported here.
    """
    if schema is None:
        return encode(answer)
    try:
        origin, cls = _resolve(schema)
    except Exception as exc:
        raise InterruptError(f"cannot check the answer: {exc}", run_id=run_id, interrupt_id=interrupt_id) from exc
    if cls is not origin and isinstance(answer, origin) and not isinstance(answer, cls):
        answer = {name: getattr(answer, name) for name in origin.model_fields}  # re-checked as the parametrized one
    try:
        checked = TypeAdapter(cls).validate_python(answer)
    except ValidationError as exc:
        raise InterruptError(
            f"the answer does not fit {origin.__name__}: {every_error(exc, 'answer')}",
            run_id=run_id,
            interrupt_id=interrupt_id,
        ) from exc
    if cls is not origin:
        checked = origin.model_construct(**{name: getattr(checked, name) for name in origin.model_fields})
    return encode(checked)


def _resolve(schema: str) -> tuple[Any, Any]:
    """The class a schema path names, unparametrized and (for a generic) parametrized."""
    base, bracket, args = schema.partition("[")
    origin = resolve_class(base)
    if not bracket:
        return origin, origin
    params = tuple(resolve_class(arg.strip()) for arg in args.removesuffix("]").split(","))
    return origin, origin[params if len(params) > 1 else params[0]]


def _path(schema: type[Any] | None) -> str | None:
    if schema is None:
        return None
    generic = getattr(schema, "__pydantic_generic_metadata__", None)
    if generic and generic.get("origin") is not None:
        args = [_importable(arg) for arg in generic["args"]]
        origin = _path(generic["origin"])
        # an argument that cannot be imported (list[str], a local class): answers are checked without it
        return f"{origin}[{', '.join(args)}]" if all(args) else origin  # type: ignore[arg-type]
    if _importable(schema) is None:
        raise ConfigError(
            f"the answer schema {schema!r} must be a class defined at a module's top level, so the process that "
            f"receives the answer can check it"
        )
    return f"{schema.__module__}:{schema.__qualname__}"


def _importable(cls: Any) -> str | None:
    if not isinstance(cls, type) or "<locals>" in cls.__qualname__ or "[" in cls.__qualname__:
        return None
    return f"{cls.__module__}:{cls.__qualname__}"


async def answer(run_id: str, interrupt_id: str, value: Any, *, store: Any = None) -> None:
    """Answer a run's question; the answer is checked against the question's schema and journaled once.

    Resume the run afterwards (``await workflow.resume(run_id)``) to let it go on.

    Args:
        store: the run's store (a Store or URL); the default store if None.

    Raises:
        RunNotFoundError: no such run.
        InterruptError: no such question, it was answered already, or the answer does not fit (nothing written).
    """
    import time

    from podium.flow._workflow import resolve_store

    resolved = resolve_store(store)
    if resolved is None:
        raise ConfigError("answer() needs the store the run was journaled in")
    await resolved.open()
    question = next((q for q in await resolved.questions(run_id) if q.interrupt_id == interrupt_id), None)
    if question is None:
        raise InterruptError("no such question in this run", run_id=run_id, interrupt_id=interrupt_id)
    if question.answered:
        raise InterruptError("was answered already", run_id=run_id, interrupt_id=interrupt_id)
    encoded = check_answer(run_id, interrupt_id, question.schema, value)
    await resolved.answer(run_id, interrupt_id, encoded, at=time.time())
