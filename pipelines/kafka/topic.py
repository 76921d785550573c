"""``vidscope live kafka://HOST:PORT/TOPIC``: every stream on a topic, resumable after a crash.

One ``KafkaTopicActor`` owns the topic's consumer (group ``vidscope-<store id>``: workers that
share a store share the partitions). A thread polls it and routes each chunk to its stream by
key; each stream the driver has taken is decoded in a thread of its own, from its chunks
(``kafka_io.ChunkReader`` under PyAV), aligned into windows, and handed to the driver through a
bounded queue that *blocks* when full: the log keeps what the encoders have not reached, so
nothing is thinned or dropped; when a stream's backlog grows the partitions are paused.

Clock. A stream's time is its MPEG-TS PTS minus an *origin*, so decoding the same chunks again
gives the same times, hence the same segment ids. A stream is a run of *epochs*: one per
``publish`` (a chunk with ``seq`` 0 starts one; a publisher that restarts starts its PTS again),
each placed on the window grid right after the previous epoch's end (or after the last segment
the index holds of the stream, for a publish after vidscope restarted). The epochs, as
``(partition, offset of their first chunk, origin_ns)``, are a checkpoint in the store
(``kafka:TOPIC:NAME``), written as soon as the driver sees a segment of a new epoch, which is
before anything of it can be committed.

Offsets. Each video keyframe is remembered with the chunk to restart from to decode from it
(``ChunkReader.resume_at``). The driver reports, per stream, the time before which every segment
is in the saved index; the chunks before the last keyframe at or before that time are marked
done and the consumer commits. After a crash the group resumes at that keyframe: the windows
decoded again that the index already holds are skipped (the driver gives the stream the start
times it has), and the rest are indexed once.

Supervision. A stream's decoder thread that fails (a damaged epoch, a decoder bug) starts again
from the stream's next chunk, up to ``MAX_READER_FAILURES`` times in a row; the topic actor that
dies (the consumer with it) is replaced by ``KafkaTopic.reopen``: the new consumer resumes the
group at the committed offsets and every stream is planned again from the store.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import ray

from operators.media.align import Aligner, windows
from operators.media.decode import DecodeConfig, Decoder, MediaError
from operators.media.live import LiveConfig, SegmentQueue
from operators.records import Segment
from kafka.errors import KafkaError

from pipelines.kafka.streams import Chunk, ChunkReader, KafkaStreams, parse_kafka_url
from pipelines.ingest.runtime import SourceReport

log = logging.getLogger(__name__)

PAUSE_ABOVE_CHUNKS = 32
"""A stream with this many chunks waiting to be decoded pauses the partitions (~6 MB at the
default chunk size); they resume below a quarter of it."""
EPOCH_META = "kafka_epoch"
MAX_READER_FAILURES = 5
"""Failures in a row (no segment between them) after which a stream's reader gives up."""


