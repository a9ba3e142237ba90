"""Benchmarks (``make bench``): separate from the test suite, every figure next to a baseline
measured in the same run on the same broker and Redis."""
