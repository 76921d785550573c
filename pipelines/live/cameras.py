"""Live ingest: camera streams as a source kind of the one driver (``pipelines.ingest.driver``).

``CameraStreams`` gives each stream a long-lived ``LiveSourceActor``; the driver runs a stream
like a file that never ends, and when its reader dies (a crash, out of memory), the stream gets a
fresh one with its own anchor, continuing after what was pulled of it. In the actor a thread reads the stream (``operators.media.live.LiveReader``,
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
from operators.media.align import Aligner, windows
from operators.media.decode import DecodeConfig
from operators.media.live import LiveConfig, LiveReader, SegmentQueue, connections
from indexers.clips import recording_folder
from operators.media.record import RecordConfig, Recorder
from operators.records import Segment, seconds_to_ns
from pipelines.ingest.batch import IngestConfig, Ingestor
from pipelines.ingest.kinds import SourceOutcome
from pipelines.live.outputs import LiveOutputs
from pipelines.ingest.runtime import SourceReport
from pipelines.ingest.sources import SourceRef, register_stream, stream_name_problem

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
    timestamp_jumps: int = 0  # discontinuities inside a connection, joined on (operators.media.decode._Join)
    connection_start_seconds: float = 0.0  # stream time of the current connection's first item
    queue: int = 0
    reader_pid: int = 0  # the reader actor's process (a supervisor, or a test, can watch it)
    updated_at: float = field(default_factory=time.time)


@ray.remote(max_concurrency=3)
class LiveSourceActor:
    """Reads one stream (threads: the reader, the generator, status and stop calls)."""

    def __init__(self, live: LiveConfig, max_queue: int, anchor_wall_ns: int | None, source_id: str,
                 resume_after_ns: int = 0, record: RecordConfig | None = None) -> None:
        self.live = live
        self.record = record
        self.anchor_wall_ns = anchor_wall_ns
        self.resume_after_ns = resume_after_ns  # where the stored history of the stream ends
        self.stop_event = threading.Event()
        self.status = StreamStatus(name=source_id, url="", reader_pid=os.getpid())
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
                                           resume_after_ns=self.resume_after_ns,
                                           recorder=Recorder(self.record) if self.record is not None else None)
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
        aligner, starting on the window grid but never before what was already emitted; its last
        windows go out when it drops, not when the stream returns."""
        try:
            for connected, items in connections(reader):
                start_ns = max(connected.first_ns // window_ns * window_ns, self._last_end_ns)
                aligner = Aligner(source_id, has_video=connected.has_video, has_audio=connected.has_audio,
                                  window_ns=window_ns, start_ns=start_ns)
                self.status.state = "streaming"
                self.status.connection_start_seconds = connected.first_ns / 1e9
                for segment in windows(items, aligner, quiet_at_end=True):
                    self._put(segment)
                self.status.state = "reconnecting"
        except Exception as exc:  # noqa: BLE001 - reported with the stream, never lost silently
            self._error = f"{reader.url}: {type(exc).__name__}: {exc}"
            log.error("%s", self._error)
        finally:
            self.queue.close()

    def _put(self, segment: Segment) -> None:
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
    record: bool = False
    """Keep each stream's packets in ``DATA/recordings/NAME`` (``operators.media.record``)."""
    retain_seconds: float | None = None
    retain_bytes: int | None = None

    @property
    def kafka(self) -> bool:
        return bool(self.urls) and self.urls[0].startswith("kafka://")

    def __post_init__(self) -> None:
        if any(url.startswith("kafka://") for url in self.urls):
            if len(self.urls) != 1:
                raise ValueError("a kafka:// topic is read on its own: give it as the only URL")
            if self.names:
                raise ValueError("a kafka:// topic needs no --name: its streams are named by their message keys")
            if self.record:
                raise ValueError("--record is for camera streams: a Kafka topic keeps its own packets (its retention)")
            from pipelines.kafka.streams import parse_kafka_url

            parse_kafka_url(self.urls[0])
            return
        if self.record:
            RecordConfig("-", retain_seconds=self.retain_seconds, retain_bytes=self.retain_bytes)  # refuses bad limits now
        elif self.retain_seconds is not None or self.retain_bytes is not None:
            raise ValueError("--retain and --retain-size apply to a recording: add --record")
        if not self.urls or len(self.urls) != len(self.names):
            raise ValueError(f"give one --name per stream: {len(self.urls)} URLs, {len(self.names)} names")
        for name in self.names:
            if (problem := stream_name_problem(name)) is not None:
                raise ValueError(problem)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"stream names must differ: {self.names}")


