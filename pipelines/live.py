"""Live ingest: one long-lived reader actor per stream, feeding the same encoder pools as batch.

``LiveSourceActor.segments`` has the batch source actor's signature, so the batch driver runs a
stream like a file that never ends: a thread reads the stream (``operators.live.LiveReader``,
reconnecting forever), aligns it into windows and puts them in a bounded queue; the streaming
generator hands them to the driver. When the encoders fall behind the queue fills, and the policy
is explicit and counted: past half full, new segments keep one frame instead of all (fewer frames
sampled); when full, the oldest waiting segment is dropped. Memory never grows with the lag.

``vidscope live URL --name NAME`` runs until Ctrl-C or SIGTERM: the reader stops, what was read is
indexed and saved, the source gets its highlights and summary, exit 0. Every couple of seconds
the index is saved and the stream's status written to ``DATA/live/NAME.json`` (state, lag behind
real time, segments indexed, thinned and dropped, reconnects), so other processes can search it
while it plays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import ray

from indexers.index import SegmentIndex
from indexers.store import SourceInfo
from operators.align import Aligner
from operators.decode import DecodeConfig
from operators.highlights import HighlightScorer, merge_highlights
from operators.live import QUIET_AFTER, Connected, Disconnected, LiveConfig, LiveReader, SegmentQueue, mark_quiet_after
from operators.records import Segment, Span
from operators.summary import SegmentFacts, SummaryInput
from pipelines.batch import DEFAULT_MIN_SCORE, IngestConfig, Ingestor, SourceOutcome, _Run, signals_of
from pipelines.live_events import HighlightEvents, chapter_event
from pipelines.runtime import SourceReport
from pipelines.sources import SourceRef, stream_name_problem

log = logging.getLogger(__name__)

STATUS_EVERY_S = 2.0


@dataclass(slots=True)
class StreamStatus:
    name: str
    url: str
    state: str = "connecting"  # connecting | streaming | reconnecting | stopped
    stream_seconds: float = 0.0
    lag_seconds: float = 0.0  # wall clock minus the wall-clock time of the newest segment indexed
    read_lag_seconds: float = 0.0  # the same for the newest segment read (the encoders' share is the difference)
    segments_read: int = 0
    segments_indexed: int = 0
    segments_thinned: int = 0
    segments_dropped: int = 0
    reconnects: int = 0
    outage_seconds: float = 0.0  # stream time lost between connections, all reconnects together
    timestamp_jumps: int = 0  # discontinuities inside a connection, joined on (operators.decode._Join)
    connection_start_seconds: float = 0.0  # stream time of the current connection's first item
    queue: int = 0
    updated_at: float = field(default_factory=time.time)


def live_source_id(name: str) -> str:
    """A stream's id is a function of its name: restarting ``vidscope live`` continues it."""
    return "live-" + hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


