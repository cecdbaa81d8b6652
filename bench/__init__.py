"""Step micro-benchmarks (pytest-benchmark): one training step per backend path, optimizer
kind and batch size. Not part of `make test`; run with `make bench-steps`."""
