"""How ``indexers.redis_store`` lays out its rows: ids as sortable hex, sources, segments and
highlight scores as JSON, vectors as little-endian float32 blobs."""

from __future__ import annotations

import base64
import json
from typing import Iterable

import numpy as np

from indexers.store import SourceInfo, StoredSegment, packed_scores
from operators.analysis.highlights import HighlightScore
from operators.records import FusedRecord, Scored, Span

_OFFSET = 2**63


def hex64(value: int) -> str:
    """A signed 64-bit integer as 16 hex digits whose lex order is numeric order."""
    shifted = int(value) + _OFFSET
    if not 0 <= shifted < 2**64:
        raise ValueError(f"{value} does not fit in a signed 64-bit integer")
    return f"{shifted:016x}"


def int64(text: bytes | str) -> int:
    return int(text, 16) - _OFFSET


def time_member(start_ns: int, segment_id: int, end_ns: int) -> str:
    return hex64(start_ns) + hex64(segment_id) + hex64(end_ns)


def scored(items: Iterable) -> Scored:
    return tuple((label, float(score)) for label, score in items)


def source_json(s: SourceInfo) -> str:
    return json.dumps([s.source_id, s.uri, s.name, s.duration_ns, s.has_video, s.has_audio, s.ingested_at_ns,
                       s.status, s.error])


def source_of(data: bytes) -> SourceInfo:
    source_id, uri, name, duration_ns, has_video, has_audio, ingested_at_ns, status, error = json.loads(data)
    return SourceInfo(source_id=source_id, uri=uri, name=name, duration_ns=duration_ns, has_video=has_video,
                      has_audio=has_audio, ingested_at_ns=ingested_at_ns, status=status, error=error)


def segment_json(r: FusedRecord) -> str:
    return json.dumps([r.source_id, int(r.span.start_ns), int(r.span.end_ns), r.description,
                       [[label, float(score)] for label, score in r.labels],
                       [[label, float(score)] for label, score in r.events], r.transcript,
                       None if r.loudness_db is None else float(r.loudness_db),
                       {name: base64.b64encode(blob).decode() for name, blob in packed_scores(r).items()}])


def segment_of(segment_id: int, data: bytes) -> StoredSegment:
    source_id, start_ns, end_ns, description, labels, events, transcript, loudness_db, *rest = json.loads(data)
    packed = {name: base64.b64decode(text) for name, text in (rest[0] if rest else {}).items()}  # rows before class scores have none
    return StoredSegment(segment_id, source_id, start_ns, end_ns, description, scored(labels), scored(events),
                         transcript, loudness_db, packed)


def highlight_of(segment_id: int, data: bytes) -> HighlightScore:
    source_id, start_ns, end_ns, score, labels, reason = json.loads(data)
    return HighlightScore(segment_id, source_id, Span(start_ns, end_ns), score, tuple(labels), reason)


def unpack(ids: list[int], blobs: list[bytes], dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), -1)
    return np.asarray(ids, dtype=np.int64), matrix.astype(np.float32, copy=False)
