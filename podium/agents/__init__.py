"""Agents: personas (SOUL.md), tools, and the loop that runs a model until it gives an answer that fits."""
