"""Live events: each highlight moment as it closes and each chapter's summary, as JSON objects
(schema: ``pipelines.kafka_events``), to a JSON-lines file, a Kafka topic and Redis pub/sub."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from operators.highlights import HighlightMoment, HighlightScore, merge_highlights
from pipelines.batch import DEFAULT_MIN_SCORE

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "events"
"""Redis pub/sub channel (under the store's key prefix: ``vidscope:events``) of live events."""


class HighlightEvents:
    """Highlight moments of a live stream as they close, appended as JSON lines to ``path``
    and to a Kafka topic when configured (one object per moment; the schema is in the module doc
    of ``pipelines.kafka_events``). A moment closes when a segment below the line follows it, or when
    it reaches ``max_moment_ns``: a stream that stays exciting still sends its event every minute
    (the next segments open the next moment)."""

    def __init__(self, name: str, anchor_wall_ns: int, path: Path, *, min_score: float = DEFAULT_MIN_SCORE,
                 publisher=None, store=None, max_moment_ns: int = 60 * 1_000_000_000) -> None:
        """``publisher``: a ``pipelines.kafka_events.EventPublisher`` that also gets every event;
        ``store``: a ``RedisStore``, which publishes each on the channel ``PREFIX:events``."""
        self.name, self.anchor_wall_ns, self.path, self.min_score = name, anchor_wall_ns, path, min_score
        self.max_moment_ns = max_moment_ns
        self.publisher, self.store = publisher, store
        self.run: list[HighlightScore] = []
        self.sent: list[dict] = []

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
        """To the file, the Kafka topic and Redis pub/sub, whichever are configured."""
        self.sent.append(event)
        with self.path.open("a") as out:
            out.write(json.dumps(event) + "\n")
        if self.publisher is not None:
            self.publisher.send(event, key=self.name)
            self.publisher.flush()
        if self.store is not None:
            try:
                self.store.publish(EVENTS_CHANNEL, json.dumps(event))
            except Exception as exc:  # noqa: BLE001 - the event is in the file (and on Kafka); pub/sub is best effort
                log.warning("could not publish a highlight event on Redis: %s", exc)


def _wall(anchor_wall_ns: int, t_ns: int) -> str:
    return datetime.fromtimestamp((anchor_wall_ns + t_ns) / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


def chapter_event(name: str, anchor_wall_ns: int, summary: dict, start_ns: int, end_ns: int) -> dict:
    """A live chapter: the summary of ``[start_ns, end_ns)`` of the stream (schema: ``pipelines.kafka_events``)."""
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