class CameraStreams:
    """Camera streams (any URL FFmpeg reads, live) as a source kind: one ``LiveSourceActor`` per
    stream, made with the stream's own anchor and where its stored history ends; a reader that
    dies is replaced by one made the same way, continuing after what the driver pulled."""

    live = True
    replays = False

    def __init__(self, index: SegmentIndex, options: LiveOptions, config: IngestConfig) -> None:
        self.index, self.options = index, options
        self.decode, self.window_ns = config.decode, seconds_to_ns(config.window_seconds)
        self.outcomes: list[SourceOutcome] = []
        self.anchors: dict[str, int] = {}
        self.stored_ends: dict[str, int] = {}  # where each stream's stored history ends, at start
        for url, name in zip(options.urls, options.names):
            source_id, self.anchors[source_id] = register_stream(index, url, name)
            self.stored_ends[source_id] = max((s.end_ns for s in index.store.segments_of_source(source_id)), default=0)
            self.outcomes.append(SourceOutcome(SourceRef(url, source_id, given_name=name)))
        self.actors: dict[str, object] = {}
        self._taken = False
        self._cpus = 0.5

    def _actor(self, outcome: SourceOutcome, resume_after_ns: int = 0):
        """A reader for the stream (nothing here reads the store: a reader may die while it is down)."""
        source_id = outcome.ref.source_id
        actor = LiveSourceActor.options(num_cpus=self._cpus).remote(
            self.options.live, self.options.max_queue, self.anchors[source_id], source_id,
            max(self.stored_ends[source_id], resume_after_ns), self._record(outcome.ref.given_name))
        self.actors[source_id] = actor
        return actor

    def _record(self, name: str) -> RecordConfig | None:
        o = self.options
        if not o.record:
            return None
        return RecordConfig(str(recording_folder(self.index.data_dir, name).resolve()), retain_seconds=o.retain_seconds,
                            retain_bytes=o.retain_bytes)

    def start(self, cpus: float) -> list[ray.ObjectRef]:
        self._cpus = cpus
        return [self._actor(o).pid.remote() for o in self.outcomes]

    def take(self) -> list[SourceOutcome]:
        if self._taken:
            return []
        self._taken = True
        return list(self.outcomes)

    def pending(self) -> bool:
        return False

    def open(self, outcome: SourceOutcome):
        actor = self.actors[outcome.ref.source_id]
        return actor.segments.remote(outcome.ref.uri, outcome.ref.source_id, self.decode, self.window_ns)

    def reopen(self, outcome: SourceOutcome, resume_after_ns: int):
        ray.kill(self.actors[outcome.ref.source_id])  # if it is not quite dead, it must not read on beside its successor
        self._actor(outcome, resume_after_ns)
        return self.open(outcome)

    def on_segment(self, outcome: SourceOutcome, segment: Segment) -> None:
        pass

    def durable(self, outcome: SourceOutcome, t_ns: int, *, final: bool = False) -> None:
        pass  # a camera cannot replay: what was read is all there is

    def release(self, outcome: SourceOutcome) -> None:
        pass

    def status(self, outcome: SourceOutcome) -> dict | None:
        try:
            return ray.get(self.actors[outcome.ref.source_id].get_status.remote(), timeout=2)
        except ray.exceptions.RayError:
            return None

    def stop(self) -> None:
        for actor in self.actors.values():
            actor.stop.remote()

    def close(self) -> None:
        for actor in self.actors.values():
            ray.kill(actor)


def run_live(data_dir: Path, config: IngestConfig, options: LiveOptions, *, ray_address: str | None = None) -> list[dict]:
    """Ingest the streams until SIGINT/SIGTERM; returns each one's final report."""
    from pipelines.ingest.batch import local_ray_cpus
    from pipelines.ingest.runtime import RuntimeConfig, start_ray

    stop = threading.Event()
    config = replace(config, max_sources_in_flight=1 if options.kafka else len(options.urls))
    start_ray(RuntimeConfig(ray_address=ray_address, num_cpus=local_ray_cpus(config)))
    # After ray.init, which installs its own SIGTERM handler (it would kill us mid-write).
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with SegmentIndex(data_dir) as index:
            if options.kafka:
                from pipelines.kafka.topic import KafkaTopic

                kind = KafkaTopic(index, options, config)
            else:
                kind = CameraStreams(index, options, config)
            ingestor = Ingestor(index, config)
            started = time.perf_counter()
            outputs = LiveOutputs(index, events_url=options.events_url, chapter_seconds=options.chapter_seconds)
            try:
                ingestor.start(kind)
                driver = ingestor.run(kind, stop=stop, outputs=outputs)
            finally:
                outputs.close()
                kind.close()
                ingestor.close()
            index.save()
        wall_seconds = round(time.perf_counter() - started, 3)
        return [{"name": o.ref.name, "url": o.ref.uri, "segments_indexed": o.segments_indexed, "error": o.error,
                 "segments_failed": o.segments_failed, "restarts": o.restarts, "wall_seconds": wall_seconds}
                for o in driver.outcomes]
    finally:
        if not stop.is_set():  # stopped by a signal: keep ours, so a second one while Ray shuts down cannot kill the exit
            for sig, handler in previous.items():
                signal.signal(sig, handler)
