"""The demo command and the media it (and the tests and benchmarks) build with known content."""
