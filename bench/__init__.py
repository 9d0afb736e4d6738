"""Benchmarks of the real bot code against `winpod sim` (issue 9); run them with `make bench`."""
