"""Benchmarks (`python -m bench.tiles`)."""