def checkpoint_key(topic: str, name: str) -> str:
    return f"kafka:{topic}:{name}"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What the driver knows of a stream when it starts reading it."""

    name: str
    source_id: str
    epochs: tuple[tuple[int, int, int], ...] = ()
    """(partition, offset of the epoch's first chunk, origin_ns), oldest first."""
    durable_starts: frozenset[int] = frozenset()
    """Start times of the segments the index already holds: decoded again after a resume, skipped."""
    anchor_wall_ns: int | None = None
    """Wall-clock time of stream time 0 (kept with the source)."""
    stored_end_ns: int = 0
    """Where the last segment the index holds of the stream ends: a new epoch starts after it, so a
    publish after a restart never lands on windows already indexed."""


@dataclass(slots=True)
class _Stream:
    name: str
    chunks: queue.Queue = field(default_factory=queue.Queue)
    handed: deque = field(default_factory=deque)  # (partition, offset) of every chunk routed here, in order
    keyframes: deque = field(default_factory=deque)  # (t_ns, (partition, offset) to resume from)
    durable_ns: int = -1
    stash: Chunk | None = None  # the first chunk of the next epoch, read while ending the last
    segments_read: int = 0
    segments_skipped: int = 0  # already in the index (decoded again after a resume)
    readers: int = 0
    last_place: tuple[int, int] | None = None  # (partition, offset) of the last chunk fed to a decoder
    errors: list[str] = field(default_factory=list)
    queue: SegmentQueue | None = None
    stream_ns: int = 0


@ray.remote(max_concurrency=256)
class KafkaTopicActor:
    """Consumes one topic; ``segments(plan, ...)`` streams one of its streams (threads: the
    consumer, one decoder per stream, the generators, status and stop calls). Each stream's
    generator holds one of the actor's threads: up to ~250 streams a topic."""

    def __init__(self, url: str, group_id: str, live: LiveConfig, max_queue: int) -> None:
        self.url, self.group_id, self.live, self.max_queue = url, group_id, live, max_queue
        self.topic = parse_kafka_url(url).topic
        self.stop_event = threading.Event()  # stop reading: streams end, their generators finish
        self._closing = threading.Event()  # stop consuming (after the last commit)
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._new: list[str] = []
        self._error: str | None = None
        self._ready = threading.Event()
        self.dead_letters = 0
        self.committed: dict[int, int] = {}
        self._consumer = threading.Thread(target=self._consume, name="kafka-consumer", daemon=True)
        self._consumer.start()

    def pid(self) -> int:
        self._ready.wait(30)
        if self._error:
            raise RuntimeError(self._error)
        return os.getpid()

    def stop(self) -> None:
        self.stop_event.set()

    def discovered(self) -> list[str]:
        """Streams seen since the last call (a stream is seen when its first chunk arrives)."""
        with self._lock:
            new, self._new = self._new, []
        if self._error:
            raise RuntimeError(self._error)
        return new

    def durable(self, name: str, t_ns: int) -> None:
        """Every segment of ``name`` before stream time ``t_ns`` is in the saved index."""
        stream = self._stream(name)
        stream.durable_ns = max(stream.durable_ns, t_ns)

    def close(self) -> dict[int, int]:
        """Commit what is durable, leave the group; returns the committed offsets."""
        self.stop_event.set()
        self._closing.set()
        self._consumer.join(timeout=30)
        return dict(self.committed)

    def get_status(self, name: str) -> dict:
        s = self._stream(name)
        segments = s.queue  # read once: the reader thread clears it when the stream ends
        committed = dict(self.committed)
        return {"state": "stopped" if segments is None else "streaming", "stream_seconds": s.stream_ns / 1e9,
                "segments_read": s.segments_read, "segments_skipped": s.segments_skipped, "segments_thinned": 0,
                "segments_dropped": 0, "reconnects": max(0, s.readers - 1), "queue": len(segments) if segments else 0,
                "chunks_waiting": s.chunks.qsize(), "dead_letters": self.dead_letters, "errors": s.errors[-5:],
                "committed": {str(p): o for p, o in committed.items()}, "reader_pid": os.getpid(),
                "updated_at": time.time()}

    def _stream(self, name: str, *, discovered: bool = False) -> _Stream:
        """The stream called ``name``, made if new (by the consumer on its first chunk, which
        makes it discovered; or by a driver that already knows it, after a restart of this actor)."""
        with self._lock:
            stream = self._streams.get(name)
            if stream is None:
                stream = self._streams[name] = _Stream(name)
                if discovered:
                    self._new.append(name)
                    log.info("%s: new stream %r", self.url, name)
            return stream

    # -- the consumer thread ---------------------------------------------------------------------

    def _consume(self) -> None:
        try:
            streams = KafkaStreams(self.url, group_id=self.group_id)
        except Exception as exc:  # noqa: BLE001 - pid() reports it to the driver
            self._error = f"{self.url}: cannot consume: {type(exc).__name__}: {exc}"
            self._ready.set()
            return
        self._ready.set()
        paused = False
        try:
            while not self._closing.is_set():
                self._commit(streams)
                # Only streams being read count: one whose reader is gone must not pause the rest.
                backlog = max((s.chunks.qsize() for s in self._streams.values() if s.queue is not None), default=0)
                paused = backlog > (PAUSE_ABOVE_CHUNKS // 4 if paused else PAUSE_ABOVE_CHUNKS)
                streams.pause(paused)  # every turn: partitions assigned since are covered too
                for chunk in streams.poll(0.2):
                    stream = self._stream(chunk.name, discovered=True)
                    stream.handed.append((chunk.partition, chunk.offset))
                    stream.chunks.put(chunk)
                self.dead_letters = streams.dead_letters
            self._commit(streams)
        except Exception as exc:  # noqa: BLE001 - reported to the driver through discovered()
            self._error = f"{self.url}: consumer failed: {type(exc).__name__}: {exc}"
            log.error("%s", self._error)
        finally:
            streams.close()

    def _commit(self, streams: KafkaStreams) -> None:
        """Mark done each stream's chunks before its last durable keyframe, and commit."""
        for stream in list(self._streams.values()):
            resume = None
            while stream.keyframes and stream.keyframes[0][0] <= stream.durable_ns:
                t_ns, place = stream.keyframes.popleft()
                resume = place or resume
            if resume is not None:
                stream.keyframes.appendleft((stream.durable_ns, resume))  # keep it: the next resume may be it
                partition, offset = resume
                done = []
                while stream.handed and stream.handed[0][0] == partition and stream.handed[0][1] < offset:
                    done.append(Chunk(stream.name, *stream.handed.popleft(), data=b""))
                streams.done(done)
        try:
            fresh = streams.commit()
        except KafkaError as exc:  # a rebalance in progress: what is done stays done, commit next turn
            log.warning("%s: commit deferred: %s", self.url, exc)
            return
        for (_, partition), offset in fresh.items():
            self.committed[partition] = offset

    # -- one stream ------------------------------------------------------------------------------

    @ray.method(num_returns="streaming", _generator_backpressure_num_objects=4)
    def segments(self, plan: StreamPlan, decode: DecodeConfig, window_ns: int) -> Iterator[Segment | SourceReport]:
        stream = self._stream(plan.name)
        stream.queue = SegmentQueue(self.max_queue, policy="block")
        thread = threading.Thread(target=self._read, args=(stream, plan, decode, window_ns), name=f"kafka-{plan.name}",
                                  daemon=True)
        thread.start()
        count, last_end_ns = 0, 0
        while (segment := stream.queue.get()) is not None:
            count += 1
            last_end_ns = segment.span.end_ns
            yield segment
        thread.join(timeout=5)
        error = "; ".join(stream.errors[-3:]) if stream.errors and not count else None
        stream.queue = None
        yield SourceReport(plan.source_id, f"{self.url}#{plan.name}", error, last_end_ns, True, True, count, 0, 0, 0.0,
                           anchor_wall_ns=plan.anchor_wall_ns)

    def _read(self, stream: _Stream, plan: StreamPlan, decode: DecodeConfig, window_ns: int) -> None:
        epochs = list(plan.epochs)
        last_end_ns = 0
        failures = 0
        try:
            while not self.stop_event.is_set():
                first = stream.stash or self._next_chunk(stream, timeout_s=None)
                stream.stash = None
                if first is None:
                    break
                read_before = stream.segments_read + stream.segments_skipped
                try:
                    last_end_ns = self._read_epoch(stream, plan, first, epochs, last_end_ns, decode, window_ns)
                except Exception as exc:  # noqa: BLE001 - supervised: a new decoder from the next chunk
                    made = stream.segments_read + stream.segments_skipped > read_before
                    failures = 1 if made else failures + 1
                    stream.errors.append(f"{type(exc).__name__}: {exc}")
                    log.exception("%s#%s: reader failed (%d in a row)", self.url, stream.name, failures)
                    if failures >= MAX_READER_FAILURES:
                        raise
                    continue
                failures = 0
        except Exception:  # noqa: BLE001 - reported with the stream (its errors), which ends
            log.error("%s#%s: reader gave up after %d failures in a row", self.url, stream.name, failures)
        finally:
            stream.queue.close()

    def _read_epoch(self, stream: _Stream, plan: StreamPlan, first: Chunk, epochs: list, last_end_ns: int,
                    decode: DecodeConfig, window_ns: int) -> int:
        """Decode from ``first`` until the epoch ends, the stream idles or we stop; returns where
        the last segment emitted ends."""
        here = (first.partition, first.offset)
        earlier = [e for e in epochs if e[0] == first.partition and e[1] <= first.offset]
        new_epoch = not earlier or (first.seq == 0 and not any(e[:2] == here for e in epochs))
        stream.readers += 1
        reader = ChunkReader(self._feed(stream, first))
        options = self.live.probe_options()

        def keyframe(t_ns: int, pos: int) -> None:
            stream.keyframes.append((t_ns, reader.resume_at(pos)))

        try:
            decoder = Decoder(reader, decode, options=options, format="mpegts", on_keyframe=keyframe)
        except MediaError as exc:
            stream.errors.append(f"chunks from offset {first.offset}: {exc}")
            log.warning("%s#%s: %s", self.url, stream.name, exc)
            for _ in self._feed_rest(stream):  # skip to the next epoch or idle
                pass
            return last_end_ns
        with decoder:
            if new_epoch:  # after everything of the stream this run has read or the index holds
                base_ns = -(-max(last_end_ns, plan.stored_end_ns) // window_ns) * window_ns
                epoch = (first.partition, first.offset, decoder.origin_ns - base_ns)
                epochs.append(epoch)
                log.info("%s#%s: epoch at offset %d starts at stream time %.1f s", self.url, stream.name, first.offset,
                         base_ns / 1e9)
            else:
                epoch = max(earlier, key=lambda e: e[1])
            decoder.origin_ns = epoch[2]
            floor_ns = max(last_end_ns, base_ns) if new_epoch else last_end_ns

            def aligner_at(item) -> Aligner:
                t_ns = getattr(item, "pts_ns", None)
                if t_ns is None:
                    t_ns = item.start_sample * 1_000_000_000 // decode.sample_rate
                # On the grid, always: a replay after a crash makes the same windows (a stream
                # that idled ended in a short window; the next one starts at the next line).
                start_ns = max(t_ns // window_ns, -(-floor_ns // window_ns)) * window_ns
                return Aligner(plan.source_id, has_video=decoder.has_video, has_audio=decoder.has_audio,
                               window_ns=window_ns, start_ns=start_ns, meta={EPOCH_META: list(epoch)})

            # The epoch ends or the stream idles: nothing follows soon.
            for segment in windows(decoder, aligner_at, video_end_ns=lambda: decoder.video_end_ns, quiet_at_end=True):
                last_end_ns = self._put(stream, plan, segment, last_end_ns)
        if stream.last_place is not None:  # all read so far is done once what it made is durable
            partition, offset = stream.last_place
            stream.keyframes.append((last_end_ns, (partition, offset + 1)))
        return last_end_ns

    def _put(self, stream: _Stream, plan: StreamPlan, segment: Segment, last_end_ns: int) -> int:
        last_end_ns = max(last_end_ns, segment.span.end_ns)
        stream.stream_ns = last_end_ns
        if segment.span.start_ns in plan.durable_starts:
            stream.segments_skipped += 1
        else:
            stream.segments_read += 1
            stream.queue.put(segment)
        return last_end_ns

    def _next_chunk(self, stream: _Stream, timeout_s: float | None) -> Chunk | None:
        """The stream's next chunk; None on stop, or after ``timeout_s`` without one."""
        waited = 0.0
        while not self.stop_event.is_set():
            try:
                return stream.chunks.get(timeout=0.2)
            except queue.Empty:
                waited += 0.2
                if timeout_s is not None and waited >= timeout_s:
                    return None
        return None

    def _feed(self, stream: _Stream, first: Chunk) -> Iterator[Chunk]:
        stream.last_place = (first.partition, first.offset)
        yield first
        for chunk in self._feed_rest(stream):
            stream.last_place = (chunk.partition, chunk.offset)
            yield chunk

    def _feed_rest(self, stream: _Stream) -> Iterator[Chunk]:
        """Chunks until the next epoch (its first chunk is stashed), an idle stream (no chunk
        for ``read_timeout_s``: the decoder then flushes, so the last window is indexed) or stop."""
        while (chunk := self._next_chunk(stream, self.live.read_timeout_s)) is not None:
            if chunk.seq == 0:
                stream.stash = chunk
                return
            yield chunk


class KafkaTopic:
    """A topic's streams as a source kind: one ``KafkaTopicActor`` consumes the topic; a stream
    joins the run when its first chunk arrives (``take`` looks every ``DISCOVER_EVERY_S``), each
    planned from what the store holds of it; what the driver says is durable becomes commits."""

    live = True
    replays = False
    DISCOVER_EVERY_S = 0.5

    def __init__(self, index, options, config) -> None:
        """``options``: the run's ``LiveOptions``; ``config``: its ``IngestConfig``."""
        self.index, self.options = index, options
        self.url = options.urls[0]
        self.topic = parse_kafka_url(self.url).topic
        self.group = options.group or f"vidscope-{index.store.store_id}"
        self.decode, self.window_ns = config.decode, int(config.window_seconds * 1e9)
        self.actor = None
        self.epochs: dict[str, list[list[int]]] = {}  # stream name -> its epochs, as checkpointed
        self.reading: set[str] = set()
        self.stopped = False
        self._next_discovery = 0.0
        self._cpus = 0.5

    def _new_actor(self):
        self.actor = KafkaTopicActor.options(num_cpus=self._cpus).remote(self.url, self.group, self.options.live,
                                                                         self.options.max_queue)
        return self.actor

    def start(self, cpus: float) -> list[ray.ObjectRef]:
        self._cpus = cpus
        return [self._new_actor().pid.remote()]

    def take(self) -> list:
        from pipelines.ingest.kinds import SourceOutcome
        from pipelines.ingest.sources import SourceRef, register_stream

        if self.stopped or time.monotonic() < self._next_discovery:
            return []
        self._next_discovery = time.monotonic() + self.DISCOVER_EVERY_S
        try:
            names = ray.get(self.actor.discovered.remote(), timeout=30)
        except ray.exceptions.RayActorError:  # the actor died: a stream's reopen replaces it
            return []
        taken = []
        for name in names:
            if name in self.reading:  # found again by a replaced actor: its reader was reopened already
                continue
            uri = f"{self.url}#{name}"
            source_id, _ = register_stream(self.index, uri, name)
            checkpoint = self.index.store.get_checkpoint(checkpoint_key(self.topic, name)) or {}
            self.epochs[name] = [list(e) for e in checkpoint.get("epochs", [])]
            self.reading.add(name)
            log.warning("stream %r on %s: %s", name, self.url, "resuming" if self.epochs[name] else "new")
            taken.append(SourceOutcome(SourceRef(uri, source_id, given_name=name)))
        return taken

    def pending(self) -> bool:
        return not self.stopped

    def _plan(self, name: str, source_id: str) -> StreamPlan:
        """What the store holds of the stream now: its epochs, the windows to skip, where it ends."""
        known = self.index.store.get_source(source_id)
        stored = self.index.store.segments_of_source(source_id)
        return StreamPlan(name, source_id, tuple(tuple(e) for e in self.epochs[name]),
                          frozenset(s.start_ns for s in stored), known.ingested_at_ns if known else None,
                          stored_end_ns=max((s.end_ns for s in stored), default=0))

    def open(self, outcome):
        plan = self._plan(outcome.ref.given_name, outcome.ref.source_id)
        return self.actor.segments.remote(plan, self.decode, self.window_ns)

    def reopen(self, outcome, resume_after_ns: int):
        try:
            ray.get(self.actor.pid.remote(), timeout=30)
        except ray.exceptions.RayError:  # the consumer died with it: a new one resumes at the commits
            log.warning("%s: the topic reader died; starting a new one", self.url)
            ray.kill(self.actor)
            self._new_actor()
        return self.open(outcome)

    def on_segment(self, outcome, segment: Segment) -> None:
        name = outcome.ref.given_name
        epoch = segment.meta.get(EPOCH_META)
        if epoch is not None and list(epoch) not in self.epochs[name]:
            # Before any segment of the epoch is written, hence before any of it is committed.
            # Merged with what is stored: another worker may have held the stream before a rebalance.
            # A store that is down is waited for: nothing of the epoch may be written before it.
            key = checkpoint_key(self.topic, name)
            while True:
                try:
                    stored = (self.index.store.get_checkpoint(key) or {}).get("epochs", [])
                    merged = [list(e) for e in sorted({tuple(e) for e in stored} | {tuple(e) for e in self.epochs[name]}
                                                      | {tuple(epoch)})]
                    self.index.store.put_checkpoint(key, {"epochs": merged})
                    break
                except ConnectionError as exc:
                    log.error("%s#%s: cannot checkpoint a new epoch (%s); waiting for the store", self.url, name, exc)
                    time.sleep(1.0)
            self.epochs[name] = merged

    def durable(self, outcome, t_ns: int, *, final: bool = False) -> None:
        ref = self.actor.durable.remote(outcome.ref.given_name, t_ns)
        if final:
            try:
                ray.get(ref, timeout=30)
            except ray.exceptions.RayError as exc:  # not committed: a restart reads it again, skipping what is indexed
                log.warning("%s: could not report what is durable: %s", self.url, exc)

    def release(self, outcome) -> None:
        self.reading.discard(outcome.ref.given_name)

    def status(self, outcome) -> dict | None:
        try:
            return ray.get(self.actor.get_status.remote(outcome.ref.given_name), timeout=2)
        except ray.exceptions.RayError:
            return None

    def stop(self) -> None:
        self.stopped = True
        self.actor.stop.remote()

    def close(self) -> None:
        """Commit what is durable, leave the group."""
        try:
            committed = ray.get(self.actor.close.remote(), timeout=60)
            log.warning("committed offsets on %s: %s", self.url, committed)
        except ray.exceptions.RayError as exc:
            log.warning("%s: the last commit failed (a restart reads it again): %s", self.url, exc)
        ray.kill(self.actor)
