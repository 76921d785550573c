"""The metadata store's vocabulary: sources, stored segments, vector changes, and the interface
every store implements (``MetadataStore``; SQLite in ``indexers.sqlite_store``).

SQLite is the source of truth: FAISS files are a cache of its vectors and can always be rebuilt
from it (``indexers.vectors``). Writes are idempotent upserts keyed by segment id, one transaction
per batch; an upsert reports, per vector space, which vectors are new, which changed and which
went away, so the FAISS side applies exactly that, and a re-ingest of the same records changes
nothing (not even a revision number).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Literal, Mapping, Protocol, Sequence

import numpy as np

from operators.analysis.highlights import HighlightScore
from operators.records import JOINT_SPACES, MODALITIES, FusedRecord, Scored, pack_scores, unpack_scores

TEXT_SPACES = (*MODALITIES, "all")
"""Vector spaces embedded in the shared text space: a text query searches each of them."""
IMAGE_SPACE = "image"
"""The frame encoder's features (``FusedRecord.visual_features``), for image-to-image similarity."""
VECTOR_SPACES = (*TEXT_SPACES, IMAGE_SPACE, *JOINT_SPACES)

SourceStatus = Literal["ingesting", "done", "failed"]
SOURCE_STATUSES: tuple[SourceStatus, ...] = ("ingesting", "done", "failed")


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One ingested file or stream. ``uri`` is the absolute path or URL it was read from."""

    source_id: str
    uri: str
    name: str
    has_video: bool
    has_audio: bool
    duration_ns: int | None = None  # None while a live stream runs, or when the container does not say
    status: SourceStatus = "ingesting"
    error: str | None = None
    ingested_at_ns: int = field(default_factory=time.time_ns)  # wall clock, Unix epoch

    def __post_init__(self) -> None:
        if not self.source_id or not self.uri or not self.name:
            raise ValueError("a source needs an id, a uri and a name, "
                             f"got {self.source_id!r}, {self.uri!r}, {self.name!r}")
        if self.status not in SOURCE_STATUSES:
            raise ValueError(f"source status must be one of {SOURCE_STATUSES}, got {self.status!r}")
        if self.status == "failed" and not self.error:
            raise ValueError(f"source {self.name!r} is marked failed: say why in `error`")
        if self.duration_ns is not None and self.duration_ns < 0:
            raise ValueError(f"source {self.name!r}: duration must not be negative, got {self.duration_ns} ns")


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """A segment as the store keeps it: a ``FusedRecord`` without its vectors."""

    segment_id: int
    source_id: str
    start_ns: int
    end_ns: int
    description: str
    labels: Scored
    events: Scored
    transcript: str
    loudness_db: float | None
    packed_scores: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    """``FusedRecord.class_scores`` as ``operators.records.pack_scores`` keeps them."""

    def class_scores(self, name: str) -> np.ndarray | None:
        """All of one classifier's class probabilities (``"audio"``: 521, ``"visual"``: 1000), or None."""
        blob = self.packed_scores.get(name)
        return None if blob is None else unpack_scores(blob)


@dataclass(frozen=True, slots=True)
class VectorSpaceState:
    """Where one vector space stands: ``revision`` grows by one with every batch that changes it."""

    dim: int
    revision: int
    count: int


@dataclass(frozen=True, eq=False, slots=True)
class VectorChange:
    """What one upsert did to one vector space.

    ``written_ids``/``written_vectors`` are the vectors that are new or differ from the stored
    ones (``replaced_ids`` is the subset that had a vector before); ``removed_ids`` lost theirs.
    Vectors written again unchanged appear nowhere, so an idempotent re-ingest yields no change.
    """

    space: str
    revision: int
    written_ids: np.ndarray  # int64 [n]
    written_vectors: np.ndarray  # float32 [n, dim], L2-normalised
    replaced_ids: np.ndarray  # int64 [m], m <= n
    removed_ids: np.ndarray  # int64 [r]


