"""Kafka out: highlight and chapter events as JSON on a topic.

``EventPublisher.send(event, key)`` / ``publish_events`` produce one JSON object
(utf-8) per message, keyed by the stream name so one stream's events stay in order. A highlight::

    {"type": "highlight",
     "source": "cam-1",                 # stream name
     "source_id": "9f2c...",            # the source's id in the index
     "stream_start": 12.0,              # seconds on the stream's clock (its first frame is 0)
     "stream_end": 18.0,
     "wall_start": "2025-01-01T12:00:12.000+00:00",   # ISO 8601 UTC: when it happened
     "wall_end": "2025-01-01T12:00:18.000+00:00",
     "score": 0.83,                     # 0..1, the highlight scorer's
     "labels": ["crowd", "applause"],
     "reason": "cheering and a shot change",
     "clip": {"source_id": "9f2c...", "start": 12.0, "end": 18.0}}   # what to cut, in stream s

A chapter of a live stream (every ``--chapter-seconds`` of it, default 120, and its last part when
it stops), summarised like a source::

    {"type": "chapter", "source": "cam-1", "source_id": "9f2c...",
     "stream_start": 120.0, "stream_end": 240.0, "wall_start": "...", "wall_end": "...",
     "text": "A cat, then a cup of coffee. The crowd cheers at 3:05. ...",
     "labels": ["tabby cat", "espresso"],
     "highlights": [{"start": 184.0, "end": 190.0, "score": 0.7, "labels": [...], "reason": "..."}]}

Every event carries ``type`` and ``source``; consumers skip types they do not know.
"""

from __future__ import annotations

import json
from datetime import datetime

from pipelines.kafka.streams import _Producer, parse_kafka_url

__all__ = ["EventPublisher", "check_event", "encode_event", "publish_events"]

_HIGHLIGHT_FIELDS = {
    "source": str, "source_id": str, "stream_start": (int, float), "stream_end": (int, float), "wall_start": str,
    "wall_end": str, "score": (int, float), "labels": list, "reason": str, "clip": dict,
}  # fmt: skip


def check_event(event: dict) -> None:
    """Raise ``ValueError`` unless ``event`` follows the schema of the module doc: every event has
    a string ``type`` and ``source``; a highlight has every field, with a time span that is not
    reversed, timezone-aware ISO 8601 wall times and a clip with source_id, start and end."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(event.get("source"), str):
        raise ValueError(f"an event is a dict with string 'type' and 'source', got {event!r:.200}")
    if event["type"] != "highlight":
        return
    wrong = [k for k, kind in _HIGHLIGHT_FIELDS.items() if not isinstance(event.get(k), kind) or isinstance(event.get(k), bool)]
    if wrong:
        raise ValueError(f"highlight event lacks or mistypes {wrong}: {event!r:.300}")
    if not event["stream_start"] <= event["stream_end"]:
        raise ValueError(f"highlight stream_start {event['stream_start']} is after stream_end {event['stream_end']}")
    for key in ("wall_start", "wall_end"):
        try:
            wall = datetime.fromisoformat(event[key])
        except ValueError:
            raise ValueError(f"highlight {key} {event[key]!r} is not ISO 8601") from None
        if wall.utcoffset() is None:
            raise ValueError(f"highlight {key} {event[key]!r} has no timezone; write UTC (+00:00)")
    clip = event["clip"]
    if not isinstance(clip.get("source_id"), str) or not all(isinstance(clip.get(k), (int, float)) for k in ("start", "end")):
        raise ValueError(f"highlight clip needs source_id, start and end, got {clip!r}")
    if not all(isinstance(label, str) for label in event["labels"]):
        raise ValueError(f"highlight labels must be strings, got {event['labels']!r}")


class EventPublisher:
    """Produces events as JSON to the topic of ``url``; ``flush`` or ``close`` waits for the
    broker's acknowledgements and raises the first failed send."""

    def __init__(self, url: str) -> None:
        target = parse_kafka_url(url)
        self.topic = target.topic
        self._producer = _Producer(target.bootstrap)

    def send(self, event: dict, key: str) -> None:
        """Checked and encoded (``encode_event``) before anything is sent."""
        if not key:
            raise ValueError("an event needs a non-empty key (the stream name)")
        self._producer.send(self.topic, key=key.encode(), value=encode_event(event))

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        self._producer.close()

    def abort(self) -> None:
        """Close without waiting for what is unsent (a broker that is down)."""
        self._producer.abort()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc) -> None:
        self._producer.__exit__(*exc)


def encode_event(event: dict) -> bytes:
    """``check_event``, then JSON in utf-8; NaN or infinity is a ``ValueError`` (not JSON)."""
    check_event(event)
    try:
        return json.dumps(event, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise ValueError(f"event is not JSON-serialisable: {error}") from None


def publish_events(url: str, events: list[dict]) -> int:
    """Send ``events`` in order, each keyed by its ``source``; returns how many, once all are
    acknowledged. All are checked and encoded before the first is sent."""
    values = [encode_event(event) for event in events]
    target = parse_kafka_url(url)
    with _Producer(target.bootstrap) as producer:
        for event, value in zip(events, values):
            producer.send(target.topic, key=event["source"].encode(), value=value)
    return len(events)
