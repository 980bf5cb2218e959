"""A small, real, deterministic embedder for tests: hashed character trigrams of each word, L2-normalised.

Words that share most of their letters get close vectors ("refunds", "refunded", a typo "refnds"), which is enough
to check the semantic plumbing (vectors stored at write time, cosine ranking, hybrid fusion) against real numbers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["HashEmbedder"]


class HashEmbedder:
    """Hashed bag of character trigrams."""

    def __init__(self, dimensions: int = 256, name: str = "hash-trigrams") -> None:
        self.name = name
        self.dimensions = dimensions
        self.calls = 0
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                padded = f"<{word}>"
                for i in range(len(padded) - 2):
                    digest = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest()
                    value = int.from_bytes(digest, "little")
                    out[row, value % self.dimensions] += 1.0 if value & 1 << 31 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out


def make() -> HashEmbedder:
    """For crew files: ``embedder: tests.knowledge.embedder:make``."""
    return HashEmbedder()
