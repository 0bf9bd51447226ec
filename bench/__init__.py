"""Benchmark harness for plano-trio (mock provider, load scripts)."""
