"""Performance benchmark for aigw (not part of the test suite): `python -m benchmarks.run`."""
