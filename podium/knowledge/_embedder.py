"""``Embedder``: what the knowledge base needs from a text-embedding model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy

__all__ = ["Embedder"]


class Embedder(Protocol):
    """Turns texts into vectors whose dot product is their cosine similarity.

    Attributes:
        name: the model's name, stored beside the vectors so that a knowledge base never compares vectors of two
            different models.
        dimensions: the length of every vector.
    """

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        """The texts' vectors: shape ``(len(texts), dimensions)``, float32, each row of L2 norm 1."""
        ...
