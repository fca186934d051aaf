"""The models layer: problems (a loss split into k partitions), data, straggler (delay)
models and optimisers. Imports the core layer only."""
