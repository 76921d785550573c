"""``MetadataStore`` in one SQLite file (WAL mode), the embedded default.

``synchronous=FULL``: a committed batch survives a power cut, which the live path needs before it
commits Kafka offsets; the cost is one fsync per batch, not per record. One connection per store,
shared by threads under a lock; readers in other processes (a ``vidscope search`` during an
ingest) see committed batches only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from urllib.parse import quote
from typing import Iterable, Iterator, Sequence

import numpy as np

from indexers.store import (SourceInfo, StoredSegment, VECTOR_SPACES, VectorChange, VectorSpaceState, packed_scores,
                            pick_source, record_vectors)
from operators.analysis.highlights import HighlightScore
from operators.records import FusedRecord, Scored, Span

SCHEMA_VERSION = 1
_IN_CHUNK = 500  # ids per "IN (...)": well under SQLite's bound-parameter limit on every version

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source_id TEXT PRIMARY KEY, uri TEXT NOT NULL, name TEXT NOT NULL, duration_ns INTEGER,
    has_video INTEGER NOT NULL, has_audio INTEGER NOT NULL, ingested_at_ns INTEGER NOT NULL,
    status TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS sources_by_name ON sources(name);
CREATE INDEX IF NOT EXISTS sources_by_uri ON sources(uri);
CREATE TABLE IF NOT EXISTS segments (
    segment_id INTEGER PRIMARY KEY, source_id TEXT NOT NULL, start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL, description TEXT NOT NULL, labels TEXT NOT NULL, events TEXT NOT NULL,
    transcript TEXT NOT NULL, loudness_db REAL, visual_scores BLOB, audio_scores BLOB);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments(source_id, start_ns);
CREATE TABLE IF NOT EXISTS vector_spaces (
    space TEXT PRIMARY KEY, dim INTEGER NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cuts (
    source_id TEXT NOT NULL, t_ns INTEGER NOT NULL, score REAL NOT NULL, PRIMARY KEY (source_id, t_ns));
CREATE TABLE IF NOT EXISTS highlight_scores (
    segment_id INTEGER PRIMARY KEY, source_id TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    score REAL NOT NULL, labels TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS highlights_by_score ON highlight_scores(score);
CREATE INDEX IF NOT EXISTS highlights_by_source ON highlight_scores(source_id, start_ns);
CREATE TABLE IF NOT EXISTS summaries (source_id TEXT PRIMARY KEY, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS thumbnails (segment_id INTEGER PRIMARY KEY, jpeg BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    space TEXT NOT NULL, segment_id INTEGER NOT NULL, vector BLOB NOT NULL, revision INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (space, segment_id));
CREATE TABLE IF NOT EXISTS vector_removals (
    space TEXT NOT NULL, segment_id INTEGER NOT NULL, revision INTEGER NOT NULL, PRIMARY KEY (space, segment_id));
"""
_AFTER_COLUMNS = "CREATE INDEX IF NOT EXISTS vectors_by_revision ON vectors(space, revision);"
"""Made once every added column exists (an older file gains ``vectors.revision`` first)."""

_SOURCE_COLUMNS = "source_id, uri, name, duration_ns, has_video, has_audio, ingested_at_ns, status, error"
_SEGMENT_COLUMNS = ("segment_id, source_id, start_ns, end_ns, description, labels, events, transcript, loudness_db, "
                    "visual_scores, audio_scores")
_ADDED_COLUMNS = {"segments": ("visual_scores BLOB", "audio_scores BLOB"),
                  "vectors": ("revision INTEGER NOT NULL DEFAULT 0",)}
"""Columns added since schema 1 was first written: an older file gains them (NULL) when opened."""


