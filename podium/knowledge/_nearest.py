"""``top_k``: exact nearest-neighbour search over a matrix of unit vectors (numpy).

A knowledge base's chunks are few enough for a brute-force scan: one matrix-vector product over 10,000 chunks of 384
dimensions reads 15 MB and takes a few milliseconds (``python -m bench.embeddings``), with no index to build or keep
in step with the store, and no approximation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podium.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["top_k"]


def top_k(
    query: NDArray[np.float32], matrix: NDArray[np.float32], k: int
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """The ``k`` rows of ``matrix`` most similar to ``query``, best first.

    With unit vectors (what an ``Embedder`` returns) the score is the cosine similarity. The order is deterministic:
    equal scores are ranked by row number, and a tie at the k-th place keeps the lowest rows.

    Args:
        query: one vector, shape ``(dimensions,)``.
        matrix: one vector per row, shape ``(rows, dimensions)``.
        k: how many rows to return; fewer when the matrix has fewer rows, none when ``k <= 0``.

    Returns:
        ``(rows, scores)``: the row numbers and their dot products with ``query``, by descending score.

    Raises:
        ConfigError: the shapes do not fit (a matrix of another model's vectors, a batch of queries).
    """
    import numpy as np

    if query.ndim != 1 or matrix.ndim != 2 or matrix.shape[1] != query.shape[0]:
        raise ConfigError(
            f"top_k needs a (dimensions,) query and a (rows, dimensions) matrix, got {query.shape} and {matrix.shape}"
        )
    scores = matrix @ query
    rows = len(scores)
    if k <= 0 or rows == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=scores.dtype)
    if k >= rows:
        chosen = np.arange(rows, dtype=np.intp)
    else:
        # argpartition finds the k best in linear time but breaks ties at the k-th score arbitrarily: keep every row
        # strictly above it, then the lowest-numbered rows equal to it
        kth = scores[np.argpartition(scores, rows - k)[rows - k]]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)[: k - len(above)]
        chosen = np.concatenate([above, tied])
    order = np.lexsort((chosen, -scores[chosen]))  # by score descending, then row ascending
    best = chosen[order]
    return best, scores[best]