@ray.remote(max_concurrency=3)
class LiveSourceActor:
    """Reads one stream (threads: the reader, the generator, status and stop calls)."""

    def __init__(self, live: LiveConfig, max_queue: int, anchor_wall_ns: int | None, source_id: str,
                 resume_after_ns: int = 0) -> None:
        self.live = live
        self.anchor_wall_ns = anchor_wall_ns
        self.resume_after_ns = resume_after_ns  # where the stored history of the stream ends
        self.stop_event = threading.Event()
        self.status = StreamStatus(name=source_id, url="")
        self.queue = SegmentQueue(max_queue)
        self._error: str | None = None
        self._reader: LiveReader | None = None
        self._last_end_ns = resume_after_ns

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        self.stop_event.set()

    def get_status(self, name: str | None = None) -> dict:
        status = self.status
        status.queue, status.segments_thinned, status.segments_dropped = len(self.queue), self.queue.thinned, self.queue.dropped
        if self._reader is not None:
            status.reconnects = self._reader.reconnects
            status.outage_seconds = self._reader.outage_ns / 1e9
            status.timestamp_jumps = self._reader.timestamp_jumps
        status.updated_at = time.time()
        return asdict(status)

    @ray.method(num_returns="streaming", _generator_backpressure_num_objects=4)
    def segments(self, url: str, source_id: str, decode: DecodeConfig, window_ns: int) -> Iterator[Segment | SourceReport]:
        self.status.url = url
        reader = self._reader = LiveReader(url, decode, self.live, stop=self.stop_event, anchor_wall_ns=self.anchor_wall_ns,
                                           resume_after_ns=self.resume_after_ns)
        thread = threading.Thread(target=self._read, args=(reader, source_id, window_ns), name=f"live-{source_id}", daemon=True)
        thread.start()
        count, last_end_ns, has_video, has_audio = 0, 0, False, False
        while (segment := self.queue.get()) is not None:
            count += 1
            last_end_ns = segment.span.end_ns
            has_video = has_video or len(segment.frames) > 0
            has_audio = has_audio or segment.audio is not None
            yield segment
        thread.join(timeout=5)
        self.status.state = "stopped"
        yield SourceReport(source_id, url, self._error, last_end_ns, has_video, has_audio, count, reader.damaged_packets,
                           0, 0.0, anchor_wall_ns=reader.anchor_wall_ns)

    def _read(self, reader: LiveReader, source_id: str, window_ns: int) -> None:
        """Reader thread: connections -> aligned windows -> the queue. Each connection gets its own
        aligner, starting on the window grid but never before what was already emitted."""
        aligner: Aligner | None = None
        pending: list = []
        try:
            for item in reader:
                if isinstance(item, Disconnected):  # the last seconds go out now, not when the stream returns
                    if aligner is not None:
                        self._put(mark_quiet_after(aligner.process(pending) + aligner.flush()))
                    aligner, pending = None, []
                    self.status.state = "reconnecting"
                    continue
                if isinstance(item, Connected):
                    if aligner is not None:
                        self._put(aligner.process(pending) + aligner.flush())
                        pending = []
                    start_ns = max(item.first_ns // window_ns * window_ns, self._last_end_ns)
                    aligner = Aligner(source_id, has_video=item.has_video, has_audio=item.has_audio, window_ns=window_ns,
                                      start_ns=start_ns)
                    self.status.state = "streaming"
                    self.status.connection_start_seconds = item.first_ns / 1e9
                    continue
                pending.append(item)
                if len(pending) >= 8:
                    self._put(aligner.process(pending))
                    pending = []
            if aligner is not None:
                self._put(aligner.process(pending) + aligner.flush())
        except Exception as exc:  # noqa: BLE001 - reported with the stream, never lost silently
            self._error = f"{reader.url}: {type(exc).__name__}: {exc}"
            log.error("%s", self._error)
        finally:
            self.queue.close()

    def _put(self, segments: list[Segment]) -> None:
        for segment in segments:
            self._last_end_ns = max(self._last_end_ns, segment.span.end_ns)
            self.status.segments_read += 1
            self.status.stream_seconds = segment.span.end_ns / 1e9
            anchor = self._reader.anchor_wall_ns
            if anchor is not None:  # a sender runs slightly ahead of real time (TS mux delay): ahead is no lag
                self.status.read_lag_seconds = max(0.0, round((time.time_ns() - anchor - segment.span.end_ns) / 1e9, 3))
            self.queue.put(segment)


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """The streams to read (``urls[i]`` named ``names[i]``) and how."""

    urls: tuple[str, ...]
    names: tuple[str, ...]
    live: LiveConfig = LiveConfig()
    max_queue: int = 30
    """Segments waiting for the encoders per stream (a minute of 2-s windows); see the module doc."""
    events_url: str | None = None
    """kafka://HOST:PORT/TOPIC: highlight events go there too (they always go to DATA/live/NAME.events.jsonl)."""
    group: str | None = None
    """Kafka input: the consumer group; default ``vidscope-<store id>`` (workers sharing a store share it)."""
    chapter_seconds: float = 120.0
    """Every this much of a stream (indexed, in time order) is summarised as a chapter event."""

    @property
    def kafka(self) -> bool:
        return bool(self.urls) and self.urls[0].startswith("kafka://")

    def __post_init__(self) -> None:
        if any(url.startswith("kafka://") for url in self.urls):
            if len(self.urls) != 1:
                raise ValueError("a kafka:// topic is read on its own: give it as the only URL")
            if self.names:
                raise ValueError("a kafka:// topic needs no --name: its streams are named by their message keys")
            from pipelines.kafka_io import parse_kafka_url

            parse_kafka_url(self.urls[0])
            return
        if not self.urls or len(self.urls) != len(self.names):
            raise ValueError(f"give one --name per stream: {len(self.urls)} URLs, {len(self.names)} names")
        for name in self.names:
            if (problem := stream_name_problem(name)) is not None:
                raise ValueError(problem)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"stream names must differ: {self.names}")


