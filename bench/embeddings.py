"""Local embeddings and semantic search: model load time, embedding throughput, search latency over 10,000 chunks.

    python -m bench.embeddings                     # 1,000 distinct chunks embedded, a 10,000-row matrix, 200 queries
    python -m bench.embeddings --distinct 10000    # every one of the 10,000 rows a real embedding (minutes)
    python -m bench.embeddings --json              # one JSON line instead of the table

**Chunks** are this repository's own Markdown and Python files (sorted by path), cut into pieces of 198 word pieces
(200 with [CLS] and [SEP]) by the model's tokenizer: prose and code, what a team's knowledge base holds. The files
give about 2,200 such chunks; when more are wanted, further passes cut the files again with windows shifted by
99, 49, 148... pieces (overlapping chunks, as a chunker with overlap makes), so every chunk is a distinct text.

**Throughput**: the first ``--distinct`` chunks embedded by one call of ``MiniLM(batch_size=--batch).embed``, after
a warm-up batch: its batches run side by side, one per CPU. Chunks per second and word pieces per second. Then the
same chunks (at most 256 of them) one call per batch, which runs each batch in the caller's thread
(``chunks_per_s_one_batch_per_call``: a knowledge base that adds a few chunks at a time).

**The 10,000-row matrix**: the ``--distinct`` real embeddings repeated in turn up to ``--rows``; every repeat after
the first gets Gaussian noise (standard deviation 0.01 per dimension, seeded) and is normalised again, so rows are
distinct (about 0.98 cosine to their original) and a scan finds no exact ties. With ``--distinct`` equal to
``--rows`` every row is a real embedding.

**Search latency**: ``--queries`` queries of 8 to 16 consecutive words taken from random chunks (seeded), after 10
warm-up queries; for each, ``MiniLM.embed([query])`` then ``top_k(vector, matrix, --k)``, each timed with
``time.perf_counter``. p50/p95 of embed + top-k, of top-k alone and of the embed alone. ``hit_rate`` is the share of
queries whose source chunk (or one of its noisy copies) is in their top k: a sanity check, not a quality metric.

**Model load** is ``MiniLM().load()`` timed in this fresh process (imports of numpy, safetensors and tokenizers
included; the files are in the OS page cache after a first run). Peak RSS is ``ru_maxrss`` at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import peak_rss_mb, progress

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
CHUNK_PIECES = 198  # + [CLS] and [SEP] = 200
NOISE = 0.01
SHIFTS = (0, 99, 49, 148, 24, 123, 74, 173)  # where each pass over the files starts cutting


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.embeddings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the searched matrix (%(default)s)")
    parser.add_argument("--distinct", type=int, default=1000, help="chunks really embedded (%(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="texts per forward pass (%(default)s)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries (%(default)s)")
    parser.add_argument("--k", type=int, default=10, help="results per query (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise and the queries (%(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args(argv)
    if not 1 <= args.distinct <= args.rows or args.batch < 1 or args.queries < 1 or args.k < 1:
        parser.error("need 1 <= --distinct <= --rows, and positive --batch, --queries and --k")
    return args


def _sources() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    names = listed.stdout.split() if listed.returncode == 0 else []
    if not names:  # not a git checkout
        names = [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob("*") if p.suffix in {".md", ".py"}]
    return [REPO_ROOT / name for name in sorted(names) if (REPO_ROOT / name).is_file()]


def _chunks(model_dir: Path, wanted: int) -> list[str]:
    """Consecutive 198-piece spans of the repository's files, as text, until ``wanted`` (or the files run out)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    files = []
    for path in _sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        files.append((text, [start for start, _ in offsets], [end for _, end in offsets]))
    chunks: list[str] = []
    for shift in SHIFTS:
        for text, starts, ends in files:
            for first in range(shift, len(starts) - CHUNK_PIECES + 1, CHUNK_PIECES):  # whole chunks only
                chunks.append(text[starts[first] : ends[first + CHUNK_PIECES - 1]])
                if len(chunks) == wanted:
                    return chunks
    return chunks


def _nearest_rank(ordered: Sequence[float], quantile: float) -> float:
    return ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def _percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50 (the median), p95 (nearest rank) and the maximum of timings in seconds, in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1e3, 3),
        "p95_ms": round(_nearest_rank(ordered, 0.95) * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3),
    }


