"""``top_k``: exact, deterministic ranking of a matrix's rows against a query."""

from __future__ import annotations

import importlib.util
import os

import pytest

from podium.errors import ConfigError
from podium.knowledge import top_k

if importlib.util.find_spec("numpy") is None and not os.environ.get("CI"):  # CI installs it: fail there
    pytest.skip("top_k needs numpy: pip install 'podium[embeddings]'", allow_module_level=True)

import numpy as np  # after the skip
from numpy.typing import NDArray


def unit_rows(rows: int, dimensions: int = 384, seed: int = 0) -> NDArray[np.float32]:
    matrix = np.random.default_rng(seed).standard_normal((rows, dimensions)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def test_agrees_with_a_full_sort() -> None:
    matrix = unit_rows(10_000)
    query = unit_rows(1, seed=1)[0]
    rows, scores = top_k(query, matrix, 10)
    expected = np.argsort(-(matrix @ query), kind="stable")[:10]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, (matrix @ query)[expected])
    assert (np.diff(scores) <= 0).all()
    assert scores.dtype == np.float32


def test_a_stored_vector_finds_itself_first() -> None:
    matrix = unit_rows(1000)
    rows, scores = top_k(matrix[417], matrix, 1)
    assert rows.tolist() == [417]
    assert scores[0] == pytest.approx(1.0, abs=1e-6)


def test_ties_rank_by_row_and_the_kth_place_keeps_the_lowest_rows() -> None:
    matrix = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    query = np.array([1.0, 0.0], dtype=np.float32)
    assert top_k(query, matrix, 2)[0].tolist() == [1, 3]  # rows 1, 3 and 4 tie: the lowest two
    assert top_k(query, matrix, 4)[0].tolist() == [1, 3, 4, 5]
    assert top_k(query, matrix, 6)[0].tolist() == [1, 3, 4, 5, 0, 2]


def test_k_larger_than_the_matrix_returns_every_row_ranked() -> None:
    matrix = unit_rows(5)
    rows, scores = top_k(matrix[2], matrix, 50)
    assert sorted(rows.tolist()) == [0, 1, 2, 3, 4]
    assert rows[0] == 2
    assert len(scores) == 5


@pytest.mark.parametrize("k", [0, -3])
def test_no_rows_for_k_of_zero_or_less(k: int) -> None:
    rows, scores = top_k(unit_rows(1)[0], unit_rows(10), k)
    assert rows.shape == scores.shape == (0,)


def test_an_empty_matrix_has_no_matches() -> None:
    rows, scores = top_k(unit_rows(1)[0], np.empty((0, 384), dtype=np.float32), 5)
    assert rows.shape == scores.shape == (0,)


def test_shapes_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"got \(384,\) and \(10, 768\)"):
        top_k(unit_rows(1)[0], unit_rows(10, dimensions=768), 3)
    with pytest.raises(ConfigError, match="top_k needs"):
        top_k(unit_rows(2), unit_rows(10), 3)  # a batch of queries
