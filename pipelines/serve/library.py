"""What ``vidscope serve`` holds open for its whole life: the index (read-only), the query
encoder, and a cache of cut clips; every answer as the JSON the API returns.

Each result carries ``clip_url`` and ``thumbnail_url``, relative URLs of this server. A clip is
named by the source's id and a span; the file it is cut from is the one the index recorded for
that source, never a path from the request.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import numpy as np

from indexers.clips import cut_source
from indexers.highlights import find_highlights
from indexers.search import Moment, Searcher
from indexers.shards import Shard, search_shards
from indexers.store import SourceInfo
from operators.analysis.summary import Summary
from operators.records import NS_PER_SECOND, ns_to_seconds, seconds_to_ns
from pipelines.ingest.analysis import DEFAULT_MIN_SCORE
from pipelines.query import answer, open_searcher

API = "/api/v1"
REFRESH_EVERY_S = 1.0
"""A long-lived reader catches up with what a running ingest committed at most this often."""
BROWSER_CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "ogg"}
BROWSER_CODECS = {"h264", "vp8", "vp9", "av1", "aac", "mp3", "opus", "vorbis", "flac"}
"""Files whose container and codecs every current browser plays are served whole (``media_url``,
seekable by range requests); others are watched as clips, cut and encoded on request."""
CLIP_CACHE_FILES = 64
"""Cut clips kept (a browser asks for one clip in several range requests); the oldest go first."""


class NotFound(LookupError):
    """An id the index does not hold (the API answers 404)."""


def clip_url(source_id: str, start_ns: int, end_ns: int) -> str:
    return f"{API}/sources/{source_id}/clip.mp4?start={ns_to_seconds(start_ns):g}&end={ns_to_seconds(end_ns):g}"


def media_url(source_id: str) -> str:
    return f"{API}/sources/{source_id}/media"


def thumbnail_url(segment_id: int) -> str:
    return f"{API}/segments/{segment_id}/thumbnail.jpg"


class Library:
    """The index and encoder, opened once. Thread-safe: FastAPI runs handlers on a pool."""

    def __init__(self, data_dir: Path, *, shard: Shard | None = None,
                 ask_shards: Callable[..., list] | None = None,
                 shards_ready: Callable[[], tuple[bool, str]] | None = None) -> None:
        """``shard``: hold only that shard's vectors (a shard replica, or ``Shard(0, 0)``: none,
        the API in front of shards). ``ask_shards(method, *args)``: answer unfiltered searches by
        asking every shard (``indexers.shards.search_shards``, ``pipelines.serve.on_ray``),
        ready when ``shards_ready`` says so."""
        self.data_dir = Path(data_dir)
        self.shard = shard
        self._ask_shards = ask_shards
        self._shards_ready = shards_ready
        self._stack = ExitStack()
        self.searcher: Searcher = self._stack.enter_context(open_searcher(self.data_dir, shard=shard))
        self.index = self.searcher.index
        self._refreshed = 0.0
        self._lock = threading.Lock()
        self._clips = Path(tempfile.mkdtemp(prefix="vidscope-clips-"))  # readers never write into the data folder
        self._cutting: dict[str, threading.Lock] = {}
        self._playable: dict[str, bool] = {}

    def close(self) -> None:
        self._stack.close()
        shutil.rmtree(self._clips, ignore_errors=True)

    def fresh(self) -> None:
        """See what an ingest beside this server committed (cheap; at most once a second)."""
        now = time.monotonic()
        with self._lock:
            if now - self._refreshed < REFRESH_EVERY_S:
                return
            self._refreshed = now
        self.index.vectors.refresh()

    # -- sources ---------------------------------------------------------------------------------

    def source(self, source_id: str) -> SourceInfo:
        found = self.index.store.get_source(source_id)
        if found is None:
            raise NotFound(f"no source {source_id!r} in this index")
        return found

    def find(self, key: str) -> dict:
        """The source whose id, path or name is ``key`` (``MetadataStore.find_source``)."""
        found = self.index.store.find_source(key)
        if found is None:
            raise NotFound(f"no source {key!r} in this index")
        return self._source_json(found)

    def sources(self) -> list[dict]:
        return [self._source_json(s) for s in self.index.store.list_sources()]

    def _source_json(self, s: SourceInfo) -> dict:
        return {**source_json(s), "media_url": media_url(s.source_id) if self._plays_whole(s.source_id, s.uri) else None}

    def _plays_whole(self, source_id: str, uri: str | None) -> bool:
        """A local file a browser plays as it is (probed once per source)."""
        if source_id not in self._playable:
            self._playable[source_id] = uri is not None and _browser_plays(uri)
        return self._playable[source_id]

    def media(self, source_id: str) -> Path:
        """The source's own file, when a browser plays it as it is."""
        source = self.source(source_id)
        if not self._plays_whole(source.source_id, source.uri):
            raise NotFound(f"{source.name} is not a local file a browser plays as it is: watch it as clips")
        return Path(source.uri)

    def source_detail(self, source_id: str) -> dict:
        """The source with what its page shows: shots, and tracks of speech, sounds and highlights."""
        source = self.source(source_id)
        store = self.index.store
        segments = store.segments_of_source(source_id)
        cuts = [ns_to_seconds(t) for t, _ in store.get_cuts(source_id)]
        end_ns = source.duration_ns or (segments[-1].end_ns if segments else 0)
        shot_starts = [0.0, *cuts]
        shots = [{"start": a, "end": b} for a, b in zip(shot_starts, [*cuts, ns_to_seconds(end_ns)]) if b > a]
        speech = [{"start": ns_to_seconds(s.start_ns), "end": ns_to_seconds(s.end_ns), "text": s.transcript}
                  for s in segments if s.transcript]
        sounds: list[dict] = []  # the loudest named sound of each window, runs of one sound joined
        for s in segments:
            label = s.events[0][0] if s.events else None
            if label in (None, "Silence"):
                continue
            if sounds and sounds[-1]["label"] == label and sounds[-1]["end"] >= ns_to_seconds(s.start_ns):
                sounds[-1]["end"] = ns_to_seconds(s.end_ns)
            else:
                sounds.append({"start": ns_to_seconds(s.start_ns), "end": ns_to_seconds(s.end_ns), "label": label})
        highlights = [self._highlight_json(h) for h in find_highlights(self.index, source_id=source_id,
                                                                        min_score=DEFAULT_MIN_SCORE)]
        highlights.sort(key=lambda h: h["start"])
        return {**self._source_json(source), "segments": len(segments), "shots": shots,
                "tracks": {"speech": speech, "sounds": sounds, "highlights": highlights},
                "thumbnails": [{"start": ns_to_seconds(s.start_ns), "url": thumbnail_url(s.segment_id)}
                               for s in segments[:: max(1, len(segments) // 40)]]}

    def summary(self, source_id: str) -> dict:
        source = self.source(source_id)
        stored = self.index.store.get_summary(source_id)
        if stored is None:
            raise NotFound(f"{source.name} has no summary (still ingesting, or its summary failed)")
        summary = Summary.from_json(stored)
        return {"source": source.name, "source_id": source_id, **summary.to_json(), "rendered": summary.render(source.name)}

    # -- queries ---------------------------------------------------------------------------------

    def search(self, text: str, *, top_k: int, source_id: str | None = None, start: float | None = None,
               end: float | None = None) -> list[dict]:
        self.fresh()
        if source_id is not None or start is not None or end is not None:
            ids = self._segment_ids(source_id, start, end)
            moments = self.searcher.search_among(text, ids, top_k) if ids else []
        elif self._ask_shards is not None:
            return search_shards(self.searcher, self._ask_shards, text, top_k)
        else:
            moments = self.searcher.search(text, top_k=top_k)
        return [self._moment_json(m) for m in moments]

    # -- as one shard of several (indexers.shards) ----------------------------------------------

    def candidates(self, queries: dict[str, np.ndarray], n: int) -> dict[str, list]:
        self.fresh()
        return self.searcher.candidates(queries, n)

    def moments_of(self, queries: dict[str, np.ndarray], candidates: list[int], words: dict[int, float],
                   top_k: int) -> list[dict]:
        holds = self.shard.holds if self.shard is not None else (lambda _: True)
        # The exact score rides along for the merge: the JSON's is rounded, and ties would reorder.
        return [{**self._moment_json(m), "exact_score": m.score}
                for m in self.searcher.moments_of(queries, candidates, words, top_k, holds)]

    def _segment_ids(self, source_id: str | None, start: float | None, end: float | None) -> list[int]:
        store = self.index.store
        sources = [self.source(source_id)] if source_id is not None else store.list_sources()
        lo = None if start is None else seconds_to_ns(start)
        hi = None if end is None else seconds_to_ns(end)
        return [s.segment_id for src in sources for s in store.segments_of_source(src.source_id, start_ns=lo, end_ns=hi)]

    def highlights(self, *, source_id: str | None, kind: str | None, text: str | None, min_score: float,
                   top_k: int) -> list[dict]:
        self.fresh()
        if source_id is not None:
            self.source(source_id)
        found = find_highlights(self.index, source_id=source_id, min_score=min_score, text=text,
                                searcher=self.searcher if text else None)
        out = [self._highlight_json(h) for h in found]
        if kind is not None:
            out = [h for h in out if kind in h["kinds"]]
        return out[:top_k]

    def ask(self, source_id: str, question: str, *, top_k: int) -> dict:
        reply = answer(self.searcher, self.source(source_id), question, top_k=top_k)
        doc = reply.to_json()
        doc["moments"] = [self._moment_json(m) for m in reply.moments]
        return doc

    def thumbnail(self, segment_id: int) -> bytes:
        picture = self.index.store.get_thumbnail(segment_id)
        if picture is None:
            raise NotFound(f"segment {segment_id} has no thumbnail (no such segment, no video, or ingested "
                           "before thumbnails were kept)")
        return picture

    def _moment_json(self, m: Moment) -> dict:
        return {**m.to_json(), "clip_url": clip_url(m.source_id, m.start_ns, m.end_ns),
                "thumbnail_url": thumbnail_url(m.best_segment_id),
                "media_url": media_url(m.source_id) if self._plays_whole(m.source_id, m.source_uri) else None}

    def _highlight_json(self, h) -> dict:
        doc = h.to_json()
        m = h.moment
        best = m.segment_ids[len(m.segment_ids) // 2] if m.segment_ids else None
        return {**doc, "clip_url": clip_url(m.source_id, m.span.start_ns, m.span.end_ns),
                "thumbnail_url": thumbnail_url(best) if best is not None else None,
                "media_url": media_url(m.source_id) if h.source and self._plays_whole(m.source_id, h.source.uri) else None}

    # -- clips -----------------------------------------------------------------------------------

    def clip(self, source_id: str, start: float, end: float) -> Path:
        """An MP4 of ``[start, end)`` seconds of the source, cut once and kept for a while."""
        source = self.source(source_id)
        start_ns, end_ns = seconds_to_ns(start), seconds_to_ns(end)
        if source.duration_ns is not None and start_ns >= source.duration_ns:
            raise ValueError(f"{source.name} is {source.duration_ns / NS_PER_SECOND:g} s long; "
                             f"a clip cannot start at {start:g} s")
        key = hashlib.sha256(f"{source.source_id}|{source.uri}|{start_ns}|{end_ns}".encode()).hexdigest()[:32]
        path = self._clips / f"{key}.mp4"
        with self._lock:
            lock = self._cutting.setdefault(key, threading.Lock())
        with lock:  # several range requests for one new clip: one cut
            if not path.exists():
                try:
                    cut_source(self.data_dir, source, start_ns, end_ns, path)
                except LookupError as exc:
                    raise NotFound(str(exc)) from None
                self._evict()
        return path

    def _evict(self) -> None:
        files = sorted(self._clips.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
        for old in files[:-CLIP_CACHE_FILES]:
            old.unlink(missing_ok=True)

    # -- health ----------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        try:
            if not self.index.store.ping():
                return False, "the metadata store does not answer"
        except (OSError, ConnectionError) as exc:
            return False, f"the metadata store does not answer: {exc}"
        if self._shards_ready is not None:
            ok, message = self._shards_ready()
            if not ok:
                return False, message
        return True, f"{len(self.index)} segments indexed"


def _browser_plays(uri: str) -> bool:
    import av

    if "://" in uri or not os.path.isfile(uri):
        return False
    try:
        with av.open(uri) as container:
            codecs = {s.codec_context.name for s in container.streams if s.type in ("video", "audio")}
            return container.format.name in BROWSER_CONTAINERS and bool(codecs) and codecs <= BROWSER_CODECS
    except (av.FFmpegError, OSError):
        return False


def source_json(s: SourceInfo) -> dict:
    return {"source_id": s.source_id, "name": s.name, "uri": s.uri, "status": s.status, "error": s.error,
            "duration": None if s.duration_ns is None else ns_to_seconds(s.duration_ns),
            "has_video": s.has_video, "has_audio": s.has_audio, "ingested_at": s.ingested_at_ns / NS_PER_SECOND}

