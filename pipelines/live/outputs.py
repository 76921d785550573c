"""What a live run sends as it goes: each highlight moment as it closes and each chapter's
summary, as JSON objects (schema: ``pipelines.kafka.events``) to a JSON-lines file, a Kafka topic
and Redis pub/sub; and each stream's status file. ``LiveOutputs`` is what the driver calls for a
live source kind (cameras, Kafka)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from operators.media.align import QUIET_AFTER
from operators.analysis.highlights import HighlightMoment, HighlightScore, HighlightScorer, merge_highlights
from operators.records import Segment
from operators.analysis.summary import SegmentFacts, SummaryInput
from pipelines.ingest.analysis import DEFAULT_MIN_SCORE, signals_of
from pipelines.ingest.kinds import SourceOutcome
from pipelines.ingest.sources import stream_name_problem

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "events"
"""Redis pub/sub channel (under the store's key prefix: ``vidscope:events``) of live events."""


class HighlightEvents:
    """Highlight moments of a live stream as they close, appended as JSON lines to ``path``
    and to a Kafka topic when configured (one object per moment; the schema is in the module doc
    of ``pipelines.kafka.events``). A moment closes when a segment below the line follows it, or when
    it reaches ``max_moment_ns``: a stream that stays exciting still sends its event every minute
    (the next segments open the next moment)."""

    def __init__(self, name: str, anchor_wall_ns: int, path: Path, *, min_score: float = DEFAULT_MIN_SCORE,
                 sinks: Sequence[Outbox] = (), max_moment_ns: int = 60 * 1_000_000_000) -> None:
        """``sinks``: where every event goes besides the file (a Kafka topic, Redis pub/sub), each
        through its ``Outbox``, so a sink that is down never holds the stream up."""
        self.name, self.anchor_wall_ns, self.path, self.min_score = name, anchor_wall_ns, path, min_score
        self.max_moment_ns = max_moment_ns
        self.sinks = tuple(sinks)
        self.run: list[HighlightScore] = []
        self.sent: deque[dict] = deque(maxlen=1000)  # the latest events (all of them are in the file)

    def push(self, score: HighlightScore) -> None:
        adjacent = self.run and self.run[-1].span.end_ns == score.span.start_ns
        within = not self.run or score.span.end_ns - self.run[0].span.start_ns <= self.max_moment_ns
        if score.score >= self.min_score and (adjacent or not self.run) and within:
            self.run.append(score)
            return
        self.close_run()
        if score.score >= self.min_score:
            self.run.append(score)

    def close_run(self) -> None:
        if not self.run:
            return
        (moment,) = merge_highlights(self.run, min_score=self.min_score, max_moment_ns=2**62)
        self.run = []
        self.emit(highlight_event(self.name, self.anchor_wall_ns, moment))

    def emit(self, event: dict) -> None:
        """To the file, then to each sink's outbox."""
        self.sent.append(event)
        with self.path.open("a") as out:
            out.write(json.dumps(event) + "\n")
        for sink in self.sinks:
            sink.put(event)


def _wall(anchor_wall_ns: int, t_ns: int) -> str:
    return datetime.fromtimestamp((anchor_wall_ns + t_ns) / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


def chapter_event(name: str, anchor_wall_ns: int, summary: dict, start_ns: int, end_ns: int) -> dict:
    """A live chapter: the summary of ``[start_ns, end_ns)`` of the stream (schema: ``pipelines.kafka.events``)."""
    labels = list(dict.fromkeys(label for c in summary["chapters"] for label in c["labels"]))
    return {"type": "chapter", "source": name, "source_id": summary["source_id"], "stream_start": start_ns / 1e9,
            "stream_end": end_ns / 1e9, "wall_start": _wall(anchor_wall_ns, start_ns), "wall_end": _wall(anchor_wall_ns, end_ns),
            "text": summary["text"], "labels": labels, "highlights": summary["timeline"]}


def highlight_event(name: str, anchor_wall_ns: int, moment: HighlightMoment) -> dict:
    def wall(t_ns: int) -> str:
        return _wall(anchor_wall_ns, t_ns)

    start, end = moment.span.start_seconds, moment.span.end_seconds
    return {"type": "highlight", "source": name, "source_id": moment.source_id, "stream_start": start, "stream_end": end,
            "wall_start": wall(moment.span.start_ns), "wall_end": wall(moment.span.end_ns), "score": moment.score,
            "labels": list(moment.labels), "reason": moment.reason,
            "clip": {"source_id": moment.source_id, "start": start, "end": end}}


class _Stream:
    """What a live run keeps per stream: its highlight scorer, its events, its status file."""

    def __init__(self, name: str, anchor_wall_ns: int, folder: Path, sinks: Sequence[Outbox] = ()) -> None:
        if (problem := stream_name_problem(name)) is not None:  # it names files: checked where they are made too
            raise ValueError(problem)
        self.name = name
        self.status_path = folder / f"{name}.json"
        self.events = HighlightEvents(name, anchor_wall_ns, folder / f"{name}.events.jsonl", sinks=sinks)
        self.scorer = HighlightScorer()
        self.scored_until_ns = -1
        self.shots: dict[int, object] = {}  # shot results of segments not yet in a chapter
        self.shots_seen = 0  # how many of the source's shot results were taken
        self.anchor_wall_ns = anchor_wall_ns
        self.chapter: list = []  # (StoredSegment, HighlightScore) of the chapter being gathered
        self.unscored: dict = {}  # segment id -> StoredSegment handed to the scorer, its score not out yet
        self.quiet_after: set[int] = set()  # end times of windows after which the stream went quiet


class LiveOutputs:
    """Highlight events, chapter summaries and status files of the streams of a live run, in
    ``DATA/live``; ``events_url`` (kafka://HOST:PORT/TOPIC) gets the events too, and a Redis store
    publishes them on its pub/sub channel."""

    def __init__(self, index, *, events_url: str | None = None, chapter_seconds: float = 120.0) -> None:
        self.index = index
        self.folder = Path(index.data_dir) / "live"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.outboxes: list[Outbox] = []
        if events_url:
            from pipelines.kafka.events import EventPublisher

            EventPublisher(events_url).close()  # a wrong address is said at start, not found in the logs later
            self.outboxes.append(Outbox(f"the Kafka topic {events_url}", kafka_sink(events_url)))
        if hasattr(index.store, "publish"):  # Redis: pub/sub too
            self.outboxes.append(Outbox("Redis pub/sub", lambda: _Channel(index.store)))
        self.chapter_ns = int(chapter_seconds * 1e9)
        self.streams: dict[str, _Stream] = {}
        self.summarise: Callable[[SummaryInput, Callable[[dict | None], None]], None] | None = None
        """Set by the driver: has the summary stage write a chapter's text."""

    def add(self, outcome: SourceOutcome) -> None:
        source_id = outcome.ref.source_id
        known = self.index.store.get_source(source_id)
        anchor = known.ingested_at_ns if known is not None and known.ingested_at_ns else time.time_ns()
        self.streams[source_id] = _Stream(outcome.ref.name, anchor, self.folder, self.outboxes)

    def on_segment(self, outcome: SourceOutcome, segment: Segment) -> None:
        if segment.meta.get(QUIET_AFTER):
            self.streams[outcome.ref.source_id].quiet_after.add(segment.span.end_ns)

    def score(self, outcome: SourceOutcome, shot_results: list, horizon_ns: int | None, *, final: bool = False) -> None:
        """Score, in time order, the stream's segments indexed since the last call: those before
        ``horizon_ns``, its earliest segment still in flight (fuse finishes out of order; the
        scorer must not); send the highlight moments that closed, and a chapter when one is long
        enough (``final``: the stream ended, everything goes out)."""
        stream = self.streams[outcome.ref.source_id]
        for result in shot_results[stream.shots_seen:]:
            stream.shots[result.segment_id] = result
        stream.shots_seen = len(shot_results)
        stored = self.index.store.segments_of_source(outcome.ref.source_id, start_ns=stream.scored_until_ns + 1)
        signals = []
        for s in stored:
            if horizon_ns is not None and s.start_ns >= horizon_ns:
                break
            signals.append(signals_of(s, stream.shots.get(s.segment_id)))
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
        if stream.chapter and (final or stream.chapter[-1][0].end_ns - stream.chapter[0][0].start_ns >= self.chapter_ns):
            self._summarise_chapter(outcome, stream)

    def _summarise_chapter(self, outcome: SourceOutcome, stream: _Stream) -> None:
        """The chapter gathered so far goes to the summary stage; its text goes out as an event."""
        rows, stream.chapter = stream.chapter, []
        segments = [s for s, _ in rows]
        shots = [stream.shots.pop(s.segment_id, None) for s in segments]  # told: not kept
        cuts = tuple(t for shot in shots if shot is not None for t in shot.cuts_ns)
        start_ns, end_ns = segments[0].start_ns, segments[-1].end_ns
        item = SummaryInput(
            source_id=outcome.ref.source_id, name=stream.name, duration_ns=end_ns, start_ns=start_ns,
            segments=tuple(SegmentFacts(s.start_ns, s.end_ns, s.description, s.labels, s.events, s.transcript)
                           for s in segments),
            cuts_ns=cuts, highlights=tuple(merge_highlights([score for _, score in rows], list(cuts),
                                                            min_score=DEFAULT_MIN_SCORE)))

        def send(summary: dict | None) -> None:
            if summary is None:  # the segments are indexed; this chapter just has no event
                log.warning("no chapter summary of %s %.0f-%.0f s", stream.name, start_ns / 1e9, end_ns / 1e9)
                return
            stream.events.emit(chapter_event(stream.name, stream.anchor_wall_ns, summary, start_ns, end_ns))

        self.summarise(item, send)

    def close(self, timeout_s: float = 10.0) -> None:
        """Give the sinks up to ``timeout_s`` for what waits, then stop them."""
        for outbox in self.outboxes:
            outbox.close(timeout_s)

    def write_status(self, outcome: SourceOutcome, status: dict, *, stopping: bool) -> None:
        """``DATA/live/NAME.json``, replaced whole, and a checkpoint in the store (with Redis: seen by every worker)."""
        stream = self.streams[outcome.ref.source_id]
        status["name"] = stream.name
        # Scored means indexed and everything before it too: lag behind real time of the index.
        status["lag_seconds"] = max(0.0, round((time.time_ns() - stream.anchor_wall_ns - stream.scored_until_ns) / 1e9, 3))
        if stopping and status.get("state") != "stopped":
            status["state"] = "stopping"
        status["events_waiting"] = sum(o.waiting for o in self.outboxes)  # for a sink that is down
        status["events_dropped"] = sum(o.dropped for o in self.outboxes)
        tmp = stream.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, stream.status_path)
        self.index.store.put_checkpoint(f"live-status:{stream.name}", status)


class Outbox:
    """Events on their way to a sink that may be slow or down (a Kafka broker, Redis pub/sub).

    ``put`` never waits: a thread sends the events in order, and when a send fails it drops the
    connection, waits ``retry_s`` (doubling to 10 s) and sends the same event again on a new one
    (``connect()``), for as long as it takes. At most ``max_events`` wait; past that the oldest
    is dropped and counted (the stream's events file has every one). Delivery is at least once:
    an event whose acknowledgement was lost is sent again."""

    def __init__(self, what: str, connect: Callable[[], object], *, max_events: int = 1000, retry_s: float = 0.5) -> None:
        """``connect()`` returns a sink with ``send(event, key)``, ``flush()`` (raises if a send failed) and ``close()``."""
        self.what, self.connect, self.max_events, self.retry_s = what, connect, max_events, retry_s
        self.sent = self.dropped = self.failures = 0
        self._events: deque[dict] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"outbox-{what}", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._events)

    def put(self, event: dict) -> None:
        with self._cond:
            if len(self._events) >= self.max_events:
                self._events.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning("%s is unreachable and %d events wait: dropping the oldest (%d so far; the events "
                                "file has them all)", self.what, self.max_events, self.dropped)
            self._events.append(event)
            self._cond.notify_all()

    def close(self, timeout_s: float = 10.0) -> int:
        """Wait up to ``timeout_s`` for what waits to go out, then stop; returns how many never went."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._events and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            self._closing = True
            self._cond.notify_all()
            left = len(self._events)
        self._thread.join(timeout=5)
        if left:
            log.warning("%s: %d events were never sent (they are in the events file)", self.what, left)
        return left

    def _run(self) -> None:
        sink, delay = None, self.retry_s
        while True:
            with self._cond:
                while not self._events and not self._closing:
                    self._cond.wait()
                if self._closing:
                    break
                event = self._events[0]
            try:
                if sink is None:
                    sink = self.connect()
                sink.send(event, key=event["source"])
                sink.flush()
            except Exception as exc:  # noqa: BLE001 - the sink is down or refused: hold, reconnect, resend
                self.failures += 1
                if self.failures == 1 or delay >= 10.0:
                    log.warning("could not send an event to %s (%s); holding %d, retrying", self.what, exc, self.waiting)
                _close_quietly(sink)
                sink = None
                with self._cond:
                    self._cond.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = self.retry_s
            with self._cond:
                if self._events and self._events[0] is event:
                    self._events.popleft()
                self.sent += 1
                self._cond.notify_all()
        _close_quietly(sink)


def _close_quietly(sink) -> None:
    if sink is not None:
        try:
            sink.close()
        except Exception:  # noqa: BLE001 - closing a broken connection: nothing more to learn from it
            pass


def kafka_sink(url: str) -> Callable[[], object]:
    """``connect`` for an ``Outbox`` of the Kafka topic at ``url``."""
    from pipelines.kafka.events import EventPublisher

    class Topic(EventPublisher):
        def close(self) -> None:  # a connection being dropped after a failure: do not wait on it
            self.abort()

    return lambda: Topic(url)


class _Channel:
    """Redis pub/sub as an outbox sink."""

    def __init__(self, store) -> None:
        self.store = store

    def send(self, event: dict, key: str) -> None:
        self.store.publish(EVENTS_CHANNEL, json.dumps(event))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