class LiveIngestor(Ingestor):
    """The batch ingestor with one reader actor per stream; ``anchors`` maps each stream's
    source id to its wall-clock anchor."""

    def __init__(self, index: SegmentIndex, config: IngestConfig, options: LiveOptions, stop: threading.Event,
                 anchors: dict[str, int]) -> None:
        super().__init__(index, replace(config, max_sources_in_flight=len(options.urls)), expected_sources=len(options.urls))
        self.options = options
        self.stop = stop
        self.anchors = anchors
        self._unassigned = list(anchors)

    def _new_source_actor(self, cpus: float):
        source_id = self._unassigned.pop(0) if self._unassigned else next(iter(self.anchors))
        stored_end = max((s.end_ns for s in self.index.store.segments_of_source(source_id)), default=0)
        return LiveSourceActor.options(num_cpus=cpus).remote(self.options.live, self.options.max_queue,
                                                             self.anchors[source_id], source_id, stored_end)

    def _run(self, on_progress) -> _Run:
        return _LiveRun(self, on_progress)


class _Stream:
    """What the driver keeps per stream: its highlight scorer, its events, its status file."""

    def __init__(self, name: str, anchor_wall_ns: int, folder: Path, publisher=None, store=None) -> None:
        if (problem := stream_name_problem(name)) is not None:  # it names files: checked where they are made too
            raise ValueError(problem)
        self.name = name
        self.status_path = folder / f"{name}.json"
        self.events = HighlightEvents(name, anchor_wall_ns, folder / f"{name}.events.jsonl", publisher=publisher,
                                      store=store)
        self.scorer = HighlightScorer()
        self.scored_until_ns = -1
        self.shots: dict[int, object] = {}
        self.anchor_wall_ns = anchor_wall_ns
        self.chapter: list = []  # (StoredSegment, HighlightScore) of the chapter being gathered
        self.unscored: dict = {}  # segment id -> StoredSegment handed to the scorer, its score not out yet
        self.quiet_after: set[int] = set()  # end times of windows after which the stream went quiet