def connect_read_only(path: Path) -> sqlite3.Connection:
    """``path`` opened so that nothing is written, in a folder that may be read-only. A WAL
    database there can only be opened ``immutable`` (SQLite cannot make its ``-shm`` file);
    that is what a read-only mount means anyway: nobody writes under it."""
    if not path.is_file():
        raise ValueError(f"no index at {path.parent}: run `vidscope ingest PATH --data {path.parent}` first")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    for suffix in ("", "&immutable=1"):
        db = sqlite3.connect(uri + suffix, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if suffix or "unable to open" not in str(exc):
                raise ValueError(f"cannot read {path}: {exc}") from exc
    raise AssertionError("unreachable")


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i : i + _IN_CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _scored_json(items: Scored) -> str:
    return json.dumps([[label, float(score)] for label, score in items])


def _scored(text: str) -> Scored:
    return tuple((label, float(score)) for label, score in json.loads(text))


def _source(row: tuple) -> SourceInfo:
    source_id, uri, name, duration_ns, has_video, has_audio, ingested_at_ns, status, error = row
    return SourceInfo(source_id=source_id, uri=uri, name=name, duration_ns=duration_ns, has_video=bool(has_video),
                      has_audio=bool(has_audio), ingested_at_ns=ingested_at_ns, status=status, error=error)


def _segment(row: tuple) -> StoredSegment:
    segment_id, source_id, start_ns, end_ns, description, labels, events, transcript, loudness_db, visual, audio = row
    packed = {name: blob for name, blob in (("visual", visual), ("audio", audio)) if blob is not None}
    return StoredSegment(segment_id, source_id, start_ns, end_ns, description, _scored(labels), _scored(events),
                         transcript, loudness_db, packed)


def _ids(values: Iterable[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)


class SqliteStore:
    """``MetadataStore`` in one SQLite file. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: str | os.PathLike, *, read_only: bool = False) -> None:
        """``read_only``: open an existing database without writing a byte (a search on a
        read-only mount, or beside the ingest that owns the folder)."""
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._columns = _SEGMENT_COLUMNS
        if read_only:
            self._db = connect_read_only(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), so a batch is
            # exactly one transaction and reads outside a batch never hold one open.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            if not read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)  # idempotent: every statement is IF NOT EXISTS
                self._add_columns()
                self._db.executescript(_AFTER_COLUMNS)
                with self._transaction():
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
            else:  # a file from before a column was added is read as it is: the column reads as NULL
                have = {row[1] for row in self._db.execute("PRAGMA table_info(segments)")}
                self._columns = ", ".join(c if c in have else f"NULL AS {c}" for c in _SEGMENT_COLUMNS.split(", "))
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ValueError(f"{self.path} is not a vidscope database ({exc})") from exc
        except BaseException:
            self._db.close()
            raise
        if int(meta["schema_version"]) != SCHEMA_VERSION:
            self._db.close()
            raise ValueError(f"{self.path} has metadata schema {meta['schema_version']}, "
                             f"this vidscope reads {SCHEMA_VERSION}")
        self._store_id = meta["store_id"]

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    @property
    def store_id(self) -> str:
        """A random id made when the database was created: index files from another database never pass for ours."""
        return self._store_id

    def _transaction(self):
        return _Transaction(self._db, self._lock)

    # -- sources --------------------------------------------------------------------------------

    def ping(self) -> bool:
        """A file on this machine is always there (``MetadataStore.ping``)."""
        return True

    def upsert_source(self, source: SourceInfo) -> None:
        with self._transaction():
            self._db.execute(
                f"INSERT INTO sources ({_SOURCE_COLUMNS}) VALUES ({_marks(9)}) ON CONFLICT(source_id) DO UPDATE SET "
                "uri=excluded.uri, name=excluded.name, duration_ns=excluded.duration_ns, has_video=excluded.has_video, "
                "has_audio=excluded.has_audio, ingested_at_ns=excluded.ingested_at_ns, status=excluded.status, "
                "error=excluded.error",
                (source.source_id, source.uri, source.name, source.duration_ns, int(source.has_video),
                 int(source.has_audio), source.ingested_at_ns, source.status, source.error),
            )

    def get_source(self, source_id: str) -> SourceInfo | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE source_id=?", (source_id,)).fetchone()
        return None if row is None else _source(row)

    def find_source(self, key: str) -> SourceInfo | None:
        """The source whose id, path/URL or name is ``key`` (see ``pick_source``)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE source_id=? OR uri IN (?, ?) OR name=?",
                (key, key, os.path.abspath(key), key),
            ).fetchall()
        return pick_source(key, [_source(r) for r in rows])

    def list_sources(self) -> list[SourceInfo]:
        """Every source, oldest ingest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY ingested_at_ns, source_id").fetchall()
        return [_source(r) for r in rows]

    # -- segments and vectors -------------------------------------------------------------------

    def upsert_segments(self, records: Sequence[FusedRecord]) -> list[VectorChange]:
        """Write a batch in one transaction; the last record wins when an id repeats.

        A record replaces everything stored for its segment, vectors included: a space the new
        record lacks loses the segment's old vector there.
        """
        by_id = {r.segment_id: r for r in records}
        if not by_id:
            return []
        vectors = {sid: record_vectors(r) for sid, r in by_id.items()}
        ids = list(by_id)
        changes = []
        with self._transaction():
            dims = dict(self._db.execute("SELECT space, dim FROM vector_spaces"))
            self._check_dims(vectors, dims)
            self._db.executemany(
                f"INSERT INTO segments ({_SEGMENT_COLUMNS}) VALUES ({_marks(11)}) ON CONFLICT(segment_id) DO UPDATE SET "
                "source_id=excluded.source_id, start_ns=excluded.start_ns, end_ns=excluded.end_ns, "
                "description=excluded.description, labels=excluded.labels, events=excluded.events, "
                "transcript=excluded.transcript, loudness_db=excluded.loudness_db, "
                "visual_scores=excluded.visual_scores, audio_scores=excluded.audio_scores",
                [(r.segment_id, r.source_id, r.span.start_ns, r.span.end_ns, r.description, _scored_json(r.labels),
                  _scored_json(r.events), r.transcript, None if r.loudness_db is None else float(r.loudness_db),
                  packed.get("visual"), packed.get("audio"))
                 for r, packed in ((r, packed_scores(r)) for r in by_id.values())],
            )
            self._db.executemany("INSERT OR REPLACE INTO thumbnails (segment_id, jpeg) VALUES (?, ?)",
                                 [(sid, r.thumbnail_jpeg) for sid, r in by_id.items() if r.thumbnail_jpeg])
            self._db.executemany("DELETE FROM thumbnails WHERE segment_id=?",
                                 [(sid,) for sid, r in by_id.items() if not r.thumbnail_jpeg])
            for space in VECTOR_SPACES:
                change = self._upsert_space(space, ids, vectors, dims)
                if change is not None:
                    changes.append(change)
        return changes

    def _check_dims(self, vectors: dict[int, dict[str, np.ndarray]], dims: dict[str, int]) -> None:
        for sid, per_space in vectors.items():
            for space, vec in per_space.items():
                expected = dims.setdefault(space, vec.shape[0])
                if vec.shape[0] != expected:
                    raise ValueError(
                        f"segment {sid}: {space} vectors here are {expected}-d but this one is {vec.shape[0]}-d; "
                        "was it made by another model profile? Use a new data folder for it."
                    )

    def _upsert_space(self, space: str, ids: list[int], vectors: dict, dims: dict[str, int]) -> VectorChange | None:
        old: dict[int, bytes] = {}
        for chunk in _chunks(ids):
            old.update(self._db.execute(
                f"SELECT segment_id, vector FROM vectors WHERE space=? AND segment_id IN ({_marks(len(chunk))})",
                (space, *chunk)))
        written = {sid: per[space] for sid, per in vectors.items()
                   if space in per and old.get(sid) != per[space].tobytes()}
        removed = [sid for sid in old if space not in vectors[sid]]
        if not written and not removed:
            return None
        row = self._db.execute("SELECT revision FROM vector_spaces WHERE space=?", (space,)).fetchone()
        revision = (row[0] if row else 0) + 1
        # Each row keeps the revision that wrote it, each removal its own: what changed after a
        # revision can be read back (``vector_changes``), so an index saved then catches up.
        self._db.executemany(
            "INSERT INTO vectors (space, segment_id, vector, revision) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(space, segment_id) DO UPDATE SET vector=excluded.vector, revision=excluded.revision",
            [(space, sid, vec.tobytes(), revision) for sid, vec in written.items()],
        )
        for chunk in _chunks(removed):
            self._db.execute(f"DELETE FROM vectors WHERE space=? AND segment_id IN ({_marks(len(chunk))})", (space, *chunk))
        self._db.executemany("INSERT OR REPLACE INTO vector_removals VALUES (?, ?, ?)",
                             [(space, sid, revision) for sid in removed])
        self._db.execute(
            "INSERT INTO vector_spaces (space, dim, revision) VALUES (?, ?, 1) "
            "ON CONFLICT(space) DO UPDATE SET revision=revision+1",
            (space, dims[space]),
        )
        return VectorChange(
            space=space,
            revision=revision,
            written_ids=_ids(written),
            written_vectors=np.stack(list(written.values())) if written else np.zeros((0, dims[space]), np.float32),
            replaced_ids=_ids(sid for sid in written if sid in old),
            removed_ids=_ids(removed),
        )

    def delete_segments(self, segment_ids: Iterable[int]) -> list[VectorChange]:
        """Remove segments, their vectors and highlight scores, in one transaction."""
        ids = list(dict.fromkeys(int(i) for i in segment_ids))
        if not ids:
            return []
        with self._transaction():
            return self._delete(ids)

    def _delete(self, ids: list[int]) -> list[VectorChange]:
        dims = dict(self._db.execute("SELECT space, dim FROM vector_spaces"))
        present = {sid: {} for sid in ids}  # a record with no vectors: every space loses what it had
        changes = [c for space in VECTOR_SPACES if space in dims
                   for c in [self._upsert_space(space, ids, present, dims)] if c is not None]
        for chunk in _chunks(ids):
            self._db.execute(f"DELETE FROM segments WHERE segment_id IN ({_marks(len(chunk))})", chunk)
            self._db.execute(f"DELETE FROM highlight_scores WHERE segment_id IN ({_marks(len(chunk))})", chunk)
            self._db.execute(f"DELETE FROM thumbnails WHERE segment_id IN ({_marks(len(chunk))})", chunk)
        return changes

    def delete_source(self, source_id: str) -> list[VectorChange]:
        """Remove a source and all it holds (segments, vectors, cuts, scores, summary), in one transaction."""
        with self._transaction():
            ids = [sid for (sid,) in self._db.execute("SELECT segment_id FROM segments WHERE source_id=?", (source_id,))]
            changes = self._delete(ids)
            for table in ("cuts", "highlight_scores", "summaries", "sources"):
                self._db.execute(f"DELETE FROM {table} WHERE source_id=?", (source_id,))
        return changes

    def get_segments(self, segment_ids: Iterable[int]) -> dict[int, StoredSegment]:
        """The stored segments among ``segment_ids``, by id; unknown ids are left out."""
        ids = [int(i) for i in segment_ids]
        out = {}
        with self._lock:
            for chunk in _chunks(ids):
                rows = self._db.execute(
                    f"SELECT {self._columns} FROM segments WHERE segment_id IN ({_marks(len(chunk))})", chunk)
                out.update((row[0], _segment(row)) for row in rows)
        return out

    def get_spans(self, segment_ids: Iterable[int]) -> dict[int, tuple[str, int, int]]:
        """``(source_id, start_ns, end_ns)`` of the stored segments among ``segment_ids``: what a
        search needs of every candidate (the rows themselves only for the moments it returns)."""
        ids = [int(i) for i in segment_ids]
        out = {}
        with self._lock:
            for chunk in _chunks(ids):
                rows = self._db.execute("SELECT segment_id, source_id, start_ns, end_ns FROM segments "
                                        f"WHERE segment_id IN ({_marks(len(chunk))})", chunk)
                out.update((sid, (source_id, start, end)) for sid, source_id, start, end in rows)
        return out

    def get_thumbnail(self, segment_id: int) -> bytes | None:
        """The segment's JPEG (``FusedRecord.thumbnail_jpeg``), or None."""
        with self._lock:
            try:
                row = self._db.execute("SELECT jpeg FROM thumbnails WHERE segment_id=?", (int(segment_id),)).fetchone()
            except sqlite3.OperationalError as exc:  # a file from before thumbnails, opened read-only
                if "no such table" not in str(exc):
                    raise
                return None
        return None if row is None else bytes(row[0])

    def segments_of_source(self, source_id: str, *, start_ns: int | None = None,
                           end_ns: int | None = None) -> list[StoredSegment]:
        """A source's segments in time order; with bounds, those overlapping ``[start_ns, end_ns)``."""
        lo = -(2**63) if start_ns is None else start_ns
        hi = 2**63 - 1 if end_ns is None else end_ns
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._columns} FROM segments WHERE source_id=? AND start_ns < ? AND end_ns > ? "
                "ORDER BY start_ns", (source_id, hi, lo)).fetchall()
        return [_segment(r) for r in rows]

    def count_segments(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]

    def vector_space(self, space: str) -> VectorSpaceState | None:
        """Dimension, revision and count of one space; None until a vector was ever written to it."""
        with self._lock:
            row = self._db.execute("SELECT dim, revision FROM vector_spaces WHERE space=?", (space,)).fetchone()
            if row is None:
                return None
            (count,) = self._db.execute("SELECT COUNT(*) FROM vectors WHERE space=?", (space,)).fetchone()
        return VectorSpaceState(dim=row[0], revision=row[1], count=count)

    def vector_revision(self, space: str) -> int | None:
        """The space's revision alone: one row, no count (a server asks every second)."""
        with self._lock:
            row = self._db.execute("SELECT revision FROM vector_spaces WHERE space=?", (space,)).fetchone()
        return None if row is None else row[0]

    def get_vectors(self, space: str, segment_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int64 [n], vectors float32 [n, dim])`` for the ids that have a vector in ``space``."""
        ids = [int(i) for i in segment_ids]
        rows = []
        with self._lock:
            for chunk in _chunks(ids):
                rows += self._db.execute(
                    f"SELECT segment_id, vector FROM vectors WHERE space=? AND segment_id IN ({_marks(len(chunk))})",
                    (space, *chunk)).fetchall()
        return self._unpack(space, rows)

    def iter_vectors(self, space: str, *, batch_rows: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every vector of ``space`` in id order, ``batch_rows`` at a time; each page is read in
        its own statement, so nothing stays locked between pages."""
        after = -1
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT segment_id, vector FROM vectors WHERE space=? AND segment_id > ? ORDER BY segment_id LIMIT ?",
                    (space, after, batch_rows)).fetchall()
            if not rows:
                return
            yield self._unpack(space, rows)
            after = rows[-1][0]

    def vector_changes(self, space: str, since_revision: int) -> VectorChange | None:
        """What changed in ``space`` after ``since_revision``, as one change to apply (its
        ``revision`` the space's now; ``replaced_ids`` every written id: which of them an index
        already holds is the index's to know). None when this file cannot say (written before
        revisions were kept per row)."""
        with self._lock:
            self._db.execute("BEGIN")  # one read transaction: the revision and the rows that make it
            try:
                row = self._db.execute("SELECT dim, revision FROM vector_spaces WHERE space=?", (space,)).fetchone()
                written = self._db.execute("SELECT segment_id, vector FROM vectors WHERE space=? AND revision > ? "
                                           "ORDER BY segment_id", (space, since_revision)).fetchall()
                removed = [sid for (sid,) in self._db.execute(
                    "SELECT segment_id FROM vector_removals WHERE space=? AND revision > ?", (space, since_revision))]
            except sqlite3.OperationalError:  # a read-only file from before the columns existed
                return None
            finally:
                self._db.execute("COMMIT")
        if row is None:
            return None
        ids, vectors = self._unpack(space, written)
        return VectorChange(space=space, revision=row[1], written_ids=ids, written_vectors=vectors, replaced_ids=ids,
                            removed_ids=_ids(removed))

    def _unpack(self, space: str, rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        if not rows:
            with self._lock:
                row = self._db.execute("SELECT dim FROM vector_spaces WHERE space=?", (space,)).fetchone()
            return np.zeros(0, np.int64), np.zeros((0, row[0] if row else 0), np.float32)
        ids = _ids(r[0] for r in rows)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
        return ids, matrix.astype(np.float32, copy=False)

    # -- what was found in a source: shot boundaries, highlight scores, its summary ---------------

    def put_analysis(self, source_id: str, *, cuts: Sequence[tuple[int, float]], scores: Sequence[HighlightScore],
                     summary: dict | None) -> None:
        """Replace a source's cuts, highlight scores and summary, in one transaction."""
        with self._transaction():
            self._db.execute("DELETE FROM cuts WHERE source_id=?", (source_id,))
            self._db.executemany("INSERT INTO cuts VALUES (?, ?, ?)", [(source_id, int(t), float(s)) for t, s in cuts])
            self._db.execute("DELETE FROM highlight_scores WHERE source_id=?", (source_id,))
            self._db.executemany(
                "INSERT OR REPLACE INTO highlight_scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(h.segment_id, h.source_id, h.span.start_ns, h.span.end_ns, h.score, json.dumps(list(h.labels)), h.reason)
                 for h in scores])
            self._db.execute("DELETE FROM summaries WHERE source_id=?", (source_id,))
            if summary is not None:
                self._db.execute("INSERT INTO summaries VALUES (?, ?)", (source_id, json.dumps(summary)))

    def get_cuts(self, source_id: str) -> list[tuple[int, float]]:
        with self._lock:
            return [(t, s) for t, s in self._db.execute(
                "SELECT t_ns, score FROM cuts WHERE source_id=? ORDER BY t_ns", (source_id,))]

    def highlight_scores(self, source_id: str | None = None) -> list[HighlightScore]:
        """Every segment's highlight score (of one source, or all), by source and time."""
        where, args = ("WHERE source_id=?", (source_id,)) if source_id else ("", ())
        with self._lock:
            rows = self._db.execute(
                "SELECT segment_id, source_id, start_ns, end_ns, score, labels, reason FROM highlight_scores "
                f"{where} ORDER BY source_id, start_ns", args).fetchall()
        return [HighlightScore(sid, src, Span(a, b), score, tuple(json.loads(labels)), reason)
                for sid, src, a, b, score, labels, reason in rows]

    def get_summary(self, source_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT summary FROM summaries WHERE source_id=?", (source_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- checkpoints: small JSON documents of the live pipeline (stream status, resume points) ---

    def put_checkpoint(self, key: str, value: dict) -> None:
        """Replace the document under ``key`` (committed when this returns)."""
        data = json.dumps(value, allow_nan=False)
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (key, data))

    def get_checkpoint(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM checkpoints WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` (take the write lock up front, so two writers queue instead of one
    failing at commit) ... ``COMMIT``, or ``ROLLBACK`` on any exception."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db, self._lock = db, lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
