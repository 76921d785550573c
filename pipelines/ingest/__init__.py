"""Ingest on Ray: the one driver loop, the encoder pools, files as a source kind, sources and profiles."""
