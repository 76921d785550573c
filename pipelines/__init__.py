"""Pipelines: sources, the Ray runtime, batch ingest, the query path, config and the CLI."""