class _LiveRun(_Run):
    def __init__(self, ingestor: LiveIngestor, on_progress) -> None:
        super().__init__(ingestor, on_progress)
        self.stopping = False
        self.next_status = time.monotonic() + STATUS_EVERY_S
        folder = Path(ingestor.index.data_dir) / "live"
        folder.mkdir(parents=True, exist_ok=True)
        publisher = None
        if ingestor.options.events_url:
            from pipelines.kafka_events import EventPublisher

            publisher = EventPublisher(ingestor.options.events_url)
        self.folder, self.publisher = folder, publisher
        self.streams = {live_source_id(name): self._new_stream(name, ingestor.anchors[live_source_id(name)])
                        for name in ingestor.options.names}
        self.indexed_at_last_score = 0
        self.chapter_refs: dict = {}  # summary call -> (stream, start_ns, end_ns) of a live chapter

    def _new_stream(self, name: str, anchor_wall_ns: int) -> _Stream:
        store = self.ing.index.store if hasattr(self.ing.index.store, "publish") else None  # Redis: pub/sub too
        return _Stream(name, anchor_wall_ns, self.folder, self.publisher, store)

    def _start(self, outcome) -> None:
        # A reader actor knows its stream's anchor: give each stream the actor made for it.
        wanted = self.ing.source_actors[list(self.ing.anchors).index(outcome.ref.source_id)]
        self.free_actors.remove(wanted)
        self.free_actors.append(wanted)
        super()._start(outcome)

    def _dispatch(self, *, final: bool) -> int:
        # A stream never ends, so nothing waits for a full batch: whatever is buffered goes as soon
        # as a worker is free (batches still grow by themselves when the encoders are busy).
        return super()._dispatch(final=True)

    def tick(self) -> None:
        ing: LiveIngestor = self.ing
        if ing.stop.is_set() and not self.stopping:
            self.stopping = True
            names = [stream.name for stream in self.streams.values()] or list(ing.options.urls)
            log.warning("stopping %s: indexing what was read, then saving", ", ".join(names))
            for actor in ing.source_actors:
                actor.stop.remote()
        if self.segments_done != self.indexed_at_last_score:
            self.indexed_at_last_score = self.segments_done
            for src in self.active:
                self.score_highlights(src)
        if time.monotonic() >= self.next_status:
            self.next_status = time.monotonic() + STATUS_EVERY_S
            ing.index.save()  # searchable from other processes without a rebuild
            self.write_status()

    def _on_segment(self, src, segment: Segment) -> None:
        if segment.meta.get(QUIET_AFTER):
            self.streams[src.outcome.ref.source_id].quiet_after.add(segment.span.end_ns)

    def score_highlights(self, src, *, final: bool = False) -> None:
        """Score, in time order, the segments of ``src`` indexed since the last call: those before
        its earliest segment still in flight (fuse finishes out of order; the scorer must not)."""
        stream = self.streams[src.outcome.ref.source_id]
        for result in src.shot_results[len(stream.shots):]:
            stream.shots[result.segment_id] = result
        in_flight = [seg.span.start_ns for seg in self.segs.values() if seg.source is src]
        horizon = min(in_flight) if in_flight else None
        stored = self.ing.index.store.segments_of_source(src.outcome.ref.source_id, start_ns=stream.scored_until_ns + 1)
        signals = []
        for s in stored:
            if horizon is not None and s.start_ns >= horizon:
                break
            shot = stream.shots.get(s.segment_id)
            signals.append(signals_of(s, shot))
            stream.scored_until_ns = s.end_ns - 1
        # Before a stream goes quiet (a dropped connection, an idle Kafka stream) there is no
        # look-ahead to wait for: its last scores and its open moment go out now.
        quiet = bool(signals) and signals[-1].span.end_ns in stream.quiet_after
        stream.quiet_after = {t for t in stream.quiet_after if t > stream.scored_until_ns}  # what is behind is done
        scored = stream.scorer.process(signals) + (stream.scorer.flush() if final or quiet else [])
        stream.unscored.update((s.segment_id, s) for s in stored if s.end_ns - 1 <= stream.scored_until_ns)
        for score in scored:  # a segment's score comes a call later than the segment (the look-ahead)
            stream.events.push(score)
            if score.segment_id in stream.unscored:
                stream.chapter.append((stream.unscored.pop(score.segment_id), score))
        if final or quiet:
            stream.events.close_run()
        chapter_ns = int(self.ing.options.chapter_seconds * 1e9)
        if stream.chapter and (final or stream.chapter[-1][0].end_ns - stream.chapter[0][0].start_ns >= chapter_ns):
            self._summarise_chapter(src, stream)

    def _summarise_chapter(self, src, stream: _Stream) -> None:
        """The chapter gathered so far goes to the summary stage; its text goes out as an event."""
        rows, stream.chapter = stream.chapter, []
        segments = [s for s, _ in rows]
        shots = [stream.shots.get(s.segment_id) for s in segments]
        cuts = tuple(t for shot in shots if shot is not None for t in shot.cuts_ns)
        start_ns, end_ns = segments[0].start_ns, segments[-1].end_ns
        item = SummaryInput(
            source_id=src.outcome.ref.source_id, name=stream.name, duration_ns=end_ns, start_ns=start_ns,
            segments=tuple(SegmentFacts(s.start_ns, s.end_ns, s.description, s.labels, s.events, s.transcript)
                           for s in segments),
            cuts_ns=cuts, highlights=tuple(merge_highlights([score for _, score in rows], list(cuts),
                                                            min_score=DEFAULT_MIN_SCORE)))
        ref = self.ing.pools["summary"].submit("summary", [item])
        self.inflight[ref] = ("summary", [])
        self.chapter_refs[ref] = (stream, start_ns, end_ns)

    def _collect(self, ref) -> None:
        if ref not in self.chapter_refs:
            super()._collect(ref)
            return
        self.inflight.pop(ref)
        self.ing.pools["summary"].done(ref)
        stream, start_ns, end_ns = self.chapter_refs.pop(ref)
        try:
            summary = ray.get(ref)[0].to_json()
        except ray.exceptions.RayError as exc:  # the segments are indexed; this chapter just has no event
            log.warning("chapter summary of %s failed: %s", stream.name, exc)
            return
        stream.events.emit(chapter_event(stream.name, stream.anchor_wall_ns, summary, start_ns, end_ns))

    def _analyse(self, src) -> None:
        self.score_highlights(src, final=True)  # the last highlight event goes out before the summary
        super()._analyse(src)

    def write_status(self) -> None:
        for src in self.active:
            stream = self.streams[src.outcome.ref.source_id]
            try:
                status = ray.get(src.actor.get_status.remote(stream.name), timeout=2)
            except ray.exceptions.RayError:
                continue
            status["name"], status["segments_indexed"] = stream.name, src.outcome.segments_indexed
            # Scored means indexed and everything before it too: lag behind real time of the index.
            status["lag_seconds"] = max(0.0, round((time.time_ns() - stream.anchor_wall_ns - stream.scored_until_ns) / 1e9, 3))
            if self.stopping and status["state"] != "stopped":
                status["state"] = "stopping"
            tmp = stream.status_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=1))
            os.replace(tmp, stream.status_path)
            self.ing.index.store.put_checkpoint(f"live-status:{stream.name}", status)  # with Redis: seen by every worker


