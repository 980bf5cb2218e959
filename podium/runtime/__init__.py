"""The runtime: the scheduler that runs workflows, their limits, run context and results."""
