"""Benchmarks. Each `bench/bench_*.py` defines `run(quick: bool) -> dict`; `python -m bench` runs them."""
