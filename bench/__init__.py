"""Benchmarks: commands that measure, not timed tests. See bench/README.md."""
