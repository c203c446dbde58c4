"""Benchmarks behind `accord bench`: each prints one JSON line comparing against a floor."""