def _percentiles_of(counts: Sequence[int]) -> dict[str, float]:
    ordered = sorted(counts)
    return {"p50": statistics.median(ordered), "p95": _nearest_rank(ordered, 0.95)}


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    load_avg_start = os.getloadavg()[0]
    started = time.perf_counter()
    from podium.knowledge import MiniLM, top_k

    model = MiniLM(batch_size=args.batch)
    model.load()
    load_s = time.perf_counter() - started
    progress(f"bench.embeddings: model loaded in {load_s:.2f} s")

    import numpy as np
    from tokenizers import Tokenizer

    chunks = _chunks(model.model_dir, args.distinct)
    if len(chunks) < args.distinct:
        raise SystemExit(f"bench.embeddings: only {len(chunks)} chunks in the repository's files; lower --distinct")
    counter = Tokenizer.from_file(str(model.model_dir / "tokenizer.json"))
    counter.no_padding()
    counter.no_truncation()
    pieces = [
        len(e.ids) for start in range(0, len(chunks), 256) for e in counter.encode_batch(chunks[start : start + 256])
    ]

    model.embed(chunks[: args.batch])  # warm-up
    progress(f"bench.embeddings: embedding {len(chunks)} chunks of {statistics.mean(pieces):.0f} word pieces")
    begin = time.perf_counter()
    distinct = model.embed(chunks)
    embed_s = time.perf_counter() - begin
    few = chunks[:256]
    begin = time.perf_counter()
    for start in range(0, len(few), args.batch):
        model.embed(few[start : start + args.batch])
    one_batch_per_call_s = time.perf_counter() - begin

    rng = np.random.default_rng(args.seed)
    matrix = np.resize(distinct, (args.rows, distinct.shape[1]))  # repeats the rows in turn
    noisy = matrix[len(distinct) :]
    noisy += rng.normal(0.0, NOISE, size=noisy.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    source_of_row = np.arange(args.rows) % len(distinct)

    queries: list[tuple[str, int]] = []
    for _ in range(args.queries + 10):
        source = int(rng.integers(len(chunks)))
        words = chunks[source].split()
        length = int(rng.integers(8, 17))
        at = int(rng.integers(max(1, len(words) - length)))
        queries.append((" ".join(words[at : at + length]), source))
    progress(f"bench.embeddings: {args.queries} queries over a {matrix.shape[0]}x{matrix.shape[1]} matrix")
    embed_only: list[float] = []
    search_only: list[float] = []
    total: list[float] = []
    hits = 0
    for n, (query, source) in enumerate(queries):
        t0 = time.perf_counter()
        vector = model.embed([query])[0]
        t1 = time.perf_counter()
        rows, _ = top_k(vector, matrix, args.k)
        t2 = time.perf_counter()
        if n < 10:
            continue  # warm-up
        embed_only.append(t1 - t0)
        search_only.append(t2 - t1)
        total.append(t2 - t0)
        hits += bool((source_of_row[rows] == source).any())

    return {
        "model": model.name,
        "model_load_s": round(load_s, 3),
        "chunks_embedded": len(chunks),
        "word_pieces_per_chunk": round(statistics.mean(pieces), 1),
        "batch": args.batch,
        "embed_s": round(embed_s, 2),
        "chunks_per_s": round(len(chunks) / embed_s, 2),
        "chunks_per_s_one_batch_per_call": round(len(few) / one_batch_per_call_s, 2),
        "threads": model.threads,
        "word_pieces_per_s": round(sum(pieces) / embed_s),
        "rows": args.rows,
        "distinct_rows": len(distinct),
        "noise_sd": NOISE if args.rows > len(distinct) else 0.0,
        "queries": args.queries,
        "k": args.k,
        "search": _percentiles(total),
        "top_k_only": _percentiles(search_only),
        "query_embed_only": _percentiles(embed_only),
        "query_word_pieces": _percentiles_of([len(counter.encode(q).ids) for q, _ in queries[10:]]),
        "hit_rate": round(hits / args.queries, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "load_average": [round(load_avg_start, 2), round(os.getloadavg()[0], 2)],
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def _table(f: dict[str, Any]) -> str:
    rows = [
        ("model load (imports + weights + tokenizer)", f"{f['model_load_s']:.2f} s"),
        (
            f"embedding throughput ({f['word_pieces_per_chunk']:.0f}-piece chunks, batch {f['batch']})",
            f"{f['chunks_per_s']:.1f} chunks/s ({f['word_pieces_per_s']:,} pieces/s; "
            f"{f['chunks_embedded']} chunks in {f['embed_s']:.1f} s, {f['threads']} threads)",
        ),
        ("  one batch per call (one thread)", f"{f['chunks_per_s_one_batch_per_call']:.1f} chunks/s"),
        (
            f"search: query embed + top-{f['k']} over {f['rows']:,} x 384",
            f"p50 {f['search']['p50_ms']:.2f} ms, p95 {f['search']['p95_ms']:.2f} ms",
        ),
        ("  top-k alone", f"p50 {f['top_k_only']['p50_ms']:.2f} ms, p95 {f['top_k_only']['p95_ms']:.2f} ms"),
        (
            "  query embed alone",
            f"p50 {f['query_embed_only']['p50_ms']:.2f} ms, p95 {f['query_embed_only']['p95_ms']:.2f} ms "
            f"(queries of {f['query_word_pieces']['p50']:.0f} word pieces, p95 {f['query_word_pieces']['p95']:.0f})",
        ),
        ("queries whose source chunk is in the top k", f"{f['hit_rate']:.1%} of {f['queries']}"),
        ("peak RSS", f"{f['peak_rss_mb']:.0f} MB"),
        (
            "matrix",
            f"{f['distinct_rows']:,} distinct embeddings"
            + (f", repeated with N(0, {f['noise_sd']}) noise" if f["noise_sd"] else ""),
        ),
        ("machine", f"{f['cpus']} CPUs, load average {f['load_average'][0]} -> {f['load_average'][1]}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    figures = _measure(args)
    sys.stdout.write((json.dumps(figures) if args.json else _table(figures)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
