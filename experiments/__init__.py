"""Benchmarks and evaluations that write reports (JSON + Markdown)."""
