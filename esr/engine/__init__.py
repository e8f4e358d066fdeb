"""The embedded runtime: drives the pure core against a real target in one process."""
