"""Merge rules for state fields: ``Annotated[list[str], reducers.append]``. See :mod:`podium.flow._reducers`."""

from podium.flow._reducers import Reducer, add, append, last, maximum, merge, minimum, reducer

__all__ = ["Reducer", "add", "append", "last", "maximum", "merge", "minimum", "reducer"]
