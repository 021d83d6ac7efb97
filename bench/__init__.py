"""Benchmarks: run them as modules from the workspace root (`python -m bench.place_orders`)."""
