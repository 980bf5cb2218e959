"""A process that writes to a knowledge base, for the test of two processes writing one SQLite file at once.

``python -m tests.knowledge.writer_proc PATH TAG COUNT``: COUNT facts and COUNT documents tagged TAG, and COUNT
rewrites of the record ``shared``, interleaved; prints ``done`` at the end.
"""

from __future__ import annotations

import asyncio
import sys

from podium.knowledge import KnowledgeBase


async def write(path: str, tag: str, count: int) -> None:
    async with await KnowledgeBase.open(path) as kb:
        for n in range(count):
            await kb.write_fact("crew:shared", f"fact {n} from {tag}", id=f"{tag}-fact-{n}", agent=tag)
            await kb.write_document(
                "crew:shared", f"# Note {n}\n\nA note from {tag}, number {n}.\n\n## More\n\nSecond part by {tag}.",
                id=f"{tag}-doc-{n}", agent=tag,
            )  # fmt: skip
            await kb.write_fact("crew:shared", f"last written by {tag} at {n}", id="shared", agent=tag)


if __name__ == "__main__":
    asyncio.run(write(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    print("done")