class KafkaIngestor(LiveIngestor):
    """Every stream of one topic, through one ``KafkaTopicActor``; streams join as they appear."""

    def __init__(self, index: SegmentIndex, config: IngestConfig, options: LiveOptions, stop: threading.Event) -> None:
        super().__init__(index, config, options, stop, anchors={})
        self.group = options.group or f"vidscope-{index.store.store_id}"
        self.outcomes: list[SourceOutcome] = []  # one per stream found on the topic

    def replace_source_actor(self, dead) -> object:
        # One stream's generator failed: that stream fails alone. A second consumer in the group
        # would take partitions that no stream of this run reads.
        return dead

    def _new_source_actor(self, cpus: float):
        from pipelines.kafka_live import KafkaTopicActor

        return KafkaTopicActor.options(num_cpus=cpus).remote(self.options.urls[0], self.group, self.options.live,
                                                            self.options.max_queue)

    def _run(self, on_progress) -> _Run:
        return _KafkaRun(self, on_progress)


class _KafkaRun(_LiveRun):
    """Discovers streams on the topic, starts each, persists their epochs and reports what is
    durable so the consumer commits; see ``pipelines.kafka_live``."""

    DISCOVER_EVERY_S = 0.5

    def __init__(self, ingestor: KafkaIngestor, on_progress) -> None:
        super().__init__(ingestor, on_progress)
        from pipelines.kafka_live import checkpoint_key

        self.actor = ingestor.source_actors[0]
        self.topic = ingestor.options.urls[0].rsplit("/", 1)[1]
        self.checkpoint_key = checkpoint_key
        self.queue = None
        self.next_discovery = 0.0
        self.epochs: dict[str, list] = {}  # stream name -> its epochs, as checkpointed
        self.pulled_end: dict[str, int] = {}
        self.failed_from: dict[str, int] = {}
        self.plans: dict = {}

    def go(self, queue) -> None:
        self.queue = queue
        super().go(queue)

    def keep_running(self) -> bool:
        return not self.stopping

    def tick(self) -> None:
        if time.monotonic() >= self.next_discovery and not self.stopping:
            self.next_discovery = time.monotonic() + self.DISCOVER_EVERY_S
            for name in ray.get(self.actor.discovered.remote(), timeout=30):
                self._add(name)
        was_saved = time.monotonic() >= self.next_status
        super().tick()
        if was_saved:  # the index was just saved: what it holds is durable
            self._report_durable()

    def _add(self, name: str) -> None:
        from pipelines.kafka_live import StreamPlan

        ing: KafkaIngestor = self.ing
        uri = f"{ing.options.urls[0]}#{name}"
        source_id, anchor = register_stream(ing.index, uri, name)
        ing.anchors[source_id] = anchor
        checkpoint = ing.index.store.get_checkpoint(self.checkpoint_key(self.topic, name)) or {}
        self.epochs[name] = [list(e) for e in checkpoint.get("epochs", [])]
        stored = ing.index.store.segments_of_source(source_id)
        starts = frozenset(s.start_ns for s in stored)
        self.streams[source_id] = self._new_stream(name, anchor)
        outcome = SourceOutcome(SourceRef(uri, source_id, given_name=name))
        self.plans[source_id] = StreamPlan(name, source_id, tuple(tuple(e) for e in self.epochs[name]), starts, anchor,
                                           stored_end_ns=max((s.end_ns for s in stored), default=0))
        ing.outcomes.append(outcome)
        self.queue.append(outcome)
        log.warning("stream %r on %s: %s", name, ing.options.urls[0],
                    f"resuming ({len(starts)} segments indexed before)" if starts else "new")

    def _start(self, outcome) -> None:
        _Run._start(self, outcome)  # not _LiveRun's: there is no actor per stream to pick
        self.free_actors = [self.actor]  # one actor serves every stream

    def _segments(self, actor, outcome):
        return actor.segments.remote(self.plans[outcome.ref.source_id], self.ing.config.decode, self.window_ns)

    def _retire(self, src) -> None:
        super()._retire(src)
        self.free_actors = [self.actor]  # one actor serves every stream

    def _on_segment(self, src, segment: Segment) -> None:
        super()._on_segment(src, segment)
        name = src.outcome.ref.given_name
        self.pulled_end[name] = segment.span.end_ns
        epoch = segment.meta.get("kafka_epoch")
        if epoch is not None and list(epoch) not in self.epochs[name]:
            # Before any segment of the epoch is written, hence before any of it is committed.
            # Merged with what is stored: another worker may have held the stream before a rebalance.
            key = self.checkpoint_key(self.topic, name)
            stored = (self.ing.index.store.get_checkpoint(key) or {}).get("epochs", [])
            merged = sorted({tuple(e) for e in stored} | {tuple(e) for e in self.epochs[name]} | {tuple(epoch)})
            self.epochs[name] = [list(e) for e in merged]
            self.ing.index.store.put_checkpoint(key, {"epochs": self.epochs[name]})

    def _fail(self, sids: list[int], reason: str) -> None:
        # A segment that could not be indexed is not durable: nothing from it on is committed, so
        # a restart tries it again.
        for sid in sids:
            seg = self.segs.get(sid)
            if seg is not None:
                name = seg.source.outcome.ref.given_name
                self.failed_from[name] = min(self.failed_from.get(name, seg.span.start_ns), seg.span.start_ns)
        super()._fail(sids, reason)

    def _durable_ns(self, src) -> int | None:
        name = src.outcome.ref.given_name
        in_flight = [seg.span.start_ns for seg in self.segs.values() if seg.source is src]
        durable_ns = min(in_flight) if in_flight else self.pulled_end.get(name)
        if durable_ns is not None and name in self.failed_from:
            durable_ns = min(durable_ns, self.failed_from[name])
        return durable_ns

    def _report_durable(self) -> None:
        for src in self.active:
            durable_ns = self._durable_ns(src)
            if durable_ns is not None:
                self.actor.durable.remote(src.outcome.ref.given_name, durable_ns)

    def _analyse(self, src) -> None:
        # The stream ended (we are stopping): everything it gave is written; save, then report.
        self.ing.index.save()
        durable_ns = self._durable_ns(src)
        if durable_ns is not None:
            ray.get(self.actor.durable.remote(src.outcome.ref.given_name, durable_ns), timeout=30)
        super()._analyse(src)


