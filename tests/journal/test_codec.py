"""Values keep their Python types through the journal, and what cannot be journaled says so."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import threading
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from podium import EncodingError
from podium.journal import decode, encode
from podium.journal._codec import dumps, loads


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Draft(BaseModel):
    title: str
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Shouting(BaseModel):
    """A validator that changes its input: decoding must not run it a second time."""

    text: str

    def model_post_init(self, context: Any) -> None:
        object.__setattr__(self, "text", self.text.upper() + "!")


VALUES: list[Any] = [
    None,
    True,
    3,
    2.5,
    "plain",
    [1, "two", None],
    {"a": 1, "b": [2, 3]},
    (1, (2, 3)),
    {1, 2},
    frozenset({"x"}),
    {1: "int key", (2, 3): "tuple key"},
    {"$model": "looks like a tag, but is data"},
    dt.datetime(2026, 11, 21, 14, 0, tzinfo=dt.UTC),
    dt.date(2026, 11, 21),
    dt.time(14, 30),
    dt.timedelta(seconds=90.5),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("1.10"),
    b"\x00\xffbytes",
    pathlib.Path("/tmp/x"),
    Color.RED,
    Color.BLUE,
    Draft(title="t", tags=("a", "b"), meta={"p": Point(1, 2)}),
    Point(3, 4),
    [Draft(title="nested"), {"deep": (Point(0, 0), Color.BLUE)}],
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_round_trip_with_their_types(value: Any) -> None:
    back = loads(dumps(value))
    assert back == value
    assert type(back) is type(value)


def test_non_finite_floats_survive() -> None:
    back = loads(dumps([float("inf"), float("-inf"), float("nan")]))
    assert back[:2] == [float("inf"), float("-inf")]
    assert back[2] != back[2]  # NaN


def test_models_in_any_fields_come_back_as_models() -> None:
    back = loads(dumps({"content": Draft(title="x", meta={"when": dt.date(2026, 1, 1)})}))
    assert isinstance(back["content"], Draft)
    assert back["content"].meta["when"] == dt.date(2026, 1, 1)


def test_decoding_does_not_validate_a_model_again() -> None:
    shouted = Shouting(text="hi")
    assert shouted.text == "HI!"
    assert decode(encode(shouted)).text == "HI!"


def test_an_unjournalable_value_names_where_it_is() -> None:
    with pytest.raises(EncodingError, match=r"value\.payload\[1\].*_thread\.lock"):
        encode({"payload": [1, threading.Lock()]})


def test_a_class_defined_in_a_function_is_refused_when_encoding_not_when_resuming() -> None:
    class Local(BaseModel):
        x: int = 1

    with pytest.raises(EncodingError, match="defined inside a function"):
        encode(Local())


def test_a_class_that_cannot_be_imported_is_a_clear_error() -> None:
    with pytest.raises(EncodingError, match=r"no_such_module:Thing.*cannot be imported"):
        decode({"$model": "no_such_module:Thing", "v": {}})
