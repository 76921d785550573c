"""A data folder: the metadata store and the vector indexes, written together.

Layout::

    DATA/vidscope.sqlite3 (+ -wal, -shm)   sources, segments, every vector (the source of truth)
    DATA/index/                            FAISS files and their manifest (see indexers.vectors)
    DATA/words.sqlite3 (+ -wal, -shm)      what was said, by BM25 (indexers.lexical), derived

``upsert`` commits to SQLite first, then updates the in-memory FAISS indexes; ``save`` persists
those. A crash between the two loses nothing: the next open sees the saved indexes behind the
store and rebuilds them from it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from indexers.lexical import LexicalIndex
from indexers.sqlite_store import SqliteStore
from indexers.store import SourceInfo
from indexers.vector_config import VectorIndexConfig
from indexers.vectors import VectorIndexes
from operators.records import FusedRecord

DB_FILE = "vidscope.sqlite3"
REDIS_ENV = "VIDSCOPE_REDIS"
INDEX_DIR = "index"
log = logging.getLogger(__name__)


if TYPE_CHECKING:
    from indexers.shards import Shard


def _shard_vectors(index_dir: Path, store, config: VectorIndexConfig, shard: "Shard") -> VectorIndexes:
    keep = shard.keeper(store)
    folder = index_dir / "shards" / (f"{shard.number}-of-{shard.of}" if shard.of else "front")
    if not shard.of:  # the API in front of the shards holds no vectors and keeps no snapshot
        return VectorIndexes(folder, store, config, read_only=True, keep=keep)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError:
        writable = False
    vectors = VectorIndexes(folder, store, config, read_only=not writable, keep=keep)
    if writable:
        vectors.save()
    else:
        log.info("shard %d of %d: %s cannot be written; its indexes are built in memory at each start",
                 shard.number, shard.of, folder)
    return vectors


class SegmentIndex:
    """Everything a data folder knows, for writing (ingest) and reading (search, highlights).

    Opening rebuilds any index that is missing or behind the store, which can take seconds for a
    large HNSW space; searches from several threads are safe. Leaving a ``with`` block normally
    saves; leaving it on an exception only closes (SQLite already holds every committed batch).
    One writing process per data folder: a second one is not corrupted but makes the others
    rebuild.
    """

    def __init__(self, data_dir: str | os.PathLike, *, config: VectorIndexConfig | None = None,
                 redis_url: str | None = None, read_only: bool = False, shard: "Shard | None" = None) -> None:
        """``redis_url`` (default ``$VIDSCOPE_REDIS``): keep the metadata and vectors in Redis,
        shared by every worker that names it, instead of the folder's SQLite file; the FAISS
        files stay in the folder (each reader rebuilds what it lacks from the store).

        ``read_only``: for search, highlights, summaries and ask: nothing in the folder is
        written (a read-only mount works; a search beside an ingest never saves into its
        folder); what is missing or behind the store is rebuilt in memory.

        ``shard``: hold the vectors of that shard's sources only (``indexers.shards``). Their
        snapshots are the shard's own, in ``index/shards/N-of-M/``: saved on open when the
        folder can be written, so the next start loads them and replays what the store gained
        since, instead of building every space again (minutes at 100,000 segments)."""
        self.data_dir = Path(data_dir)
        self.read_only = read_only
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ValueError(f"data folder {self.data_dir} is a file, not a folder")
        redis_url = redis_url or os.environ.get(REDIS_ENV)
        if redis_url:
            from indexers.redis_store import RedisStore

            self.store = RedisStore(redis_url)
        else:
            self.store = SqliteStore(self.data_dir / DB_FILE, read_only=read_only)
        try:
            if shard is None:
                self.vectors = VectorIndexes(self.data_dir / INDEX_DIR, self.store, config or VectorIndexConfig(),
                                             read_only=read_only)
            else:
                self.vectors = _shard_vectors(self.data_dir / INDEX_DIR, self.store, config or VectorIndexConfig(), shard)
            self.lexical = LexicalIndex(self.data_dir, self.store, read_only=read_only)
        except BaseException:
            self.store.close()
            raise

    def upsert(self, records: Sequence[FusedRecord]) -> None:
        """Write fused records, one transaction for the batch; writing the same records again
        changes nothing. A record replaces all that was stored for its segment."""
        if self.read_only:
            raise ValueError(f"{self.data_dir} is open read-only")
        self.vectors.apply(self.store.upsert_segments(records))
        self.lexical.apply(records)

    def delete_segments(self, segment_ids: Sequence[int]) -> None:
        """Remove segments from the store and every index."""
        if self.read_only:
            raise ValueError(f"{self.data_dir} is open read-only")
        self.vectors.apply(self.store.delete_segments(segment_ids))
        self.lexical.remove(segment_ids)

    def delete_source(self, source_id: str) -> None:
        """Remove a source and everything it holds from the store and every index."""
        if self.read_only:
            raise ValueError(f"{self.data_dir} is open read-only")
        ids = [s.segment_id for s in self.store.segments_of_source(source_id)]
        self.vectors.apply(self.store.delete_source(source_id))
        self.lexical.remove(ids)

    def add_source(self, source: SourceInfo) -> None:
        """Record or update a source (its status too: pass ``dataclasses.replace(source, status="done")``)."""
        self.store.upsert_source(source)

    def save(self, *, only_if_due: bool = False) -> None:
        """Persist the FAISS indexes that changed (atomically; nothing is written if none did).
        ``only_if_due``: only those whose change since their snapshot is large (a live run's
        periodic save: what is committed is searchable anyway, replayed from the store)."""
        self.vectors.save(only_if_due=only_if_due)

    def counts(self) -> dict[str, int]:
        """Vectors per space."""
        return self.vectors.counts()

    def close(self) -> None:
        """Release the database. Does not save: unsaved indexes are rebuilt at the next open."""
        self.lexical.close()
        self.store.close()

    def __len__(self) -> int:
        """Number of segments stored."""
        return self.store.count_segments()

    def __enter__(self) -> SegmentIndex:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.save()
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"SegmentIndex({str(self.data_dir)!r}, segments={len(self)})"
