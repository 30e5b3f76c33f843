"""Graph-to-graph passes and plan building: symbolic differentiation, pruning, scheduling."""
