"""Observing runs: lifecycle hooks (the journal, tracing and the UI attach here)."""
