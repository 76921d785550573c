"""``MetadataStore`` in Redis, for deployments where several processes share one store.

Same contract as ``SqliteStore`` (same changes reported, same errors, same orders); what differs
is how it is kept. Keys, all under ``<prefix>:`` (default ``vidscope``)::

    meta                    hash    store_id, schema_version
    sources                 hash    source_id -> JSON
    segments                hash    id -> JSON (a FusedRecord without vectors)
    segments_by_time:<src>  zset    lex members start|id|end, one source's segments in time order
    space:<space>           hash    dim, revision
    vectors:<space>         hash    id -> little-endian float32 bytes
    vector_ids:<space>      zset    lex members id, for paging in id order
    vector_revs:<space>     zset    id scored by the revision that wrote its vector
    vector_gone:<space>     zset    id scored by the revision that removed its vector
    cuts:<src>              string  JSON [[t_ns, score], ...] in time order
    summary:<src>           string  JSON
    highlights              hash    id -> JSON
    highlights_of:<src>     set     ids
    batch:<uuid>            string  marks an applied upsert for 10 minutes (see below)

An ``id`` in a key or member is the segment id plus 2**63 in 16 hex digits, and times are
encoded the same way: segment ids are 63-bit hashes and times nanoseconds, neither of which a
sorted-set score (a double, exact to 2**53) can hold, so order comes from fixed-width lex members
(``ZRANGEBYLEX``) instead.

Atomicity: every write reads what it needs under ``WATCH`` and applies its whole plan in one
``MULTI``/``EXEC``, so a client that dies mid-batch leaves all or nothing, and a concurrent writer
makes ``EXEC`` fail and the batch re-plan against the new state (revisions never repeat). An
upsert also sets ``batch:<uuid>`` inside its transaction: when the connection drops after
``EXEC`` was sent, the store cannot tell whether it ran, and re-planning would see the batch's
own vectors and report no change, so it first asks whether the marker exists and, if it does,
returns the changes it had planned.

Reconnection (``indexers.redis_connection``): a dropped connection or a server that is briefly
away (a restart) is retried for about 5 s, then ``RedisUnavailableError`` names the URL. Redis keeps
this store only as durably as it is configured to: with ``--save ''`` and no AOF a restart empties it;
writes then refuse (the store id is gone) rather than rebuild a partial store silently.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Iterable, Iterator, Sequence

import numpy as np
import redis

from indexers.redis_connection import RedisConnection, RedisUnavailableError
from indexers.redis_rows import (highlight_of, hex64, int64, segment_json, segment_of, source_json, source_of, time_member,
                                 unpack)
from indexers.store import (SourceInfo, StoredSegment, VECTOR_SPACES, VectorChange, VectorSpaceState,
                            pick_source, record_vectors)
from operators.analysis.highlights import HighlightScore
from operators.records import FusedRecord

SCHEMA_VERSION = 1


def _check_dims(vectors: dict[int, dict[str, np.ndarray]], dims: dict[str, int]) -> None:
    # Same rule and words as SqliteStore._check_dims.
    for sid, per_space in vectors.items():
        for space, vec in per_space.items():
            expected = dims.setdefault(space, vec.shape[0])
            if vec.shape[0] != expected:
                raise ValueError(
                    f"segment {sid}: {space} vectors here are {expected}-d but this one is {vec.shape[0]}-d; "
                    "was it made by another model profile? Use a new data folder for it."
                )


class RedisStore:
    """``MetadataStore`` in Redis under one key prefix (several stores can share a server).

    Thread-safe: redis-py's pool gives each call its own connection. Sources are few, so
    ``find_source`` and ``list_sources`` read them all; segments and vectors are read by key.
    """

    def __init__(self, url: str, *, prefix: str = "vidscope") -> None:
        if not prefix:
            raise ValueError("a Redis store needs a non-empty key prefix")
        self.url, self.prefix = url, prefix
        self._conn = RedisConnection(url, prefix)
        self._redis, self._shown = self._conn.client, self._conn.shown
        try:
            with self._redis.pipeline() as pipe:  # MULTI: both fields are made together or not at all
                pipe.hsetnx(self._key("meta"), "schema_version", SCHEMA_VERSION)
                pipe.hsetnx(self._key("meta"), "store_id", uuid.uuid4().hex)
                pipe.hgetall(self._key("meta"))
                meta = pipe.execute()[-1]
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._redis.close()
            raise RedisUnavailableError(f"cannot reach Redis at {self._shown}: {exc}. Is redis-server running "
                                        "there, and is the URL right?") from None
        except BaseException:
            self._redis.close()
            raise
        if int(meta[b"schema_version"]) != SCHEMA_VERSION:
            self._redis.close()
            raise ValueError(f"Redis at {self._shown} (prefix {prefix!r}) has metadata schema "
                             f"{meta[b'schema_version'].decode()}, this vidscope reads {SCHEMA_VERSION}")
        self._store_id = meta[b"store_id"].decode()

    def __repr__(self) -> str:
        return f"RedisStore({self._shown!r}, prefix={self.prefix!r})"

    @property
    def store_id(self) -> str:
        """A random id made when this prefix was first used: index files from another store never pass for ours."""
        return self._store_id

    def ping(self) -> bool:
        """Whether Redis answers now (one try, no retries: for a caller waiting out an outage)."""
        return self._conn.ping()

    def _key(self, *parts: str) -> str:
        return self._conn.key(*parts)

    def _check_store(self, store_id: bytes | None) -> None:
        if store_id is None or store_id.decode() != self._store_id:
            found = "no store id" if store_id is None else f"store id {store_id.decode()}"
            raise RuntimeError(
                f"Redis at {self._shown} (prefix {self.prefix!r}) lost this store's data: it now holds {found}, not "
                f"{self._store_id}. Was the server restarted without persistence (--save '' and no AOF)? Re-ingest "
                "into a new RedisStore; the vector indexes rebuild from it.")

    # -- sources ------------------------------------------------------------------------------------

    def upsert_source(self, source: SourceInfo) -> None:
        def plan():
            self._check_store(self._redis.hget(self._key("meta"), "store_id"))
            return None, lambda pipe: pipe.hset(self._key("sources"), source.source_id, source_json(source))

        self._conn.write("upsert a source", [self._key("sources")], plan)

    def get_source(self, source_id: str) -> SourceInfo | None:
        data = self._conn.read("read a source", lambda: self._redis.hget(self._key("sources"), source_id))
        return None if data is None else source_of(data)

    def find_source(self, key: str) -> SourceInfo | None:
        """The source whose id, path/URL or name is ``key`` (see ``pick_source``)."""
        absolute = os.path.abspath(key)
        matches = [s for s in self.list_sources() if s.source_id == key or s.uri in (key, absolute) or s.name == key]
        return pick_source(key, matches)

    def list_sources(self) -> list[SourceInfo]:
        """Every source, oldest ingest first."""
        rows = self._conn.read("list sources", lambda: self._redis.hvals(self._key("sources")))
        return sorted((source_of(r) for r in rows), key=lambda s: (s.ingested_at_ns, s.source_id))

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
        for r in by_id.values():  # refuse what the keys cannot encode before anything is read
            time_member(r.span.start_ns, r.segment_id, r.span.end_ns)
        watch = [self._key("segments"), *(self._key(k, s) for s in VECTOR_SPACES for k in ("space", "vectors"))]
        mark = self._key("batch", uuid.uuid4().hex)
        return self._conn.write("upsert segments", watch, lambda: self._plan_upsert(by_id, vectors), mark=mark)

    def _plan_upsert(self, by_id: dict[int, FusedRecord], vectors: dict[int, dict[str, np.ndarray]]):
        ids = list(by_id)
        fields = [hex64(sid) for sid in ids]
        # The keys are WATCHed already, so these reads may go on another connection, in one round trip.
        reads = self._redis.pipeline(transaction=False)
        reads.hget(self._key("meta"), "store_id")
        reads.hmget(self._key("segments"), fields)
        for space in VECTOR_SPACES:
            reads.hmget(self._key("space", space), ["dim", "revision"])
            reads.hmget(self._key("vectors", space), fields)
        store_id, old_segments, *per_space = reads.execute()
        self._check_store(store_id)
        states = {space: per_space[2 * i] for i, space in enumerate(VECTOR_SPACES)}
        olds = {space: per_space[2 * i + 1] for i, space in enumerate(VECTOR_SPACES)}
        dims = {space: int(dim) for space, (dim, _) in states.items() if dim is not None}
        _check_dims(vectors, dims)

        unindex: list[tuple[str, str]] = []  # (time-index key, member) of the stored versions that move
        for sid, data in zip(ids, old_segments):
            if data is not None:
                source_id, start_ns, end_ns = json.loads(data)[:3]
                r = by_id[sid]
                if (source_id, start_ns, end_ns) != (r.source_id, r.span.start_ns, r.span.end_ns):
                    unindex.append((self._key("segments_by_time", source_id), time_member(start_ns, sid, end_ns)))

        changes, space_writes = [], []
        for space in VECTOR_SPACES:
            old = {sid: blob for sid, blob in zip(ids, olds[space]) if blob is not None}
            written = {sid: per[space] for sid, per in vectors.items()
                       if space in per and old.get(sid) != per[space].tobytes()}
            removed = [sid for sid in old if space not in vectors[sid]]
            if not written and not removed:
                continue
            _, revision = states[space]
            revision = 1 if revision is None else int(revision) + 1
            changes.append(VectorChange(
                space=space,
                revision=revision,
                written_ids=np.fromiter(written, dtype=np.int64, count=len(written)),
                written_vectors=(np.stack(list(written.values())) if written
                                 else np.zeros((0, dims[space]), np.float32)),
                replaced_ids=np.fromiter((sid for sid in written if sid in old), dtype=np.int64),
                removed_ids=np.asarray(removed, dtype=np.int64),
            ))
            space_writes.append((space, dims[space], revision, written, [sid for sid in written if sid not in old],
                                 removed))

        def queue(pipe) -> None:
            pipe.hset(self._key("segments"), mapping={hex64(sid): segment_json(r) for sid, r in by_id.items()})
            pictures = {hex64(sid): r.thumbnail_jpeg for sid, r in by_id.items() if r.thumbnail_jpeg}
            if pictures:
                pipe.hset(self._key("thumbnails"), mapping=pictures)
            if pictureless := [hex64(sid) for sid, r in by_id.items() if not r.thumbnail_jpeg]:
                pipe.hdel(self._key("thumbnails"), *pictureless)
            for key, member in unindex:
                pipe.zrem(key, member)
            by_source: dict[str, dict[str, int]] = {}
            for sid, r in by_id.items():
                by_source.setdefault(r.source_id, {})[time_member(r.span.start_ns, sid, r.span.end_ns)] = 0
            for source_id, members in by_source.items():
                pipe.zadd(self._key("segments_by_time", source_id), members)
            for space, dim, revision, written, added, removed in space_writes:
                if written:
                    pipe.hset(self._key("vectors", space),
                              mapping={hex64(sid): v.tobytes() for sid, v in written.items()})
                    pipe.zadd(self._key("vector_revs", space), {hex64(sid): revision for sid in written})
                if added:
                    pipe.zadd(self._key("vector_ids", space), {hex64(sid): 0 for sid in added})
                if removed:
                    self._queue_removal(pipe, space, revision, removed)
                pipe.hset(self._key("space", space), mapping={"dim": dim, "revision": revision})

        return changes, queue

    def delete_segments(self, segment_ids: Iterable[int]) -> list[VectorChange]:
        """Remove segments, their vectors and highlight scores, in one transaction."""
        ids = list(dict.fromkeys(int(i) for i in segment_ids))
        if not ids:
            return []
        return self._conn.write("delete segments", self._segment_keys(), lambda: self._plan_delete(ids, None))

    def delete_source(self, source_id: str) -> list[VectorChange]:
        """Remove a source and all it holds (segments, vectors, cuts, scores, summary), in one transaction."""
        time_key = self._key("segments_by_time", source_id)

        def plan():
            return self._plan_delete([int64(m[16:32]) for m in self._redis.zrange(time_key, 0, -1)], source_id)

        return self._conn.write("delete a source", [*self._segment_keys(), time_key, self._key("sources"),
                                               self._key("highlights_of", source_id)], plan)

    def _segment_keys(self) -> list[str]:
        return [self._key("segments"), self._key("highlights"),
                *(self._key(k, s) for s in VECTOR_SPACES for k in ("space", "vectors"))]

    def _plan_delete(self, ids: list[int], source_id: str | None):
        fields = [hex64(sid) for sid in ids]
        reads = self._redis.pipeline(transaction=False)
        reads.hget(self._key("meta"), "store_id")
        reads.hmget(self._key("segments"), fields) if fields else reads.echo(b"")
        for space in VECTOR_SPACES:
            reads.hmget(self._key("space", space), ["dim", "revision"])
            reads.hmget(self._key("vectors", space), fields) if fields else reads.echo(b"")
        if source_id is not None:
            reads.smembers(self._key("highlights_of", source_id))
        store_id, rows, *rest = reads.execute()
        self._check_store(store_id)
        per_space = rest[:2 * len(VECTOR_SPACES)]
        owned = rest[-1] if source_id is not None else set()
        rows = rows if fields else []
        members = []
        for sid, data in zip(ids, rows):
            if data is not None:
                src, start_ns, end_ns = json.loads(data)[:3]
                members.append((self._key("segments_by_time", src), time_member(start_ns, sid, end_ns), src))
        changes, removals = [], []
        for i, space in enumerate(VECTOR_SPACES):
            (dim, revision), blobs = per_space[2 * i], per_space[2 * i + 1]
            removed = [sid for sid, blob in zip(ids, blobs if fields else []) if blob is not None]
            if not removed:
                continue
            revision = int(revision) + 1
            changes.append(VectorChange(space=space, revision=revision, written_ids=np.zeros(0, np.int64),
                                        written_vectors=np.zeros((0, int(dim)), np.float32),
                                        replaced_ids=np.zeros(0, np.int64), removed_ids=np.asarray(removed, np.int64)))
            removals.append((space, int(dim), revision, removed))

        def queue(pipe) -> None:
            if fields:
                pipe.hdel(self._key("segments"), *fields)
                pipe.hdel(self._key("highlights"), *fields)
                pipe.hdel(self._key("thumbnails"), *fields)
            for key, member, src in members:
                pipe.zrem(key, member)
                pipe.srem(self._key("highlights_of", src), member[16:32])  # highlights are keyed by segment id
            for space, dim, revision, removed in removals:
                self._queue_removal(pipe, space, revision, removed)
                pipe.hset(self._key("space", space), mapping={"dim": dim, "revision": revision})
            if source_id is not None:
                if owned:
                    pipe.hdel(self._key("highlights"), *owned)
                for key in ("highlights_of", "cuts", "summary", "segments_by_time"):
                    pipe.delete(self._key(key, source_id))
                pipe.hdel(self._key("sources"), source_id)

        return changes, queue

    def get_thumbnail(self, segment_id: int) -> bytes | None:
        """The segment's JPEG (``FusedRecord.thumbnail_jpeg``), or None."""
        return self._conn.read("read a thumbnail", lambda: self._redis.hget(self._key("thumbnails"), hex64(segment_id)))

    def get_segments(self, segment_ids: Iterable[int]) -> dict[int, StoredSegment]:
        """The stored segments among ``segment_ids``, by id; unknown ids are left out."""
        ids = list(dict.fromkeys(int(i) for i in segment_ids))
        if not ids:
            return {}
        rows = self._conn.read("read segments", lambda: self._redis.hmget(self._key("segments"), [hex64(i) for i in ids]))
        return {sid: segment_of(sid, data) for sid, data in zip(ids, rows) if data is not None}

    def get_spans(self, segment_ids: Iterable[int]) -> dict[int, tuple[str, int, int]]:
        """``(source_id, start_ns, end_ns)`` of the stored segments among ``segment_ids``."""
        return {sid: (s.source_id, s.start_ns, s.end_ns) for sid, s in self.get_segments(segment_ids).items()}

    def segments_of_source(self, source_id: str, *, start_ns: int | None = None,
                           end_ns: int | None = None) -> list[StoredSegment]:
        """A source's segments in time order; with bounds, those overlapping ``[start_ns, end_ns)``."""
        lo = -(2**63) if start_ns is None else start_ns
        hi = 2**63 - 1 if end_ns is None else end_ns
        # Members start|id|end sort by start, then id: "(" + hex(hi) stops before any start >= hi,
        # and the end read off the member drops what ends by lo without fetching it.
        below = "(" + hex64(hi)

        def read() -> list[tuple[int, bytes | None]]:
            members = self._redis.zrangebylex(self._key("segments_by_time", source_id), "-", below)
            ids = [int64(m[16:32]) for m in members if int64(m[32:48]) > lo]
            rows = self._redis.hmget(self._key("segments"), [hex64(i) for i in ids]) if ids else []
            return list(zip(ids, rows))

        found = [segment_of(sid, data) for sid, data in self._conn.read("read a source's segments", read) if data is not None]
        # A segment rewritten between the two reads is judged by what it is now.
        found = [s for s in found if s.source_id == source_id and s.start_ns < hi and s.end_ns > lo]
        return sorted(found, key=lambda s: (s.start_ns, s.segment_id))

    def count_segments(self) -> int:
        return self._conn.read("count segments", lambda: self._redis.hlen(self._key("segments")))

    def vector_space(self, space: str) -> VectorSpaceState | None:
        """Dimension, revision and count of one space; None until a vector was ever written to it."""
        def read():
            with self._redis.pipeline() as pipe:  # MULTI: dim, revision and count of one moment
                pipe.hmget(self._key("space", space), ["dim", "revision"])
                pipe.hlen(self._key("vectors", space))
                return pipe.execute()

        (dim, revision), count = self._conn.read("read a vector space", read)
        return None if dim is None else VectorSpaceState(dim=int(dim), revision=int(revision), count=count)

    def vector_revision(self, space: str) -> int | None:
        revision = self._conn.read("read a vector space", lambda: self._redis.hget(self._key("space", space), "revision"))
        return None if revision is None else int(revision)

    def _dim(self, space: str) -> int:
        dim = self._conn.read("read a vector space", lambda: self._redis.hget(self._key("space", space), "dim"))
        return 0 if dim is None else int(dim)

    def _queue_removal(self, pipe, space: str, revision: int, removed: list[int]) -> None:
        members = list(map(hex64, removed))
        pipe.hdel(self._key("vectors", space), *members)
        pipe.zrem(self._key("vector_ids", space), *members)
        pipe.zrem(self._key("vector_revs", space), *members)
        pipe.zadd(self._key("vector_gone", space), {m: revision for m in members})

    def vector_changes(self, space: str, since_revision: int) -> VectorChange | None:
        """What changed in ``space`` after ``since_revision`` (see ``SqliteStore.vector_changes``);
        None when this store cannot say (vectors written before revisions were kept per id)."""
        def read():
            with self._redis.pipeline() as pipe:  # MULTI: the revision and the ids that make it
                pipe.hmget(self._key("space", space), ["dim", "revision"])
                pipe.hlen(self._key("vectors", space))
                pipe.zcard(self._key("vector_revs", space))
                pipe.zrangebyscore(self._key("vector_revs", space), f"({since_revision}", "+inf")
                pipe.zrangebyscore(self._key("vector_gone", space), f"({since_revision}", "+inf")
                return pipe.execute()

        (dim, revision), count, tracked, written, removed = self._conn.read("read what changed in a vector space", read)
        if dim is None or tracked != count:
            return None
        # Read after the revision: a vector rewritten since comes newer (the next catch-up sees
        # its revision again and rewrites it once more); one removed since is left out here.
        blobs = (self._conn.read("read vectors", lambda: self._redis.hmget(self._key("vectors", space), written))
                 if written else [])
        found = [(int64(m), blob) for m, blob in zip(written, blobs) if blob is not None]
        ids, vectors = unpack([sid for sid, _ in found], [blob for _, blob in found], int(dim))
        return VectorChange(space=space, revision=int(revision), written_ids=ids, written_vectors=vectors,
                            replaced_ids=ids, removed_ids=np.asarray([int64(m) for m in removed], np.int64))

    def get_vectors(self, space: str, segment_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int64 [n], vectors float32 [n, dim])`` for the ids that have a vector in ``space``, by id."""
        ids = sorted({int(i) for i in segment_ids})
        blobs = (self._conn.read("read vectors", lambda: self._redis.hmget(self._key("vectors", space),
                                                                       [hex64(i) for i in ids])) if ids else [])
        found = [(sid, blob) for sid, blob in zip(ids, blobs) if blob is not None]
        if not found:
            return unpack([], [], self._dim(space))
        return unpack([sid for sid, _ in found], [blob for _, blob in found], 0)

    def iter_vectors(self, space: str, *, batch_rows: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every vector of ``space`` in id order, ``batch_rows`` at a time. Each page is one id
        range then one fetch, so nothing is held between pages; a vector removed between the two
        is left out."""
        after = "-"
        while True:
            def read(after=after):
                members = self._redis.zrangebylex(self._key("vector_ids", space), after, "+", start=0, num=batch_rows)
                return members, (self._redis.hmget(self._key("vectors", space), members) if members else [])

            members, blobs = self._conn.read("page through vectors", read)
            if not members:
                return
            found = [(int64(m), blob) for m, blob in zip(members, blobs) if blob is not None]
            if found:
                yield unpack([sid for sid, _ in found], [blob for _, blob in found], 0)
            after = b"(" + members[-1]

    # -- what was found in a source: shot boundaries, highlight scores, its summary ---------------

    def put_analysis(self, source_id: str, *, cuts: Sequence[tuple[int, float]], scores: Sequence[HighlightScore],
                     summary: dict | None) -> None:
        """Replace a source's cuts, highlight scores and summary, in one transaction."""
        cut_list = sorted((int(t), float(s)) for t, s in cuts)
        times = [t for t, _ in cut_list]
        if len(set(times)) != len(times):  # SQLite's (source_id, t_ns) key refuses these too
            raise ValueError(f"source {source_id!r}: two cuts at the same time in {times}")
        by_id = {h.segment_id: h for h in scores}  # the last score of a segment wins, as INSERT OR REPLACE
        fields = {sid: hex64(sid) for sid in by_id}
        owned_key = self._key("highlights_of", source_id)

        def plan():
            reads = self._redis.pipeline(transaction=False)
            reads.hget(self._key("meta"), "store_id")
            reads.smembers(owned_key)
            if fields:
                reads.hmget(self._key("highlights"), list(fields.values()))
            store_id, owned, *current = reads.execute()
            current = current[0] if current else []
            self._check_store(store_id)
            # Highlights are keyed by segment alone (as in SQLite): one stored under another
            # source leaves that source's set when this put takes it over.
            moved = [(json.loads(data)[0], fields[sid]) for sid, data in zip(fields, current)
                     if data is not None and json.loads(data)[0] != source_id]

            def queue(pipe) -> None:
                pipe.set(self._key("cuts", source_id), json.dumps(cut_list))
                if owned:
                    pipe.hdel(self._key("highlights"), *owned)
                pipe.delete(owned_key)
                for old_source, field in moved:
                    pipe.srem(self._key("highlights_of", old_source), field)
                if by_id:
                    pipe.hset(self._key("highlights"), mapping={fields[sid]: json.dumps(
                        [h.source_id, int(h.span.start_ns), int(h.span.end_ns), float(h.score), list(h.labels),
                         h.reason]) for sid, h in by_id.items()})
                for sid, h in by_id.items():
                    pipe.sadd(self._key("highlights_of", h.source_id), fields[sid])
                if summary is None:
                    pipe.delete(self._key("summary", source_id))
                else:
                    pipe.set(self._key("summary", source_id), json.dumps(summary))

            return None, queue

        self._conn.write("store an analysis", [self._key("highlights"), owned_key], plan)

    def get_cuts(self, source_id: str) -> list[tuple[int, float]]:
        data = self._conn.read("read cuts", lambda: self._redis.get(self._key("cuts", source_id)))
        return [] if data is None else [(t, s) for t, s in json.loads(data)]

    def highlight_scores(self, source_id: str | None = None) -> list[HighlightScore]:
        """Every segment's highlight score (of one source, or all), by source and time."""
        def read() -> list[tuple[bytes, bytes | None]]:
            if not source_id:
                return list(self._redis.hgetall(self._key("highlights")).items())
            fields = list(self._redis.smembers(self._key("highlights_of", source_id)))
            return list(zip(fields, self._redis.hmget(self._key("highlights"), fields))) if fields else []

        found = [highlight_of(int64(field), data) for field, data in self._conn.read("read highlight scores", read)
                 if data is not None]
        if source_id:
            found = [h for h in found if h.source_id == source_id]
        return sorted(found, key=lambda h: (h.source_id, h.span.start_ns, h.segment_id))

    def get_summary(self, source_id: str) -> dict | None:
        data = self._conn.read("read a summary", lambda: self._redis.get(self._key("summary", source_id)))
        return None if data is None else json.loads(data)

    # -- checkpoints and events ---------------------------------------------------------------------

    def put_checkpoint(self, key: str, value: dict) -> None:
        """Replace the document under ``key`` (a plain SET: repeating it is harmless)."""
        data = json.dumps(value, allow_nan=False)

        def plan():
            self._check_store(self._redis.hget(self._key("meta"), "store_id"))
            return None, lambda pipe: pipe.hset(self._key("checkpoints"), key, data)

        self._conn.write("write a checkpoint", [self._key("checkpoints")], plan)

    def get_checkpoint(self, key: str) -> dict | None:
        data = self._conn.read("read a checkpoint", lambda: self._redis.hget(self._key("checkpoints"), key))
        return None if data is None else json.loads(data)

    def publish(self, channel: str, message: str) -> int:
        """Redis pub/sub on ``PREFIX:CHANNEL``; returns how many subscribers got it. Not retried
        beyond one reconnect pause: pub/sub is fire-and-forget (the events are also kept elsewhere)."""
        return self._conn.read("publish an event", lambda: int(self._redis.publish(self._key(channel), message)))

    def channel_key(self, channel: str) -> str:
        """The pub/sub channel ``publish(channel, ...)`` sends on."""
        return self._key(channel)

    def pubsub(self):
        """A redis-py ``PubSub`` on this server (its own connection), for ``channel_key`` channels."""
        return self._redis.pubsub()

    def close(self) -> None:
        self._redis.close()
