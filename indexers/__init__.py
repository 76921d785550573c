"""Indexers: FAISS vector indexes, the metadata store, idempotent writes, search."""
