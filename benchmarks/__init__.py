"""Speed and quality benchmarks (`make bench`); results go to BENCHMARKS.md. Not run in CI."""
