"""Pipelines: ingest on Ray (the driver and its source kinds), live and Kafka I/O, the query path,
the command line; the demo and the media it builds in ``pipelines.demo``."""
