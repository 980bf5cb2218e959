"""The workflow model: state and merge rules, steps, the graph builder, validation and the pattern builders."""
