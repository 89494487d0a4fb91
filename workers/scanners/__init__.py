"""Scanner adapters: one module per tool, each turning the tool's output into findings."""