class MetadataStore(Protocol):
    """What the indexes and the search need from a store. SQLite implements it today; a Redis
    store for shared deployments implements the same methods."""

    @property
    def store_id(self) -> str: ...
    def ping(self) -> bool: ...  # answers now? One quick try: a server may be down for a while
    def upsert_source(self, source: SourceInfo) -> None: ...
    def get_source(self, source_id: str) -> SourceInfo | None: ...
    def find_source(self, key: str) -> SourceInfo | None: ...
    def list_sources(self) -> list[SourceInfo]: ...
    def upsert_segments(self, records: Sequence[FusedRecord]) -> list[VectorChange]: ...
    def delete_segments(self, segment_ids: Iterable[int]) -> list[VectorChange]: ...
    def delete_source(self, source_id: str) -> list[VectorChange]: ...
    def get_segments(self, segment_ids: Iterable[int]) -> dict[int, StoredSegment]: ...
    def get_spans(self, segment_ids: Iterable[int]) -> dict[int, tuple[str, int, int]]: ...  # id -> (source, start, end)
    def segments_of_source(self, source_id: str, *, start_ns: int | None = None,
                           end_ns: int | None = None) -> list[StoredSegment]: ...
    def count_segments(self) -> int: ...
    def get_thumbnail(self, segment_id: int) -> bytes | None: ...
    def vector_space(self, space: str) -> VectorSpaceState | None: ...
    def vector_revision(self, space: str) -> int | None: ...
    def get_vectors(self, space: str, segment_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]: ...
    def iter_vectors(self, space: str, *, batch_rows: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...
    def vector_changes(self, space: str, since_revision: int) -> VectorChange | None: ...
    def put_analysis(self, source_id: str, *, cuts: Sequence[tuple[int, float]], scores: Sequence[HighlightScore],
                     summary: dict | None) -> None: ...
    def get_cuts(self, source_id: str) -> list[tuple[int, float]]: ...
    def highlight_scores(self, source_id: str | None = None) -> list[HighlightScore]: ...
    def get_summary(self, source_id: str) -> dict | None: ...
    def put_checkpoint(self, key: str, value: dict) -> None: ...
    def get_checkpoint(self, key: str) -> dict | None: ...
    def close(self) -> None: ...


def record_vectors(record: FusedRecord) -> dict[str, np.ndarray]:
    """The vectors a record contributes, per space, L2-normalised again (cosine = inner product).

    Normalising here costs nothing and protects the index from an encoder that forgot to; a zero
    or non-finite vector has no direction and is refused rather than silently matching nothing.
    """
    vectors = dict(record.embeddings)
    if record.visual_features is not None:
        vectors[IMAGE_SPACE] = record.visual_features
    out = {}
    for space, vec in vectors.items():
        vec = np.asarray(vec, dtype=np.float32)
        if vec.ndim != 1:
            raise ValueError(f"segment {record.segment_id}: {space} vector must be 1-D, got shape {vec.shape}")
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError(f"segment {record.segment_id}: {space} vector is zero or not finite; "
                             "leave the space out instead")
        out[space] = (vec / norm).astype("<f4")
    return out


def pick_source(key: str, matches: Sequence[SourceInfo]) -> SourceInfo | None:
    """Resolve ``key`` among sources whose id, uri or name equals it: id wins, then uri (the
    newest done version of a path), then a name, which must be unambiguous."""
    absolute = os.path.abspath(key)
    for match in matches:
        if match.source_id == key:
            return match
    at_path = [m for m in matches if m.uri in (key, absolute)]
    if at_path:  # several versions of an edited file: the last complete one
        return max(at_path, key=lambda m: (m.status == "done", m.ingested_at_ns))
    named = [m for m in matches if m.name == key]
    if len(named) > 1:
        ids = ", ".join(m.source_id for m in named)
        raise ValueError(f"{len(named)} sources are named {key!r} ({ids}); give a source id or path instead")
    return named[0] if named else None


def packed_scores(record: FusedRecord) -> dict[str, bytes]:
    """What a store keeps of ``record.class_scores``."""
    return {name: pack_scores(scores) for name, scores in record.class_scores.items()}
