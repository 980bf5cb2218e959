"""The typed state a workflow runs over, and how step updates are applied to it.

State is a pydantic model or a dataclass. It is treated as immutable: applying a superstep's writes makes a new
state object (a shallow copy with the changed fields), so every state a run passes through is a plain snapshot
that a checkpoint, a fork or a replay can keep as is.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import TypeAdapter, ValidationError

from podium.errors import ConfigError, StateSchemaError, StepOutputError, UpdateConflictError
from podium.flow._reducers import Reducer

__all__ = ["FieldSpec", "StateSchema", "every_error", "short"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of the state: its validator and, if it has one, its merge rule."""

    name: str
    adapter: TypeAdapter[Any]
    reducer: Reducer | None


class StateSchema:
    """Introspects a state type once, then validates and applies updates to its instances."""

    __slots__ = ("_adapter", "_copy", "fields", "type")

    def __init__(self, state_type: type[Any], *, workflow: str) -> None:
        self.type = state_type
        if isinstance(state_type, type) and issubclass(state_type, pydantic.BaseModel):
            self.fields = _pydantic_fields(state_type, workflow)
            self._copy = _copy_model
        elif dataclasses.is_dataclass(state_type) and isinstance(state_type, type):
            self.fields = _dataclass_fields(state_type, workflow)
            self._copy = _copy_dataclass
        else:
            raise StateSchemaError(
                f"state type {state_type!r} must be a pydantic BaseModel or a dataclass", workflow=workflow
            )
        self._adapter: TypeAdapter[Any] = TypeAdapter(state_type)

    @property
    def name(self) -> str:
        return self.type.__name__

    def initial(self, value: Any) -> Any:
        """Turn a run's input into a state: a state instance as is, a mapping validated, ``None`` defaults.

        Raises:
            pydantic.ValidationError: the input does not fit the state type.
        """
        if isinstance(value, self.type):
            return value
        if value is None:
            value = {}
        if isinstance(value, Mapping):
            value = dict(value)
        return self._adapter.validate_python(value)

    def project(self, source: Any) -> dict[str, Any]:
        """The fields of ``source`` (any state object) that this state also has, by name."""
        return {name: getattr(source, name) for name in self.fields if hasattr(source, name)}

    def replace(self, state: Any, values: Mapping[str, Any]) -> Any:
        """A copy of ``state`` with ``values`` set (validated, merge rules not applied): an edit, not an update.

        Raises:
            ConfigError: a field is unknown or a value does not fit it.
        """
        changed = {}
        for name, value in values.items():
            spec = self.fields.get(name)
            if spec is None:
                raise ConfigError(f"{self.name} has no field {name!r}; it has {sorted(self.fields)}")
            try:
                changed[name] = spec.adapter.validate_python(value)
            except ValidationError as exc:
                raise ConfigError(f"{self.name}.{name} cannot be {short(value)}: {_first_error(exc)}") from exc
        return self._copy(state, changed) if changed else state

    def apply(self, state: Any, writes: Sequence[tuple[str, str, Mapping[str, Any]]], *, run_id: str) -> Any:
        """Apply each step's writes in order and return the new state (``state`` itself if nothing changed).

        Args:
            state: the current state.
            writes: ``(step path, task label, updates)`` in task order, one per task; the label tells apart the
                tasks of one step (a dynamic fan-out) when two of them conflict.
            run_id: for errors.

        Raises:
            StepOutputError: an update names an unknown field or has a value of the wrong type.
            UpdateConflictError: two steps replaced one field that has no merge rule.
        """
        if not writes:
            return state
        fields = self.fields
        changed: dict[str, Any] = {}
        writer: dict[str, str] = {}
        for step, label, updates in writes:
            for name, value in updates.items():
                spec = fields.get(name)
                if spec is None:
                    raise StepOutputError(
                        f"wrote unknown field {name!r}; {self.name} has {sorted(fields)}",
                        run_id=run_id,
                        step=step,
                    )
                if spec.reducer is None:
                    if name in writer:
                        raise UpdateConflictError(run_id=run_id, field=name, writers=(writer[name], label), step=step)
                    new = value
                else:
                    current = changed[name] if name in changed else getattr(state, name)
                    new = spec.reducer(current, value)
                try:
                    changed[name] = spec.adapter.validate_python(new)
                except ValidationError as exc:
                    raise StepOutputError(
                        f"field {name!r} got {short(value)}: {_first_error(exc)}", run_id=run_id, step=step
                    ) from exc
                writer[name] = label
        if not changed:
            return state
        return self._copy(state, changed)


def _copy_model(state: Any, changed: dict[str, Any]) -> Any:
    """``state.model_copy(update=changed)`` without its generic deep-copy machinery (twice as fast).

    Same result: a new instance sharing unchanged values, with ``changed`` counted as set fields. The values in
    ``changed`` were validated by the field adapters already.
    """
    cls: Any = type(state)
    new = cls.__new__(cls)
    values = dict(state.__dict__)
    values.update(changed)
    _set(new, "__dict__", values)
    _set(new, "__pydantic_fields_set__", state.__pydantic_fields_set__ | changed.keys())
    extra = state.__pydantic_extra__
    _set(new, "__pydantic_extra__", None if extra is None else dict(extra))
    private = state.__pydantic_private__
    _set(new, "__pydantic_private__", None if private is None else dict(private))
    return new


_set = object.__setattr__


def _copy_dataclass(state: Any, changed: dict[str, Any]) -> Any:
    return dataclasses.replace(state, **changed)


def _pydantic_fields(model: type[pydantic.BaseModel], workflow: str) -> dict[str, FieldSpec]:
    specs: dict[str, FieldSpec] = {}
    for name, info in model.model_fields.items():
        rule = _one_reducer(info.metadata, workflow, f"{model.__name__}.{name}")
        specs[name] = FieldSpec(name, TypeAdapter(info.rebuild_annotation()), rule)
    return specs


def _dataclass_fields(cls: type[Any], workflow: str) -> dict[str, FieldSpec]:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError as exc:
        raise StateSchemaError(f"cannot resolve a type hint of {cls.__name__}: {exc}", workflow=workflow) from exc
    specs: dict[str, FieldSpec] = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        metadata = getattr(hint, "__metadata__", ())
        rule = _one_reducer(metadata, workflow, f"{cls.__name__}.{field.name}")
        specs[field.name] = FieldSpec(field.name, TypeAdapter(hint), rule)
    return specs


def _one_reducer(metadata: Sequence[Any], workflow: str, where: str) -> Reducer | None:
    rules = [m for m in metadata if isinstance(m, Reducer)]
    if len(rules) > 1:
        names = ", ".join(r.name for r in rules)
        raise StateSchemaError(f"has several merge rules ({names}); keep one", workflow=workflow, where=where)
    return rules[0] if rules else None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{err['msg']}" + (f" (at {loc})" if loc else "")


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def every_error(exc: ValidationError, root: str) -> str:
    """Every problem pydantic found, ``where: what`` joined by ``; `` (``root`` names the value itself)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in exc.errors(include_url=False))
