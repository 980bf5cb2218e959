"""Semantic and hybrid ranking: chunk vectors kept in memory while nothing is written, cosine by numpy, and
reciprocal rank fusion of two rankings."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from podium.knowledge._backend import Backend, Scope
from podium.knowledge._embedder import Embedder, embed, stack, top
from podium.knowledge._records import Hit

__all__ = ["Vectors", "fuse"]

CACHED_SCOPES = 8
"""Semantic searches keep the vectors of this many scopes (namespace sets) in memory."""
RRF = 60
"""Reciprocal rank fusion's constant: a hybrid search scores a chunk 1/(60 + rank) in each list it is in."""


class Vectors:
    """The chunk vectors of a backend, read for semantic searches and kept, by scope and embedder, with the
    backend's version when read: a search after any write (by anyone) reads them again."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._cached: dict[tuple[Scope | None, str], tuple[tuple[int, int], list[tuple[str, int]], Any]] = {}

    async def search(self, query: str, scope: Scope | None, k: int, embedder: Embedder) -> list[Hit]:
        """The ``k`` chunks in scope whose vectors are nearest the query's (cosine), best first."""
        (vector,) = await asyncio.to_thread(embed, embedder, [query])
        keys, matrix = await self._matrix(scope, embedder)
        best = await asyncio.to_thread(top, vector, matrix, k)
        chosen = [keys[i] for i, _ in best]
        found = await self.backend.hits(chosen)
        return [replace(found[key], score=score) for key, (_, score) in zip(chosen, best, strict=True) if key in found]

    async def _matrix(self, scope: Scope | None, embedder: Embedder) -> tuple[list[tuple[str, int]], Any]:
        version = await self.backend.version()  # before reading: a write in between makes the next search reread
        cached = self._cached.get((scope, embedder.name))
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        stored = await self.backend.vectors(scope, embedder.name)
        matrix = await asyncio.to_thread(stack, [v for _, v in stored], embedder.dimensions)
        if len(self._cached) >= CACHED_SCOPES:
            self._cached.pop(next(iter(self._cached)))
        keys = [key for key, _ in stored]
        self._cached[(scope, embedder.name)] = (version, keys, matrix)
        return keys, matrix

    def clear(self) -> None:
        self._cached.clear()


def fuse(keyword: list[Hit], semantic: list[Hit], k: int) -> list[Hit]:
    """Reciprocal rank fusion of two rankings: the ``k`` best, scored by the sum of 1/(60 + rank)."""
    scores: dict[tuple[str, int], float] = {}
    hits: dict[tuple[str, int], Hit] = {}
    for ranking in (keyword, semantic):
        for rank, hit in enumerate(ranking, start=1):
            key = (hit.record_id, hit.chunk)
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF + rank)
            hits.setdefault(key, hit)
    best = sorted(scores, key=lambda key: (-scores[key], key))[:k]
    return [replace(hits[key], score=scores[key]) for key in best]