def register_stream(index: SegmentIndex, uri: str, name: str) -> tuple[str, int]:
    """Record stream ``name`` as a source being ingested; returns its id and wall-clock anchor
    (a stream seen before keeps its anchor: a restart continues its clock)."""
    source_id = live_source_id(name)
    known = index.store.get_source(source_id)
    anchor = known.ingested_at_ns if known is not None else time.time_ns()
    index.add_source(SourceInfo(source_id, uri, name, has_video=True, has_audio=True, status="ingesting",
                                ingested_at_ns=anchor))
    return source_id, anchor


def run_live(data_dir: Path, config: IngestConfig, options: LiveOptions, *, ray_address: str | None = None) -> list[dict]:
    """Ingest the streams until SIGINT/SIGTERM; returns each one's final report."""
    from pipelines.batch import local_ray_cpus
    from pipelines.runtime import RuntimeConfig, start_ray

    stop = threading.Event()
    config = replace(config, max_sources_in_flight=len(options.urls))
    start_ray(RuntimeConfig(ray_address=ray_address, num_cpus=local_ray_cpus(config)))
    # After ray.init, which installs its own SIGTERM handler (it would kill us mid-write).
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SegmentIndex(data_dir) as index:
            if options.kafka:
                ingestor = KafkaIngestor(index, config, options, stop)
                try:
                    ingestor.start()
                    result = ingestor.ingest([], force=True)
                    committed = ray.get(ingestor.source_actors[0].close.remote(), timeout=60)
                    log.warning("committed offsets on %s: %s", options.urls[0], committed)
                finally:
                    ingestor.close()
                index.save()
                return [{"name": o.ref.name, "url": o.ref.uri, "segments_indexed": o.segments_indexed, "error": o.error,
                         "wall_seconds": round(result.wall_seconds, 3)} for o in ingestor.outcomes]
            anchors, refs = {}, []
            for url, name in zip(options.urls, options.names):
                source_id, anchors[source_id] = register_stream(index, url, name)
                refs.append(SourceRef(url, source_id, given_name=name))
            ingestor = LiveIngestor(index, config, options, stop, anchors)
            try:
                ingestor.start()
                result = ingestor.ingest(refs, force=True)
            finally:
                ingestor.close()
            index.save()
        return [{"name": o.ref.name, "url": o.ref.uri, "segments_indexed": o.segments_indexed, "error": o.error,
                 "wall_seconds": round(result.wall_seconds, 3)} for o in result.outcomes]
    finally:
        if not stop.is_set():  # stopped by a signal: keep ours, so a second one while Ray shuts down cannot kill the exit
            for sig, handler in previous.items():
                signal.signal(sig, handler)
