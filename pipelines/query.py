"""The query path: text in, moments out, in-process (no Ray: a query must answer in milliseconds)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from indexers.index import SegmentIndex
from indexers.search import Searcher
from operators.text import TextEncoder


@contextmanager
def open_searcher(data_dir: Path, *, device: str = "cpu") -> Iterator[Searcher]:
    """Open the index read-side and load the text encoder once; reuse the searcher for many queries."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"no index at {data_dir}: run `vidscope ingest PATH --data {data_dir}` first")
    encoder = TextEncoder(device=device)
    encoder.setup()
    with SegmentIndex(data_dir) as index:
        yield Searcher(index, encoder.embed)
