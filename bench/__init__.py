"""Benchmarks for podium. Run them with ``python -m bench.run``; see ``bench/README.md``."""
