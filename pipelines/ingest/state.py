"""What the ingest driver (``pipelines.ingest.driver``) keeps of each segment until it is written,
and of each source while it is read."""

from __future__ import annotations

from dataclasses import dataclass, field

import ray

from operators.analysis.fuse import Observations
from operators.analysis.shots import ShotDetector, ShotResult
from operators.records import Span
from pipelines.ingest.kinds import SourceOutcome


@dataclass(slots=True)
class SegmentState:
    source: "SourceState"
    ref: ray.ObjectRef | None  # the segment itself, kept until written: a failed stage is retried from it
    span: Span
    needs: set[str]
    results: dict[str, object] = field(default_factory=dict)
    observations: Observations | None = None
    attempts: dict[str, int] = field(default_factory=dict)
    thumbnail_jpeg: bytes | None = None  # made here from the decoded frames, stored with the fused record
    provisional: bool = False  # its speech was heard alone: it is written, then heard again and rewritten
    counted: bool = False  # written once (indexed, in the progress)
    fusing: int = 0  # fuse batches holding it


@dataclass(slots=True)
class SourceState:
    outcome: SourceOutcome
    gen: object
    buffers: dict[str, list[tuple[int, object]]]
    decoding: bool = True
    unfinished: int = 0
    shots: ShotDetector = field(default_factory=ShotDetector)
    shot_results: list[ShotResult] = field(default_factory=list)
    analysing: bool = False  # its summary is being written
    written: set[int] = field(default_factory=set)  # ids of the segments this run indexed
    first_start_ns: int | None = None  # where this run's first segment of it starts
    pulled_end_ns: int = 0
    batches: dict[str, int] = field(default_factory=dict)  # per stage: how many batches of it were sent
    heard_first: tuple[int, object] | None = None  # a file's first segment, heard alone: its second speech batch starts with it
