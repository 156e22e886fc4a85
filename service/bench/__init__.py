"""Benchmarks on real packaged data; each module exposes one run_* function the CLI wires up."""
