"""The ``Embedder`` protocol: what turns text into vectors for semantic search, and the vector arithmetic.

An embedder computes vectors locally (a model that installs with a package; nothing downloads at run time). The
knowledge base stores each chunk's vector (float32 bytes) when the chunk is written, with the embedder's
``name``: a semantic search compares only vectors made by the embedder it was given. numpy is imported when
vectors are first needed, so keyword search works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from podium.errors import ConfigError

if TYPE_CHECKING:
    import numpy

__all__ = ["Embedder", "check_embedder", "embed", "numpy_module", "stack", "top"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors.

    Attributes:
        name: identifies the model (vectors of different names are never compared).
        dimensions: the length of every vector.
    """

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:  # shape (n, dimensions), float32, rows L2-normalised
        """One vector per text: an array of shape ``(len(texts), dimensions)``, float32, each row of length 1."""
        ...


def numpy_module() -> Any:
    """numpy, or a ConfigError that says how to get it."""
    try:
        import numpy
    except ImportError as exc:
        raise ConfigError(
            "semantic search needs numpy, which is not installed: pip install numpy (an embedder's package "
            "usually brings it), or search with mode='keyword'"
        ) from exc
    return numpy


def check_embedder(embedder: Any) -> Embedder:
    """``embedder`` if it looks like an :class:`Embedder`, else a ConfigError naming what is missing."""
    missing = [name for name in ("name", "dimensions", "embed") if not hasattr(embedder, name)]
    if missing:
        raise ConfigError(f"{embedder!r} is not an embedder: it has no {', '.join(missing)} (see podium.knowledge)")
    if not isinstance(embedder.dimensions, int) or embedder.dimensions <= 0:
        raise ConfigError(f"embedder {embedder.name!r}: dimensions must be a positive int, not {embedder.dimensions!r}")
    checked: Embedder = embedder
    return checked


def embed(embedder: Embedder, texts: Sequence[str]) -> list[bytes]:
    """Each text's vector as float32 bytes, checked for shape."""
    np = numpy_module()
    vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
    if vectors.shape != (len(texts), embedder.dimensions):
        raise ConfigError(
            f"embedder {embedder.name!r} returned an array of shape {vectors.shape}, not "
            f"({len(texts)}, {embedder.dimensions})"
        )
    return [row.tobytes() for row in vectors]


def stack(vectors: Sequence[bytes], dimensions: int) -> Any:
    """Stored vectors (float32 bytes) as one matrix, a row each."""
    np = numpy_module()
    return np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(vectors), dimensions)


def top(query: bytes, matrix: Any, k: int) -> list[tuple[int, float]]:
    """The ``k`` best (row, cosine) of ``matrix`` for ``query`` (all rows already L2-normalised), best first; ties
    are ranked by row (:func:`podium.knowledge._nearest.top_k`)."""
    from podium.knowledge._nearest import top_k

    np = numpy_module()
    rows, scores = top_k(np.frombuffer(query, dtype=np.float32), matrix, k)
    return [(int(row), float(score)) for row, score in zip(rows, scores, strict=True)]
